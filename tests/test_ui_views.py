"""Read-only views over the run store: run resolution, Pareto wins, diffs, values over time."""

from __future__ import annotations

import sqlite3

import pytest

from _ui_store import make_run
from backfeed.ui.views import NotFound, RunReader, StoreMissing, pareto_view, text_diff


def test_pareto_view_gives_each_example_to_its_best_candidates_ties_shared():
    scores = {0: [1.0, 0.0, 0.5], 1: [0.0, 1.0, 0.5], 2: None}
    assert pareto_view(scores) == {"examples": [0, 1, 2], "front_size": 2,
                                   "wins": {"0": [0, 2], "1": [1, 2]}}
    assert pareto_view({0: None}) is None


def test_the_dashboard_and_the_trainer_see_the_same_pareto_front(tmp_path):
    from backfeed.store import RunStore
    from backfeed.train.search import Candidate, pareto_front

    scores = {0: [0.5, 0.5, 0.5], 1: [1.0, 0.2, 0.5], 2: [0.2, 1.0, 0.5 + 1e-12],
              3: [1.0, 0.2, 0.4], 4: [0.9, 0.9, 0.1]}  # 3 is dominated by 1; 2 ties 0 and 1 on #2
    store = RunStore(tmp_path / "r.db")
    run = store.create_run({"strategy": "pareto"})
    for cid, s in scores.items():
        store.add_candidate(run, cid, step=cid - 1, values={"x": cid}, parents=[], origin="seed",
                            val_score=sum(s) / 3, val_scores=s)
    store.close()
    trainer = pareto_front([Candidate(cid, {"x": cid}, val_scores=s) for cid, s in scores.items()])
    with RunReader(tmp_path / "r.db") as r:
        wins = r.run_detail(run)["pareto"]["wins"]
    assert {int(k): len(v) for k, v in wins.items()} == trainer
    assert trainer == {0: 1, 1: 2, 2: 2}  # 3 is dominated by 1; 4 wins no example
    assert wins["2"] == [1, 2] and wins["0"] == [2]  # a tie within EPS is shared


def test_the_step_graph_is_the_one_stored_with_the_step_not_parsed_from_the_prompt(tmp_path):
    import backfeed as bf
    from backfeed.store import RunStore

    x = bf.param(1.0, name="x")
    y = x + 1
    y.backward("more")
    store = RunStore(tmp_path / "r.db")
    run = store.create_run({})
    trace = bf.render([x]).text
    prompt = [[{"role": "user", "content": trace}]]
    store.add_step_report(run, step=0, seq=0, candidate_id=1, dot=bf.to_dot([x]),
                          report=bf.optim.StepReport(step=0, prompts=prompt))
    store.add_step_report(run, step=1, seq=0, candidate_id=2,  # the prompt alone: no graph
                          report=bf.optim.StepReport(step=1, prompts=prompt))
    store.close()
    with RunReader(tmp_path / "r.db") as r:
        assert r.step_dot(run, 0) == bf.to_dot([x])
        assert r.step_detail(run, 0)["has_graph"] and not r.step_detail(run, 1)["has_graph"]
        with pytest.raises(NotFound, match="no trace graph"):
            r.step_dot(run, 1)


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
        assert r.store.readonly
        with pytest.raises(sqlite3.OperationalError, match=r"readonly"):
            r.store._db().execute("DELETE FROM runs")
    assert (path.stat().st_mtime_ns, path.stat().st_size) == before


def test_a_score_curve_keeps_every_new_best_and_spreads_the_rest():
    from backfeed.ui.views import score_curve

    points = [{"id": i, "score": s} for i, s in enumerate([0.1, 0.5, 0.2, 0.2, 0.6, 0.1, 0.1, 0.9, 0.3, 0.3])]
    kept = score_curve(points, 5)
    assert [p["id"] for p in kept][:1] == [0] and {1, 4, 7} <= {p["id"] for p in kept}
    assert len(kept) <= 5 and kept == sorted(kept, key=lambda p: p["id"])
    rising = [{"id": i, "score": float(i)} for i in range(100)]
    assert len(score_curve(rising, 10)) == 10 and score_curve(rising, 10)[-1]["id"] == 99
    assert score_curve(points, None) == points == score_curve(points, 10)


def test_the_front_read_in_sqlite_is_the_rule_applied_to_every_candidate(tmp_path):
    from backfeed.store import RunStore, pareto_wins

    scores = {0: [0.5, 0.5, 0.9], 1: [1.0, 0.2], 2: [0.2, 1.0, 0.0], 3: [0.1, 0.1], 4: [], 5: None,
              6: [1.0, 0.2 - 1e-12, 1.0]}  # 6 ties 1 within EPS on both examples both have
    store = RunStore(tmp_path / "r.db")
    run = store.create_run({"strategy": "pareto"})
    for cid, s in scores.items():
        store.add_candidate(run, cid, step=cid, values={"x": cid}, parents=[], origin="proposal",
                            val_scores=s)
    front = store.front_scores(run)
    assert set(front) == {1, 2, 6} and all(len(s) == 2 for s in front.values())
    assert pareto_wins(front) == pareto_wins(scores)


def test_a_front_of_many_ties_is_listed_up_to_a_bound_and_counted_whole():
    from backfeed.ui.views import MAX_FRONT

    scores = {cid: [1.0, 0.5] for cid in range(1000)} | {1000: [0.0, 1.0], 1001: [0.2, 0.2]}
    view = pareto_view(scores, MAX_FRONT)
    assert view["front_size"] == 1001 and len(view["wins"]) == MAX_FRONT
    assert view["wins"]["999"] == [0] and view["wins"]["1000"] == [1]  # newest ties, and 1000


def test_a_change_no_report_update_names_still_shows_with_its_old_and_new_value(tmp_path):
    import backfeed as bf
    from backfeed.optim import Optimizer

    class Sampler(Optimizer):
        """Proposes a rate as a candidate without an update entry, as Hybrid's sampler does."""

        def _step(self, report):
            report.candidates = [{"rate": 0.2}]

    class Tax(bf.Module):
        def __init__(self):
            self.rate = bf.param(0.1, name="rate")

        def forward(self, amount):
            return self.rate * amount

    module = Tax()
    result = bf.train(module, [10.0, 20.0], metric=lambda ex, out: float(abs(out - ex * 0.2) < 1e-9),
                      optimizer=Sampler(module.parameters(), llm=bf.llm.Scripted([])), steps=1,
                      store=tmp_path / "r.db", progress=False)
    with RunReader(tmp_path / "r.db") as reader:
        (row,) = [r for r in reader.run_detail(result.run_id)["steps"] if r["step"] >= 0]
        assert row["summary"] == "changed rate"
        (update,) = reader.step_detail(result.run_id, row["step"])["updates"]
        assert (update["name"], update["old"], update["new"], update["applied"]) == \
            ("rate", 0.1, 0.2, True)
