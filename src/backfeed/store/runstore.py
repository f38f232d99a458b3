"""The run store: one SQLite file (WAL mode) that records training runs as they happen.

Schema (every JSON column holds text written by `json.dumps`; times are Unix seconds):

    runs         id TEXT PK, name, status ('running' | 'finished' | 'stopped' | 'failed'),
                 config JSON, created_at, updated_at, step (last finished step, -1 before the
                 first), best_score, best_candidate, spend JSON ({calls, tokens, usd, ...}),
                 stop_reason, state JSON (the trainer checkpoint used by resume)
    steps        (run_id, step) PK, parents JSON [candidate ids], candidate (child id or NULL),
                 accepted 0/1, best_score, spend JSON, started_at, finished_at
    candidates   (run_id, id) PK, step, "values" JSON {param path: value}, values_hash,
                 parents JSON [ids] (lineage), origin ('seed' | 'proposal' | 'merge' | 'edit':
                 values edited by hand, kept on resume),
                 status ('proposed' | 'accepted' | 'rejected'), val_score, val_scores JSON
                 [per validation example], created_at
    evaluations  id PK, run_id, candidate_id, values_hash, split ('train' | 'val'),
                 example_index, example (short text), output, score, feedback, details JSON,
                 error, stdout, seconds, created_at; UNIQUE (run_id, values_hash, split,
                 example_index): a candidate is never evaluated twice on one example
    llm_calls    id PK, run_id, step, request_hash, occurrence, model, messages JSON, options
                 JSON, answer, prompt_tokens, completion_tokens, cost_usd, cached 0/1, seconds,
                 created_at, role ('optimizer' | 'judge' | 'program'; stores of schema 1 gain
                 it as 'optimizer'); UNIQUE (run_id, step, request_hash, occurrence): resume
                 replays it
    decisions    (run_id, step, candidate_id) PK, accepted 0/1, reason, parent_score,
                 child_score, created_at
    step_reports (run_id, step, seq) PK, candidate_id, report JSON (`StepReport.to_dict()`:
                 prompts, answers, proposed and applied values, rejected suggestions with reasons)
    comparisons  id PK, run_id, step, candidate_a, candidate_b, example_index, winner
                 ('a' | 'b' | 'tie'), reason, created_at (pairwise mode)

Every statement names its columns, and each record is built from its dataclass's fields by
column name, so the order of columns matters nowhere.

Writers go through one `RunStore` per process (a lock serialises them); readers may open the
same file from other threads or processes at any time (`RunStore(path, readonly=True)` never
writes), and WAL lets them read while a run writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

SCHEMA_VERSION = 2
ROLES = ("optimizer", "judge", "program")
_R = TypeVar("_R")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT, status TEXT NOT NULL, config TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, step INTEGER NOT NULL DEFAULT -1,
    best_score REAL, best_candidate INTEGER, spend TEXT NOT NULL DEFAULT '{}',
    stop_reason TEXT, state TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, parents TEXT NOT NULL, candidate INTEGER,
    accepted INTEGER NOT NULL, best_score REAL, spend TEXT NOT NULL,
    started_at REAL NOT NULL, finished_at REAL NOT NULL, PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS candidates (
    run_id TEXT NOT NULL, id INTEGER NOT NULL, step INTEGER NOT NULL, "values" TEXT NOT NULL,
    values_hash TEXT NOT NULL, parents TEXT NOT NULL, origin TEXT NOT NULL, status TEXT NOT NULL,
    val_score REAL, val_scores TEXT, created_at REAL NOT NULL, PRIMARY KEY (run_id, id)
);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, candidate_id INTEGER,
    values_hash TEXT NOT NULL, split TEXT NOT NULL, example_index INTEGER NOT NULL,
    example TEXT, output TEXT, score REAL NOT NULL, feedback TEXT NOT NULL, details TEXT,
    error TEXT, stdout TEXT NOT NULL, seconds REAL NOT NULL, created_at REAL NOT NULL,
    UNIQUE (run_id, values_hash, split, example_index)
);
CREATE INDEX IF NOT EXISTS evaluations_by_candidate ON evaluations (run_id, candidate_id);
CREATE TABLE IF NOT EXISTS llm_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, step INTEGER NOT NULL,
    request_hash TEXT NOT NULL, occurrence INTEGER NOT NULL, model TEXT, messages TEXT NOT NULL,
    options TEXT NOT NULL, answer TEXT NOT NULL, prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, cached INTEGER NOT NULL,
    seconds REAL NOT NULL, created_at REAL NOT NULL, role TEXT NOT NULL DEFAULT 'optimizer',
    alternatives TEXT NOT NULL DEFAULT '[]',
    UNIQUE (run_id, step, request_hash, occurrence)
);
CREATE TABLE IF NOT EXISTS decisions (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, candidate_id INTEGER NOT NULL,
    accepted INTEGER NOT NULL, reason TEXT NOT NULL, parent_score REAL, child_score REAL,
    created_at REAL NOT NULL, PRIMARY KEY (run_id, step, candidate_id)
);
CREATE TABLE IF NOT EXISTS step_reports (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, seq INTEGER NOT NULL, candidate_id INTEGER,
    report TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (run_id, step, seq)
);
CREATE TABLE IF NOT EXISTS comparisons (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, step INTEGER NOT NULL,
    candidate_a INTEGER NOT NULL, candidate_b INTEGER NOT NULL, example_index INTEGER NOT NULL,
    winner TEXT NOT NULL, reason TEXT NOT NULL, created_at REAL NOT NULL
);
"""
# Columns added after schema 1, with their definitions: `RunStore` adds them to an older file.
_ADDED_COLUMNS = {("llm_calls", "role"): "TEXT NOT NULL DEFAULT 'optimizer'",
                  ("llm_calls", "alternatives"): "TEXT NOT NULL DEFAULT '[]'"}
