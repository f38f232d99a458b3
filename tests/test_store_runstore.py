"""Tests for the run store: schema, WAL, default path, read API, concurrent readers."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from backfeed.store import RunStore, UnknownRun, default_store_path, values_hash


def test_default_path_honours_xdg_and_never_cwd(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_path() == tmp_path / "xdg" / "backfeed" / "runs.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_store_path() == tmp_path / "home" / ".local" / "share" / "backfeed" / "runs.db"
    monkeypatch.chdir(tmp_path)
    store = RunStore()
    assert store.path.is_relative_to(tmp_path / "home")
    assert not (tmp_path / "runs.db").exists()


def test_wal_mode_and_directory_path_error(tmp_path):
    store = RunStore(tmp_path / "r.db")
    db = sqlite3.connect(tmp_path / "r.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(IsADirectoryError, match="is a directory"):
        RunStore(tmp_path)
    store.close()


def _fill(store: RunStore) -> str:
    run = store.create_run({"strategy": "greedy", "seed": 0}, name="demo")
    values = {"x": 1.0}
    store.add_candidate(run, 0, step=-1, values=values, parents=[], origin="seed", status="accepted",
                        val_score=0.5, val_scores=[0.0, 1.0])
    store.add_candidate(run, 1, step=0, values={"x": 2.0}, parents=[0], origin="proposal")
    store.add_evaluation(run, candidate_id=0, values_hash=values_hash(values), split="val",
                         example_index=1, example="ex", output="3.0", score=1.0, feedback="ok",
                         details={"d": 1}, error=None, stdout="printed\n", seconds=0.01)
    store.add_llm_call(run, step=0, request_hash="h", occurrence=0, model="m",
                       messages=[{"role": "user", "content": "hi"}], options={"seed": 1},
                       answer="{}", prompt_tokens=3, completion_tokens=1, cost_usd=0.5,
                       cached=False, seconds=0.1)
    store.add_decision(run, step=0, candidate_id=1, accepted=False, reason="lost on minibatch",
                       parent_score=1.0, child_score=0.0)
    store.add_step_report(run, step=0, seq=0, candidate_id=1,
                          report={"updates": [{"name": "x", "proposed": 2.0}], "rejected": []})
    store.add_comparison(run, step=0, candidate_a=0, candidate_b=1, example_index=0, winner="a",
                         reason="shorter")
    store.checkpoint(run, step=0, parents=[0], candidate=1, accepted=False, best_score=0.5,
                     best_candidate=0, spend={"calls": 1}, state={"rng": [1, 2]}, started_at=0.0)
    return run


def test_read_api_round_trips_every_table(tmp_path):
    store = RunStore(tmp_path / "r.db")
    run = _fill(store)
    reader = RunStore(tmp_path / "r.db", readonly=True)  # as a dashboard would open it
    [info] = reader.list_runs()
    assert (info.id, info.name, info.status, info.step) == (run, "demo", "running", 0)
    assert info.config == {"strategy": "greedy", "seed": 0}
    assert info.spend == {"calls": 1} and info.best_candidate == 0
    assert reader.get_run(run) == info
    assert reader.run_state(run) == {"rng": [1, 2]}
    [step] = reader.steps(run)
    assert step.parents == [0] and step.candidate == 1 and step.accepted is False
    cands = reader.candidates(run)
    assert [c.id for c in cands] == [0, 1] and cands[1].parents == [0]
    assert cands[0].val_scores == [0.0, 1.0] and cands[0].values == {"x": 1.0}
    assert [c.id for c in reader.candidates(run, status="accepted")] == [0]
    assert reader.get_candidate(run, 1) == cands[1]
    assert [c.id for c in reader.lineage(run, 1)] == [0, 1]
    with pytest.raises(KeyError, match="no candidate 7"):
        reader.get_candidate(run, 7)
    [ev] = reader.evaluations(run, candidate_id=0)
    assert (ev.score, ev.stdout, ev.details, ev.split) == (1.0, "printed\n", {"d": 1}, "val")
    assert reader.find_evaluation(run, values_hash({"x": 1.0}), "val", 1) == ev
    assert reader.find_evaluation(run, values_hash({"x": 1.0}), "train", 1) is None
    [call] = reader.llm_calls(run)
    assert call.messages == [{"role": "user", "content": "hi"}] and call.cost_usd == 0.5
    assert reader.find_llm_call(run, 0, "h", 0) == call
    assert reader.find_llm_call(run, 0, "h", 1) is None
    [dec] = reader.decisions(run)
    assert dec.accepted is False and dec.reason == "lost on minibatch"
    [rep] = reader.step_reports(run)
    assert rep.report.updates[0].proposed == 2.0
    [cmp] = reader.comparisons(run)
    assert cmp.winner == "a"
    with pytest.raises(PermissionError, match="read-only"):
        reader.update_run(run, status="finished")
    with pytest.raises(FileNotFoundError, match="no run store"):
        RunStore(tmp_path / "missing.db", readonly=True)


def test_unknown_run_and_bad_fields_are_named(tmp_path):
    store = RunStore(tmp_path / "r.db")
    with pytest.raises(UnknownRun, match="nope"):
        store.get_run("nope")
    with pytest.raises(UnknownRun, match="nope"):
        store.update_run("nope", status="finished")
    run = store.create_run({})
    with pytest.raises(ValueError, match="unknown run field"):
        store.update_run(run, colour="red")
    with pytest.raises(ValueError, match="winner"):
        store.add_comparison(run, step=0, candidate_a=0, candidate_b=1, example_index=0,
                             winner="c", reason="")


def test_forget_after_keeps_paid_work(tmp_path):
    store = RunStore(tmp_path / "r.db")
    run = _fill(store)
    store.forget_after(run, -1)
    assert store.steps(run) == [] and store.decisions(run) == [] and store.step_reports(run) == []
    assert [c.id for c in store.candidates(run)] == [0]  # the seed (step -1) stays
    assert len(store.evaluations(run)) == 1 and len(store.llm_calls(run)) == 1


def test_readers_see_consistent_data_while_writing(tmp_path):
    path = Path(tmp_path / "r.db")
    store = RunStore(path)
    run = store.create_run({})
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        reader = RunStore(path, readonly=True)
        try:
            while not done.is_set():
                indexes = [e.example_index for e in reader.evaluations(run)]
                assert indexes == list(range(len(indexes)))  # a prefix, never a torn write
                reader.list_runs()
        except BaseException as e:  # collected and re-raised in the test thread
            errors.append(e)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(200):
        store.add_evaluation(run, candidate_id=0, values_hash="v", split="train",
                             example_index=i, example=None, output=None, score=float(i),
                             feedback="", stdout="")
    done.set()
    for t in threads:
        t.join()
    assert not errors
    assert [e.example_index for e in store.evaluations(run)] == list(range(200))


def test_mlflow_export_needs_the_extra_and_logs_a_run(tmp_path, monkeypatch):
    import sys

    from backfeed.store import export_mlflow

    store = RunStore(tmp_path / "r.db")
    run = _fill(store)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ImportError, match=r"backfeed\[mlflow\]"):
        export_mlflow(store, run)
    monkeypatch.undo()
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow_id = export_mlflow(store, run, tracking_uri=f"file://{tmp_path / 'mlruns'}")
    logged = mlflow.get_run(mlflow_id)
    assert logged.data.params["strategy"] == "greedy"
    assert logged.data.metrics["best_score"] == 0.5


def test_every_record_field_is_a_column_of_its_table(tmp_path):
    import dataclasses

    from backfeed.store import runstore

    store = RunStore(tmp_path / "r.db")
    db = sqlite3.connect(tmp_path / "r.db")
    tables = {
        "runs": runstore.RunRecord, "steps": runstore.StepRecord,
        "candidates": runstore.CandidateRecord, "evaluations": runstore.EvaluationRecord,
        "llm_calls": runstore.LLMCallRecord, "decisions": runstore.DecisionRecord,
        "step_reports": runstore.StepReportRecord, "comparisons": runstore.ComparisonRecord,
    }
    for table, record in tables.items():
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        assert {f.name for f in dataclasses.fields(record)} <= columns, table
        assert columns - {f.name for f in dataclasses.fields(record)} <= {"state"}, table
    store.close()


def test_records_are_read_by_column_name_not_position(tmp_path):
    path = tmp_path / "r.db"
    db = sqlite3.connect(path)  # the same columns as the store's, in another order
    db.execute(
        "CREATE TABLE decisions (reason TEXT NOT NULL, created_at REAL NOT NULL, "
        "child_score REAL, parent_score REAL, accepted INTEGER NOT NULL, "
        "candidate_id INTEGER NOT NULL, step INTEGER NOT NULL, run_id TEXT NOT NULL, "
        "PRIMARY KEY (run_id, step, candidate_id))"
    )
    db.commit()
    db.close()
    store = RunStore(path)
    run = store.create_run({})
    store.add_decision(run, step=2, candidate_id=5, accepted=True, reason="better",
                       parent_score=0.25, child_score=0.75)
    [decision] = store.decisions(run)
    assert (decision.step, decision.candidate_id, decision.accepted, decision.reason,
            decision.parent_score, decision.child_score) == (2, 5, True, "better", 0.25, 0.75)
    store.close()


def _call(store: RunStore, run: str, occurrence: int, **extra) -> None:
    store.add_llm_call(run, step=0, request_hash="h", occurrence=occurrence, model="m",
                       messages=[{"role": "user", "content": "q"}], options={}, answer="a",
                       prompt_tokens=3, completion_tokens=2, cost_usd=0.0, cached=False,
                       seconds=0.1, **extra)


def test_llm_calls_record_their_role_and_an_old_store_gains_the_column(tmp_path):
    path = tmp_path / "old.db"
    store = RunStore(path)
    run = store.create_run({})
    store.close()
    db = sqlite3.connect(path)  # make it a schema-1 store: llm_calls without role
    db.execute("ALTER TABLE llm_calls DROP COLUMN role")
    db.execute("INSERT INTO llm_calls (run_id, step, request_hash, occurrence, model, messages, "
               "options, answer, prompt_tokens, completion_tokens, cost_usd, cached, seconds, "
               "created_at) VALUES (?, 0, 'old', 0, 'm', '[]', '{}', 'a', 1, 1, 0, 0, 0, 0)",
               (run,))
    db.commit()
    db.close()
    assert RunStore(path, readonly=True).llm_calls(run)[0].role == "optimizer"

    store = RunStore(path)  # a writer migrates it
    _call(store, run, 1, role="program")
    _call(store, run, 2, role="judge")
    assert [c.role for c in store.llm_calls(run)] == ["optimizer", "program", "judge"]
    assert [c.occurrence for c in store.llm_calls(run, role="program")] == [1]
    with pytest.raises(ValueError, match="role must be one of"):
        _call(store, run, 3, role="user")
    store.close()
