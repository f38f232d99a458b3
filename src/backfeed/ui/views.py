"""Read-only views of the run store for the dashboard and the CLI: plain JSON-ready dicts.

Reads the store's SQLite tables directly through a `query_only` connection, so a reader never
takes the writer's lock and never creates or migrates a store (the schema is documented in
`backfeed.store.runstore`).
"""

from __future__ import annotations

import difflib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from .graphsvg import trace_text_to_dot

MAX_FEEDBACK = 50  # feedback rows shown for one step


class NotFound(KeyError):
    """A run or step that is not in the store; the message names it."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class StoreMissing(FileNotFoundError):
    """There is no run store at the given path."""


def default_store_path() -> Path:
    """Where runs are stored unless told otherwise: $BACKFEED_STORE, else the store's default."""
    if os.environ.get("BACKFEED_STORE"):
        return Path(os.environ["BACKFEED_STORE"])
    from ..store import default_store_path as store_default

    return store_default()


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


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class RunReader:
    """A short-lived read-only view of one store file; use as a context manager."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreMissing(
                f"no run store at {self.path} (train something first, or pass --store PATH)"
            )
        self.db = sqlite3.connect(self.path, timeout=30.0)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA query_only = 1")
        self.db.execute("PRAGMA busy_timeout = 30000")
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "runs" not in tables:
            self.db.close()
            raise StoreMissing(f"{self.path} is not a backfeed run store (it has no runs table)")
        self.tables = tables

    def __enter__(self) -> RunReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def _rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return self.db.execute(sql, args).fetchall()

    def _table_rows(self, table: str, run_id: str, order: str, **where: Any) -> list[sqlite3.Row]:
        if table not in self.tables:
            return []
        sql = f"SELECT * FROM {table} WHERE run_id = ?"
        args: list[Any] = [run_id]
        for column, value in where.items():
            sql += f" AND {column} = ?"
            args.append(value)
        return self._rows(sql + f" ORDER BY {order}", *args)

    # -- runs -----------------------------------------------------------------------------
    def run_ids(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT id FROM runs ORDER BY created_at DESC, id DESC")]

    def resolve(self, ref: str) -> str:
        """A run id from an id, a unique prefix of one, a run name, or `latest`."""
        ids = self.run_ids()
        if ref in ids:
            return ref
        if ref in ("latest", "last") and ids:
            return ids[0]
        named = [r[0] for r in self._rows("SELECT id FROM runs WHERE name = ? ORDER BY created_at DESC", ref)]
        if len(named) == 1:
            return named[0]
        matches = [i for i in ids if i.startswith(ref)] or named
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise NotFound(f"run {ref!r} is ambiguous: it matches {', '.join(matches[:5])}")
        raise NotFound(f"no run {ref!r} in {self.path} (see `backfeed runs`)")

    def _summary(self, r: sqlite3.Row) -> dict[str, Any]:
        spend = _load(r["spend"]) or {}
        config = _load(r["config"]) or {}
        end = r["updated_at"] if r["status"] != "running" else max(r["updated_at"], time.time())
        return {
            "id": r["id"],
            "name": r["name"],
            "status": r["status"],
            "strategy": strategy_name(config),
            "best_score": r["best_score"],
            "best_candidate": r["best_candidate"],
            "steps": r["step"] + 1,
            "llm_calls": spend.get("calls", spend.get("llm_calls")),
            "tokens": spend.get("tokens"),
            "usd": spend.get("usd"),
            "started_at": r["created_at"],
            "updated_at": r["updated_at"],
            "duration_s": end - r["created_at"],
            "stop_reason": r["stop_reason"],
        }

    def runs(self) -> list[dict[str, Any]]:
        """Every run, newest first, as summary dicts."""
        rows = self._rows("SELECT * FROM runs ORDER BY created_at DESC, id DESC")
        return [self._summary(r) for r in rows]

    def _run_row(self, run_id: str) -> sqlite3.Row:
        rows = self._rows("SELECT * FROM runs WHERE id = ?", run_id)
        if not rows:
            raise NotFound(f"no run {run_id!r} in {self.path}")
        return rows[0]

    def candidates(self, run_id: str) -> list[dict[str, Any]]:
        return [
            {
                "id": r["id"],
                "step": r["step"],
                "values": _load(r["values"]),
                "parents": _load(r["parents"]) or [],
                "origin": r["origin"],
                "status": r["status"],
                "score": r["val_score"],
                "scores": _load(r["val_scores"]),
            }
            for r in self._table_rows("candidates", run_id, "id")
        ]

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        return [
            {
                "step": r["step"],
                "parents": _load(r["parents"]) or [],
                "candidate": r["candidate"],
                "accepted": bool(r["accepted"]),
                "best_score": r["best_score"],
                "spend": _load(r["spend"]) or {},
                "started_at": r["started_at"],
                "finished_at": r["finished_at"],
            }
            for r in self._table_rows("steps", run_id, "step")
        ]

    def reports(self, run_id: str, step: int | None = None) -> list[dict[str, Any]]:
        where = {} if step is None else {"step": step}
        return [
            {"step": r["step"], "seq": r["seq"], "candidate": r["candidate_id"], **_load(r["report"])}
            for r in self._table_rows("step_reports", run_id, "step, seq", **where)
        ]

    def decisions(self, run_id: str, step: int | None = None) -> list[dict[str, Any]]:
        where = {} if step is None else {"step": step}
        return [
            {
                "step": r["step"],
                "candidate": r["candidate_id"],
                "accepted": bool(r["accepted"]),
                "reason": r["reason"],
                "parent_score": r["parent_score"],
                "child_score": r["child_score"],
            }
            for r in self._table_rows("decisions", run_id, "step, candidate_id", **where)
        ]

    def run_detail(self, ref: str) -> dict[str, Any]:
        """Everything the run page shows: summary, steps, candidates, score points, Pareto wins."""
        run_id = self.resolve(ref)
        row = self._run_row(run_id)
        run = self._summary(row)
        run["config"] = _load(row["config"]) or {}
        candidates = self.candidates(run_id)
        by_id = {c["id"]: c for c in candidates}
        best = by_id.get(run["best_candidate"])
        run["best_params"] = {k: value_text(v) for k, v in (best["values"] if best else {}).items()}
        steps = self.steps(run_id)
        reports: dict[int, list[dict[str, Any]]] = {}
        for rep in self.reports(run_id):
            reports.setdefault(rep["step"], []).append(rep)
        decided = {(d["step"], d["candidate"]): d for d in self.decisions(run_id)}
        step_rows = []
        for s in steps:
            reps = reports.get(s["step"], [])
            applied = [u["name"] for rep in reps for u in rep.get("updates", []) if u.get("applied")]
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
                    "rejected": sum(len(rep.get("rejected", [])) for rep in reps),
                    "llm_calls": s["spend"].get("calls"),
                    "usd": s["spend"].get("usd"),
                    "summary": ("changed " + ", ".join(dict.fromkeys(applied))) if applied else "",
                    "reason": (decided.get((s["step"], s["candidate"])) or {}).get("reason"),
                }
            )
        # One point per scored candidate, placed at the spend when its step finished.
        spend_at = {s["step"]: s["spend"] for s in steps}
        evaluations = []
        for c in candidates:
            if c["score"] is None:
                continue
            spend = spend_at.get(c["step"], {}) if c["origin"] != "seed" else {}
            evaluations.append(
                {
                    "label": f"candidate {c['id']}",
                    "candidate": c["id"],
                    "score": c["score"],
                    "llm_calls": spend.get("calls", 0),
                    "usd": spend.get("usd", 0.0),
                }
            )
        strategy = (run["strategy"] or "").lower()
        return {
            "run": run,
            "steps": step_rows,
            "candidates": [{k: v for k, v in c.items() if k != "values"} for c in candidates],
            "evaluations": evaluations,
            "pareto": pareto_wins(candidates) if "pareto" in strategy else None,
        }

    # -- one step -------------------------------------------------------------------------
    def step_detail(self, ref: str, step: int) -> dict[str, Any]:
        """Everything the step page shows; values stay raw, the page escapes them."""
        run_id = self.resolve(ref)
        row = self._run_row(run_id)
        steps = self.steps(run_id)
        numbers = [s["step"] for s in steps]
        reports = self.reports(run_id, step)
        current = next((s for s in steps if s["step"] == step), None)
        if current is None and not reports:
            raise NotFound(f"run {run_id!r} has no step {step} (steps: {_ranges(numbers)})")
        updates, rejected, prompts, answers = [], [], [], []
        reasoning, errors = [], []
        tokens, usd = 0, 0.0
        for rep in reports:
            for u in rep.get("updates", []):
                target = u.get("new") if u.get("applied") else u.get("proposed")
                updates.append(
                    {
                        **u,
                        **_texts(u),
                        "candidate": rep["candidate"],
                        "diff": text_diff(
                            u.get("old"),
                            target,
                            old_label=f"{u['name']} before",
                            new_label=f"{u['name']} {'applied' if u.get('applied') else 'proposed'}",
                        )
                        if (u.get("applied") or u.get("proposed") is not None)
                        else [],
                    }
                )
            rejected += [{**r, **_texts(r), "candidate": rep["candidate"]} for r in rep.get("rejected", [])]
            prompts += rep.get("prompts", [])
            answers += rep.get("answers", [])
            if rep.get("reasoning"):
                reasoning.append(rep["reasoning"])
            if rep.get("error"):
                errors.append(rep["error"])
            tokens += (rep.get("prompt_tokens") or 0) + (rep.get("completion_tokens") or 0)
            usd += rep.get("cost_usd") or 0.0
        if not prompts:  # no report kept the prompt: show the LLM calls recorded in this step
            for call in self._table_rows("llm_calls", run_id, "id", step=step):
                prompts.append(_load(call["messages"]))
                answers.append(call["answer"])
                tokens += call["prompt_tokens"] + call["completion_tokens"]
                usd += call["cost_usd"]
        candidates = {c["id"]: c for c in self.candidates(run_id)}
        candidate = current["candidate"] if current else (reports[0]["candidate"] if reports else None)
        parents = current["parents"] if current else []
        idx = numbers.index(step) if step in numbers else None
        return {
            "run_id": run_id,
            "run_name": row["name"],
            "run_status": row["status"],
            "step": step,
            "candidate": candidate,
            "parents": parents,
            "accepted": current["accepted"] if current else None,
            "score": candidates[candidate]["score"] if candidate in candidates else None,
            "feedback": self._feedback(run_id, parents, current),
            "decisions": self.decisions(run_id, step),
            "updates": updates,
            "rejected": rejected,
            "prompts": prompts,
            "answers": answers,
            "reasoning": "\n\n".join(reasoning),
            "error": "; ".join(errors) or None,
            "tokens": tokens,
            "usd": usd,
            "has_graph": self._dot(reports, prompts) is not None,
            "prev_step": numbers[idx - 1] if idx else None,
            "next_step": numbers[idx + 1] if idx is not None and idx + 1 < len(numbers) else None,
        }

    def _feedback(self, run_id: str, parents: list[int], current: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The training feedback on the parent candidates, as written during this step if any."""
        rows: list[sqlite3.Row] = []
        for parent in parents:
            rows += self._table_rows("evaluations", run_id, "id", candidate_id=parent, split="train")
        if current is not None:
            during = [r for r in rows if current["started_at"] <= r["created_at"] <= current["finished_at"]]
            rows = during or rows
        return [
            {
                "candidate": r["candidate_id"],
                "example": r["example_index"],
                "input": r["example"],
                "output": r["output"],
                "score": r["score"],
                "text": r["feedback"],
                "error": r["error"],
            }
            for r in sorted(rows[-MAX_FEEDBACK:], key=lambda r: (r["example_index"], r["candidate_id"]))
        ]

    @staticmethod
    def _dot(reports: list[dict[str, Any]], prompts: list[list[dict[str, Any]]]) -> str | None:
        for rep in reports:
            for key in ("dot", "trace_dot"):
                if isinstance(rep.get(key), str) and rep[key].strip():
                    return rep[key]
        for prompt in prompts:  # the trace the optimizer read, as bf.render wrote it
            for message in prompt:
                dot = trace_text_to_dot(str(message.get("content", "")))
                if dot is not None:
                    return dot
        return None

    def step_dot(self, ref: str, step: int) -> str:
        """DOT text of the step's trace graph (recorded DOT, else parsed from the prompt)."""
        detail = self.step_detail(ref, step)
        dot = self._dot(self.reports(detail["run_id"], step), detail["prompts"])
        if dot is None:
            raise NotFound(f"step {step} of run {detail['run_id']!r} has no trace graph")
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
            best = self._run_row(run_id)["best_candidate"]
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
        row = dict(self._run_row(run_id))
        for key in ("config", "spend", "state"):
            row[key] = _load(row.get(key))
        out: dict[str, Any] = {"format": "backfeed-run/1", "run": row}
        for table in ("steps", "candidates", "evaluations", "llm_calls", "decisions", "step_reports", "comparisons"):
            rows = []
            for r in self._table_rows(table, run_id, "rowid"):
                d = dict(r)
                for key in ("parents", "values", "val_scores", "spend", "details", "messages", "options", "report"):
                    if key in d and isinstance(d[key], str):
                        d[key] = _load(d[key])
                rows.append(d)
            out[table] = rows
        return out


def _texts(update: dict[str, Any]) -> dict[str, str | None]:
    """Display text of an update's values, written the same way as its diff."""
    return {
        f"{key}_text": None if update.get(key) is None else value_text(update[key])
        for key in ("old", "proposed", "new")
    }


def pareto_wins(candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """For each validation example, the candidates holding the best score on it (ties share)."""
    scored = [c for c in candidates if c.get("scores")]
    if not scored:
        return None
    n = max(len(c["scores"]) for c in scored)
    wins: dict[str, list[int]] = {str(c["id"]): [] for c in scored}
    for i in range(n):
        values = [(c["scores"][i], c) for c in scored if i < len(c["scores"]) and c["scores"][i] is not None]
        if not values:
            continue
        top = max(v for v, _ in values)
        for v, c in values:
            if v == top:
                wins[str(c["id"])].append(i)
    return {"examples": list(range(n)), "wins": {k: v for k, v in wins.items() if v}}


def _ranges(numbers: list[int]) -> str:
    if not numbers:
        return "none yet"
    return f"{numbers[0]}..{numbers[-1]}" if numbers == list(range(numbers[0], numbers[-1] + 1)) else ", ".join(map(str, numbers))
