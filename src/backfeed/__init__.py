"""backfeed: optimize whole AI workflows the way autograd optimizes neural networks."""

from . import graph, llm, optim
from .budget import Budget, BudgetExceeded
from .graph import (
    CodeError,
    ErrorInfo,
    ExecutionError,
    Feedback,
    Module,
    Node,
    Param,
    Rendering,
    Subgraph,
    format,
    get_default_sandbox,
    minimal_subgraph,
    no_trace,
    node,
    op,
    param,
    render,
    set_default_sandbox,
    to_dot,
    zero_feedback,
)
from .graph import length as len

__version__ = "0.1.0"

__all__ = [
    "Budget",
    "BudgetExceeded",
    "CodeError",
    "ErrorInfo",
    "ExecutionError",
    "Feedback",
    "Module",
    "Node",
    "Param",
    "Rendering",
    "Subgraph",
    "format",
    "get_default_sandbox",
    "graph",
    "len",
    "llm",
    "minimal_subgraph",
    "no_trace",
    "node",
    "op",
    "optim",
    "param",
    "render",
    "set_default_sandbox",
    "to_dot",
    "zero_feedback",
]
