"""One run of the trainer: the pool, the loop, one step and its checkpoint.

One step: the strategy plans it (a proposal from a parent, or a merge of two lineages); the
parent runs on a minibatch and its outputs get their feedback (from the `Scorer`); the
optimizer proposes `Proposal` records from the parent's values, changing no parameter; each
new proposal becomes a child, runs on the same minibatch, and the strategy accepts the best
or rejects it; an accepted child is validated and joins the pool. A step's end is a
checkpoint (random state, pool, optimizer and strategy state).
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

from ..budget import BudgetExceeded
from ..graph import zero_feedback
from ..llm.context import running
from ..optim import Optimizer, ParamUpdate, Proposal, StepReport
from ..optim.feedback import current_feedback
from ..store import values_hash
from .acceptance import TieAtZero, on_validation
from .cache import EvalCache
from .evaluate import install_capture, uninstall_capture
from .failures import ModelFailed, model_failure
from .guards import CopyGuard
from .objectives import Meter, picked
from .progress import Progress
from .reports import TrainResult, candidate_report, history, trace_dot, unchanged_reason
from .scorer import JudgeScorer, MetricScorer, Scorer
from .search import Candidate, Merge, mean
from .session import EDITED_BY_HAND, RunModels, RunSession, StopRun, budget_stop
from .verdict import measure

PERFECT = ("perfect: the best values scored 1 on every validation example and on this "
           "minibatch; no model call can improve them")
NOTHING_LEFT = "nothing left to learn: the best values score 1 on every training example"


def _rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(rng: random.Random, state: list[Any]) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))


class Run:
    """One run of a `Trainer`: the search state and the step."""

    def __init__(self, trainer: Any, session: RunSession, models: RunModels) -> None:
        self.t = trainer
        self.session = session
        self.store = session.store
        self.run_id = session.run_id
        self.models = models
        self.optimizer = trainer.optimizer
        self.strategy = trainer.strategy
        self.module = trainer.module
        splits = {"train": trainer.trainset, "val": trainer.val_examples}
        if trainer.testset is not None:
            splits["test"] = trainer.testset
        self.cache = EvalCache(session, trainer.module, splits, trainer.metric, trainer.forward,
                               trainer.executor, on_progress=self._show,
                               program_model=models.program, telemetry=trainer.telemetry)
        self.scorer: Scorer
        if self.strategy.pairwise:  # chosen once: the step never asks again
            self.scorer = JudgeScorer(self.cache, self.strategy, session, trainer.trainset,
                                      self.strategy.judge_through(models.judge), models.judge)
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
        self.done: str | None = None  # the run has nothing left to learn from (why)
        self.last_step = -1
        self.note: str | None = None  # what the last step did, for the progress line
        self.params_by_name = {p.name: p for _, p in self.module.named_parameters()}
        self.accept = trainer.accept or self.strategy.accept  # accept=, else the strategy's
        self.guard = CopyGuard(trainer.trainset) if trainer.copy_guard else None
        self.meter = Meter(trainer.objectives, {n: p.kind for n, p in self.params_by_name.items()},
                           session, trainer.val_split) if trainer.objectives else None
        self.kinds = {name: p.kind for name, p in self.params_by_name.items()}

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
        self.session.guards = state.get("guards", 0)
        self.perfect = state.get("perfect", False)
        self.done = state.get("done")
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
            "guards": self.session.guards,
            # a run killed after the step that found nothing left to do ends on resume too
            "perfect": self.perfect,
            "done": self.done,
            "strategy": self.strategy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def _checkpoint(self, step: int, parents: list[int], child: int | None, accepted: bool,
                    started: float) -> None:
        best_cand = self._best()
        self.store.checkpoint(
            self.run_id, step=step, parents=parents, candidate=child, accepted=accepted,
            best_score=_finite(best_cand.score), best_candidate=best_cand.id,
            spend=self.session.spend_record(), state=self._state(step), started_at=started,
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

    def _admit(self, cand: Candidate, before: Any = None) -> None:
        """Validate `cand` (a judge: no validation), measure its objectives (the program's
        spend since `before`, if it was validated already), and add it to the pool."""
        if before is None:
            before = self.meter.program_spend() if self.meter is not None else (0.0, 0.0)
        self.scorer.validate(cand)
        if self.meter is not None and cand.val_scores:
            cand.objectives = self.meter.measure(cand, before)
        self.pool.append(cand)
        self.store.update_candidate(self.run_id, cand.id, status="accepted",
                                    val_score=_finite(cand.score), val_scores=cand.val_scores,
                                    objectives=cand.objectives)
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
        """The run-ending model failure `e` stands for: a `ModelFailed` (the optimizer's or
        the judge's model) as it is, or the program's model's own error, named."""
        if isinstance(e, ModelFailed):
            return e
        program = self.models.program
        if program.failed is not None and program.failed is e:
            return model_failure(e, model=program.model, role=program.role, run_id=self.run_id)
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
            status, reason = self._limit_reached(step)
            if reason:
                return status, reason
            self.session.check_stop()
            started = time.time()
            self.models.begin_step(step)
            before = self._best()
            with self.t.telemetry.step(step):
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
                                   report=report)
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

    def _limit_reached(self, step: int) -> tuple[str, str]:
        """(status, reason) when the run ends before `step`: "finished" when it did what it
        was asked (its steps, its target, nothing left), "stopped" on a limit; ("", "")
        otherwise."""
        b, steps = self.t.budget, self.t.steps
        if steps is not None and step >= steps:
            return "finished", f"steps: {steps} steps done"
        if b.target is not None and self.pool and self._best().score >= b.target:
            return "finished", f"target: score {self._best().score:g} >= {b.target:g}"
        spent = self.session.spend
        if b.llm_calls is not None and spent.calls >= b.llm_calls:  # no model call can be made
            return "stopped", (f"llm_calls: LLM call budget reached: {spent.calls} of "
                               f"{b.llm_calls} calls used")
        if b.patience is not None and self.no_improve >= b.patience:
            return "stopped", f"patience: no improvement in {self.no_improve} steps"
        if self.perfect:
            return "finished", PERFECT
        if self.done:
            return "finished", self.done
        return "", ""

    def _load_best(self) -> Candidate | None:
        """Load the best values of the last checkpoint into the module (None: no pool yet)."""
        best_cand = next((c for c in self.pool if c.id == self.best_id), None)
        if best_cand is not None:
            self.module.load_state_dict(best_cand.values)
        return best_cand

    def _finish(self, status: str, reason: str) -> TrainResult:
        best_cand = self._load_best()
        if best_cand is not None:  # pick=: another point of the front
            best_cand = picked(self.pool, self.t.pick, best_cand)
        install_capture()
        try:  # after the search, with the run's program model (`measure` catches failures)
            with running(self.models.program):
                verdict = measure(self.pool, best_cand, self.cache,
                                  metric=self.t.metric, testset=self.t.testset,
                                  split=self.t.val_split)
        finally:
            uninstall_capture()
        if verdict is not None:
            self.store.update_run(self.run_id, verdict=verdict.to_dict())
        if best_cand is not None:
            self.module.load_state_dict(best_cand.values)  # the verdict ran others too
        self.session.close(status, reason)
        return TrainResult(
            run_id=self.run_id, store=self.store, status=status, stop_reason=reason,
            best_candidate=best_cand.id if best_cand else -1,
            best_values=dict(best_cand.values) if best_cand else {},
            best_score=_finite(best_cand.score) if best_cand else None,
            history=history(self.store, self.run_id), spend=self.session.spend_record(),
            metric_calls=self.session.metric_calls, candidates=self.next_id, verdict=verdict,
        )

    # -- one step -------------------------------------------------------------------------
    def _minibatch(self) -> list[int]:
        return self.rng.sample(range(len(self.t.trainset)), self.t.minibatch_size)

    def _step(self, step: int) -> tuple[list[int], int | None, bool]:
        plan = self.strategy.plan(self.pool, self.rng, set(self.tried))
        if isinstance(plan, Merge):
            return self._merge_step(step, plan)
        parent = plan.parent
        batch = self._minibatch()
        self._zero_feedback()
        parent_scores = self.scorer.feedback(step, parent, batch, self.pool)
        self.strategy.observe(parent, parent_scores)
        if self.scorer.is_perfect(parent, parent_scores, self._best()):
            self.store.add_decision(self.run_id, step=step, candidate_id=-1, accepted=False,
                                    reason=PERFECT)
            self.note, self.perfect = PERFECT, True
            return [parent.id], None, False
        if self.scorer.all_correct(parent_scores):  # nothing to learn from: failing ones instead
            batch = failing(self.cache, parent, batch, len(self.t.trainset),
                            self.t.minibatch_size, self.rng)
            if not batch:
                why = (f"{NOTHING_LEFT} (validation mean {mean(parent.val_scores or []):.4g}"
                       "; give more training examples like the failing validation ones)")
                if parent.id != self._best().id:  # another parent may still have failures
                    why = (f"nothing to learn from candidate {parent.id}: it scores 1 on every "
                           "training example; the step is skipped")
                else:
                    self.done = why
                self.store.add_decision(self.run_id, step=step, candidate_id=-1,
                                        accepted=False, reason=why)
                self.note = why
                return [parent.id], None, False
            self._zero_feedback()
            parent_scores = self.scorer.feedback(step, parent, batch, self.pool)
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
        ok, why = self.accept(p_scores, c_scores)
        before = self.meter.program_spend() if self.meter is not None else None
        if not ok and isinstance(why, TieAtZero) and parent.val_scores is not None:
            ok, why = on_validation(self.scorer, parent, chosen)
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
            self._admit(chosen, before)
        return [parent.id], chosen.id, ok

    def _zero_feedback(self) -> None:
        """The optimizer's feedback, then the rest of the module's: a parameter outside the
        optimizer would otherwise keep every earlier step's outputs alive."""
        self.optimizer.zero_feedback()
        zero_feedback(self.params_by_name.values())

    def _propose(self, step: int, parent: Candidate) -> list[Candidate]:
        """Ask the optimizer (the strategy's number of times) from the parent's values; every
        new proposal becomes a child. Each is stored with its step report; one with values
        already evaluated, or no change at all, is recorded as a decision with the reason.
        No parameter is changed to make a child: its values are the parent's with the
        proposal's."""
        children: list[Candidate] = []
        seq = 0
        notes: list[str] = []
        this_step: dict[str, int] = {}  # values hash -> candidate proposed in this step
        with self.module.using(parent.values):
            dot = trace_dot(self.optimizer.params)
            reports = [self._ask_optimizer() for _ in range(self.strategy.proposals)]
        for report in reports:
            proposals: list[Proposal | None] = list(report.proposals) or [None]
            first_seq = seq
            for k, proposal in enumerate(proposals):
                values, invalid = child_values(self.params_by_name, parent, proposal)
                copied = None if invalid is not None or self.guard is None else \
                    self.guard.reason(parent.values, values, self.kinds)
                if copied is not None:  # counted, and told to the optimizer for its next prompt
                    self.session.guards += 1
                    self.optimizer.record({p.name: values[p.name] for p in self.optimizer.params
                                           if p.name in values}, None, copied)
                invalid = invalid if copied is None else ""
                h = values_hash(values) if invalid is None else ""
                cand_id: int | None = None
                twin = twin_of(self.pool, values, h, this_step)
                if invalid is None and values != parent.values and twin is None:
                    cand = self._new_candidate(values, [parent.id], "proposal", step)
                    children.append(cand)
                    this_step[h] = cand_id = cand.id
                self.store.add_step_report(
                    self.run_id, step=step, seq=seq, candidate_id=cand_id,
                    report=candidate_report(report, k, parent.values, values,
                                            several=len(proposals) > 1),
                    candidate_index=k, shared_with=first_seq if k else None,
                    dot=dot if k == 0 else None)
                if cand_id is None:
                    why = (copied if copied is not None
                           else f"invalid candidate {k}: {invalid}" if invalid is not None
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

    def _ask_optimizer(self) -> StepReport:
        """One `propose()` of the optimizer; a budget reached ends the run, also when the
        optimizer caught it (one written before 0.3 may catch every exception)."""
        try:
            report = self.optimizer.propose()
            self.models.optimizer.raise_swallowed()
            return report
        except BudgetExceeded as e:
            raise budget_stop(e) from None

    def _merge_step(self, step: int, plan: Merge) -> tuple[list[int], int | None, bool]:
        a, b = plan.a, plan.b
        batch = self._minibatch()
        child = self._new_candidate(plan.values, [a.id, b.id], "merge", step)
        sa = [r.score for r in self.cache.results(a, "train", batch)]
        sb = [r.score for r in self.cache.results(b, "train", batch)]
        sc = [r.score for r in self.cache.results(child, "train", batch)]
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


def failing(cache: EvalCache, parent: Candidate, correct: list[int], examples: int, size: int,
            rng: random.Random) -> list[int]:
    """Up to `size` training examples `parent` fails, found by scoring it on the others
    (`examples` in all, `correct` left out) a minibatch at a time, stored scores reused; []
    when it fails none."""
    others = [i for i in range(examples) if i not in set(correct)]
    rng.shuffle(others)
    found: list[int] = []
    for start in range(0, len(others), size):
        results = cache.results(parent, "train", others[start : start + size])
        found += [r.index for r in results if r.score < 1.0]
        if len(found) >= size:
            break
    return found[:size]


def twin_of(pool: list[Candidate], values: dict[str, Any], h: str,
            this_step: dict[str, int]) -> int | None:
    """The candidate already evaluated with these values on this search path: one in the
    pool, or one proposed earlier in this step (a rejected set from an earlier step may be
    tried again from another parent, on another minibatch; its stored evaluations are
    reused)."""
    in_pool = next((c.id for c in pool if c.values == values), None)
    return in_pool if in_pool is not None else this_step.get(h)


def child_values(params: dict[str, Any], parent: Candidate, proposal: Proposal | None
                 ) -> tuple[dict[str, Any], str | None]:
    """The module's values for one proposal: the parent's, with the proposal's (by name,
    each checked by its parameter in `params`); None is no change."""
    if proposal is None:
        return parent.values, None
    values = dict(parent.values)
    try:
        for name, value in proposal.values.items():
            values[name] = params[name].validate(value)
    except (KeyError, TypeError, ValueError) as e:
        return parent.values, f"{type(e).__name__}: {e}"
    return values, None


def _changed(parent: Candidate, child: Candidate) -> int:
    """How many parameter values `child` changes from `parent`."""
    return sum(child.values.get(k) != v for k, v in parent.values.items())


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
