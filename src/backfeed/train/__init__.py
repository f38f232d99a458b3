"""Training: the trainer loop, search strategies, budgets and stop rules, and executors."""

from . import executors, search
from .estimate import Estimate
from .evaluate import EvalResult, MetricError, OutputNotTraced
from .executors import Async, Executor, Ray, Threads
from .failures import ModelFailed
from .folds import CrossValidation, cross_validate
from .reports import StepSummary, TrainResult, history
from .scoring import EvalReport, EvalRow, evaluate
from .search import (
    UCB,
    Beam,
    BestOfN,
    Candidate,
    Greedy,
    LLMJudge,
    Pairwise,
    Pareto,
    Strategy,
    Verdict,
    pareto_front,
)
from .session import EditedByHand
from .trainer import Trainer, train

__all__ = [
    "UCB",
    "Async",
    "Beam",
    "BestOfN",
    "Candidate",
    "CrossValidation",
    "EditedByHand",
    "Estimate",
    "EvalReport",
    "EvalResult",
    "EvalRow",
    "Executor",
    "Greedy",
    "LLMJudge",
    "MetricError",
    "ModelFailed",
    "OutputNotTraced",
    "Pairwise",
    "Pareto",
    "Ray",
    "StepSummary",
    "Strategy",
    "Threads",
    "TrainResult",
    "Trainer",
    "Verdict",
    "cross_validate",
    "evaluate",
    "executors",
    "history",
    "pareto_front",
    "search",
    "train",
]
