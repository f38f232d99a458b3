"""`Budget` limits and the `BudgetExceeded` error shared by the LLM layer and the trainer."""

from __future__ import annotations

from dataclasses import asdict, dataclass


class RunStop(Exception):
    """A failure that ends the run, not the step: a budget reached, or a model that cannot be
    used. Optimizers re-raise it (their asking helper never turns it into a step report), so
    the trainer learns of it from the exception, not by polling the model's wrappers."""


class BudgetExceeded(RunStop, RuntimeError):
    """Raised instead of doing work that would pass a `Budget` limit."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass(frozen=True)
class Budget:
    """Limits for a run. `None` means unlimited.

    llm_calls, tokens and usd are enforced by the LLM layer before each call; metric_calls,
    seconds, patience (steps without improvement) and target (a score to stop at) by the trainer.
    """

    llm_calls: int | None = None
    tokens: int | None = None
    usd: float | None = None
    metric_calls: int | None = None
    seconds: float | None = None
    patience: int | None = None
    target: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)
