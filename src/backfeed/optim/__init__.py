"""Optimizers: one contract (zero_feedback / propose / step / state_dict), many ways to propose values."""

from .apply import Rejected, apply_answer, apply_suggestion, check_suggestion, coerce
from .base import Optimizer
from .combine import Combine
from .evolution import Evolution
from .fewshot import FewShot
from .history import History, Observation
from .hybrid import Hybrid, auto
from .local import Around
from .numeric import Numeric
from .opro import OPRO
from .parse import Answer, extract_json, parse_answer, read_answer, recover_function
from .prime import Prime
from .records import ParamUpdate, Problem, Proposal, StepReport
from .textgrad import TextGrad

__all__ = [
    "OPRO",
    "Answer",
    "Around",
    "Combine",
    "Evolution",
    "FewShot",
    "History",
    "Hybrid",
    "Numeric",
    "Observation",
    "Optimizer",
    "ParamUpdate",
    "Prime",
    "Problem",
    "Proposal",
    "Rejected",
    "StepReport",
    "TextGrad",
    "apply_answer",
    "apply_suggestion",
    "auto",
    "check_suggestion",
    "coerce",
    "extract_json",
    "parse_answer",
    "read_answer",
    "recover_function",
]
