"""Record/replay: a recorded session replays exactly, with no backend and no secrets."""

import asyncio
import json

import pytest

from backfeed.llm import CassetteMiss, Completion, Recorder, Replay, Scripted, Usage

SESSION = [
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}],
     {"temperature": 0.0}),
    ([{"role": "user", "content": "JSON please"}], {"json_schema": {"type": "object"}, "seed": 7}),
    ([{"role": "user", "content": "Name a colour."}], {"max_tokens": 5}),
    ([{"role": "user", "content": "Name a colour."}], {"max_tokens": 5}),  # repeated request
]


def test_replay_reproduces_a_recorded_session_exactly(tmp_path):
    answers = [Completion("red", Usage(9, 1), 0.001, "m"), Completion('{"a": 1}', Usage(4, 5), 0.002, "m"),
               Completion("blue", Usage(3, 1), 0.0, "m"), Completion("green", Usage(3, 1), 0.0, "m")]
    recorder = Recorder(Scripted(answers, model="m"), tmp_path / "s.jsonl")
    recorded = [recorder.complete(msgs, **opts) for msgs, opts in SESSION]
    replay = Replay(tmp_path / "s.jsonl")
    replayed = [replay.complete(msgs, **opts) for msgs, opts in SESSION]
    assert replayed == recorded
    assert replay.remaining == 0
    assert replay.model == "m"


def test_replay_fails_clearly_on_an_unrecorded_request(tmp_path):
    recorder = Recorder(Scripted(["a"]), tmp_path / "s.jsonl")
    recorder.complete([{"role": "user", "content": "hello"}])
    replay = Replay(tmp_path / "s.jsonl")
    with pytest.raises(CassetteMiss, match=r"no recording of this request.*goodbye"):
        replay.complete([{"role": "user", "content": "goodbye"}])
    with pytest.raises(CassetteMiss, match="no recording"):
        replay.complete([{"role": "user", "content": "hello"}], seed=1)
    replay.complete([{"role": "user", "content": "hello"}])
    with pytest.raises(CassetteMiss, match="recorded this request 1 time"):
        replay.complete([{"role": "user", "content": "hello"}])


def test_async_recording_replays(tmp_path):
    recorder = Recorder(Scripted(["x"]), tmp_path / "s.jsonl")
    first = asyncio.run(recorder.acomplete([{"role": "user", "content": "q"}]))
    assert asyncio.run(Replay(tmp_path / "s.jsonl").acomplete([{"role": "user", "content": "q"}])) == first


def test_cassette_holds_no_credentials(tmp_path):
    class Keyed(Scripted):
        def cache_identity(self):
            return {"model": "m", "api_key": "sk-very-secret", "extra_headers": {"Authorization": "Bearer sk-h"},
                    "api_base": "http://127.0.0.1:1/v1"}

    Recorder(Keyed(["a"]), tmp_path / "s.jsonl").complete([{"role": "user", "content": "q"}])
    text = (tmp_path / "s.jsonl").read_text()
    assert "sk-very-secret" not in text and "sk-h" not in text
    assert json.loads(text)["llm"] == {"model": "m", "api_base": "http://127.0.0.1:1/v1"}


def test_bad_cassette_line_is_named(tmp_path):
    (tmp_path / "s.jsonl").write_text('{"request": {}}\nnot json\n')
    with pytest.raises(ValueError, match=r"s.jsonl:1"):
        Replay(tmp_path / "s.jsonl")
    with pytest.raises(FileNotFoundError, match="cassette not found"):
        Replay(tmp_path / "missing.jsonl")


def test_secret_option_names_are_told_apart_from_public_ones():
    from backfeed.llm._keys import is_secret_option

    for name in ["api_key", "apikey", "aws_secret_access_key", "extra_headers", "azure_ad_token",
                 "vertex_credentials", "Authorization", "password"]:
        assert is_secret_option(name), name
    for name in ["max_tokens", "max_completion_tokens", "top_p", "api_base", "model", "seed"]:
        assert not is_secret_option(name), name