# Columns stored as JSON text, and columns stored as 0/1, in every table.
_JSON_COLUMNS = frozenset({"config", "spend", "state", "parents", "values", "val_scores",
                           "details", "messages", "options", "report", "alternatives"})
_BOOL_COLUMNS = frozenset({"accepted", "cached"})


def default_store_path() -> Path:
    """`$BACKFEED_STORE`, else `$XDG_DATA_HOME/backfeed/runs.db`, else
    `~/.local/share/backfeed/runs.db` (never the current directory)."""
    if os.environ.get("BACKFEED_STORE"):
        return Path(os.environ["BACKFEED_STORE"])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "backfeed" / "runs.db"


def to_json(value: Any) -> str:
    """Canonical JSON text; values JSON cannot hold are written as their repr."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=repr)


def values_hash(values: dict[str, Any]) -> str:
    """A stable hash of a candidate's parameter values."""
    return hashlib.sha256(to_json(values).encode()).hexdigest()[:32]


def holds_step(report: dict[str, Any]) -> bool:
    """Whether a stored step-report row holds its optimizer step's own report (prompts,
    answers, spend, rejections): the first candidate's row. Later candidates' rows hold only
    their own changes (`shared_with` names the row); stores written before that copied the
    whole report to every row, so the candidate index decides for both."""
    return not report.get("candidate_index")


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _encode(column: str, value: Any) -> Any:
    if column in _JSON_COLUMNS:
        return None if value is None else to_json(value)
    if column in _BOOL_COLUMNS:
        return int(value)
    return value


def _insert(db: sqlite3.Connection, table: str, row: dict[str, Any], *, replace: bool = True
            ) -> None:
    """Insert `row` ({column: Python value}) by column name; JSON and 0/1 columns encoded."""
    names = ", ".join(f'"{column}"' for column in row)
    marks = ", ".join(f":{column}" for column in row)
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    db.execute(f"{verb} INTO {table} ({names}) VALUES ({marks})",
               {column: _encode(column, value) for column, value in row.items()})


