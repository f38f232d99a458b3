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
        self.exceeded: tuple[str, str] | None = None  # the budget error's (limit, message)

    def call(self, messages: list[Message], options: dict[str, Any]) -> Completion:
        started = time.perf_counter()
        try:
            completion = self.llm.complete(messages, **options)
        except BudgetExceeded as exc:
            self.exceeded = (exc.limit, str(exc))
            raise
        self.calls.append(RemoteCall([dict(m) for m in messages], dict(options), completion,
                                     time.perf_counter() - started))
        return completion


def _run_parts() -> tuple[Recorded | None, Metered, ProgramModel] | None:
    """The program model of the run (or `bf.evaluate`) going on here and its layers: the
    recorder (None for `bf.evaluate`, which stores nothing), the meter and the model. None
    outside both; a program model of another shape is a bug, said so."""
    program = run_program()
    if program is None:
        return None
    recorded = program if isinstance(program, Recorded) else None
    metered = recorded.llm if recorded is not None else program
    if not isinstance(metered, Metered) or not isinstance(metered.llm, ProgramModel):
        raise TypeError(f"the program model {program!r} is not a metered ProgramModel")
    return recorded, metered, metered.llm


def shipment(tasks: int) -> list[Shipment | None]:
    """For each of `tasks` worker tasks, the run's program model with its share of each
    budget limit left: the calls and tokens left split as evenly as whole numbers allow, the
    dollars evenly, so that the tasks together cannot pass the budget. [None] * tasks outside
    a run."""
    parts = _run_parts()
    if parts is None:
        return [None] * tasks
    _, metered, program = parts
    b, s = metered.budget, metered.spend

    def shares(limit: float | None, used: float, whole: bool) -> list[Any]:
        if limit is None:
            return [None] * tasks
        left = max(limit - used, 0)
        if whole:  # calls and tokens: whole numbers; dollars: any amount
            base, extra = divmod(int(left), tasks)
            return [base + (i < extra) for i in range(tasks)]
        return [left / tasks] * tasks

    calls, tokens, usd = shares(b.llm_calls, s.calls, True), shares(b.tokens, s.tokens, True), \
        shares(b.usd, s.usd, False)
    return [Shipment(program.default, Budget(llm_calls=c, tokens=t, usd=u))
            for c, t, u in zip(calls, tokens, usd)]


def evaluate_remotely(shipment: Shipment | None, evaluate: Any
                      ) -> tuple[Any, list[RemoteCall], tuple[str, str] | None]:
    """On a worker: `evaluate()` with bf.chat's calls (program model and explicit ones)
    metered against the shipped share; (its result, the calls, the budget error if any)."""
    if shipment is None:
        return evaluate(), [], None
    log = _Log(Metered(ProgramModel(shipment.model), shipment.budget, Spend(), role="program"))
    with running(log):
        result = evaluate()
    return result, log.calls, log.exceeded


def take_back(calls: list[RemoteCall], exceeded: tuple[str, str] | None) -> None:
    """On the driver: count and store the calls a worker made, as if made here; a budget
    reached there stops the run as one reached here does."""
    parts = _run_parts()
    if parts is None:
        if calls:
            raise RuntimeError("program calls came back from a worker with no run to count them")
        return
    recorded, metered, _ = parts
    for call in calls:
        metered.record(call.completion)
        if recorded is not None:
            recorded.store_call(call.messages, call.options, call.completion, call.seconds)
    if exceeded is not None and recorded is not None and recorded.exceeded is None:
        limit, message = exceeded
        recorded.exceeded = BudgetExceeded(limit, f"{message} (on a remote worker)")
