"""Objectives beyond score: what a candidate costs, measured on validation, and `pick=`.

Every objective is a cost, lower is better: `prompt_tokens` (the estimated tokens of the
candidate's text and code parameters: what each call of the program sends), `program_tokens`
and `usd` (the program's model calls per validation example) and `latency` (seconds per
validation example, as stored with each evaluation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._tokens import estimate_tokens
from ..store import values_hash
from .search import Candidate

OBJECTIVES = ("prompt_tokens", "program_tokens", "latency", "usd")


def check_objectives(names: Iterable[str] | None) -> tuple[str, ...]:
    """The objectives named, checked (an unknown name is an error naming the known ones)."""
    chosen = tuple(names or ())
    unknown = [n for n in chosen if n not in OBJECTIVES]
    if unknown:
        raise ValueError(f"unknown objective(s) {unknown}; known: {list(OBJECTIVES)}")
    return chosen


def prompt_tokens(values: Mapping[str, Any], kinds: Mapping[str, str]) -> int:
    """The estimated tokens of the text and code parameters' values."""
    return sum(estimate_tokens(v) for k, v in values.items()
               if kinds.get(k) in ("str", "code") and isinstance(v, str))


class Meter:
    """Measures a run's objectives for each candidate as it is validated."""

    def __init__(self, names: tuple[str, ...], kinds: Mapping[str, str], session: Any,
                 split: str) -> None:
        self.names, self.kinds, self.session, self.split = names, kinds, session, split

    def program_spend(self) -> tuple[float, float]:
        """(tokens, dollars) the program's model calls have cost so far in the run."""
        spent = self.session.spend.to_dict().get("by_role", {}).get("program", {})
        tokens = (spent.get("prompt_tokens") or 0) + (spent.get("completion_tokens") or 0)
        return float(tokens), float(spent.get("usd") or 0.0)

    def measure(self, cand: Candidate, before: tuple[float, float]) -> dict[str, float]:
        """The candidate's objectives; `before`: `program_spend()` before its validation (a
        candidate validated from stored evaluations has no new program spend: 0 here)."""
        store, run_id = self.session.store, self.session.run_id
        n = max(len(cand.val_scores or ()), 1)
        tokens, usd = (now - was for now, was in zip(self.program_spend(), before))
        h = values_hash(cand.values)
        rows = [store.find_evaluation(run_id, h, self.split, i) for i in range(n)]
        seconds = [r.seconds for r in rows if r is not None]
        found = {"prompt_tokens": float(prompt_tokens(cand.values, self.kinds)),
                 "program_tokens": tokens / n, "usd": usd / n,
                 "latency": sum(seconds) / len(seconds) if seconds else 0.0}
        return {name: found[name] for name in self.names}


Pick = Callable[[list[Candidate]], Candidate] | Mapping[str, float]


def picked(pool: list[Candidate], pick: Pick | None, best: Candidate) -> Candidate:
    """The candidate the run returns: `best` without `pick`; with a mapping of limits
    ({"prompt_tokens": 500}), the best-scoring validated candidate within every limit (the
    best when none is); with a callable, its choice among the validated candidates."""
    if pick is None:
        return best
    validated = [c for c in pool if c.val_scores]
    if callable(pick):
        return pick(validated)
    within = [c for c in validated if all((c.objectives or {}).get(k, float("inf")) <= v
                                          for k, v in pick.items())]
    return max(within, key=lambda c: (c.score, -c.id)) if within else best
