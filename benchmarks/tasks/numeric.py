"""Numerical optimization as in the Trace paper: find the input of a random arithmetic graph.

A seeded generator builds a graph of arithmetic operations on one trainable input `x`; the
target is the graph's output at a hidden `x*`. Feedback compares the output to the target.
`gradient_baseline` runs Adam on finite-difference gradients of the same function.
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import backfeed as bf

from . import Example, Task, plain, register

# name -> (function on floats or nodes, symbol, takes a second operand)
OPS: dict[str, tuple[Callable[..., Any], str, bool]] = {
    "add": (operator.add, "+", True),
    "sub": (operator.sub, "-", True),
    "mul": (operator.mul, "*", True),
    "div": (operator.truediv, "/", True),
    "abs": (operator.abs, "abs", False),
    "neg": (operator.neg, "-", False),
}


@dataclass(frozen=True)
class Step:
    """One node of the graph: `op(nodes[left], nodes[right] or const)`."""

    op: str
    left: int
    right: int | None = None  # index of an earlier node, or None to use `const`
    const: float = 0.0


def apply_steps(steps: list[Step], x: Any, overrides: dict[str, Callable] | None = None) -> Any:
    """Evaluate the graph on a float or a traced node (the same code serves both).

    `overrides` replaces the function of an op by name (a library whose node lacks one).
    """
    values = [x]
    for s in steps:
        func, _, binary = OPS[s.op]
        func = (overrides or {}).get(s.op, func)
        a = values[s.left]
        if binary:
            b = values[s.right] if s.right is not None else s.const
            values.append(func(a, b))
        else:
            values.append(func(a))
    return values[-1]


def describe(steps: list[Step]) -> str:
    """The graph as lines of code, e.g. `v1 = v0 * 3`."""
    lines = []
    for i, s in enumerate(steps, start=1):
        _, symbol, binary = OPS[s.op]
        if binary:
            b = f"v{s.right}" if s.right is not None else f"{s.const:g}"
            lines.append(f"v{i} = v{s.left} {symbol} {b}")
        else:
            lines.append(f"v{i} = {symbol}(v{s.left})")
    return "\n".join(lines)


def generate(seed: int, n_ops: int) -> tuple[list[Step], float, float]:
    """(steps, x*, target): a random graph whose output stays moderate on [-10, 10]."""
    rng = random.Random(seed)
    while True:
        steps: list[Step] = []
        node_products = 0
        for i in range(n_ops):
            # a chain through every node, with some edges back to earlier nodes
            op = rng.choices(list(OPS), weights=[4, 4, 3, 1, 1, 1])[0]
            earlier = rng.randrange(i) if i > 0 and rng.random() < 0.3 else None
            if op == "div":
                steps.append(Step(op, i, None, rng.choice([2.0, 4.0, 5.0, -2.0])))
            elif op == "mul" and earlier is not None and node_products == 0:
                node_products += 1
                steps.append(Step(op, i, earlier))
            elif op == "mul":
                steps.append(Step(op, i, None, float(rng.choice([-3, -2, 2, 3]))))
            elif OPS[op][2]:
                steps.append(Step(op, i, earlier, float(rng.randint(-9, 9) or 1)))
            else:
                steps.append(Step(op, i))
        x_star = round(rng.uniform(-10, 10), 2)
        target = apply_steps(steps, x_star)
        grid = [apply_steps(steps, v / 2) for v in range(-20, 21)]
        start = apply_steps(steps, 0.0)
        varies = max(grid) - min(grid) > 1.0
        if varies and max(abs(g) for g in grid) < 1e4 and abs(start - target) > 1.0:
            return steps, x_star, target


class NumericProgram(bf.Module):
    """Computes the random graph on the trainable input `x`."""

    def __init__(self, steps: list[Step], x0: float = 0.0) -> None:
        self.steps = steps
        self.x = bf.param(x0, name="x", description="the input of the computation")

    def forward(self, _input: Any = None) -> Any:
        return apply_steps(self.steps, self.x)


def numeric_metric(example: Example, output: Any) -> bf.Feedback:
    """Score 1/(1 + |output - target|); the text says which way the output is off."""
    target = example[1]
    y = plain(output)
    if not isinstance(y, int | float) or not math.isfinite(y):
        return bf.Feedback(score=0.0, text=f"the output {y!r} is not a finite number")
    error = abs(y - target)
    if error < 1e-6:
        return bf.Feedback(score=1.0, text=f"correct: the output {y:g} equals the target")
    direction = "too large" if y > target else "too small"
    return bf.Feedback(
        score=1.0 / (1.0 + error),
        text=f"the output {y:.6g} is {direction}: the target is {target:.6g} "
        f"(off by {error:.4g})",
        details={"abs_error": error},
    )


def gradient_baseline(
    steps: list[Step], target: float, x0: float = 0.0, iterations: int = 10, lr: float = 1.0
) -> dict[str, float]:
    """Adam on central finite differences of (f(x) - target)^2, as a classical reference."""
    def loss(x: float) -> float:
        return (apply_steps(steps, x) - target) ** 2

    x, m, v, h = x0, 0.0, 0.0, 1e-4
    best = (abs(apply_steps(steps, x) - target), x)
    for t in range(1, iterations + 1):
        grad = (loss(x + h) - loss(x - h)) / (2 * h)
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        x -= lr * (m / (1 - 0.9**t)) / (math.sqrt(v / (1 - 0.999**t)) + 1e-8)
        best = min(best, (abs(apply_steps(steps, x) - target), x))
    final_error = abs(apply_steps(steps, x) - target)
    return {"x": x, "abs_error": final_error, "best_abs_error": best[0],
            "score": 1.0 / (1.0 + final_error), "iterations": iterations}


@register("numeric")
def numeric_task(seed: int, size: str) -> Task:
    n_ops = 6 if size == "quick" else 12
    steps, x_star, target = generate(seed, n_ops)
    examples = [("evaluate", target)]
    return Task(
        name="numeric",
        family="numeric",
        seed=seed,
        size=size,
        description="Set x so that the arithmetic graph below outputs the target.\n"
        + describe(steps),
        build=lambda llm=None: NumericProgram(steps),
        metric=numeric_metric,
        trainset=examples,
        valset=examples,
        testset=examples,
        info={
            "x_star": x_star,
            "target": target,
            "graph": describe(steps),
            "baseline": lambda iterations=10: gradient_baseline(steps, target, 0.0, iterations),
        },
    )
