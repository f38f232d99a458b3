"""The benchmark harness: runs adapters on tasks with one model and writes JSON, table and plot."""

from __future__ import annotations

import json

import pytest
from benchmarks import run as harness
from benchmarks.adapters import RunContext, set_values
from benchmarks.tasks import make_task

import backfeed as bf

GOOD_ACT = (
    "def act(self, observation):\n"
    "    x, v, theta, omega = observation\n"
    "    return 1 if theta + 0.5 * omega + 0.01 * x + 0.1 * v > 0 else 0\n"
)


def responder(x_star: float):
    """A scripted optimizer that proposes the known answers under every name a library uses."""

    def answer(messages, options):
        suggestion = {"x": x_star, "x0": x_star, "act": GOOD_ACT, "__code_act0": GOOD_ACT}
        return json.dumps({"reasoning": "known answer", "answer": "", "suggestion": suggestion})

    return answer


class FakeAdapter:
    """Stands in for a library: one optimizer call, then the known answer."""

    name = "fake"

    def unsupported(self, task):
        return "numbers only" if task.family == "control" else None

    def optimize(self, ctx: RunContext) -> None:
        ctx.llm.complete([{"role": "user", "content": "propose"}])
        set_values(ctx.program, {"x": ctx.task.info["x_star"]})
        ctx.check(ctx.task.trainset[0])


def test_harness_writes_json_table_and_plot_with_na(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "get_adapter", lambda name: FakeAdapter())
    x_star = make_task("numeric", 0).info["x_star"]
    model = harness.scripted_model(bf.llm.Scripted([responder(x_star)] * 10))
    records = harness.run_suite(["numeric", "control/cartpole"], ["fake"], [0, 1], model,
                                size="quick", calls=2, progress=False)
    by_task = {(r.task, r.framework, r.seed): r for r in records}
    numeric = by_task[("numeric", "fake", 0)]
    assert numeric.status == "ok" and numeric.test_score == 1.0 and numeric.optimizer_calls == 1
    assert numeric.start_score < 1 and numeric.curve and numeric.prompt_tokens > 0
    assert by_task[("control/cartpole", "fake", 0)].status == "n/a"
    assert ("numeric", "adam (reference)", 0) in by_task
    meta = {"command": "test", "model": "scripted", "calls": 2, "seeds": [0, 1],
            "size": "quick", "machine": "test", "date": "today"}
    table = harness.write_results(records, tmp_path, meta)
    assert "| numeric | fake | 1.000 ± 0.000 |" in table
    assert "| control/cartpole | fake | n/a (numbers only)" in table
    assert (tmp_path / "score_vs_calls.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "results.json").read_text())
    assert {row["framework"] for row in saved["summary"]} == {"fake", "adam (reference)"}
    assert "Model: scripted" in (tmp_path / "results.md").read_text()


def test_a_failing_library_is_reported_as_an_error_not_a_zero(tmp_path, monkeypatch):
    class Broken(FakeAdapter):
        def optimize(self, ctx):
            raise RuntimeError("boom")

    monkeypatch.setattr(harness, "get_adapter", lambda name: Broken())
    model = harness.scripted_model(bf.llm.Scripted([]))
    records = harness.run_suite(["numeric"], ["broken"], [0], model, size="quick", calls=2,
                                progress=False)
    assert records[0].status == "error" and "boom" in records[0].reason
    assert records[0].test_score is None
    table = harness.markdown_table(harness.summarize(records))
    assert "| numeric | fake | error (RuntimeError: boom)" in table.replace("broken", "fake")


def test_call_limit_is_enforced_for_every_library(monkeypatch):
    class Greedy(FakeAdapter):
        def optimize(self, ctx):
            while True:
                ctx.llm.complete([{"role": "user", "content": "again"}])

    monkeypatch.setattr(harness, "get_adapter", lambda name: Greedy())
    model = harness.scripted_model(bf.llm.Scripted(["{}"] * 50))
    record = harness.run_one("numeric", "greedy", 0, model, size="quick", calls=3,
                             max_tokens=64, start_score=None)
    assert record.status == "ok" and record.optimizer_calls == 3


def test_unknown_framework_is_named():
    with pytest.raises(KeyError, match="nope"):
        harness.main(["--frameworks", "nope"])


def test_backfeed_runs_through_the_harness_with_a_scripted_model(tmp_path):
    x_star = make_task("numeric", 0).info["x_star"]
    model = harness.scripted_model(bf.llm.Scripted([responder(x_star)] * 50))
    records = harness.run_suite(["numeric", "control/cartpole"], ["backfeed"], [0], model,
                                size="quick", calls=3, progress=False)
    runs = {r.task: r for r in records if r.framework == "backfeed"}
    assert all(r.status == "ok" for r in runs.values()), [r.reason for r in runs.values()]
    assert runs["numeric"].test_score == 1.0
    assert runs["control/cartpole"].test_score == 1.0
    assert 0 < runs["numeric"].optimizer_calls <= 3
    table = harness.write_results(records, tmp_path, {
        "command": "test", "model": "scripted", "calls": 3, "seeds": [0], "size": "quick",
        "machine": "test", "date": "today"})
    assert "| numeric | backfeed | 1.000" in table


def test_trace_runs_through_the_harness_with_a_scripted_model():
    pytest.importorskip("opto")
    x_star = make_task("numeric", 0).info["x_star"]
    model = harness.scripted_model(bf.llm.Scripted([responder(x_star)] * 50))
    records = harness.run_suite(["numeric", "control/cartpole"], ["trace"], [0], model,
                                size="quick", calls=2, progress=False)
    runs = {r.task: r for r in records if r.framework == "trace"}
    assert runs["numeric"].test_score == 1.0 and runs["numeric"].optimizer_calls == 2
    assert runs["control/cartpole"].test_score == 1.0


def test_combine_merges_result_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "get_adapter", lambda name: FakeAdapter())
    x_star = make_task("numeric", 0).info["x_star"]
    model = harness.scripted_model(bf.llm.Scripted([responder(x_star)] * 10))
    for name in ("a", "b"):
        records = harness.run_suite(["numeric"], [name], [0], model, size="quick", calls=2,
                                    progress=False)
        harness.write_results(records, tmp_path / name, {
            "command": f"run {name}", "model": "scripted", "calls": 2, "seeds": [0],
            "size": "quick", "machine": "test", "date": "today", "frameworks": [name]})
    harness.main(["--combine", str(tmp_path / "a"), str(tmp_path / "b"),
                  "--out", str(tmp_path / "all")])
    saved = json.loads((tmp_path / "all" / "results.json").read_text())
    assert {row["framework"] for row in saved["summary"]} == {"a", "b", "adam (reference)"}
    assert "run a ; run b" in (tmp_path / "all" / "results.md").read_text()
