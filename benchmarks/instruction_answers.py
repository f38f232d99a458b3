"""Raw answers of an embedded model asked to improve an instruction, kept as test fixtures.

    python -m benchmarks.instruction_answers --model qwen2.5-coder-0.5b --seeds 0 1
    python -m benchmarks.instruction_answers --model qwen2.5-coder-1.5b --seeds 0 1

For each convention family (benchmarks/tasks/conventions.py) and seed, the 0.5B program answers
four training examples with the task's start instruction, the metric's feedback goes back, and
`bf.optim.auto` with `--model` as the optimizer proposes a new instruction. Every raw answer is
written with what backfeed kept from it, the problems it found and whether the copy guard
fired, to tests/fixtures/instruction_answers/<model>.jsonl; tests/test_optim_clean.py reads
them back through today's code, so no meta-text or copied training input gets into a value.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import backfeed as bf
from backfeed.train.guards import CopyGuard

from .tasks import make_task
from .tasks.conventions import FAMILIES

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "instruction_answers"


def answers(model: str, seeds: list[int], program_model: str = "qwen2.5-coder-0.5b"
            ) -> list[dict]:
    optimizer_llm = bf.llm.Local(model)
    program_llm = optimizer_llm if model == program_model else bf.llm.Local(program_model)
    rows = []
    for family in FAMILIES:
        for seed in seeds:
            task = make_task(f"convention/{family}", seed)
            program = task.program(program_llm)
            (param,) = program.parameters()
            for example in task.trainset[:4]:
                try:
                    out = task.run(program, example)
                    out.backward(task.metric(example, out))
                except bf.ExecutionError as exc:
                    exc.node.backward(bf.Feedback(0.0, f"the program raised {exc.error}"))
            optimizer = bf.optim.auto(program.parameters(), llm=optimizer_llm)
            report = optimizer.propose()
            kept = report.proposals[0].values[param.name] if report.proposals else None
            guard = CopyGuard(task.trainset)
            rows.append({
                "source": f"benchmarks/instruction_answers.py, convention/{family} seed {seed}",
                "model": model, "name": param.name, "seed": param.value,
                "answers": report.answers, "kept": kept,
                "problems": [str(p) for p in report.problems],
                "rejected": [u.reason for u in report.rejected],
                "copied": None if kept is None else guard.reason(
                    {param.name: param.value}, {param.name: kept}, {param.name: "str"}),
                "trainset": task.trainset,
            })
            print(json.dumps({k: rows[-1][k] for k in ("source", "kept", "problems",
                                                         "copied")}), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--tag", default="", help="added to the file name (a later code's run)")
    args = parser.parse_args(argv)
    rows = answers(args.model, args.seeds)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{args.model}{'-' + args.tag if args.tag else ''}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {len(rows)} rows to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
