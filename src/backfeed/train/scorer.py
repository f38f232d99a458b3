"""How candidates are scored: by a metric, or by a judge comparing outputs side by side.

The trainer's step asks a `Scorer` three things and never which kind it has: give the parent's
outputs their feedback, score a child against the parent on the minibatch, and validate an
admitted candidate.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..budget import BudgetExceeded
from ..graph import Feedback
from ..optim import Optimizer
from .cache import EvalCache
from .evaluate import EvalResult
from .search import Candidate, Pairwise, Verdict, best
from .session import RunSession, budget_stop


class Scorer(Protocol):
    """Scores candidates for the trainer; one implementation per kind of signal."""

    def feedback(self, step: int, parent: Candidate, batch: list[int],
                 pool: list[Candidate]) -> list[float]:
        """Run `parent` on the minibatch with a trace and give each output its feedback;
        return the parent's scores."""
        ...

    def versus(self, step: int, parent: Candidate, parent_scores: list[float], child: Candidate,
               batch: list[int]) -> tuple[list[float], list[float]]:
        """(parent's scores, child's scores) on the minibatch, comparable with each other."""
        ...

    def validate(self, cand: Candidate) -> None:
        """Set `cand.val_scores` (or leave them None where there is nothing to validate on)."""
        ...

    def best(self, pool: list[Candidate]) -> Candidate:
        """The best candidate of the pool."""
        ...

    def improved(self, before: Candidate, after: Candidate) -> bool:
        """Whether the run's best got better."""
        ...

    def is_perfect(self, parent: Candidate, scores: list[float], best: Candidate) -> bool:
        """Whether nothing is left to improve from `parent` (scores: its minibatch's)."""
        ...

    def all_correct(self, scores: list[float]) -> bool:
        """Whether a minibatch gives the optimizer nothing to learn from (every score 1)."""
        ...


class MetricScorer:
    """Scores from the user's metric; each child's result is shown to the optimizer."""

    def __init__(self, cache: EvalCache, optimizer: Optimizer, module: Any, val_split: str) -> None:
        self.cache = cache
        self.optimizer = optimizer
        self.module = module
        self.val_split = val_split

    def feedback(self, step: int, parent: Candidate, batch: list[int],
                 pool: list[Candidate]) -> list[float]:
        return [r.score for r in self.cache.results(parent, "train", batch, trace=True)]

    def versus(self, step: int, parent: Candidate, parent_scores: list[float], child: Candidate,
               batch: list[int]) -> tuple[list[float], list[float]]:
        results = self.cache.results(child, "train", batch)
        self._tell_optimizer(child, results)
        return parent_scores, [r.score for r in results]

    def _tell_optimizer(self, cand: Candidate, results: list[EvalResult]) -> None:
        """Show the optimizer how its proposal did, failures included, for its next prompt."""
        if not results:
            return
        names = {path: p.name for path, p in self.module.named_parameters()}
        values = {names[k]: v for k, v in cand.values.items() if k in names}
        texts = list(dict.fromkeys(r.feedback for r in results if r.feedback))
        score = sum(r.score for r in results) / len(results)
        self.optimizer.record(values, score, "; ".join(texts))

    def validate(self, cand: Candidate) -> None:
        n = len(self.cache.splits[self.val_split])
        cand.val_scores = [r.score for r in self.cache.results(cand, self.val_split,
                                                               list(range(n)))]

    def best(self, pool: list[Candidate]) -> Candidate:
        return best(pool)

    def improved(self, before: Candidate, after: Candidate) -> bool:
        return after.score > before.score + 1e-12

    def all_correct(self, scores: list[float]) -> bool:
        return bool(scores) and all(s >= 1.0 for s in scores)

    def is_perfect(self, parent: Candidate, scores: list[float], best: Candidate) -> bool:
        """The best values scored exactly 1 on every validation example and on this
        minibatch."""
        val = parent.val_scores
        return (parent.id == best.id and bool(scores) and all(s == 1.0 for s in scores)
                and bool(val) and all(v == 1.0 for v in val))


class JudgeScorer:
    """No ground truth: a judge compares outputs; candidates are ranked by their comparisons.

    `judge` is the strategy's judge as the run calls it (an `LLMJudge` bound to the run's
    recorded judge model, or the user's own callable).
    """

    def __init__(self, cache: EvalCache, strategy: Pairwise, session: RunSession,
                 trainset: list[Any], judge: Any, judge_model: Any = None) -> None:
        self.cache = cache
        self.strategy = strategy
        self.session = session
        self.trainset = trainset
        self.judge = judge
        self.judge_model = judge_model  # the run's recorded judge model, if an LLM judges

    def _outputs(self, cand: Candidate, batch: list[int], trace: bool = False) -> list[str | None]:
        return [r.output if r.error is None else f"(error) {r.error}"
                for r in self.cache.results(cand, "train", batch, trace=trace, backward=False)]

    def _judge(self, step: int, a: Candidate, b: Candidate, batch: list[int],
               outs_a: list[str | None], outs_b: list[str | None]) -> list[Verdict]:
        verdicts = []
        for i, oa, ob in zip(batch, outs_a, outs_b):
            try:
                raw = self.judge(self.trainset[i], oa, ob)
                if self.judge_model is not None:  # a judge that caught the failure itself
                    self.judge_model.raise_swallowed()
            except BudgetExceeded as e:
                raise budget_stop(e) from None
            v = Verdict.of(raw)
            self.strategy.record(a.id, b.id, v)
            self.session.store.add_comparison(self.session.run_id, step=step, candidate_a=a.id,
                                              candidate_b=b.id, example_index=i,
                                              winner=v.winner, reason=v.reason)
            verdicts.append(v)
        return verdicts

    def feedback(self, step: int, parent: Candidate, batch: list[int],
                 pool: list[Candidate]) -> list[float]:
        """The parent's feedback is a comparison with the runner-up."""
        ranked = self.strategy.rank(pool)
        rival = next((c for c in ranked if c.id != parent.id), None)
        outs_p = self._outputs(parent, batch, trace=True)
        traced = self.cache.traced
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

    def versus(self, step: int, parent: Candidate, parent_scores: list[float], child: Candidate,
               batch: list[int]) -> tuple[list[float], list[float]]:
        verdicts = self._judge(step, parent, child, batch, self._outputs(parent, batch),
                               self._outputs(child, batch))
        child_scores = [1.0 if v.winner == "b" else 0.5 if v.winner == "tie" else 0.0
                        for v in verdicts]
        return [1.0 - s for s in child_scores], child_scores

    def validate(self, cand: Candidate) -> None:
        """Nothing to validate on: the comparisons rank the pool."""

    def best(self, pool: list[Candidate]) -> Candidate:
        return self.strategy.rank(pool)[0]

    def improved(self, before: Candidate, after: Candidate) -> bool:
        return after.id != before.id

    def is_perfect(self, parent: Candidate, scores: list[float], best: Candidate) -> bool:
        """Never: a judge's scores are relative, so a better output may always exist."""
        return False

    def all_correct(self, scores: list[float]) -> bool:
        """Never: a comparison always has something to learn from."""
        return False

