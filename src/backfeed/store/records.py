"""The records the run store's read API returns, built from rows by column name.

A step report is the optimizer's own typed record (`StepReport`, with its `Proposal`s,
`ParamUpdate`s and `Problem`s); they are re-exported here so that readers (the dashboard, the
CLI) import records from the store only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..optim.records import NOT_ASKED, ParamUpdate, Problem, Proposal, StepReport

LEVEL = 0.95  # the held-out verdict's interval


@dataclass(frozen=True)
class HeldOut:
    """The seed and the winner scored on one split, the improvement and its interval.

    `split` is "test" (a split the search never saw), or "val"/"train" when there was no
    test split: then the winner was chosen on these very examples, and the interval is
    optimistic; `line()` says so. `measured` is False (with `why`) when it could not be
    computed (no metric, a budget reached, a failure)."""

    split: str
    n: int = 0
    seed_score: float | None = None
    best_score: float | None = None
    improvement: float | None = None
    low: float | None = None
    high: float | None = None
    level: float = LEVEL
    seed_candidate: int | None = None
    best_candidate: int | None = None
    measured: bool = True
    why: str = ""

    @property
    def significant(self) -> bool:
        """Whether the interval lies above 0 (the gain is unlikely to be noise)."""
        return self.measured and self.low is not None and self.low > 0

    def line(self) -> str:
        """The verdict in one line, as `show`, the demo and the dashboard print it."""
        where = {"test": "on the test split",
                 "val": "on validation, where the winner was chosen (no test split: optimistic)",
                 "train": "on the trainset, where the winner was chosen (no valset or test "
                          "split: optimistic)"}.get(self.split, f"on {self.split}")
        if not self.measured:
            return f"held-out verdict: not measured ({self.why})"
        assert None not in (self.seed_score, self.best_score, self.improvement, self.low,
                            self.high)
        text = (f"held-out verdict {where}, {self.n} examples: seed {self.seed_score:.3f} -> "
                f"best {self.best_score:.3f}, {self.improvement:+.3f} "
                f"({self.level:.0%} interval {self.low:+.3f} to {self.high:+.3f})")
        if self.best_candidate == self.seed_candidate:
            return text + "; the seed is still the best"
        if not self.significant:
            return text + "; the interval includes 0: the gain may be noise"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> HeldOut | None:
        if not data:
            return None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class RunRecord:
    id: str
    name: str | None
    status: str
    config: dict[str, Any]
    created_at: float
    updated_at: float
    step: int
    best_score: float | None
    best_candidate: int | None
    spend: dict[str, Any]
    stop_reason: str | None
    verdict: HeldOut | None = None  # the seed and the best on held-out data


@dataclass(frozen=True)
class StepRecord:
    run_id: str
    step: int
    parents: list[int]
    candidate: int | None
    accepted: bool
    best_score: float | None
    spend: dict[str, Any]
    started_at: float
    finished_at: float


@dataclass(frozen=True)
class CandidateRecord:
    run_id: str
    id: int
    step: int
    values: dict[str, Any]
    values_hash: str
    parents: list[int]
    origin: str
    status: str
    val_score: float | None
    val_scores: list[float] | None
    created_at: float
    objectives: dict[str, float] | None = None  # costs measured on validation (objectives=)


@dataclass(frozen=True)
class EvaluationRecord:
    id: int
    run_id: str
    candidate_id: int | None
    values_hash: str
    split: str
    example_index: int
    example: str | None
    output: str | None
    score: float
    feedback: str
    details: dict[str, Any] | None
    error: str | None
    stdout: str
    seconds: float
    created_at: float


@dataclass(frozen=True)
class LLMCallRecord:
    id: int
    run_id: str
    step: int
    request_hash: str
    occurrence: int
    model: str | None
    messages: list[dict[str, str]]
    options: dict[str, Any]
    answer: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cached: bool
    seconds: float
    created_at: float
    role: str = "optimizer"
    alternatives: list[str] = field(default_factory=list)  # the other answers of an `n` call


@dataclass(frozen=True)
class DecisionRecord:
    run_id: str
    step: int
    candidate_id: int
    accepted: bool
    reason: str
    parent_score: float | None
    child_score: float | None
    created_at: float


@dataclass(frozen=True)
class StepReportRecord:
    """One stored candidate of an optimizer step: its typed report, which proposal of the
    step it is, and (on the step's first row) the DOT text of the trace the optimizer saw."""

    run_id: str
    step: int
    seq: int
    candidate_id: int | None
    report: StepReport
    created_at: float
    candidate_index: int = 0
    shared_with: int | None = None  # the row (seq) holding the step's prompts and spend
    dot: str | None = None

    @property
    def holds_step(self) -> bool:
        """Whether the row holds its optimizer step's own report (prompts, answers, spend,
        rejections): the first candidate's row. Later candidates' rows hold only their own
        changes (`shared_with` names the row)."""
        return not self.candidate_index


@dataclass(frozen=True)
class ComparisonRecord:
    id: int
    run_id: str
    step: int
    candidate_a: int
    candidate_b: int
    example_index: int
    winner: str
    reason: str
    created_at: float


class UnknownRun(KeyError):
    """No run with this id is in the store."""


__all__ = [
    "NOT_ASKED",
    "CandidateRecord",
    "ComparisonRecord",
    "DecisionRecord",
    "EvaluationRecord",
    "HeldOut",
    "LLMCallRecord",
    "ParamUpdate",
    "Problem",
    "Proposal",
    "RunRecord",
    "StepRecord",
    "StepReport",
    "StepReportRecord",
    "UnknownRun",
]
