"""bf.optim.auto on the numeric family against random search, at an equal number of evaluations.

    python -m benchmarks.numeric_search --problems 6 --seeds 3 --steps 10
    python -m benchmarks.numeric_search --problems 6 --seeds 3 --steps 10 --model qwen2.5-coder-0.5b

Each problem is `benchmarks/tasks/numeric.py`'s task for one seed: an unbounded float `x`
starting at 0, a graph of arithmetic on it, a target output (x* is drawn in [-10, 10]). backfeed
trains with `bf.optim.auto` (compass search around the current value, `bf.optim.Around`; with
`--model`, the model's numbers join as extra candidates) for `--steps` steps; its evaluations
are the distinct values the trainer scored. Random search then draws as many values uniformly
from [-10, 10] (the range x* comes from, which backfeed is not told), for each of `--seeds`
random seeds. A row is the best score each found (1/(1 + |output - target|), as the task's
metric), and finite-difference Adam (the task's reference, no model) at the same evaluations.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

import backfeed as bf

from .tasks import make_task


def score(task, x: float) -> float:
    return task.metric(task.trainset[0], apply_steps_of(task, x)).score or 0.0


def apply_steps_of(task, x: float) -> float:
    program = task.program()
    (param,) = program.parameters()
    param.value = float(x)
    with bf.no_trace():
        return program()


def backfeed_run(task, steps: int, llm) -> tuple[float, int]:
    program = task.program()
    optimizer = bf.optim.auto(program.parameters(), llm=llm) if llm is not None else \
        bf.optim.Around(program.parameters(), ask=False)
    result = bf.train(program, task.trainset, task.valset, metric=task.metric,
                      optimizer=optimizer, steps=steps, store=":memory:", progress=False,
                      minibatch_size=1)
    evaluated = {e.values_hash for e in result.store.evaluations(result.run_id)}
    return result.best_score or 0.0, len(evaluated)


def random_search(task, evaluations: int, seed: int) -> float:
    rng = random.Random(seed)
    return max(score(task, rng.uniform(-10, 10)) for _ in range(evaluations))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--model", default=None, help="a local model name for the LLM's numbers")
    parser.add_argument("--out", default="benchmarks/results/numeric_search.json")
    args = parser.parse_args(argv)
    llm = bf.llm.Local(args.model) if args.model else None
    rows = []
    for problem in range(args.problems):
        task = make_task("numeric", problem, "quick")
        ours, evaluations = backfeed_run(task, args.steps, llm)
        randoms = [random_search(task, evaluations, seed) for seed in range(args.seeds)]
        adam = task.info["baseline"](evaluations)["score"]  # the task's own reference
        rows.append({"problem": problem, "evaluations": evaluations, "backfeed": ours,
                     "random_mean": statistics.mean(randoms), "random_max": max(randoms),
                     "adam": adam, "beats_every_random": all(ours > r for r in randoms)})
    print(f"| problem | evaluations | backfeed auto{' + ' + args.model if args.model else ''} "
          "| random search (mean, best of seeds) | finite-difference Adam |")
    print("|---|---|---|---|---|")
    for r in rows:
        ours = f"**{r['backfeed']:.3f}**" if r["beats_every_random"] else f"{r['backfeed']:.3f}"
        print(f"| {r['problem']} | {r['evaluations']} | {ours} | "
              f"{r['random_mean']:.3f}, {r['random_max']:.3f} | {r['adam']:.3f} |")
    won = sum(r["beats_every_random"] for r in rows)
    print(f"\nbackfeed beats every random-search seed on {won} of {len(rows)} problems")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
