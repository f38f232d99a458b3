"""Usage and cost accounting around any backend, with `Budget` limits checked before each call."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .._tokens import estimate_tokens
from ..budget import Budget, BudgetExceeded
from .base import LLM, Completion, Message
from .wrap import Wrapper

ROLES = ("optimizer", "judge", "program")  # who made a call: the optimizer, a judge, the program


@dataclass
class Tally:
    """Calls, tokens and dollars of one kind of call."""

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def count(self, prompt_tokens: int, completion_tokens: int, usd: float, cached: bool) -> None:
        """Add one call; a cached answer is a call of no tokens and no cost."""
        self.calls += 1
        if cached:
            self.cached_calls += 1
            return
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.usd += usd

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "cached_calls": self.cached_calls,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "usd": self.usd, "tokens": self.tokens}


@dataclass
class Spend(Tally):
    """What calls have used so far, in total and per role (see `ROLES`). Thread-safe.

    The one place spend is built: `Metered` adds each call as it is paid, and a resumed run
    rebuilds it from the stored calls with `from_calls`.
    """

    by_role: dict[str, Tally] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, completion: Completion, role: str = "optimizer") -> None:
        """Count one answered call made in `role`."""
        self.add_call(completion.usage.prompt_tokens, completion.usage.completion_tokens,
                      completion.cost_usd, completion.cached, role)

    def add_call(self, prompt_tokens: int, completion_tokens: int, usd: float, cached: bool,
                 role: str = "optimizer") -> None:
        if role not in ROLES:
            raise ValueError(f"unknown spend role {role!r}; one of {ROLES}")
        with self._lock:
            self.count(prompt_tokens, completion_tokens, usd, cached)
            self.by_role.setdefault(role, Tally()).count(prompt_tokens, completion_tokens, usd,
                                                         cached)

    @classmethod
    def from_calls(cls, calls: Any) -> Spend:
        """The spend of stored calls (records with tokens, cost, `cached` and `role`)."""
        spend = cls()
        for c in calls:
            spend.add_call(c.prompt_tokens, c.completion_tokens, c.cost_usd, c.cached,
                           getattr(c, "role", "optimizer"))
        return spend

    def to_dict(self) -> dict[str, Any]:
        """The totals (`llm_calls`, the name `Budget` uses, is `calls` again) and `by_role`."""
        with self._lock:
            totals = super().to_dict()
            return {**totals, "llm_calls": totals["calls"],
                    "by_role": {r: t.to_dict() for r, t in sorted(self.by_role.items())}}


class Metered(Wrapper):
    """Count calls, tokens and dollars; raise `BudgetExceeded` instead of a call past the budget.

    The check happens before the call, with the prompt's estimated tokens (plus `max_tokens`
    when given) and, for dollars, the average cost of a paid call so far. Cached answers are
    counted as calls of no tokens and no cost. Several `Metered` wrappers may share one `Spend`
    (and so one budget); each counts its calls under its `role`.
    """

    def __init__(self, llm: LLM, budget: Budget | None = None, spend: Spend | None = None,
                 *, role: str = "optimizer") -> None:
        super().__init__(llm)
        if role not in ROLES:
            raise ValueError(f"unknown spend role {role!r}; one of {ROLES}")
        self.budget = budget or Budget()
        self.spend = spend if spend is not None else Spend()
        self.role = role
        self._lock = threading.Lock()
        self._reserved_calls = 0

    def check(self, messages: list[Message], max_tokens: int | None = None) -> None:
        """Raise BudgetExceeded if a call with these messages could pass a limit."""
        b, s = self.budget, self.spend
        if b.llm_calls is not None and s.calls + self._reserved_calls + 1 > b.llm_calls:
            raise BudgetExceeded(
                "llm_calls", f"LLM call budget reached: {s.calls} of {b.llm_calls} calls used"
            )
        if b.tokens is not None:
            needed = sum(estimate_tokens(m.get("content", "")) for m in messages)
            needed += max_tokens or 0
            if s.tokens + needed > b.tokens:
                raise BudgetExceeded(
                    "tokens",
                    f"token budget: {s.tokens} of {b.tokens} used; the next call needs ~{needed}",
                )
        if b.usd is not None:
            paid = s.calls - s.cached_calls
            average = s.usd / paid if paid else 0.0
            if s.usd + average > b.usd:
                raise BudgetExceeded(
                    "usd", f"dollar budget: ${s.usd:.4f} of ${b.usd:.4f} spent"
                )

    def record(self, completion: Completion) -> None:
        """Count a call made outside `complete` (e.g. answered by another path)."""
        self.spend.add(completion, self.role)

    def _reserve(self, messages: list[Message], options: dict[str, Any]) -> None:
        with self._lock:
            limit = options.get("max_tokens")
            self.check(messages, limit * options.get("n", 1) if limit else limit)
            self._reserved_calls += 1  # concurrent callers cannot jointly pass llm_calls

    def _release(self) -> None:
        with self._lock:
            self._reserved_calls -= 1

    def call(self, messages: list[Message], options: dict[str, Any]) -> Completion:
        self._reserve(messages, options)
        try:
            completion = self.llm.complete(messages, **options)
        finally:
            self._release()
        self.record(completion)
        return completion

    async def acall(self, messages: list[Message], options: dict[str, Any]) -> Completion:
        self._reserve(messages, options)
        try:
            completion = await self.llm.acomplete(messages, **options)
        finally:
            self._release()
        self.record(completion)
        return completion
