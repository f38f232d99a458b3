"""Repair rate of code proposals: one Prime step per code_repair function, per model and setting.

Each function of the code_repair family (`benchmarks/tasks/code_repair.py`, seed 0, quick
splits) runs its train tests with their feedback, then one `Prime` step proposes a fix.
Per model and setting the table gives: *applied* (a proposal was read and set), *changed*
(at least one candidate differs from the buggy code), *fixed* (a candidate passes every
train, val and test unit test), LLM calls, prompt and completion tokens, and seconds.

    python benchmarks/repair_rate.py --models qwen2.5-coder-0.5b --settings base,retry

Settings: `base` (the full trace prompt, no retry: Prime before the compact prompt),
`retry` (full prompt, retry=True), `compact` (compact prompt, no retry), `both` (compact
prompt and retry: Prime's default on one code parameter); a `:N` suffix asks N candidates
(`both:4`). `--answers FILE` appends every raw
answer (JSON lines) for reading.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backfeed.llm import Local
from backfeed.optim import Prime
from benchmarks.tasks import Task, make_task, plain, task_names

SETTINGS: dict[str, dict[str, Any]] = {
    "base": {"compact": False},
    "retry": {"compact": False, "retry": True},
    "compact": {"compact": True, "retry": False},
    "both": {"retry": True, "compact": True},
}


@dataclass
class Trial:
    model: str
    setting: str
    task: str
    applied: bool
    changed: bool
    fixed: bool
    calls: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    problems: str
    answers: list[str]


def options(setting: str) -> dict[str, Any]:
    """Prime's keyword arguments for a setting name such as `both:4`."""
    name, _, n = setting.partition(":")
    if name not in SETTINGS:
        raise ValueError(f"unknown setting {name!r}; choose from {sorted(SETTINGS)}")
    return {**SETTINGS[name], "candidates": int(n or 1)}


def trial(llm: Any, model: str, setting: str, task: Task) -> Trial:
    program = task.program()
    opt = Prime(program.parameters(), llm=llm, temperature=0.0, **options(setting))
    for example in task.trainset:
        out = task.run(program, example)
        out.backward(task.metric(example, plain(out)))
    seed = program.state_dict()
    start = time.perf_counter()
    report = opt.step()
    seconds = time.perf_counter() - start
    opt.zero_feedback()
    changed = any(c != seed for c in report.candidates)
    tests = task.trainset + task.valset + task.testset
    fixed = False
    for values in report.candidates:
        opt._load(values)
        fixed = fixed or all(task.metric(ex, plain(task.run(program, ex))).score == 1
                             for ex in tests)
    applied = any(u.applied for u in report.updates) or bool(report.candidates)
    return Trial(model, setting, task.name, applied, changed, fixed, report.llm_calls,
                 report.prompt_tokens, report.completion_tokens, round(seconds, 2),
                 "; ".join(report.problems + [u.reason or "" for u in report.rejected])[:300],
                 list(report.answers))


def table(trials: list[Trial]) -> list[dict[str, Any]]:
    rows = []
    for model, setting in dict.fromkeys((t.model, t.setting) for t in trials):
        group = [t for t in trials if t.model == model and t.setting == setting]
        n = len(group)
        rows.append({
            "model": model, "setting": setting, "functions": n,
            "applied": sum(t.applied for t in group), "changed": sum(t.changed for t in group),
            "fixed": sum(t.fixed for t in group), "calls": sum(t.calls for t in group),
            "prompt_tokens": round(sum(t.prompt_tokens for t in group) / n),
            "completion_tokens": round(sum(t.completion_tokens for t in group) / n),
            "s_per_function": round(sum(t.seconds for t in group) / n, 1),
        })
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="qwen2.5-coder-0.5b")
    parser.add_argument("--settings", default="base,both")
    parser.add_argument("--tasks", default="", help="function names (default: all 16)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for rows and trials")
    parser.add_argument("--answers", type=Path, default=None, help="JSON lines of raw answers")
    args = parser.parse_args(argv)
    names = [n for n in task_names() if n.startswith("code_repair/")]
    if args.tasks:
        names = [f"code_repair/{t}" for t in args.tasks.split(",")]
    trials: list[Trial] = []
    for model in args.models.split(","):
        llm = Local(model, cache=False)
        for setting in args.settings.split(","):
            options(setting)  # fail early on a bad name
            for name in names:
                t = trial(llm, model, setting, make_task(name, seed=0, size="quick"))
                trials.append(t)
                print(f"{model} {setting} {name}: applied={t.applied} changed={t.changed} "
                      f"fixed={t.fixed} calls={t.calls} {t.seconds}s {t.problems[:80]}",
                      flush=True)
                if args.answers is not None:
                    with args.answers.open("a") as f:
                        f.write(json.dumps(asdict(t)) + "\n")
    rows = table(trials)
    head = list(rows[0]) if rows else []
    print(" | ".join(head))
    for row in rows:
        print(" | ".join(str(row[k]) for k in head))
    if args.out is not None:
        args.out.write_text(json.dumps({"rows": rows, "trials": [asdict(t) for t in trials]},
                                       indent=1))


if __name__ == "__main__":
    main()
