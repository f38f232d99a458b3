"""`bf.evaluate`: a program scored on a dataset, one row per example, with what it cost."""

from __future__ import annotations

import io
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..llm import Metered, chosen
from ..llm.context import DefaultModel, ProgramModel, running
from .evaluate import Forward, Metric, as_examples, as_metric, install_capture, uninstall_capture
from .executors import Threads
from .progress import Bar


@dataclass(frozen=True)
class EvalRow:
    """One example of an evaluation: what went in, what came out, and how it scored."""

    input: Any
    output: Any  # the program's plain value (a dict, a pydantic object, ...); text from Ray
    score: float
    feedback: str
    error: str | None


@dataclass
class EvalReport:
    """What `evaluate` returns: the mean score, one row per example, and what it cost."""

    mean: float
    rows: list[EvalRow]
    spend: dict[str, Any]

    @property
    def scores(self) -> list[float]:
        return [r.score for r in self.rows]

    @property
    def errors(self) -> int:
        return sum(r.error is not None for r in self.rows)

    def _summary(self) -> str:
        s = self.spend
        calls = s.get("llm_calls") or 0
        paid = (f", {calls} model call{'s' if calls != 1 else ''}, {s.get('tokens', 0):,} tokens"
                + (f", ${s['usd']:.4f}" if s.get("usd") else "")) if calls else ""
        return (f"mean {self.mean:.3f} over {len(self.rows)} examples, {self.errors} errors"
                f"{paid}, {s.get('seconds', 0.0):.1f}s")

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table(title=self._summary(), show_lines=False)
        for column in ("#", "input", "output", "score", "feedback / error"):
            table.add_column(column, overflow="fold")
        for i, r in enumerate(self.rows):
            table.add_row(str(i), _cell(r.input), _cell(r.output), f"{r.score:g}",
                          _cell(r.error or r.feedback))
        return table

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=120, record=True, file=io.StringIO())
        console.print(self)
        return console.export_text()


def _cell(value: Any, limit: int = 80) -> str:
    text = "" if value is None else value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def evaluate(program: Any, dataset: Iterable[Any], metric: Metric, *, executor: Any = None,
             forward: Forward | None = None, progress: bool = True,
             inputs: Iterable[str] | None = None) -> EvalReport:
    """Score `program` on every example of `dataset` with `metric`, as the trainer does.

    Examples are run as in `bf.train` (`program(**example.inputs())` for a `bf.Example` with
    declared inputs or a dict example with `inputs=[...]`, `program(example[0])` for a tuple
    or list, else `program(example)`, or `forward(program, example)`), through the same
    `Executor.evaluate` the trainer uses (default `Threads(1)`). Errors in the program become rows with score 0;
    a metric that raises, or returns anything but a finite number or `bf.Feedback(score=...)`
    (NaN and inf included), raises `MetricError` naming the example. `progress` shows a bar
    on a terminal. A row's `output` is the program's plain value (a dict, a pydantic object);
    `spend` counts the examples, seconds and every `bf.chat` call made (`llm_calls`, tokens,
    `usd`), with a model given or not.
    """
    examples = as_examples(dataset, "dataset", inputs)
    assert examples is not None
    metric = as_metric(metric)
    executor = executor or Threads(1)
    values = program.state_dict() if hasattr(program, "state_dict") else {}
    started = time.perf_counter()
    # every bf.chat call, with a model given or not, is counted (as a run counts it)
    model = Metered(ProgramModel(chosen() or DefaultModel()), role="program")
    install_capture()
    try:
        with Bar(progress, len(examples), "evaluate") as bar, running(model):
            traced = executor.evaluate(program, values, list(enumerate(examples)), metric,
                                       forward, lambda t: bar.advance())
    finally:
        uninstall_capture()
    rows = [EvalRow(examples[t.result.index], t.result.output if t.value is None else t.value,
                    t.result.score, t.result.feedback, t.result.error) for t in traced]
    mean = sum(r.score for r in rows) / len(rows) if rows else 0.0
    calls = model.spend.to_dict()
    spend = {"examples": len(rows), "metric_calls": len(rows),
             "seconds": time.perf_counter() - started, "llm_calls": calls["calls"],
             **{k: calls[k] for k in ("cached_calls", "prompt_tokens", "completion_tokens",
                                      "tokens", "usd")}}
    return EvalReport(mean, rows, spend)
