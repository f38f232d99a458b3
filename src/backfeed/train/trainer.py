"""The trainer: minibatches drive proposals, validation decides what is kept, the store records all.

`train()` checks its arguments and runs a `Run` (train/loop.py: the pool and the step). Every
evaluation and LLM call is stored as it happens, so a resumed run repeats the interrupted step
with stored answers and pays for nothing twice.

The parts: `RunSession` (the run in the store, spend, stop rules, Ctrl-C), `RunModels` (the
user's models wrapped once), `EvalCache` (evaluations), `Scorer` (metric or judge) and
`estimate` (the cost before the run).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..budget import Budget
from ..graph import Module, watching_ops
from ..llm import LLM, chosen
from ..llm.context import DefaultModel, ProgramModel
from ..optim import Combine, Optimizer
from ..otel.export import Telemetry
from ..store import RunStore, values_hash
from .acceptance import Significant, as_acceptance, rule_name
from .estimate import Estimate, estimate
from .evaluate import Forward, Metric, as_examples, as_metric
from .executors import Executor, Threads
from .loop import Run
from .objectives import Pick, check_objectives
from .reports import TrainResult
from .search import Greedy, Strategy
from .session import ON_EDIT, RunModels, RunSession


class Trainer:
    """Train `module` on `trainset`; see `backfeed.train` for the arguments."""

    def __init__(
        self,
        module: Module,
        trainset: Iterable[Any],
        valset: Iterable[Any] | None = None,
        *,
        metric: Metric | None = None,
        optimizer: Optimizer | Sequence[Optimizer],
        strategy: Strategy | None = None,
        budget: Budget | None = None,
        executor: Executor | None = None,
        seed: int = 0,
        steps: int | None = None,
        minibatch_size: int = 4,
        forward: Forward | None = None,
        inputs: Iterable[str] | None = None,
        store: RunStore | str | os.PathLike[str] | None = None,
        run_dir: str | os.PathLike[str] | None = None,
        resume: str | None = None,
        on_edit: str = "error",
        name: str | None = None,
        stop_file: str | os.PathLike[str] | None = None,
        progress: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        program_llm: LLM | None = None,
        testset: Iterable[Any] | None = None,
        accept: str | Callable[..., Any] | None = None,
        copy_guard: bool = True,
        telemetry: Telemetry | str | None = None,
        objectives: Iterable[str] | None = None,
        pick: Pick | None = None,
    ) -> None:
        if not isinstance(module, Module) and not (
            hasattr(module, "state_dict") and hasattr(module, "load_state_dict")
        ):
            raise TypeError("train() needs a bf.Module (with state_dict/load_state_dict)")
        if isinstance(optimizer, list | tuple):  # optimizers on disjoint groups: one step
            optimizer = Combine(optimizer)
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a bf.optim.Optimizer, not {type(optimizer).__name__}")
        _check_optimizer_params(module, optimizer)
        trainset = as_examples(trainset, "trainset", inputs)
        valset = as_examples(valset, "valset", inputs)
        testset = as_examples(testset, "testset", inputs)
        assert trainset is not None
        if len(trainset) == 0:
            raise ValueError("trainset is empty")
        if valset is not None and len(valset) == 0:
            raise ValueError("valset is empty (pass None to validate on the trainset)")
        if testset is not None and len(testset) == 0:
            raise ValueError("testset is empty (pass None for the verdict on validation)")
        self.accept = as_acceptance(accept)  # checks the name now, before any model call
        self.accept_name = rule_name(accept)
        if accept is not None and strategy is not None and strategy.pairwise:
            raise ValueError("accept= decides on metric scores; a Pairwise strategy decides by "
                             "its judge's comparisons: leave accept= out")
        if isinstance(self.accept, Significant):
            self.accept.check(min(minibatch_size, len(trainset)))
        strategy = strategy or Greedy()
        if metric is None and not strategy.pairwise:
            raise ValueError("train() needs metric=(example, output) -> score, or a Pairwise strategy")
        if not isinstance(minibatch_size, int) or minibatch_size < 1:
            raise ValueError(f"minibatch_size must be a positive int, got {minibatch_size!r}")
        budget = budget or Budget()
        if steps is not None and steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        if steps is None and all(
            getattr(budget, k) is None
            for k in ("llm_calls", "tokens", "usd", "metric_calls", "seconds", "patience")
        ):
            raise ValueError(
                "the run has no end: give steps=N or a budget limit (llm_calls, tokens, usd, "
                "metric_calls, seconds or patience)"
            )
        if store is not None and run_dir is not None:
            raise ValueError("give store= or run_dir=, not both")
        if on_edit not in ON_EDIT:
            raise ValueError(f"on_edit must be one of {ON_EDIT}, got {on_edit!r}")
        self.module = module
        self.trainset = trainset
        self.valset = valset
        self.testset = testset
        self.copy_guard = copy_guard
        self.objectives = check_objectives(objectives)
        unmeasured = sorted(set(pick) - set(self.objectives)) if isinstance(pick, Mapping) else []
        if unmeasured:
            raise ValueError(f"pick= limits {unmeasured}, which objectives= does not measure: "
                             f"add them, e.g. objectives={sorted(set(self.objectives) | set(unmeasured))}")
        self.pick = pick
        # spans of the run, its steps and every model call, to an OTLP endpoint: a Telemetry,
        # an endpoint, else $BACKFEED_OTLP_ENDPOINT; off (nothing imported) without one
        self.telemetry = telemetry if isinstance(telemetry, Telemetry) else Telemetry(telemetry)
        self.metric = as_metric(metric) if metric is not None else None
        self.optimizer = optimizer
        self.strategy = strategy
        self.budget = budget
        self.executor = executor or Threads(1)
        self.seed = seed
        self.steps = steps
        self.minibatch_size = min(minibatch_size, len(self.trainset))
        self.forward = forward
        self.store = os.path.join(run_dir, "runs.db") if run_dir is not None else store
        self.resume = resume
        self.on_edit = on_edit
        self.name = name
        self.stop_file = stop_file
        self.progress = progress
        self.clock = clock
        self.program_llm = program_llm

    @property
    def val_split(self) -> str:
        return "val" if self.valset is not None else "train"

    @property
    def val_examples(self) -> list[Any]:
        return self.valset if self.valset is not None else self.trainset

    def config(self) -> dict[str, Any]:
        """What the run is (stored with it; resume checks the search part is unchanged)."""
        return {
            "strategy": self.strategy.config(),
            "optimizer": type(self.optimizer).__name__,
            "executor": repr(self.executor),
            "budget": self.budget.to_dict(),
            "seed": self.seed,
            "steps": self.steps,
            "minibatch_size": self.minibatch_size,
            "trainset": len(self.trainset),
            "valset": None if self.valset is None else len(self.valset),
            # the test split's examples themselves: a resumed run reuses their stored scores
            "testset": None if self.testset is None else {
                "examples": len(self.testset), "hash": values_hash({"testset": self.testset})},
            "accept": self.accept_name,
            "copy_guard": self.copy_guard,
            "objectives": list(self.objectives),
            "params": sorted(self.module.state_dict()),
            "param_kinds": {name: p.kind for name, p in self.module.named_parameters()},
        }

    def estimate(self, *, price: tuple[float, float] | None = None) -> Estimate:
        """Expected LLM calls, tokens, dollars and metric calls, before the run (see
        `backfeed.train.estimate.estimate`)."""
        return estimate(self, price=price)

    def fit(self) -> TrainResult:
        """Run until a limit, the step count, Ctrl-C or the stop file; return the best values."""
        session = RunSession(self.store, config=self.config(), resume=self.resume,
                             name=self.name, budget=self.budget, stop_file=self.stop_file,
                             clock=self.clock, values=self.module.state_dict(),
                             on_edit=self.on_edit)
        judge = self.strategy.judge_llm
        models = RunModels(
            # each model is made when first called: a run that never asks one needs none
            optimizer=session.wrap(self.optimizer.given_llm or DefaultModel(), "optimizer"),
            judge=session.wrap(judge, "judge") if judge is not None else None,
            # bf.chat in the program: program_llm=, else an enclosing `using`, else the default
            # and the models given to bf.chat(llm=...) explicitly, each call to its own model
            program=session.wrap(ProgramModel(self.program_llm or chosen() or DefaultModel()),
                                 "program"),
        )
        for model in models.all():
            model.telemetry = self.telemetry if self.telemetry.enabled else None
        ops = watching_ops(self.telemetry.op) if self.telemetry.enabled and self.telemetry.ops \
            else contextlib.nullcontext()
        try:
            with self.telemetry.run(session.run_id, self.name or ""), ops:
                return Run(self, session, models).fit()
        finally:
            self.telemetry.flush()


def _check_optimizer_params(module: Module, optimizer: Optimizer) -> None:
    """Refuse an optimizer holding parameters that are not the module's (by identity): the
    trainer would step values the program never reads, and each step would find nothing."""
    own = {id(p) for _, p in module.named_parameters()}
    foreign = [p.name for p in optimizer.params if id(p) not in own]
    if foreign:
        raise ValueError(
            f"the optimizer's parameter(s) {foreign} are not parameters of this "
            f"{type(module).__name__} (an optimizer built on another instance's parameters?); "
            "build it on this module's: bf.optim.Prime(module.parameters(), ...)"
        )


def train(
    module: Module,
    trainset: Iterable[Any],
    valset: Iterable[Any] | None = None,
    *,
    metric: Metric | None = None,
    optimizer: Optimizer | Sequence[Optimizer],
    strategy: Strategy | None = None,
    budget: Budget | None = None,
    executor: Executor | None = None,
    seed: int = 0,
    steps: int | None = None,
    minibatch_size: int = 4,
    forward: Forward | None = None,
    inputs: Iterable[str] | None = None,
    store: RunStore | str | os.PathLike[str] | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    resume: str | None = None,
    on_edit: str = "error",
    name: str | None = None,
    stop_file: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    program_llm: LLM | None = None,
    testset: Iterable[Any] | None = None,
    accept: str | Callable[..., Any] | None = None,
    copy_guard: bool = True,
    telemetry: Telemetry | str | None = None,
    objectives: Iterable[str] | None = None,
    pick: Pick | None = None,
) -> TrainResult:
    """Optimize `module`'s parameters on `trainset`, keep what validates on `valset`.

    The trainer calls `module(example[0])` for a tuple/list example, `module(**fields)` for a
    `bf.Example` with declared inputs (or a dict example with `inputs=["question", ...]`:
    only those fields reach the program, the labels reach only the metric), else
    `module(example)` (`forward(module, example)` overrides); `bf.chat` refuses to send a
    whole dict example, labels included, to a model (`bf.LabelLeakError`). Then
    `metric(example, output) -> float |
    bf.Feedback` (a DSPy-style `metric(example, pred, trace=None)` works too). The program may
    return one node or a dict, list, tuple or dataclass of nodes: the metric sees plain values
    and the feedback reaches every parameter behind any part. Datasets may be any iterable.
    Exceptions and printed output of the program become feedback; a metric that raises or
    returns no finite score (NaN, inf) fails the run with `bf.MetricError`, naming the example.
    `optimizer` is built on the module's parameters (all or some); a list of optimizers on
    disjoint groups of them steps as one (`bf.optim.Combine`).

    The run is written to `store` (a RunStore or a path; `run_dir` puts runs.db there; default
    under the XDG data directory) and `resume=run_id` continues a stopped or killed run
    exactly, restoring its stored values into `module`. A parameter edited by hand since (its
    value is neither the run's seed value nor its last stored one) is never overwritten
    silently: `on_edit="error"` (the default) refuses with `EditedByHand` naming it, `"keep"`
    adds the stored best values with the edits as a validated candidate (a step "edited by
    hand" in the history), `"discard"` restores the stored values. It stops after `steps`, on
    a `budget` limit, on Ctrl-C or when the stop file (`<store dir>/<run id>.stop` unless
    given) appears, and finishes when the best values score exactly 1 on every validation
    example and on a training minibatch (nothing left to improve, so no model call is spent on
    it); the best values are loaded into `module` (also when the run raises). A model that
    cannot be used (bad key, unknown model, bad request, or failing after its retries) stops
    the run with `bf.ModelFailed`, naming the model and the fix; the run stays resumable.
    `accept` is the rule that keeps a child from its minibatch scores: "no worse" (Greedy's,
    the default: not worse, and a tie where every score is 0 is refused), "improves",
    "significant" (a paired sign-flip test at 0.05; `bf.train.acceptance.Significant(level)`
    for another level) or a callable `(parent_scores, child_scores) -> bool | (bool, why)`;
    None keeps the strategy's own (Pareto: "improves"). At the end, the seed and the best
    values are scored on `testset`, never used to choose, with a paired bootstrap 95% interval
    of the improvement (without it, on validation, said to be optimistic):
    `result.verdict`, stored with the run and shown by `backfeed show` and the dashboard.
    `copy_guard` (on by default) refuses, before evaluating it, a proposal whose text
    parameter copies training data: a run of 5 words, or a whole field of 2-4 words, of a
    training example that the parent did not have (`backfeed.train.guards`); the run's spend
    counts the refusals as `guards`.
    `objectives` (names of `backfeed.train.objectives.OBJECTIVES`: "prompt_tokens",
    "program_tokens", "latency", "usd", all costs) are measured for each candidate on
    validation and stored with it; Pareto then keeps the non-dominated front over the mean
    score and those costs, and `pick={"prompt_tokens": 500}` (or a callable over the
    validated candidates) chooses the result: the best score within the limits.
    `telemetry` (a `backfeed.otel.export.Telemetry`, or an OTLP/HTTP endpoint; default
    $BACKFEED_OTLP_ENDPOINT, off when unset) sends a span for the run, each step and every
    model call (GenAI client spans; message content only with `Telemetry(content=True)`).
    `bf.chat` calls inside the program use `program_llm` (else the model of an enclosing
    `bf.llm.using` block, else `bf.llm.default()`): they are stored as "program" spend and
    count against the budget.
    """
    return Trainer(
        module, trainset, valset, metric=metric, optimizer=optimizer, strategy=strategy,
        budget=budget, executor=executor, seed=seed, steps=steps, minibatch_size=minibatch_size,
        forward=forward, inputs=inputs, store=store, run_dir=run_dir, resume=resume,
        on_edit=on_edit, name=name,
        stop_file=stop_file, progress=progress, program_llm=program_llm, testset=testset,
        accept=accept, copy_guard=copy_guard, telemetry=telemetry, objectives=objectives,
        pick=pick,
    ).fit()
