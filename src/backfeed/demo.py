"""`backfeed demo`: optimize a small receipt workflow (a text, a code and a numeric parameter)."""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from typing import Any

from . import graph as bf_graph
from .graph import ExecutionError, Feedback, Node, Param, op, param
from .llm import LLM
from .optim import Hybrid, Optimizer, ParamUpdate, Prime, StepReport

# Each order: (raw item names as a shop's system writes them, quantities, unit prices).
ORDERS: list[tuple[list[str], list[int], list[float]]] = [
    (["  Apple ", "BREAD"], [3, 1], [0.5, 2.0]),
    (["Milk  ", " cheese"], [2, 1], [1.25, 4.0]),
]
TAX_RATE = 0.2  # the correct rate, unknown to the optimizer: only the feedback's score knows it
INITIAL_TEMPLATE = "Items: {items}"


# The spec lives in the op's description, so the code the model copies and edits is two lines.
@op(trainable=True, description="Return the item name in lower case, without surrounding spaces.")
def clean_name(name: str) -> str:
    return name


class ReceiptWorkflow:
    """A receipt writer: clean item names (code), apply tax (number), fill a template (text)."""

    def __init__(self) -> None:
        self.template = param(
            INITIAL_TEMPLATE,
            name="template",
            description="format string of the receipt, filled with {items} and {total}",
        )
        self.tax_rate = param(0.0, name="tax_rate", bounds=(0.0, 0.5),
                              description="tax rate added to the subtotal")
        self.clean_name = clean_name.code
        self.clean_name.value = clean_name.source  # each workflow starts from the original code
        self.cleaned: list[str] = []  # the cleaned names of the last order run

    def parameters(self) -> list[Param]:
        return [self.template, self.clean_name, self.tax_rate]

    def __call__(self, order: tuple[list[str], list[int], list[float]]) -> Node:
        names, quantities, prices = order
        cleaned = [clean_name(n) for n in names]
        items = bf_graph.format(
            ", ".join(f"{{n{i}}} x{q}" for i, q in enumerate(quantities)),
            **{f"n{i}": c for i, c in enumerate(cleaned)},
        )
        self.cleaned = [c.value for c in cleaned]
        subtotal = sum(q * p for q, p in zip(quantities, prices))
        total = (self.tax_rate + 1) * subtotal
        return bf_graph.format(self.template, items=items, total=total)


def expected_total(order: tuple[list[str], list[int], list[float]]) -> float:
    _, quantities, prices = order
    return sum(q * p for q, p in zip(quantities, prices)) * (1 + TAX_RATE)


def score_receipt(
    order: tuple[list[str], list[int], list[float]],
    text: str | None,
    cleaned: list[str],
    total: float,
) -> Feedback:
    """Three parts in [0, 1], averaged: clean names, a stated total, an accurate total."""
    names, quantities, _ = order
    problems = []
    good = [n.strip().lower() for n in names]
    names_ok = sum(c == g for c, g in zip(cleaned, good)) / len(names)
    want = expected_total(order)
    expected = ", ".join(f"{g} x{q}" for g, q in zip(good, quantities))
    expected = f"Items: {expected}. Total: {want:.2f} EUR"
    if text is None:
        return Feedback(score=round(names_ok / 3, 4),
                        text=f"the receipt failed (see the error); expected {expected!r}")
    if names_ok < 1:
        problems.append(f"clean_name({names[0]!r}) must return {good[0]!r}: strip the spaces "
                        "and lower-case it")
    lowered = text.lower()
    amount = f"{total:.2f}"
    stated = ("total" in lowered) + (amount in text or str(round(total, 2)) in text) + ("eur" in lowered)
    accuracy = max(0.0, 1.0 - abs(total - want) / want * 4)
    if accuracy < 0.999:
        problems.append(f"the total {total:.2f} should be {want:.2f}")
    if text != expected:
        problems.insert(0, f"expected {expected!r}, got {text!r}")
    score = (names_ok + stated / 3 + accuracy) / 3
    return Feedback(score=round(score, 4), text="; ".join(problems) or "correct")


def evaluate(workflow: ReceiptWorkflow) -> float:
    """Run every order, give each receipt its feedback (traced), return the mean score."""
    scores = []
    for order in ORDERS:
        workflow.cleaned = []
        try:
            out = workflow(order)
            text = out.value
        except ExecutionError as exc:
            out, text = exc.node, None
        total = (workflow.tax_rate.value + 1) * sum(q * p for q, p in zip(order[1], order[2]))
        fb = score_receipt(order, text, workflow.cleaned, total)
        out.backward(fb)
        scores.append(fb.score or 0.0)
    return sum(scores) / len(scores)


@dataclass
class DemoResult:
    """What a demo run did: the score curve (best so far per step) and the values."""

    initial_score: float
    best_score: float
    curve: list[float]
    before: dict[str, Any]
    after: dict[str, Any]
    reports: list[StepReport] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


def _default_llm() -> LLM:
    from .llm import default  # the embedded model unless BACKFEED_MODEL names another

    return default()


def _set(params: list[Param], values: dict[str, Any]) -> None:
    for p in params:
        p.value = values[p.name]


