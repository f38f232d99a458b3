"""k-fold cross-validation of a whole training run: how well the search generalises, not one
split's luck (the validation set the winner is chosen on is a different fold each time)."""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..graph import Module
from ..optim import Optimizer
from .reports import TrainResult
from .trainer import train


@dataclass
class CrossValidation:
    """What `cross_validate` returns: one run per fold and the held-out scores."""

    results: list[TrainResult]
    scores: list[float]  # each fold's winner on its held-out fold (its validation)
    folds: list[list[int]] = field(default_factory=list)  # the example indexes of each fold

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores)

    @property
    def sd(self) -> float:
        m = self.mean
        return math.sqrt(sum((s - m) ** 2 for s in self.scores) / max(len(self.scores) - 1, 1))

    def line(self) -> str:
        scores = ", ".join(f"{s:.3f}" for s in self.scores)
        return (f"{len(self.scores)}-fold cross-validation: held-out {self.mean:.3f} ± "
                f"{self.sd:.3f} (folds: {scores})")


def cross_validate(module: Module, data: Iterable[Any], *, k: int = 5,
                   optimizer: Callable[[Module], Optimizer], seed: int = 0,
                   **train_options: Any) -> CrossValidation:
    """Run `bf.train` `k` times on a copy of `module` (its values as now): each time the
    winner is trained on k-1 folds of `data` and chosen on the remaining one, and its score
    there is that fold's. `optimizer(module_copy)` builds each run's optimizer on that copy's
    parameters. The folds are a seeded shuffle of `data`; `train_options` are `bf.train`'s
    (metric, steps, budget, store, ...). `module` itself is left unchanged."""
    examples = list(data)
    if k < 2 or k > len(examples):
        raise ValueError(f"k must be between 2 and the number of examples ({len(examples)}), "
                         f"got {k}")
    for taken in ("valset", "resume", "optimizer"):
        if taken in train_options:
            raise ValueError(f"cross_validate chooses {taken!r} itself; leave it out")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    folds = [sorted(order[i::k]) for i in range(k)]
    name = train_options.pop("name", None)
    results, scores = [], []
    for i, fold in enumerate(folds):
        held = set(fold)
        run = copy.deepcopy(module)
        result = train(run, [examples[j] for j in order if j not in held],
                       [examples[j] for j in fold], optimizer=optimizer(run), seed=seed,
                       name=f"{name + ': ' if name else ''}fold {i + 1} of {k}",
                       **train_options)
        results.append(result)
        scores.append(result.best_score if result.best_score is not None else 0.0)
    return CrossValidation(results, scores, folds)
