"""The optimizer contract: zero_feedback / propose / step / state_dict, torch.optim style."""

from __future__ import annotations

import contextlib
import contextvars
import random
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from .._text import clip
from ..graph import Param, zero_feedback
from ..llm import LLM, Completion, Message
from ..llm.wrap import continues_assistant
from .asking import SAMPLE_TEMPERATURE, ask_many
from .clean import norm_text
from .compact import is_prose
from .feedback import NOTHING_TO_OPTIMIZE, all_perfect, current_feedback
from .history import History, Observation, values_key
from .records import NOTHING, REPEAT, STOP, ParamUpdate, Problem, Proposal, StepReport

_WARNED: set[type] = set()  # optimizer classes told that `_step` is the older contract

# The model every optimizer calls within `Optimizer.calls_through(llm)`, whatever its own is.
_CALLS_THROUGH: contextvars.ContextVar[LLM | None] = contextvars.ContextVar(
    "backfeed_optimizer_calls_through", default=None
)


class Optimizer:
    """Base of every optimizer: like torch.optim, a few calls and JSON state.

    `propose()` reads the feedback and returns a `StepReport` whose `proposals` are plain
    `Proposal` records: no parameter changes while an optimizer proposes. `step()` proposes
    and applies the first proposal, the one change a step makes. Subclasses implement
    `_propose(report) -> list[Proposal]` (building proposals with `apply.answer_proposal` or
    `apply.values_proposal`, asking the model with `_ask_many`, so that no suggestion is lost
    silently); the template removes repeats (values in the history, or equal to an earlier
    proposal: other proposals of the call are taken instead, and when there are none, the
    bounded numbers of a repeat are perturbed within their bounds), records why, and fills
    the report. `split = True` (an option of Prime and Hybrid) adds, for each proposal that
    changes several parameters, each of those changes alone.

    `history` may be a `History` shared with another optimizer. A step with no feedback to
    act on records NOTHING_TO_OPTIMIZE and proposes nothing (unless `needs_feedback` is
    False); a model's `stop` stands only when every feedback score is perfect. A `RunStop`
    (a budget reached, a model the run cannot use) propagates; any other failure of the model
    is recorded in `report.error`.
    """

    needs_feedback = True
    split = False
    dedupe = True  # repeats of values in the history are replaced or dropped (Numeric: no)

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
        """The model it calls, resolved when first asked for (`bf.llm.default()` when none
        was given), so building an optimizer never needs a model installed."""
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

    @property
    def given_llm(self) -> LLM | None:
        """The model it was given (None: the default, made when first called)."""
        return self._llm

    @property
    def name(self) -> str:
        """Who proposes, in a `Proposal`'s `by`."""
        return type(self).__name__

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

        `propose()` does this first; call it yourself to show the optimizer the score of
        values you evaluated but will not step from (e.g. a candidate that was rejected).
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

    # -- the step -----------------------------------------------------------------------------
    def propose(self) -> StepReport:
        """Propose new values from the current feedback, changing no parameter: the report's
        `proposals`, best guess first (none: no change), with everything the step asked for
        and paid. Never raises for bad answers."""
        report = StepReport(step=self.step_count)
        obs = self.observe()
        report.score = obs.score if obs is not None else None
        if obs is None and self.needs_feedback:
            report.problem(NOTHING_TO_OPTIMIZE, NOTHING)
        elif type(self)._step is not Optimizer._step:
            self._older_step(report)
        else:
            start = self.values()
            self._settle(report, start, self._propose(report))
            self._settled(report)
        if report.stop and not all_perfect(self.params):
            report.stop = False
            report.problem("stop ignored: not every feedback score is perfect (1.0)", STOP)
        self.step_count += 1
        return report

    def step(self) -> StepReport:
        """Propose (see `propose`) and apply the first proposal to the parameters."""
        report = self.propose()
        if report.proposals:  # checked by each parameter (a custom _propose may be wrong)
            chosen = report.proposals[0].values
            checked = {p.name: p.validate(chosen[p.name]) for p in self.params}
            self._load(checked)
        return report

    def _propose(self, report: StepReport) -> list[Proposal]:
        """The step's proposals from the current feedback; fills `report` with what it asked
        and paid. Must not change a parameter."""
        raise NotImplementedError(f"{type(self).__name__} must implement "
                                  "_propose(report) -> list[Proposal]")

    def _step(self, report: StepReport) -> None:
        """The contract before 0.3: set the parameters (and optionally `report.candidates`).
        Still run, through `_older_step`, for optimizers written against it."""
        raise NotImplementedError

    def _older_step(self, report: StepReport) -> None:
        """Run an optimizer written for the contract before 0.3 (`_step` sets the parameters,
        and `report.candidates` may list value sets) and turn what it did into the report's
        proposals, as they are (it was never deduplicated: the trainer records repeats); the
        parameters are set back, so `propose()` still changes nothing. Said once per class,
        as a DeprecationWarning."""
        if type(self) not in _WARNED:
            _WARNED.add(type(self))
            warnings.warn(f"{type(self).__name__}._step sets parameters: implement "
                          "_propose(report) -> list[Proposal] instead (bf.optim.Proposal)",
                          DeprecationWarning, stacklevel=3)
        start = self.values()
        try:
            self._step(report)
            after = self.values()
        finally:
            self._load(start)
        named = report.candidates or ([after] if after != start else [])
        report.proposals = [Proposal({**start, **values}, by=self.name) for values in named]

    def _settled(self, report: StepReport) -> None:
        """After the proposals are settled into `report` (Prime retries here)."""

    def _settle(self, report: StepReport, start: dict[str, Any],
                proposals: list[Proposal]) -> None:
        """Keep the distinct proposals that change `start` into `report.proposals` (repeats
        are replaced by the call's other proposals, or perturbed within their bounds, and the
        problems say which). The first proposal's updates and reasoning are the step's; the
        others' rejections and problems are added with a `candidate i:` prefix."""
        seen = self._seen_key()
        evaluated = ({seen(h.values) for h in self.history} if self.dedupe else set()
                     ) | {seen(start)}
        notes: list[list[Problem]] = [[] for _ in proposals]
        kept: list[Proposal] = []
        repeats: list[int] = []
        for i, proposal in enumerate(proposals):
            key = seen(proposal.values)
            if proposal.values == start:
                continue  # no change proposed
            if key in evaluated:
                repeats.append(i)
            elif any(seen(k.values) == key for k in kept):
                notes[i].append(Problem("repeat: the same values as an earlier candidate; "
                                        "dropped", REPEAT))
            else:
                kept.append(proposal)
        rng = random.Random(f"{self.step_count}:{values_key(start)}")
        for i in repeats:  # another proposal of the call if any, else a perturbation
            values = dict(proposals[i].values)
            moved = [] if kept else _perturb(self.params, values, rng)
            if moved and seen(values) not in evaluated:
                notes[i].append(Problem(f"repeat: these values were already evaluated; "
                                        f"perturbed {moved} within their bounds", REPEAT))
                kept.append(proposals[i].with_values(values))
            else:
                notes[i].append(Problem("repeat: these values were already evaluated; dropped",
                                        REPEAT))
        report.proposals = kept
        if self.split and len(self.params) > 1:
            self._split(report, start, evaluated, seen)
        if proposals:
            first = proposals[0]
            report.updates = [replace(u) for u in first.updates]
            report.reasoning = first.reasoning or report.reasoning
            report.stop = report.stop or first.stop
        for i, proposal in enumerate(proposals):
            for update in proposal.rejected:
                reason = f"candidate {i}: {update.reason}" if i else update.reason
                report.rejected.append(replace(update, reason=reason))
            report.problems.extend(Problem(p).labelled(f"candidate {i}") if i else Problem(p)
                                   for p in (*proposal.problems, *notes[i]))
        chosen = report.proposals[0].values if report.proposals else start
        first_as_proposed = bool(proposals) and proposals[0].values == chosen
        for update in report.updates:  # the step's values are proposals[0]'s
            update.new = chosen[update.name]
            update.changed = update.new != update.old
            update.applied = update.changed or (update.applied and first_as_proposed)

    def _seen_key(self) -> Callable[[dict[str, Any]], str]:
        """The key a value set is known by when looking for repeats: prose texts count as
        equal once whitespace runs and quotes around the whole are set aside (`norm_text`;
        templates with `{fields}`, code and other kinds as written). Which parameters are
        prose is read once, for the step."""
        texts = {p.name for p in self.params if is_prose(p)}  # a template's spaces matter

        def key(values: dict[str, Any]) -> str:
            return values_key({k: norm_text(v) if k in texts and isinstance(v, str) else v
                               for k, v in values.items()})

        return key

    def _split(self, report: StepReport, start: dict[str, Any], evaluated: set[str],
               seen: Callable[[dict[str, Any]], str]) -> None:
        """Add each proposal's change of one parameter alone as a further proposal, so a good
        change is not lost next to a bad one (the trainer scores each)."""
        keys = evaluated | {seen(p.values) for p in report.proposals}
        for proposal in list(report.proposals):
            values = proposal.values
            changed = [name for name in values if values[name] != start[name]]
            for name in changed if len(changed) > 1 else []:
                alone = {**start, name: values[name]}
                if seen(alone) not in keys:
                    keys.add(seen(alone))
                    report.proposals.append(Proposal(alone, by=f"{proposal.by} ({name} alone)",
                                                     answer=proposal.answer))

    def _load(self, values: dict[str, Any]) -> None:
        """Set the parameters to `values` (already valid: earlier values or checked proposals);
        only `step()` and `load_state_dict` change parameters."""
        for p in self.params:
            p._value = values[p.name]

    # -- asking the model -----------------------------------------------------------------------
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
        """`n` answers to one prompt from this optimizer's model (see `asking.ask_many`)."""
        return ask_many(self.llm, report, messages, n, json_schema=json_schema,
                        max_tokens=max_tokens, temperature=temperature)

    # -- state ----------------------------------------------------------------------------------
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



__all__ = [
    "NOTHING_TO_OPTIMIZE",
    "SAMPLE_TEMPERATURE",
    "History",
    "Observation",
    "Optimizer",
    "ParamUpdate",
    "Problem",
    "Proposal",
    "StepReport",
    "all_perfect",
    "continues_assistant",
    "current_feedback",
    "values_key",
]
