"""Battleship, written here: trainable code chooses each shot; score = ship squares hit / total.

The board is hidden; the policy sees the player's view (`.` unknown, `X` hit, `o` miss) and
returns `[row, col]`. A game stops after the shot limit. Repeated or invalid shots are wasted.
"""

from __future__ import annotations

import random
from typing import Any

import backfeed as bf

from . import Example, Task, plain, register

UNKNOWN, HIT, MISS = ".", "X", "o"


class Board:
    """A hidden square board with non-overlapping straight ships, placed by a seeded rng."""

    def __init__(self, size: int, ships: list[int], seed: int) -> None:
        self.size = size
        rng = random.Random(seed)
        self.ships: list[set[tuple[int, int]]] = []
        taken: set[tuple[int, int]] = set()
        for length in ships:
            for _ in range(1000):
                horizontal = rng.random() < 0.5
                r = rng.randrange(size if horizontal else size - length + 1)
                c = rng.randrange(size - length + 1 if horizontal else size)
                cells = {(r, c + i) if horizontal else (r + i, c) for i in range(length)}
                if not cells & taken:
                    self.ships.append(cells)
                    taken |= cells
                    break
            else:
                raise ValueError(f"cannot place a ship of length {length} on a {size}x{size} board")
        self.occupied = taken
        self.view = [[UNKNOWN] * size for _ in range(size)]

    def fire(self, shot: Any) -> str:
        """Apply one shot; returns 'hit', 'miss', 'repeat' or 'invalid: ...'."""
        if (
            not isinstance(shot, list | tuple)
            or len(shot) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in shot)
        ):
            return f"invalid: expected [row, col] integers, got {shot!r}"
        r, c = shot
        if not (0 <= r < self.size and 0 <= c < self.size):
            return f"invalid: {[r, c]} is off the {self.size}x{self.size} board"
        if self.view[r][c] != UNKNOWN:
            return "repeat"
        hit = (r, c) in self.occupied
        self.view[r][c] = HIT if hit else MISS
        return "hit" if hit else "miss"

    def rows(self) -> list[str]:
        return ["".join(row) for row in self.view]

    @property
    def hits(self) -> int:
        return sum(row.count(HIT) for row in self.view)


class Shooter(bf.Module):
    """Plays one game: asks `next_shot` for every shot, then reports the result."""

    def __init__(self, size: int, ships: list[int], shots: int) -> None:
        self.size, self.ships, self.shots = size, ships, shots

    @bf.op(trainable=True)
    def next_shot(self, view: list[str]) -> list[int]:
        """Choose the next shot [row, col] from the view: '.' unknown, 'X' hit, 'o' miss."""
        for r, row in enumerate(view):
            for c, cell in enumerate(row):
                if cell == ".":
                    return [r, c]
        return [0, 0]

    def forward(self, game_seed: Any) -> Any:
        board = Board(self.size, self.ships, int(plain(game_seed)))
        outcomes: dict[str, int] = {"hit": 0, "miss": 0, "repeat": 0, "invalid": 0}
        examples: list[str] = []
        last: Any = None
        error = None
        for _ in range(self.shots):
            try:
                last = self.next_shot(board.rows())
            except bf.ExecutionError as exc:
                last, error = exc.node, str(exc.error)
                break
            outcome = board.fire(last.value)
            key = outcome.split(":")[0]
            outcomes[key] += 1
            if key == "invalid" and len(examples) < 2:
                examples.append(outcome)
        return game_report(last, board.rows(), board.hits, len(board.occupied), outcomes,
                           examples, error)


@bf.op
def game_report(
    last_shot: Any, final_view: list[str], hits: int, ship_squares: int,
    outcomes: dict[str, int], invalid_examples: list[str], error: str | None,
) -> dict[str, Any]:
    """Summary of a game: hits, ship squares, shot outcomes and the final view."""
    return {
        "hits": hits,
        "ship_squares": ship_squares,
        "outcomes": outcomes,
        "invalid_examples": invalid_examples,
        "error": error,
        "final_view": final_view,
    }


def battleship_metric(example: Example, output: Any) -> bf.Feedback:
    """Fraction of ship squares hit; the text lists wasted shots, errors and the final board."""
    report = plain(output)
    if not isinstance(report, dict) or "hits" not in report:
        return bf.Feedback(score=0.0, text=f"not a game report: {report!r}")
    hits, total = report["hits"], report["ship_squares"]
    score = hits / total
    counts = report["outcomes"]
    shots = sum(counts.values())
    text = f"hit {hits} of {total} ship squares with {shots} shots ({counts['miss']} misses"
    if counts["repeat"]:
        text += f", {counts['repeat']} repeated shots wasted"
    if counts["invalid"]:
        text += f", {counts['invalid']} invalid shots wasted, e.g. {report['invalid_examples'][0]}"
    text += ")."
    if report["error"]:
        text += f" The policy raised {report['error']} and the game stopped."
    if score < 1:
        text += " Ships are straight lines; after a hit, try its neighbours. Final view:\n"
        text += "\n".join(report["final_view"])
    return bf.Feedback(score=score, text=text, details={"hits": hits, "ship_squares": total})


@register("battleship")
def battleship_task(seed: int, size: str) -> Task:
    board, ships, shots, n = (6, [3, 2, 2], 14, (2, 2, 4)) if size == "quick" else (
        10, [5, 4, 3, 3, 2], 40, (4, 4, 10))
    base = 1000 * seed
    games = [(base + i, None) for i in range(sum(n))]
    return Task(
        name="battleship",
        family="battleship",
        seed=seed,
        size=size,
        description=f"Write next_shot(view) to sink ships on a {board}x{board} board within "
        f"{shots} shots.",
        build=lambda llm=None: Shooter(board, ships, shots),
        metric=battleship_metric,
        trainset=games[: n[0]],
        valset=games[n[0]: n[0] + n[1]],
        testset=games[n[0] + n[1]:],
        info={"board": board, "ships": ships, "shots": shots},
    )
