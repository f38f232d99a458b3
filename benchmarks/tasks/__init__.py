"""The task suite: a `Task` per family instance, and a registry to build them by name and seed.

Every task has a seed, train/val/test splits of `(input, target)` examples, a metric returning
`bf.Feedback(score=, text=)` with a score in [0, 1] (1 = solved), and a `bf.Module` program
whose parameters an optimizer changes. `bf.train` calls `program(example[0])`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import backfeed as bf
from backfeed.llm import LLM

Example = tuple[Any, Any]
Metric = Callable[[Example, Any], bf.Feedback]
SIZES = ("quick", "full")


@dataclass
class Evaluation:
    """Mean score of a program on one split, with the feedback of every example."""

    score: float
    feedbacks: list[bf.Feedback]


@dataclass
class Task:
    """One benchmark instance: data splits, a metric, and a factory for the program to optimize."""

    name: str
    family: str
    seed: int
    size: str
    description: str
    build: Callable[[LLM | None], bf.Module]
    metric: Metric
    trainset: list[Example]
    valset: list[Example]
    testset: list[Example]
    uses_llm: bool = False  # the program itself calls the model (prompt and VML tasks)
    info: dict[str, Any] = field(default_factory=dict)  # known solution, baselines, ...

    def program(self, llm: LLM | None = None) -> bf.Module:
        """A fresh program at its initial parameter values."""
        if self.uses_llm and llm is None:
            raise ValueError(f"task {self.name!r} runs a model inside its program; pass llm=")
        return self.build(llm)

    def param_kinds(self) -> set[str]:
        """Kinds of the program's parameters (str, float, code, ...)."""
        return {p.kind for p in self.build(_NoLLM()).parameters()}

    def run(self, program: bf.Module, example: Example) -> Any:
        """Run the program on one example as the trainer does: `program(example[0])`."""
        return program(example[0])

    def evaluate(self, program: bf.Module, split: str = "test") -> Evaluation:
        """Mean metric score of `program` on `split` ("train", "val" or "test")."""
        examples = self.split(split)
        feedbacks = [self.check(program, example) for example in examples]
        score = sum(f.score or 0.0 for f in feedbacks) / max(1, len(feedbacks))
        return Evaluation(score, feedbacks)

    def check(self, program: bf.Module, example: Example) -> bf.Feedback:
        """Run and score one example; a failing program scores 0 with the error as feedback."""
        try:
            output = self.run(program, example)
        except bf.ExecutionError as exc:
            return bf.Feedback(score=0.0, text=f"the program raised {exc.error}")
        return self.metric(example, output)

    def split(self, split: str) -> list[Example]:
        splits = {"train": self.trainset, "val": self.valset, "test": self.testset}
        if split not in splits:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(splits)}")
        return splits[split]


class _NoLLM(bf.llm.BaseLLM):
    """Stands in for the model when a program is built only to inspect its parameters."""

    model = "none"


def plain(output: Any) -> Any:
    """The plain value of a program output (a node's value, or the value itself)."""
    return output.value if isinstance(output, bf.Node) else output


# -- registry -----------------------------------------------------------------------------

TaskFactory = Callable[[int, str], Task]
_REGISTRY: dict[str, TaskFactory] = {}


def register(name: str) -> Callable[[TaskFactory], TaskFactory]:
    """Register `factory(seed, size) -> Task` under `name`."""

    def wrap(factory: TaskFactory) -> TaskFactory:
        if name in _REGISTRY:
            raise ValueError(f"task {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return wrap


def task_names() -> list[str]:
    """Every registered task name."""
    _load()
    return sorted(_REGISTRY)


def make_task(name: str, seed: int = 0, size: str = "quick") -> Task:
    """Build the task `name` for `seed` at `size` ("quick": small instances, or "full")."""
    _load()
    if name not in _REGISTRY:
        raise KeyError(f"unknown task {name!r}; known: {sorted(_REGISTRY)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {SIZES}")
    return _REGISTRY[name](seed, size)


SUITES: dict[str, list[str]] = {
    # one instance per family, small enough for the 0.5B local model on 2 cores
    "quick": [
        "numeric",
        "bbh/object_counting",
        "battleship",
        "sklearn",
        "vml/regression",
        "control/cartpole",
    ],
    "full": [
        "numeric",
        "bbh/object_counting",
        "bbh/word_sorting",
        "bbh/boolean_expressions",
        "bbh/date_arithmetic",
        "bbh/dyck",
        "battleship",
        "sklearn",
        "vml/regression",
        "vml/classification",
        "control/cartpole",
        "control/mountaincar",
    ],
    # issue 15's suite: code repair, numeric and a prompt family, long enough to separate
    # the libraries (12+ optimizer calls, 3 seeds)
    "families": ["code_repair", "numeric", "bbh/word_sorting"],
    "code_repair": [f"code_repair/{name}" for name in (
        "median", "count_vowels", "running_max", "sum_to", "is_sorted", "word_counts",
        "max_depth", "sort_by_length", "round_to_multiple", "chunks", "flatten", "title_case",
        "merge_counts", "second_largest", "binary_search", "digit_sum")],
    # issue 19's prompt suite: conventions only the feedback reveals, and word sorting
    "prompts": ["convention/labels", "convention/dates", "convention/refund",
                "convention/order_json", "bbh/word_sorting"],
}
SUITE_SIZES = {"quick": "quick", "full": "full", "families": "quick", "code_repair": "quick",
               "prompts": "quick"}


FAMILY_MODULES = ("numeric", "bbh", "conventions", "battleship", "sklearn_tune", "vml", "control",
                  "code_repair")


def _load() -> None:
    # Importing the family modules registers their tasks.
    import importlib

    for module in FAMILY_MODULES:
        importlib.import_module(f"{__name__}.{module}")


__all__ = [
    "SUITES",
    "SUITE_SIZES",
    "Evaluation",
    "Example",
    "Task",
    "make_task",
    "plain",
    "register",
    "task_names",
]
