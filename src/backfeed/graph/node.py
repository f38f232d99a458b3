"""Nodes of a traced run: values, trainable parameters, feedback, errors, and the operators
on nodes (each records one node through `_apply`, as micrograd's `Value` does)."""

from __future__ import annotations

import contextvars
import inspect
import itertools
import math
import operator
import traceback
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .._text import short
from .._tokens import estimate_tokens

# Creation order doubles as a topological order: a node's inputs always exist before it.
_next_id = itertools.count().__next__
_tracing: contextvars.ContextVar[bool] = contextvars.ContextVar("backfeed_tracing", default=True)
# Inside an op's body: the parameters whose `.value` the body reads (hidden inputs).
_reads: contextvars.ContextVar[list | None] = contextvars.ContextVar("backfeed_reads", default=None)
# Outside op bodies: the parameters behind the last few nodes turned into plain values
# (f-string, str(), a parameter's .value), so that backward can say where a trace was lost.
# Bounded and weak: it keeps no graph alive.
_LOST_KEPT = 16
_LOST_WALK = 2_000  # nodes searched for the parameters behind a node turned into text
_lost: contextvars.ContextVar[tuple[tuple[tuple[weakref.ref, ...], str, str], ...]] = (
    contextvars.ContextVar("backfeed_lost", default=())
)


def _note_lost(node: Node, how: str) -> None:
    if not _tracing.get():
        return
    if isinstance(node, Param):
        params: list[Node] = [node]
    else:
        params, seen, stack = [], {node}, [node]
        while stack and len(seen) < _LOST_WALK:
            for child in stack.pop().args:
                if child not in seen:
                    seen.add(child)
                    if isinstance(child, Param):
                        params.append(child)
                    elif child.args:
                        stack.append(child)
    if params:
        entry = (tuple(weakref.ref(p) for p in params), how, str(node._value))
        _lost.set((*_lost.get()[-_LOST_KEPT + 1:], entry))


def lost_traces() -> list[tuple[list[Param], str, str]]:
    """(parameters, how, text) for the recent nodes turned into plain text in this thread or
    task: the parameters behind each (still alive), how it happened, and the text it gave."""
    found = []
    for refs, how, text in _lost.get():
        params = [p for ref in refs if (p := ref()) is not None]
        if params:
            found.append((params, how, text))
    return found


def is_tracing() -> bool:
    """Whether ops called in this thread or task record nodes."""
    return _tracing.get()


@contextmanager
def no_trace() -> Iterator[None]:
    """Run ops on plain values without recording a graph (in this thread or task only)."""
    token = _tracing.set(False)
    try:
        yield
    finally:
        _tracing.reset(token)


@dataclass(frozen=True)
class Feedback:
    """What the world said about an output: a score, a sentence, or both."""

    score: float | None = None
    text: str = ""
    details: dict[str, Any] | None = None

    @classmethod
    def of(cls, feedback: Feedback | str | float | int) -> Feedback:
        """Normalise a str, a number or a Feedback into a Feedback."""
        if isinstance(feedback, Feedback):
            return feedback
        if isinstance(feedback, bool):
            return cls(score=float(feedback), text=str(feedback))
        if isinstance(feedback, int | float):
            return cls(score=float(feedback))
        if isinstance(feedback, str):
            return cls(text=feedback)
        raise TypeError(
            f"feedback must be a str, a number or bf.Feedback, not {type(feedback).__name__}"
        )

    def __str__(self) -> str:
        parts = []
        if self.score is not None:
            parts.append(f"score={self.score:g}")
        if self.text:
            parts.append(self.text)
        if self.details:
            parts.append(f"details={self.details}")
        return "; ".join(parts) or "(empty feedback)"


class BoundsError(ValueError):
    """A value outside a parameter's bounds."""


class ChoiceError(ValueError):
    """A value that is not one of a parameter's choices."""


class KeptError(ValueError):
    """A text that drops a span its parameter must keep verbatim."""


