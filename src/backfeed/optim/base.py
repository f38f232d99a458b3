"""The optimizer contract (zero_feedback / step / state_dict) and the step report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .._text import clip
from ..budget import BudgetExceeded
from ..graph import Param, zero_feedback
from ..llm import LLM, Completion, Message


@dataclass
class ParamUpdate:
    """What happened to one parameter in one step."""

    name: str
    old: Any
    proposed: Any = None  # what the model wrote for it (None: nothing proposed)
    new: Any = None  # the value after the step
    applied: bool = False
    reason: str | None = None  # why a proposal was rejected (unknown name, type, bounds, ...)
    kind: str | None = None  # the rejection kind: unknown, type, bounds, constraint, syntax
    changed: bool = False  # applied and different from the old value


@dataclass
class StepReport:
    """Everything one `step()` did: prompts, answers, proposals, applied values, rejections."""

    step: int
    updates: list[ParamUpdate] = field(default_factory=list)
    rejected: list[ParamUpdate] = field(default_factory=list)  # proposals for unknown names too
    stop: bool = False
    reasoning: str = ""
    prompts: list[list[Message]] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    error: str | None = None  # the LLM call failed: nothing was applied
    problems: list[str] = field(default_factory=list)  # what was wrong with the answer's form
    score: float | None = None  # the score the feedback gave the values stepped from
    llm_calls: int = 0
    gradients: dict[str, str] = field(default_factory=dict)  # TextGrad: criticism per node

    @property
    def applied(self) -> dict[str, Any]:
        return {u.name: u.new for u in self.updates if u.applied}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Observation:
    """Parameter values with the feedback their outputs received (one row of the history)."""

    step: int
    values: dict[str, Any]
    score: float | None
    feedback: str

    def key(self) -> str:
        return values_key(self.values)


def values_key(values: dict[str, Any]) -> str:
    """A stable text key for a set of parameter values (equal values, equal keys)."""
    return json.dumps(values, sort_keys=True, default=repr)


def current_feedback(params: list[Param], limit: int = 2000) -> tuple[float | None, str, int]:
    """(mean score, joined feedback text, count) over the outputs the parameters influenced.

    An output that raised and got only text feedback scores 0 (as inside `bf.train`)."""
    outputs = {id(out): out for p in params for out in p.outputs}
    scores: list[float] = []
    texts: list[str] = []
    count = 0
    for out in outputs.values():
        for fb in out._feedback or ():
            count += 1
            if fb.score is not None:
                scores.append(fb.score)
            elif out.error is not None:  # an error with text feedback only is a failure
                scores.append(0.0)
            if fb.text and fb.text not in texts:
                texts.append(fb.text)
    text = clip("; ".join(texts), limit)
    score = sum(scores) / len(scores) if scores else None
    return score, text, count


def continues_assistant(llm: Any) -> bool:
    """Whether a backend (under any wrappers) continues a trailing assistant message."""
    for _ in range(16):
        if llm is None:
            return False
        if getattr(type(llm), "continues_assistant", False):
            return True
        llm = getattr(llm, "llm", None)
    return False


NOTHING_TO_OPTIMIZE = (
    "nothing to optimize: no output that depends on these parameters received feedback "
    "(call .backward(feedback) on an output first); the model was not called"
)


def all_perfect(params: list[Param]) -> bool:
    """True when the outputs have feedback and every feedback has the score 1 (or more)."""
    outputs = {id(out): out for p in params for out in p.outputs}
    scores = [fb.score for out in outputs.values() for fb in out._feedback or ()]
    return bool(scores) and all(s is not None and s >= 1.0 for s in scores)


class Optimizer:
    """Base of every optimizer: like torch.optim, four calls and JSON state.

    Subclasses implement `_step(report)`, filling the report and applying values through
    `backfeed.optim.apply` so that no suggestion is lost silently. A step with no feedback to
    act on records NOTHING_TO_OPTIMIZE and skips `_step` (unless `needs_feedback` is False);
    a model's `stop` stands only when every feedback score is perfect.
    """

    needs_feedback = True

    def __init__(self, params: list[Param] | Any, llm: LLM | None = None) -> None:
        if hasattr(params, "parameters") and callable(params.parameters):
            params = params.parameters()
        self.params: list[Param] = list(params)
        names = [p.name for p in self.params]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"parameter names must be unique within an optimizer; repeated: {duplicates}"
            )
        if not self.params:
            raise ValueError("the optimizer was given no parameters")
        self._llm = llm
        self.step_count = 0
        self.history: list[Observation] = []
        self.history_limit = 64

    @property
    def llm(self) -> LLM:
        if self._llm is None:
            from ..llm import default

            self._llm = default()
        return self._llm

    @llm.setter
    def llm(self, value: LLM) -> None:
        self._llm = value

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"no parameter named {name!r}; known: {[p.name for p in self.params]}")

    def zero_feedback(self) -> None:
        """Forget the feedback of every parameter (releasing the graphs it kept alive)."""
        zero_feedback(self.params)

    def values(self) -> dict[str, Any]:
        """The current value of every parameter, by name."""
        return {p.name: p._value for p in self.params}

    def observe(self) -> Observation | None:
        """Record the current values with the feedback their outputs got (None: no feedback).

        `step()` does this first; call it yourself to show the optimizer the score of values
        you evaluated but will not step from (e.g. a candidate that was rejected).
        Observing the same values again replaces their earlier row.
        """
        score, text, count = current_feedback(self.params)
        if count == 0:
            return None
        obs = Observation(self.step_count, self.values(), score, text)
        self._remember(obs)
        return obs

    def record(self, values: dict[str, Any], score: float | None, feedback: str) -> Observation:
        """Tell the optimizer how values it proposed did when evaluated elsewhere (the trainer
        calls this for every child it scores, accepted or not, so errors such as a timeout in
        proposed code reach the next prompt). Values are keyed by parameter name."""
        obs = Observation(self.step_count, dict(values), score, clip(feedback, 2000))
        self._remember(obs)
        return obs

    def _remember(self, obs: Observation) -> None:
        key = obs.key()
        self.history[:] = [h for h in self.history if h.key() != key] + [obs]  # in place: shared
        if len(self.history) > self.history_limit:  # drop the oldest, but never the best
            best = self.best()
            oldest = next(h for h in self.history if h is not best)
            self.history.remove(oldest)

    def best(self) -> Observation | None:
        """The observed values with the highest score."""
        scored = [h for h in self.history if h.score is not None]
        return max(scored, key=lambda h: h.score) if scored else None  # type: ignore[arg-type, return-value]

    def step(self) -> StepReport:
        """Propose and apply new values from the current feedback; never raises for bad answers.

        bf.BudgetExceeded from the LLM layer propagates (the trainer stops on it); any other
        failure of the LLM call is recorded in `report.error` and nothing is applied.
        """
        report = StepReport(step=self.step_count)
        obs = self.observe()
        report.score = obs.score if obs is not None else None
        if obs is None and self.needs_feedback:
            report.problems.append(NOTHING_TO_OPTIMIZE)
        else:
            self._step(report)
        if report.stop and not all_perfect(self.params):
            report.stop = False
            report.problems.append("stop ignored: not every feedback score is perfect (1.0)")
        self.step_count += 1
        return report

    def _ask(
        self,
        report: StepReport,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion | None:
        """One LLM call, accounted in the report; None (and `report.error`) when it failed."""
        report.prompts.append(messages)
        report.llm_calls += 1
        try:
            completion = self.llm.complete(
                messages, json_schema=json_schema, max_tokens=max_tokens, temperature=temperature
            )
        except BudgetExceeded:
            raise
        except Exception as exc:  # a backend failure is recorded; the step applies nothing
            report.error = f"{type(exc).__name__}: {exc}"
            return None
        report.answers.append(completion.text)
        report.prompt_tokens += completion.usage.prompt_tokens
        report.completion_tokens += completion.usage.completion_tokens
        report.cost_usd += completion.cost_usd
        return completion

    def _step(self, report: StepReport) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready optimizer state (parameter values included)."""
        return {
            "type": type(self).__name__,
            "step_count": self.step_count,
            "params": {p.name: p._value for p in self.params},
            "history": [asdict(h) for h in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("type") not in (None, type(self).__name__):
            raise ValueError(f"state is for {state.get('type')}, not {type(self).__name__}")
        self.step_count = state.get("step_count", 0)
        for name, value in state.get("params", {}).items():
            self.param(name).value = value
        self.history[:] = [Observation(**h) for h in state.get("history", [])]
