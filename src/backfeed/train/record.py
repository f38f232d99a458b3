"""An LLM wrapper that writes every call to the run store and replays stored calls on resume."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

from ..budget import BudgetExceeded
from ..llm import LLM, BaseLLM, Completion, Message, Usage, Wrapper
from ..store import RunStore, to_json
from .failures import model_failure


def request_hash(messages: list[Message], options: dict[str, Any]) -> str:
    """A stable hash of one request (messages and options)."""
    return hashlib.sha256(to_json([messages, options]).encode()).hexdigest()[:32]


class Recorded(Wrapper):
    """Store each call under (step, request hash, occurrence within the step).

    When a call with the same key is already stored (the run was killed after paying for it),
    the stored answer is returned and nothing is paid. A `BudgetExceeded` from the wrapped
    (metered) model propagates; any other failure of the optimizer's or the judge's model
    (after its own retries) is raised as `ModelFailed`, naming the model and the fix: both
    are a `RunStop`, which optimizers re-raise, so the run stops. The program's model raises
    its own error (the program's op turns it into an error node), and `.exceeded` and
    `.failed` remember it so that the evaluation stops the run and blames no example.
    `before_call` may raise BudgetExceeded (e.g. time is up). Calls are stored under `role`
    ('optimizer', 'judge' or 'program').
    """

    def __init__(self, llm: LLM, store: RunStore, run_id: str,
                 before_call: Callable[[], None] | None = None, *, role: str = "optimizer") -> None:
        super().__init__(llm)
        self.store = store
        self.run_id = run_id
        self.before_call = before_call
        self.role = role
        self.step = -1
        self.exceeded: BudgetExceeded | None = None
        self.failed: Exception | None = None
        self.replayed = 0
        self.telemetry: Any = None  # a backfeed.otel.export.Telemetry: a span per paid call
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def raise_swallowed(self) -> None:
        """Raise the run-ending failure this model had and the caller swallowed (an optimizer
        or a judge that catches every exception): a budget reached, or a model that failed
        after its retries. Nothing when there was none."""
        if self.exceeded is not None:
            raise self.exceeded
        if self.failed is not None and self.role != "program":
            raise model_failure(self.failed, model=self.model, role=self.role,
                                run_id=self.run_id) from self.failed

    def begin_step(self, step: int) -> None:
        with self._lock:
            self.step = step
            self._counts = {}
            self.exceeded = None
            self.failed = None

    def call(self, messages: list[Message], options: dict[str, Any]) -> Completion:
        key = request_hash(messages, options)
        with self._lock:
            step = self.step
            occurrence = self._counts.get(key, 0)
            self._counts[key] = occurrence + 1
        stored = self.store.find_llm_call(self.run_id, step, key, occurrence)
        if stored is not None:
            self.replayed += 1
            return Completion(stored.answer, Usage(stored.prompt_tokens, stored.completion_tokens),
                              stored.cost_usd, stored.model or "", stored.cached,
                              tuple(stored.alternatives))
        started = time.perf_counter()
        try:
            if self.before_call is not None:
                self.before_call()
            completion = self.llm.complete(messages, **options)
        except BudgetExceeded as e:
            self.exceeded = e
            raise
        except Exception as e:
            self.failed = e
            if self.role == "program":
                raise
            raise model_failure(e, model=self.model, role=self.role, run_id=self.run_id) from e
        self._store(step, key, occurrence, messages, options, completion,
                    time.perf_counter() - started)
        return completion

    def store_call(self, messages: list[Message], options: dict[str, Any],
                   completion: Completion, seconds: float) -> None:
        """Store a call made elsewhere (a remote worker) in the current step."""
        key = request_hash(messages, options)
        with self._lock:
            step = self.step
            occurrence = self._counts.get(key, 0)
            self._counts[key] = occurrence + 1
        self._store(step, key, occurrence, messages, options, completion, seconds)

    def _store(self, step: int, key: str, occurrence: int, messages: list[Message],
               options: dict[str, Any], completion: Completion, seconds: float) -> None:
        self.store.add_llm_call(
            self.run_id, step=step, request_hash=key, occurrence=occurrence,
            model=completion.model or self.model, messages=messages, options=options,
            answer=completion.text, prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens, cost_usd=completion.cost_usd,
            cached=completion.cached, seconds=seconds, role=self.role,
            alternatives=completion.alternatives,
        )
        if self.telemetry is not None:
            self.telemetry.model_call(role=self.role, model=self.model, messages=messages,
                                      options=options, completion=completion, seconds=seconds,
                                      run_id=self.run_id, step=step)

    async def acall(self, messages: list[Message], options: dict[str, Any]) -> Completion:
        return await asyncio.to_thread(self.call, messages, options)  # recorded like complete()


class Probe(BaseLLM):
    """Captures the requests an optimizer makes and answers `answer` without calling a model."""

    def __init__(self, model: str = "probe",
                 answer: str = '{"reasoning": "", "answer": "", "suggestion": {}}',
                 json_answer: str | None = None) -> None:
        self.model = model
        self.answer = answer
        self.json_answer = json_answer  # the answer to a request with a JSON schema, if other
        self.requests: list[tuple[list[Message], dict[str, Any]]] = []

    def complete(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> Completion:
        self.requests.append(([dict(m) for m in messages], {"max_tokens": max_tokens}))
        answer = self.answer if json_schema is None or self.json_answer is None \
            else self.json_answer
        return Completion(answer, Usage(0, 0), 0.0, self.model, False)
