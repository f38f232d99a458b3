"""Code repair: a buggy function (its code is the parameter) made to pass its unit tests.

Each task holds one small function with one bug of a common kind (off-by-one, wrong comparison,
missing edge case, wrong accumulator, string, dict or list handling, recursion base case,
sorting key, rounding). The spec is the op's description; every example is one unit test
`(args, expected)`, generated from a seeded rng and a reference solution the optimizers never
see. The feedback says "f(x) returned A, expected B", or the error with its line.
Tasks: `code_repair/<function>` (the seed changes the tests, never the bug), and the family
task `code_repair`, whose seed also picks the function (seed 0 -> BUGS[0], 1 -> BUGS[1], ...).

The recursive functions recurse through an inner helper: rewritten code that calls itself by
its module-level name reaches the original function (the op compiles new code against the
module's globals), so a bug is fixed where the helper recurses.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import backfeed as bf

from . import Example, Task, plain, register

# -- the buggy functions (their source is what the optimizers see and rewrite) -------------


def median(xs):
    s = sorted(xs)
    return s[len(s) // 2]


def count_vowels(text):
    return sum(1 for ch in text if ch in "aeiou")


def running_max(xs):
    best = 0
    out = []
    for x in xs:
        best = max(best, x)
        out.append(best)
    return out


def sum_to(n):
    total = 0
    for i in range(1, n):
        total += i
    return total


def is_sorted(xs):
    return all(xs[i] < xs[i + 1] for i in range(len(xs) - 1))


def word_counts(text):
    counts = {}
    for word in text.lower().split():
        counts[word] = 1
    return counts


def max_depth(items):
    def depth(x):
        if not isinstance(x, list):
            return 0
        return 1 + max(depth(y) for y in x)

    return depth(items)


def sort_by_length(words):
    return sorted(words, key=len)


def round_to_multiple(n, m):
    return (n // m) * m


def chunks(xs, size):
    return [xs[i:i + size] for i in range(0, len(xs) - size + 1, size)]


def flatten(items):
    out = []

    def walk(xs):
        for x in xs:
            if isinstance(x, list):
                out.extend(x)
            else:
                out.append(x)

    walk(items)
    return out


def title_case(text):
    return text[0].upper() + text[1:].lower()


def merge_counts(a, b):
    return {**a, **b}


def second_largest(xs):
    return sorted(xs)[-2]


def binary_search(xs, target):
    lo, hi = 0, len(xs) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if xs[mid] == target:
            return mid
        if xs[mid] < target:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1


def digit_sum(n):
    return sum(int(d) for d in str(n))


# -- the reference solutions and the test generators --------------------------------------

Args = tuple[Any, ...]


@dataclass(frozen=True)
class Bug:
    """One repair problem: the buggy function, its spec, the bug's kind, a reference solution,
    a generator of test arguments, and edge cases that the bug fails (each split gets one)."""

    function: Callable[..., Any]
    spec: str
    kind: str
    reference: Callable[..., Any]
    generate: Callable[[random.Random], Args]
    edge_cases: tuple[Args, ...]

    @property
    def name(self) -> str:
        return self.function.__name__


def _ints(rng: random.Random, lo: int = -20, hi: int = 20, n: tuple[int, int] = (1, 8)) -> list:
    return [rng.randint(lo, hi) for _ in range(rng.randint(*n))]


def _word(rng: random.Random, lo: int = 1, hi: int = 7) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(lo, hi)))


def _sentence(rng: random.Random, words: tuple[int, int] = (1, 6)) -> str:
    pool = ["apple", "Echo", "sky", "ORANGE", "idea", "tree", "Umbrella", "rhythm", "Area",
            "bee", "queue", "Io"]
    return " ".join(rng.choice(pool) for _ in range(rng.randint(*words)))


def _median(xs: list) -> float:
    s, n = sorted(xs), len(xs)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _running_max(xs: list) -> list:
    out: list = []
    for x in xs:
        out.append(x if not out else max(out[-1], x))
    return out


def _word_counts(text: str) -> dict:
    counts: dict[str, int] = {}
    for word in text.lower().split():
        counts[word] = counts.get(word, 0) + 1
    return counts


def _round_to_multiple(n: int, m: int) -> int:
    q, r = divmod(n, m)
    return (q + (1 if 2 * r >= m else 0)) * m


def _flatten(items: list) -> list:
    out: list = []
    for item in items:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _nested(rng: random.Random, depth: int = 0) -> list:
    out: list = []
    for _ in range(rng.randint(0 if depth else 1, 4)):
        if depth < 3 and rng.random() < 0.35:
            out.append(_nested(rng, depth + 1))
        else:
            out.append(rng.randint(0, 9))
    return out


def _max_depth(x: Any) -> int:
    return 1 + max((_max_depth(y) for y in x), default=0) if isinstance(x, list) else 0


def _second_largest(xs: list) -> int | None:
    distinct = sorted(set(xs))
    return distinct[-2] if len(distinct) >= 2 else None


def _binary_search(xs: list, target: int) -> int:
    return xs.index(target) if target in xs else -1


def _search_case(rng: random.Random) -> Args:
    xs = sorted(rng.sample(range(-30, 30), rng.randint(1, 9)))
    target = rng.choice(xs) if rng.random() < 0.7 else rng.randint(-30, 30)
    return (xs, target)


def _merge_case(rng: random.Random) -> Args:
    keys = list("abcdef")
    a = {k: rng.randint(1, 9) for k in rng.sample(keys, rng.randint(0, 4))}
    b = {k: rng.randint(1, 9) for k in rng.sample(keys, rng.randint(0, 4))}
    return (a, b)


BUGS: list[Bug] = [
    Bug(median, "median(xs) returns the median of a non-empty list of numbers: the middle "
        "value of the sorted list, or the mean of the two middle values when the length is "
        "even.", "missing edge case (even length)", _median,
        lambda rng: (_ints(rng, n=(1, 8)),), (([4, 1, 3, 2],), ([5, 7],))),
    Bug(count_vowels, "count_vowels(text) returns how many characters of text are vowels "
        "(a, e, i, o, u), upper or lower case.", "string handling (case)",
        lambda text: sum(1 for ch in text.lower() if ch in "aeiou"),
        lambda rng: (_sentence(rng),), (("Echo Area",), ("ORANGE",))),
    Bug(running_max, "running_max(xs) returns a list whose i-th item is the largest of "
        "xs[0..i]; the numbers may be negative.", "wrong initial accumulator", _running_max,
        lambda rng: (_ints(rng, -30, 10, (1, 7)),), (([-5, -2, -9],), ([-1],))),
    Bug(sum_to, "sum_to(n) returns 1 + 2 + ... + n for an integer n >= 0 (0 for n = 0).",
        "off-by-one (range end)", lambda n: n * (n + 1) // 2,
        lambda rng: (rng.randint(0, 60),), ((5,), (1,))),
    Bug(is_sorted, "is_sorted(xs) returns True when xs is in non-decreasing order (equal "
        "neighbours allowed), else False.", "wrong comparison",
        lambda xs: all(a <= b for a, b in itertools.pairwise(xs)),
        lambda rng: (sorted(_ints(rng, 0, 5, (0, 6))) if rng.random() < 0.6
                     else _ints(rng, 0, 5, (0, 6)),),
        (([1, 2, 2, 3],), ([0, 0],))),
    Bug(word_counts, "word_counts(text) returns a dict mapping each word of text (split on "
        "whitespace, lower-cased) to how many times it occurs.", "dict handling (counter)",
        _word_counts, lambda rng: (_sentence(rng, (1, 8)),), (("tree Tree sky",),
                                                              ("bee bee bee",))),
    Bug(max_depth, "max_depth(items) returns how deeply lists nest in items: a number has "
        "depth 0, a list has 1 + the largest depth of its elements, and [] has depth 1.",
        "recursion base case", _max_depth, lambda rng: (_nested(rng),),
        (([1, []],), ([[], [[]]],))),
    Bug(sort_by_length, "sort_by_length(words) returns the words sorted by length, shortest "
        "first; words of the same length are in alphabetical order.", "sorting key",
        lambda words: sorted(words, key=lambda w: (len(w), w)),
        lambda rng: ([_word(rng, 2, 4) for _ in range(rng.randint(1, 6))],),
        ((["pear", "fig", "kiwi", "ash"],), (["bb", "ab"],))),
    Bug(round_to_multiple, "round_to_multiple(n, m) rounds the integer n to the nearest "
        "multiple of the positive integer m; a value exactly halfway rounds up.", "rounding",
        _round_to_multiple, lambda rng: (rng.randint(-50, 100), rng.choice([2, 3, 5, 10])),
        ((17, 5), (25, 10))),
    Bug(chunks, "chunks(xs, size) splits the list xs into consecutive lists of length size; "
        "the last one may be shorter. An empty list gives [].", "off-by-one (last chunk)",
        lambda xs, size: [xs[i:i + size] for i in range(0, len(xs), size)],
        lambda rng: (_ints(rng, 0, 9, (0, 9)), rng.randint(1, 4)),
        (([1, 2, 3, 4, 5], 2), ([7], 3))),
    Bug(flatten, "flatten(items) returns the numbers of an arbitrarily nested list, in order, "
        "as one flat list.", "recursion (only one level)", _flatten,
        lambda rng: (_nested(rng),), (([1, [2, [3, 4]], 5],), ([[[6]]],))),
    Bug(title_case, "title_case(text) capitalises the first letter of every word and "
        "lower-cases the rest; words are separated by single spaces; '' stays ''.",
        "string handling (every word, empty)",
        lambda text: " ".join(w[:1].upper() + w[1:].lower() for w in text.split(" ")),
        lambda rng: (_sentence(rng, (1, 4)) if rng.random() < 0.9 else "",),
        (("hello wORLD",), ("",))),
    Bug(merge_counts, "merge_counts(a, b) returns a new dict with every key of a and b; a key "
        "in both maps to the sum of its two counts.", "dict handling (merge)",
        lambda a, b: {k: a.get(k, 0) + b.get(k, 0) for k in {**a, **b}}, _merge_case,
        (({"x": 1, "y": 2}, {"y": 5}),)),
    Bug(second_largest, "second_largest(xs) returns the second largest distinct value of xs, "
        "or None when xs has fewer than two distinct values.", "list handling (duplicates)",
        _second_largest, lambda rng: (_ints(rng, 0, 6, (1, 6)),), (([3, 7, 7],), ([4, 4],))),
    Bug(binary_search, "binary_search(xs, target) returns the index of target in the sorted "
        "list xs of distinct integers, or -1 when it is absent.", "off-by-one (loop bound)",
        _binary_search, _search_case, (([1, 3, 5, 7], 7), ([2], 2))),
    Bug(digit_sum, "digit_sum(n) returns the sum of the decimal digits of the integer n; the "
        "sign is ignored (digit_sum(-12) == 3).", "missing edge case (negative)",
        lambda n: sum(int(d) for d in str(abs(n))),
        lambda rng: (rng.randint(-999, 9999),), ((-47,), (-5,))),
]
BY_NAME = {bug.name: bug for bug in BUGS}

# -- the program, the metric and the tasks --------------------------------------------------


@dataclass(frozen=True)
class Raised:
    """The value of a test whose call raised: the error with its line."""

    error: str

    def __repr__(self) -> str:
        return f"raised {self.error}"


@bf.op
def raised(call: Any, error: str) -> Raised:
    """The function raised `error` on this call."""
    return Raised(error)


class Repair(bf.Module):
    """Calls the trainable function on one test's arguments (deep-copied, so tests stay put).

    The op is an attribute under the function's own name, so its code parameter is named
    after the function (`program.median.code`), which is what the optimizers see.
    """

    def __init__(self, bug: Bug) -> None:
        self.name = bug.name
        setattr(self, bug.name, bf.op(bug.function, trainable=True, description=bug.spec,
                                      sandbox=_sandbox()))

    @property
    def function(self) -> Any:
        return getattr(self, self.name)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, bf.Param]]:
        yield prefix + self.name, self.function.code

    def forward(self, args: Any) -> Any:
        try:
            return self.function(*copy.deepcopy(plain(args)))
        except bf.ExecutionError as exc:
            return raised(exc.node, str(exc.error))


_SANDBOX: list[bf.Sandbox] = []


def _sandbox() -> bf.Sandbox:
    """One small sandbox shared by every task: a rewrite that loops forever times out."""
    if not _SANDBOX:
        _SANDBOX.append(bf.Sandbox(timeout_s=2.0, memory_mb=512, workers=1))
    return _SANDBOX[0]


def call_text(name: str, args: Args) -> str:
    """How a test call reads: `median([1, 2])`."""
    return f"{name}({', '.join(repr(a) for a in args)})"


def same(output: Any, expected: Any) -> bool:
    """Equal; numbers compare to 1e-9 (3.0 passes for 3), but a bool only equals a bool."""
    if isinstance(expected, bool) or isinstance(output, bool):
        return output is expected
    if isinstance(expected, int | float) and isinstance(output, int | float):
        return math.isclose(output, expected, rel_tol=1e-9, abs_tol=1e-9)
    return output == expected


def repair_metric(name: str) -> Callable[[Example, Any], bf.Feedback]:
    """1 when the call returns the expected value, else 0; the text shows the call."""

    def metric(example: Example, output: Any) -> bf.Feedback:
        args, expected = example
        call = call_text(name, tuple(args))
        value = plain(output)
        if isinstance(value, Raised):
            return bf.Feedback(score=0.0, text=f"{call} raised {value.error}; expected "
                               f"{expected!r}")
        if same(value, expected):
            return bf.Feedback(score=1.0, text=f"{call} returned {value!r}, as expected")
        return bf.Feedback(score=0.0, text=f"{call} returned {value!r}, expected {expected!r}")

    return metric


SPLIT_SIZES = {"quick": (4, 4, 8), "full": (8, 8, 16)}


def make_tests(bug: Bug, seed: int, size: str) -> tuple[list[Example], ...]:
    """Seeded (train, val, test) unit tests, no test in two splits. Each split holds at least
    one test the bug fails (an unused edge case, else a drawn one), so the bug never passes."""
    rng = random.Random(f"code_repair:{bug.name}:{seed}")
    edges = [bug.edge_cases[(seed + i) % len(bug.edge_cases)]
             for i in range(len(bug.edge_cases))]
    seen: set[str] = set()
    splits: list[list[Example]] = []
    for n in SPLIT_SIZES[size]:
        cases: list[Args] = []
        if edges:
            cases.append(edges.pop(0))
            seen.add(repr(cases[0]))
        for _ in range(200 * n):
            if len(cases) == n:
                break
            args = bug.generate(rng)
            if repr(args) in seen or (not cases and not _fails(bug, args)):
                continue
            seen.add(repr(args))
            cases.append(args)
        rng.shuffle(cases)
        splits.append([(args, bug.reference(*copy.deepcopy(args))) for args in cases])
    return tuple(splits)


def _fails(bug: Bug, args: Args) -> bool:
    """Whether the buggy function gets this test wrong (raising counts)."""
    try:
        output = bug.function(*copy.deepcopy(args))
    except Exception:
        return True
    return not same(output, bug.reference(*copy.deepcopy(args)))


def repair_task(bug: Bug, seed: int, size: str) -> Task:
    trainset, valset, testset = make_tests(bug, seed, size)
    return Task(
        name=f"code_repair/{bug.name}",
        family="code_repair",
        seed=seed,
        size=size,
        description=f"Fix the function so that it meets its spec and passes the unit tests. "
        f"Spec: {bug.spec}",
        build=lambda llm=None: Repair(bug),
        metric=repair_metric(bug.name),
        trainset=trainset,
        valset=valset,
        testset=testset,
        info={"function": bug.name, "kind": bug.kind, "spec": bug.spec,
              "reference": bug.reference},
    )


for _bug in BUGS:
    register(f"code_repair/{_bug.name}")(
        lambda seed, size, bug=_bug: repair_task(bug, seed, size))


@register("code_repair")
def code_repair_family(seed: int, size: str) -> Task:
    """One function per seed, so a few seeds cover several kinds of bug."""
    task = repair_task(BUGS[seed % len(BUGS)], seed, size)
    task.name = "code_repair"
    return task
