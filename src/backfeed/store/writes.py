"""Writing a run: its record, each step's checkpoint, and what happens inside a step."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from ..llm.meter import ROLES
from ..optim.records import StepReport
from .connection import StoreBase
from .records import UnknownRun
from .schema import _encode, _insert, _load, values_hash


class StoreWrites(StoreBase):
    """The writing half of `RunStore`; every write is one transaction."""

    # -- writing: runs --------------------------------------------------------------------
    def create_run(self, config: dict[str, Any], name: str | None = None) -> str:
        """Start a run record and return its new id."""
        run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + os.urandom(3).hex()
        now = time.time()
        with self._write() as db:
            _insert(db, "runs", {"id": run_id, "name": name, "status": "running",
                                 "config": config, "created_at": now, "updated_at": now},
                    replace=False)
        return run_id

    _RUN_FIELDS = frozenset(
        {"name", "status", "config", "step", "best_score", "best_candidate", "spend",
         "stop_reason", "state", "verdict"}
    )

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set run columns (config, spend and state are given as Python values)."""
        unknown = set(fields) - self._RUN_FIELDS
        if unknown:
            raise ValueError(f"unknown run field(s) {sorted(unknown)}; known: {sorted(self._RUN_FIELDS)}")
        with self._write() as db:
            self._update_run(db, run_id, fields)

    def _update_run(self, db: sqlite3.Connection, run_id: str, fields: dict[str, Any]) -> None:
        values = {k: _encode(k, v) for k, v in fields.items()}
        values["updated_at"] = time.time()
        assignments = ", ".join(f"{k} = ?" for k in values)
        cursor = db.execute(
            f"UPDATE runs SET {assignments} WHERE id = ?", (*values.values(), run_id)
        )
        if cursor.rowcount == 0:
            raise UnknownRun(f"no run {run_id!r} in {self.path}")

    def checkpoint(
        self,
        run_id: str,
        *,
        step: int,
        parents: list[int],
        candidate: int | None,
        accepted: bool,
        best_score: float | None,
        best_candidate: int | None,
        spend: dict[str, Any],
        state: dict[str, Any],
        started_at: float,
    ) -> None:
        """Finish a step: its row and the run's resumable state, in one transaction."""
        with self._write() as db:
            _insert(db, "steps", {
                "run_id": run_id, "step": step, "parents": parents, "candidate": candidate,
                "accepted": accepted, "best_score": best_score, "spend": spend,
                "started_at": started_at, "finished_at": time.time(),
            })
            self._update_run(
                db, run_id,
                {"step": step, "best_score": best_score, "best_candidate": best_candidate,
                 "spend": spend, "state": state},
            )

    def run_state(self, run_id: str) -> dict[str, Any] | None:
        """The checkpoint written by the last finished step (None before the first)."""
        row = self._db().execute("SELECT state FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise UnknownRun(f"no run {run_id!r} in {self.path}")
        return _load(row["state"])

    def forget_after(self, run_id: str, step: int) -> None:
        """Drop proposals, decisions and reports of steps after `step` (kept: evaluations and
        LLM calls, which resume reuses instead of paying again)."""
        with self._write() as db:
            for table in ("steps", "candidates", "decisions", "step_reports", "comparisons"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ? AND step > ?", (run_id, step))

    # -- writing: what happens inside a step -----------------------------------------------
    def add_candidate(
        self,
        run_id: str,
        candidate_id: int,
        *,
        step: int,
        values: dict[str, Any],
        parents: list[int],
        origin: str,
        status: str = "proposed",
        val_score: float | None = None,
        val_scores: list[float] | None = None,
    ) -> None:
        with self._write() as db:
            _insert(db, "candidates", {
                "run_id": run_id, "id": candidate_id, "step": step, "values": values,
                "values_hash": values_hash(values), "parents": parents, "origin": origin,
                "status": status, "val_score": val_score, "val_scores": val_scores,
                "created_at": time.time(),
            })

    def update_candidate(
        self,
        run_id: str,
        candidate_id: int,
        *,
        status: str | None = None,
        val_score: float | None = None,
        val_scores: list[float] | None = None,
        objectives: dict[str, float] | None = None,
    ) -> None:
        fields: dict[str, Any] = {}
        if objectives is not None:
            fields["objectives"] = objectives
        if status is not None:
            fields["status"] = status
        if val_score is not None:
            fields["val_score"] = val_score
        if val_scores is not None:
            fields["val_scores"] = val_scores
        if not fields:
            return
        assignments = ", ".join(f"{k} = :{k}" for k in fields)
        with self._write() as db:
            db.execute(
                f"UPDATE candidates SET {assignments} WHERE run_id = :run_id AND id = :id",
                {**{k: _encode(k, v) for k, v in fields.items()}, "run_id": run_id,
                 "id": candidate_id},
            )

    def add_evaluation(
        self,
        run_id: str,
        *,
        candidate_id: int | None,
        values_hash: str,
        split: str,
        example_index: int,
        example: str | None,
        output: str | None,
        score: float,
        feedback: str,
        details: dict[str, Any] | None = None,
        error: str | None = None,
        stdout: str = "",
        seconds: float = 0.0,
    ) -> None:
        with self._write() as db:
            _insert(db, "evaluations", {
                "run_id": run_id, "candidate_id": candidate_id, "values_hash": values_hash,
                "split": split, "example_index": example_index, "example": example,
                "output": output, "score": score, "feedback": feedback, "details": details,
                "error": error, "stdout": stdout, "seconds": seconds, "created_at": time.time(),
            })

    def add_llm_call(
        self,
        run_id: str,
        *,
        step: int,
        request_hash: str,
        occurrence: int,
        model: str | None,
        messages: list[dict[str, str]],
        options: dict[str, Any],
        answer: str,
        prompt_tokens: int,
        completion_tokens: int,
        cost_usd: float,
        cached: bool,
        seconds: float,
        role: str = "optimizer",
        alternatives: Iterable[str] = (),
    ) -> None:
        """Record one model call; `role` says who made it: one of `ROLES`; `alternatives` are
        the further answers of a call that asked for several."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        with self._write() as db:
            _insert(db, "llm_calls", {
                "run_id": run_id, "step": step, "request_hash": request_hash,
                "occurrence": occurrence, "model": model, "messages": messages,
                "options": options, "answer": answer, "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens, "cost_usd": cost_usd, "cached": cached,
                "seconds": seconds, "created_at": time.time(), "role": role,
                "alternatives": list(alternatives),
            })

    def add_decision(
        self,
        run_id: str,
        *,
        step: int,
        candidate_id: int,
        accepted: bool,
        reason: str,
        parent_score: float | None = None,
        child_score: float | None = None,
    ) -> None:
        with self._write() as db:
            _insert(db, "decisions", {
                "run_id": run_id, "step": step, "candidate_id": candidate_id,
                "accepted": accepted, "reason": reason, "parent_score": parent_score,
                "child_score": child_score, "created_at": time.time(),
            })

    def add_step_report(
        self, run_id: str, *, step: int, seq: int, candidate_id: int | None,
        report: StepReport | dict[str, Any], candidate_index: int = 0,
        shared_with: int | None = None, dot: str | None = None,
    ) -> None:
        """Record one candidate of an optimizer step: its report (a `StepReport`; a dict is
        read with `StepReport.from_dict`), which proposal of the step it is, the row that
        holds the step's prompts and spend (`shared_with`, for a later candidate) and the DOT
        text of the trace."""
        typed = report if isinstance(report, StepReport) else StepReport.from_dict(report)
        with self._write() as db:
            _insert(db, "step_reports", {
                "run_id": run_id, "step": step, "seq": seq, "candidate_id": candidate_id,
                "report": typed.to_dict(), "created_at": time.time(),
                "candidate_index": candidate_index, "shared_with": shared_with, "dot": dot,
            })

    def add_comparison(
        self,
        run_id: str,
        *,
        step: int,
        candidate_a: int,
        candidate_b: int,
        example_index: int,
        winner: str,
        reason: str,
    ) -> None:
        if winner not in ("a", "b", "tie"):
            raise ValueError(f"winner must be 'a', 'b' or 'tie', not {winner!r}")
        with self._write() as db:
            _insert(db, "comparisons", {
                "run_id": run_id, "step": step, "candidate_a": candidate_a,
                "candidate_b": candidate_b, "example_index": example_index, "winner": winner,
                "reason": reason, "created_at": time.time(),
            }, replace=False)
