"""Optimizers: one contract (zero_feedback / step / state_dict), many ways to propose values."""

from .base import Optimizer, ParamUpdate, StepReport

__all__ = ["Optimizer", "ParamUpdate", "StepReport"]
