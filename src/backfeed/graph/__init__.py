"""The graph room: nodes, parameters, traced ops, modules, backward and rendering."""

from .execute import CodeError, SandboxLike, get_default_sandbox, set_default_sandbox
from .module import Module
from .node import (
    BoundsError,
    ChoiceError,
    ErrorInfo,
    ExecutionError,
    Feedback,
    KeptError,
    LengthError,
    Node,
    OpInfo,
    Param,
    is_tracing,
    length,
    no_trace,
    node,
    param,
)
from .op import BoundOp, Op, format, op, watching_ops
from .render import RenderBudgetError, Rendering, render, to_dot
from .subgraph import NoTrainableAncestor, Subgraph, backward, minimal_subgraph, zero_feedback

__all__ = [
    "BoundOp",
    "BoundsError",
    "ChoiceError",
    "CodeError",
    "ErrorInfo",
    "ExecutionError",
    "Feedback",
    "KeptError",
    "LengthError",
    "Module",
    "NoTrainableAncestor",
    "Node",
    "Op",
    "OpInfo",
    "Param",
    "RenderBudgetError",
    "Rendering",
    "SandboxLike",
    "Subgraph",
    "backward",
    "format",
    "get_default_sandbox",
    "is_tracing",
    "length",
    "minimal_subgraph",
    "no_trace",
    "node",
    "op",
    "param",
    "render",
    "set_default_sandbox",
    "to_dot",
    "watching_ops",
    "zero_feedback",
]
