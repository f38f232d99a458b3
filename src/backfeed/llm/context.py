"""The program's model: `using(llm)` chooses it for this thread or task, `current()` returns it."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .base import LLM, BaseLLM, Completion, Message
from .wrap import Wrapper

_program_llm: contextvars.ContextVar[LLM | None] = contextvars.ContextVar(
    "backfeed_program_llm", default=None
)
_run_program: contextvars.ContextVar[LLM | None] = contextvars.ContextVar(
    "backfeed_run_program_llm", default=None
)  # a run's program model (metered and recorded), set by the trainer around the run
_explicit: contextvars.ContextVar[LLM | None] = contextvars.ContextVar(
    "backfeed_explicit_llm", default=None
)  # the model a `bf.chat(llm=...)` call was given, for `ProgramModel` to call
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


_active: list[tuple[LLM, set[int]]] = []  # each run's program model, and the threads before it
_active_lock = threading.Lock()


@contextmanager
def running(program: LLM) -> Iterator[LLM]:
    """Inside a run: `program` (the run's metered, recorded program model, made around a
    `ProgramModel`) is the model of `bf.chat(llm=None)` and also carries every call given a
    model explicitly (`bf.chat(llm=...)`), so that it counts against the run's budget."""
    token = _run_program.set(program)
    entry = (program, {t.ident for t in threading.enumerate() if t.ident is not None})
    with _active_lock:
        _active.append(entry)
    try:
        with using(program):
            yield program
    finally:
        _run_program.reset(token)
        with _active_lock:
            _active.remove(entry)


def run_program() -> LLM | None:
    """The program model of the run going on in this context; in a thread started while
    the process's only run goes on (one the program started, which inherits no context),
    that run's; None outside a run, and in threads that were there before it."""
    run = _run_program.get()
    if run is None:  # a thread started during the process's only run: the program's
        with _active_lock:
            if len(_active) == 1 and threading.get_ident() not in _active[0][1]:
                run = _active[0][0]
    return run


def for_chat(llm: LLM | None) -> LLM:
    """The model a `bf.chat` call goes through: `current()` when given none; an explicit model
    as it is outside a run, and through the run's program model inside one."""
    run = run_program()
    if llm is None:
        return current() if run is None or _program_llm.get() is not None else run
    if run is None or llm is run:
        return llm
    return _Through(run, llm)


class ProgramModel(BaseLLM):
    """A run's program model before its meter and recorder: each call goes to the model
    its `bf.chat` was given (`for_chat`), else to `default`."""

    def __init__(self, default: LLM) -> None:
        self.default = default
        self.model = getattr(default, "model", "")

    def target(self) -> LLM:
        return _explicit.get() or self.default

    def complete(self, messages: list[Message], **options: Any) -> Completion:
        return self.target().complete(messages, **options)

    async def acomplete(self, messages: list[Message], **options: Any) -> Completion:
        return await self.target().acomplete(messages, **options)

    def cache_identity(self) -> dict[str, Any]:
        identity = getattr(self.target(), "cache_identity", None)
        return identity() if callable(identity) else {"model": self.model}


class _Through(BaseLLM):
    """One explicit model's calls made through a run's program model."""

    def __init__(self, run: LLM, llm: LLM) -> None:
        self.run, self.llm = run, llm
        self.model = getattr(llm, "model", "")

    def complete(self, messages: list[Message], **options: Any) -> Completion:
        token = _explicit.set(self.llm)
        try:
            return self.run.complete(messages, **options)
        finally:
            _explicit.reset(token)

    async def acomplete(self, messages: list[Message], **options: Any) -> Completion:
        token = _explicit.set(self.llm)
        try:
            return await self.run.acomplete(messages, **options)
        finally:
            _explicit.reset(token)
