"""The store and dashboard under load: no torn read while a run writes, no locked database.

The long version (2,000 steps, 8 readers; 50 dashboard clients) is
`python -m benchmarks.reliability.store_load`; RELIABILITY.md quotes it.
"""

from __future__ import annotations

import time

from benchmarks.reliability import store_load

from backfeed.store import RunStore
from backfeed.ui.views import RunReader


def _step(store: RunStore, run_id: str, step: int) -> None:
    store.add_candidate(run_id, step + 1, step=step, values={"p": str(step)}, parents=[step],
                        origin="proposal", status="accepted", val_score=1.0, val_scores=[1.0])
    store.checkpoint(run_id, step=step, parents=[step], candidate=step + 1, accepted=True,
                     best_score=1.0, best_candidate=step + 1, spend={}, state={},
                     started_at=time.time())


def test_a_run_page_is_one_snapshot_even_when_a_step_lands_between_its_queries(tmp_path):
    writer = RunStore(tmp_path / "runs.db")
    run_id = writer.create_run({"strategy": "Pareto"})
    writer.add_candidate(run_id, 0, step=-1, values={"p": "seed"}, parents=[], origin="seed",
                         status="accepted", val_score=0.0, val_scores=[0.0])
    _step(writer, run_id, 0)
    with RunReader(tmp_path / "runs.db") as reader:
        before = reader.run_detail(run_id)
        _step(writer, run_id, 1)  # committed while the page is being read
        after = reader.run_detail(run_id)
        assert store_load._torn(after) is None
        assert len(after["steps"]) == len(before["steps"]) == after["run"]["steps"] == 1
    with RunReader(tmp_path / "runs.db") as reader:  # the next page sees the new step
        assert reader.run_detail(run_id)["run"]["steps"] == 2


def test_readers_poll_a_writing_run_with_no_lock_error_and_no_torn_read(tmp_path):
    row = store_load.readers_under_load(tmp_path, steps=150, readers=4)
    assert row["reads"] >= 4
    assert row["database_is_locked"] == 0 and row["reader_errors"] == 0
    assert row["writer_errors"] == 0 and row["torn_reads"] == 0, row["torn_examples"]
