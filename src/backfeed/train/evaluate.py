"""Running the program on one example: forward, metric, captured console output and errors."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import inspect
import io
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .._text import clip
from ..example import SETUP_ERRORS, Example, InputsError, declare_inputs, in_program
from ..graph import ExecutionError, Feedback, Node, op

Forward = Callable[[Any, Any], Any]
Metric = Callable[[Any, Any], Any]

MAX_TEXT = 2000  # characters of output / console text kept per evaluation


class MetricError(RuntimeError):
    """The user's metric raised or returned something that is not a score."""


class OutputNotTraced(TypeError):
    """The program returned a value that carries no trace, so feedback cannot reach a parameter."""


METRIC_SIGNATURE = "metric(example, output) or metric(example, pred, trace=None)"


def as_metric(metric: Metric) -> Metric:
    """`metric` as a two-argument function: `(example, output)` as is, a DSPy-style
    `(example, pred, trace)` called with `trace=None`; any other signature is a MetricError."""
    if not callable(metric):
        raise MetricError(f"metric must be a function {METRIC_SIGNATURE}, got {metric!r}")
    try:
        sig = inspect.signature(metric)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return metric
    for n in (2, 3):
        try:
            sig.bind(*([None] * n))
        except TypeError:
            continue
        if n == 2:
            return metric
        if inspect.iscoroutinefunction(metric):
            async def with_trace_async(example: Any, output: Any) -> Any:
                return await metric(example, output, None)
            return with_trace_async
        return lambda example, output: metric(example, output, None)
    name = getattr(metric, "__name__", type(metric).__name__)
    raise MetricError(f"metric {name}{sig} cannot be called as {METRIC_SIGNATURE}; "
                      "give it those parameters")


def as_examples(data: Iterable[Any] | None, what: str,
                inputs: Iterable[str] | None = None) -> list[Any] | None:
    """A dataset (list, tuple, generator or any iterable) as a list; None stays None. Dict
    examples become `bf.Example`s, with `inputs` declared as the program's inputs."""
    if data is None:
        return None
    if isinstance(data, str | bytes | dict) or not isinstance(data, Iterable):
        raise TypeError(f"{what} must be a sequence or iterable of examples, "
                        f"not {type(data).__name__}")
    return declare_inputs(list(data), inputs, what)


# -- the program's output: one node, or a dict / list / tuple / dataclass of nodes -----------


@op
def program_output(parts: dict) -> dict:
    """Every part of the program's structured output, by where it is in it (feedback on it
    reaches each part)."""
    return parts


def _parts(out: Any, found: dict[str, Node], path: str = "") -> Any:
    """The plain value of `out`, collecting the nodes inside it into `found` by their path in
    it (`answer`, `sources[0]`, `meta.score`)."""
    if isinstance(out, Node):
        found[path or "output"] = out
        return out.value
    if isinstance(out, dict):
        return {k: _parts(v, found, f"{path}.{k}" if path else str(k)) for k, v in out.items()}
    if isinstance(out, list | tuple):
        values = [_parts(v, found, f"{path}[{i}]") for i, v in enumerate(out)]
        return type(out)(*values) if hasattr(out, "_fields") else type(out)(values)
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return dataclasses.replace(out, **{
            f.name: _parts(getattr(out, f.name), found, f"{path}.{f.name}" if path else f.name)
            for f in dataclasses.fields(out) if f.init})
    return out


def output_node(out: Any) -> tuple[Node | None, Any]:
    """(the node that takes the output's feedback, the plain value the metric sees)."""
    if isinstance(out, Node):
        return out, out.value
    found: dict[str, Node] = {}
    value = _parts(out, found)
    if not found:
        return None, value
    if len(found) == 1:
        return next(iter(found.values())), value
    return program_output(found), value


def no_trace_error(value: Any) -> OutputNotTraced:
    return OutputNotTraced(
        f"the program returned a {type(value).__name__} that carries no trace, so no feedback "
        "can reach a parameter: return the Node that bf.param / @bf.op values produce (or a "
        "dict, list, tuple or dataclass of such nodes), not its .value, str() or an f-string "
        "(use bf.format)"
    )


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
    """`forward(module, example)`, else `module(**example.inputs())` for an example with
    declared inputs, `module(example[0])` for a tuple/list, else `module(example)`."""
    if forward is not None:
        return forward(module, example)
    if isinstance(example, Example) and example.input_names is not None:
        inputs = example.inputs()
        _check_takes(module, inputs)
        return module(**inputs)
    if isinstance(example, tuple | list):
        return module(example[0])
    return module(example)


def _check_takes(module: Any, inputs: dict[str, Any]) -> None:
    """A TypeError that says how to fix it when the program cannot take `inputs` by name."""
    target = getattr(module, "forward", module)
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # no signature to check: the call itself will tell
        return
    try:
        signature.bind(**inputs)
    except TypeError as exc:
        name = getattr(target, "__qualname__", type(module).__name__)
        raise InputsError(
            f"{name}{signature} cannot take the declared inputs {list(inputs)} as keyword "
            f"arguments ({exc}): name its parameters after the fields, or pass "
            "forward=lambda program, example: ..."
        ) from None


