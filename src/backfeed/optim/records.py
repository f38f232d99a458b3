"""The plain records an optimizer step produces: proposals, problems, updates and the report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..llm import Message

# Problem kinds (`Problem.kind`): what went wrong with an answer or a step, never its wording.
PARSE = "parse"  # the answer's form could not be read (a block, JSON, a member)
REPEAT = "repeat"  # values already evaluated, or the same as an earlier candidate
CALL = "call"  # a model call after the first failed
CAP = "cap"  # the answer's limit was lowered to the model's cap
RETRY = "retry"  # what a retry in the same step did
NOT_ASKED = "not-asked"  # a parameter the feedback does not name was not asked for
NOTHING = "nothing"  # no feedback to act on: the model was not called
STOP = "stop"  # a `stop` the scores do not allow
NOTE = "note"  # anything else an optimizer tells the user


class Problem(str):
    """What was wrong with an answer or a step: text with a `kind` (one of the constants
    above, or an optimizer's own) and the parameter it is about, if one (`param`). It is the
    text it says, so it prints and compares as text; code that acts on a problem reads `kind`
    and `param`, never the wording."""

    kind: str
    param: str | None

    def __new__(cls, text: str, kind: str = NOTE, param: str | None = None) -> Problem:
        problem = super().__new__(cls, text)
        problem.kind = getattr(text, "kind", kind) if kind == NOTE else kind
        problem.param = param if param is not None else getattr(text, "param", None)
        return problem

    def labelled(self, label: str) -> Problem:
        """The same problem, said of `label` (`candidate 2: ...`)."""
        return Problem(f"{label}: {self}", self.kind, self.param)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": str(self), "param": self.param}

    @classmethod
    def from_dict(cls, data: Any) -> Problem:
        """From `to_dict`, or the plain text stores before kinds held."""
        if isinstance(data, dict):
            return cls(str(data.get("text", "")), str(data.get("kind") or NOTE),
                       data.get("param"))
        return cls(str(data), PARSE if str(data).startswith("parse") else NOTE)

    def __reduce__(self) -> tuple[Any, ...]:
        return Problem, (str(self), self.kind, self.param)


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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParamUpdate:
        known = {f.name for f in fields(cls)}
        kept = {k: v for k, v in data.items() if k in known}
        return cls(**{"name": "", "old": None, **kept})


@dataclass(frozen=True)
class Proposal:
    """One candidate an optimizer proposes, as plain data: the values of every parameter it
    holds (by name), who proposed them, the model answer they were read from, what was
    rejected and why, and what the answer cost. Making one never changes a parameter; the
    trainer evaluates `values` and `Optimizer.step` applies the chosen one."""

    values: dict[str, Any]
    by: str = ""  # the proposer: "Prime", "Prime (per parameter)", "Numeric", "FewShot", ...
    answer: str | None = None  # the model answer it was read from (None: not from an answer)
    updates: tuple[ParamUpdate, ...] = ()  # per parameter read: proposed, new, applied, reason
    rejected: tuple[ParamUpdate, ...] = ()  # the proposals the rules refused
    problems: tuple[Problem, ...] = ()
    reasoning: str = ""
    stop: bool = False
    outside: dict[str, Any] = field(default_factory=dict)  # accepted values outside its focus
    prompt_tokens: int = 0  # the answer's cost (a request's cost is on its first answer)
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def with_values(self, values: dict[str, Any], *problems: Problem) -> Proposal:
        """The same proposal with other values (a perturbed or combined one) and more problems."""
        return replace(self, values=dict(values), problems=(*self.problems, *problems))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["problems"] = [p.to_dict() for p in self.problems]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Proposal:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["updates"] = tuple(ParamUpdate.from_dict(u) for u in data.get("updates", ()))
        data["rejected"] = tuple(ParamUpdate.from_dict(u) for u in data.get("rejected", ()))
        data["problems"] = tuple(Problem.from_dict(p) for p in data.get("problems", ()))
        return cls(**data)


@dataclass
class StepReport:
    """Everything one step did: prompts, answers, the proposals, what was applied and rejected.

    `proposals` holds every distinct candidate of the step, best guess first (empty: the step
    proposes no change); `step()` applies the first. `details` is an optimizer's own record
    (TextGrad's criticism per node under "gradients")."""

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
    problems: list[Problem] = field(default_factory=list)  # what was wrong with the answer's form
    score: float | None = None  # the score the feedback gave the values stepped from
    llm_calls: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    proposals: list[Proposal] = field(default_factory=list)

    @property
    def candidates(self) -> list[dict[str, Any]]:
        """Every proposal's values, best guess first."""
        return [p.values for p in self.proposals]

    @candidates.setter
    def candidates(self, value_sets: list[dict[str, Any]]) -> None:
        """Value sets as proposals (the field optimizers before 0.3 filled)."""
        self.proposals = [Proposal(dict(v)) for v in value_sets]

    @property
    def applied(self) -> dict[str, Any]:
        return {u.name: u.new for u in self.updates if u.applied}

    def problem(self, text: str, kind: str = NOTE, param: str | None = None) -> Problem:
        """Record a problem of `kind` (about `param`, if one); it is returned."""
        found = Problem(text, kind, param)
        self.problems.append(found)
        return found

    def problems_of(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if getattr(p, "kind", NOTE) == kind]

    def absorb(self, sub: StepReport, label: str | None = None) -> None:
        """Add what `sub` (a part's report) asked and paid: prompts, answers, calls, tokens,
        cost, rejections and problems (said of `label` when given)."""
        self.prompts.extend(sub.prompts)
        self.answers.extend(sub.answers)
        self.llm_calls += sub.llm_calls
        self.prompt_tokens += sub.prompt_tokens
        self.completion_tokens += sub.completion_tokens
        self.cost_usd += sub.cost_usd
        self.rejected.extend(sub.rejected)
        self.problems.extend(Problem(p).labelled(label) if label else Problem(p)
                             for p in sub.problems)
        self.details.update(sub.details)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["updates"] = [asdict(u) for u in self.updates]
        data["rejected"] = [asdict(u) for u in self.rejected]
        data["problems"] = [Problem(p).to_dict() for p in self.problems]
        data["proposals"] = [p.to_dict() for p in self.proposals]
        data["prompts"] = [[dict(m) for m in prompt] for prompt in self.prompts]
        data["details"] = dict(self.details)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepReport:
        """A report from `to_dict` (or a stored one of an older version: a TextGrad
        `gradients` field, `candidates` as plain value sets, problems as plain text)."""
        known = {f.name for f in fields(cls)}
        kept = {k: v for k, v in data.items() if k in known}
        kept["updates"] = [ParamUpdate.from_dict(u) for u in data.get("updates") or ()]
        kept["rejected"] = [ParamUpdate.from_dict(u) for u in data.get("rejected") or ()]
        kept["problems"] = [Problem.from_dict(p) for p in data.get("problems") or ()]
        kept["proposals"] = [Proposal.from_dict(p) for p in data.get("proposals") or ()] or [
            Proposal(dict(v)) for v in data.get("candidates") or ()]
        kept["details"] = dict(data.get("details") or {})
        if data.get("gradients"):
            kept["details"].setdefault("gradients", dict(data["gradients"]))
        kept.setdefault("step", -1)
        return cls(**kept)
