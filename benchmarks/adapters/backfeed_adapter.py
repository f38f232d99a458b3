"""backfeed through its public API: `bf.train` with `bf.optim.Prime` under a call budget."""

from __future__ import annotations

from typing import Any

import backfeed as bf

from ..tasks import Task
from . import RunContext


class BackfeedAdapter:
    name = "backfeed"

    def unsupported(self, task: Task) -> str | None:
        return None  # every parameter kind is native to backfeed

    def optimize(self, ctx: RunContext) -> None:
        if not hasattr(bf, "train") or not hasattr(bf.optim, "Prime"):
            raise RuntimeError("this backfeed build has no bf.train / bf.optim.Prime yet")
        program = ctx.program
        optimizer = bf.optim.Prime(program.parameters(), llm=ctx.llm)
        result = bf.train(
            program,
            ctx.task.trainset,
            valset=ctx.task.valset,
            metric=ctx.metric,
            optimizer=optimizer,
            budget=bf.Budget(llm_calls=ctx.call_limit),
            **_train_options(),
        )
        best = _best_state(result)
        if best:
            program.load_state_dict(best, strict=False)


def _train_options() -> dict[str, Any]:
    return {}


def _best_state(result: Any) -> dict[str, Any] | None:
    """The best parameter state the trainer reports, if it reports one by a known name."""
    for attribute in ("best_state", "best_state_dict", "best_params"):
        state = getattr(result, attribute, None)
        if isinstance(state, dict) and state:
            return state
    return None


ADAPTER = BackfeedAdapter()