class LengthError(ValueError):
    """A text longer than its parameter's `max_tokens`."""


@dataclass(frozen=True)
class ErrorInfo:
    """An exception raised while computing a node, with the failing line when known."""

    type: str
    message: str
    lineno: int | None = None
    line: str | None = None
    parameter: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.lineno is not None:
            where = f" at line {self.lineno}"
            if self.parameter:
                where += f" of {self.parameter}"
            if self.line:
                where += f": {self.line.strip()}"
        return f"{self.type}: {self.message}{where}"

    @classmethod
    def of(cls, exc: BaseException, **where: Any) -> ErrorInfo:
        """Describe `exc` by its type name and message (`where`: lineno, line, parameter)."""
        message = str(exc) or "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return cls(type(exc).__name__, message, **where)


@dataclass(frozen=True)
class OpInfo:
    """What a prompt says about an operation: its name, signature and docstring."""

    name: str
    signature: str = ""
    doc: str = ""


class SetupError(Exception):
    """An error in how a program is called or wired (a label about to reach a model, inputs
    it cannot take), not a failure of the program: an op raises it on instead of making it an
    error node, and the trainer stops instead of scoring it as feedback."""


class ExecutionError(Exception):
    """An op raised. `.node` is the error node: call `.node.backward(...)` to learn from it."""

    def __init__(self, node: Node) -> None:
        super().__init__(str(node.error))
        self.node = node

    @property
    def error(self) -> ErrorInfo:
        return self.node.error  # type: ignore[return-value]


def _apply(info: OpInfo, func: Callable[..., Any], names: tuple[str, ...], *args: Any) -> Any:
    """Record one built-in operation on nodes (or run it on plain values when not tracing).

    The fast path of the graph: positional arguments, no user code to watch.
    """
    if not _tracing.get():
        return func(*[a._value if isinstance(a, Node) else a for a in args])
    nodes = tuple(a if isinstance(a, Node) else constant(a) for a in args)
    try:
        result = func(*[n._value for n in nodes])
    except SetupError:
        raise  # how the program is called is wrong: not feedback
    except Exception as exc:  # the failure becomes an error node the user can backward on
        failed = Node(None, op=info, args=nodes, arg_names=names, error=ErrorInfo.of(exc))
        raise ExecutionError(failed) from exc
    return Node(result, op=info, args=nodes, arg_names=names)


def _binary(name: str, func: Callable[[Any, Any], Any], doc: str) -> tuple[Callable, Callable]:
    """`node <op> other` and `other <op> node`, each recording one node."""
    info = OpInfo(name, f"{name}(a, b)", doc)

    def forward(self: Node, other: Any) -> Any:
        return _apply(info, func, ("a", "b"), self, other)

    def reflected(self: Node, other: Any) -> Any:
        return _apply(info, func, ("a", "b"), other, self)

    return forward, reflected


def _unary(name: str, func: Callable[[Any], Any], doc: str) -> Callable:
    info = OpInfo(name, f"{name}(a)", doc)

    def forward(self: Node) -> Any:
        return _apply(info, func, ("a",), self)

    return forward


_GETITEM = OpInfo("getitem", "getitem(obj, key)", "obj[key]")
_LEN = OpInfo("len", "len(obj)", "len(obj)")
_method_infos: dict[tuple[type, str], OpInfo] = {}


