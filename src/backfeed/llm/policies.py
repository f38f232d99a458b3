"""`with_policies`: the standard stack of cache, retries and limits around a raw backend."""

from __future__ import annotations

import os
from typing import Any

from .base import LLM
from .cache import Cached, ResponseCache, cache_enabled_by_default
from .limits import Limited, Limiter
from .retry import Retrying

CacheSetting = bool | str | os.PathLike[str] | ResponseCache | None


def with_policies(
    llm: LLM,
    *,
    cache: CacheSetting = True,
    max_retries: int = 4,
    timeout: float | None = None,
    limiter: Limiter | None = None,
    max_in_flight: int | None = None,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
    **retry_options: Any,
) -> LLM:
    """Wrap `llm` as Cached(Retrying(Limited(llm))), leaving out the layers not asked for.

    cache: True for the shared default cache (unless $BACKFEED_LLM_CACHE=off), False or None
    for none, or a path / `ResponseCache`. The limiter sits inside the retries, so every
    attempt counts against the limits and a backoff wait does not hold a slot.
    """
    wrapped: LLM = llm
    if limiter is not None or any(
        v is not None for v in (max_in_flight, requests_per_minute, tokens_per_minute)
    ):
        wrapped = Limited(
            wrapped, limiter, max_in_flight=max_in_flight,
            requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute,
        )
    if max_retries > 0 or timeout is not None:
        wrapped = Retrying(wrapped, max_retries=max_retries, timeout=timeout, **retry_options)
    if cache is True and cache_enabled_by_default():
        wrapped = Cached(wrapped)
    elif cache not in (True, False, None):
        wrapped = Cached(wrapped, cache)  # type: ignore[arg-type]
    return wrapped
