"""`Scripted`: a deterministic backend that returns queued answers, for tests and examples."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .._tokens import estimate_tokens
from .base import BaseLLM, Completion, LLMError, Message, Usage


class ScriptExhausted(LLMError):
    """`Scripted` was asked for more answers than it was given."""


@dataclass(frozen=True)
class ScriptedCall:
    """One request `Scripted` received."""

    messages: list[Message]
    options: dict[str, Any]


class Scripted(BaseLLM):
    """Answer each call with the next queued response, and record every request in `.calls`.

    A response is a string, a `Completion`, or a callable `(messages, options) -> str` for
    answers that depend on the prompt. Token counts are estimated from the text.

    >>> llm = Scripted(['{"suggestion": {"x": 4.0}}'])
    >>> llm.complete([{"role": "user", "content": "hi"}]).text
    '{"suggestion": {"x": 4.0}}'
    """

    def __init__(
        self,
        responses: Iterable[str | Completion | Callable[[list[Message], dict[str, Any]], str]],
        *,
        model: str = "scripted",
    ) -> None:
        self.responses = list(responses)
        self.model = model
        self.calls: list[ScriptedCall] = []
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # shipped to Ray workers: a copy of the script
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def remaining(self) -> int:
        """How many queued responses are left."""
        return len(self.responses) - len(self.calls)

    def complete(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> Completion:
        options = {
            "json_schema": json_schema,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": seed,
        }
        with self._lock:
            index = len(self.calls)
            if index >= len(self.responses):
                tail = messages[-1].get("content", "")[-200:] if messages else ""
                raise ScriptExhausted(
                    f"Scripted LLM ran out of responses: call {index + 1} was made but only "
                    f"{len(self.responses)} response(s) were queued. Last prompt ends with: {tail!r}"
                )
            self.calls.append(ScriptedCall([dict(m) for m in messages], options))
            response = self.responses[index]
        if callable(response):
            response = response(messages, options)
        if isinstance(response, Completion):
            return response
        prompt_tokens = sum(estimate_tokens(m.get("content", "")) for m in messages)
        return Completion(
            text=str(response),
            usage=Usage(prompt_tokens, estimate_tokens(str(response))),
            cost_usd=0.0,
            model=self.model,
            cached=False,
        )
