"""Training: the trainer loop, search strategies, budgets and stop rules, and executors."""

from . import executors, search
from .estimate import Estimate
from .evaluate import EvalReport, EvalResult, EvalRow, MetricError, OutputNotTraced, evaluate
from .executors import Async, Executor, Ray, Threads
from .failures import ModelFailed
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
from .trainer import StepSummary, Trainer, TrainResult, history, train

__all__ = [
    "UCB",
    "Async",
    "Beam",
    "BestOfN",
    "Candidate",
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
    "evaluate",
    "executors",
    "history",
    "pareto_front",
    "search",
    "train",
]
