"""Lineage: the one walk from candidates to all their ancestors (the store and the search)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .connection import StoreBase
from .records import CandidateRecord


def ancestors(start: Iterable[int], parents: Mapping[int, Iterable[int]]) -> set[int]:
    """Every ancestor of the candidates `start` (their parents, theirs, ...), not `start`
    itself unless one is an ancestor of another; ids without a known parent list end a line."""
    seen: set[int] = set()
    stack = [p for i in start for p in parents.get(i, ())]
    while stack:
        i = stack.pop()
        if i in seen or i not in parents:
            continue
        seen.add(i)
        stack.extend(parents[i])
    return seen


class LineageQueries(StoreBase):
    """A candidate's line of descent."""

    def lineage(self, run_id: str, candidate_id: int) -> list[CandidateRecord]:
        """The candidate and all its ancestors, oldest first."""
        by_id = {c.id: c for c in self.candidates(run_id)}  # type: ignore[attr-defined]
        if candidate_id not in by_id:
            raise KeyError(f"run {run_id!r} has no candidate {candidate_id}")
        found = ancestors([candidate_id], {i: c.parents for i, c in by_id.items()})
        return [by_id[i] for i in sorted(found | {candidate_id})]
