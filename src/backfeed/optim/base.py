"""The optimizer contract (zero_feedback / step / state_dict) and the step report."""

from __future__ import annotations

import contextlib
import contextvars
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from .._text import clip
from ..budget import BudgetExceeded
from ..graph import Param, zero_feedback
from ..llm import LLM, Completion, Message, Usage
from ..llm.wrap import answers_n

# The model every optimizer calls within `Optimizer.calls_through(llm)`, whatever its own is.
_CALLS_THROUGH: contextvars.ContextVar[LLM | None] = contextvars.ContextVar(
    "backfeed_optimizer_calls_through", default=None
)


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
    # Every distinct value set the step proposed (all parameters, by name), best guess first;
    # the params hold candidates[0]. Empty: the applied values are the only candidate.
    candidates: list[dict[str, Any]] = field(default_factory=list)

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


class History:
    """The value sets observed so far with their scores, oldest first, at most `limit` rows
    (the oldest goes first, never the best). One object can be shared by the parts of a
    composite optimizer (Hybrid), so each sees what the others observed.
    """

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self.rows: list[Observation] = []

    def __iter__(self) -> Iterator[Observation]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Observation:
        return self.rows[index]

    def remember(self, obs: Observation) -> None:
        """Add a row; observing the same values again replaces their earlier row."""
        key = obs.key()
        self.rows = [h for h in self.rows if h.key() != key] + [obs]
        if len(self.rows) > self.limit:
            best = self.best()
            oldest = next(h for h in self.rows if h is not best)
            self.rows.remove(oldest)

    def best(self) -> Observation | None:
        """The observed values with the highest score."""
        scored = [h for h in self.rows if h.score is not None]
        return max(scored, key=lambda h: h.score) if scored else None  # type: ignore[arg-type, return-value]

    def keys(self) -> set[str]:
        """The keys (`values_key`) of every value set observed."""
        return {h.key() for h in self.rows}

    def load(self, rows: list[dict[str, Any]]) -> None:
        self.rows = [Observation(**h) for h in rows]

    def to_list(self) -> list[dict[str, Any]]:
        return [asdict(h) for h in self.rows]


SAMPLE_TEMPERATURE = 0.8  # the temperature of every candidate after the first


