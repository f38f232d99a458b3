"""What a run stores of each step and reads back: candidate reports, reasons and the history."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..graph import Param, minimal_subgraph, to_dot
from ..optim import ParamUpdate, StepReport
from ..store import HeldOut, RunStore


@dataclass(frozen=True)
class StepSummary:
    """One finished step as the history shows it."""

    step: int
    parents: list[int]
    candidate: int | None
    accepted: bool
    reason: str
    parent_score: float | None
    child_score: float | None
    best_score: float | None


@dataclass
class TrainResult:
    """What `train` returns: the best values (already loaded into the module) and the history.

    `spend` has the totals and `spend["by_role"]`: optimizer, judge and program calls apart.
    """

    run_id: str
    store: RunStore
    status: str  # 'finished' | 'stopped'
    stop_reason: str
    best_candidate: int
    best_values: dict[str, Any]
    best_score: float | None
    history: list[StepSummary]
    spend: dict[str, Any]
    metric_calls: int
    candidates: int
    verdict: HeldOut | None = None  # the seed and the best on held-out data (see `HeldOut`)


def unchanged_reason(report: StepReport) -> str:
    """Why a step left the values as they were, from its report (said in history and CLI)."""
    if report.error:
        return f"the optimizer's model failed ({report.error})"
    if report.rejected:
        return "every proposal was rejected (" + "; ".join(
            f"{u.name}: {u.reason}" for u in report.rejected[:3]) + ")"
    rejected = [u for u in report.updates if u.reason and not u.applied]
    if rejected:
        return "every proposal was rejected (" + "; ".join(
            f"{u.name}: {u.reason}" for u in rejected[:3]) + ")"
    if report.problems:
        return "the answer could not be used (" + "; ".join(report.problems[:3]) + ")"
    if report.llm_calls == 0 and not report.answers:
        return "the optimizer made no proposal"
    if report.stop:
        return "the model said the values need no change"
    if not report.updates:
        return "the answer named no parameter"
    return "the model proposed the current values"


def candidate_report(report: StepReport, k: int, parent: dict[str, Any],
                     values: dict[str, Any], *, several: bool) -> StepReport:
    """The stored report of candidate `k` of one optimizer step. With several candidates,
    each row's updates are its own changes from the parent, and what the step shares (its
    prompts, answers, tokens, cost, rejections) is on the first row only (the others name it
    in their `shared_with` column), so that a step page shows each candidate once and counts
    each prompt and token once."""
    own = [ParamUpdate(name, parent.get(name), value, value, applied=True, changed=True)
           for name, value in values.items() if parent.get(name) != value]
    if not several:  # every change shows, whoever made it (a numeric sampler's too)
        reported = {u.name for u in report.updates if u.changed}
        kept = [u for u in report.updates if u.name in reported or u.name not in values
                or parent.get(u.name) == values[u.name]]
        return replace(report, updates=kept + [u for u in own if u.name not in reported])
    if k == 0:
        rejected = [u for u in report.updates if not u.applied and u.reason]
        return replace(report, updates=own + rejected)
    return StepReport(step=report.step, updates=own, stop=report.stop, score=report.score)


_DOT_MAX_NODES = 400


def trace_dot(params: list[Param]) -> str | None:
    """DOT text of the trace the optimizer saw (for the dashboard), or None when too large."""
    subgraph = minimal_subgraph(params)
    if not subgraph.nodes or len(subgraph.nodes) > _DOT_MAX_NODES:
        return None
    return to_dot(subgraph)


def history(store: RunStore, run_id: str) -> list[StepSummary]:
    """The finished steps of a run with the decision on each (the same for resumed runs)."""
    decisions: dict[int, list[Any]] = {}
    for d in store.decisions(run_id):
        decisions.setdefault(d.step, []).append(d)
    out = []
    for s in store.steps(run_id):
        if s.step < 0:
            continue
        ds = decisions.get(s.step, [])
        main = next((d for d in ds if d.candidate_id == s.candidate), ds[0] if ds else None)
        out.append(StepSummary(
            s.step, s.parents, s.candidate, s.accepted, main.reason if main else "",
            main.parent_score if main else None, main.child_score if main else None, s.best_score,
        ))
    return out
