"""`Wrapper`: the base of every policy that sits around another backend."""

from __future__ import annotations

from typing import Any

from ._keys import identity_of
from .base import LLM, BaseLLM


class Wrapper(BaseLLM):
    """Holds the wrapped backend in `.llm`; reports its model and cache identity as its own."""

    def __init__(self, llm: LLM) -> None:
        if not callable(getattr(llm, "complete", None)):
            raise TypeError(f"{type(self).__name__} wraps an LLM with .complete(); got {llm!r}")
        self.llm = llm
        self.model = getattr(llm, "model", "")

    def cache_identity(self) -> dict[str, Any]:
        return identity_of(self.llm)

    def unwrap(self) -> LLM:
        """The innermost backend under any number of wrappers."""
        inner: Any = self.llm
        while isinstance(inner, Wrapper):
            inner = inner.llm
        return inner
