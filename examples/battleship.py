"""Code optimization: the trainable function chooses each Battleship shot.

Score = fraction of ship squares hit within the shot limit. The game is the benchmark's own.

    python examples/battleship.py [local | gpt-4o-mini]
"""

import sys
from pathlib import Path

from _model import model_from_args

import backfeed as bf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for benchmarks.tasks
from benchmarks.tasks.battleship import Board

llm, args = model_from_args(__doc__)
SIZE, SHIPS, SHOTS = 6, [3, 2, 2], 14


class Player(bf.Module):
    @bf.op(trainable=True)  # this function's source is the parameter the LLM rewrites
    def next_shot(self, view: list[str]) -> list[int]:
        """Return [row, col] of the next shot. view: '.' unknown, 'X' hit, 'o' miss."""
        for r, row in enumerate(view):
            for c, cell in enumerate(row):
                if cell == ".":
                    return [r, c]
        return [0, 0]

    def forward(self, seed):
        board = Board(SIZE, SHIPS, seed)
        shot = None
        for _ in range(SHOTS):
            shot = self.next_shot(board.rows())  # a traced call; errors become feedback
            board.fire(shot.value)
        return summary(shot, board.rows(), board.hits, len(board.occupied))


@bf.op
def summary(last_shot, view, hits, total):
    """Hits out of ship squares, and the final view."""
    return {"hits": hits, "total": total, "view": view}


def metric(example, output):
    r = output  # the trainer passes the output's plain value
    return bf.Feedback(score=r["hits"] / r["total"],
                       text=f"hit {r['hits']} of {r['total']} ship squares; final view:\n"
                       + "\n".join(r["view"]))


program = Player()
games = [(seed, None) for seed in range(8)]
bf.train(program, games[:4], valset=games[4:], metric=metric,
         optimizer=bf.optim.Prime(program.parameters(), llm=llm),
         budget=bf.Budget(llm_calls=args.calls))
print(program.next_shot.code.value)
