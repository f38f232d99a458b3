"""Limits on requests in flight and on requests and tokens per minute, shared by threads and tasks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .._tokens import estimate_tokens
from .base import LLM, Completion, Message
from .wrap import Wrapper

WINDOW_S = 60.0
_ASYNC_POLL_S = 0.005


class _Ticket:
    __slots__ = ("entry",)

    def __init__(self, entry: list[float]) -> None:
        self.entry = entry  # [start time, tokens] in the limiter's window


class Limiter:
    """Admit a request only while fewer than `max_in_flight` run and the last minute holds fewer
    than `requests_per_minute` requests and `tokens_per_minute` tokens. `None` means no limit.

    One limiter can be shared by several backends, threads and asyncio tasks. A request's
    tokens are estimated from its messages and max_tokens, then corrected with its usage.
    """

    def __init__(
        self,
        max_in_flight: int | None = None,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        *,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("max_in_flight", max_in_flight),
                            ("requests_per_minute", requests_per_minute),
                            ("tokens_per_minute", tokens_per_minute)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 or None, got {value}")
        self.max_in_flight = max_in_flight
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.window_s = window_s
        self.clock = clock
        self.in_flight = 0
        self.peak_in_flight = 0
        self._window: deque[list[float]] = deque()
        self._cond = threading.Condition()

    def _wait_needed(self, tokens: int) -> float:
        """0 when a request of `tokens` may start now, else seconds until it might. Holds _cond."""
        now = self.clock()
        while self._window and now - self._window[0][0] >= self.window_s:
            self._window.popleft()
        if self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
            return 1.0  # woken by a release long before this
        until_oldest_leaves = (
            self.window_s - (now - self._window[0][0]) if self._window else 0.0
        )
        if self.requests_per_minute is not None and len(self._window) >= self.requests_per_minute:
            return max(until_oldest_leaves, 0.001)
        if self.tokens_per_minute is not None and self._window:
            used = sum(entry[1] for entry in self._window)
            if used + tokens > self.tokens_per_minute:
                return max(until_oldest_leaves, 0.001)
        return 0.0

    def _admit(self, tokens: int) -> _Ticket:
        entry = [self.clock(), float(tokens)]
        self._window.append(entry)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return _Ticket(entry)

    def acquire(self, tokens: int = 0) -> _Ticket:
        """Block this thread until a request of ~`tokens` tokens may start."""
        with self._cond:
            while (wait := self._wait_needed(tokens)) > 0:
                self._cond.wait(wait)
            return self._admit(tokens)

    async def acquire_async(self, tokens: int = 0) -> _Ticket:
        """Wait, without blocking the event loop, until a request may start."""
        while True:
            with self._cond:
                wait = self._wait_needed(tokens)
                if wait == 0:
                    return self._admit(tokens)
            await asyncio.sleep(min(wait, _ASYNC_POLL_S))

    def release(self, ticket: _Ticket, used_tokens: int | None = None) -> None:
        """Mark a request finished; `used_tokens` replaces its estimate in the window."""
        with self._cond:
            self.in_flight -= 1
            if used_tokens is not None:
                ticket.entry[1] = float(used_tokens)
            self._cond.notify_all()


def _estimate(messages: list[Message], max_tokens: int | None) -> int:
    return sum(estimate_tokens(m.get("content", "")) for m in messages) + (max_tokens or 0)


class Limited(Wrapper):
    """Run calls to `llm` under a `Limiter` (given, or made from the keyword limits)."""

    def __init__(
        self,
        llm: LLM,
        limiter: Limiter | None = None,
        *,
        max_in_flight: int | None = None,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
    ) -> None:
        super().__init__(llm)
        self.limiter = limiter or Limiter(max_in_flight, requests_per_minute, tokens_per_minute)

    def call(self, messages: list[Message], options: dict[str, Any]) -> Completion:
        ticket = self.limiter.acquire(_estimate(messages, options["max_tokens"]))
        used = None
        try:
            completion = self.llm.complete(messages, **options)
            used = completion.usage.total_tokens
            return completion
        finally:
            self.limiter.release(ticket, used)

    async def acall(self, messages: list[Message], options: dict[str, Any]) -> Completion:
        ticket = await self.limiter.acquire_async(_estimate(messages, options["max_tokens"]))
        used = None
        try:
            completion = await self.llm.acomplete(messages, **options)
            used = completion.usage.total_tokens
            return completion
        finally:
            self.limiter.release(ticket, used)
