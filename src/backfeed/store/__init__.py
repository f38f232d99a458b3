"""The run store: every run, step, candidate, evaluation, LLM call and decision, in SQLite."""

from .mlflow_export import export_mlflow
from .pareto import pareto_wins
from .records import HeldOut, ParamUpdate, Problem, Proposal, StepReport
from .runstore import (
    ROLES,
    CandidateRecord,
    ComparisonRecord,
    DecisionRecord,
    EvaluationRecord,
    LLMCallRecord,
    RunRecord,
    RunStore,
    StepRecord,
    StepReportRecord,
    UnknownRun,
    default_store_path,
    to_json,
    values_hash,
)

__all__ = [
    "ROLES",
    "CandidateRecord",
    "ComparisonRecord",
    "DecisionRecord",
    "EvaluationRecord",
    "HeldOut",
    "LLMCallRecord",
    "ParamUpdate",
    "Problem",
    "Proposal",
    "RunRecord",
    "RunStore",
    "StepRecord",
    "StepReport",
    "StepReportRecord",
    "UnknownRun",
    "default_store_path",
    "export_mlflow",
    "pareto_wins",
    "to_json",
    "values_hash",
]
