"""The optimizer contract (zero_feedback / step / state_dict) and the step report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..graph import Param, zero_feedback
from ..llm import LLM, Message


@dataclass
class ParamUpdate:
    """What happened to one parameter in one step."""

    name: str
    old: Any
    proposed: Any = None  # what the model wrote for it (None: nothing proposed)
    new: Any = None  # the value after the step
    applied: bool = False
    reason: str | None = None  # why a proposal was rejected (unknown name, type, bounds, ...)


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

    @property
    def applied(self) -> dict[str, Any]:
        return {u.name: u.new for u in self.updates if u.applied}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Optimizer:
    """Base of every optimizer: like torch.optim, four calls and JSON state.

    Subclasses implement `_step(report)`, filling the report and applying values through
    `backfeed.optim.apply` so that no suggestion is lost silently.
    """

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

    def step(self) -> StepReport:
        """Propose and apply new values from the current feedback; never raises for bad answers."""
        report = StepReport(step=self.step_count)
        self._step(report)
        self.step_count += 1
        return report

    def _step(self, report: StepReport) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready optimizer state (parameter values included)."""
        return {
            "type": type(self).__name__,
            "step_count": self.step_count,
            "params": {p.name: p._value for p in self.params},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("type") not in (None, type(self).__name__):
            raise ValueError(f"state is for {state.get('type')}, not {type(self).__name__}")
        self.step_count = state.get("step_count", 0)
        for name, value in state.get("params", {}).items():
            self.param(name).value = value
