"""Response cache in SQLite (WAL): identical requests are answered once, then from disk."""

from __future__ import annotations

import contextvars
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._keys import identity_of, request_key, request_record
from .base import LLM, Completion, Message, Usage
from .wrap import Wrapper

if TYPE_CHECKING:
    import sqlite3

_bypass: contextvars.ContextVar[bool] = contextvars.ContextVar("backfeed_no_cache", default=False)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    created REAL NOT NULL,
    used REAL NOT NULL DEFAULT 0
)
"""
# What one row costs on disk, roughly: its text, key and model, plus the numbers and overhead.
_ROW_BYTES = "length(CAST(text AS BLOB)) + length(key) + length(model) + 64"
DEFAULT_MAX_MB = 1024.0
_CHECK_EVERY = 64  # puts between two exact size checks (other processes write too)
_TOUCH_AFTER_S = 60.0  # a hit refreshes an answer's recency at most once a minute


def _max_mb_from_env() -> float | None:
    """$BACKFEED_LLM_CACHE_MAX_MB: the cache's size limit in MiB; 0 or "none" for no limit."""
    raw = os.environ.get("BACKFEED_LLM_CACHE_MAX_MB", "").strip().lower()
    if not raw:
        return DEFAULT_MAX_MB
    if raw in ("0", "none", "off", "unlimited"):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"BACKFEED_LLM_CACHE_MAX_MB={raw!r}: expected a number of MiB, or 0/none for no limit"
        ) from None
    if value < 0:
        raise ValueError(f"BACKFEED_LLM_CACHE_MAX_MB={raw!r}: a size cannot be negative")
    return value


