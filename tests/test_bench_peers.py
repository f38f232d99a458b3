"""Peer adapters (GEPA, TextGrad, DSPy) run through the harness with a scripted model."""

from __future__ import annotations

import importlib.util
import os

import pytest
from benchmarks import run as harness

import backfeed as bf
from bench_helpers import SUM_TO, repair_responder

GOOD_ACT = (
    "def act(self, observation):\n"
    "    x, v, theta, omega = observation\n"
    "    return 1 if theta + 0.5 * omega + 0.01 * x + 0.1 * v > 0 else 0\n"
)


def _run(framework, tasks, responder, calls):
    model = harness.scripted_model(bf.llm.Scripted([responder] * 300))
    records = harness.run_suite(tasks, [framework], [0], model, size="quick", calls=calls,
                                progress=False)
    return {r.task: r for r in records if r.framework == framework}


def test_gepa_rewrites_code_and_marks_numeric_tasks_na():
    pytest.importorskip("gepa")

    def responder(messages, options):
        return "New code:\n```\n" + GOOD_ACT + "```"

    runs = _run("gepa", ["control/cartpole", "numeric", "sklearn"], responder, calls=2)
    assert runs["control/cartpole"].status == "ok"
    assert runs["control/cartpole"].test_score == 1.0
    assert 1 <= runs["control/cartpole"].optimizer_calls <= 2
    assert runs["numeric"].status == "n/a" and "float" in runs["numeric"].reason
    assert runs["sklearn"].status == "n/a"


@pytest.mark.skipif(importlib.util.find_spec("textgrad") is None, reason="textgrad not installed")
def test_textgrad_backward_and_step_within_the_call_limit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # before anything imports textgrad, which writes ./logs

    def responder(messages, options):
        if "IMPROVED_VARIABLE" in messages[0]["content"] + messages[-1]["content"]:
            return "<IMPROVED_VARIABLE>" + GOOD_ACT + "</IMPROVED_VARIABLE>"
        return "Use the pole angle and its velocity."

    runs = _run("textgrad", ["control/cartpole", "numeric"], responder, calls=5)
    assert runs["control/cartpole"].test_score == 1.0
    assert runs["control/cartpole"].optimizer_calls <= 5
    assert runs["numeric"].status == "n/a"
    assert not os.path.exists(tmp_path / "logs")  # TextGrad's import-time logs go elsewhere


def _dspy_responder(messages, options):
    """DSPy's chat format: every output field the system message asks for, then completed."""
    import re

    asked = re.search(r"Your output fields are:(.*?)All interactions", messages[0]["content"],
                      re.S)
    names = re.findall(r"\d+\. `(\w+)`", asked.group(1)) if asked else ["answer"]
    values = {"proposed_instruction": "Count the fruits.", "answer": "3"}
    return "".join(f"[[ ## {n} ## ]]\n{values.get(n, 'Fruits are counted.')}\n\n"
                   for n in names) + "[[ ## completed ## ]]"


def test_dspy_copro_optimizes_an_instruction_and_is_scored_on_its_own_program():
    pytest.importorskip("dspy")
    runs = _run("dspy:optimizer=copro", ["bbh/object_counting", "battleship"], _dspy_responder,
                calls=3)
    counting = runs["bbh/object_counting"]
    assert counting.status == "ok", counting.reason
    assert 0 <= counting.test_score <= 1 and counting.optimizer_calls >= 1
    assert runs["battleship"].status == "n/a"


def test_dspy_mipro_proposes_instructions_within_the_call_limit():
    pytest.importorskip("dspy")
    runs = _run("dspy", ["bbh/object_counting"], _dspy_responder, calls=8)
    counting = runs["bbh/object_counting"]
    assert counting.status == "ok", counting.reason
    # 4 candidates (8 - 4), each proposed in one call, and the dataset summary's calls
    assert 5 <= counting.optimizer_calls <= 8
    assert counting.test_score is not None and 0 <= counting.test_score <= 1


@pytest.mark.parametrize("framework", ["trace", "gepa", "textgrad"])
def test_every_peer_repairs_code_through_the_harness(framework, tmp_path, monkeypatch):
    pytest.importorskip({"trace": "opto"}.get(framework, framework))
    monkeypatch.chdir(tmp_path)  # TextGrad writes ./logs on import
    runs = _run(framework, ["code_repair/sum_to"], repair_responder, calls=6)
    run = runs["code_repair/sum_to"]
    assert run.status == "ok", run.reason
    assert run.start_score == 0 and run.test_score == 1.0
    assert 1 <= run.optimizer_calls <= 6
    assert "n * (n + 1) // 2" in run.final_values["sum_to"]


def test_dspy_is_na_on_code_repair_because_its_instructions_lose_indentation():
    pytest.importorskip("dspy")
    runs = _run("dspy", ["code_repair/sum_to"], repair_responder, calls=3)
    run = runs["code_repair/sum_to"]
    assert run.status == "n/a" and "indentation" in run.reason
    import dspy

    kept = dspy.Signature("a -> b", instructions=SUM_TO).instructions
    assert kept != SUM_TO.strip()  # the fact the reason states
