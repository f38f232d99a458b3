"""Crash safety: SIGKILL mid-run then resume equals an uninterrupted run, nothing paid twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import backfeed as bf
import train_helpers as h
from backfeed.store import RunStore

HELPER = str(Path(h.__file__))
ROOT = Path(h.__file__).resolve().parents[1]


def _env(tmp: Path, tag: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])
    env["LLM_LOG"] = str(tmp / f"{tag}-llm.log")
    env["METRIC_LOG"] = str(tmp / f"{tag}-metric.log")
    env.update(extra)
    return env


def _lines(path: str) -> int:
    return sum(1 for _ in open(path)) if os.path.exists(path) else 0


def _history(store: RunStore, run_id: str) -> dict:
    """Everything a run decided, without timestamps."""
    return {
        "steps": [(s.step, s.parents, s.candidate, s.accepted, s.best_score)
                  for s in store.steps(run_id)],
        "candidates": [(c.id, c.values, c.parents, c.origin, c.status, c.val_scores)
                       for c in store.candidates(run_id)],
        "decisions": [(d.step, d.candidate_id, d.accepted, d.reason, d.parent_score,
                       d.child_score) for d in store.decisions(run_id)],
        "reports": [(r.step, r.seq, r.candidate_id, r.report.to_dict(), r.candidate_index, r.dot)
                    for r in store.step_reports(run_id)],
        "llm": sorted((c.step, c.request_hash, c.occurrence, c.answer)
                      for c in store.llm_calls(run_id)),
        "evaluations": sorted((e.values_hash, e.split, e.example_index, e.score)
                              for e in store.evaluations(run_id)),
    }


def _run(db: Path, env: dict[str, str], *args: str) -> dict:
    out = subprocess.run([sys.executable, HELPER, str(db), *args], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


# the uninterrupted run makes 5 model calls (an all-correct minibatch is replaced, not stepped)
@pytest.mark.parametrize("hang", ["HANG_LLM_AT=2", "HANG_METRIC_AT=27", "HANG_METRIC_AT=3", "HANG_LLM_AT=4"])
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path, hang):
    ref_env = _env(tmp_path, "ref")
    ref = _run(tmp_path / "ref.db", ref_env)

    key, at = hang.split("=")
    mark = tmp_path / "hanging"
    env = _env(tmp_path, "cut", **{key: at, "HANG_MARK": str(mark)})
    proc = subprocess.Popen([sys.executable, HELPER, str(tmp_path / "cut.db")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not mark.exists():
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "the run never reached the hanging call"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = RunStore(tmp_path / "cut.db")
    [killed] = store.list_runs()
    assert killed.status == "running"  # nothing ran after the kill
    assert -1 <= killed.step < 11  # -1: killed while validating the seed
    # work of the unfinished step was stored and must be reused, not paid again
    finished = store.steps(killed.id)
    since = finished[-1].finished_at if finished else 0.0
    in_flight = [e for e in store.evaluations(killed.id) if e.created_at > since]
    paid_before_resume = (_lines(env["LLM_LOG"]), _lines(env["METRIC_LOG"]))

    env.pop(key)
    resumed = _run(tmp_path / "cut.db", env, killed.id)
    assert resumed["run_id"] == killed.id
    assert resumed["best"] == ref["best"]

    ref_store = RunStore(tmp_path / "ref.db")
    assert _history(store, killed.id) == _history(ref_store, ref["run_id"])
    assert store.get_run(killed.id).status == "finished"
    # nothing paid twice: as many model calls and metric calls as the uninterrupted run
    assert _lines(env["LLM_LOG"]) == _lines(ref_env["LLM_LOG"]) > 0
    assert _lines(env["METRIC_LOG"]) == _lines(ref_env["METRIC_LOG"]) > 0
    assert store.get_run(killed.id).spend["calls"] == _lines(env["LLM_LOG"])
    assert in_flight or key == "HANG_LLM_AT"
    assert paid_before_resume[1] > 0  # the killed run had paid for work already


def test_stop_file_stops_after_writing_state_and_resume_finishes(tmp_path):
    db = tmp_path / "r.db"
    module = h.Router()
    data = h.dataset()
    stop = tmp_path / "STOP"
    calls = {"n": 0}

    def metric(example, output):
        calls["n"] += 1
        if calls["n"] == 20:
            stop.touch()
        return h.metric(example, output)

    opt = h.FixOptimizer(module.parameters(), llm=h.scripted())
    result = bf.train(module, data, metric=metric, optimizer=opt, strategy=bf.search.Pareto(),
                      steps=10, store=db, stop_file=stop, minibatch_size=2, progress=False)
    assert result.status == "stopped" and "stop file" in result.stop_reason
    run = RunStore(db).get_run(result.run_id)
    assert run.status == "stopped" and run.step == result.history[-1].step if result.history else True
    assert RunStore(db).run_state(result.run_id)["step"] == run.step
    stop.unlink()
    fresh = h.Router()
    again = bf.train(fresh, data, metric=metric, optimizer=h.FixOptimizer(
        fresh.parameters(), llm=h.scripted()), strategy=bf.search.Pareto(), steps=10,
        store=db, resume=result.run_id, minibatch_size=2, progress=False)
    assert again.status == "finished" and [s.step for s in again.history] == list(
        range(len(again.history)))  # 10 steps, or fewer when nothing is left to learn
    assert len(again.history) == 10 or again.stop_reason.startswith(("perfect", "nothing left"))


def test_sigint_stops_cleanly(tmp_path):
    module = h.Router()
    data = h.dataset()
    seen = {"n": 0}

    def metric(example, output):
        seen["n"] += 1
        if seen["n"] == 15:
            os.kill(os.getpid(), signal.SIGINT)
        return h.metric(example, output)

    opt = h.FixOptimizer(module.parameters(), llm=h.scripted())
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN in a shell's background job
    result = bf.train(module, data, metric=metric, optimizer=opt, steps=10,
                      store=tmp_path / "r.db", minibatch_size=2, progress=False)
    assert result.status == "stopped" and "Ctrl-C" in result.stop_reason
    assert signal.getsignal(signal.SIGINT) is before  # the run's own handler is gone
    assert RunStore(tmp_path / "r.db").get_run(result.run_id).status == "stopped"


def test_resume_refuses_a_changed_setup(tmp_path):
    db = tmp_path / "r.db"
    first = h.run(str(db), steps=2)
    with pytest.raises(ValueError, match="seed"):
        h.run(str(db), steps=4, seed=5, resume=first.run_id)
    with pytest.raises(KeyError, match="nope"):
        h.run(str(db), steps=4, resume="nope")


def test_a_run_killed_after_its_perfect_step_ends_on_resume_without_another_step(tmp_path):
    """Killed between the checkpoint of the step that found the best perfect and the end of
    the run (the verdict, closing the run): resume must not take one more step."""
    db = tmp_path / "r.db"
    first = h.run(str(db))
    assert first.stop_reason.startswith("perfect")
    store = RunStore(db)
    store.update_run(first.run_id, status="running")  # as a SIGKILL at that moment leaves it
    again = h.run(str(db), resume=first.run_id)
    assert again.status == "finished" and again.stop_reason.startswith("perfect")
    assert [s.step for s in again.history] == [s.step for s in first.history]
