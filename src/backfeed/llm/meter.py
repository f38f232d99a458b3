"""Usage and cost accounting around any backend, with `Budget` limits checked before each call."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from .._tokens import estimate_tokens
from ..budget import Budget, BudgetExceeded
from .base import LLM, BaseLLM, Completion, Message


@dataclass
class Spend:
    """What calls have used so far. Thread-safe through its owner's lock."""

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokens": self.tokens}


class Metered(BaseLLM):
    """Count calls, tokens and dollars; raise `BudgetExceeded` instead of a call past the budget.

    The check happens before the call, with the prompt's estimated tokens (plus `max_tokens`
    when given) and, for dollars, the average cost of a paid call so far. Cached answers are
    counted as calls of no tokens and no cost. Several `Metered` wrappers may share one `Spend`.
    """

    def __init__(self, llm: LLM, budget: Budget | None = None, spend: Spend | None = None) -> None:
        self.llm = llm
        self.budget = budget or Budget()
        self.spend = spend or Spend()
        self.model = getattr(llm, "model", "")
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
        with self._lock:
            self._add(completion)

    def _add(self, completion: Completion) -> None:
        self.spend.calls += 1
        if completion.cached:
            self.spend.cached_calls += 1
            return
        self.spend.prompt_tokens += completion.usage.prompt_tokens
        self.spend.completion_tokens += completion.usage.completion_tokens
        self.spend.usd += completion.cost_usd

    def complete(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> Completion:
        with self._lock:
            self.check(messages, max_tokens)
            self._reserved_calls += 1  # concurrent callers cannot jointly pass llm_calls
        try:
            completion = self.llm.complete(
                messages,
                json_schema=json_schema,
                max_tokens=max_tokens,
                temperature=temperature,
                seed=seed,
            )
        finally:
            with self._lock:
                self._reserved_calls -= 1
        self.record(completion)
        return completion
