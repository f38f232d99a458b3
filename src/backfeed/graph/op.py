"""`@bf.op`: calling a function records one node; operators on nodes are traced too."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from .execute import (
    FunctionCache,
    code_filename,
    error_info,
    function_source,
    get_default_sandbox,
    run_code,
)
from .node import (
    ErrorInfo,
    ExecutionError,
    Node,
    OpInfo,
    Param,
    SetupError,
    _apply,
    _reads,
    _tracing,
    constant,
)

# -- the shared recording step ---------------------------------------------------------

# A watcher of user ops (`watching_ops`): called with an op's name and its code parameter's
# name (or None) around each call; None (the default) costs one lookup per op.
_watch: contextvars.ContextVar[Callable[[str, str | None], Any] | None] = \
    contextvars.ContextVar("backfeed_op_watch", default=None)


@contextlib.contextmanager
def watching_ops(watch: Callable[[str, str | None], Any]) -> Iterator[None]:
    """While inside, each `@bf.op` call runs within `watch(op_name, code_param_name)`, a
    context manager (telemetry's op span); threads and tasks copied from this context too."""
    token = _watch.set(watch)
    try:
        yield
    finally:
        _watch.reset(token)


def _record(
    info: OpInfo,
    call: Callable[[], Any],
    inputs: list[tuple[str, Node]],
    *,
    code: Param | None = None,
    location: dict[str, Any] | None = None,
) -> Node:
    """Run `call` with read-tracking on, then return its output node (or raise ExecutionError)."""
    watch = _watch.get()
    if watch is not None:
        with watch(info.name, code.name if code is not None else None):
            return _record_now(info, call, inputs, code, location)
    return _record_now(info, call, inputs, code, location)


def _record_now(info: OpInfo, call: Callable[[], Any], inputs: list[tuple[str, Node]],
                code: Param | None, location: dict[str, Any] | None) -> Node:
    token = _reads.set([])
    try:
        result, failure = call(), None
    except SetupError:
        raise  # how the program is called is wrong: not feedback
    except Exception as exc:  # every failure becomes a node the user can backward on
        result, failure = None, exc
    finally:
        reads = _reads.get()
        _reads.reset(token)
    return _finish(info, inputs, reads, result, failure, code, location)


def _finish(
    info: OpInfo,
    inputs: list[tuple[str, Node]],
    reads: list[Node] | None,
    result: Any,
    failure: Exception | None,
    code: Param | None,
    location: dict[str, Any] | None,
) -> Node:
    _add_hidden_inputs(inputs, reads, code)
    if failure is not None:
        if isinstance(failure, ExecutionError):
            inputs.append(("cause", failure.node))
            error = failure.error
        else:
            location = location or {}
            error = error_info(
                failure,
                location.get("filename"),
                code.name if code is not None else None,
                code._value if code is not None else None,
                location.get("line_offset", 0),
            )
        node = _make(None, info, inputs, error)
        raise ExecutionError(node) from failure
    if isinstance(result, Node):  # the body traced ops itself: keep that ancestry
        inputs.append(("returned", result))
        result = result._value
    return _make(result, info, inputs)


def _make(value: Any, info: OpInfo, inputs: list[tuple[str, Node]], error: ErrorInfo | None = None
          ) -> Node:
    names = tuple(name for name, _ in inputs)
    args = tuple(node for _, node in inputs)
    return Node(value, op=info, args=args, arg_names=names, error=error)


def _add_hidden_inputs(
    inputs: list[tuple[str, Node]], reads: list[Node] | None, code: Param | None
) -> None:
    if code is not None:
        inputs.append(("__code__", code))
    if reads:
        seen = {id(n) for _, n in inputs}
        for read in reads:
            if id(read) not in seen:
                seen.add(id(read))
                inputs.append((read.name or f"read{len(inputs)}", read))


_FORMAT = OpInfo("format", "format(template, **values)", "template.format(**values)")


def format(template: Any, **values: Any) -> Any:
    """Traced `template.format(**values)` where template and values may be nodes."""
    if not _tracing.get():
        plain = {k: v._value if isinstance(v, Node) else v for k, v in values.items()}
        t = template._value if isinstance(template, Node) else template
        return t.format(**plain)
    names = ("template", *values)
    return _apply(
        _FORMAT,
        lambda t, *vs: t.format(**dict(zip(values, vs))),
        names,
        template,
        *values.values(),
    )


# -- user operations -----------------------------------------------------------------------

class Op:
    """A traced operation: calling it records one node whose inputs are its node arguments."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        trainable: bool = False,
        sandbox: Any = None,
        description: str | None = None,
    ) -> None:
        self.fn = fn
        self.signature = inspect.signature(fn)
        self.info = OpInfo(
            name or fn.__name__,
            f"{name or fn.__name__}{self.signature}",
            description or inspect.getdoc(fn) or "",
        )
        self.is_async = inspect.iscoroutinefunction(fn)
        self.trainable = trainable
        self.sandbox = sandbox
        self._is_method = next(iter(self.signature.parameters), None) == "self"
        self.code: Param | None = None
        if trainable:
            self.source, self._decorator_lines = function_source(fn)
            self._functions = FunctionCache()
            self.code = self._new_code_param()
        functools.update_wrapper(self, fn)

    def _new_code_param(self) -> Param:
        return Param(
            self.source,
            name=self.fn.__name__,
            kind="code",
            description=f"source code of the function {self.fn.__name__}"
            + (f": {self.info.doc}" if self.info.doc else ""),
        )

    def parameters(self) -> list[Param]:
        """The op's own trainable parameters: its code, when trainable."""
        return [self.code] if self.code is not None else []

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return BoundOp(self, instance)

    def code_for(self, instance: Any) -> Param | None:
        """The code parameter of `instance` (each instance owns its own copy)."""
        if self.code is None or instance is None:
            return self.code
        key = f"_bf_code_{self.fn.__name__}"
        code = instance.__dict__.get(key)
        if code is None:
            code = instance.__dict__[key] = self._new_code_param()
        return code

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(None, *args, **kwargs)

    def _call(self, instance: Any, *args: Any, **kwargs: Any) -> Any:
        if instance is not None:
            args = (instance, *args)
        code = self.code_for(instance)
        if not _tracing.get():
            plain_args, plain_kwargs = _unwrap_call(args, kwargs)
            return self._invoke(code, plain_args, plain_kwargs)
        bound = self.signature.bind(*args, **kwargs)
        inputs: list[tuple[str, Node]] = []
        skip_first = self._is_method and instance is not None
        for i, (arg_name, value) in enumerate(bound.arguments.items()):
            if i == 0 and skip_first:
                continue
            kind = self.signature.parameters[arg_name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                bound.arguments[arg_name] = tuple(
                    _collect(f"{arg_name}[{j}]", v, inputs) for j, v in enumerate(value)
                )
            elif kind is inspect.Parameter.VAR_KEYWORD:
                bound.arguments[arg_name] = {k: _collect(k, v, inputs) for k, v in value.items()}
            else:
                bound.arguments[arg_name] = _collect(arg_name, value, inputs)
        call_args, call_kwargs = bound.args, bound.kwargs
        location = self._error_location(code) if code is not None else None
        if self.is_async:
            return self._acall(code, call_args, call_kwargs, inputs, location)
        return _record(
            self.info,
            lambda: self._invoke(code, call_args, call_kwargs),
            inputs,
            code=code,
            location=location,
        )

    def _invoke(self, code: Param | None, args: tuple, kwargs: dict) -> Any:
        """Call the function itself, or the current value of its code parameter."""
        if code is None:
            return self.fn(*args, **kwargs)
        if code._value == self.source:
            function = self.fn
        else:
            function = self._functions.get(
                code._value, self.fn.__name__, self.fn.__globals__, code.name
            )
        sandbox = self.sandbox if self.sandbox is not None else get_default_sandbox()
        return run_code(
            function, args, kwargs, sandbox=sandbox or None, source=code._value,
            name=self.fn.__name__,
        )

    async def _acall(self, code, call_args, call_kwargs, inputs, location) -> Node:
        watch = _watch.get()
        with watch(self.info.name, code.name if code is not None else None) \
                if watch is not None else contextlib.nullcontext():
            return await self._acall_now(code, call_args, call_kwargs, inputs, location)

    async def _acall_now(self, code, call_args, call_kwargs, inputs, location) -> Node:
        token = _reads.set([])
        try:
            result, failure = await self._invoke(code, call_args, call_kwargs), None
        except SetupError:
            raise
        except Exception as exc:
            result, failure = None, exc
        finally:
            reads = _reads.get()
            _reads.reset(token)
        return _finish(self.info, inputs, reads, result, failure, code, location)

    def _error_location(self, code: Param) -> dict[str, Any]:
        if code._value == self.source:
            first = self.fn.__code__.co_firstlineno + self._decorator_lines
            return {"filename": self.fn.__code__.co_filename, "line_offset": first - 1}
        return {"filename": code_filename(self.fn.__name__, code._value)}

    def __repr__(self) -> str:
        kind = "trainable op" if self.trainable else "op"
        return f"<{kind} {self.info.name}>"


class BoundOp:
    """An op reached through a `bf.Module` instance: `agent.parse(...)`, `agent.parse.code`."""

    __slots__ = ("instance", "op")

    def __init__(self, op: Op, instance: Any) -> None:
        self.op = op
        self.instance = instance

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.op._call(self.instance, *args, **kwargs)

    @property
    def code(self) -> Param | None:
        return self.op.code_for(self.instance)

    def parameters(self) -> list[Param]:
        code = self.code
        return [code] if code is not None else []

    def __repr__(self) -> str:
        return f"<bound {self.op!r} of {type(self.instance).__name__}>"


def _collect(name: str, value: Any, inputs: list[tuple[str, Node]]) -> Any:
    """Record `value` as an input named `name` and return its plain value."""
    if isinstance(value, Node):
        inputs.append((name, value))
        return value._value
    if isinstance(value, list | tuple) and any(isinstance(v, Node) for v in value):
        plain = [_collect(f"{name}[{i}]", v, inputs) for i, v in enumerate(value)]
        return type(value)(plain) if isinstance(value, tuple) else plain
    if isinstance(value, dict) and any(isinstance(v, Node) for v in value.values()):
        return {k: _collect(f"{name}[{k!r}]", v, inputs) for k, v in value.items()}
    inputs.append((name, constant(value)))
    return value


def _unwrap_call(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    def plain(v: Any) -> Any:
        if isinstance(v, Node):
            return v._value
        if isinstance(v, list | tuple) and any(isinstance(x, Node) for x in v):
            return type(v)(plain(x) for x in v)
        if isinstance(v, dict) and any(isinstance(x, Node) for x in v.values()):
            return {k: plain(x) for k, x in v.items()}
        return v

    return tuple(plain(a) for a in args), {k: plain(v) for k, v in kwargs.items()}


def op(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    trainable: bool = False,
    sandbox: Any = None,
    description: str | None = None,
) -> Any:
    """Decorate a function so that calling it is traced: `@bf.op` or `@bf.op(trainable=True)`.

    With `trainable=True` the function's source becomes a `code` parameter (`fn.code`);
    `sandbox=bf.Sandbox(...)` runs that code under limits in a worker process (`sandbox=False`
    opts out of a default set with `bf.set_default_sandbox`).
    """

    def wrap(f: Callable[..., Any]) -> Op:
        return Op(f, name=name, trainable=trainable, sandbox=sandbox, description=description)

    return wrap(fn) if fn is not None else wrap


__all__ = ["BoundOp", "Op", "format", "op"]
