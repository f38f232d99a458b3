"""Read-only views over the run store: run resolution, Pareto wins, diffs, values over time."""

from __future__ import annotations

import sqlite3

import pytest

from _ui_store import make_run
from backfeed.ui.views import NotFound, RunReader, StoreMissing, pareto_wins, text_diff


def test_pareto_wins_gives_each_example_to_its_best_candidates_ties_shared():
    cands = [{"id": 0, "scores": [1.0, 0.0, 0.5]}, {"id": 1, "scores": [0.0, 1.0, 0.5]}, {"id": 2, "scores": None}]
    assert pareto_wins(cands) == {"examples": [0, 1, 2], "wins": {"0": [0, 2], "1": [1, 2]}}
    assert pareto_wins([{"id": 0, "scores": None}]) is None


def test_text_diff_of_strings_and_structures():
    assert text_diff("a\nb", "a\nc")[-2:] == ["-b", "+c"]
    assert text_diff({"k": 1}, {"k": 1}) == []
    assert '+  "k": 2' in text_diff({"k": 1}, {"k": 2})


def test_reader_resolves_runs_and_reads_values_over_time(tmp_path):
    path = tmp_path / "runs.db"
    first = make_run(path, name="one")
    second = make_run(path, name="two", strategy="Greedy", finish=False)
    with RunReader(path) as r:
        assert r.resolve("latest") == second and r.resolve("one") == first
        with pytest.raises(NotFound, match="ambiguous"):
            r.resolve(first[:2])  # both ids start with the date
        assert r.values_at(first, "seed") == (0, {"x": 1.0, "system_prompt": "Answer briefly."})
        assert r.values_at(first, "best")[1]["x"] == 3.0
        assert r.values_at(first, 1)[0] == 2  # the candidate step 1 proposed, though it was not kept
        with pytest.raises(NotFound, match="has no step 7"):
            r.values_at(first, 7)
        detail = r.run_detail(second)
        assert detail["run"]["status"] == "running" and detail["pareto"] is None  # not a Pareto run
        assert [p["llm_calls"] for p in detail["evaluations"]] == [0, 1, 2, 3]
    with pytest.raises(StoreMissing, match="no run store at"):
        RunReader(tmp_path / "missing.db")
    (tmp_path / "other.db").write_bytes(b"")
    with pytest.raises(StoreMissing, match="not a backfeed run store"):
        RunReader(tmp_path / "other.db")


def test_reader_never_writes(tmp_path):
    path = tmp_path / "runs.db"
    make_run(path)
    before = path.stat().st_mtime_ns, path.stat().st_size
    with RunReader(path) as r:
        with pytest.raises(sqlite3.OperationalError, match=r"readonly"):
            r.db.execute("DELETE FROM runs")
    assert (path.stat().st_mtime_ns, path.stat().st_size) == before
