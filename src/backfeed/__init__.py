"""backfeed: optimize whole AI workflows the way autograd optimizes neural networks."""

from . import graph, llm, optim, sandbox, store
from .budget import Budget, BudgetExceeded, RunStop
from .example import Example, LabelLeakError
from .graph import (
    CodeError,
    ErrorInfo,
    ExecutionError,
    Feedback,
    Module,
    Node,
    NoTrainableAncestor,
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
from .otel import feedback  # bf.feedback(trace_id, score=, text=): feedback on a deployed app
from .program import Prompt, SignatureError, achat, chat
from .sandbox import Sandbox, SandboxError
from .train import (
    EditedByHand,
    EvalReport,
    EvalResult,
    MetricError,
    ModelFailed,
    OutputNotTraced,
    Trainer,
    cross_validate,
    evaluate,
    executors,
    search,
    train,
)

__version__ = "0.1.0"

__all__ = [  # noqa: RUF022
    "Budget",
    "BudgetExceeded",
    "RunStop",
    "CodeError",
    "ErrorInfo",
    "ExecutionError",
    "Feedback",
    "Module",
    "Node",
    "Param",
    "Rendering",
    "Sandbox",
    "SandboxError",
    "Subgraph",
    "Trainer",
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
    # training (appended, not sorted, to keep merges simple)
    "executors",
    "search",
    "sandbox",
    "store",
    "train",
    "EditedByHand",
    "EvalReport",
    "EvalResult",
    "MetricError",
    "ModelFailed",
    "NoTrainableAncestor",
    "OutputNotTraced",
    "evaluate",
    # model calls inside programs
    "achat",
    "chat",
    "Prompt",
    "SignatureError",
    "cross_validate",
    "feedback",
    # datasets
    "Example",
    "LabelLeakError",
]
