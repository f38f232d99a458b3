"""Rich progress bars for long runs and evaluations (stderr, shown on a terminal by default)."""

from __future__ import annotations

import sys
from typing import Any


def _enabled(enabled: bool | None) -> bool:
    return sys.stderr.isatty() if enabled is None else enabled


class Progress:
    """The run's line: step, best score, spend, the last step's outcome and the ETA."""

    def __init__(self, enabled: bool | None, total_steps: int | None) -> None:
        self.enabled = _enabled(enabled)
        self.total = total_steps
        self._bar: Any = None
        self._task: Any = None
        self._noted = 0  # steps whose note was printed

    def start(self) -> None:
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("step {task.completed}/{task.fields[total_text]}"),
            BarColumn(),
            TextColumn("best {task.fields[best]}"),
            TextColumn("{task.fields[spend]}"),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task("train", total=self.total, total_text=self.total or "?",
                                        best="-", spend="")

    def update(self, *, steps_done: int, best: float | None, spend: Any, metric_calls: int,
               note: str | None = None) -> None:
        """Show the state after `steps_done` steps; `note` (what the last step did) is printed
        once as a line above the bar."""
        if self._bar is None:
            return
        if note is not None and steps_done > self._noted:
            self._noted = steps_done
            self._bar.console.print(f"step {steps_done - 1}: {note}", markup=False,
                                    highlight=False)
        score = "-" if best is None else f"{best:.3f}"
        text = (f"{spend.calls} calls, {spend.tokens:,} tok, ${spend.usd:.4f}, "
                f"{metric_calls} evals")
        self._bar.update(self._task, completed=max(0, steps_done), best=score, spend=text)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class Bar:
    """A plain counting bar (`with Bar(enabled, total, label) as bar: bar.advance()`)."""

    def __init__(self, enabled: bool | None, total: int, label: str) -> None:
        self.enabled = _enabled(enabled)
        self.total = total
        self.label = label
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Bar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress

            self._bar = Progress(console=Console(file=sys.stderr), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total)
        return self

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
