"""The dashboard's queries: score curves and Pareto fronts computed in SQLite, values unread."""

from __future__ import annotations

from typing import Any

from .connection import StoreBase
from .schema import _load


class DashboardQueries(StoreBase):
    """Queries whose cost does not grow with what a page does not show."""

    def score_points(self, run_id: str, most: int | None = None) -> list[dict[str, Any]]:
        """Scored candidates as small rows for score curves: id, step, origin, score, and the LLM
        calls and dollars spent when its step finished (no values are read).

        With `most`, SQLite keeps every candidate that raised the best score so far (so the
        best-so-far line stays exact) and an even sample of about `most / 2` others.
        """
        sample = ""
        args: list[Any] = [run_id]
        if most is not None:
            sample = (" WHERE c.before IS NULL OR c.val_score > c.before"
                      " OR (c.n - 1) % MAX(1, c.total / ?2) = 0")
            args.append(max(1, int(most) // 2))
        rows = self._db().execute(
            "SELECT c.id, c.step, c.origin, c.val_score,"
            " json_extract(s.spend, '$.calls') AS calls, json_extract(s.spend, '$.usd') AS usd"
            " FROM (SELECT id, step, origin, val_score,"
            "   MAX(val_score) OVER (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
            "   AS before, ROW_NUMBER() OVER (ORDER BY id) AS n, COUNT(*) OVER () AS total"
            "   FROM candidates WHERE run_id = ?1 AND val_score IS NOT NULL) c"
            " LEFT JOIN steps s ON s.run_id = ?1 AND s.step = c.step"
            f"{sample} ORDER BY c.id",
            args,
        ).fetchall()
        return [
            {"id": r["id"], "step": r["step"], "origin": r["origin"], "score": r["val_score"],
             "calls": r["calls"], "usd": r["usd"]}
            for r in rows
        ]

    def front_scores(self, run_id: str, eps: float = 1e-9) -> dict[int, list[float]]:
        """The per-example validation scores of the candidates that win at least one example
        (within `eps` of its top score), cut to the length every scored candidate has: the only
        candidates a Pareto front can hold, found in SQLite without reading the others."""
        rows = self._db().execute(
            "WITH scored AS (SELECT id, val_scores FROM candidates WHERE run_id = ?1"
            "   AND val_scores IS NOT NULL AND json_array_length(val_scores) > 0),"
            " width AS (SELECT MIN(json_array_length(val_scores)) AS n FROM scored),"
            " cells AS (SELECT scored.id, j.key AS i, j.value AS v"
            "   FROM scored, json_each(scored.val_scores) j, width WHERE j.key < width.n),"
            " top AS (SELECT i, MAX(v) AS best FROM cells GROUP BY i)"
            " SELECT id, val_scores, (SELECT n FROM width) AS n FROM scored WHERE id IN"
            "   (SELECT cells.id FROM cells JOIN top USING (i) WHERE v >= best - ?2)"
            " ORDER BY id",
            (run_id, eps),
        ).fetchall()
        return {r["id"]: _load(r["val_scores"])[: r["n"]] for r in rows}
