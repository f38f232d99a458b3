"""backfeed through its public API: `bf.train` with `bf.optim.Prime` under a call budget.

Options: `backfeed:candidates=N` asks Prime for N candidates per step (default: Prime's own);
`backfeed:compact=1` asks for each code or text parameter with its own short prompt (Prime's
default only on the in-process embedded model; the suite reaches the model over HTTP).
"""

from __future__ import annotations

import tempfile

import backfeed as bf

from ..tasks import Task
from . import MINIBATCH, RunContext


class BackfeedAdapter:
    name = "backfeed"
    options = ("candidates", "compact")

    def unsupported(self, task: Task) -> str | None:
        return None  # every parameter kind is native to backfeed

    def optimize(self, ctx: RunContext) -> None:
        if not hasattr(bf, "train") or not hasattr(bf.optim, "Prime"):
            raise RuntimeError("this backfeed build has no bf.train / bf.optim.Prime yet")
        program = ctx.program
        options = {}
        if "candidates" in ctx.options:
            options["candidates"] = int(ctx.options["candidates"])
        if "compact" in ctx.options:
            options["compact"] = ctx.options["compact"].lower() in ("1", "true", "yes")
        optimizer = bf.optim.Prime(program.parameters(), llm=ctx.llm, **options)
        with tempfile.TemporaryDirectory(prefix="bf-bench-") as run_dir:
            # bf.train loads the best values it validated into the program
            bf.train(
                program,
                ctx.task.trainset,
                valset=ctx.task.valset,
                metric=ctx.metric,
                optimizer=optimizer,
                budget=bf.Budget(llm_calls=ctx.call_limit),
                seed=ctx.seed,
                minibatch_size=MINIBATCH,
                run_dir=run_dir,
                progress=False,
            )


ADAPTER = BackfeedAdapter()
