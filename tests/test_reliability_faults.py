"""Model faults from a real HTTP server: bf.train with Prime, Pareto and Threads(8) survives them.

The long version (every fault, 30 steps, and the 20% random mix over 5 seeds) is
`python -m benchmarks.reliability.model_faults`; RELIABILITY.md quotes it.
"""

from __future__ import annotations

import importlib.util
import json
import time

import pytest
from benchmarks.reliability import model_faults as mf
from benchmarks.reliability.faults import FaultServer, every, random_mix

import backfeed as bf
from backfeed.llm import litellm_backend

pytestmark = pytest.mark.skipif(importlib.util.find_spec("litellm") is None,
                                reason="needs litellm")
MSG = [{"role": "user", "content": "hi"}]


def _ok(body: dict) -> str:
    return "fine"


@pytest.mark.parametrize("fault", ["429-retry-after", "503", "reset", "malformed",
                                   "empty-choices", "timeout"])
def test_a_transient_fault_is_retried_and_the_run_finishes_with_nothing_lost(tmp_path, fault):
    litellm_backend.import_litellm()
    clean = mf.trial(None, steps=3, workdir=tmp_path / "clean")
    row = mf.trial(fault, steps=3, workdir=tmp_path / fault)
    assert row["faults"] >= 1
    assert row["outcome"] == "finished" and row["status"] == "finished"
    assert row["paid_twice"] == 0
    assert row["steps_stored"] == clean["steps_stored"]
    assert row["failed_steps"] == 0
    assert row["best_values"] == clean["best_values"]


def test_a_bad_key_stops_the_run_with_a_clear_error_and_it_resumes_once_fixed(tmp_path):
    row = mf.trial("401", steps=4, workdir=tmp_path / "401")
    assert row["outcome"] == "stopped, resumed to the end", row
    assert "ModelFailed" in row["error"] and "AuthenticationError" in row["error"]
    assert row["paid_twice"] == 0 and row["status"] == "finished"


def test_a_prompt_over_the_context_stops_the_run_with_a_clear_error_and_it_resumes(tmp_path):
    row = mf.trial("400-context", steps=4, workdir=tmp_path / "400")
    assert row["outcome"] == "stopped, resumed to the end", row
    assert "ModelFailed" in row["error"] and "context length" in row["error"]
    assert row["failed_steps"] == 0 and row["status"] == "finished"


# 1.0 s of body against timeout=0.6 outlasts one attempt; 2.5 s outlasts the attempt plus its
# backoff wait. Either way the answer that keeps arriving is read to the end and paid once.
@pytest.mark.parametrize("trickle", [1.0, 2.5], ids=["one-timeout", "several-timeouts"])
def test_an_answer_trickling_in_past_the_timeout_is_waited_for_not_paid_for_twice(trickle):
    with FaultServer(_ok, every(1000, "slow-stream", first=0), trickle=trickle) as server:
        llm = bf.llm.LiteLLM("openai/m", api_base=server.url, api_key="sk-x", cache=False,
                             timeout=0.6, max_retries=2, base_delay=0.01)
        assert llm.complete(MSG).text == "fine"
        time.sleep(1.0)  # a retry sent meanwhile would have been answered by now
        assert [f for _, f in server.log.requests] == ["slow-stream"]
        assert server.log.paid_twice == 0


def test_a_server_that_stays_silent_past_the_timeout_is_retried():
    with FaultServer(_ok, every(1000, "timeout", first=0), hold=3.0) as server:
        llm = bf.llm.LiteLLM("openai/m", api_base=server.url, api_key="sk-x", cache=False,
                             timeout=0.6, max_retries=1, base_delay=0.01)
        started = time.monotonic()
        assert llm.complete(MSG).text == "fine"
        assert time.monotonic() - started < 2.5  # not held until the server gives up (3 s)
        assert [f for _, f in server.log.requests] == ["timeout", None]


def test_an_empty_choices_answer_is_retried_not_taken_for_a_final_error(tmp_path):
    with FaultServer(_ok, every(1000, "empty-choices", first=0)) as server:
        llm = bf.llm.LiteLLM("openai/m", api_base=server.url, api_key="sk-x", cache=False,
                             max_retries=2, base_delay=0.01)
        assert llm.complete(MSG).text == "fine"
        assert [f for _, f in server.log.requests] == ["empty-choices", None]


def test_importing_litellm_is_not_counted_against_the_first_calls_timeout(tmp_path, monkeypatch):
    real = litellm_backend.import_litellm
    slow = {"first": True}

    def slow_import():
        if slow.pop("first", False):
            time.sleep(0.6)  # a cold import on a busy machine
        return real()

    monkeypatch.setattr(litellm_backend, "import_litellm", slow_import)
    with FaultServer(_ok) as server:
        llm = bf.llm.LiteLLM("openai/m", api_base=server.url, api_key="sk-x", cache=False,
                             timeout=0.4, max_retries=2, base_delay=0.01)
        assert llm.complete(MSG).text == "fine"
        time.sleep(0.5)  # an abandoned first attempt would reach the server by now
        assert len(server.log.requests) == 1 and server.log.paid_twice == 0


def test_a_random_mix_of_faults_ends_on_the_clean_runs_values_from_its_cassette(tmp_path):
    litellm_backend.import_litellm()
    clean = mf.trial(None, steps=3, workdir=tmp_path / "clean", recorder=tmp_path / "c.jsonl")
    row = mf.trial("mix", steps=3, workdir=tmp_path / "mix",
                   plan=random_mix(0.3, seed=1, faults=("500", "reset", "malformed")),
                   brain_fn=mf.Cassette(tmp_path / "c.jsonl"))
    assert row["faults"] >= 1 and row["outcome"] == "finished"
    assert row["best_values"] == clean["best_values"] and row["paid_twice"] == 0
    assert json.loads((tmp_path / "c.jsonl").read_text().splitlines()[0])["response"]["text"]