def _record(cls: type[_R], row: sqlite3.Row) -> _R:
    """Build a record from the row's columns of the same names (a column an older store
    lacks takes the field's default)."""
    present = row.keys()
    values: dict[str, Any] = {}
    for column in fields(cls):  # type: ignore[arg-type]
        if column.name in present:
            value = row[column.name]
            if column.name in _JSON_COLUMNS:
                value = _load(value)
            elif column.name in _BOOL_COLUMNS:
                value = bool(value)
            values[column.name] = value
        elif column.default is MISSING:
            raise KeyError(f"the run store has no column {field.name!r} for {cls.__name__}")
    return cls(**values)


# -- records returned by the read API ------------------------------------------------------


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
    run_id: str
    step: int
    seq: int
    candidate_id: int | None
    report: dict[str, Any]
    created_at: float


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


# -- the store ------------------------------------------------------------------------------


class RunStore:
    """Read and write runs in one SQLite file. Safe to share between threads.

    >>> store = RunStore("/tmp/example-runs.db")   # doctest: +SKIP
    >>> [r.id for r in store.list_runs()]           # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, readonly: bool = False) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.readonly = readonly
        if self.path.is_dir():
            raise IsADirectoryError(f"run store path {self.path} is a directory; give a file path")
        self._local = threading.local()
        self._write_lock = threading.RLock()
        if readonly:  # for dashboards and the CLI: never creates or changes anything
            if not self.path.exists():
                raise FileNotFoundError(f"no run store at {self.path}")
            tables = self._db().execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if "runs" not in {row["name"] for row in tables}:
                self.close()
                raise FileNotFoundError(
                    f"{self.path} is not a backfeed run store (it has no runs table)"
                )
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._write_lock:
            self._db().executescript(_SCHEMA)  # executescript manages its own transaction
        with self._write() as db:
            for (table, column), definition in _ADDED_COLUMNS.items():
                present = {r["name"] for r in db.execute(f"PRAGMA table_info({table})")}
                if column not in present:  # a store written by an older backfeed
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    # -- connections ----------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            if self.readonly:
                db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                     timeout=30.0, isolation_level=None)
            else:
                db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")  # a killed process loses no commit in WAL
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction, serialised with every other writer of this store."""
        if self.readonly:
            raise PermissionError(f"run store {self.path} was opened read-only")
        with self._write_lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """For readers: every query inside sees one state of the store (one read transaction),
        so a page built from several queries cannot mix two steps of a run that is writing."""
        db = self._db()
        if db.in_transaction:
            yield
            return
        db.execute("BEGIN")
        try:
            yield
        finally:
            if db.in_transaction:
                db.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

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
         "stop_reason", "state"}
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
    ) -> None:
        fields: dict[str, Any] = {}
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

    def find_llm_call(
        self, run_id: str, step: int, request_hash: str, occurrence: int
    ) -> LLMCallRecord | None:
        row = self._db().execute(
            "SELECT * FROM llm_calls WHERE run_id = ? AND step = ? AND request_hash = ? "
            "AND occurrence = ?",
            (run_id, step, request_hash, occurrence),
        ).fetchone()
        return None if row is None else _record(LLMCallRecord, row)

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
        self, run_id: str, *, step: int, seq: int, candidate_id: int | None, report: dict[str, Any]
    ) -> None:
        with self._write() as db:
            _insert(db, "step_reports", {
                "run_id": run_id, "step": step, "seq": seq, "candidate_id": candidate_id,
                "report": report, "created_at": time.time(),
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
        return [_record(RunRecord, r) for r in self._db().execute(sql, args).fetchall()]

    def get_run(self, run_id: str) -> RunRecord:
        """One run; `UnknownRun` (a KeyError) names the id when it is not stored."""
        row = self._db().execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise UnknownRun(f"no run {run_id!r} in {self.path}")
        return _record(RunRecord, row)

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

    def score_points(self, run_id: str, most: int | None = None) -> list[dict[str, Any]]:
        """Scored candidates as small rows for score curves: id, step, origin, score, and the LLM
        calls and dollars spent when its step finished (no values are read).

        With `most`, SQLite keeps every candidate that raised the best score so far (so the
        best-so-far line stays exact) and an even sample of about `most / 2` others.
        """
        sample = ""
        args: list[Any] = [run_id]
        if most is not None:
            sample = (" WHERE c.before IS NULL OR c.val_score > c.before"
                      " OR (c.n - 1) % MAX(1, c.total / ?2) = 0")
            args.append(max(1, int(most) // 2))
        rows = self._db().execute(
            "SELECT c.id, c.step, c.origin, c.val_score,"
            " json_extract(s.spend, '$.calls') AS calls, json_extract(s.spend, '$.usd') AS usd"
            " FROM (SELECT id, step, origin, val_score,"
            "   MAX(val_score) OVER (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
            "   AS before, ROW_NUMBER() OVER (ORDER BY id) AS n, COUNT(*) OVER () AS total"
            "   FROM candidates WHERE run_id = ?1 AND val_score IS NOT NULL) c"
            " LEFT JOIN steps s ON s.run_id = ?1 AND s.step = c.step"
            f"{sample} ORDER BY c.id",
            args,
        ).fetchall()
        return [
            {"id": r["id"], "step": r["step"], "origin": r["origin"], "score": r["val_score"],
             "calls": r["calls"], "usd": r["usd"]}
            for r in rows
        ]

    def front_scores(self, run_id: str, eps: float = 1e-9) -> dict[int, list[float]]:
        """The per-example validation scores of the candidates that win at least one example
        (within `eps` of its top score), cut to the length every scored candidate has: the only
        candidates a Pareto front can hold, found in SQLite without reading the others."""
        rows = self._db().execute(
            "WITH scored AS (SELECT id, val_scores FROM candidates WHERE run_id = ?1"
            "   AND val_scores IS NOT NULL AND json_array_length(val_scores) > 0),"
            " width AS (SELECT MIN(json_array_length(val_scores)) AS n FROM scored),"
            " cells AS (SELECT scored.id, j.key AS i, j.value AS v"
            "   FROM scored, json_each(scored.val_scores) j, width WHERE j.key < width.n),"
            " top AS (SELECT i, MAX(v) AS best FROM cells GROUP BY i)"
            " SELECT id, val_scores, (SELECT n FROM width) AS n FROM scored WHERE id IN"
            "   (SELECT cells.id FROM cells JOIN top USING (i) WHERE v >= best - ?2)"
            " ORDER BY id",
            (run_id, eps),
        ).fetchall()
        return {r["id"]: _load(r["val_scores"])[: r["n"]] for r in rows}

    def lineage(self, run_id: str, candidate_id: int) -> list[CandidateRecord]:
        """The candidate and all its ancestors, oldest first."""
        by_id = {c.id: c for c in self.candidates(run_id)}
        if candidate_id not in by_id:
            raise KeyError(f"run {run_id!r} has no candidate {candidate_id}")
        seen: set[int] = set()
        stack = [candidate_id]
        while stack:
            i = stack.pop()
            if i in seen or i not in by_id:
                continue
            seen.add(i)
            stack.extend(by_id[i].parents)
        return [by_id[i] for i in sorted(seen)]

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
        return [_record(StepReportRecord, r) for r in rows]

    def comparisons(self, run_id: str) -> list[ComparisonRecord]:
        return [_record(ComparisonRecord, r) for r in self._select("comparisons", run_id, order="id")]

    def _select(
        self, table: str, run_id: str, *, order: str, span: tuple[int, int] | None = None,
        **filters: Any,
    ) -> list[sqlite3.Row]:
        sql = f"SELECT * FROM {table} WHERE run_id = ?"
        args: list[Any] = [run_id]
        if span is not None:
            sql += " AND step BETWEEN ? AND ?"
            args += [span[0], span[1]]
        for column, value in filters.items():
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        return self._db().execute(sql + f" ORDER BY {order}", args).fetchall()