def _perturb(params: list[Param], values: dict[str, Any], rng: random.Random) -> list[str]:
    """Move bounded numbers in `values` (in place) a small random step within their bounds;
    the names of the parameters moved."""
    moved = []
    for p in params:
        if p.kind not in ("int", "float") or p.bounds is None or None in p.bounds:
            continue
        if p.choices is not None:
            continue
        lo, hi = p.bounds
        old = values[p.name]
        for _ in range(8):
            step = rng.gauss(0.0, (hi - lo) * 0.1) or (hi - lo) * 0.05
            new: Any = min(hi, max(lo, round(old + step, 6)))
            if p.kind == "int":
                new = round(new)
                if new == old:
                    new = min(hi, max(lo, old + (1 if step > 0 else -1)))
            if new != old:
                values[p.name] = new
                moved.append(p.name)
                break
    return moved


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

    `split = True` (an option of Prime and Hybrid) adds, for each candidate that changes
    several parameters, each of those changes alone as a further candidate.

    Subclasses implement `_step(report)`, filling the report and applying values through
    `backfeed.optim.apply` so that no suggestion is lost silently; `_ask_many` and `_gather`
    turn several answers into `report.candidates`. `history` may be a `History` shared with
    another optimizer. A step with no feedback to act on records NOTHING_TO_OPTIMIZE and
    skips `_step` (unless `needs_feedback` is False); a model's `stop` stands only when every
    feedback score is perfect.
    """

    needs_feedback = True
    split = False

    def __init__(
        self, params: list[Param] | Any, llm: LLM | None = None, *, history: History | None = None
    ) -> None:
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
        self.history = History() if history is None else history  # shared by Hybrid's parts

    @staticmethod
    @contextlib.contextmanager
    def calls_through(llm: LLM) -> Iterator[None]:
        """Within the block, every optimizer's `llm` is `llm` (nested ones such as Hybrid's
        Prime too, and threads that copy the context); no optimizer is changed. The trainer
        runs the user's optimizer through the run's recorded model this way."""
        token = _CALLS_THROUGH.set(llm)
        try:
            yield
        finally:
            _CALLS_THROUGH.reset(token)

    @property
    def llm(self) -> LLM:
        through = _CALLS_THROUGH.get()
        if through is not None:
            return through
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
        self.history.remember(obs)

    def best(self) -> Observation | None:
        """The observed values with the highest score."""
        return self.history.best()

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
        found = self._ask_many(report, messages, 1, json_schema=json_schema,
                               max_tokens=max_tokens, temperature=temperature)
        return found[0] if found else None

    def _ask_many(
        self,
        report: StepReport,
        messages: list[Message],
        n: int,
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> list[Completion]:
        """`n` answers to one prompt: the first at `temperature`, the others sampled at
        SAMPLE_TEMPERATURE. On a backend that answers one request with several (`answers_n`:
        litellm's `n`, where the provider bills the prompt once), the others come from one
        request; otherwise they are asked one after another: on the embedded model that
        processes the prompt once (the slot keeps it cached) and only generates n times;
        parallel slots would each process the whole prompt again (benchmarks/candidates.py).
        Every request is accounted in the report (`llm_calls` counts requests; `prompts` holds
        the prompt once per answer, beside it). The answers that came back, in order; empty,
        with `report.error`, when the first call failed (a later failure is one of the
        report's problems).
        """
        rest = n - 1
        requests = [(1, temperature)]
        if rest > 1 and answers_n(self.llm):
            requests.append((rest, SAMPLE_TEMPERATURE))
        else:
            requests += [(1, SAMPLE_TEMPERATURE)] * rest
        completions: list[Completion] = []
        for i, (count, temp) in enumerate(requests):
            report.llm_calls += 1
            try:
                options: dict[str, Any] = {"n": count} if count != 1 else {}
                completion = self.llm.complete(
                    messages, json_schema=json_schema, max_tokens=max_tokens,
                    temperature=temp, **options,
                )
            except BudgetExceeded:
                raise
            except Exception as exc:  # a backend failure is recorded; the step goes on without it
                failure = f"{type(exc).__name__}: {exc}"
                if i == 0:
                    report.prompts.append(messages)
                    report.error = failure
                    return []
                which = f"candidates {i}-{i + count - 1}" if count > 1 else f"candidate {i}"
                report.problems.append(f"{which}: the call failed: {failure}")
                continue
            report.prompt_tokens += completion.usage.prompt_tokens
            report.completion_tokens += completion.usage.completion_tokens
            report.cost_usd += completion.cost_usd
            texts = [completion.text, *completion.alternatives][:count]
            for k, text in enumerate(texts):
                report.prompts.append(messages)
                report.answers.append(text)
                # the request's tokens and cost are counted once, with its first answer
                completions.append(completion if k == 0 else Completion(
                    text, Usage(), 0.0, completion.model, completion.cached))
        return completions

    def _gather(self, report: StepReport, proposals: list[Callable[[StepReport], Any]]) -> None:
        """Turn several proposals into `report.candidates` and apply the first.

        Each proposal applies one answer to the parameters (from the same start values) and
        records what it did in the report it is given. A value set equal to one already
        evaluated (in the history) or to an earlier candidate is never a candidate: the other
        candidates of the call are taken instead, and when there are none, the bounded numbers
        of a repeat are perturbed within their bounds; the report's problems say which. The first proposal's report is the step's;
        the others' rejections and problems are added with a `candidate i:` prefix.
        """
        start = self.values()
        evaluated = self.history.keys() | {values_key(start)}
        subs: list[StepReport] = []
        first_values: dict[str, Any] = start
        repeats: list[tuple[int, dict[str, Any]]] = []  # proposals equal to evaluated values
        for i, propose in enumerate(proposals):
            self._load(start)
            sub = StepReport(step=report.step)
            subs.append(sub)
            propose(sub)
            values = self.values()
            if i == 0:
                first_values = dict(values)
            key = values_key(values)
            if values == start:
                continue  # no change proposed
            if key in evaluated:
                repeats.append((i, values))
            elif any(values_key(c) == key for c in report.candidates):
                sub.problems.append("repeat: the same values as an earlier candidate; dropped")
            else:
                report.candidates.append(values)
        rng = random.Random(f"{self.step_count}:{values_key(start)}")
        for i, values in repeats:  # another candidate of the call if any, else a perturbation
            moved = [] if report.candidates else _perturb(self.params, values, rng)
            if moved and values_key(values) not in evaluated:
                subs[i].problems.append(f"repeat: these values were already evaluated; "
                                        f"perturbed {moved} within their bounds")
                report.candidates.append(values)
            else:
                subs[i].problems.append("repeat: these values were already evaluated; dropped")
        if self.split and len(self.params) > 1:
            self._split(report, start, evaluated)
        first = subs[0]
        report.updates, report.reasoning, report.stop = first.updates, first.reasoning, first.stop
        for i, sub in enumerate(subs):
            if i:
                for update in sub.rejected:
                    update.reason = f"candidate {i}: {update.reason}"
            report.rejected.extend(sub.rejected)
            report.problems.extend(f"candidate {i}: {p}" if i else p for p in sub.problems)
        chosen = report.candidates[0] if report.candidates else start
        self._load(chosen)
        first_as_proposed = first_values == chosen
        for update in report.updates:  # the step's values are candidates[0]
            update.new = chosen[update.name]
            update.changed = update.new != update.old
            update.applied = update.changed or (update.applied and first_as_proposed)

    def _split(self, report: StepReport, start: dict[str, Any], evaluated: set[str]) -> None:
        """Add each candidate's change of one parameter alone as a further candidate, so a good
        change is not lost next to a bad one (the trainer scores each)."""
        keys = evaluated | {values_key(c) for c in report.candidates}
        for values in list(report.candidates):
            changed = [name for name in values if values[name] != start[name]]
            for name in changed if len(changed) > 1 else []:
                alone = {**start, name: values[name]}
                if values_key(alone) not in keys:
                    keys.add(values_key(alone))
                    report.candidates.append(alone)

    def _load(self, values: dict[str, Any]) -> None:
        """Set the parameters to `values` (already valid: earlier values or checked proposals)."""
        for p in self.params:
            p._value = values[p.name]

    def _step(self, report: StepReport) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready optimizer state (parameter values included)."""
        return {
            "type": type(self).__name__,
            "step_count": self.step_count,
            "params": {p.name: p._value for p in self.params},
            "history": self.history.to_list(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("type") not in (None, type(self).__name__):
            raise ValueError(f"state is for {state.get('type')}, not {type(self).__name__}")
        self.step_count = state.get("step_count", 0)
        for name, value in state.get("params", {}).items():
            self.param(name).value = value
        self.history.load(state.get("history", []))
