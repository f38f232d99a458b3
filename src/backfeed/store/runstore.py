"""The run store: one SQLite file (WAL mode) that records training runs as they happen.

`RunStore` is made of four parts, each in its own module: writes (`writes.py`), reads
(`reads.py`), the dashboard's queries (`queries.py`) and lineage (`lineage.py`), over one
connection (`connection.py`); the schema and how rows are encoded are in `schema.py`, and the
records the reads return in `records.py`.
"""

from __future__ import annotations

from ..llm.meter import ROLES  # who made a model call: one list for the meter and the store
from .lineage import LineageQueries
from .queries import DashboardQueries
from .reads import StoreReads
from .records import (
    CandidateRecord,
    ComparisonRecord,
    DecisionRecord,
    EvaluationRecord,
    LLMCallRecord,
    RunRecord,
    StepRecord,
    StepReportRecord,
    UnknownRun,
)
from .schema import SCHEMA_VERSION, default_store_path, to_json, values_hash
from .writes import StoreWrites


class RunStore(StoreWrites, StoreReads, DashboardQueries, LineageQueries):
    """Read and write runs in one SQLite file. Safe to share between threads.

    >>> store = RunStore("/tmp/example-runs.db")   # doctest: +SKIP
    >>> [r.id for r in store.list_runs()]           # doctest: +SKIP
    """


__all__ = [
    "ROLES",
    "SCHEMA_VERSION",
    "CandidateRecord",
    "ComparisonRecord",
    "DecisionRecord",
    "EvaluationRecord",
    "LLMCallRecord",
    "RunRecord",
    "RunStore",
    "StepRecord",
    "StepReportRecord",
    "UnknownRun",
    "default_store_path",
    "to_json",
    "values_hash",
]
