"""A run's program model on remote workers: shipped with a share of the budget left, metered
there, and its calls sent back to be counted and stored by the run."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..budget import Budget, BudgetExceeded
from ..llm import LLM, Completion, Message, Metered, Spend, Wrapper
from ..llm.context import ProgramModel, run_program, running
from .record import Recorded


@dataclass(frozen=True)
class RemoteCall:
    """One program call made on a worker, as the run stores it."""

    messages: list[Message]
    options: dict[str, Any]
    completion: Completion
    seconds: float


@dataclass(frozen=True)
class Shipment:
    """What a worker needs to make the run's program calls: the model and its budget share."""

    model: LLM
    budget: Budget


class _Log(Wrapper):
    """Keeps every call made through it, and the budget error that stopped one."""

    def __init__(self, llm: LLM) -> None:
        super().__init__(llm)
        self.calls: list[RemoteCall] = []
        self.exceeded: str | None = None

    def call(self, messages: list[Message], options: dict[str, Any]) -> Completion:
        started = time.perf_counter()
        try:
            completion = self.llm.complete(messages, **options)
        except BudgetExceeded as exc:
            self.exceeded = f"{exc.limit}: {exc}"
            raise
        self.calls.append(RemoteCall([dict(m) for m in messages], dict(options), completion,
                                     time.perf_counter() - started))
        return completion


def _run_parts() -> tuple[Recorded, Metered, ProgramModel] | None:
    """The run's program model and its layers, when a run is going on here."""
    program = run_program()
    if not isinstance(program, Recorded) or not isinstance(program.llm, Metered):
        return None
    inner = program.llm.llm
    return (program, program.llm, inner) if isinstance(inner, ProgramModel) else None


def shipment(workers: int) -> Shipment | None:
    """The run's program model with `1/workers` of each budget limit left (None outside a
    run): the workers together cannot pass the run's budget."""
    parts = _run_parts()
    if parts is None:
        return None
    _, metered, program = parts
    b, s = metered.budget, metered.spend

    def share(limit: float | None, used: float) -> Any:
        if limit is None:
            return None
        left = max(limit - used, 0)
        return type(limit)(left // workers) if isinstance(limit, int) else left / workers

    budget = Budget(llm_calls=share(b.llm_calls, s.calls), tokens=share(b.tokens, s.tokens),
                    usd=share(b.usd, s.usd))
    return Shipment(program.default, budget)


def evaluate_remotely(shipment: Shipment | None, evaluate: Any) -> tuple[Any, list[RemoteCall],
                                                                        str | None]:
    """On a worker: `evaluate()` with bf.chat's calls (program model and explicit ones)
    metered against the shipped share; (its result, the calls, the budget error if any)."""
    if shipment is None:
        return evaluate(), [], None
    log = _Log(Metered(ProgramModel(shipment.model), shipment.budget, Spend(), role="program"))
    with running(log):
        result = evaluate()
    return result, log.calls, log.exceeded


def take_back(calls: list[RemoteCall], exceeded: str | None) -> None:
    """On the driver: count and store the calls a worker made, as if made here; a budget
    reached there stops the run as one reached here does."""
    parts = _run_parts()
    if parts is None:
        return
    recorded, metered, _ = parts
    for call in calls:
        metered.record(call.completion)
        recorded.store_call(call.messages, call.options, call.completion, call.seconds)
    if exceeded is not None and recorded.exceeded is None:
        limit, _, message = exceeded.partition(": ")
        recorded.exceeded = BudgetExceeded(limit, f"{message} (on a remote worker)")
