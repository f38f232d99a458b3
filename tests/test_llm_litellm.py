"""`bf.llm.LiteLLM` against a local OpenAI-compatible server: options, retries, secrets."""

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import backfeed as bf
from _llm_http import FakeOpenAI, Reply
from backfeed.llm import LiteLLM, Recorder, Replay

# Not pytest.importorskip: importing litellm before backfeed configures it would fetch its
# price list from the network.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("litellm") is None,
                                reason="needs litellm")

SRC = str(Path(__file__).resolve().parents[1] / "src")
MSG = [{"role": "user", "content": "hi"}]
SCHEMA = {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}


def test_importing_litellm_through_backfeed_makes_no_network_call():
    code = (
        "import socket, json\n"
        "seen = []\n"
        "def refuse(*a, **k):\n"
        "    seen.append(str(a[:2])); raise OSError('network refused in test')\n"
        "socket.socket.connect = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "from backfeed.llm.litellm_backend import import_litellm\n"
        "import_litellm()\n"
        "print(json.dumps(seen))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "PYTHONPATH": SRC}, check=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_litellm_sends_schema_options_and_reads_usage(tmp_path):
    with FakeOpenAI([Reply(200, text='{"x": 1}')]) as server:
        llm = LiteLLM("openai/fake-model", api_base=server.url, api_key="sk-test-abcdef",
                      cache=tmp_path / "c.sqlite")
        answer = llm.complete(MSG, json_schema=SCHEMA, max_tokens=30, temperature=0.0, seed=4)
        again = llm.complete(MSG, json_schema=SCHEMA, max_tokens=30, temperature=0.0, seed=4)
        body = server.seen[0].body
    assert answer.text == '{"x": 1}' and not answer.cached
    assert answer.usage.prompt_tokens == 11 and answer.usage.completion_tokens == 3
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert (body["max_tokens"], body["temperature"], body["seed"]) == (30, 0.0, 4)
    assert server.seen[0].headers["authorization"] == "Bearer sk-test-abcdef"
    assert again.cached and again.cost_usd == 0.0 and len(server.seen) == 1
    assert b"sk-test-abcdef" not in (tmp_path / "c.sqlite").read_bytes()


def test_litellm_retries_429_and_500_through_its_policies(caplog):
    replies = [Reply(429, {"Retry-After": "1"}), Reply(500), Reply(200, text="after retries")]
    with FakeOpenAI(replies) as server, caplog.at_level("DEBUG"):
        llm = LiteLLM("openai/fake-model", api_base=server.url, api_key="sk-logged-never-42",
                      cache=False)
        assert llm.complete(MSG).text == "after retries"
        assert len(server.seen) == 3
        assert server.seen[1].time - server.seen[0].time >= 1.0
    retries = [r for r in caplog.records if r.name == "backfeed.llm"]
    assert len(retries) == 2
    assert "sk-logged-never-42" not in caplog.text


def test_litellm_async_and_cost_of_a_priced_model(tmp_path):
    with FakeOpenAI([Reply(200, text="async answer")]) as server:
        llm = LiteLLM("openai/gpt-4o-mini", api_base=server.url, api_key="sk-x", cache=False)
        answer = asyncio.run(llm.acomplete(MSG))
    assert answer.text == "async answer"
    assert answer.cost_usd > 0  # litellm's bundled price list knows gpt-4o-mini


def test_litellm_session_records_without_the_key_and_replays(tmp_path):
    with FakeOpenAI([Reply(200, text="one"), Reply(200, text="two")]) as server:
        llm = Recorder(LiteLLM("openai/fake-model", api_base=server.url, api_key="sk-rec-999",
                               cache=False), tmp_path / "s.jsonl")
        first = [llm.complete(MSG, seed=1), llm.complete(MSG, seed=2)]
    assert "sk-rec-999" not in (tmp_path / "s.jsonl").read_text()
    replay = Replay(tmp_path / "s.jsonl")
    assert [replay.complete(MSG, seed=1), replay.complete(MSG, seed=2)] == first


def test_litellm_rejects_an_empty_model_name():
    with pytest.raises(ValueError, match="needs a model name"):
        LiteLLM("")


def test_default_uses_backfeed_model_env(monkeypatch):
    monkeypatch.setenv("BACKFEED_MODEL", "anthropic/claude-3-5-haiku-latest")
    llm = bf.llm.default()
    assert isinstance(llm, LiteLLM) and llm.model == "anthropic/claude-3-5-haiku-latest"


def test_default_without_model_or_local_explains_both(monkeypatch):
    monkeypatch.delenv("BACKFEED_MODEL", raising=False)
    monkeypatch.setattr("backfeed.llm.local.is_installed", lambda name="": False)
    with pytest.raises(bf.llm.LLMError, match=r"BACKFEED_MODEL.*backfeed\[local\]"):
        bf.llm.default()


def test_default_falls_back_to_local_when_installed(monkeypatch):
    monkeypatch.delenv("BACKFEED_MODEL", raising=False)
    monkeypatch.setattr("backfeed.llm.local.is_installed", lambda name="": True)
    assert isinstance(bf.llm.default(), bf.llm.Local)


def test_several_candidates_come_from_one_request_that_bills_the_prompt_once(tmp_path):
    """litellm's `n`: Prime's first answer at its temperature, the other three from one
    sampled request; the budget counts the two requests and the tokens the provider billed,
    and the run store keeps the three answers of the second request (a resume replays them)."""
    from backfeed.llm.wrap import answers_n
    from backfeed.optim import Prime
    from backfeed.store import RunStore
    from backfeed.train.record import Recorded

    replies = [Reply(text="### greeting\n```text\nHello!\n```"),
               Reply(choices=[f"### greeting\n```text\nHello {w}!\n```"
                              for w in ("there", "you", "all")])]
    with FakeOpenAI(replies) as server:
        backend = LiteLLM("openai/fake-model", api_base=server.url, api_key="sk-x", cache=False)
        store = RunStore(tmp_path / "runs.db")
        run = store.create_run(name="n", config={})
        recorded = Recorded(bf.llm.Metered(backend, bf.Budget(llm_calls=2)), store, run)
        assert answers_n(recorded) and not answers_n(bf.llm.Scripted([]))
        greeting = bf.param("Hi", name="greeting", description="the greeting")
        out = bf.format("{g}, Ann", g=greeting)
        out.backward(bf.Feedback(score=0.2, text="too short"))
        opt = Prime([greeting], llm=recorded, candidates=4, compact=True, temperature=0.0)
        report = opt.step()
        bodies = [s.body for s in server.seen]
    assert len(bodies) == 2 and "n" not in bodies[0] and bodies[1]["n"] == 3
    assert (bodies[0]["temperature"], bodies[1]["temperature"]) == (0.0, 0.8)
    assert report.llm_calls == 2 and report.prompt_tokens == 22  # billed once per request
    assert report.completion_tokens == 3 + 9
    assert [c["greeting"] for c in report.candidates] == \
        ["Hello!", "Hello there!", "Hello you!", "Hello all!"]
    assert len(report.prompts) == len(report.answers) == 4  # each answer beside its prompt
    calls = store.llm_calls(run)
    assert [c.alternatives for c in calls] == [[], ["### greeting\n```text\nHello you!\n```",
                                                    "### greeting\n```text\nHello all!\n```"]]
    # a resumed run is answered from the store, the further answers included
    again = Recorded(bf.llm.Scripted([]), store, run)
    replayed = again.complete(calls[1].messages, **calls[1].options)
    assert replayed.text.endswith("Hello there!\n```") and len(replayed.alternatives) == 2


def test_a_cassette_replays_a_request_for_several_answers(tmp_path):
    with FakeOpenAI([Reply(choices=["a", "b", "c"])]) as server:
        backend = LiteLLM("openai/fake-model", api_base=server.url, api_key="sk-x", cache=False)
        recorded = Recorder(backend, tmp_path / "c.jsonl").complete(MSG, temperature=0.8, n=3)
    replay = Replay(tmp_path / "c.jsonl")
    from backfeed.llm.wrap import answers_n

    assert answers_n(replay)
    again = replay.complete(MSG, temperature=0.8, n=3)
    assert (again.text, again.alternatives) == (recorded.text, recorded.alternatives) == \
        ("a", ("b", "c"))