def cache_dir() -> Path:
    """backfeed's cache directory: $XDG_CACHE_HOME/backfeed, else ~/.cache/backfeed."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "backfeed"


def default_cache_path() -> Path:
    """Where the response cache lives unless told otherwise ($BACKFEED_LLM_CACHE overrides)."""
    override = os.environ.get("BACKFEED_LLM_CACHE")
    if override and override.lower() not in ("0", "off", "false", "no"):
        return Path(override)
    return cache_dir() / "llm-cache.sqlite"


def cache_enabled_by_default() -> bool:
    """False when $BACKFEED_LLM_CACHE is 0/off/false/no: the global off switch."""
    return os.environ.get("BACKFEED_LLM_CACHE", "").lower() not in ("0", "off", "false", "no")


@contextmanager
def no_cache() -> Iterator[None]:
    """Within this block (this thread or asyncio task), calls skip the response cache entirely.

    >>> with no_cache():
    ...     pass  # llm.complete(...) here reaches the backend and stores nothing
    """
    token = _bypass.set(True)
    try:
        yield
    finally:
        _bypass.reset(token)


def is_cacheable(temperature: float | None, seed: int | None) -> bool:
    """A sampled answer (temperature > 0 with no seed) is meant to vary, so it is not cached."""
    return not (temperature is not None and temperature > 0 and seed is None)


_UNSET: Any = object()


class ResponseCache:
    """A SQLite table of answers keyed by request hash; safe across threads and processes.

    Bounded: past `max_mb` MiB (default 1 GiB, or $BACKFEED_LLM_CACHE_MAX_MB; None for no limit)
    the least recently used answers are evicted down to 80% of the limit.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None,
                 max_mb: float | None = _UNSET) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if max_mb is _UNSET:
            max_mb = _max_mb_from_env()
        self.max_bytes = None if max_mb is None else int(max_mb * 2**20)
        import sqlite3  # imported here: `import backfeed` stays light

        self._lock = threading.Lock()
        self._db: sqlite3.Connection = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
            if "used" not in columns:  # a cache written by an earlier backfeed
                self._db.execute("ALTER TABLE responses ADD COLUMN used REAL NOT NULL DEFAULT 0")
                self._db.execute("UPDATE responses SET used = created")
            self._db.execute("CREATE INDEX IF NOT EXISTS responses_used ON responses(used)")
            self._db.commit()
        self._puts = 0
        if self.max_bytes is not None:
            self.evict()

    def __getstate__(self) -> dict[str, Any]:  # shipped to another process: it reopens the file
        return {"path": self.path, "max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        max_bytes = state["max_bytes"]
        self.__init__(state["path"], None if max_bytes is None else max_bytes / 2**20)

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute(
                "SELECT model, text, prompt_tokens, completion_tokens, used FROM responses "
                "WHERE key = ?",
                (key,),
            ).fetchone()
            now = time.time()
            # Recency decides eviction; to the minute is enough, so a hot key is not a write per hit.
            if row is not None and self.max_bytes is not None and now - row[4] > _TOUCH_AFTER_S:
                self._db.execute("UPDATE responses SET used = ? WHERE key = ?", (now, key))
                self._db.commit()
        if row is None:
            return None
        model, text, prompt_tokens, completion_tokens, _ = row
        return Completion(text, Usage(prompt_tokens, completion_tokens), 0.0, model, cached=True)

    def put(self, key: str, completion: Completion) -> None:
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    completion.model,
                    completion.text,
                    completion.usage.prompt_tokens,
                    completion.usage.completion_tokens,
                    completion.cost_usd,
                    now,
                    now,
                ),
            )
            self._db.commit()
            self._puts += 1
            check = self.max_bytes is not None and self._puts % _CHECK_EVERY == 0
        if check:
            self.evict()

    def size_bytes(self) -> int:
        """About how many bytes the stored answers take (text, key and model of each row)."""
        with self._lock:
            return self._size()

    def _size(self) -> int:
        return self._db.execute(f"SELECT COALESCE(SUM({_ROW_BYTES}), 0) FROM responses").fetchone()[0]

    def evict(self, max_bytes: int | None = None) -> int:
        """Delete the least recently used answers until the cache is within 80% of its limit
        (or of `max_bytes`); returns how many were deleted."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        if limit is None:
            return 0
        with self._lock:
            total = self._size()
            if total <= limit:
                return 0
            excess = total - int(limit * 0.8)
            doomed: list[tuple[str]] = []
            for key, size in self._db.execute(f"SELECT key, {_ROW_BYTES} FROM responses ORDER BY used"):
                if excess <= 0:
                    break
                doomed.append((key,))
                excess -= size
            self._db.executemany("DELETE FROM responses WHERE key = ?", doomed)
            self._db.commit()
        return len(doomed)

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM responses")
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


_shared: dict[Path, ResponseCache] = {}
_shared_lock = threading.Lock()


def shared_cache(path: str | os.PathLike[str] | None = None) -> ResponseCache:
    """One `ResponseCache` per path per process, so backends share a connection."""
    resolved = (Path(path) if path is not None else default_cache_path()).expanduser().resolve()
    with _shared_lock:
        if resolved not in _shared:
            _shared[resolved] = ResponseCache(resolved)
        return _shared[resolved]


class Cached(Wrapper):
    """Answer a request seen before from the cache: `cached=True`, cost 0, backend not reached.

    The key covers the backend's identity (model and answer-changing options, never
    credentials), the messages, json_schema, max_tokens, temperature and seed. Sampled calls
    (temperature > 0, no seed) and calls inside `no_cache()` bypass it.
    """

    def __init__(self, llm: LLM, cache: ResponseCache | str | os.PathLike[str] | None = None) -> None:
        super().__init__(llm)
        self.cache = cache if isinstance(cache, ResponseCache) else shared_cache(cache)

    def _key(self, messages: list[Message], options: dict[str, Any]) -> str | None:
        if _bypass.get() or not is_cacheable(options["temperature"], options["seed"]) \
                or options.get("n", 1) != 1:  # several answers are asked for to differ
            return None
        return request_key(request_record(identity_of(self.llm), messages, **options))

    def _store(self, key: str | None, completion: Completion) -> Completion:
        if key is not None and not completion.cached:
            self.cache.put(key, completion)
        return completion

    def call(self, messages: list[Message], options: dict[str, Any]) -> Completion:
        key = self._key(messages, options)
        hit = self.cache.get(key) if key is not None else None
        if hit is not None:
            return hit
        return self._store(key, self.llm.complete(messages, **options))

    async def acall(self, messages: list[Message], options: dict[str, Any]) -> Completion:
        key = self._key(messages, options)
        hit = self.cache.get(key) if key is not None else None
        if hit is not None:
            return hit
        return self._store(key, await self.llm.acomplete(messages, **options))
