"""Running the program on one example: forward, metric, captured console output and errors."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import io
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..graph import ExecutionError, Feedback, Node

Forward = Callable[[Any, Any], Any]
Metric = Callable[[Any, Any], Any]

MAX_TEXT = 2000  # characters of output / console text kept per evaluation


class MetricError(RuntimeError):
    """The user's metric raised or returned something that is not a score."""


@dataclass
class EvalResult:
    """What one (candidate, example) evaluation produced; plain data, picklable."""

    index: int
    score: float
    feedback: str
    output: str | None
    details: dict[str, Any] | None = None
    error: str | None = None
    stdout: str = ""
    seconds: float = 0.0
    stored: bool = False  # read back from the store instead of run


@dataclass
class Traced:
    """A local evaluation with its graph: the output (or error) node that takes feedback."""

    result: EvalResult
    node: Node | None = None
    value: Any = None
    feedback: Feedback | None = field(default=None)


# -- console capture: one proxy on sys.stdout, a buffer per thread or task ------------------

_buffer: contextvars.ContextVar[io.StringIO | None] = contextvars.ContextVar(
    "backfeed_stdout", default=None
)


class _StdoutProxy(io.TextIOBase):
    def __init__(self, target: Any) -> None:
        self.target = target

    def write(self, text: str) -> int:
        buffer = _buffer.get()
        return buffer.write(text) if buffer is not None else self.target.write(text)

    def flush(self) -> None:
        if _buffer.get() is None:
            self.target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


_proxy_lock = threading.Lock()
_proxy_users = 0


def install_capture() -> None:
    """Route print() of evaluated programs to per-evaluation buffers (counted, nestable)."""
    global _proxy_users
    with _proxy_lock:
        if _proxy_users == 0 and not isinstance(sys.stdout, _StdoutProxy):
            sys.stdout = _StdoutProxy(sys.stdout)
        _proxy_users += 1


def uninstall_capture() -> None:
    global _proxy_users
    with _proxy_lock:
        _proxy_users -= 1
        if _proxy_users == 0 and isinstance(sys.stdout, _StdoutProxy):
            sys.stdout = sys.stdout.target


# -- one evaluation -----------------------------------------------------------------------


def call_forward(module: Any, example: Any, forward: Forward | None) -> Any:
    """`forward(module, example)`, else `module(example[0])` for a tuple/list, else `module(example)`."""
    if forward is not None:
        return forward(module, example)
    if isinstance(example, tuple | list):
        return module(example[0])
    return module(example)


def as_feedback(value: Any, index: int) -> Feedback:
    """A metric's return value as Feedback with a score, or a MetricError saying what was wrong."""
    if isinstance(value, Feedback):
        if value.score is None:
            raise MetricError(f"metric returned bf.Feedback without a score for example {index}")
        return value
    if isinstance(value, bool | int | float):
        return Feedback(score=float(value))
    raise MetricError(
        f"metric must return a number or bf.Feedback(score=...), got {type(value).__name__} "
        f"for example {index}"
    )


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def _with_console(fb: Feedback, stdout: str) -> Feedback:
    if not stdout.strip():
        return fb
    text = (fb.text + "\n" if fb.text else "") + "Console output:\n" + _short(stdout)
    return Feedback(score=fb.score, text=text, details=fb.details)


def _finish(
    index: int, out: Any, error: BaseException | None, metric: Metric | None, example: Any,
    stdout: str, started: float,
) -> Traced:
    node = out if isinstance(out, Node) else None
    if error is not None:
        if isinstance(error, ExecutionError):
            node = error.node
            message = str(error.error)
        else:
            node = None
            message = f"{type(error).__name__}: {error}"
        fb = _with_console(Feedback(score=0.0, text=f"The program raised {message}"), stdout)
        result = EvalResult(index, 0.0, fb.text, None, None, message, stdout,
                            time.perf_counter() - started)
        return Traced(result, node, None, fb)
    value = out.value if isinstance(out, Node) else out
    if metric is None:
        fb = _with_console(Feedback(score=0.0), stdout)
    else:
        try:
            raw = metric(example, value)
        except Exception as e:
            raise MetricError(f"metric raised on example {index}: {type(e).__name__}: {e}") from e
        if inspect.isawaitable(raw):
            raise MetricError("metric returned an awaitable; use the Async executor for async metrics")
        fb = _with_console(as_feedback(raw, index), stdout)
    result = EvalResult(index, float(fb.score or 0.0), fb.text, _short(value), fb.details, None,
                        stdout, time.perf_counter() - started)
    return Traced(result, node, value, fb)


def run_one(module: Any, example: Any, index: int, metric: Metric | None,
            forward: Forward | None) -> Traced:
    """Evaluate in this thread; an async program is run to completion here."""
    buffer = io.StringIO()
    token = _buffer.set(buffer)
    started = time.perf_counter()
    out: Any = None
    error: BaseException | None = None
    try:
        out = call_forward(module, example, forward)
        if inspect.isawaitable(out):
            out = asyncio.run(_await(out))
    except Exception as e:
        error = e
    finally:
        _buffer.reset(token)
    return _finish(index, out, error, metric, example, buffer.getvalue(), started)


async def arun_one(module: Any, example: Any, index: int, metric: Metric | None,
                   forward: Forward | None) -> Traced:
    """Evaluate in this event loop: async programs are awaited, sync ones run in a thread."""
    buffer = io.StringIO()
    token = _buffer.set(buffer)
    started = time.perf_counter()
    out: Any = None
    error: BaseException | None = None
    try:
        if _is_async(module, forward):
            out = await call_forward(module, example, forward)
        else:
            out = await asyncio.to_thread(call_forward, module, example, forward)
            if inspect.isawaitable(out):
                out = await out
    except Exception as e:
        error = e
    finally:
        _buffer.reset(token)
    if metric is not None and inspect.iscoroutinefunction(metric):
        sync_metric = _resolved(await _metric_async(metric, example, out, error))
        return _finish(index, out, error, sync_metric, example, buffer.getvalue(), started)
    return _finish(index, out, error, metric, example, buffer.getvalue(), started)


async def _metric_async(metric: Metric, example: Any, out: Any, error: BaseException | None) -> Any:
    if error is not None:
        return None
    value = out.value if isinstance(out, Node) else out
    return await metric(example, value)


def _resolved(value: Any) -> Metric:
    return lambda example, output: value


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _is_async(module: Any, forward: Forward | None) -> bool:
    if forward is not None:
        return inspect.iscoroutinefunction(forward)
    method = getattr(module, "forward", None)
    return inspect.iscoroutinefunction(method) or inspect.iscoroutinefunction(module)


def evaluate_values(module: Any, values: dict[str, Any], examples: list[tuple[int, Any]],
                    metric: Metric | None, forward: Forward | None,
                    threads: int = 1) -> list[EvalResult]:
    """Load `values` into `module` and evaluate each (index, example), in `threads` threads:
    the remote worker's job."""
    module.load_state_dict(values)
    install_capture()
    try:
        if threads <= 1 or len(examples) <= 1:
            return [run_one(module, ex, i, metric, forward).result for i, ex in examples]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(lambda item: run_one(module, item[1], item[0], metric,
                                                      forward).result, examples))
    finally:
        uninstall_capture()