class Node:
    """A value in a traced run, with the operation and inputs that produced it.

    A node holds its inputs (never its consumers), so a graph lives exactly as long as
    the outputs the user keeps.
    """

    # Inputs are two parallel tuples (nodes, argument names) rather than (name, node) pairs:
    # fewer objects for the garbage collector to scan, which pays on graphs of 100k ops.
    __slots__ = (
        "__weakref__", "_feedback", "_value", "arg_names", "args", "error", "id", "name", "op",
    )

    def __init__(
        self,
        value: Any,
        *,
        name: str | None = None,
        op: OpInfo | None = None,
        args: tuple[Node, ...] = (),
        arg_names: tuple[str, ...] = (),
        error: ErrorInfo | None = None,
        inputs: tuple[tuple[str, Node], ...] | None = None,
    ) -> None:
        if inputs is not None:  # (name, node) pairs, the readable form
            arg_names = tuple(name for name, _ in inputs)
            args = tuple(child for _, child in inputs)
        self._value = value
        self.name = name
        self.op = op
        self.args = args
        self.arg_names = arg_names
        self.error = error
        self.id = _next_id()
        self._feedback: list[Feedback] | None = None

    # -- value -----------------------------------------------------------------------
    @property
    def value(self) -> Any:
        """The plain Python value (read inside an op's body, the node becomes an input)."""
        reads = _reads.get()
        if reads is not None:
            reads.append(self)
        elif isinstance(self, Param):  # (an output's .value is read all the time: not noted)
            _note_lost(self, ".value")
        return self._value

    @property
    def trainable(self) -> bool:
        return False

    @property
    def inputs(self) -> tuple[tuple[str, Node], ...]:
        """(argument name, input node) pairs, in call order."""
        return tuple(zip(self.arg_names, self.args))

    @property
    def feedback(self) -> list[Feedback]:
        """Feedback given to this node as an output."""
        return list(self._feedback or ())

    def backward(self, feedback: Feedback | str | float | int) -> list[Param]:
        """Give this output feedback; every parameter it depends on will see it."""
        return backward(self, feedback)

    def __repr__(self) -> str:
        label = self.name or (self.op.name if self.op else "node")
        if self.error is not None:
            return f"<Node {label} error={self.error}>"
        return f"<Node {label}={short(self._value, 60)}>"

    # Identity, not value, decides membership in sets and dicts (== is a traced op).
    __hash__ = object.__hash__

    # Pickled (to a sandbox worker, a Ray task) without feedback: it would drag whole graphs along.
    def __getstate__(self) -> dict[str, Any]:
        return {
            slot: getattr(self, slot)
            for cls in type(self).__mro__
            for slot in getattr(cls, "__slots__", ())
            if slot not in ("__weakref__", "_feedback") and hasattr(self, slot)
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._feedback = None
        for slot, value in state.items():
            object.__setattr__(self, slot, value)

    # -- traced operators ------------------------------------------------------------
    __add__, __radd__ = _binary("add", operator.add, "a + b")
    __sub__, __rsub__ = _binary("sub", operator.sub, "a - b")
    __mul__, __rmul__ = _binary("mul", operator.mul, "a * b")
    __truediv__, __rtruediv__ = _binary("truediv", operator.truediv, "a / b")
    __floordiv__, __rfloordiv__ = _binary("floordiv", operator.floordiv, "a // b")
    __mod__, __rmod__ = _binary("mod", operator.mod, "a % b")
    __pow__, __rpow__ = _binary("pow", operator.pow, "a ** b")
    __and__, __rand__ = _binary("and", operator.and_, "a & b")
    __or__, __ror__ = _binary("or", operator.or_, "a | b")
    __xor__, __rxor__ = _binary("xor", operator.xor, "a ^ b")
    __lt__ = _binary("lt", operator.lt, "a < b")[0]
    __le__ = _binary("le", operator.le, "a <= b")[0]
    __gt__ = _binary("gt", operator.gt, "a > b")[0]
    __ge__ = _binary("ge", operator.ge, "a >= b")[0]
    __eq__ = _binary("eq", operator.eq, "a == b")[0]  # type: ignore[assignment]
    __ne__ = _binary("ne", operator.ne, "a != b")[0]  # type: ignore[assignment]
    __neg__ = _unary("neg", operator.neg, "-a")
    __pos__ = _unary("pos", operator.pos, "+a")
    __abs__ = _unary("abs", operator.abs, "abs(a)")
    __invert__ = _unary("invert", operator.invert, "~a")

    def __getitem__(self, key: Any) -> Any:
        return _apply(_GETITEM, operator.getitem, ("obj", "key"), self, key)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __str__(self) -> str:
        if _reads.get() is None:
            _note_lost(self, "str()")
        return str(self._value)

    def __format__(self, spec: str) -> str:
        if _reads.get() is None:
            _note_lost(self, "an f-string or format()")
        return format(self._value, spec)

    def __index__(self) -> int:
        return self._value.__index__()

    def __float__(self) -> float:
        return float(self._value)

    def __int__(self) -> int:
        return int(self._value)

    def __iter__(self) -> Iterator[Any]:
        if isinstance(self._value, dict):
            yield from self._value  # keys are plain; index the node to trace a lookup
            return
        for i in range(len(self._value)):
            yield self[i]

    def len(self) -> Node:
        """Traced `len(value)` (Python's own `len(node)` must return a plain int)."""
        return length(self)

    def __getattr__(self, attribute: str) -> Any:
        # Methods of the value (str.upper, list.index, dict.get, ...) become traced ops.
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        method = getattr(self._value, attribute, None)
        if not callable(method):
            raise AttributeError(
                f"{type(self._value).__name__} value of node {self!r} has no method {attribute!r}"
            )
        return method_op(self, attribute)


def length(obj: Any) -> Any:
    """Traced `len`: a node holding the length (Python's own `len()` must return an int)."""
    return _apply(_LEN, len, ("obj",), obj)


def method_op(node: Node, attribute: str) -> Callable[..., Any]:
    """`node.upper()`, `node.split(",")`, `node.get("k")`, ... as traced operations."""
    key = (type(node._value), attribute)
    info = _method_infos.get(key)
    if info is None:
        qualname = f"{key[0].__name__}.{attribute}"
        doc = (inspect.getdoc(getattr(key[0], attribute, None)) or "").split("\n")[0]
        info = _method_infos[key] = OpInfo(qualname, f"{qualname}(self, ...)", doc)

    def call(*args: Any, **kwargs: Any) -> Any:
        names = ("self", *(f"arg{i}" for i in range(len(args))), *kwargs)
        return _apply(
            info,
            lambda obj, *rest: getattr(obj, attribute)(
                *rest[: len(args)], **dict(zip(kwargs, rest[len(args):]))
            ),
            names,
            node,
            *args,
            *kwargs.values(),
        )

    return call


_KINDS: dict[type, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    list: "list",
    dict: "dict",
}
PARAM_KINDS = ("str", "int", "float", "bool", "list", "dict", "code")
_auto_names = itertools.count()


class Param(Node):
    """A trainable node: its value may change, within its type, bounds and choices."""

    __slots__ = ("_outputs", "bounds", "choices", "constraint", "description", "given_name", "keep",
                 "kind", "max_tokens")

    def __init__(
        self,
        value: Any,
        *,
        name: str | None = None,
        description: str = "",
        constraint: str | None = None,
        bounds: tuple[float | None, float | None] | None = None,
        choices: list[Any] | None = None,
        kind: str | None = None,
        keep: Iterable[str] = (),
        max_tokens: int | None = None,
    ) -> None:
        self.kind = kind or infer_kind(value)
        if self.kind not in PARAM_KINDS:
            raise ValueError(f"unknown parameter kind {self.kind!r}; expected one of {PARAM_KINDS}")
        if bounds is not None and self.kind not in ("int", "float"):
            raise ValueError(f"bounds apply to int and float parameters, not {self.kind}")
        if (keep or max_tokens is not None) and self.kind not in ("str", "code"):
            raise ValueError(f"keep= and max_tokens= apply to text and code parameters, not "
                             f"{self.kind}")
        self.keep = tuple(keep)  # spans every value must hold verbatim (a mandatory format)
        self.max_tokens = max_tokens  # the most tokens a value may have (estimated)
        self.bounds = tuple(bounds) if bounds is not None else None
        self.choices = list(choices) if choices is not None else None
        self.description = description
        self.constraint = constraint
        self._outputs: dict[int, Node] = {}
        self.given_name = name  # None: a `bf.Module` names it by its attribute path
        super().__init__(None, name=name or f"param{next(_auto_names)}")
        self._value = self.validate(value)

    @property
    def trainable(self) -> bool:
        return True

    @Node.value.setter
    def value(self, new: Any) -> None:
        self._value = self.validate(new)

    def validate(self, value: Any) -> Any:
        """Return `value` as this parameter's type, or raise TypeError/ValueError saying why."""
        kind = self.kind
        if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        expected = str if kind == "code" else next(t for t, k in _KINDS.items() if k == kind)
        if type(value) is not expected:
            raise TypeError(
                f"parameter {self.name!r} is {kind}; got {type(value).__name__} {short(value, 60)}"
            )
        if kind == "float" and not math.isfinite(value):
            raise ValueError(f"parameter {self.name!r} must be finite, got {value}")
        if self.bounds is not None:
            lo, hi = self.bounds
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise BoundsError(
                    f"parameter {self.name!r} must lie in [{lo}, {hi}], got {value}"
                )
        if self.choices is not None and value not in self.choices:
            raise ChoiceError(
                f"parameter {self.name!r} must be one of {self.choices}, got {short(value, 60)}"
            )
        dropped = [span for span in self.keep if span not in value]
        if dropped:
            raise KeptError(f"parameter {self.name!r} must keep {short(dropped[0], 80)} "
                            "verbatim; the value drops it")
        if self.max_tokens is not None and estimate_tokens(value) > self.max_tokens:
            raise LengthError(f"parameter {self.name!r} may have at most {self.max_tokens} "
                              f"tokens; the value has about {estimate_tokens(value)}")
        return value

    def rules(self) -> list[str]:
        """What every value must satisfy beyond its type, as a prompt states it."""
        return [f"keep verbatim: {span!r}" for span in self.keep] + (
            [f"at most {self.max_tokens} tokens"] if self.max_tokens is not None else [])

    @property
    def feedback(self) -> list[tuple[Node, Feedback]]:
        """(output, feedback) pairs for every output this parameter influenced."""
        return [(out, fb) for out in self._outputs.values() for fb in out._feedback or ()]

    @property
    def outputs(self) -> list[Node]:
        """Outputs that received feedback and depend on this parameter."""
        return list(self._outputs.values())

    def zero_feedback(self) -> None:
        """Forget feedback (and release the graphs it kept alive); parameters that share an
        output with this one keep its feedback (see `backfeed.graph.zero_feedback`)."""
        zero_feedback([self])

    # Pickled with its value and settings, not the outputs that got feedback (whole graphs).
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        del state["_outputs"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._outputs = {}

    def __repr__(self) -> str:
        return f"<Param {self.name}: {self.kind} = {short(self._value, 60)}>"


def infer_kind(value: Any) -> str:
    """The parameter kind of a plain value, or a TypeError naming the unsupported type."""
    kind = _KINDS.get(type(value))
    if kind is None:
        raise TypeError(
            f"unsupported parameter type {type(value).__name__}; "
            "a parameter holds a str, int, float, bool, list, dict or code"
        )
    return kind


def param(
    value: Any,
    name: str | None = None,
    description: str = "",
    constraint: str | None = None,
    *,
    bounds: tuple[float | None, float | None] | None = None,
    choices: list[Any] | None = None,
    kind: str | None = None,
    keep: Iterable[str] = (),
    max_tokens: int | None = None,
) -> Param:
    """Create a trainable parameter. Its type is fixed now and checked on every update.

    For text and code, `keep` lists spans every value must hold verbatim (a mandatory output
    format, a required field) and `max_tokens` caps its length; a proposal that breaks either
    is rejected with the reason, and the optimizers' prompts state both."""
    return Param(
        value,
        name=name,
        description=description,
        constraint=constraint,
        bounds=bounds,
        choices=choices,
        kind=kind,
        keep=keep,
        max_tokens=max_tokens,
    )


def node(value: Any, name: str | None = None) -> Node:
    """Wrap a value as a traced constant or input (a node is returned unchanged)."""
    if isinstance(value, Node):
        return value
    return Node(value, name=name)


# Small ints recorded as constants share one node each, as CPython shares the ints themselves:
# `y + 1` then adds one node to the graph, not two (half the objects to allocate and to scan).
_SMALL_INTS = tuple(Node(v) for v in range(-5, 257))


def constant(value: Any) -> Node:
    """The node of a plain argument: a new constant, or the shared one of a small int."""
    if type(value) is int and -5 <= value <= 256:
        return _SMALL_INTS[value + 5]
    return Node(value)


# -- backward: feedback to every parameter an output depends on --------------------------

class NoTrainableAncestor(ValueError):
    """backward() was called on an output that no parameter influenced."""


def trainable_ancestors(output: Node) -> list[Param]:
    """The parameters `output` depends on (parameters are leaves, so leaves are not stacked)."""
    params = [output] if isinstance(output, Param) else []
    seen = {output}  # nodes hash by identity
    stack = [output]
    while stack:
        for child in stack.pop().args:
            if child not in seen:
                seen.add(child)
                if child.args:
                    stack.append(child)
                elif isinstance(child, Param):
                    params.append(child)
    return params


def backward(output: Node, feedback: Feedback | str | float | int) -> list[Param]:
    """Attach feedback to `output` and register it with every parameter it depends on."""
    fb = Feedback.of(feedback)
    params = trainable_ancestors(output)
    if not params:
        raise NoTrainableAncestor(
            f"backward() on {output!r}: no trainable parameter influenced this output. "
            + _trace_loss_hint(output)
        )
    if output._feedback is None:
        output._feedback = []
    output._feedback.append(fb)
    for p in params:
        p._outputs[id(output)] = output
    return params


_COMMON_CAUSES = (
    "Common causes: an f-string, str() or .value on a parameter or a node gives plain text "
    "and drops the trace; build text with bf.format(\"{a} {b}\", a=node, b=...) instead, and "
    "pass parameters (or nodes computed from them) as arguments to @bf.op functions."
)


def _trace_loss_hint(output: Node) -> str:
    """Name the parameters whose text reached `output` through an f-string, str() or .value."""
    texts = []  # the plain values that entered the graph of `output` as constants
    seen, stack = {output}, [output]
    while stack:
        n = stack.pop()
        if n.op is None and not n.args and isinstance(n._value, str):
            texts.append(n._value)
        for child in n.args:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    causes: dict[str, str] = {}
    for params, how, text in reversed(lost_traces()):  # the most recent loss first
        if len(text) >= 3 and any(text in t for t in texts):
            for p in params:
                causes.setdefault(p.name, how)
    if not causes:
        return _COMMON_CAUSES
    lost = ", ".join(f"{name!r} (through {how})" for name, how in causes.items())
    return (
        f"The trace was lost: the text of parameter(s) {lost} reached this output as a plain "
        "value, which copies the text and drops the trace. Build the text with "
        "bf.format(\"...{p}...\", p=param) or pass the parameter into a @bf.op function, so "
        "the trace reaches it."
    )


def zero_feedback(params: Iterable[Param]) -> None:
    """Forget the feedback of `params`, releasing the graphs it kept alive.

    Like torch's `zero_grad`, only these parameters forget: an output's feedback is dropped
    once no parameter holds the output any more, so another optimizer's parameters that
    share the output keep theirs."""
    released: dict[int, Node] = {}
    for p in params:
        released.update(p._outputs)
        p._outputs = {}
    for key, out in released.items():
        if not any(key in q._outputs for q in trainable_ancestors(out)):
            out._feedback = None
