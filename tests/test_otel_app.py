"""Optimize a recorded app: ingest its spans, train its system prompt, export it as a file."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import backfeed as bf
import backfeed.otel as otel
from backfeed.cli import app

FIXTURE = Path(__file__).parent / "fixtures" / "otel" / "genai_spans.json"


def test_the_traces_system_prompt_is_trained_on_the_recorded_turns_and_exported(tmp_path):
    records, _ = otel.ingest(FIXTURE)
    program, examples = otel.recorded_app(records)
    assert program.system_prompt.value.startswith("You are a support agent for Acme")
    assert [e["input"] for e in examples][:2] == ["How do I reset my password?",
                                                  "Can I get a refund after 40 days?"]
    assert examples[1]["score"] == 0.0 and examples[1]["feedback"] == "thumbs down"

    def replayed(messages, options):  # the app's model: it follows a refund rule when told one
        system, user = messages[0]["content"], messages[-1]["content"]
        if "refund" in user.lower():
            return "Refunds are possible within 30 days." if "30 days" in system else "Yes, always."
        return "Click 'Forgot password' on the login page."

    def metric(example, output):
        if "refund" in example["input"].lower():
            ok = "30 days" in output
            return bf.Feedback(score=float(ok), text="correct" if ok else
                               "refunds are possible within 30 days only")
        return 1.0

    better = ("You are a support agent for Acme. Answer in one sentence. Refunds are possible "
              "within 30 days.")
    optimizer = bf.optim.Prime(program.parameters(), llm=bf.llm.Scripted(
        [f"### system_prompt\n```text\n{better}\n```"] * 3))
    store = tmp_path / "runs.db"
    result = bf.train(program, examples, metric=metric, optimizer=optimizer, steps=2,
                      store=store, progress=False, program_llm=bf.llm.Scripted([replayed] * 50),
                      testset=examples)
    assert result.best_values["system_prompt"] == better
    assert result.verdict.seed_score < result.verdict.best_score == 1.0
    out = tmp_path / "deploy"
    done = CliRunner().invoke(app, ["export", result.run_id, "--to", "files", "-o", str(out),
                                    "--store", str(store)])
    assert done.exit_code == 0, done.output
    assert (out / "system_prompt.txt").read_text() == better  # what the app loads


def test_records_without_a_user_turn_say_how_to_capture_content():
    with pytest.raises(ValueError, match="CAPTURE_MESSAGE_CONTENT"):
        otel.recorded_app([{"system": "x", "input": None}])
