"""`Wrapper`: the base of every policy that sits around another backend."""

from __future__ import annotations

from typing import Any

from ._keys import identity_of
from .base import LLM, BaseLLM, Completion, Message


def _options(json_schema: dict[str, Any] | None, max_tokens: int | None,
             temperature: float | None, seed: int | None, n: int) -> dict[str, Any]:
    """complete()'s keyword arguments; `n` only when several answers are asked for, so that a
    backend that takes no `n` never sees it."""
    options = {"json_schema": json_schema, "max_tokens": max_tokens,
               "temperature": temperature, "seed": seed}
    if n != 1:
        options["n"] = n
    return options


def answers_n(llm: Any) -> bool:
    """Whether `llm` answers one request with several answers (`complete(..., n=k)` fills
    `Completion.alternatives`): its backend says so (`answers_n = True`, as `LiteLLM`) and
    every layer above it is a `Wrapper`, which passes `n` on (a `Replay` does when its
    cassette was recorded so)."""
    for _ in range(32):
        if getattr(llm, "answers_n", False):
            return True
        if not isinstance(llm, Wrapper):
            return False
        llm = llm.llm
    return False


def continues_assistant(llm: Any) -> bool:
    """Whether a backend, under any wrappers, continues a trailing assistant message (its
    class says `continues_assistant = True`, as the embedded model's)."""
    for _ in range(32):
        if llm is None:
            return False
        if getattr(type(llm), "continues_assistant", False):
            return True
        llm = getattr(llm, "llm", None)
    return False


DEFAULT_OUTPUT_CAP = 8192  # completion tokens asked of a model whose own limit is unknown


def output_cap(llm: Any) -> tuple[int, str]:
    """The most completion tokens one answer of `llm` may ask for, and where that number comes
    from: the first layer (under any wrappers) whose `max_output_tokens()` knows it (litellm's
    model info, `Local(max_tokens=)`), else `DEFAULT_OUTPUT_CAP`."""
    for _ in range(32):
        own = getattr(llm, "max_output_tokens", None)
        if callable(own):
            found = own()
            if found is not None:
                return found
        if not isinstance(llm, Wrapper):
            break
        llm = llm.llm
    return DEFAULT_OUTPUT_CAP, (f"backfeed's default cap of {DEFAULT_OUTPUT_CAP:,} (the "
                                "model's own limit is unknown)")


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
        n: int = 1,
    ) -> Completion:
        return self.call(messages, _options(json_schema, max_tokens, temperature, seed, n))

    async def acomplete(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        n: int = 1,
    ) -> Completion:
        return await self.acall(messages, _options(json_schema, max_tokens, temperature, seed, n))

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
