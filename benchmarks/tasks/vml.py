"""Verbalized machine learning: the model is a text description the LLM follows to predict.

Regression: a hidden line y = a*x + b. Classification: a hidden linear rule labels points A/B.
The trainable parameter is the description; the optimizer rewrites it from prediction errors.
"""

from __future__ import annotations

import random
import re
from typing import Any

import backfeed as bf
from backfeed.llm import LLM

from . import Example, Task, plain, register
from .prompts import VML_CLASSIFICATION_USER, VML_REGRESSION_USER, VML_SYSTEM, messages

CLASSES = ("A", "B")
RULES = [  # (text used only for reporting, function)
    ("A if x1 + x2 > 10 else B", lambda x1, x2: x1 + x2 > 10),
    ("A if x1 > x2 else B", lambda x1, x2: x1 > x2),
    ("A if 2*x1 - x2 > 4 else B", lambda x1, x2: 2 * x1 - x2 > 4),
]


class VerbalModel(bf.Module):
    """Predicts with the model, following a trainable description of how to map input to output."""

    def __init__(self, llm: LLM, task: str, description: str) -> None:
        self.llm = llm
        self.task = task
        self.description = bf.param(
            description,
            name="model_description",
            description="how the model maps the input to a prediction (the model's parameters)",
        )

    @bf.op
    def prompt(self, description: str, x: Any) -> list:
        """The chat messages asking for the prediction of input x, following the description."""
        if self.task == "regression":
            return messages(VML_SYSTEM, VML_REGRESSION_USER, description=description, x=x)
        return messages(VML_SYSTEM, VML_CLASSIFICATION_USER, description=description,
                        x1=x[0], x2=x[1], classes=", ".join(CLASSES))

    def forward(self, x: Any) -> Any:
        return bf.chat(self.prompt(self.description, x), self.llm, max_tokens=48, temperature=0.0)


def read_number(text: str) -> float | None:
    found = re.findall(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
    return float(found[-1]) if found else None


def regression_metric(example: Example, output: Any) -> bf.Feedback:
    """1/(1 + |prediction - y|); the text gives x, the prediction and the target."""
    x, y = example
    text = str(plain(output) or "")
    predicted = read_number(text)
    if predicted is None:
        return bf.Feedback(score=0.0, text=f"for x = {x} the output {text!r} holds no number; "
                           f"the target is {y:g}")
    error = abs(predicted - y)
    if error < 1e-6:
        return bf.Feedback(score=1.0, text=f"correct: x = {x} gives y = {y:g}")
    direction = "too high" if predicted > y else "too low"
    return bf.Feedback(score=1.0 / (1.0 + error),
                       text=f"for x = {x} the prediction {predicted:g} is {direction}; "
                       f"the target is {y:g}", details={"abs_error": error})


def classification_metric(example: Example, output: Any) -> bf.Feedback:
    """1 for the right class letter, else 0; the text gives the point and both labels."""
    (x1, x2), label = example
    text = str(plain(output) or "")
    found = re.findall(r"\b([AB])\b", text)
    predicted = found[-1] if found else None
    if predicted == label:
        return bf.Feedback(score=1.0, text=f"correct: ({x1}, {x2}) is {label}")
    return bf.Feedback(score=0.0, text=f"wrong: the point x1 = {x1}, x2 = {x2} is class "
                       f"{label}, the model said {text.strip()[:60]!r}")


@register("vml/regression")
def vml_regression(seed: int, size: str) -> Task:
    rng = random.Random(f"vml-regression:{seed}")
    a, b = rng.choice([-3, -2, 2, 3, 4]), rng.randint(-5, 5)
    n = (3, 3, 5) if size == "quick" else (12, 12, 30)
    xs = rng.sample(range(-10, 11), sum(n))
    examples = [(x, float(a * x + b)) for x in xs]
    return Task(
        name="vml/regression",
        family="vml",
        seed=seed,
        size=size,
        description="Rewrite the model description so the model predicts y from x.",
        build=lambda llm: VerbalModel(llm, "regression", "Predict y as a number close to x."),
        metric=regression_metric,
        trainset=examples[: n[0]],
        valset=examples[n[0]: n[0] + n[1]],
        testset=examples[n[0] + n[1]:],
        uses_llm=True,
        info={"a": a, "b": b, "solution": f"y = {a}*x + {b}"},
    )


@register("vml/classification")
def vml_classification(seed: int, size: str) -> Task:
    rng = random.Random(f"vml-classification:{seed}")
    rule_text, rule = rng.choice(RULES)
    n = (6, 6, 10) if size == "quick" else (20, 20, 40)
    points: dict[tuple[int, int], str] = {}
    while len(points) < sum(n):
        x1, x2 = rng.randint(0, 10), rng.randint(0, 10)
        points[(x1, x2)] = "A" if rule(x1, x2) else "B"
    examples = list(points.items())
    return Task(
        name="vml/classification",
        family="vml",
        seed=seed,
        size=size,
        description="Rewrite the model description so the model labels points (x1, x2) A or B.",
        build=lambda llm: VerbalModel(llm, "classification", "Answer A or B."),
        metric=classification_metric,
        trainset=examples[: n[0]],
        valset=examples[n[0]: n[0] + n[1]],
        testset=examples[n[0] + n[1]:],
        uses_llm=True,
        info={"solution": rule_text},
    )
