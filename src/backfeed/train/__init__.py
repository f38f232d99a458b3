"""Training: the trainer loop, search strategies, budgets and stop rules, and executors."""

from . import executors, search
from .evaluate import EvalResult, MetricError
from .executors import Async, Executor, Ray, Threads
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
from .trainer import Estimate, StepSummary, Trainer, TrainResult, history, train

__all__ = [
    "UCB",
    "Async",
    "Beam",
    "BestOfN",
    "Candidate",
    "Estimate",
    "EvalResult",
    "Executor",
    "Greedy",
    "LLMJudge",
    "MetricError",
    "Pairwise",
    "Pareto",
    "Ray",
    "StepSummary",
    "Strategy",
    "Threads",
    "TrainResult",
    "Trainer",
    "Verdict",
    "executors",
    "history",
    "pareto_front",
    "search",
    "train",
]
