"""The trainer: forward/metric contract, errors and console output as feedback, store contents."""

from __future__ import annotations

import pytest

import backfeed as bf
import train_helpers as h
from backfeed.train import MetricError


def _opt(module, llm=None):
    return h.FixOptimizer(module.parameters(), llm=llm or h.scripted())


def test_train_returns_best_loads_it_and_records_everything(tmp_path):
    module = h.Router()
    data = h.dataset()
    result = bf.train(module, data, data, metric=h.metric, optimizer=_opt(module),
                      strategy=bf.search.Pareto(), steps=12, store=tmp_path / "r.db",
                      minibatch_size=2, progress=False, name="router")
    assert module.state_dict() == result.best_values
    assert result.best_score == pytest.approx(1.0)
    # every step up to the one that found the best perfect on a minibatch too, then it finished
    assert [s.step for s in result.history] == list(range(len(result.history)))
    assert len(result.history) <= 12 and result.stop_reason.startswith("perfect: ")
    store = result.store
    run = store.get_run(result.run_id)
    assert run.name == "router" and run.status == "finished" and run.best_candidate == result.best_candidate
    assert run.config["strategy"]["name"] == "pareto" and run.config["seed"] == 0
    cands = store.candidates(result.run_id)
    assert cands[0].origin == "seed" and cands[0].parents == []
    assert any(c.origin == "merge" and len(c.parents) == 2 for c in cands)
    assert {c.status for c in cands} <= {"accepted", "rejected"}
    accepted = [c for c in cands if c.status == "accepted"]
    assert all(c.val_scores is not None and len(c.val_scores) == len(data) for c in accepted)
    reports = store.step_reports(result.run_id)
    assert reports and all(isinstance(r.report, bf.optim.StepReport) for r in reports)
    assert any(r.report.answers for r in reports)
    dots = [r.dot for r in reports if r.dot]
    assert dots and all(d.startswith("digraph backfeed {") for d in dots)  # the dashboard's graph
    decisions = store.decisions(result.run_id)
    assert any(d.accepted for d in decisions) and any(not d.accepted for d in decisions)
    assert all(d.reason for d in decisions)
    assert len(store.llm_calls(result.run_id)) == result.spend["calls"]


def test_forward_override_and_list_examples(tmp_path):
    module = h.Router()
    seen = []

    def forward(m, example):
        seen.append(example)
        return m(example["kind"])

    data = [{"kind": k} for k in "abc"]
    bf.train(module, data, metric=lambda ex, out: h.metric((ex["kind"],), out),
             optimizer=_opt(module), steps=1, forward=forward, store=tmp_path / "r.db",
             minibatch_size=1, progress=False)
    assert seen and all(isinstance(e, dict) for e in seen)

    got = []
    module = h.Router()
    bf.train(module, [["a", "extra"]], metric=lambda ex, out: got.append(out) or 1.0,
             optimizer=_opt(module), steps=1, store=tmp_path / "r.db", progress=False)
    assert got == ["start"]  # module(example[0]) and the metric sees the plain value


class Fragile(bf.Module):
    def __init__(self) -> None:
        self.divisor = bf.param(0, name="divisor")

    def forward(self, x: int):
        return divide(x, self.divisor)


@bf.op
def divide(x: int, d: int) -> float:
    """x / d."""
    return x / d


def test_errors_and_console_output_become_feedback(tmp_path):
    # an op that raises: ExecutionError -> backward on its error node -> the optimizer sees it
    module = Fragile()
    llm = bf.llm.Scripted(['{"suggestion": {"divisor": 2}}'])
    opt = h.FixOptimizer(module.parameters(), llm=llm)
    result = bf.train(module, [4, 6], metric=lambda ex, out: float(out == ex / 2), optimizer=opt,
                      steps=1, store=tmp_path / "r.db", progress=False)
    prompt = llm.calls[0].messages[-1]["content"]
    assert "The program raised ZeroDivisionError" in prompt
    evs = result.store.evaluations(result.run_id, candidate_id=0)
    assert all(e.error and "ZeroDivisionError" in e.error and e.score == 0.0 for e in evs)
    assert result.best_values == {"divisor": 2} and result.best_score == 1.0

    # print() inside the program is captured per evaluation and shown as feedback
    module = h.Router()
    llm = h.scripted()
    data = [("loud", 0), ("boom", 1)]
    result = bf.train(module, data, metric=h.metric, optimizer=_opt(module, llm), steps=1,
                      store=tmp_path / "r.db", progress=False)
    evs = {e.example_index: e for e in result.store.evaluations(result.run_id, candidate_id=0)}
    assert evs[0].stdout == "routing a loud example\n" and "Console output" in evs[0].feedback
    assert evs[1].error == "RuntimeError: kind boom is not supported"
    assert "routing a loud example" in llm.calls[0].messages[-1]["content"]


