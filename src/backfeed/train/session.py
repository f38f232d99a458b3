"""A run's session: its row in the store, resume, spend, the wrapped models, and when to stop."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._text import clip
from ..budget import Budget, BudgetExceeded
from ..llm import LLM, Metered, Spend
from ..store import RunStore, to_json
from .record import Recorded

EDITED_BY_HAND = "edited by hand"
ON_EDIT = ("error", "keep", "discard")


class EditedByHand(ValueError):
    """`resume=` would overwrite parameters the user changed since the run stopped."""


class StopRun(Exception):
    """Internal: stop the run cleanly for `reason` (the run stays resumable)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def budget_stop(e: BudgetExceeded) -> StopRun:
    return StopRun(str(e) if e.limit == "stop" else f"{e.limit}: {e}")


@dataclass
class RunModels:
    """The run's models, each the user's model wrapped once: recorded in the store, metered
    against the budget under its spend role. `judge` is None without an LLM judge; `program`
    is the model `bf.chat` calls inside the program during the run."""

    optimizer: Recorded
    judge: Recorded | None = None
    program: Recorded | None = None

    def all(self) -> list[Recorded]:
        return [m for m in (self.optimizer, self.judge, self.program) if m is not None]

    def begin_step(self, step: int) -> None:
        for m in self.all():
            m.begin_step(step)


class RunSession:
    """Opens (or resumes) one run in a store and answers "should the run stop now?".

    Spend and metric calls start from what the store already holds (paid work, all of it), so
    a resumed run's budget counts what the killed one spent.
    """

    def __init__(self, store: RunStore | str | os.PathLike[str] | None, *, config: dict[str, Any],
                 resume: str | None, name: str | None, budget: Budget,
                 stop_file: str | os.PathLike[str] | None,
                 clock: Callable[[], float] = time.monotonic,
                 values: dict[str, Any] | None = None, on_edit: str = "error") -> None:
        self.store = store if isinstance(store, RunStore) else RunStore(store)
        self.budget = budget
        self.clock = clock
        # the module's values that resume would overwrite and on_edit="keep" keeps, by name
        self.edited: dict[str, Any] = {}
        if resume is not None:
            run = self.store.get_run(resume)
            self.run_id = run.id
            _check_config(resume, run.config, config)
            edited = hand_edits(self.store, run.id, values or {})
            if edited and on_edit == "error":
                raise EditedByHand(_edited_message(run.id, edited))
            self.edited = edited if on_edit == "keep" else {}
            self.store.update_run(self.run_id, status="running", stop_reason=None)
        else:
            self.run_id = self.store.create_run(config, name=name)
        self.stop_file = (Path(stop_file) if stop_file is not None
                          else self.store.path.parent / f"{self.run_id}.stop")
        self.spend = Spend.from_calls(self.store.llm_calls(self.run_id))
        self.guards = 0  # proposals an overfitting guard refused (restored with the state)
        self.metric_calls = len(self.store.evaluations(self.run_id))
        self.interrupted = False
        self.ctrl_c_twice = False  # a KeyboardInterrupt otherwise came from code, not Ctrl-C
        self.started = clock()
        if resume is not None and self.stop_file.exists():  # it stopped the run; resume goes on
            self.stop_file.unlink(missing_ok=True)
            warnings.warn(f"removed the stop file {self.stop_file}, left by the stop of run "
                          f"{self.run_id}, so that the resumed run does not stop at once",
                          stacklevel=4)

    def wrap(self, llm: LLM, role: str) -> Recorded:
        """`llm` metered against the run's budget as `role` and recorded in the store."""
        return Recorded(Metered(llm, self.budget, self.spend, role=role), self.store, self.run_id,
                        self._before_llm_call, role=role)

    def elapsed(self) -> float:
        return self.clock() - self.started

    def check_stop(self) -> None:
        """Raise StopRun when time is up, Ctrl-C was pressed or the stop file exists."""
        if self.interrupted:
            raise StopRun("interrupted (Ctrl-C)")
        if self.stop_file.exists():
            raise StopRun(f"stop file {self.stop_file} exists")
        if self.budget.seconds is not None and self.elapsed() >= self.budget.seconds:
            raise StopRun(f"seconds: time budget of {self.budget.seconds:g}s reached")

    def _before_llm_call(self) -> None:
        try:
            self.check_stop()
        except StopRun as s:
            raise BudgetExceeded("stop", s.reason) from None

    @contextlib.contextmanager
    def catching_ctrl_c(self) -> Iterator[None]:
        """The first Ctrl-C stops the run after the current step; a second stops it at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self.interrupted:
                self.ctrl_c_twice = True
                raise KeyboardInterrupt
            self.interrupted = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def spend_record(self) -> dict[str, Any]:
        """What the run has spent, as stored with each step and the run, with the number of
        times an overfitting guard refused a proposal (`guards`)."""
        return {**self.spend.to_dict(), "guards": self.guards}

    def close(self, status: str, reason: str) -> None:
        self.store.update_run(self.run_id, status=status, stop_reason=reason,
                              spend=self.spend_record())


def _check_config(run_id: str, stored: dict[str, Any], now: dict[str, Any]) -> None:
    """Resume needs the same search; budget, steps and executor may change."""
    keys = ("strategy", "optimizer", "seed", "minibatch_size", "trainset", "valset", "params",
            "accept", "copy_guard", "testset", "objectives")
    before_03 = {"accept": None, "copy_guard": True, "testset": None,
                 "objectives": []}  # runs that predate them
    changed = [k for k in keys if stored.get(k, before_03.get(k)) != now[k]
               and not (k == "testset" and now[k] is None)]  # leaving the test split out is fine
    if changed:
        detail = "; ".join(f"{k}: stored {stored.get(k)!r}, given {now[k]!r}" for k in changed)
        raise ValueError(f"cannot resume run {run_id}: the setup changed ({detail})")


def hand_edits(store: RunStore, run_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """The module's `values` that resuming `run_id` would overwrite: those equal to none of
    the values the run holds for them (its seed, the best at its last checkpoint, a hand edit
    kept earlier). An untouched module (the seed's values) or one a run ended with (the
    best's) has none."""
    state = store.run_state(run_id)
    if state is None:  # killed before its seed was stored: the module's values become the seed
        return {}
    held = [c["values"] for c in state["pool"] if c["id"] == state["best_id"]]
    held += [c.values for c in store.candidates(run_id) if c.origin in ("seed", "edit")]
    return {name: value for name, value in values.items()
            if all(name in h and to_json(h[name]) != to_json(value) for h in held)}


def _edited_message(run_id: str, edited: dict[str, Any]) -> str:
    shown = ", ".join(f"{name!r} = {clip(repr(v), 60)}" for name, v in edited.items())
    return (f"cannot resume run {run_id}: parameter(s) {shown} were {EDITED_BY_HAND} since the "
            "run stopped (neither the run's seed value nor its last stored value), and "
            "resuming would overwrite them. Choose: bf.train(..., resume=..., on_edit='keep') "
            f"keeps the edit (a step '{EDITED_BY_HAND}' in the run's history), "
            "on_edit='discard' restores the stored values")
