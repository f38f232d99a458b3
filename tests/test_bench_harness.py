"""The benchmark harness: runs adapters on tasks with one model and writes JSON, table and plot."""

from __future__ import annotations

import json

import pytest
from benchmarks import run as harness
from benchmarks.adapters import RunContext, set_values
from benchmarks.tasks import make_task

import backfeed as bf
from bench_helpers import repair_responder

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


def _record(task, framework, seed, score, curve, call_tokens=(), start=0.0):
    return harness.RunRecord(task, framework, seed, "ok", test_score=score, start_score=start,
                             optimizer_calls=len(call_tokens), curve=curve,
                             call_tokens=[list(t) for t in call_tokens],
                             prompt_tokens=sum(t[0] for t in call_tokens[-1:]) + 7,
                             optimizer_prompt_tokens=sum(t[0] for t in call_tokens[-1:]))


def test_reach_gives_calls_and_tokens_until_a_library_first_meets_the_best_peer():
    records = [
        # the best peer ends at 0.75 (mean of its seeds)
        _record("code_repair", "gepa", 0, 1.0, [(0, 0.0), (2, 1.0)], [(100, 0), (200, 0)]),
        _record("code_repair", "gepa", 1, 0.5, [(0, 0.0), (1, 0.5), (1, 1.0)], [(90, 0)]),
        _record("code_repair", "trace", 0, 0.0, [(0, 0.0), (1, 0.0)], [(500, 0)]),
        # backfeed: its evaluations at call 1 average 0.75, so it reaches at call 1
        _record("code_repair", "backfeed", 0, 1.0, [(0, 0.0), (1, 0.5), (1, 1.0)],
                [(40, 3), (80, 6)]),
    ]
    rows = {r["framework"]: r for r in harness.reach(records)}
    assert rows["backfeed"]["target"] == 0.75 and rows["backfeed"]["best_peer"] == "gepa"
    assert (rows["backfeed"]["calls"], rows["backfeed"]["optimizer_tokens"],
            rows["backfeed"]["program_tokens"]) == (1, 40, 3)
    assert rows["gepa"]["reached"] == 2 and rows["gepa"]["calls"] == 1.5
    assert rows["gepa"]["optimizer_tokens"] == 145  # (200 + 90) / 2
    assert rows["trace"]["reached"] == 0 and "calls" not in rows["trace"]
    table = harness.reach_table(harness.reach(records))
    assert "| code_repair | trace | 0.750 (gepa) | 0/1 | - | - | - |" in table
    assert "| code_repair | backfeed | 0.750 (gepa) | 1/1 | 1.0 | 40 | 3 |" in table


def test_results_split_optimizer_and_program_tokens_and_add_a_family_table(tmp_path):
    records = [
        _record("code_repair/median", "gepa", 0, 1.0, [(0, 0.0), (1, 1.0)], [(100, 20)]),
        _record("code_repair/sum_to", "gepa", 0, 0.0, [(0, 0.0), (1, 0.0)], [(100, 20)]),
    ]
    for r in records:
        r.prompt_tokens, r.completion_tokens = 150, 30  # optimizer 100 + 10, program 50 + 20
        r.optimizer_prompt_tokens, r.optimizer_completion_tokens = 100, 10
    assert records[0].optimizer_tokens == 110 and records[0].program_tokens == 70
    table = harness.write_results(records, tmp_path, {
        "command": "test", "model": "scripted", "calls": 1, "seeds": [0], "size": "quick",
        "machine": "test", "date": "today"})
    assert "| code_repair/median | gepa | 1.000 ± 0.000 | 0.000 | 1.0 | 0.0 | 110 (100) | 70 |" \
        in table
    assert "By family" in table and "| code_repair | gepa | 0.500 ± 0.707 |" in table
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["families"][0]["runs"] == 2 and saved["reach"]


def test_code_repair_runs_for_backfeed_through_the_harness_and_logs_tokens_per_call():
    model = harness.scripted_model(bf.llm.Scripted([repair_responder] * 20))
    (record,) = [r for r in harness.run_suite(["code_repair/sum_to"], ["backfeed"], [0], model,
                                               size="quick", calls=3, progress=False)]
    assert record.status == "ok", record.reason
    assert record.start_score == 0 and record.test_score == 1.0
    assert len(record.call_tokens) == record.optimizer_calls >= 1
    assert record.call_tokens[-1][0] == record.optimizer_tokens > 0


def test_framework_options_reach_the_adapter_and_unknown_ones_are_refused(monkeypatch):
    seen = []

    class Recording(FakeAdapter):
        def optimize(self, ctx):
            seen.append(ctx.options)

    monkeypatch.setattr(harness, "get_adapter", lambda name: Recording())
    model = harness.scripted_model(bf.llm.Scripted([]))
    record = harness.run_one("numeric", "fake:candidates=4", 0, model, size="quick", calls=1,
                             max_tokens=64, start_score=None)
    assert seen == [{"candidates": "4"}] and record.framework == "fake:candidates=4"
    assert not harness.is_peer("backfeed:candidates=4") and harness.is_peer("gepa")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="gepa takes no option candidates"):
        harness.main(["--frameworks", "gepa:candidates=4", "--tasks", "numeric"])
    with pytest.raises(ValueError, match="not key=value"):
        harness.main(["--frameworks", "backfeed:candidates", "--tasks", "numeric"])


def test_backfeed_candidates_option_asks_prime_for_several_answers_per_step(monkeypatch):
    made = []

    class Recording(bf.optim.Prime):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(bf.optim.hybrid, "Prime", Recording)  # the adapter uses bf.optim.auto
    model = harness.scripted_model(bf.llm.Scripted([repair_responder] * 20))
    (record,) = harness.run_suite(["code_repair/sum_to"], ["backfeed:candidates=2"], [0], model,
                                  size="quick", calls=2, progress=False)
    assert record.status == "ok", record.reason
    assert record.framework == "backfeed:candidates=2" and record.test_score == 1.0
    assert [opt.candidates for opt in made] == [2]
    assert record.optimizer_calls == 2 and len(record.call_tokens) == 2


def test_a_separate_program_model_answers_the_programs_and_the_reference_is_scored():
    from benchmarks.tasks.conventions import FAMILIES

    task = make_task("convention/labels", 0)
    truth = dict(task.trainset + task.valset + task.testset)

    def student(messages, options):  # right only when the instruction names the labels
        knows = "LOCKOUT" in messages[0]["content"]
        return truth[messages[-1]["content"]] if knows else "billing"

    reference = FAMILIES["labels"]["reference"]
    teacher = bf.llm.Scripted([json.dumps({"suggestion": {"instruction": reference}})] * 12)
    model = harness.dataclasses.replace(harness.scripted_model(teacher),
                                        program=bf.llm.Scripted([student] * 400))
    run, ref = harness.run_suite(["convention/labels"], ["backfeed"], [0], model, size="quick",
                                 calls=2, progress=False)
    assert run.status == "ok", run.reason
    assert run.start_score == 0.0 and run.test_score == 1.0
    assert run.optimizer_calls >= 1 and run.program_calls > 0
    assert len(teacher.calls) == run.optimizer_calls  # the teacher only optimized
    assert ref.framework == "reference instruction" and ref.test_score == 1.0
