"""Executors evaluate one candidate on many examples in parallel: threads, asyncio or Ray.

The protocol is one method, `evaluate(module, values, items, metric, forward, on_result)`,
returning one `Traced` per (index, example) in input order, so results never depend on the
executor; `on_result` is called as each one finishes (the trainer stores it at once). An
in-process executor evaluates the module as loaded (its outputs keep their graphs); a remote one
(`in_process = False`) ships the module and `values` to workers and returns plain results.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

from .evaluate import Forward, Metric, Traced, arun_one, evaluate_values, run_one
from .remote import RemoteCall, Shipment, evaluate_remotely, shipment, take_back

Items = list[tuple[int, Any]]
OnResult = Callable[[Traced], None] | None


@runtime_checkable
class Executor(Protocol):
    """Evaluates (index, example) items of one candidate; results in input order."""

    in_process: bool

    def evaluate(self, module: Any, values: dict[str, Any], items: Items,
                 metric: Metric | None, forward: Forward | None,
                 on_result: OnResult = None) -> list[Traced]: ...

    def close(self) -> None: ...


def _positive(n: int, what: str) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{what} must be a positive int, got {n!r}")
    return n


class Threads:
    """A thread pool of `n` workers (n=1 evaluates in the calling thread)."""

    in_process = True

    def __init__(self, n: int = 4) -> None:
        self.n = _positive(n, "Threads(n)")
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"Threads({self.n})"

    def evaluate(self, module: Any, values: dict[str, Any], items: Items,
                 metric: Metric | None, forward: Forward | None,
                 on_result: OnResult = None) -> list[Traced]:
        def one(item: tuple[int, Any]) -> Traced:
            t = run_one(module, item[1], item[0], metric, forward)
            if on_result is not None:
                on_result(t)
            return t

        if self.n == 1 or len(items) <= 1:
            return [one(item) for item in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.n, thread_name_prefix="backfeed-eval")
        # Each example runs in a copy of the caller's context (bf.llm.using reaches the workers).
        futures = [self._pool.submit(contextvars.copy_context().run, one, item) for item in items]
        return [f.result() for f in futures]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class Async:
    """Up to `n` evaluations at once on an asyncio loop: `async def forward` programs are
    awaited concurrently; synchronous ones run in worker threads."""

    in_process = True

    def __init__(self, n: int = 16) -> None:
        self.n = _positive(n, "Async(n)")

    def __repr__(self) -> str:
        return f"Async({self.n})"

    def evaluate(self, module: Any, values: dict[str, Any], items: Items,
                 metric: Metric | None, forward: Forward | None,
                 on_result: OnResult = None) -> list[Traced]:
        async def main() -> list[Traced]:
            loop = asyncio.get_running_loop()
            # Synchronous programs run in n threads (asyncio.run shuts this pool down after).
            loop.set_default_executor(ThreadPoolExecutor(self.n, thread_name_prefix="backfeed-async"))
            gate = asyncio.Semaphore(self.n)

            async def one(item: tuple[int, Any]) -> Traced:
                async with gate:
                    t = await arun_one(module, item[1], item[0], metric, forward)
                if on_result is not None:
                    on_result(t)
                return t

            return list(await asyncio.gather(*(one(item) for item in items)))

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(main())
        # Called from inside a running loop (a notebook): run ours in a helper thread.
        with ThreadPoolExecutor(1) as helper:
            return helper.submit(contextvars.copy_context().run, asyncio.run, main()).result()

    def close(self) -> None:
        """Nothing to release: each batch runs on its own event loop."""


class Ray:
    """Ray tasks (local or a cluster at `address`); `ray` is imported when first used.

    The module, metric and forward are shipped once per batch with `ray.put`; each task
    evaluates `chunk` examples, `threads` at a time (raise both for I/O-bound programs), and
    reserves `num_cpus`. Install with `pip install 'backfeed[ray]'`.
    """

    in_process = False

    def __init__(self, address: str | None = None, *, chunk: int = 1, threads: int = 1,
                 num_cpus: float = 1.0, init_kwargs: dict[str, Any] | None = None) -> None:
        self.address = address
        self.chunk = _positive(chunk, "Ray(chunk=)")
        self.threads = _positive(threads, "Ray(threads=)")
        if num_cpus <= 0:
            raise ValueError(f"Ray(num_cpus=) must be > 0, got {num_cpus!r}")
        self.num_cpus = float(num_cpus)
        self.init_kwargs = dict(init_kwargs or {})
        self._task: Any = None

    def __repr__(self) -> str:
        return f"Ray({self.address!r}, chunk={self.chunk}, threads={self.threads})"

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError as e:
            raise ImportError(
                "bf.executors.Ray needs the ray package: pip install 'backfeed[ray]'"
            ) from e
        if not ray.is_initialized():
            kwargs = {"ignore_reinit_error": True, "log_to_driver": False, **self.init_kwargs}
            if self.address is not None:
                kwargs["address"] = self.address
            # Workers import backfeed and the user's code from the driver's path.
            env = kwargs.setdefault("runtime_env", {}).setdefault("env_vars", {})
            env.setdefault("PYTHONPATH", os.pathsep.join(p for p in _sys_path() if p))
            ray.init(**kwargs)
        if self._task is None:
            self._task = ray.remote(num_cpus=self.num_cpus)(_evaluate_shipped)
        return ray

    def evaluate(self, module: Any, values: dict[str, Any], items: Items,
                 metric: Metric | None, forward: Forward | None,
                 on_result: OnResult = None) -> list[Traced]:
        if not items:
            return []
        ray = self._ray()
        chunks = [items[i : i + self.chunk] for i in range(0, len(items), self.chunk)]
        models = shipment(len(chunks))  # the run's program model, a share of the budget each
        try:
            shipped = ray.put((module, values, metric, forward))
            models = [ray.put(m) for m in models]
        except Exception as exc:  # an unpicklable module, metric or model
            raise TypeError(
                f"bf.executors.Ray cannot ship the program, its metric or its model to the "
                f"workers ({type(exc).__name__}: {exc}); use an executor in this process "
                "(Threads, Async) or a model that pickles (bf.llm.LiteLLM)") from exc
        refs = [self._task.remote(shipped, model, chunk, self.threads)
                for model, chunk in zip(models, chunks)]
        done: dict[Any, list[Traced]] = {}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                results, calls, exceeded = ray.get(ref)
                take_back(calls, exceeded)  # counted and stored as the run's program calls
                done[ref] = [Traced(r) for r in results]
                if on_result is not None:
                    for t in done[ref]:
                        on_result(t)
        return [t for ref in refs for t in done[ref]]

    def close(self) -> None:
        """Leaves Ray running (the user or the test that started it shuts it down)."""


def _evaluate_shipped(shipped: tuple[Any, dict[str, Any], Any, Any], model: Shipment | None,
                      chunk: Items, threads: int
                      ) -> tuple[list[Any], list[RemoteCall], tuple[str, str] | None]:
    module, values, metric, forward = shipped  # Ray resolved the ObjectRefs to copies
    return evaluate_remotely(model, lambda: evaluate_values(module, values, chunk, metric,
                                                            forward, threads))


def _sys_path() -> list[str]:
    import sys

    return [p for p in sys.path if os.path.isdir(p)]
