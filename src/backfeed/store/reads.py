"""Reading runs back: runs, steps, candidates, evaluations, model calls, decisions, reports."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from ..optim.records import StepReport
from .connection import StoreBase
from .records import (
    CandidateRecord,
    ComparisonRecord,
    DecisionRecord,
    EvaluationRecord,
    HeldOut,
    LLMCallRecord,
    RunRecord,
    StepRecord,
    StepReportRecord,
    UnknownRun,
)
from .schema import _load, _record


class StoreReads(StoreBase):
    """The reading half of `RunStore`: records by column name, never a write."""

    # -- reading ----------------------------------------------------------------------------
    def list_runs(self, *, status: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first."""
        sql = "SELECT * FROM runs"
        args: list[Any] = []
        if status is not None:
            sql += " WHERE status = ?"
            args.append(status)
        sql += " ORDER BY created_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [_run_record(r) for r in self._db().execute(sql, args).fetchall()]

    def get_run(self, run_id: str) -> RunRecord:
        """One run; `UnknownRun` (a KeyError) names the id when it is not stored."""
        row = self._db().execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise UnknownRun(f"no run {run_id!r} in {self.path}")
        return _run_record(row)

    def steps(
        self, run_id: str, *, before: int | None = None, limit: int | None = None
    ) -> list[StepRecord]:
        """Steps in order; with `before`/`limit`, only the last `limit` steps below `before`
        (one page of a long run, read without touching the rest)."""
        sql = "SELECT * FROM steps WHERE run_id = ?"
        args: list[Any] = [run_id]
        if before is not None:
            sql += " AND step < ?"
            args.append(before)
        if limit is None:
            rows = self._db().execute(sql + " ORDER BY step", args).fetchall()
        else:
            sql += " ORDER BY step DESC LIMIT ?"
            rows = self._db().execute(sql, [*args, int(limit)]).fetchall()[::-1]
        return [_record(StepRecord, r) for r in rows]

    def get_step(self, run_id: str, step: int) -> StepRecord | None:
        """One step, or None when it is not stored."""
        row = self._db().execute(
            "SELECT * FROM steps WHERE run_id = ? AND step = ?", (run_id, step)
        ).fetchone()
        return None if row is None else _record(StepRecord, row)

    def step_numbers(self, run_id: str, around: int) -> tuple[int | None, int | None, int]:
        """(the stored step before `around`, the one after, how many steps the run has)."""
        row = self._db().execute(
            "SELECT (SELECT MAX(step) FROM steps WHERE run_id = ?1 AND step < ?2),"
            " (SELECT MIN(step) FROM steps WHERE run_id = ?1 AND step > ?2),"
            " (SELECT COUNT(*) FROM steps WHERE run_id = ?1)",
            (run_id, around),
        ).fetchone()
        return row[0], row[1], row[2]

    def candidates(
        self,
        run_id: str,
        *,
        status: str | None = None,
        ids: Iterable[int] | None = None,
        steps: tuple[int, int] | None = None,
    ) -> list[CandidateRecord]:
        """Candidates by id; `ids` and `steps` (first, last) narrow them to either set."""
        if ids is None and steps is None:
            rows = self._select("candidates", run_id, order="id", status=status)
            return [_record(CandidateRecord, r) for r in rows]
        wanted = sorted({int(i) for i in ids or ()})
        where = [f"id IN ({','.join('?' * len(wanted))})"] if wanted else []
        args: list[Any] = [run_id, *wanted]
        if steps is not None:
            where.append("step BETWEEN ? AND ?")
            args += [steps[0], steps[1]]
        if not where:
            return []
        sql = f"SELECT * FROM candidates WHERE run_id = ? AND ({' OR '.join(where)})"
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        rows = self._db().execute(sql + " ORDER BY id", args).fetchall()
        return [_record(CandidateRecord, r) for r in rows]

    def get_candidate(self, run_id: str, candidate_id: int) -> CandidateRecord:
        """One candidate; KeyError names it when it is not stored."""
        found = self.candidates(run_id, ids=[candidate_id])
        if not found:
            raise KeyError(f"run {run_id!r} has no candidate {candidate_id}")
        return found[0]

    def evaluations(
        self, run_id: str, *, candidate_id: int | None = None, split: str | None = None
    ) -> list[EvaluationRecord]:
        rows = self._select(
            "evaluations", run_id, order="id", candidate_id=candidate_id, split=split
        )
        return [_record(EvaluationRecord, r) for r in rows]

    def llm_calls(
        self, run_id: str, *, step: int | None = None, role: str | None = None
    ) -> list[LLMCallRecord]:
        rows = self._select("llm_calls", run_id, order="id", step=step, role=role)
        return [_record(LLMCallRecord, r) for r in rows]

    def decisions(
        self, run_id: str, *, step: int | None = None, steps: tuple[int, int] | None = None
    ) -> list[DecisionRecord]:
        rows = self._select("decisions", run_id, order="step, candidate_id", step=step,
                            span=steps)
        return [_record(DecisionRecord, r) for r in rows]

    def step_reports(
        self, run_id: str, *, step: int | None = None, steps: tuple[int, int] | None = None
    ) -> list[StepReportRecord]:
        """Step reports in order; `steps` (first, last) keeps one page of them."""
        rows = self._select("step_reports", run_id, order="step, seq", step=step, span=steps)
        return [_step_report(r) for r in rows]

    def comparisons(self, run_id: str) -> list[ComparisonRecord]:
        return [_record(ComparisonRecord, r) for r in self._select("comparisons", run_id, order="id")]

    def find_evaluation(
        self, run_id: str, values_hash: str, split: str, example_index: int
    ) -> EvaluationRecord | None:
        """The stored evaluation of candidate values on one example, if any."""
        row = self._db().execute(
            "SELECT * FROM evaluations WHERE run_id = ? AND values_hash = ? AND split = ? "
            "AND example_index = ?",
            (run_id, values_hash, split, example_index),
        ).fetchone()
        return None if row is None else _record(EvaluationRecord, row)

    def find_llm_call(
        self, run_id: str, step: int, request_hash: str, occurrence: int
    ) -> LLMCallRecord | None:
        row = self._db().execute(
            "SELECT * FROM llm_calls WHERE run_id = ? AND step = ? AND request_hash = ? "
            "AND occurrence = ?",
            (run_id, step, request_hash, occurrence),
        ).fetchone()
        return None if row is None else _record(LLMCallRecord, row)


def _run_record(row: sqlite3.Row) -> RunRecord:
    """A run record with its verdict typed (stores before schema 4 have none)."""
    record = _record(RunRecord, row)
    return replace(record, verdict=HeldOut.from_dict(record.verdict))  # type: ignore[arg-type]


def _step_report(row: sqlite3.Row) -> StepReportRecord:
    """A typed step-report record; a schema-2 row kept its candidate index, the row it shares
    with and its DOT text inside the report's JSON, and they are read from there."""
    data = _load(row["report"]) or {}
    columns = row.keys()
    index = row["candidate_index"] if "candidate_index" in columns else 0
    shared = row["shared_with"] if "shared_with" in columns else None
    dot = row["dot"] if "dot" in columns else None
    return StepReportRecord(
        run_id=row["run_id"], step=row["step"], seq=row["seq"], candidate_id=row["candidate_id"],
        report=StepReport.from_dict(data), created_at=row["created_at"],
        candidate_index=index or int(data.get("candidate_index") or 0),
        shared_with=shared if shared is not None else data.get("shared_with"),
        dot=dot if dot is not None else data.get("dot"),
    )
