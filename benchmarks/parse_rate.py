"""Parse-and-apply rate of code proposals: one Prime step per buggy function on a model.

Each buggy function is a `@bf.op(trainable=True)` whose unit tests give feedback
("f(x) returned A, expected B", or the error with its line). One Prime step asks the model for
a fix; a proposal counts as applied when its code was read and set (not rejected). The table
also says how many changed the code and how many pass every test afterwards.

    python benchmarks/parse_rate.py --models qwen2.5-coder-0.5b --samples 2 --out rate.json

`--fixtures DIR` saves every raw answer (JSON lines), the test fixtures' source.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import backfeed as bf
from backfeed.optim import Prime

# -- the buggy functions (own tasks; benchmarks/tasks/code_repair.py is the task family) ------


@bf.op(trainable=True)
def median(xs: list) -> float:
    """Return the median of a non-empty list of numbers."""
    return xs[len(xs) // 2]


@bf.op(trainable=True)
def clean_name(name: str) -> str:
    """Strip spaces and capitalise each word: '  ada LOVELACE ' -> 'Ada Lovelace'."""
    return name.capitalize()


@bf.op(trainable=True)
def count_vowels(text: str) -> int:
    """Count the vowels (a, e, i, o, u) in text, upper or lower case."""
    return sum(1 for ch in text if ch in "aeiou")


@bf.op(trainable=True)
def fizzbuzz(n: int) -> str:
    """'FizzBuzz' for multiples of 15, 'Fizz' of 3, 'Buzz' of 5, else the number as text."""
    if n % 3 == 0:
        return "Fizz"
    if n % 5 == 0:
        return "Buzz"
    if n % 15 == 0:
        return "FizzBuzz"
    return str(n)


@bf.op(trainable=True)
def is_palindrome(text: str) -> bool:
    """True when text reads the same backwards, ignoring case, spaces and punctuation."""
    return text == text[::-1]


@bf.op(trainable=True)
def flatten(items: list) -> list:
    """Flatten arbitrarily nested lists into one flat list, keeping the order."""
    out = []
    for item in items:
        if isinstance(item, list):
            out.extend(item)
        else:
            out.append(item)
    return out


@bf.op(trainable=True)
def word_counts(text: str) -> dict:
    """Count each word of text, case-insensitively: 'A a b' -> {'a': 2, 'b': 1}."""
    counts = {}
    for word in text.split():
        counts[word] = counts.get(word, 0) + 1
    return counts


@bf.op(trainable=True)
def running_sum(xs: list) -> list:
    """The running totals of xs: [1, 2, 3] -> [1, 3, 6]."""
    total = 0
    out = []
    for i in range(1, len(xs)):
        total += xs[i]
        out.append(total)
    return out


@bf.op(trainable=True)
def minutes(duration: str) -> int:
    """Minutes in a duration such as '1h30m', '45m' or '2h'."""
    if "m" in duration:
        return int(duration.split("h")[-1].rstrip("m"))
    return 0


@bf.op(trainable=True)
def dedupe(xs: list) -> list:
    """Remove repeated items, keeping the first occurrence of each, in order."""
    return list(set(xs))


@bf.op(trainable=True)
def to_fahrenheit(celsius: float) -> float:
    """Convert degrees Celsius to Fahrenheit."""
    return celsius * 9 / 5


@bf.op(trainable=True)
def second_largest(xs: list) -> int:
    """The second largest distinct value of xs (xs has at least two distinct values)."""
    return sorted(xs)[-2]


TASKS: dict[str, tuple[Any, list[tuple[tuple[Any, ...], Any]]]] = {
    "median": (median, [(([3, 1, 2],), 2), (([1, 2, 3, 4],), 2.5), (([5],), 5), (([9, 7],), 8)]),
    "clean_name": (clean_name, [(("  ada LOVELACE ",), "Ada Lovelace"), (("alan turing",),
                   "Alan Turing"), (("GRACE",), "Grace")]),
    "count_vowels": (count_vowels, [(("Hello",), 2), (("AEIOU",), 5), (("xyz",), 0)]),
    "fizzbuzz": (fizzbuzz, [((15,), "FizzBuzz"), ((9,), "Fizz"), ((10,), "Buzz"), ((7,), "7")]),
    "is_palindrome": (is_palindrome, [(("A man, a plan, a canal: Panama",), True),
                                      (("abba",), True), (("abc",), False)]),
    "flatten": (flatten, [(([1, [2, [3, [4]]]],), [1, 2, 3, 4]), (([[1], 2],), [1, 2])]),
    "word_counts": (word_counts, [(("A a b",), {"a": 2, "b": 1}), (("x",), {"x": 1})]),
    "running_sum": (running_sum, [(([1, 2, 3],), [1, 3, 6]), (([],), []), (([5],), [5])]),
    "minutes": (minutes, [(("1h30m",), 90), (("45m",), 45), (("2h",), 120)]),
    "dedupe": (dedupe, [(([3, 1, 3, 2, 1],), [3, 1, 2]), ((["b", "a", "b"],), ["b", "a"])]),
    "to_fahrenheit": (to_fahrenheit, [((100,), 212.0), ((0,), 32.0), ((-40,), -40.0)]),
    "second_largest": (second_largest, [(([1, 5, 5, 3],), 3), (([2, 9],), 2)]),
}


def run_tests(fn: Any, tests: list[tuple[tuple[Any, ...], Any]], feedback: bool) -> float:
    """Call fn on each test's inputs; give each output its feedback; the share that pass."""
    passed = 0
    for args, expected in tests:
        call = f"{fn.info.name}({', '.join(repr(a) for a in args)})"
        try:
            out = fn(*[bf.node(a, name=f"arg{i}") for i, a in enumerate(args)])
        except bf.ExecutionError as exc:
            out = exc.node
        if out.error is not None:
            ok, text = False, f"{call} raised {out.error}"
        else:
            ok = out.value == expected
            text = "passed" if ok else f"{call} returned {out.value!r}, expected {expected!r}"
        passed += ok
        if feedback:
            out.backward(bf.Feedback(score=float(ok), text=text))
    return passed / len(tests)


