"""The run store's connection: one SQLite file in WAL mode, one writer lock, readers anywhere.

Writers go through one store per process (a lock serialises them); readers may open the
same file from other threads or processes at any time (`readonly=True` never writes), and
WAL lets them read while a run writes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .schema import _ADDED_COLUMNS, _SCHEMA, SCHEMA_VERSION, default_store_path


class StoreBase:
    """The connection every part of `RunStore` shares (writes, reads, queries, lineage)."""

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
