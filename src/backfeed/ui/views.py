"""Read-only views of the run store for the dashboard and the CLI: plain JSON-ready dicts.

Every read goes through `RunStore(path, readonly=True)`, which never takes the writer's lock
and never creates or migrates a store.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import time
from pathlib import Path
from typing import Any

from ..store import (
    CandidateRecord,
    ParamUpdate,
    RunRecord,
    RunStore,
    StepRecord,
    StepReportRecord,
    UnknownRun,
    pareto_wins,
)

MAX_FEEDBACK = 50  # feedback rows shown for one step
MAX_POINTS = 400  # score points on one run page (the best-so-far line stays exact)
MAX_FRONT = 50  # Pareto front candidates listed on one run page


class NotFound(KeyError):
    """A run or step that is not in the store; the message names it."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class StoreMissing(FileNotFoundError):
    """There is no run store at the given path."""


def value_text(value: Any) -> str:
    """A parameter value as text for display and diffs: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=repr)


def text_diff(old: Any, new: Any, *, old_label: str = "before", new_label: str = "after") -> list[str]:
    """A unified diff (lines without newlines) between two values; empty when equal."""
    a, b = value_text(old).splitlines(), value_text(new).splitlines()
    if a == b:
        return []
    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(a, b, old_label, new_label, n=3, lineterm="")
    ]


def strategy_name(config: dict[str, Any]) -> str | None:
    """The search strategy recorded in a run's config, as a short name."""
    s = config.get("strategy")
    if isinstance(s, dict):
        s = s.get("type") or s.get("name") or s.get("class")
    return None if s is None else str(s)


def _storable(step: int, run_id: str) -> None:
    """A step number SQLite cannot hold (beyond 64 bits) names no step: NotFound, not a crash."""
    if not -(2**63) <= step < 2**63:
        raise NotFound(f"run {run_id!r} has no step {step}")


