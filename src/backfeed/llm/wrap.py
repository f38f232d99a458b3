"""`Wrapper`: the base of every policy that sits around another backend."""

from __future__ import annotations

from typing import Any

from ._keys import identity_of
from .base import LLM, BaseLLM, Completion, Message


class Wrapper(BaseLLM):
    """Holds the wrapped backend in `.llm`; reports its model and cache identity as its own."""

    def __init__(self, llm: LLM) -> None:
        if not callable(getattr(llm, "complete", None)):
            raise TypeError(f"{type(self).__name__} wraps an LLM with .complete(); got {llm!r}")
        self.llm = llm
        self.model = getattr(llm, "model", "")

    def complete(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> Completion:
        return self.call(messages, {"json_schema": json_schema, "max_tokens": max_tokens,
                                    "temperature": temperature, "seed": seed})

    async def acomplete(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> Completion:
        return await self.acall(messages, {"json_schema": json_schema, "max_tokens": max_tokens,
                                           "temperature": temperature, "seed": seed})

    def call(self, messages: list[Message], options: dict[str, Any]) -> Completion:
        """What the policy does around one call; `options` are complete()'s keyword arguments."""
        return self.llm.complete(messages, **options)

    async def acall(self, messages: list[Message], options: dict[str, Any]) -> Completion:
        return await self.llm.acomplete(messages, **options)

    def cache_identity(self) -> dict[str, Any]:
        return identity_of(self.llm)

    def unwrap(self) -> LLM:
        """The innermost backend under any number of wrappers."""
        inner: Any = self.llm
        while isinstance(inner, Wrapper):
            inner = inner.llm
        return inner
