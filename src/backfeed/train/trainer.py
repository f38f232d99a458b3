"""The trainer: minibatches drive proposals, validation decides what is kept, the store records all.

One step: the strategy picks a parent; the parent runs on a minibatch of the trainset and its
outputs get the metric's feedback; the optimizer proposes values; the child runs on the same
minibatch; the strategy accepts or rejects it; an accepted child is scored on the validation
set and joins the pool. A step's end is a checkpoint (random state, pool, optimizer and
strategy state), and every evaluation and LLM call is stored as it happens, so a resumed run
repeats the interrupted step with stored answers and pays for nothing twice.
"""

from __future__ import annotations

import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._tokens import estimate_tokens
from ..budget import Budget, BudgetExceeded
from ..graph import Feedback, Module, minimal_subgraph, to_dot
from ..llm import Metered, Spend
from ..optim import Optimizer, StepReport
from ..store import RunStore, values_hash
from .evaluate import (
    EvalResult,
    Forward,
    Metric,
    Traced,
    install_capture,
    run_one,
    uninstall_capture,
)
from .executors import Executor, Threads
from .progress import Progress
from .record import Probe, Recorded
from .search import Candidate, Greedy, Pairwise, Pareto, Strategy, Verdict, best


class _Stop(Exception):
    """Internal: stop the run cleanly for `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class StepSummary:
    """One finished step as the history shows it."""

    step: int
    parents: list[int]
    candidate: int | None
    accepted: bool
    reason: str
    parent_score: float | None
    child_score: float | None
    best_score: float | None


@dataclass
class TrainResult:
    """What `train` returns: the best values (already loaded into the module) and the history."""

    run_id: str
    store: RunStore
    status: str  # 'finished' | 'stopped'
    stop_reason: str
    best_candidate: int
    best_values: dict[str, Any]
    best_score: float | None
    history: list[StepSummary]
    spend: dict[str, Any]
    metric_calls: int
    candidates: int


@dataclass(frozen=True)
class Estimate:
    """What a run is expected to cost, with a range (low, high) around each expectation."""

    steps: int
    llm_calls: tuple[int, int]
    tokens: tuple[int, int]
    usd: tuple[float, float] | None  # None: the model's price is unknown
    metric_calls: tuple[int, int]
    expected: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        usd = "unknown price" if self.usd is None else f"${self.usd[0]:.4f}-${self.usd[1]:.4f}"
        return (f"~{self.steps} steps: {self.llm_calls[0]}-{self.llm_calls[1]} LLM calls, "
                f"{self.tokens[0]:,}-{self.tokens[1]:,} tokens, {usd}, "
                f"{self.metric_calls[0]}-{self.metric_calls[1]} metric calls")


def _rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(rng: random.Random, state: list[Any]) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))


class Trainer:
    """Train `module` on `trainset`; see `backfeed.train` for the arguments."""

    def __init__(
        self,
        module: Module,
        trainset: Sequence[Any],
        valset: Sequence[Any] | None = None,
        *,
        metric: Metric | None = None,
        optimizer: Optimizer,
        strategy: Strategy | None = None,
        budget: Budget | None = None,
        executor: Executor | None = None,
        seed: int = 0,
        steps: int | None = None,
        minibatch_size: int = 4,
        forward: Forward | None = None,
        store: RunStore | str | os.PathLike[str] | None = None,
        run_dir: str | os.PathLike[str] | None = None,
        resume: str | None = None,
        name: str | None = None,
        stop_file: str | os.PathLike[str] | None = None,
        progress: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(module, Module) and not (
            hasattr(module, "state_dict") and hasattr(module, "load_state_dict")
        ):
            raise TypeError("train() needs a bf.Module (with state_dict/load_state_dict)")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a bf.optim.Optimizer, not {type(optimizer).__name__}")
        if len(trainset) == 0:
            raise ValueError("trainset is empty")
        if valset is not None and len(valset) == 0:
            raise ValueError("valset is empty (pass None to validate on the trainset)")
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
        self.module = module
        self.trainset = list(trainset)
        self.valset = list(valset) if valset is not None else None
        self.metric = metric
        self.optimizer = optimizer
        self.strategy = strategy
        self.budget = budget
        self.executor = executor or Threads(1)
        self.seed = seed
        self.steps = steps
        self.minibatch_size = min(minibatch_size, len(self.trainset))
        self.forward = forward
        if run_dir is not None:
            store = Path(run_dir) / "runs.db"
        self._store_arg = store
        self.resume = resume
        self.name = name
        self.stop_file = Path(stop_file) if stop_file is not None else None
        self.progress = progress
        self.clock = clock
        self._interrupted = False

    # -- small helpers --------------------------------------------------------------------
    @property
    def _val(self) -> tuple[str, list[Any]]:
        return ("val", self.valset) if self.valset is not None else ("train", self.trainset)

    def _config(self) -> dict[str, Any]:
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
            "params": sorted(self.module.state_dict()),
            "param_kinds": {name: p.kind for name, p in self.module.named_parameters()},
        }

    def _check_config(self, stored: dict[str, Any]) -> None:
        """Resume needs the same search; budget, steps and executor may change."""
        now = self._config()
        keys = ("strategy", "optimizer", "seed", "minibatch_size", "trainset", "valset", "params")
        changed = [k for k in keys if stored.get(k) != now[k]]
        if changed:
            detail = "; ".join(f"{k}: stored {stored.get(k)!r}, given {now[k]!r}" for k in changed)
            raise ValueError(f"cannot resume run {self.resume}: the setup changed ({detail})")

    def _elapsed(self) -> float:
        return self.clock() - self._started

    def _check_stop(self) -> None:
        """Raise _Stop when time is up, Ctrl-C was pressed or the stop file exists."""
        if self._interrupted:
            raise _Stop("interrupted (Ctrl-C)")
        if self.stop_file is not None and self.stop_file.exists():
            raise _Stop(f"stop file {self.stop_file} exists")
        if self.budget.seconds is not None and self._elapsed() >= self.budget.seconds:
            raise _Stop(f"seconds: time budget of {self.budget.seconds:g}s reached")

    def _before_llm_call(self) -> None:
        try:
            self._check_stop()
        except _Stop as s:
            raise BudgetExceeded("stop", s.reason) from None

    # -- evaluation ---------------------------------------------------------------------------
    def _evaluate(self, cand: Candidate, split: str, indexes: list[int],
                  trace: bool = False, backward: bool = True) -> list[EvalResult]:
        """Scores of `cand` on examples `indexes` (in that order); stored results are reused.

        With `trace`, the outputs' graphs are kept in `self.traced` and (with `backward`) get
        their feedback in example order, so the optimizer sees them; a stored result is re-run
        without calling the metric to rebuild its graph.
        """
        data = self.trainset if split == "train" else self.valset
        assert data is not None
        h = values_hash(cand.values)
        found: dict[int, EvalResult] = {}
        missing: list[int] = []
        for i in dict.fromkeys(indexes):
            rec = self.store.find_evaluation(self.run_id, h, split, i)
            if rec is None:
                missing.append(i)
            else:
                found[i] = EvalResult(i, rec.score, rec.feedback, rec.output, rec.details,
                                      rec.error, rec.stdout, rec.seconds, stored=True)
        self._check_stop()
        limit = self.budget.metric_calls
        short = False
        if limit is not None and self.metric_calls + len(missing) > limit:
            missing = missing[: max(0, limit - self.metric_calls)]
            short = True
        nodes: dict[int, Traced] = {}
        lock = threading.Lock()

        def store_result(t: Traced) -> None:
            r = t.result
            self.store.add_evaluation(
                self.run_id, candidate_id=cand.id, values_hash=h, split=split,
                example_index=r.index, example=_example_text(data[r.index]), output=r.output,
                score=r.score, feedback=r.feedback, details=r.details, error=r.error,
                stdout=r.stdout, seconds=r.seconds,
            )
            with lock:
                self.metric_calls += 1
                found[r.index] = r
                nodes[r.index] = t

        if missing:
            local = trace or self.executor.in_process
            if local:
                self.module.load_state_dict(cand.values)
            executor = self.executor if (self.executor.in_process or not trace) else Threads(1)
            items = [(i, data[i]) for i in missing]
            executor.evaluate(self.module, cand.values, items, self.metric, self.forward,
                              store_result)
            self._progress.update(self)
        if short:
            raise _Stop(f"metric_calls: budget of {limit} metric calls reached")
        if trace:
            self.module.load_state_dict(cand.values)
            self.traced: dict[int, Traced] = {}
            for i in indexes:
                t = nodes.get(i)
                r = found[i]
                if t is None:  # stored earlier: rebuild the graph, reuse the stored feedback
                    t = run_one(self.module, data[i], i, None, self.forward)
                self.traced[i] = t
                if backward and t.node is not None:
                    t.node.backward(Feedback(score=r.score, text=r.feedback, details=r.details))
        return [found[i] for i in indexes]

    # -- the run --------------------------------------------------------------------------
    def _open(self) -> None:
        arg = self._store_arg
        self.store = arg if isinstance(arg, RunStore) else RunStore(arg)
        if self.resume is not None:
            run = self.store.get_run(self.resume)
            self.run_id = run.id
            self._check_config(run.config)
            self.store.update_run(self.run_id, status="running", stop_reason=None)
        else:
            self.run_id = self.store.create_run(self._config(), name=self.name)
        if self.stop_file is None:
            self.stop_file = self.store.path.parent / f"{self.run_id}.stop"
        # Spend and metric calls so far are whatever the store holds (paid work, all of it).
        self.spend = Spend()
        for call in self.store.llm_calls(self.run_id):
            self.spend.calls += 1
            if call.cached:
                self.spend.cached_calls += 1
            else:
                self.spend.prompt_tokens += call.prompt_tokens
                self.spend.completion_tokens += call.completion_tokens
                self.spend.usd += call.cost_usd
        self.metric_calls = len(self.store.evaluations(self.run_id))
        self._user_llm = self.optimizer.llm
        metered = Metered(self._user_llm, self.budget, self.spend)
        self.recorders = [Recorded(metered, self.store, self.run_id, self._before_llm_call)]
        self.optimizer.llm = self.recorders[0]
        judge = getattr(self.strategy, "judge", None)
        self._judge_llm = getattr(judge, "llm", None)
        if self._judge_llm is not None:
            judge_rec = Recorded(Metered(self._judge_llm, self.budget, self.spend), self.store,
                                 self.run_id, self._before_llm_call)
            self.recorders.append(judge_rec)
            judge.llm = judge_rec

    def _restore(self) -> int:
        """Load the last checkpoint (or create the seed candidate); return the next step."""
        state = self.store.run_state(self.run_id)
        if state is None:
            self.rng = random.Random(self.seed)
            self.pool: list[Candidate] = []
            self.tried: set[str] = set()
            self.next_id = 0
            self.best_id: int | None = None
            self.no_improve = 0
            self.last_step = -1
            return 0
        self.rng = random.Random()
        _set_rng_state(self.rng, state["rng"])
        self.pool = [Candidate.from_dict(d) for d in state["pool"]]
        self.tried = set(state["tried"])
        self.next_id = state["next_id"]
        self.best_id = state["best_id"]
        self.no_improve = state["no_improve"]
        self.strategy.load_state_dict(state["strategy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.last_step = state["step"]
        self.store.forget_after(self.run_id, self.last_step)
        return self.last_step + 1

    def _state(self, step: int) -> dict[str, Any]:
        return {
            "step": step,
            "rng": _rng_state(self.rng),
            "pool": [c.to_dict() for c in self.pool],
            "tried": sorted(self.tried),
            "next_id": self.next_id,
            "best_id": self.best_id,
            "no_improve": self.no_improve,
            "strategy": self.strategy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def _checkpoint(self, step: int, parents: list[int], child: int | None, accepted: bool,
                    started: float) -> None:
        best_cand = self._best()
        self.store.checkpoint(
            self.run_id, step=step, parents=parents, candidate=child, accepted=accepted,
            best_score=_finite(best_cand.score), best_candidate=best_cand.id,
            spend=self.spend.to_dict(), state=self._state(step), started_at=started,
        )
        self.last_step = step

    def _best(self) -> Candidate:
        if isinstance(self.strategy, Pairwise):
            return self.strategy.rank(self.pool)[0]
        return best(self.pool)

    def _new_candidate(self, values: dict[str, Any], parents: list[int], origin: str,
                       step: int) -> Candidate:
        cand = Candidate(self.next_id, values, parents, origin, step)
        self.next_id += 1
        self.tried.add(values_hash(values))
        self.store.add_candidate(self.run_id, cand.id, step=step, values=values, parents=parents,
                                 origin=origin)
        return cand

    def _admit(self, cand: Candidate) -> None:
        """Validate `cand` (pairwise: no validation) and add it to the pool."""
        if not self.strategy.pairwise:
            split, data = self._val
            cand.val_scores = [r.score for r in self._evaluate(cand, split, list(range(len(data))))]
        self.pool.append(cand)
        self.store.update_candidate(self.run_id, cand.id, status="accepted",
                                    val_score=_finite(cand.score), val_scores=cand.val_scores)
        self.strategy.admitted(self.pool, cand)

    def fit(self) -> TrainResult:
        """Run until a limit, the step count, Ctrl-C or the stop file; return the best values."""
        self._open()
        self._started = self.clock()
        total = self.steps
        if total is None and self.budget.llm_calls is not None:
            total = self.budget.llm_calls // self.strategy.proposals  # an upper bound for the bar
        self._progress = Progress(self.progress, total)
        install_capture()
        previous_handler = self._install_sigint()
        status, reason = "stopped", ""
        try:
            step = self._restore()
            if not self.pool:
                self._check_stop()
                started = time.time()
                self._begin_step(-1)
                seed = self._new_candidate(self.module.state_dict(), [], "seed", -1)
                self._admit(seed)
                self.best_id = seed.id
                self._checkpoint(-1, [], seed.id, True, started)
            self._progress.start(self)
            while True:
                reason = self._limit_reached(step)
                if reason:
                    status = "finished" if reason.startswith(("steps", "target")) else "stopped"
                    break
                self._check_stop()
                started = time.time()
                self._begin_step(step)
                before = self._best()
                parents, child, accepted = self._step(step)
                after = self._best()
                self.best_id = after.id
                improved = (after.id != before.id if self.strategy.pairwise
                            else after.score > before.score + 1e-12)
                self.no_improve = 0 if improved else self.no_improve + 1
                self._checkpoint(step, parents, child, accepted, started)
                self._progress.update(self)
                step += 1
        except _Stop as s:
            reason = s.reason
            self.store.forget_after(self.run_id, self.last_step)
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once, state as of the last step
            self.store.forget_after(self.run_id, self.last_step)
            self.store.update_run(self.run_id, status="stopped", stop_reason="interrupted (Ctrl-C twice)",
                                  spend=self.spend.to_dict())
            raise
        except BaseException as e:
            self.store.forget_after(self.run_id, self.last_step)
            self.store.update_run(self.run_id, status="failed",
                                  stop_reason=f"{type(e).__name__}: {e}", spend=self.spend.to_dict())
            raise
        finally:
            self._progress.stop()
            self._restore_sigint(previous_handler)
            uninstall_capture()
            self.optimizer.llm = self._user_llm
            judge = getattr(self.strategy, "judge", None)
            if self._judge_llm is not None and judge is not None:
                judge.llm = self._judge_llm
        return self._finish(status, reason)

    def _begin_step(self, step: int) -> None:
        for r in self.recorders:
            r.begin_step(step)

    def _limit_reached(self, step: int) -> str:
        b = self.budget
        if self.steps is not None and step >= self.steps:
            return f"steps: {self.steps} steps done"
        if b.target is not None and self.pool and self._best().score >= b.target:
            return f"target: score {self._best().score:g} >= {b.target:g}"
        if b.patience is not None and self.no_improve >= b.patience:
            return f"patience: no improvement in {self.no_improve} steps"
        return ""

    def _finish(self, status: str, reason: str) -> TrainResult:
        best_cand = next(c for c in self.pool if c.id == self.best_id) if self.pool else None
        if best_cand is not None:
            self.module.load_state_dict(best_cand.values)
        self.store.update_run(self.run_id, status=status, stop_reason=reason,
                              spend=self.spend.to_dict())
        return TrainResult(
            run_id=self.run_id, store=self.store, status=status, stop_reason=reason,
            best_candidate=best_cand.id if best_cand else -1,
            best_values=dict(best_cand.values) if best_cand else {},
            best_score=_finite(best_cand.score) if best_cand else None,
            history=history(self.store, self.run_id), spend=self.spend.to_dict(),
            metric_calls=self.metric_calls, candidates=self.next_id,
        )

    # -- one step -------------------------------------------------------------------------
    def _minibatch(self) -> list[int]:
        return self.rng.sample(range(len(self.trainset)), self.minibatch_size)

    def _step(self, step: int) -> tuple[list[int], int | None, bool]:
        merge = self.strategy.merge(self.pool, self.rng, self.tried)
        if merge is not None:
            return self._merge_step(step, *merge)
        parent = self.strategy.select(self.pool, self.rng)
        batch = self._minibatch()
        self.optimizer.zero_feedback()
        if self.strategy.pairwise:
            parent_scores = self._pairwise_feedback(step, parent, batch)
        else:
            parent_scores = [r.score for r in self._evaluate(parent, "train", batch, trace=True)]
        self.strategy.observe(parent, parent_scores)
        dot = _trace_dot(self.optimizer.params)
        children: list[Candidate] = []
        for seq in range(self.strategy.proposals):
            self.module.load_state_dict(parent.values)
            try:
                report = self.optimizer.step()
            except BudgetExceeded as e:
                raise _budget_stop(e) from None
            if self.recorders[0].exceeded is not None:
                raise _budget_stop(self.recorders[0].exceeded)
            values = self.module.state_dict()
            in_pool = next((c.id for c in self.pool if c.values == values), None)
            cand_id: int | None = None
            if in_pool is None:
                cand = self._new_candidate(values, [parent.id], "proposal", step)
                children.append(cand)
                cand_id = cand.id
            self.store.add_step_report(self.run_id, step=step, seq=seq, candidate_id=cand_id,
                                       report={**_report_dict(report), "dot": dot})
            if cand_id is None:
                why = ("no change proposed" if values == parent.values
                       else f"same values as candidate {in_pool} in the pool")
                if report.error:
                    why += f" (optimizer error: {report.error})"
                self.store.add_decision(self.run_id, step=step, candidate_id=-1 - seq,
                                        accepted=False, reason=why)
        self.optimizer.zero_feedback()
        if not children:
            return [parent.id], None, False
        parent_total = sum(parent_scores)
        scored: list[tuple[Candidate, list[float]]] = []
        for child in children:
            if self.strategy.pairwise:
                scores, parent_scores = self._duel(step, parent, child, batch)
                parent_total = sum(parent_scores)
            else:
                results = self._evaluate(child, "train", batch)
                scores = [r.score for r in results]
                self._tell_optimizer(child, results)
            scored.append((child, scores))
        chosen, chosen_scores = max(scored, key=lambda cs: (sum(cs[1]), -cs[0].id))
        ok, why = self.strategy.accept(parent_scores, chosen_scores)
        for child, scores in scored:
            accepted = ok and child is chosen
            reason = why if child is chosen else f"another proposal of this step scored higher ({sum(scores):g})"
            self.store.add_decision(self.run_id, step=step, candidate_id=child.id,
                                    accepted=accepted, reason=reason, parent_score=parent_total,
                                    child_score=sum(scores))
            if not accepted:
                self.store.update_candidate(self.run_id, child.id, status="rejected")
        if ok:
            self._admit(chosen)
        return [parent.id], chosen.id, ok

    def _tell_optimizer(self, cand: Candidate, results: list[EvalResult]) -> None:
        """Show the optimizer how its proposal did, failures included, for its next prompt."""
        if not results:
            return
        names = {path: p.name for path, p in self.module.named_parameters()}
        values = {names[k]: v for k, v in cand.values.items() if k in names}
        texts = list(dict.fromkeys(r.feedback for r in results if r.feedback))
        score = sum(r.score for r in results) / len(results)
        self.optimizer.record(values, score, "; ".join(texts))

    def _merge_step(self, step: int, a: Candidate, b: Candidate,
                    values: dict[str, Any]) -> tuple[list[int], int | None, bool]:
        batch = self._minibatch()
        child = self._new_candidate(values, [a.id, b.id], "merge", step)
        sa = [r.score for r in self._evaluate(a, "train", batch)]
        sb = [r.score for r in self._evaluate(b, "train", batch)]
        sc = [r.score for r in self._evaluate(child, "train", batch)]
        assert isinstance(self.strategy, Pareto)
        ok, why = self.strategy.accept_merge(sa, sb, sc)
        self.store.add_decision(self.run_id, step=step, candidate_id=child.id, accepted=ok,
                                reason=why, parent_score=max(sum(sa), sum(sb)),
                                child_score=sum(sc))
        if ok:
            self._admit(child)
        else:
            self.store.update_candidate(self.run_id, child.id, status="rejected")
        return [a.id, b.id], child.id, ok

    # -- pairwise mode ----------------------------------------------------------------------
    def _outputs(self, cand: Candidate, batch: list[int], trace: bool = False) -> list[str | None]:
        return [r.output if r.error is None else f"(error) {r.error}"
                for r in self._evaluate(cand, "train", batch, trace=trace, backward=False)]

    def _judge(self, step: int, a: Candidate, b: Candidate, batch: list[int],
               outs_a: list[str | None], outs_b: list[str | None]) -> list[Verdict]:
        assert isinstance(self.strategy, Pairwise)
        verdicts = []
        for i, oa, ob in zip(batch, outs_a, outs_b):
            try:
                raw = self.strategy.judge(self.trainset[i], oa, ob)
            except BudgetExceeded as e:
                raise _budget_stop(e) from None
            if self.recorders[-1].exceeded is not None:
                raise _budget_stop(self.recorders[-1].exceeded)
            v = Verdict.of(raw)
            self.strategy.record(a.id, b.id, v)
            self.store.add_comparison(self.run_id, step=step, candidate_a=a.id, candidate_b=b.id,
                                      example_index=i, winner=v.winner, reason=v.reason)
            verdicts.append(v)
        return verdicts

    def _pairwise_feedback(self, step: int, parent: Candidate, batch: list[int]) -> list[float]:
        """Run the parent with a trace; its feedback is a comparison with the runner-up."""
        assert isinstance(self.strategy, Pairwise)
        ranked = self.strategy.rank(self.pool)
        rival = next((c for c in ranked if c.id != parent.id), None)
        outs_p = self._outputs(parent, batch, trace=True)
        traced = self.traced
        if rival is None:
            feedbacks = [Feedback(score=0.5, text="No ground truth: propose a variant that a judge "
                                  "comparing outputs side by side would prefer.")] * len(batch)
        else:
            outs_r = self._outputs(rival, batch)
            verdicts = self._judge(step, parent, rival, batch, outs_p, outs_r)
            feedbacks = [self.strategy.feedback(v, "a") for v in verdicts]
        for i, fb in zip(batch, feedbacks):
            node = traced[i].node
            if node is not None:
                node.backward(fb)
        return [fb.score or 0.0 for fb in feedbacks]

    def _duel(self, step: int, parent: Candidate, child: Candidate,
              batch: list[int]) -> tuple[list[float], list[float]]:
        verdicts = self._judge(step, parent, child, batch, self._outputs(parent, batch),
                               self._outputs(child, batch))
        child_scores = [1.0 if v.winner == "b" else 0.5 if v.winner == "tie" else 0.0 for v in verdicts]
        return child_scores, [1.0 - s for s in child_scores]

    # -- Ctrl-C ---------------------------------------------------------------------------------
    def _install_sigint(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum: int, frame: Any) -> None:
            if self._interrupted:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            self._interrupted = True

        return signal.signal(signal.SIGINT, handler)

    def _restore_sigint(self, previous: Any) -> None:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)

    # -- estimate -------------------------------------------------------------------------------
    def estimate(self, *, price: tuple[float, float] | None = None) -> Estimate:
        """Expected LLM calls, tokens, dollars and metric calls, before the run.

        Runs the seed on one minibatch and one optimizer step against a probe model that pays
        nothing (the module and optimizer are restored afterwards), so the prompt size is
        measured, not guessed. `price` is (USD per 1M prompt tokens, per 1M completion tokens);
        without it, an `estimate_cost(prompt_tokens, completion_tokens)` method of the model is
        used when it has one. Each figure's range is half to twice the expectation.
        """
        module_state = self.module.state_dict()
        optimizer_state = self.optimizer.state_dict()
        llm = self.optimizer.llm
        probe = Probe(getattr(llm, "model", "probe"))
        batch = list(range(self.minibatch_size))
        install_capture()
        try:
            self.optimizer.zero_feedback()
            if self.strategy.pairwise:
                for i in batch:
                    t = run_one(self.module, self.trainset[i], i, None, self.forward)
                    if t.node is not None:
                        t.node.backward("Improve this output.")
            else:
                for i in batch:
                    t = run_one(self.module, self.trainset[i], i, self.metric, self.forward)
                    if t.node is not None and t.feedback is not None:
                        t.node.backward(t.feedback)
            self.optimizer.llm = probe
            self.optimizer.step()
        finally:
            self.optimizer.llm = llm
            self.optimizer.zero_feedback()
            self.optimizer.load_state_dict(optimizer_state)
            self.module.load_state_dict(module_state)
            uninstall_capture()
        calls_per_step = max(1, len(probe.requests)) * self.strategy.proposals
        prompt = sum(estimate_tokens(m.get("content", "")) for msgs, _ in probe.requests
                     for m in msgs) / max(1, len(probe.requests))
        max_tokens = [o["max_tokens"] for _, o in probe.requests if o.get("max_tokens")]
        value_tokens = estimate_tokens(str(module_state))
        completion = min(max_tokens[0], value_tokens + 30) if max_tokens else value_tokens + 30
        steps = self._expected_steps(calls_per_step, prompt + completion)
        val_n = len(self._val[1])
        judge_calls = self.minibatch_size * 2 if self.strategy.pairwise else 0
        calls = steps * (calls_per_step + judge_calls)
        tokens = calls * (prompt + completion)
        metric = val_n + steps * (self.minibatch_size * (1 + self.strategy.proposals) + val_n / 2)
        if self.budget.metric_calls is not None:
            metric = min(metric, self.budget.metric_calls)
        usd_each = None
        if price is not None:
            usd_each = (prompt * price[0] + completion * price[1]) / 1e6
        elif callable(getattr(self._inner(llm), "estimate_cost", None)):
            usd_each = float(self._inner(llm).estimate_cost(int(prompt), int(completion)))
        usd = None if usd_each is None else (calls * usd_each / 2, calls * usd_each * 2)
        return Estimate(
            steps=steps,
            llm_calls=(max(0, calls // 2), calls * 2),
            tokens=(int(tokens / 2), int(tokens * 2)),
            usd=usd,
            metric_calls=(int(metric / 2), int(metric * 2)),
            expected={"llm_calls": calls, "tokens": tokens, "prompt_tokens_per_call": prompt,
                      "completion_tokens_per_call": completion, "metric_calls": metric,
                      "usd": None if usd_each is None else calls * usd_each},
        )

    @staticmethod
    def _inner(llm: Any) -> Any:
        while hasattr(llm, "llm") and not callable(getattr(llm, "estimate_cost", None)):
            llm = llm.llm
        return llm

    def _expected_steps(self, calls_per_step: int, tokens_per_call: float) -> int:
        b = self.budget
        bounds = [] if self.steps is None else [self.steps]
        if b.llm_calls is not None:
            bounds.append(b.llm_calls // calls_per_step)
        if b.tokens is not None:
            bounds.append(int(b.tokens // max(1.0, tokens_per_call * calls_per_step)))
        if b.metric_calls is not None:
            per_step = self.minibatch_size * (1 + self.strategy.proposals) + len(self._val[1]) / 2
            bounds.append(int(max(0, b.metric_calls - len(self._val[1])) // max(1.0, per_step)))
        if b.patience is not None and not bounds:
            bounds.append(b.patience * 2)
        return max(0, min(bounds)) if bounds else 0


def _budget_stop(e: BudgetExceeded) -> _Stop:
    return _Stop(str(e) if e.limit == "stop" else f"{e.limit}: {e}")


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _example_text(example: Any) -> str:
    text = repr(example)
    return text if len(text) <= 300 else text[:297] + "..."


_DOT_MAX_NODES = 400


def _trace_dot(params: list) -> str | None:
    """DOT text of the trace the optimizer saw (for the dashboard), or None when too large."""
    subgraph = minimal_subgraph(params)
    if not subgraph.nodes or len(subgraph.nodes) > _DOT_MAX_NODES:
        return None
    return to_dot(subgraph)


def _report_dict(report: StepReport) -> dict[str, Any]:
    try:
        return report.to_dict()
    except TypeError:  # a value that dataclasses.asdict cannot copy: keep the essentials
        return {"step": report.step, "applied": repr(report.applied), "error": report.error}


def history(store: RunStore, run_id: str) -> list[StepSummary]:
    """The finished steps of a run with the decision on each (the same for resumed runs)."""
    decisions: dict[int, list[Any]] = {}
    for d in store.decisions(run_id):
        decisions.setdefault(d.step, []).append(d)
    out = []
    for s in store.steps(run_id):
        if s.step < 0:
            continue
        ds = decisions.get(s.step, [])
        main = next((d for d in ds if d.candidate_id == s.candidate), ds[0] if ds else None)
        out.append(StepSummary(
            s.step, s.parents, s.candidate, s.accepted, main.reason if main else "",
            main.parent_score if main else None, main.child_score if main else None, s.best_score,
        ))
    return out


def train(
    module: Module,
    trainset: Sequence[Any],
    valset: Sequence[Any] | None = None,
    *,
    metric: Metric | None = None,
    optimizer: Optimizer,
    strategy: Strategy | None = None,
    budget: Budget | None = None,
    executor: Executor | None = None,
    seed: int = 0,
    steps: int | None = None,
    minibatch_size: int = 4,
    forward: Forward | None = None,
    store: RunStore | str | os.PathLike[str] | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    resume: str | None = None,
    name: str | None = None,
    stop_file: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Optimize `module`'s parameters on `trainset`, keep what validates on `valset`.

    The trainer calls `module(example[0])` for a tuple/list example, else `module(example)`
    (`forward(module, example)` overrides), then `metric(example, output) -> float |
    bf.Feedback`. Exceptions and printed output of the program become feedback. The run is
    written to `store` (a RunStore or a path; `run_dir` puts runs.db there; default under the
    XDG data directory) and `resume=run_id` continues a stopped or killed run exactly. It stops
    after `steps`, on a `budget` limit, on Ctrl-C or when the stop file
    (`<store dir>/<run id>.stop` unless given) appears; the best values are loaded into `module`.
    """
    return Trainer(
        module, trainset, valset, metric=metric, optimizer=optimizer, strategy=strategy,
        budget=budget, executor=executor, seed=seed, steps=steps, minibatch_size=minibatch_size,
        forward=forward, store=store, run_dir=run_dir, resume=resume, name=name,
        stop_file=stop_file, progress=progress,
    ).fit()