def test_bad_arguments_name_the_problem(tmp_path):
    module = h.Router()
    opt = _opt(module)
    data = h.dataset()
    common = {"store": tmp_path / "r.db", "steps": 1, "progress": False}
    with pytest.raises(ValueError, match="trainset is empty"):
        bf.train(module, [], metric=h.metric, optimizer=opt, **common)
    with pytest.raises(ValueError, match="needs metric"):
        bf.train(module, data, optimizer=opt, **common)
    with pytest.raises(ValueError, match="minibatch_size"):
        bf.train(module, data, metric=h.metric, optimizer=opt, minibatch_size=0, **common)
    with pytest.raises(TypeError, match="Optimizer"):
        bf.train(module, data, metric=h.metric, optimizer="prime", **common)
    with pytest.raises(ValueError, match="not both"):
        bf.train(module, data, metric=h.metric, optimizer=opt, run_dir=tmp_path, steps=1,
                 store=tmp_path / "x.db")
    with pytest.raises(MetricError, match="got str for example"):
        bf.train(module, data, metric=lambda ex, out: "good", optimizer=opt, **common)
    with pytest.raises(MetricError, match="metric raised on example"):
        bf.train(module, data, metric=lambda ex, out: 1 / 0, optimizer=opt, **common)
    failed = bf.store.RunStore(tmp_path / "r.db").list_runs(status="failed")
    assert failed and "MetricError" in failed[0].stop_reason


def test_run_dir_and_default_store(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    module = h.Router()
    result = bf.train(module, h.dataset(), metric=h.metric, optimizer=_opt(module), steps=1,
                      progress=False)
    assert result.store.path == tmp_path / "xdg" / "backfeed" / "runs.db"
    result = bf.train(module, h.dataset(), metric=h.metric, optimizer=_opt(module), steps=1,
                      run_dir=tmp_path / "runs", progress=False)
    assert result.store.path == tmp_path / "runs" / "runs.db"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "xdg"]
    monkeypatch.setenv("BACKFEED_STORE", str(tmp_path / "env.db"))  # what `backfeed run` sets
    result = bf.train(module, h.dataset(), metric=h.metric, optimizer=_opt(module), steps=1,
                      progress=False)
    assert result.store.path == tmp_path / "env.db"


def test_progress_bar_renders(tmp_path, capsys):
    module = h.Router()
    bf.train(module, h.dataset(), metric=h.metric, optimizer=_opt(module), steps=2,
             store=tmp_path / "r.db", progress=True)
    err = capsys.readouterr().err
    assert "step 2/2" in err and "best" in err and "calls" in err


def test_a_run_finishes_when_validation_and_a_minibatch_are_perfect(tmp_path):
    """No model call can improve values that score 1 everywhere: the run ends without
    spending the rest of its call budget (it has no step limit here)."""
    from train_helpers import FixOptimizer, Router, dataset, metric, scripted

    module = Router()
    data = dataset(2, ("a",))
    llm = scripted()
    opt = FixOptimizer(module.parameters(), llm=llm)
    result = bf.train(module, data, data, metric=metric, optimizer=opt,
                      budget=bf.Budget(llm_calls=20), store=tmp_path / "runs.db",
                      minibatch_size=2, progress=False)
    assert result.status == "finished" and result.stop_reason.startswith("perfect: ")
    assert result.best_score == 1.0 and len(llm.calls) == 1
    assert module.pa.value == "right-a"
    # scores that are not all 1 keep it going until its budget
    module2, llm2 = Router(), scripted()
    result2 = bf.train(module2, dataset(2, ("a", "b")), dataset(2, ("a", "b", "c")),
                       metric=metric, optimizer=FixOptimizer(module2.parameters(), llm=llm2),
                       budget=bf.Budget(llm_calls=4), store=tmp_path / "runs2.db",
                       minibatch_size=2, progress=False)
    assert result2.stop_reason.startswith("llm_calls") and len(llm2.calls) == 4