class RunReader:
    """A short-lived read-only view of one store file; use as a context manager."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreMissing(
                f"no run store at {self.path} (train something first, or pass --store PATH)"
            )
        try:
            self.store = RunStore(self.path, readonly=True)
        except FileNotFoundError as exc:
            raise StoreMissing(str(exc)) from None

    def __enter__(self) -> RunReader:
        self._snapshot = self.store.snapshot()  # one consistent view while a run writes
        self._snapshot.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._snapshot.__exit__(None, None, None)
        self.close()

    def close(self) -> None:
        self.store.close()

    # -- runs -----------------------------------------------------------------------------
    def run_ids(self) -> list[str]:
        return [r.id for r in self.store.list_runs()]

    def resolve(self, ref: str) -> str:
        """A run id from an id, a unique prefix of one, a run name, or `latest`."""
        runs = self.store.list_runs()
        ids = [r.id for r in runs]
        if ref in ids:
            return ref
        if ref in ("latest", "last") and ids:
            return ids[0]
        named = [r.id for r in runs if r.name == ref]
        if len(named) == 1:
            return named[0]
        matches = [i for i in ids if i.startswith(ref)] or named
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise NotFound(f"run {ref!r} is ambiguous: it matches {', '.join(matches[:5])}")
        raise NotFound(f"no run {ref!r} in {self.path} (see `backfeed runs`)")

    def _summary(self, r: RunRecord) -> dict[str, Any]:
        spend = r.spend or {}
        end = r.updated_at if r.status != "running" else max(r.updated_at, time.time())
        return {
            "id": r.id,
            "name": r.name,
            "status": r.status,
            "strategy": strategy_name(r.config or {}),
            "best_score": r.best_score,
            "best_candidate": r.best_candidate,
            "steps": r.step + 1,
            "llm_calls": spend.get("calls", spend.get("llm_calls")),
            "cached_calls": spend.get("cached_calls") or 0,  # answered by the cache: no tokens paid
            "tokens": spend.get("tokens"),
            "usd": spend.get("usd"),
            "by_role": spend.get("by_role") or {},
            "guards": spend.get("guards") or 0,  # proposals refused for copying training data
            "started_at": r.created_at,
            "updated_at": r.updated_at,
            "duration_s": end - r.created_at,
            "stop_reason": r.stop_reason,
            "verdict": None if r.verdict is None else {
                "line": r.verdict.line(), "split": r.verdict.split,
                "significant": r.verdict.significant, "measured": r.verdict.measured,
                "improvement": r.verdict.improvement, "low": r.verdict.low,
                "high": r.verdict.high},
        }

    def runs(self) -> list[dict[str, Any]]:
        """Every run, newest first, as summary dicts."""
        return [self._summary(r) for r in self.store.list_runs()]

    def _run(self, run_id: str) -> RunRecord:
        try:
            return self.store.get_run(run_id)
        except UnknownRun:
            raise NotFound(f"no run {run_id!r} in {self.path}") from None

    def candidates(self, run_id: str) -> list[dict[str, Any]]:
        return [_candidate(c) for c in self.store.candidates(run_id)]

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        return [_step(s) for s in self.store.steps(run_id)]

    def reports(self, run_id: str, step: int | None = None) -> list[dict[str, Any]]:
        """The stored step reports as JSON for the API."""
        return [_report(r) for r in self.store.step_reports(run_id, step=step)]

    def decisions(self, run_id: str, step: int | None = None) -> list[dict[str, Any]]:
        return [
            {
                "step": d.step,
                "candidate": d.candidate_id,
                "accepted": d.accepted,
                "reason": d.reason,
                "parent_score": d.parent_score,
                "child_score": d.child_score,
            }
            for d in self.store.decisions(run_id)
            if step is None or d.step == step
        ]

    def run_detail(
        self, ref: str, *, before: int | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """Everything the run page shows: summary, steps, candidates, score points, Pareto wins.

        With `limit`, one page: the last `limit` steps below `before` (the newest when None),
        their candidates, and a score curve of at most `MAX_POINTS` points, so a page costs
        the same on step 10 and on step 10,000. `page` says where the page sits in the run.
        """
        run_id = self.resolve(ref)
        record = self._run(run_id)
        run = self._summary(record)
        run["config"] = record.config or {}
        steps = [_step(s) for s in self.store.steps(run_id, before=before, limit=limit)]
        span = (steps[0]["step"], steps[-1]["step"]) if steps else None
        if limit is None:
            candidates = self.candidates(run_id)
        else:  # the page's candidates, the ones its steps name, and the best
            named = {s["candidate"] for s in steps} | {p for s in steps for p in s["parents"]}
            named |= {record.best_candidate}
            candidates = [
                _candidate(c)
                for c in self.store.candidates(run_id, ids=named - {None}, steps=span)
            ]
        by_id = {c["id"]: c for c in candidates}
        best = by_id.get(run["best_candidate"])
        run["best_params"] = {k: value_text(v) for k, v in (best["values"] if best else {}).items()}
        reports: dict[int, list[StepReportRecord]] = {}
        decided: dict[int, dict[Any, str]] = {}  # step -> {candidate: reason}
        if span is not None:
            for rep in self.store.step_reports(run_id, steps=span):
                reports.setdefault(rep.step, []).append(rep)
            for d in self.store.decisions(run_id, steps=span):
                decided.setdefault(d.step, {})[d.candidate_id] = d.reason
        step_rows = []
        # spend is stored as a running total: each row shows what its own step spent
        before_page = self.store.get_step(run_id, steps[0]["step"] - 1) if steps else None
        last = dict(_step(before_page)["spend"]) if before_page is not None else {}
        for s in steps:
            calls = (s["spend"].get("calls") or 0) - (last.get("calls") or 0)
            usd = (s["spend"].get("usd") or 0.0) - (last.get("usd") or 0.0)
            last = s["spend"]
            reps = reports.get(s["step"], [])
            own = [rep for rep in reps if rep.candidate_id == s["candidate"]] or reps
            applied = [u.name for rep in own for u in rep.report.updates if u.applied]
            cand = by_id.get(s["candidate"]) if s["candidate"] is not None else None
            step_rows.append(
                {
                    "step": s["step"],
                    "candidate": s["candidate"],
                    "parents": s["parents"],
                    "score": cand["score"] if cand else None,
                    "best_score": s["best_score"],
                    "accepted": s["accepted"] if s["candidate"] is not None else None,
                    "applied": len(applied),
                    # each optimizer step's rejections once (older stores copied them to each row)
                    "rejected": sum(len(rep.report.rejected) for rep in reps if rep.holds_step),
                    "llm_calls": calls,  # this step's, not the running total
                    "usd": usd,
                    "summary": ("changed " + ", ".join(dict.fromkeys(applied))) if applied else "",
                    "reason": _step_reason(decided.get(s["step"], {}), s["candidate"]),
                }
            )
        # One point per scored candidate, placed at the spend when its step finished.
        most = None if limit is None else MAX_POINTS
        evaluations = [
            {
                "label": f"candidate {p['id']}",
                "candidate": p["id"],
                "score": p["score"],
                "llm_calls": (p["calls"] if p["origin"] != "seed" else None) or 0,
                "usd": (p["usd"] if p["origin"] != "seed" else None) or 0.0,
            }
            for p in score_curve(self.store.score_points(run_id, most), most)
        ]
        strategy = (run["strategy"] or "").lower()
        total = self.store.step_numbers(run_id, 0)[2]
        older = steps[0]["step"] if limit is not None and steps and len(steps) == limit else None
        if older is not None and self.store.step_numbers(run_id, older)[0] is None:
            older = None  # the page already starts at the run's first step
        return {
            "run": run,
            "steps": step_rows,
            "candidates": [{k: v for k, v in c.items() if k != "values"} for c in candidates],
            "evaluations": evaluations,
            "pareto": pareto_view(self.store.front_scores(run_id), None if limit is None else MAX_FRONT)
            if "pareto" in strategy else None,
            "page": {"total_steps": total, "before": before, "limit": limit, "older": older},
        }

    # -- one step -------------------------------------------------------------------------
    def step_detail(self, ref: str, step: int) -> dict[str, Any]:
        """Everything the step page shows; values stay raw, the page escapes them."""
        run_id = self.resolve(ref)
        _storable(step, run_id)
        record = self._run(run_id)
        found = self.store.get_step(run_id, step)  # this step and its neighbours, not the run
        current = None if found is None else _step(found)
        prev_step, next_step, total = self.store.step_numbers(run_id, step)
        reports = self.store.step_reports(run_id, step=step)
        if current is None and not reports:
            raise NotFound(f"run {run_id!r} has no step {step} (steps: {self._step_span(run_id, total)})")
        updates, rejected, prompts, answers = [], [], [], []
        reasoning, errors = [], []
        tokens, usd = 0, 0.0
        for rec in reports:
            first, rep = rec.holds_step, rec.report  # first: the optimizer step's own row
            if not first and rec.shared_with is None:
                continue  # a store written before 0.3 copied the whole report to each candidate
            for u in rep.updates:
                target = u.new if u.applied else u.proposed
                updates.append(
                    {
                        **dataclasses.asdict(u),
                        **_texts(u),
                        "candidate": rec.candidate_id,
                        "diff": text_diff(
                            u.old,
                            target,
                            old_label=f"{u.name} before",
                            new_label=f"{u.name} {'applied' if u.applied else 'proposed'}",
                        )
                        if (u.applied or u.proposed is not None)
                        else [],
                    }
                )
            if not first:
                continue  # its prompts, answers and spend are the first row's
            rejected += [{**dataclasses.asdict(r), **_texts(r), "candidate": rec.candidate_id}
                         for r in rep.rejected]
            prompts += rep.prompts
            answers += rep.answers
            if rep.reasoning:
                reasoning.append(rep.reasoning)
            if rep.error:
                errors.append(rep.error)
            tokens += rep.prompt_tokens + rep.completion_tokens
            usd += rep.cost_usd
        if not prompts:  # no report kept the prompt: show the LLM calls recorded in this step
            for call in self.store.llm_calls(run_id, step=step):
                prompts.append(call.messages)
                answers.append(call.answer)
                tokens += call.prompt_tokens + call.completion_tokens
                usd += call.cost_usd
        candidate = current["candidate"] if current else (reports[0].candidate_id if reports else None)
        parents = current["parents"] if current else []
        scored = self.store.candidates(run_id, ids=[] if candidate is None else [candidate])
        decisions = self.decisions(run_id, step)
        return {
            "run_id": run_id,
            "run_name": record.name,
            "run_status": record.status,
            "step": step,
            "candidate": candidate,
            "parents": parents,
            "accepted": current["accepted"] if current else None,
            "score": scored[0].val_score if scored else None,
            "feedback": self._feedback(run_id, parents, current),
            "decisions": decisions,
            "candidates": self._proposed(run_id, reports, decisions),
            "updates": updates,
            "rejected": rejected,
            "prompts": prompts,
            "answers": answers,
            "reasoning": "\n\n".join(reasoning),
            "error": "; ".join(errors) or None,
            "tokens": tokens,
            "usd": usd,
            "has_graph": _dot(reports) is not None,
            "prev_step": prev_step,
            "next_step": next_step,
        }

    def _proposed(self, run_id: str, reports: list[StepReportRecord],
                  decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each candidate the step proposed, once: its id, what it changed, its validation
        score and the decision on it."""
        ids = [rep.candidate_id for rep in reports if rep.candidate_id is not None]
        records = {c.id: c for c in self.store.candidates(run_id, ids=ids)}
        parents = {c.id: c for c in self.store.candidates(
            run_id, ids=[p for c in records.values() for p in c.parents[:1]])}
        verdicts = {d["candidate"]: d for d in decisions}
        out = []
        for cid in dict.fromkeys(ids):
            rep = next(r for r in reports if r.candidate_id == cid)
            record, verdict = records.get(cid), verdicts.get(cid, {})
            parent = parents.get(record.parents[0]) if record and record.parents else None
            # what it changed, from its stored values (the same for stores of any age)
            changed = [k for k, v in record.values.items() if parent.values.get(k) != v] \
                if record and parent else \
                [u.name for u in rep.report.updates if u.changed]
            out.append({"candidate": cid, "index": rep.candidate_index, "changed": changed,
                        "score": record.val_score if record else None,
                        "accepted": verdict.get("accepted"), "reason": verdict.get("reason")})
        return out

    def _step_span(self, run_id: str, total: int) -> str:
        """The run's step numbers for an error message, without reading every step."""
        if total == 0:
            return "none yet"
        first = self.store.step_numbers(run_id, -(2**62))[1]
        last = self.store.step_numbers(run_id, 2**62)[0]
        gaps = "" if total == last - first + 1 else f", {total} of them"
        return f"{first}..{last}{gaps}"

    def _feedback(self, run_id: str, parents: list[int], current: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The training feedback on the parent candidates, as written during this step if any."""
        rows = [
            e for parent in parents
            for e in self.store.evaluations(run_id, candidate_id=parent, split="train")
        ]
        if current is not None:
            during = [e for e in rows if current["started_at"] <= e.created_at <= current["finished_at"]]
            rows = during or rows
        return [
            {
                "candidate": e.candidate_id,
                "example": e.example_index,
                "input": e.example,
                "output": e.output,
                "score": e.score,
                "text": e.feedback,
                "error": e.error,
            }
            for e in sorted(rows[-MAX_FEEDBACK:], key=lambda e: (e.example_index, e.candidate_id))
        ]

    def step_dot(self, ref: str, step: int) -> str:
        """DOT text of the step's trace graph, as the trainer recorded it with the step."""
        run_id = self.resolve(ref)
        _storable(step, run_id)
        dot = _dot(self.store.step_reports(run_id, step=step))
        if dot is None:
            raise NotFound(f"step {step} of run {run_id!r} has no trace graph")
        return dot

    # -- values over time -----------------------------------------------------------------
    def values_at(self, ref: str, step: int | str) -> tuple[int, dict[str, Any]]:
        """(candidate id, parameter values) at a step: the candidate it produced, else its parent.

        `step` may also be "seed" (the starting values) or "best" (the run's best candidate).
        """
        run_id = self.resolve(ref)
        candidates = {c["id"]: c for c in self.candidates(run_id)}
        steps = {s["step"]: s for s in self.steps(run_id)}
        if step == "seed":
            seeds = [c for c in candidates.values() if c["origin"] == "seed"] or list(candidates.values())[:1]
            if not seeds:
                raise NotFound(f"run {run_id!r} has no candidates yet")
            return seeds[0]["id"], seeds[0]["values"]
        if step == "best":
            best = self._run(run_id).best_candidate
            if best not in candidates:
                raise NotFound(f"run {run_id!r} has no best candidate yet")
            return best, candidates[best]["values"]
        if step not in steps:
            raise NotFound(f"run {run_id!r} has no step {step} (steps: {_ranges(sorted(steps))})")
        s = steps[step]
        cid = s["candidate"] if s["candidate"] in candidates else next(
            (p for p in s["parents"] if p in candidates), None
        )
        if cid is None:
            raise NotFound(f"step {step} of run {run_id!r} names no stored candidate")
        return cid, candidates[cid]["values"]

    def export(self, ref: str) -> dict[str, Any]:
        """The whole run as one JSON-ready dict (every table's rows for it)."""
        run_id = self.resolve(ref)
        run = {**dataclasses.asdict(self._run(run_id)), "state": self.store.run_state(run_id)}
        out: dict[str, Any] = {"format": "backfeed-run/1", "run": run}
        store = self.store
        tables = {
            "steps": store.steps, "candidates": store.candidates, "evaluations": store.evaluations,
            "llm_calls": store.llm_calls, "decisions": store.decisions,
            "step_reports": store.step_reports, "comparisons": store.comparisons,
        }
        for table, read in tables.items():
            out[table] = [dataclasses.asdict(record) for record in read(run_id)]
        return out


def _candidate(c: CandidateRecord) -> dict[str, Any]:
    return {
        "id": c.id,
        "step": c.step,
        "values": c.values,
        "parents": c.parents or [],
        "origin": c.origin,
        "status": c.status,
        "score": c.val_score,
        "scores": c.val_scores,
        "objectives": c.objectives,  # its costs, with objectives=
    }


def _step(s: StepRecord) -> dict[str, Any]:
    return {
        "step": s.step,
        "parents": s.parents or [],
        "candidate": s.candidate,
        "accepted": s.accepted,
        "best_score": s.best_score,
        "spend": s.spend or {},
        "started_at": s.started_at,
        "finished_at": s.finished_at,
    }


def _report(r: StepReportRecord) -> dict[str, Any]:
    return {"step": r.step, "seq": r.seq, "candidate": r.candidate_id,
            "candidate_index": r.candidate_index, "shared_with": r.shared_with, "dot": r.dot,
            **r.report.to_dict()}


def _step_reason(reasons: dict[int, str], candidate: int | None) -> str | None:
    """Why a step ended as it did: the decision on its candidate, else (a step that kept
    nothing, e.g. "no change proposed: ...") its first decision."""
    if candidate in reasons:
        return reasons[candidate]
    return next(iter(reasons.values()), None)


def _dot(reports: list[StepReportRecord]) -> str | None:
    """The trace graph the trainer stored with the step (`bf.to_dot` of its minimal subgraph)."""
    return next((rep.dot for rep in reports if rep.dot and rep.dot.strip()), None)


def _texts(update: ParamUpdate) -> dict[str, str | None]:
    """Display text of an update's values, written the same way as its diff."""
    return {
        f"{key}_text": None if getattr(update, key) is None else value_text(getattr(update, key))
        for key in ("old", "proposed", "new")
    }


def score_curve(points: list[dict[str, Any]], most: int | None) -> list[dict[str, Any]]:
    """At most `most` of the score points, in order: the points that raised the best score so
    far (so the best-so-far line stays right, the best itself always kept), then evenly spaced
    others."""
    if most is None or len(points) <= most:
        return points
    raised, best = [], float("-inf")
    for i, p in enumerate(points):
        if p["score"] > best:
            raised.append(i)
            best = p["score"]
    if len(raised) >= most:  # more improvements than room: an even sample ending on the best
        keep = {raised[int(k * len(raised) / most)] for k in range(most - 1)} | {raised[-1]}
    else:
        room = most - len(raised)
        keep = set(raised) | {int(k * len(points) / room) for k in range(room)}
    return [points[i] for i in sorted(keep)]


def pareto_view(
    scores: dict[int, list[float] | None], most: int | None = None
) -> dict[str, Any] | None:
    """The Pareto front for the run page: which validation examples each front candidate wins
    (the trainer's rule, `backfeed.store.pareto_wins`), from each candidate's per-example scores.
    With `most`, only that many front candidates are listed (most wins first, then newest);
    `front_size` counts them all."""
    if not any(scores.values()):
        return None
    wins = pareto_wins(scores)
    n = min(len(s) for s in scores.values() if s)
    shown = sorted(wins, key=lambda cid: (-len(wins[cid]), -cid))[:most]
    return {"examples": list(range(n)), "front_size": len(wins),
            "wins": {str(cid): wins[cid] for cid in sorted(shown)}}


def _ranges(numbers: list[int]) -> str:
    if not numbers:
        return "none yet"
    return f"{numbers[0]}..{numbers[-1]}" if numbers == list(range(numbers[0], numbers[-1] + 1)) else ", ".join(map(str, numbers))
