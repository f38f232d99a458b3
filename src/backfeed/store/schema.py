"""The run store's SQLite schema and how Python values are written to it and read back.

Schema (every JSON column holds text written by `json.dumps`; times are Unix seconds):

    runs         id TEXT PK, name, status ('running' | 'finished' | 'stopped' | 'failed'),
                 config JSON, created_at, updated_at, step (last finished step, -1 before the
                 first), best_score, best_candidate, spend JSON ({calls, tokens, usd, ...}),
                 stop_reason, state JSON (the trainer checkpoint used by resume), verdict JSON
                 (the seed and the best scored on a held-out split, with the interval of the
                 improvement; schema 4)
    steps        (run_id, step) PK, parents JSON [candidate ids], candidate (child id or NULL),
                 accepted 0/1, best_score, spend JSON, started_at, finished_at
    candidates   (run_id, id) PK, step, "values" JSON {param path: value}, values_hash,
                 parents JSON [ids] (lineage), origin ('seed' | 'proposal' | 'merge' | 'edit':
                 values edited by hand, kept on resume),
                 status ('proposed' | 'accepted' | 'rejected'), val_score, val_scores JSON
                 [per validation example], created_at, objectives JSON (costs measured on
                 validation when the run has objectives=: prompt_tokens, program_tokens,
                 latency, usd; schema 5)
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
                 prompts, answers, proposals, proposed and applied values, rejected suggestions
                 with reasons, typed problems), candidate_index (which proposal of its optimizer
                 step), shared_with (the seq of the row holding the step's prompts and spend,
                 for a later candidate; NULL on that row), dot (the trace's DOT text, on the
                 step's first row; schema 2 kept these three inside the JSON, and reading
                 takes them from there)
    comparisons  id PK, run_id, step, candidate_a, candidate_b, example_index, winner
                 ('a' | 'b' | 'tie'), reason, created_at (pairwise mode)

Every statement names its columns, and each record is built from its dataclass's fields by
column name, so the order of columns matters nowhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, TypeVar

SCHEMA_VERSION = 5
_R = TypeVar("_R")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT, status TEXT NOT NULL, config TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, step INTEGER NOT NULL DEFAULT -1,
    best_score REAL, best_candidate INTEGER, spend TEXT NOT NULL DEFAULT '{}',
    stop_reason TEXT, state TEXT, verdict TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, parents TEXT NOT NULL, candidate INTEGER,
    accepted INTEGER NOT NULL, best_score REAL, spend TEXT NOT NULL,
    started_at REAL NOT NULL, finished_at REAL NOT NULL, PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS candidates (
    run_id TEXT NOT NULL, id INTEGER NOT NULL, step INTEGER NOT NULL, "values" TEXT NOT NULL,
    values_hash TEXT NOT NULL, parents TEXT NOT NULL, origin TEXT NOT NULL, status TEXT NOT NULL,
    val_score REAL, val_scores TEXT, created_at REAL NOT NULL, objectives TEXT,
    PRIMARY KEY (run_id, id)
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
    report TEXT NOT NULL, created_at REAL NOT NULL, candidate_index INTEGER NOT NULL DEFAULT 0,
    shared_with INTEGER, dot TEXT, PRIMARY KEY (run_id, step, seq)
);
CREATE TABLE IF NOT EXISTS comparisons (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, step INTEGER NOT NULL,
    candidate_a INTEGER NOT NULL, candidate_b INTEGER NOT NULL, example_index INTEGER NOT NULL,
    winner TEXT NOT NULL, reason TEXT NOT NULL, created_at REAL NOT NULL
);
"""
# Columns added after schema 1, with their definitions: `RunStore` adds them to an older file.
_ADDED_COLUMNS = {("llm_calls", "role"): "TEXT NOT NULL DEFAULT 'optimizer'",
                  ("llm_calls", "alternatives"): "TEXT NOT NULL DEFAULT '[]'",
                  ("step_reports", "candidate_index"): "INTEGER NOT NULL DEFAULT 0",
                  ("step_reports", "shared_with"): "INTEGER",
                  ("step_reports", "dot"): "TEXT",
                  ("runs", "verdict"): "TEXT",
                  ("candidates", "objectives"): "TEXT"}
# Columns stored as JSON text, and columns stored as 0/1, in every table.
_JSON_COLUMNS = frozenset({"config", "spend", "state", "verdict", "objectives", "parents", "values",
                           "val_scores",
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
            raise KeyError(f"the run store has no column {column.name!r} for {cls.__name__}")
    return cls(**values)
