"""Retries with exponential backoff and jitter, honouring Retry-After, and a per-call timeout."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from .base import LLM, Completion, LLMError, Message
from .errors import LLMTimeout, TransientError, classify
from .wrap import Wrapper

log = logging.getLogger("backfeed.llm")


class Retrying(Wrapper):
    """Repeat a call that failed with a rate limit, timeout or 5xx, waiting longer each time.

    The wait before retry n (0-based) is `base_delay * 2**n`, capped at `max_delay`, times a
    random factor in [0.5, 1] (jitter); when the server sent Retry-After, the wait is at least
    that (capped at `max_retry_after`). `timeout` bounds each attempt in seconds; an attempt
    that timed out is still waited for during the backoff (at least one more `timeout`), and
    its late answer is used rather than paying for the same request again. Other errors are
    raised at once.
    """

    def __init__(
        self,
        llm: LLM,
        *,
        max_retries: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        max_retry_after: float = 120.0,
        timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(llm)
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout}")
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_retry_after = max_retry_after
        self.timeout = timeout
        self.sleep = sleep
        self.waits: list[float] = []  # every wait taken, for inspection and tests

    def delay(self, attempt: int, error: TransientError) -> float:
        """Seconds to wait before retry number `attempt` (0-based) after `error`."""
        backoff = min(self.max_delay, self.base_delay * 2**attempt) * (0.5 + random.random() / 2)
        if error.retry_after is not None:
            return max(backoff, min(error.retry_after, self.max_retry_after))
        return backoff

    def _failed(self, attempt: int, exc: BaseException) -> float:
        """Raise if `exc` is final or retries are spent; else return the wait before the next."""
        error = classify(exc)
        if not isinstance(error, TransientError):
            raise exc
        if attempt >= self.max_retries:
            raise LLMError(
                f"{self.model or 'LLM'} call failed after {attempt + 1} attempt(s): {error}"
            ) from exc
        wait = self.delay(attempt, error)
        log.warning("LLM call failed (%s); retry %d in %.2fs", error, attempt + 1, wait)
        self.waits.append(wait)
        return wait

    def _attempt(self, messages: list[Message], options: dict[str, Any]) -> Completion:
        if self.timeout is None:
            return self.llm.complete(messages, **options)
        # Run the attempt in a helper thread so a hung backend cannot hold the caller past
        # the timeout; a late answer is discarded.
        box: dict[str, Any] = {}
        context = contextvars.copy_context()

        def target() -> None:
            try:
                box["value"] = context.run(self.llm.complete, messages, **options)
            except BaseException as exc:
                box["error"] = exc

        worker = threading.Thread(target=target, name="backfeed-llm-call", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            late = LLMTimeout(f"no answer within {self.timeout}s")
            late.pending = (worker, box)  # type: ignore[attr-defined]
            raise late
        if "error" in box:
            raise box["error"]
        return box["value"]

    def call(self, messages: list[Message], options: dict[str, Any]) -> Completion:
        attempt = 0
        while True:
            try:
                return self._attempt(messages, options)
            except Exception as exc:
                wait = self._failed(attempt, exc)
                pending = getattr(exc, "pending", None)
                if pending is None:
                    self.sleep(wait)
                else:  # a timed-out attempt may still answer, and it is paid for: wait for it
                    worker, box = pending  # through the backoff (one more timeout at least)
                    worker.join(max(wait, self.timeout or 0.0))
                    if "value" in box:
                        log.warning("the timed-out attempt answered late; its answer is used")
                        return box["value"]
            attempt += 1

    async def acall(self, messages: list[Message], options: dict[str, Any]) -> Completion:
        attempt = 0
        while True:
            try:
                call = self.llm.acomplete(messages, **options)
                if self.timeout is None:
                    return await call
                try:
                    return await asyncio.wait_for(call, self.timeout)
                except TimeoutError as exc:
                    raise LLMTimeout(f"no answer within {self.timeout}s") from exc
            except Exception as exc:
                wait = self._failed(attempt, exc)
            await asyncio.sleep(wait)
            attempt += 1
