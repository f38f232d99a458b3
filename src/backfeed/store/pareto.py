"""The per-example Pareto rule (GEPA's front), written once for the trainer and the dashboard."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

EPS = 1e-9  # scores closer than this are ties


def nondominated(points: Mapping[int, Sequence[float]], eps: float = EPS) -> set[int]:
    """The ids whose vectors no other vector dominates (higher is better on every
    coordinate: negate a cost): one is dominated when another is no worse everywhere and
    better somewhere. A candidate better on every objective is always on the front."""
    vectors = {cid: tuple(v) for cid, v in points.items()}

    def beaten(a: tuple[float, ...]) -> bool:
        return any(all(b[i] >= a[i] - eps for i in range(len(a)))
                   and any(b[i] > a[i] + eps for i in range(len(a)))
                   for b in vectors.values() if b != a)

    return {cid for cid, v in vectors.items() if not beaten(v)}


def pareto_wins(
    scores: Mapping[int, Sequence[float] | None], eps: float = EPS
) -> dict[int, list[int]]:
    """{candidate id: the validation examples it wins}, for the candidates on the front.

    For each example (over the length every scored candidate has), the candidates within
    `eps` of the top score win it; a candidate dominated by another winner (no worse on
    every example, better on one) is dropped. Candidates without scores take no part.
    """
    scored = {cid: list(s) for cid, s in scores.items() if s}
    if not scored:
        return {}
    n = min(len(s) for s in scored.values())
    winners = []
    for i in range(n):
        top = max(s[i] for s in scored.values())
        winners.append({cid for cid, s in scored.items() if s[i] >= top - eps})
    on_front = set().union(*winners)
    # Candidates with equal scores share a verdict (one cannot dominate its equal), so each
    # distinct score vector is checked once: a front of 1,000 ties is one check, not a million.
    vectors = {tuple(scored[cid][:n]) for cid in on_front}

    def dominated(sa: tuple[float, ...]) -> bool:
        return any(
            all(sb[i] >= sa[i] - eps for i in range(n)) and any(sb[i] > sa[i] + eps for i in range(n))
            for sb in vectors if sb != sa
        )

    beaten = {v for v in vectors if dominated(v)}
    keep = sorted(cid for cid in on_front if tuple(scored[cid][:n]) not in beaten)
    return {cid: [i for i, w in enumerate(winners) if cid in w] for cid in keep}
