"""The program's model: `using(llm)` chooses it for this thread or task, `current()` returns it."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .base import LLM
from .wrap import Wrapper

_program_llm: contextvars.ContextVar[LLM | None] = contextvars.ContextVar(
    "backfeed_program_llm", default=None
)
_default: LLM | None = None
_default_lock = threading.Lock()


@contextmanager
def using(llm: LLM) -> Iterator[LLM]:
    """Make `llm` the model of `bf.chat(..., llm=None)` inside the block (this thread or task,
    and the threads and tasks started from it with a copy of its context)."""
    if not callable(getattr(llm, "complete", None)):
        raise TypeError(f"bf.llm.using needs an LLM with .complete(); got {llm!r}")
    token = _program_llm.set(llm)
    try:
        yield llm
    finally:
        _program_llm.reset(token)


def chosen() -> LLM | None:
    """The model set by the innermost `using` block (the trainer's `program_llm=` is one),
    or None when no block is active."""
    return _program_llm.get()


def current() -> LLM:
    """The model `bf.chat` uses when given none: the innermost `using` block's, else
    `bf.llm.default()` (made once per process)."""
    llm = _program_llm.get()
    return llm if llm is not None else process_default()


def process_default() -> LLM:
    """`bf.llm.default()`, made once per process."""
    global _default
    with _default_lock:
        if _default is None:
            from .defaults import default

            _default = default()
        return _default


class DefaultModel(Wrapper):
    """`bf.llm.default()`, made on the first call (a program that never calls a model needs
    none configured)."""

    def __init__(self) -> None:  # no model to wrap yet: `llm` makes it when first read
        self.model = "default"

    @property
    def llm(self) -> LLM:  # type: ignore[override]
        return process_default()
