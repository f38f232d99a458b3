"""What an optimizer has observed: value sets with their scores and feedback, oldest first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Observation:
    """Parameter values with the feedback their outputs received (one row of the history)."""

    step: int
    values: dict[str, Any]
    score: float | None
    feedback: str

    def key(self) -> str:
        return values_key(self.values)


def values_key(values: dict[str, Any]) -> str:
    """A stable text key for a set of parameter values (equal values, equal keys)."""
    return json.dumps(values, sort_keys=True, default=repr)


class History:
    """The value sets observed so far with their scores, oldest first, at most `limit` rows
    (the oldest goes first, never the best). One object can be shared by the parts of a
    composite optimizer (Hybrid), so each sees what the others observed.
    """

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self.rows: list[Observation] = []

    def __iter__(self) -> Iterator[Observation]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Observation:
        return self.rows[index]

    def remember(self, obs: Observation) -> None:
        """Add a row; observing the same values again replaces their earlier row."""
        key = obs.key()
        self.rows = [h for h in self.rows if h.key() != key] + [obs]
        if len(self.rows) > self.limit:
            best = self.best()
            oldest = next(h for h in self.rows if h is not best)
            self.rows.remove(oldest)

    def best(self) -> Observation | None:
        """The observed values with the highest score."""
        scored = [h for h in self.rows if h.score is not None]
        return max(scored, key=lambda h: h.score) if scored else None  # type: ignore[arg-type, return-value]

    def keys(self) -> set[str]:
        """The keys (`values_key`) of every value set observed."""
        return {h.key() for h in self.rows}

    def load(self, rows: list[dict[str, Any]]) -> None:
        self.rows = [Observation(**h) for h in rows]

    def to_list(self) -> list[dict[str, Any]]:
        return [asdict(h) for h in self.rows]