@dataclass
class Trial:
    model: str
    task: str
    sample: int
    prefill: bool
    applied: bool
    changed: bool
    passes: bool
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    reason: str
    answer: str


def trial(llm: Any, model: str, task: str, sample: int, prefill: bool) -> Trial:
    fn, tests = TASKS[task]
    code = fn.code
    seed_source = code.value
    try:
        opt = Prime([code], llm=llm, prefill=prefill, temperature=0.0 if sample == 0 else 0.8)
        run_tests(fn, tests, feedback=True)
        start = time.perf_counter()
        report = opt.step()
        seconds = time.perf_counter() - start
        update = next(u for u in report.updates if u.name == code.name) if report.updates else None
        applied = bool(update and update.applied)
        changed = bool(update and update.changed)
        opt.zero_feedback()
        passes = applied and run_tests(fn, tests, feedback=False) == 1.0
        reasons = [u.reason or "" for u in report.rejected] + report.problems
        if report.error:
            reasons.append(report.error)
        return Trial(model, task, sample, prefill, applied, changed, passes, round(seconds, 2),
                     report.prompt_tokens, report.completion_tokens, "; ".join(reasons)[:300],
                     report.answers[-1] if report.answers else "")
    finally:
        code.value = seed_source


def table(trials: list[Trial]) -> list[dict[str, Any]]:
    rows = []
    keys = sorted({(t.model, t.prefill) for t in trials})
    for model, prefill in keys:
        group = [t for t in trials if t.model == model and t.prefill == prefill]
        n = len(group)
        rows.append({
            "model": model, "prefill": prefill, "answers": n,
            "applied": sum(t.applied for t in group), "changed": sum(t.changed for t in group),
            "pass_all": sum(t.passes for t in group),
            "apply_rate": round(sum(t.applied for t in group) / n, 3),
            "s_per_answer": round(sum(t.seconds for t in group) / n, 2),
            "completion_tokens": round(sum(t.completion_tokens for t in group) / n, 1),
            "prompt_tokens": round(sum(t.prompt_tokens for t in group) / n, 1),
        })
    return rows


def print_table(rows: list[dict[str, Any]], echo: Callable[[str], None] = print) -> None:
    head = ("model", "prefill", "answers", "applied", "changed", "pass_all", "apply_rate",
            "s_per_answer", "prompt_tokens", "completion_tokens")
    echo(" | ".join(head))
    for row in rows:
        echo(" | ".join(str(row[k]) for k in head))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="qwen2.5-coder-0.5b")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--samples", type=int, default=2, help="answers per task (1st greedy)")
    parser.add_argument("--prefill", choices=("on", "off", "both"), default="on")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for rows and trials")
    parser.add_argument("--fixtures", type=Path, default=None, help="folder for raw answers")
    args = parser.parse_args(argv)
    trials: list[Trial] = []
    prefills = {"on": [True], "off": [False], "both": [True, False]}[args.prefill]
    for model in args.models.split(","):
        llm = bf.llm.Local(model, cache=False)
        for task in args.tasks.split(","):
            for sample in range(args.samples):
                for prefill in prefills:
                    t = trial(llm, model, task, sample, prefill)
                    trials.append(t)
                    print(f"{model} {task} #{sample} prefill={prefill}: applied={t.applied} "
                          f"changed={t.changed} passes={t.passes} {t.seconds}s {t.reason[:80]}",
                          flush=True)
                    if args.fixtures is not None:
                        args.fixtures.mkdir(parents=True, exist_ok=True)
                        with (args.fixtures / f"{model}.jsonl").open("a") as f:
                            f.write(json.dumps({"task": task, "sample": sample, "prefill": prefill,
                                                "seed": TASKS[task][0].code.value,
                                                "answer": t.answer, "applied": t.applied}) + "\n")
    rows = table(trials)
    print_table(rows)
    if args.out is not None:
        args.out.write_text(json.dumps({"rows": rows, "trials": [asdict(t) for t in trials]},
                                       indent=1))


if __name__ == "__main__":
    main()
