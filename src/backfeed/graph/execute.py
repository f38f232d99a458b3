"""The one place model-written code is compiled and run, so limits can wrap it."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import inspect
import linecache
import textwrap
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .node import ErrorInfo

if TYPE_CHECKING:
    from types import TracebackType

_CACHE_SIZE = 64
_default_sandbox: SandboxLike | None = None


@runtime_checkable
class SandboxLike(Protocol):
    """What graph/ needs of a sandbox (`bf.Sandbox` in backfeed.sandbox is the real one)."""

    def call(
        self,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        source: str | None = None,
        name: str | None = None,
    ) -> Any: ...


def set_default_sandbox(sandbox: SandboxLike | None) -> None:
    """Run every trainable op without its own `sandbox=` under `sandbox` (None turns it off)."""
    global _default_sandbox
    if sandbox is not None and not callable(getattr(sandbox, "call", None)):
        raise TypeError(
            f"set_default_sandbox expects a bf.Sandbox (or an object with .call) or None, "
            f"not {type(sandbox).__name__}"
        )
    _default_sandbox = sandbox


def get_default_sandbox() -> SandboxLike | None:
    """The sandbox set by `set_default_sandbox`, or None."""
    return _default_sandbox


class CodeError(Exception):
    """Code of a parameter failed to compile, define its function, or run (e.g. in a sandbox)."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(str(info))
        self.info = info


def source_line(source: str | None, lineno: int | None) -> str | None:
    """Line `lineno` (1-based) of `source`, or None when either is missing or out of range."""
    if source is None or lineno is None:
        return None
    lines = source.splitlines()
    return lines[lineno - 1] if 1 <= lineno <= len(lines) else None


def function_source(fn: Callable[..., Any]) -> tuple[str, int]:
    """The dedented source of `fn` without decorator lines, and how many lines were removed."""
    try:
        lines = textwrap.dedent(inspect.getsource(fn)).splitlines(True)
    except (OSError, TypeError) as exc:
        raise TypeError(
            f"@bf.op(trainable=True) needs the source of {fn.__qualname__}, which Python cannot "
            "find (functions typed into a REPL or built with exec have none); define it in a file"
        ) from exc
    start = 0
    while start < len(lines) and not lines[start].lstrip().startswith(("def ", "async def ")):
        start += 1
    return "".join(lines[start:]), start


def code_filename(name: str, source: str) -> str:
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    return f"<backfeed:{name}:{digest}>"


def compile_function(
    source: str, name: str, globals_: dict[str, Any], parameter: str | None = None
) -> Callable[..., Any]:
    """Compile `source`, which must define function `name`; decorators on it are dropped."""
    filename = code_filename(name, source)
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        raise CodeError(
            ErrorInfo("SyntaxError", exc.msg, exc.lineno, (exc.text or "").rstrip(), parameter)
        ) from None
    target = None
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name == name:
            stmt.decorator_list = []
            target = stmt
    if target is None:
        raise CodeError(
            ErrorInfo("DefinitionError", f"the code must define a function named {name!r}",
                      parameter=parameter)
        )
    namespace: dict[str, Any] = {}
    try:
        exec(compile(tree, filename, "exec"), globals_, namespace)
    except Exception as exc:
        raise CodeError(error_info(exc, filename, parameter, source)) from None
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return namespace[name]


class FunctionCache:
    """Compiled functions of one code parameter, one per distinct source, least recent evicted."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[str, Callable[..., Any] | CodeError] = OrderedDict()

    def get(
        self, source: str, name: str, globals_: dict[str, Any], parameter: str | None = None
    ) -> Callable[..., Any]:
        entry = self._entries.get(source)
        if entry is None:
            try:
                entry = compile_function(source, name, globals_, parameter)
            except CodeError as exc:
                entry = exc
            self._entries[source] = entry
            if len(self._entries) > self.size:
                old, _ = self._entries.popitem(last=False)
                linecache.cache.pop(code_filename(name, old), None)
        else:
            self._entries.move_to_end(source)
        if isinstance(entry, CodeError):
            raise CodeError(entry.info)
        return entry


def error_info(
    exc: BaseException,
    filename: str | None = None,
    parameter: str | None = None,
    source: str | None = None,
    line_offset: int = 0,
) -> ErrorInfo:
    """Describe `exc`; when its traceback passes through `filename`, name the failing line."""
    if isinstance(exc, CodeError):  # e.g. from a sandbox, which does not know the parameter
        if exc.info.parameter is None and parameter is not None:
            return dataclasses.replace(exc.info, parameter=parameter)
        return exc.info
    lineno = None
    if filename is not None:
        lineno = _innermost_line(exc.__traceback__, filename)
    if lineno is not None:
        lineno -= line_offset
    return ErrorInfo.of(exc, lineno=lineno, line=source_line(source, lineno), parameter=parameter)


def _innermost_line(tb: TracebackType | None, filename: str) -> int | None:
    lineno = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return lineno


def run_code(
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    sandbox: SandboxLike | None = None,
    source: str | None = None,
    name: str | None = None,
) -> Any:
    """Run model-written code: in-process, or through `sandbox.call` when one is set."""
    if sandbox is not None:
        return sandbox.call(function, args, kwargs, source=source, name=name)
    return function(*args, **kwargs)
