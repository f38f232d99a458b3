"""Acceptance rules: whether a child's minibatch scores beat its parent's enough to be kept.

`bf.train(accept=...)` takes one of these names or a callable `(parent_scores, child_scores)
-> bool | (bool, reason)`; without it each strategy keeps its own rule (Greedy and the
bandits: "no worse"; Pareto: "improves"; Pairwise: the judge's comparisons).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from typing import Any

from ..store.pareto import EPS  # scores closer than this are ties: one tolerance

Accept = Callable[[Sequence[float], Sequence[float]], tuple[bool, str]]


def _means(parent: Sequence[float], child: Sequence[float]) -> tuple[float, float]:
    return (sum(parent) / len(parent) if parent else 0.0,
            sum(child) / len(child) if child else 0.0)


def improves(parent: Sequence[float], child: Sequence[float]) -> tuple[bool, str]:
    """Strictly better on the minibatch."""
    pm, cm = _means(parent, child)
    if sum(child) > sum(parent) + EPS:
        return True, f"improves on the minibatch (mean {cm:.4g} > {pm:.4g})"
    return False, f"does not improve on the minibatch (mean {cm:.4g} <= {pm:.4g})"


class TieAtZero(str):
    """The reason "no worse" refuses a tie where every minibatch score is 0: the trainer then
    lets validation decide (a child that beats its parent there is kept)."""


def on_validation(scorer: Any, parent: Any, child: Any) -> tuple[bool, str]:
    """After a tie at 0 on the minibatch (`TieAtZero`): validate `child` with `scorer` and
    keep it only if it beats its parent there (issue 19: a tie at 0 is no evidence)."""
    scorer.validate(child)
    better = child.score > parent.score + EPS
    return better, (f"ties at 0 on the minibatch; on validation {child.score:.4g} "
                    f"{'>' if better else '<='} the parent's {parent.score:.4g}"
                    + ("" if better else " (not kept)"))


def no_worse(parent: Sequence[float], child: Sequence[float]) -> tuple[bool, str]:
    """Not worse on the minibatch; a tie where every score is 0 is refused (it is no evidence
    that the change does anything)."""
    pm, cm = _means(parent, child)
    if sum(child) + EPS < sum(parent):
        return False, f"loses on the minibatch (mean {cm:.4g} < {pm:.4g})"
    if all(abs(s) <= EPS for s in (*parent, *child)):
        return False, TieAtZero("ties at 0 on the minibatch: no evidence that the change helps "
                                "(not kept)")
    return True, f"does not lose on the minibatch (mean {cm:.4g} >= {pm:.4g})"


class Significant:
    """Better by a paired sign-flip test at `level`: the one-sided p-value of the mean
    improvement, over every sign pattern of the per-example differences (exact up to 16
    examples, else `samples` random patterns)."""

    def __init__(self, level: float = 0.05, samples: int = 4000) -> None:
        if not 0 < level < 1:
            raise ValueError(f"level must be between 0 and 1, got {level}")
        self.level, self.samples = level, samples

    def p_value(self, parent: Sequence[float], child: Sequence[float]) -> float:
        diffs = [c - p for p, c in zip(parent, child)]
        observed = sum(diffs)
        if not diffs or observed <= EPS:
            return 1.0
        if len(diffs) <= 16:
            patterns: Any = itertools.product((1, -1), repeat=len(diffs))
            total = 2 ** len(diffs)
        else:
            rng = random.Random(0)
            patterns = ([rng.choice((1, -1)) for _ in diffs] for _ in range(self.samples))
            total = self.samples
        at_least = sum(sum(s * d for s, d in zip(signs, diffs)) >= observed - EPS
                       for signs in patterns)
        if len(diffs) > 16:  # sampled: never 0 (the observed pattern is one of them)
            return (at_least + 1) / (total + 1)
        return at_least / total

    def check(self, examples: int) -> None:
        """Refuse a minibatch too small to ever pass: its smallest p-value is 2**-n."""
        if 2.0 ** -examples > self.level:
            need = next(n for n in range(1, 64) if 2.0 ** -n <= self.level)
            raise ValueError(f"accept='significant' at level {self.level:g} can never accept on "
                             f"a minibatch of {examples} (its smallest p-value is "
                             f"{2.0 ** -examples:g}): use minibatch_size >= {need}, or "
                             "Significant(level=...) with a higher level")

    def __call__(self, parent: Sequence[float], child: Sequence[float]) -> tuple[bool, str]:
        pm, cm = _means(parent, child)
        p = self.p_value(parent, child)
        if p <= self.level:
            return True, (f"significantly better on the minibatch (mean {cm:.4g} > {pm:.4g}, "
                          f"p = {p:.3g} <= {self.level:g})")
        return False, (f"not significantly better on the minibatch (mean {cm:.4g} vs "
                       f"{pm:.4g}, p = {p:.3g} > {self.level:g})")

    def __repr__(self) -> str:
        return f"significant(level={self.level:g})"


NAMED: dict[str, Accept] = {"improves": improves, "no worse": no_worse,
                            "significant": Significant()}


def as_acceptance(accept: str | Callable[..., Any] | None) -> Accept | None:
    """The rule `accept=` names: "improves", "no worse", "significant", a `Significant(level)`,
    or a callable returning a bool or (bool, reason); None keeps the strategy's own."""
    if accept is None:
        return None
    if isinstance(accept, str):
        key = accept.strip().lower().replace("_", " ").replace("-", " ")
        if key not in NAMED:
            raise ValueError(f"accept={accept!r}: use one of {sorted(NAMED)} or a callable "
                             "(parent_scores, child_scores) -> bool | (bool, reason)")
        return NAMED[key]
    if not callable(accept):
        raise TypeError(f"accept= takes a rule name or a callable, not {type(accept).__name__}")

    def rule(parent: Sequence[float], child: Sequence[float]) -> tuple[bool, str]:
        said = accept(list(parent), list(child))
        ok, reason = said if isinstance(said, tuple) else (said, "")
        name = getattr(accept, "__name__", type(accept).__name__)
        return bool(ok), reason or f"{'accepted' if ok else 'rejected'} by {name}"

    return rule


def rule_name(accept: str | Callable[..., Any] | None) -> str | None:
    """How the run's config records the rule."""
    if accept is None or isinstance(accept, str):
        return accept
    return getattr(accept, "__name__", None) or repr(accept)