def _trial(opt: Optimizer, workflow: ReceiptWorkflow, values: dict[str, Any]) -> float:
    """Evaluate `values` with a fresh trace and let the optimizer observe the result."""
    _set(workflow.parameters(), values)
    opt.zero_feedback()
    score = evaluate(workflow)
    opt.observe()
    return score


def run_demo(
    llm: LLM | None = None,
    steps: int = 8,
    console: Any = None,
    *,
    optimizer: Optimizer | None = None,
    seed: int = 0,
) -> DemoResult:
    """Optimize the receipt workflow for `steps` steps, printing live progress with rich.

    Each step the optimizer proposes values from the trace of the best values so far; the
    evaluation decides: the full proposal and each changed parameter alone are scored, and
    the best of them is kept only if it beats the best so far. `llm=None` uses
    `bf.llm.default()` (the embedded model when installed).
    """
    from rich.console import Console
    from rich.markup import escape

    console = console or Console()
    workflow = ReceiptWorkflow()
    params = workflow.parameters()
    if optimizer is None:
        if llm is None:
            llm = _default_llm()
        options = dict(budget_tokens=1500, memory=2, reasoning_chars=100, temperature=0.7)
        if importlib.util.find_spec("optuna") is not None:
            optimizer = Hybrid(params, llm=llm, seed=seed, **options)
        else:
            console.print("[dim]optuna is not installed (pip install 'backfeed[numeric]'): "
                          "the LLM proposes the number too (Prime instead of Hybrid)[/dim]")
            optimizer = Prime(params, llm=llm, **options)
    opt = optimizer
    before = {p.name: p.value for p in params}
    best = dict(before)
    start = time.perf_counter()
    best_score = _trial(opt, workflow, best)
    initial = best_score
    result = DemoResult(initial, best_score, [best_score], before, before)
    console.print(f"[bold]backfeed demo[/bold]: {len(params)} parameters "
                  f"({', '.join(f'{p.name}: {p.kind}' for p in params)}), "
                  f"{len(ORDERS)} orders, {steps} steps")
    console.print(f"step  0  score {initial:.3f}  best {initial:.3f}")
    for step in range(1, steps + 1):
        with console.status(f"step {step}: asking the model..."):
            report = opt.step()
        result.reports.append(report)
        result.prompt_tokens += report.prompt_tokens
        result.completion_tokens += report.completion_tokens
        candidate = {p.name: p.value for p in params}
        changed = [n for n in candidate if candidate[n] != best[n]]
        tried: list[tuple[float, dict[str, Any]]] = []
        subsets = [[n] for n in changed] if len(changed) > 1 else []
        for subset in [*subsets, changed] if changed else []:
            values = {**best, **{n: candidate[n] for n in subset}}
            tried.append((_trial(opt, workflow, values), values))
        score = max((s for s, _ in tried), default=best_score)
        kept = ""
        if tried and score > best_score:
            best_score, best = max(tried, key=lambda t: t[0])
            kept = "kept " + ", ".join(n for n in changed if best[n] != result.after[n])
            result.after = dict(best)
        _trial(opt, workflow, best)  # the next step sees the trace of the best values
        result.curve.append(best_score)
        note = report.error or "; ".join(_rejection(u) for u in report.rejected)
        note = note if len(note) <= 120 else note[:119] + "…"
        console.print(
            f"step {step:2d}  score {score:.3f}  best {best_score:.3f}  "
            f"tokens {report.prompt_tokens}+{report.completion_tokens}  "
            f"{time.perf_counter() - start:5.1f}s  {kept}"
            + (f"  [dim]{escape(note)}[/dim]" if note else "")
        )
    result.best_score = best_score
    result.seconds = time.perf_counter() - start
    _print_summary(console, result)
    return result


def _rejection(update: ParamUpdate) -> str:
    """`clean_name rejected (syntax): the code does not parse ...`, without repeated prefixes."""
    reason = update.reason or ""
    for prefix in (f"{update.kind}: ", f"{update.name!r}: "):
        reason = reason.removeprefix(prefix)
    return f"{update.name} rejected ({update.kind}): {reason}"


def _print_summary(console: Any, result: DemoResult) -> None:
    from rich.table import Table

    table = Table(title="parameters", show_lines=True)
    table.add_column("name")
    table.add_column("before")
    table.add_column("after")
    for name in result.before:
        table.add_row(name, str(result.before[name]), str(result.after[name]))
    console.print(table)
    console.print("score curve (best so far):  " + _sparkline(result.curve) + "  "
                  + " ".join(f"{s:.2f}" for s in result.curve))
    console.print(
        f"score {result.initial_score:.3f} -> {result.best_score:.3f} in {len(result.curve) - 1} "
        f"steps, {result.prompt_tokens + result.completion_tokens} tokens, "
        f"{result.seconds:.0f}s"
    )


def _sparkline(values: list[float]) -> str:
    bars = "▁▂▃▄▅▆▇█"
    return "".join(bars[min(int(max(v, 0.0) * (len(bars) - 1) + 0.5), len(bars) - 1)]
                   for v in values)