def as_feedback(value: Any, index: int, example: Any = None) -> Feedback:
    """A metric's return value as Feedback with a finite score, or a MetricError naming the
    example and saying what was wrong (a NaN or infinite score cannot be compared or stored)."""
    if isinstance(value, Feedback) and value.score is not None and math.isfinite(value.score):
        return value  # the usual case: no text about the example is built
    if isinstance(value, bool | int | float) and math.isfinite(value):
        return Feedback(score=float(value))
    where = f"example {index} ({_example_text(example)})"
    if isinstance(value, Feedback):
        if value.score is None:
            raise MetricError(f"metric returned bf.Feedback without a score for {where}")
        score = value.score
    elif isinstance(value, bool | int | float):
        score = float(value)
    else:
        raise MetricError(
            f"metric must return a number or bf.Feedback(score=...), got {type(value).__name__} "
            f"for {where}"
        )
    if not math.isfinite(score):
        raise MetricError(f"metric returned the score {score} for {where}; a score must be a "
                          "finite number (return 0.0 for a failure)")
    return value if isinstance(value, Feedback) else Feedback(score=score)


def _example_text(example: Any) -> str:
    try:
        return clip(repr(example), 80)
    except Exception as exc:  # its own __repr__ failed: name it, do not hide the metric's error
        return f"<{type(example).__name__}: repr raised {type(exc).__name__}>"


def _kept_text(value: Any) -> str:
    """The output as stored: its text (a repr for other values), clipped to MAX_TEXT."""
    return clip(value if isinstance(value, str) else repr(value), MAX_TEXT)


def _with_console(fb: Feedback, stdout: str) -> Feedback:
    if not stdout.strip():
        return fb
    text = (fb.text + "\n" if fb.text else "") + "Console output:\n" + _kept_text(stdout)
    return Feedback(score=fb.score, text=text, details=fb.details)


def _finish(
    index: int, out: Any, error: BaseException | None, metric: Metric | None, example: Any,
    stdout: str, started: float,
) -> Traced:
    node, value = output_node(out)
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
    if metric is None:
        fb = _with_console(Feedback(score=0.0), stdout)
    else:
        try:
            raw = metric(example, value)
        except Exception as e:
            raise MetricError(f"metric raised on example {index}: {type(e).__name__}: {e}") from e
        if inspect.isawaitable(raw):
            raise MetricError("metric returned an awaitable; use the Async executor for async metrics")
        fb = _with_console(as_feedback(raw, index, example), stdout)
    result = EvalResult(index, float(fb.score or 0.0), fb.text, _kept_text(value), fb.details, None,
                        stdout, time.perf_counter() - started)
    return Traced(result, node, value, fb)


@dataclass
class _Attempt:
    """One run of the program on one example: its output or error, and what it printed."""

    buffer: io.StringIO = field(default_factory=io.StringIO)
    started: float = field(default_factory=time.perf_counter)
    out: Any = None
    error: BaseException | None = None


@contextlib.contextmanager
def _attempt() -> Iterator[_Attempt]:
    """Run the block as the program's run on one example: its console output captured, and an
    exception it raises kept as the attempt's error (a setup error propagates: how the
    program is called is wrong, not the program, so it gets no feedback)."""
    attempt = _Attempt()
    token = _buffer.set(attempt.buffer)
    try:
        with in_program():
            yield attempt
    except SETUP_ERRORS:
        raise
    except Exception as e:
        attempt.error = e
    finally:
        _buffer.reset(token)


def run_one(module: Any, example: Any, index: int, metric: Metric | None,
            forward: Forward | None) -> Traced:
    """Evaluate in this thread; an async program is run to completion here."""
    with _attempt() as a:
        a.out = call_forward(module, example, forward)
        if inspect.isawaitable(a.out):
            a.out = asyncio.run(_await(a.out))
    return _finish(index, a.out, a.error, metric, example, a.buffer.getvalue(), a.started)


async def arun_one(module: Any, example: Any, index: int, metric: Metric | None,
                   forward: Forward | None) -> Traced:
    """Evaluate in this event loop: async programs are awaited, sync ones run in a thread."""
    with _attempt() as a:
        if _is_async(module, forward):
            a.out = await call_forward(module, example, forward)
        else:
            a.out = await asyncio.to_thread(call_forward, module, example, forward)
            if inspect.isawaitable(a.out):
                a.out = await a.out
    if metric is not None and inspect.iscoroutinefunction(metric):
        metric = _resolved(await _metric_async(metric, example, a.out, a.error))
    return _finish(index, a.out, a.error, metric, example, a.buffer.getvalue(), a.started)


async def _metric_async(metric: Metric, example: Any, out: Any, error: BaseException | None) -> Any:
    if error is not None:
        return None
    return await metric(example, output_node(out)[1])


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

        def one(item: tuple[int, Any]) -> EvalResult:
            return run_one(module, item[1], item[0], metric, forward).result

        with ThreadPoolExecutor(threads) as pool:  # each in a copy of this context (the model)
            futures = [pool.submit(contextvars.copy_context().run, one, item)
                       for item in examples]
            return [f.result() for f in futures]
    finally:
        uninstall_capture()
