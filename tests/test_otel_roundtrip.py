"""Issue 21, item 4: a deployed app nobody here wrote (the official openai client under the
official OpenTelemetry OpenAI instrumentation) talks to `backfeed serve-model`, sends its spans
and log events to `backfeed collect`, rates its answers with `bf.feedback`; backfeed ingests
them, optimizes the app's system prompt, exports it, and the app runs again with it.
The gain is measured in BENCHMARKS.md (`python -m benchmarks.otel_roundtrip`)."""

from __future__ import annotations

import json

import pytest
from benchmarks.otel_roundtrip import SEED_PROMPT, run

pytestmark = pytest.mark.local


@pytest.mark.timeout(900)  # two model servers and 30 requests on a busy 2-core machine
def test_a_deployed_app_is_optimized_from_its_own_traces_and_runs_with_the_export(tmp_path):
    pytest.importorskip("opentelemetry.instrumentation.openai_v2")
    row = run(tmp_path, requests=20, held_out=4, steps=1, optimizer="qwen2.5-coder-0.5b")
    assert row["requests"] == 20 and row["examples"] == 20 and row["with_feedback"] == 20
    assert row["ingest"].startswith("40 spans read, 20 model calls, 0 skipped")
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert all(c["system"] == SEED_PROMPT and c["input"] and c["output"] for c in calls)
    # what the app ran with on the held-out requests is what backfeed exported
    exported = (tmp_path / "deploy" / "system_prompt.txt").read_text()
    assert (tmp_path / "after-system.txt").read_text() == exported == row["exported_prompt"]
    answers = (tmp_path / "after-answers.jsonl").read_text().splitlines()
    assert len(answers) == 4 and 0.0 <= row["held_out_after"] <= 1.0
