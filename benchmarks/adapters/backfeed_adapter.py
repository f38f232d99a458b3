"""backfeed through its public API: `bf.train` with `bf.optim.auto` (what a user gets by
default: Prime for text and code, Around for numbers) under a call budget.

Options (several are joined by colons: `backfeed:compact=1:accept=improves`):
`candidates=N` asks Prime for N candidates per step (default: Prime's own);
`compact=1` asks for each code or text parameter with its own short prompt (Prime's
default only on the in-process embedded model; the suite reaches the model over HTTP);
`accept=RULE` is bf.train's acceptance rule: `no_worse` (Greedy's default), `improves` or
`significant` (`-` or `_` for the space);
`copy_guard=0` turns off the guard that refuses proposals copying training data (on by default).

After each run the adapter reads the run store (before its temporary folder goes) and prints
one line `backfeed stats: {...}`: proposals evaluated and accepted (decisions of steps >= 0
on a candidate),
`spend["guards"]` (proposals the copy guard refused), the rule and the stop reason. The line
is also kept in `ADAPTER.stats` and, when $BACKFEED_BENCH_STATS names a file, appended to it as
JSON (one object a line, with the task, seed and options).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import backfeed as bf

from ..tasks import Task
from . import MINIBATCH, RunContext

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag(name: str, text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError(f"backfeed option {name}={text!r}: use 1 or 0")


class BackfeedAdapter:
    name = "backfeed"
    options = ("candidates", "compact", "accept", "copy_guard")

    def __init__(self) -> None:
        self.stats: list[dict[str, Any]] = []  # one per run, in order

    def unsupported(self, task: Task) -> str | None:
        return None  # every parameter kind is native to backfeed

    def optimize(self, ctx: RunContext) -> None:
        if not hasattr(bf, "train") or not hasattr(bf.optim, "Prime"):
            raise RuntimeError("this backfeed build has no bf.train / bf.optim.Prime yet")
        program = ctx.program
        options: dict[str, Any] = {}
        if "candidates" in ctx.options:
            options["candidates"] = int(ctx.options["candidates"])
        if "compact" in ctx.options:
            options["compact"] = _flag("compact", ctx.options["compact"])
        train_options: dict[str, Any] = {}
        if "accept" in ctx.options:
            train_options["accept"] = ctx.options["accept"]  # bf.train checks the name
        if "copy_guard" in ctx.options:
            train_options["copy_guard"] = _flag("copy_guard", ctx.options["copy_guard"])
        optimizer = bf.optim.auto(program.parameters(), llm=ctx.llm, **options)  # the default
        with tempfile.TemporaryDirectory(prefix="bf-bench-") as run_dir:
            try:
                # bf.train loads the best values it validated into the program
                bf.train(
                    program,
                    ctx.task.trainset,
                    valset=ctx.task.valset,
                    metric=ctx.metric,
                    optimizer=optimizer,
                    # The call limit is the harness's: ctx.llm (the optimizer's model) refuses
                    # calls past it. bf.Budget(llm_calls=) would count the program's own model
                    # calls too (prompt tasks), leaving the optimizer a few, and a run whose
                    # program is refused loops without end (seen on bbh/word_sorting, 2026-12-03).
                    # The step cap only guards against such a loop.
                    steps=8 * ctx.call_limit + 8,
                    seed=ctx.seed,
                    minibatch_size=MINIBATCH,
                    run_dir=run_dir,
                    progress=False,
                    **train_options,
                )
            finally:  # also when the run raises (the budget): read the store while it exists
                self._record(ctx, os.path.join(run_dir, "runs.db"), train_options)

    def _record(self, ctx: RunContext, path: str, train_options: dict[str, Any]) -> None:
        stats: dict[str, Any] = {"task": ctx.task.name,
                                 "seed": ctx.seed, "options": dict(ctx.options),
                                 "accept": train_options.get("accept", "no worse (default)"),
                                 "copy_guard": train_options.get("copy_guard", True)}
        try:
            from backfeed.store import RunStore

            store = RunStore(path)
            runs = store.list_runs()
            if not runs:
                stats["error"] = "no run in the store"
            else:
                run = runs[0]
                # a decision on candidate -1 is a step with no proposal (e.g. the stop)
                decisions = [d for d in store.decisions(run.id)
                             if d.step >= 0 and d.candidate_id >= 0]
                stats.update(
                    run_id=run.id, status=run.status, stop_reason=run.stop_reason,
                    evaluated=len(decisions),
                    accepted=sum(1 for d in decisions if d.accepted),
                    guards=int((run.spend or {}).get("guards", 0)),
                    steps=len(store.steps(run.id)),
                    best_score=run.best_score,
                )
            store.close()
        except Exception as exc:  # the stats are a report, never the run's failure
            stats["error"] = f"{type(exc).__name__}: {exc}"
        self.stats.append(stats)
        line = json.dumps(stats, default=str)
        print(f"backfeed stats: {line}", flush=True)
        target = os.environ.get("BACKFEED_BENCH_STATS")
        if target:
            with open(target, "a") as out:
                out.write(line + "\n")


ADAPTER = BackfeedAdapter()
