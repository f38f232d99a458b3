"""The held-out verdict: the seed and the winner on data the search never chose on, with a
paired bootstrap interval of the improvement."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ..store.records import LEVEL, HeldOut
from .cache import EvalCache
from .search import Candidate

RESAMPLES = 2000  # bootstrap resamples; enough for a stable 95% interval on a few hundred examples


def paired_bootstrap(seed: Sequence[float], best: Sequence[float], *, resamples: int = RESAMPLES,
                     level: float = LEVEL, rng_seed: int = 0) -> tuple[float, float, float]:
    """(mean improvement, low, high): the mean of `best[i] - seed[i]` and its percentile
    bootstrap interval at `level`, resampling the examples (pairs) with replacement."""
    if len(seed) != len(best) or not seed:
        raise ValueError(f"a paired interval needs two equally long, non-empty score lists "
                         f"(got {len(seed)} and {len(best)})")
    diffs = [b - s for s, b in zip(seed, best)]
    n = len(diffs)
    rng = random.Random(rng_seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1.0 - level) / 2
    low = means[int(tail * (resamples - 1))]
    high = means[round((1.0 - tail) * (resamples - 1))]
    return sum(diffs) / n, low, high


def verdict_of(split: str, seed_scores: Sequence[float], best_scores: Sequence[float], *,
               seed_candidate: int, best_candidate: int) -> HeldOut:
    """The verdict from both candidates' per-example scores on `split`."""
    improvement, low, high = paired_bootstrap(seed_scores, best_scores)
    n = len(seed_scores)
    return HeldOut(split, n, sum(seed_scores) / n, sum(best_scores) / n, improvement, low, high,
                   seed_candidate=seed_candidate, best_candidate=best_candidate)


def measure(pool: list[Candidate], best: Candidate | None, cache: EvalCache, *,
            metric: Any, testset: list[Any] | None, split: str) -> HeldOut | None:
    """The run's verdict: the seed and the best scored on the test split (else on validation,
    `split`, where the best was chosen), never used to choose; not measured (with why) when
    there is no metric, or anything stopped it (a budget, a model, the metric, Ctrl-C)."""
    seed = next((c for c in pool if c.origin == "seed"), None)
    if seed is None or best is None:
        return None
    where = "test" if testset is not None else split
    if metric is None:
        return HeldOut(where, measured=False, why="no metric: a judge's comparisons give no "
                       "score on held-out examples")
    try:
        if testset is not None:
            every = list(range(len(testset)))
            seed_scores, best_scores = (
                [r.score for r in cache.results(c, "test", every, limited=False)]
                for c in (seed, best))
        else:
            seed_scores, best_scores = seed.val_scores or [], best.val_scores or []
    except (Exception, KeyboardInterrupt) as e:  # after the search: a budget (StopRun), a
        # model that failed (RunStop), a metric that raised or Ctrl-C lose nothing it found
        return HeldOut(where, measured=False, why=f"{type(e).__name__}: {e}")
    if not seed_scores or len(seed_scores) != len(best_scores):
        return HeldOut(where, measured=False, why="the seed or the best has no scores")
    return verdict_of(where, seed_scores, best_scores, seed_candidate=seed.id,
                      best_candidate=best.id)
