"""Limits on requests in flight and per minute, shared by threads and asyncio tasks."""

import asyncio
import threading
import time

import pytest

from backfeed.llm import BaseLLM, Completion, Limited, Limiter, Usage, with_policies


class Counting(BaseLLM):
    """A backend that records how many calls run at once."""

    model = "counting"

    def __init__(self, seconds: float = 0.002) -> None:
        self.seconds = seconds
        self.now = 0
        self.peak = 0
        self.calls = 0
        self.lock = threading.Lock()

    def _enter(self):
        with self.lock:
            self.now += 1
            self.calls += 1
            self.peak = max(self.peak, self.now)

    def _leave(self):
        with self.lock:
            self.now -= 1

    def complete(self, messages, **options):
        self._enter()
        try:
            time.sleep(self.seconds)
            return Completion("ok", Usage(10, 5), 0.0, self.model)
        finally:
            self._leave()

    async def acomplete(self, messages, **options):
        self._enter()
        try:
            await asyncio.sleep(self.seconds)
            return Completion("ok", Usage(10, 5), 0.0, self.model)
        finally:
            self._leave()


def test_100_calls_from_16_threads_never_exceed_4_in_flight():
    backend = Counting()
    llm = Limited(backend, max_in_flight=4)
    barrier = threading.Barrier(16)

    def work(n):
        barrier.wait()
        for _ in range(n):
            llm.complete([{"role": "user", "content": "q"}])

    counts = [7] * 4 + [6] * 12  # 100 calls
    threads = [threading.Thread(target=work, args=(n,)) for n in counts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert backend.calls == 100
    assert backend.peak <= 4 and llm.limiter.peak_in_flight <= 4
    assert backend.peak == 4  # the limit, not a lack of demand, held it there
    assert llm.limiter.in_flight == 0


def test_threads_and_asyncio_tasks_share_one_limiter():
    backend = Counting(seconds=0.005)
    limiter = Limiter(max_in_flight=3)
    llm = Limited(backend, limiter)

    def threads_side():
        for _ in range(10):
            llm.complete([{"role": "user", "content": "t"}])

    async def tasks_side():
        await asyncio.gather(*(llm.acomplete([{"role": "user", "content": "a"}]) for _ in range(30)))

    workers = [threading.Thread(target=threads_side) for _ in range(4)]
    for w in workers:
        w.start()
    asyncio.run(tasks_side())
    for w in workers:
        w.join()
    assert backend.calls == 70 and backend.peak <= 3 and limiter.peak_in_flight <= 3


def test_requests_per_minute_waits_for_the_window():
    limiter = Limiter(requests_per_minute=2, window_s=0.4)
    llm = Limited(Counting(seconds=0), limiter)
    t0 = time.monotonic()  # before the first request starts, so no lower bound is overstated
    for _ in range(3):
        llm.complete([{"role": "user", "content": "q"}])
    assert time.monotonic() - t0 >= 0.39  # the third request waited for the window


def test_tokens_per_minute_counts_actual_usage():
    limiter = Limiter(tokens_per_minute=40, window_s=0.4)
    llm = Limited(Counting(seconds=0), limiter)
    t0 = time.monotonic()
    llm.complete([{"role": "user", "content": "q"}])  # uses 15 tokens
    llm.complete([{"role": "user", "content": "q"}])  # 30
    llm.complete([{"role": "user", "content": "q"}], max_tokens=20)  # 30 + 21 > 40: waits
    assert time.monotonic() - t0 >= 0.39


def test_a_single_request_larger_than_the_token_limit_still_runs():
    llm = Limited(Counting(seconds=0), Limiter(tokens_per_minute=5))
    assert llm.complete([{"role": "user", "content": "x" * 400}]).text == "ok"


def test_bad_limits_are_rejected():
    with pytest.raises(ValueError, match="max_in_flight must be at least 1"):
        Limiter(max_in_flight=0)


def test_with_policies_builds_the_stack_in_order(tmp_path):
    llm = with_policies(Counting(), cache=tmp_path / "c.sqlite", max_retries=2, max_in_flight=2)
    assert [type(x).__name__ for x in (llm, llm.llm, llm.llm.llm, llm.llm.llm.llm)] == [
        "Cached", "Retrying", "Limited", "Counting"]
