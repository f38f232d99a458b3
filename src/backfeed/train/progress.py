"""A rich progress bar for long runs: step, best score, spend and ETA (stderr, TTY only by default)."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Shows the run's progress when `enabled` (None: only when stderr is a terminal)."""

    def __init__(self, enabled: bool | None, total_steps: int | None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.total = total_steps
        self._bar: Any = None
        self._task: Any = None

    def start(self, trainer: Any) -> None:
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
        self.update(trainer)

    def update(self, trainer: Any) -> None:
        if self._bar is None:
            return
        best = trainer._best() if trainer.pool else None
        score = "-" if best is None or best.score == float("-inf") else f"{best.score:.3f}"
        s = trainer.spend
        spend = f"{s.calls} calls, {s.tokens:,} tok, ${s.usd:.4f}, {trainer.metric_calls} evals"
        self._bar.update(self._task, completed=max(0, trainer.last_step + 1), best=score,
                         spend=spend)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
