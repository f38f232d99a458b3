"""Executors: Threads, Async and Ray give the same run as a sequential loop."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import backfeed as bf
import train_helpers as h
from backfeed.train.evaluate import run_one

ROOT = Path(h.__file__).resolve().parents[1]


class AsyncRouter(h.Router):
    async def forward(self, kind: str):
        await asyncio.sleep(0.001)
        if kind == "boom":
            raise RuntimeError("kind boom is not supported")
        if kind == "loud":
            print("routing a loud example")
        return h.route(kind, self.pa, self.pb, self.pc)


def metric_with_pid(example, output):
    fb = h.metric(example, output)
    return bf.Feedback(score=fb.score, text=fb.text, details={"pid": os.getpid()})


def _run(tmp_path, executor, module=None, kinds=h.KINDS, metric=h.metric):
    module = module or h.Router()
    data = h.dataset(2, kinds)
    opt = h.FixOptimizer(module.parameters(), llm=h.scripted())
    result = bf.train(module, data, data, metric=metric, optimizer=opt,
                      strategy=bf.search.Pareto(), steps=8, store=tmp_path / "r.db",
                      minibatch_size=3, executor=executor, progress=False)
    return h.decisions_of(result.store, result.run_id), result


def test_threads_and_async_match_sequential(tmp_path):
    kinds = (*h.KINDS, "loud", "boom")
    reference, ref = _run(tmp_path, bf.executors.Threads(1), kinds=kinds)
    assert any(e[7] for e in reference["evaluations"])  # console output was captured
    for executor in (bf.executors.Threads(4), bf.executors.Async(8)):
        got, result = _run(tmp_path, executor, kinds=kinds)
        assert got == reference, executor
        assert result.best_values == ref.best_values
        executor.close()
    got, _ = _run(tmp_path, bf.executors.Async(8), module=AsyncRouter(), kinds=kinds)
    assert got == reference


def test_stdout_is_captured_per_evaluation_across_threads():
    module = h.Router()
    executor = bf.executors.Threads(4)
    items = [(i, ("loud", i) if i % 2 else ("a", i)) for i in range(16)]
    from backfeed.train.evaluate import install_capture, uninstall_capture

    install_capture()
    try:
        out = executor.evaluate(module, {}, items, h.metric, None)
    finally:
        uninstall_capture()
        executor.close()
    assert [t.result.stdout for t in out] == ["" if i % 2 == 0 else "routing a loud example\n"
                                               for i in range(16)]
    assert run_one(module, ("a", 0), 0, h.metric, None).result.stdout == ""


def test_executor_arguments_are_checked():
    with pytest.raises(ValueError, match="Threads"):
        bf.executors.Threads(0)
    with pytest.raises(ValueError, match="Async"):
        bf.executors.Async(-1)


@pytest.mark.slow
def test_ray_matches_threads(tmp_path):
    ray = pytest.importorskip("ray")
    reference, _ = _run(tmp_path, bf.executors.Threads(2), metric=metric_with_pid)
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        got, result = _run(tmp_path, bf.executors.Ray(chunk=2), metric=metric_with_pid)
        assert got == reference
        assert result.best_score == pytest.approx(1.0)
        pids = {e.details["pid"] for e in result.store.evaluations(result.run_id)}
        assert pids - {os.getpid()}  # evaluations really ran in Ray worker processes
    finally:
        ray.shutdown()


class Chatty(bf.Module):
    """A program that calls the run's model and one of its own (bf.chat(llm=...))."""

    def __init__(self) -> None:
        self.prompt = bf.param("Say it.", name="prompt")
        self.own = bf.llm.Scripted([lambda messages, options: "own"] * 100)

    def forward(self, word):
        first = bf.chat([{"role": "system", "content": self.prompt},
                         {"role": "user", "content": word}])
        return bf.chat([{"role": "user", "content": first}], llm=self.own)


@pytest.mark.slow
def test_ray_workers_make_program_calls_through_the_runs_model_and_meter(tmp_path):
    ray = pytest.importorskip("ray")
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        program = Chatty()
        run_model = bf.llm.Scripted([lambda messages, options: "run"] * 100)
        data = [("a", 0), ("b", 1), ("c", 2), ("d", 3)]
        result = bf.train(program, data, metric=lambda ex, out: 0.0, steps=1,
                          program_llm=run_model, executor=bf.executors.Ray(chunk=1),
                          store=tmp_path / "r.db", progress=False,
                          optimizer=bf.optim.Prime(program.parameters(),
                                                   llm=bf.llm.Scripted(["x"] * 5)))
        calls = [c for c in result.store.llm_calls(result.run_id) if c.role == "program"]
        assert result.spend["by_role"]["program"]["calls"] == len(calls) >= 8
        assert {c.answer for c in calls} == {"run", "own"}  # the run's model reached the workers
        other = Chatty()
        capped = bf.train(other, data * 3, metric=lambda ex, out: 0.0, steps=5,
                          program_llm=run_model, executor=bf.executors.Ray(chunk=1),
                          store=tmp_path / "r.db", progress=False,
                          budget=bf.Budget(llm_calls=12),
                          optimizer=bf.optim.Prime(other.parameters(),
                                                   llm=bf.llm.Scripted(["x"] * 5)))
        assert 10 <= capped.spend["calls"] <= 12 and capped.status == "stopped"
        # bf.evaluate on Ray: the chosen model reaches the workers, and its calls are counted
        with bf.llm.using(run_model):
            report = bf.evaluate(Chatty(), data, lambda ex, out: float(out == "own"),
                                 executor=bf.executors.Ray(chunk=2), progress=False)
        assert report.mean == 1.0 and report.spend["llm_calls"] == 8
    finally:
        ray.shutdown()
