"""Issue 21: a backfeed run's spans show up in a receiver a user runs (MLflow's tracking
server, its OTLP endpoint), checked by asking MLflow for them."""

from __future__ import annotations

import shutil

import pytest
from benchmarks.otel_mlflow import run


@pytest.mark.timeout(300)
def test_a_runs_spans_reach_mlflows_tracking_server_nested_as_they_were(tmp_path):
    assert shutil.which("mlflow"), "the test extra installs mlflow (the server)"
    row = run(tmp_path)
    assert row["traces"] == 1  # one trace: the run, its steps, evaluations and calls inside
    names = row["span_names"]
    assert "backfeed.run router" in names
    assert {"backfeed.step 0", "backfeed.step 1", "backfeed.step 2"} <= set(names)
    assert any(n.startswith("backfeed.evaluate ") for n in names)
    assert row["model_calls"] == row["spend_calls"] > 0
