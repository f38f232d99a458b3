"""Scores of candidate values on examples, each computed once per run: the store remembers."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from ..graph import Feedback
from ..store import values_hash
from .evaluate import EvalResult, Forward, Metric, Traced, no_trace_error, run_one
from .executors import Executor, Threads
from .record import Recorded
from .search import Candidate
from .session import RunSession, StopRun, budget_stop


class EvalCache:
    """Evaluate candidates on the splits' examples; a stored result is never paid for twice.

    `results(..., trace=True)` also keeps the outputs' graphs in `.traced` (by example index),
    so the optimizer can see them; a stored result is re-run without the metric to rebuild its
    graph, and its stored feedback is given to that graph.
    """

    def __init__(self, session: RunSession, module: Any, splits: dict[str, list[Any]],
                 metric: Metric | None, forward: Forward | None, executor: Executor,
                 on_progress: Callable[[], None] = lambda: None,
                 program_model: Recorded | None = None, telemetry: Any = None) -> None:
        self.session = session
        self.telemetry = telemetry  # an otel.export.Telemetry (evaluation spans when on)
        self.program_model = program_model  # bf.chat's model: its failure is not the example's
        self.module = module
        self.splits = splits
        self.metric = metric
        self.forward = forward
        self.executor = executor
        self.on_progress = on_progress
        self.traced: dict[int, Traced] = {}

    def results(self, cand: Candidate, split: str, indexes: list[int], trace: bool = False,
                backward: bool = True, limited: bool = True) -> list[EvalResult]:
        """Scores of `cand` on examples `indexes` of `split`, in that order. `limited=False`
        (the held-out verdict after the search) is held to neither the time, the stop file
        nor the metric-call limit; the model budgets still hold."""
        session, store, run_id = self.session, self.session.store, self.session.run_id
        data = self.splits[split]
        h = values_hash(cand.values)
        found: dict[int, EvalResult] = {}
        missing: list[int] = []
        for i in dict.fromkeys(indexes):
            rec = store.find_evaluation(run_id, h, split, i)
            if rec is None:
                missing.append(i)
            else:
                found[i] = EvalResult(i, rec.score, rec.feedback, rec.output, rec.details,
                                      rec.error, rec.stdout, rec.seconds, stored=True)
        if limited:
            session.check_stop()
        limit = session.budget.metric_calls if limited else None
        short = False
        if limit is not None and session.metric_calls + len(missing) > limit:
            missing = missing[: max(0, limit - session.metric_calls)]
            short = True
        nodes: dict[int, Traced] = {}
        lock = threading.Lock()

        def store_result(t: Traced) -> None:
            r = t.result
            if self._program_model_failed():
                return  # the model failed, not the program: stop the run, blame no example
            store.add_evaluation(
                run_id, candidate_id=cand.id, values_hash=h, split=split,
                example_index=r.index, example=_example_text(data[r.index]), output=r.output,
                score=r.score, feedback=r.feedback, details=r.details, error=r.error,
                stdout=r.stdout, seconds=r.seconds,
            )
            with lock:
                session.metric_calls += 1
                found[r.index] = r
                nodes[r.index] = t

        if missing:
            if trace or self.executor.in_process:
                self.module.load_state_dict(cand.values)
            executor = self.executor if (self.executor.in_process or not trace) else Threads(1)
            spans = contextlib.nullcontext() if self.telemetry is None else \
                self.telemetry.evaluation(cand.id, split, len(missing))  # None while off
            with spans as span:
                executor.evaluate(self.module, cand.values, [(i, data[i]) for i in missing],
                                  self.metric, self.forward, store_result)
                scores = [found[i].score for i in missing if i in found]
                if span is not None and scores:
                    span.set_attribute("backfeed.score", sum(scores) / len(scores))
            self.on_progress()
            self._stop_if_the_program_model_stopped()
        if short:
            raise StopRun(f"metric_calls: budget of {limit} metric calls reached")
        if trace:
            self.module.load_state_dict(cand.values)
            self.traced = {}
            for i in indexes:
                t = nodes.get(i)
                r = found[i]
                if t is None:  # stored earlier: rebuild the graph, reuse the stored feedback
                    t = run_one(self.module, data[i], i, None, self.forward)
                    self._stop_if_the_program_model_stopped()  # a graph of refused calls
                self.traced[i] = t
                if t.node is None and t.result.error is None:
                    raise no_trace_error(t.value)
                if backward and t.node is not None:
                    t.node.backward(Feedback(score=r.score, text=r.feedback, details=r.details))
        return [found[i] for i in indexes]

    def _stop_if_the_program_model_stopped(self) -> None:
        """The program's op turned a refused or failed model call into an error node; the
        run stops instead (a budget reached, or the model's own failure, named by the run)."""
        program = self.program_model
        if program is not None and program.exceeded is not None:
            raise budget_stop(program.exceeded)
        if program is not None and program.failed is not None:
            raise program.failed  # the run turns it into ModelFailed, naming the model

    def _program_model_failed(self) -> bool:
        program = self.program_model
        return program is not None and (program.exceeded is not None or
                                        program.failed is not None)


def _example_text(example: Any) -> str:
    text = repr(example)
    return text if len(text) <= 300 else text[:297] + "..."
