"""The trainer: minibatches drive proposals, validation decides what is kept, the store records all.

One step: the strategy picks a parent; the parent runs on a minibatch of the trainset and its
outputs get their feedback (from the `Scorer`); the optimizer proposes one or more candidate
value sets; each new candidate runs on the same minibatch; the strategy accepts the best or
rejects it; an accepted child is validated and joins the pool. A step's end is a checkpoint
(random state, pool, optimizer and strategy state), and every evaluation and LLM call is stored
as it happens, so a resumed run repeats the interrupted step with stored answers and pays for
nothing twice.

The parts: `RunSession` (the run in the store, spend, stop rules, Ctrl-C), `RunModels` (the
user's models wrapped once), `EvalCache` (evaluations), `Scorer` (metric or judge) and
`estimate` (the cost before the run).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..budget import Budget, BudgetExceeded
from ..graph import Module, minimal_subgraph, to_dot, zero_feedback
from ..llm import LLM, chosen
from ..llm.context import DefaultModel, ProgramModel, running
from ..optim import Combine, Optimizer, ParamUpdate, StepReport
from ..optim.base import current_feedback
from ..store import RunStore, values_hash
from .cache import EvalCache
from .estimate import Estimate, estimate
from .evaluate import Forward, Metric, as_examples, as_metric, install_capture, uninstall_capture
from .executors import Executor, Threads
from .failures import ModelFailed, model_failure
from .progress import Progress
from .scorer import JudgeScorer, MetricScorer, Scorer
from .search import Candidate, Greedy, LLMJudge, Pairwise, Pareto, Strategy, mean
from .session import EDITED_BY_HAND, ON_EDIT, RunModels, RunSession, StopRun, budget_stop


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


PERFECT = ("perfect: the best values scored 1 on every validation example and on this "
           "minibatch; no model call can improve them")


@dataclass
class TrainResult:
    """What `train` returns: the best values (already loaded into the module) and the history.

    `spend` has the totals and `spend["by_role"]`: optimizer, judge and program calls apart.
    """

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
        assert trainset is not None
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
        if on_edit not in ON_EDIT:
            raise ValueError(f"on_edit must be one of {ON_EDIT}, got {on_edit!r}")
        self.module = module
        self.trainset = trainset
        self.valset = valset
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
        judge = getattr(self.strategy, "judge", None)
        models = RunModels(
            optimizer=session.wrap(self.optimizer.llm, "optimizer"),
            judge=session.wrap(judge.llm, "judge") if isinstance(judge, LLMJudge) else None,
            # bf.chat in the program: program_llm=, else an enclosing `using`, else the default
            # and the models given to bf.chat(llm=...) explicitly, each call to its own model
            program=session.wrap(ProgramModel(self.program_llm or chosen() or DefaultModel()),
                                 "program"),
        )
        return _Run(self, session, models).fit()


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


class _Run:
    """One run of a `Trainer`: the search state and the step."""

    def __init__(self, trainer: Trainer, session: RunSession, models: RunModels) -> None:
        self.t = trainer
        self.session = session
        self.store = session.store
        self.run_id = session.run_id
        self.models = models
        self.optimizer = trainer.optimizer
        self.strategy = trainer.strategy
        self.module = trainer.module
        splits = {"train": trainer.trainset, "val": trainer.val_examples}
        self.cache = EvalCache(session, trainer.module, splits, trainer.metric, trainer.forward,
                               trainer.executor, on_progress=self._show,
                               program_model=models.program)
        self.scorer: Scorer
        if isinstance(self.strategy, Pairwise):  # chosen once: the step never asks again
            judge = self.strategy.judge
            if isinstance(judge, LLMJudge) and models.judge is not None:
                judge = judge.using(models.judge)
            self.scorer = JudgeScorer(self.cache, self.strategy, session, trainer.trainset,
                                      judge, models.judge)
        else:
            self.scorer = MetricScorer(self.cache, self.optimizer, self.module, trainer.val_split)
        total = trainer.steps
        if total is None and trainer.budget.llm_calls is not None:
            total = trainer.budget.llm_calls // self.strategy.proposals  # a bound for the bar
        self.progress = Progress(trainer.progress, total)
        self.rng = random.Random(trainer.seed)
        self.pool: list[Candidate] = []
        self.tried: dict[str, int] = {}  # values hash -> the candidate that has those values
        self.next_id = 0
        self.best_id: int | None = None
        self.no_improve = 0
        self.perfect = False  # the best values scored 1 on validation and on a minibatch
        self.last_step = -1
        self.note: str | None = None  # what the last step did, for the progress line
        self.params_by_name = {p.name: p for _, p in self.module.named_parameters()}

    # -- state and checkpoints ------------------------------------------------------------
    def _restore(self) -> int:
        """Load the last checkpoint, if any; return the next step."""
        state = self.store.run_state(self.run_id)
        if state is None:
            return 0
        self.rng = random.Random()
        _set_rng_state(self.rng, state["rng"])
        self.pool = [Candidate.from_dict(d) for d in state["pool"]]
        self.next_id = state["next_id"]
        self.best_id = state["best_id"]
        self.no_improve = state["no_improve"]
        self.strategy.load_state_dict(state["strategy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.last_step = state["step"]
        self.store.forget_after(self.run_id, self.last_step)
        self.tried = {c.values_hash: c.id for c in self.store.candidates(self.run_id)}
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
            spend=self.session.spend.to_dict(), state=self._state(step), started_at=started,
        )
        self.last_step = step

    def _best(self) -> Candidate:
        return self.scorer.best(self.pool)

    def _show(self) -> None:
        best = self._best() if self.pool else None
        self.progress.update(steps_done=self.last_step + 1,
                             best=_finite(best.score) if best is not None else None,
                             spend=self.session.spend, metric_calls=self.session.metric_calls,
                             note=self.note)

    def _new_candidate(self, values: dict[str, Any], parents: list[int], origin: str,
                       step: int) -> Candidate:
        cand = Candidate(self.next_id, values, parents, origin, step)
        self.next_id += 1
        self.tried[values_hash(values)] = cand.id
        self.store.add_candidate(self.run_id, cand.id, step=step, values=values, parents=parents,
                                 origin=origin)
        return cand

    def _admit(self, cand: Candidate) -> None:
        """Validate `cand` (a judge: no validation) and add it to the pool."""
        self.scorer.validate(cand)
        self.pool.append(cand)
        self.store.update_candidate(self.run_id, cand.id, status="accepted",
                                    val_score=_finite(cand.score), val_scores=cand.val_scores)
        self.strategy.admitted(self.pool, cand)

    # -- the run --------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        session = self.session
        install_capture()
        status, reason = "stopped", ""
        try:
            # The optimizer (and any inside it) calls the run's recorded model; the judge is
            # not touched: the run calls an `LLMJudge` with its model instead.
            with session.catching_ctrl_c(), Optimizer.calls_through(self.models.optimizer), \
                    running(self.models.program):
                status, reason = self._loop()
        except StopRun as s:
            reason = s.reason
            self.store.forget_after(self.run_id, self.last_step)
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once, state as of the last step
            self.store.forget_after(self.run_id, self.last_step)
            self._load_best()
            session.close("stopped", "interrupted (Ctrl-C twice)" if session.ctrl_c_twice
                          else "interrupted (a KeyboardInterrupt, not Ctrl-C twice: raised by "
                               "the program, the metric or another thread's Ctrl-C)")
            raise
        except BaseException as e:
            self.store.forget_after(self.run_id, self.last_step)
            self._load_best()  # not a candidate of the failed step: resume sees no hand edit
            failure = self._model_failure(e)
            if failure is not None:  # resumable: the checkpoint is intact
                session.close("stopped", str(failure))
                raise failure from e
            session.close("failed", f"{type(e).__name__}: {e}")
            raise
        finally:
            self.progress.stop()
            uninstall_capture()
        return self._finish(status, reason)

    def _model_failure(self, e: BaseException) -> ModelFailed | None:
        if isinstance(e, ModelFailed):
            return e
        for model in self.models.all():
            if model.failed is not None and model.failed is e:
                return model_failure(model.failed, model=model.model, role=model.role,
                                     run_id=self.run_id)
        return None

    def _loop(self) -> tuple[str, str]:
        step = self._restore()
        if self.session.edited and self.pool:
            step = self._keep_hand_edit(step, self.session.edited)
        if not self.pool:
            self.session.check_stop()
            started = time.time()
            self.models.begin_step(-1)
            seed = self._new_candidate(self.module.state_dict(), [], "seed", -1)
            self._admit(seed)
            self.best_id = seed.id
            self._checkpoint(-1, [], seed.id, True, started)
        self.progress.start()
        self._show()
        while True:
            reason = self._limit_reached(step)
            if reason:
                finished = reason.startswith(("steps", "target", "perfect"))
                return ("finished" if finished else "stopped"), reason
            self.session.check_stop()
            started = time.time()
            self.models.begin_step(step)
            before = self._best()
            parents, child, accepted = self._step(step)
            after = self._best()
            self.best_id = after.id
            self.no_improve = 0 if self.scorer.improved(before, after) else self.no_improve + 1
            self._checkpoint(step, parents, child, accepted, started)
            self._show()
            step += 1

    def _keep_hand_edit(self, step: int, edited: dict[str, Any]) -> int:
        """Resume with on_edit="keep": the best values with the user's edits join the pool,
        validated, as a step of their own (its report and decision say "edited by hand")."""
        self.session.check_stop()
        started = time.time()
        self.models.begin_step(step)
        best = self._best()
        cand = self._new_candidate({**best.values, **edited}, [best.id], "edit", step)
        self._admit(cand)
        names = ", ".join(edited)
        report = StepReport(step=step, reasoning=f"{EDITED_BY_HAND}: {names}", updates=[
            ParamUpdate(n, best.values[n], v, v, applied=True, changed=True)
            for n, v in edited.items()])
        self.store.add_step_report(self.run_id, step=step, seq=0, candidate_id=cand.id,
                                   report=report.to_dict())
        leads = cand.score is not None and (best.score is None or cand.score >= best.score)
        where = ("it is the best now" if leads else
                 f"it validates lower ({_score_text(cand.score)} < {_score_text(best.score)}): "
                 "the best values "
                 "stay loaded, and the edit is a candidate steps may start from")
        self.store.add_decision(
            self.run_id, step=step, candidate_id=cand.id, accepted=leads,
            reason=f"{EDITED_BY_HAND}: {names} (added on resume, on_edit='keep'; {where})",
            parent_score=_finite(best.score), child_score=_finite(cand.score))
        self.note = f"candidate {cand.id}: {EDITED_BY_HAND} ({names}; {where})"
        self.best_id = self._best().id
        self._checkpoint(step, [best.id], cand.id, True, started)
        return step + 1

    def _limit_reached(self, step: int) -> str:
        b, steps = self.t.budget, self.t.steps
        if steps is not None and step >= steps:
            return f"steps: {steps} steps done"
        if b.target is not None and self.pool and self._best().score >= b.target:
            return f"target: score {self._best().score:g} >= {b.target:g}"
        if b.patience is not None and self.no_improve >= b.patience:
            return f"patience: no improvement in {self.no_improve} steps"
        if self.perfect:
            return PERFECT
        return ""

    def _load_best(self) -> Candidate | None:
        """Load the best values of the last checkpoint into the module (None: no pool yet)."""
        best_cand = next((c for c in self.pool if c.id == self.best_id), None)
        if best_cand is not None:
            self.module.load_state_dict(best_cand.values)
        return best_cand

    def _finish(self, status: str, reason: str) -> TrainResult:
        best_cand = self._load_best()
        self.session.close(status, reason)
        return TrainResult(
            run_id=self.run_id, store=self.store, status=status, stop_reason=reason,
            best_candidate=best_cand.id if best_cand else -1,
            best_values=dict(best_cand.values) if best_cand else {},
            best_score=_finite(best_cand.score) if best_cand else None,
            history=history(self.store, self.run_id), spend=self.session.spend.to_dict(),
            metric_calls=self.session.metric_calls, candidates=self.next_id,
        )

    # -- one step -------------------------------------------------------------------------
    def _minibatch(self) -> list[int]:
        return self.rng.sample(range(len(self.t.trainset)), self.t.minibatch_size)

    def _step(self, step: int) -> tuple[list[int], int | None, bool]:
        merge = self.strategy.merge(self.pool, self.rng, set(self.tried))
        if merge is not None:
            return self._merge_step(step, *merge)
        parent = self.strategy.select(self.pool, self.rng)
        batch = self._minibatch()
        self._zero_feedback()
        parent_scores = self.scorer.feedback(step, parent, batch, self.pool)
        self.strategy.observe(parent, parent_scores)
        if self._is_perfect(parent, parent_scores):
            self.store.add_decision(self.run_id, step=step, candidate_id=-1, accepted=False,
                                    reason=PERFECT)
            self.note, self.perfect = PERFECT, True
            return [parent.id], None, False
        if current_feedback(self.optimizer.params)[2] == 0:
            why = ("nothing to optimize: no feedback reached the optimizer's parameters (the "
                   "outputs on this minibatch do not depend on them, or the program raised "
                   "before using them)")
            self.store.add_decision(self.run_id, step=step, candidate_id=-1, accepted=False,
                                    reason=why)
            self.note = why
            return [parent.id], None, False
        children = self._propose(step, parent)
        self._zero_feedback()
        if not children:
            return [parent.id], None, False
        scored: list[tuple[Candidate, list[float], list[float]]] = []
        for child in children:
            p_scores, c_scores = self.scorer.versus(step, parent, parent_scores, child, batch)
            scored.append((child, p_scores, c_scores))
        # equal scores: the child that changes the fewest parameters, then the first proposed
        chosen, p_scores, c_scores = max(
            scored, key=lambda s: (sum(s[2]), -_changed(parent, s[0]), -s[0].id))
        ok, why = self.strategy.accept(p_scores, c_scores)
        for child, p, c in scored:
            accepted = ok and child is chosen
            if child is chosen:
                reason = why
            elif sum(c) < sum(c_scores):
                reason = (f"candidate {chosen.id} of this step scored higher (mean "
                          f"{mean(c_scores):.4g} against {mean(c):.4g})")
            else:
                reason = (f"tied with candidate {chosen.id} of this step (mean {mean(c):.4g}), "
                          "which changes fewer parameters or was proposed first")
            self.store.add_decision(self.run_id, step=step, candidate_id=child.id,
                                    accepted=accepted, reason=reason, parent_score=mean(p),
                                    child_score=mean(c))
            if not accepted:
                self.store.update_candidate(self.run_id, child.id, status="rejected")
        self.note = f"candidate {chosen.id}: {'accepted' if ok else 'rejected'}, {why}"
        if ok:
            self._admit(chosen)
        return [parent.id], chosen.id, ok

    def _zero_feedback(self) -> None:
        """The optimizer's feedback, then the rest of the module's: a parameter outside the
        optimizer would otherwise keep every earlier step's outputs alive."""
        self.optimizer.zero_feedback()
        zero_feedback(self.params_by_name.values())

    def _is_perfect(self, parent: Candidate, scores: list[float]) -> bool:
        """Whether nothing is left to improve: the best values scored exactly 1 on every
        validation example and on this minibatch (metric scores; a judge's are relative)."""
        val = parent.val_scores
        return (isinstance(self.scorer, MetricScorer) and parent.id == self._best().id
                and bool(scores) and all(s == 1.0 for s in scores)
                and bool(val) and all(v == 1.0 for v in val))

    def _propose(self, step: int, parent: Candidate) -> list[Candidate]:
        """Ask the optimizer (the strategy's number of times); every new candidate it proposes
        becomes a child. Each candidate is stored with its step report; one with values
        already evaluated, or no change at all, is recorded as a decision with the reason."""
        dot = _trace_dot(self.optimizer.params)
        children: list[Candidate] = []
        seq = 0
        notes: list[str] = []
        this_step: dict[str, int] = {}  # values hash -> candidate proposed in this step
        for _ in range(self.strategy.proposals):
            self.module.load_state_dict(parent.values)
            try:
                report = self.optimizer.step()
            except BudgetExceeded as e:
                raise budget_stop(e) from None
            model = self.models.optimizer
            if model.exceeded is not None:
                raise budget_stop(model.exceeded)
            if model.failed is not None:
                raise model_failure(model.failed, model=model.model, role=model.role,
                                    run_id=self.run_id)
            proposals = getattr(report, "candidates", None) or [None]  # None: the applied values
            applied = self.module.state_dict()
            for k, named in enumerate(proposals):
                values, invalid = self._values(parent, named, applied)
                h = values_hash(values) if invalid is None else ""
                cand_id: int | None = None
                twin = self._twin(values, h, this_step)
                if invalid is None and values != parent.values and twin is None:
                    cand = self._new_candidate(values, [parent.id], "proposal", step)
                    children.append(cand)
                    this_step[h] = cand_id = cand.id
                self.store.add_step_report(
                    self.run_id, step=step, seq=seq, candidate_id=cand_id,
                    report=_candidate_report(report, k, parent.values, values, dot,
                                             several=len(proposals) > 1, first_seq=seq - k))
                if cand_id is None:
                    why = (f"invalid candidate {k}: {invalid}" if invalid is not None
                           else f"no change proposed: {unchanged_reason(report)}"
                           if values == parent.values
                           else f"duplicate: same values as candidate {twin}, already "
                                "evaluated (not evaluated again)")
                    self.store.add_decision(self.run_id, step=step, candidate_id=-1 - seq,
                                            accepted=False, reason=why)
                    notes.append(why)
                seq += 1
        if not children:
            self.note = notes[0] if notes else None
        return children

    def _twin(self, values: dict[str, Any], h: str, this_step: dict[str, int]) -> int | None:
        """The candidate already evaluated with these values on this search path: one in the
        pool, or one proposed earlier in this step (a rejected set from an earlier step may
        be tried again from another parent, on another minibatch; its stored evaluations are
        reused)."""
        in_pool = next((c.id for c in self.pool if c.values == values), None)
        if in_pool is not None:
            return in_pool
        return this_step.get(h)

    def _values(self, parent: Candidate, named: dict[str, Any] | None,
                applied: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The module's values for one candidate: the parent's, with the candidate's parameters
        set (by name); None for `named` means the values the step applied."""
        if named is None:
            return applied, None
        self.module.load_state_dict(parent.values)
        try:
            for name, value in named.items():
                self.params_by_name[name].value = value
        except (KeyError, TypeError, ValueError) as e:
            return parent.values, f"{type(e).__name__}: {e}"
        return self.module.state_dict(), None

    def _merge_step(self, step: int, a: Candidate, b: Candidate,
                    values: dict[str, Any]) -> tuple[list[int], int | None, bool]:
        batch = self._minibatch()
        child = self._new_candidate(values, [a.id, b.id], "merge", step)
        sa = [r.score for r in self.cache.results(a, "train", batch)]
        sb = [r.score for r in self.cache.results(b, "train", batch)]
        sc = [r.score for r in self.cache.results(child, "train", batch)]
        assert isinstance(self.strategy, Pareto)
        ok, why = self.strategy.accept_merge(sa, sb, sc)
        self.store.add_decision(self.run_id, step=step, candidate_id=child.id, accepted=ok,
                                reason=why, parent_score=max(mean(sa), mean(sb)),
                                child_score=mean(sc))
        self.note = f"merge {child.id}: {why}"
        if ok:
            self._admit(child)
        else:
            self.store.update_candidate(self.run_id, child.id, status="rejected")
        return [a.id, b.id], child.id, ok


def _score_text(score: float | None) -> str:
    return "no score" if score is None else f"{score:.4g}"


def unchanged_reason(report: StepReport) -> str:
    """Why a step left the values as they were, from its report (said in history and CLI)."""
    if report.error:
        return f"the optimizer's model failed ({report.error})"
    if report.rejected:
        return "every proposal was rejected (" + "; ".join(
            f"{u.name}: {u.reason}" for u in report.rejected[:3]) + ")"
    rejected = [u for u in report.updates if u.reason and not u.applied]
    if rejected:
        return "every proposal was rejected (" + "; ".join(
            f"{u.name}: {u.reason}" for u in rejected[:3]) + ")"
    if report.problems:
        return "the answer could not be used (" + "; ".join(report.problems[:3]) + ")"
    if report.llm_calls == 0 and not report.answers:
        return "the optimizer made no proposal"
    if report.stop:
        return "the model said the values need no change"
    if not report.updates:
        return "the answer named no parameter"
    return "the model proposed the current values"


def _changed(parent: Candidate, child: Candidate) -> int:
    """How many parameter values `child` changes from `parent`."""
    return sum(child.values.get(k) != v for k, v in parent.values.items())


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


_DOT_MAX_NODES = 400


def _trace_dot(params: list) -> str | None:
    """DOT text of the trace the optimizer saw (for the dashboard), or None when too large."""
    subgraph = minimal_subgraph(params)
    if not subgraph.nodes or len(subgraph.nodes) > _DOT_MAX_NODES:
        return None
    return to_dot(subgraph)


SHARED = ("prompts", "answers", "prompt_tokens", "completion_tokens", "cost_usd", "llm_calls",
          "rejected", "problems", "reasoning", "error", "candidates", "dot",
          "gradients")  # one optimizer step's, stored once (with its first candidate)


def _candidate_report(report: StepReport, k: int, parent: dict[str, Any],
                      values: dict[str, Any], dot: str | None, *, several: bool,
                      first_seq: int = 0) -> dict[str, Any]:
    """The stored report of candidate `k` of one optimizer step. With several candidates,
    each row's updates are its own changes from the parent, and what the step shares (its
    prompts, answers, tokens, cost, rejections) is on the first row only, so that a step page
    shows each candidate once and counts each prompt and token once."""
    data = {**_report_dict(report), "dot": dot, "candidate_index": k}
    own = [asdict(ParamUpdate(name, parent.get(name), value, value, applied=True, changed=True))
           for name, value in values.items() if parent.get(name) != value]
    if not several:  # every change shows, whoever made it (a numeric sampler's too)
        reported = {u.get("name") for u in data.get("updates", []) if u.get("changed")}
        kept = [u for u in data.get("updates", [])
                if u.get("name") in reported or u.get("name") not in values
                or parent.get(u.get("name")) == values[u.get("name")]]
        data["updates"] = kept + [u for u in own if u["name"] not in reported]
        return data
    rejected = [u for u in data.get("updates", []) if not u.get("applied") and u.get("reason")]
    data["updates"] = own + (rejected if k == 0 else [])
    if k > 0:
        for key in SHARED:
            data.pop(key, None)
        data["shared_with"] = first_seq  # the row (seq) holding the step's prompts and spend
    return data


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
    `bf.chat` calls inside the program use `program_llm` (else the model of an enclosing
    `bf.llm.using` block, else `bf.llm.default()`): they are stored as "program" spend and
    count against the budget.
    """
    return Trainer(
        module, trainset, valset, metric=metric, optimizer=optimizer, strategy=strategy,
        budget=budget, executor=executor, seed=seed, steps=steps, minibatch_size=minibatch_size,
        forward=forward, inputs=inputs, store=store, run_dir=run_dir, resume=resume,
        on_edit=on_edit, name=name,
        stop_file=stop_file, progress=progress, program_llm=program_llm,
    ).fit()
