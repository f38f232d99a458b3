"""Secrets: realistic keys of five providers never reach the cache, a cassette, the run store,
the logs, the dashboard or an export, even when the server echoes the key in its error."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest
from benchmarks.reliability import model_faults as mf
from benchmarks.reliability.faults import FaultServer

import backfeed as bf

pytestmark = pytest.mark.skipif(importlib.util.find_spec("litellm") is None,
                                reason="needs litellm")

# Shaped like each provider's keys (prefix, length, alphabet); none is a real key.
KEYS = {
    "openai": "sk-proj-" + "Q3vT9xLmP2aZ7rW1kN5bY8cH4dF6gJ0sE2uI9oA7pR3tV5wX1yB4nM6qK8zL0cD",
    "anthropic": "sk-ant-api03-" + "x7Kp2Vq9Lm4Rt8Wz1Yb6Nc3Hd5Fg0Js-Eu2Io9Ap7Sr3Tv5Wx1Yb4Nm6Qk8Zl0Cd"
                 + "Gh2Jk4Lm6Np8Qr0St2Uv4Wx6Yz8Ab0Cd2Ef-AA",
    "google": "AIzaSyD" + "4kP9vQ2mL7xR1tW8zN3bY6cH5dF0gJ2s",
    "groq": "gsk_" + "Zt8Yq2Wm5Lp9Rx3Vk7Nb1Hc4Df6Gj0Sa2Ue5Io8Pr3Tv7Wx9Yb1Nm4Qk6",
    "openrouter": "sk-or-v1-" + "9f2c7a1e5b3d8f0a4c6e2b9d7f1a3c5e8b0d2f4a6c9e1b3d5f7a0c2e4b6d8f1a3c",
}


def _llm(provider: str, url: str, cache: Path, monkeypatch: pytest.MonkeyPatch) -> bf.llm.LLM:
    """Each key reaches backfeed a different way: an option, the environment, a header."""
    key = KEYS[provider]
    common = {"api_base": url, "cache": cache, "max_retries": 2, "base_delay": 0.01}
    if provider == "anthropic":  # only in the environment, where litellm finds it
        monkeypatch.setenv("OPENAI_API_KEY", key)
        return bf.llm.LiteLLM(f"openai/{provider}-model", **common)
    if provider == "google":  # in a header, next to a placeholder key
        return bf.llm.LiteLLM(f"openai/{provider}-model", api_key="placeholder",
                              extra_headers={"x-goog-api-key": key}, **common)
    return bf.llm.LiteLLM(f"openai/{provider}-model", api_key=key, **common)


def _plan(number: int, body: dict) -> str | None:
    return "500" if number == 1 else "401" if number >= 2 else None


def test_no_key_of_five_providers_reaches_any_file_log_page_or_export(tmp_path, monkeypatch,
                                                                         caplog, capsys):
    from starlette.testclient import TestClient
    from typer.testing import CliRunner

    from backfeed.cli import app
    from backfeed.ui.server import create_app

    caplog.set_level(logging.DEBUG)
    db, cache, cassette = tmp_path / "runs.db", tmp_path / "cache.sqlite", tmp_path / "c.jsonl"
    run_ids = []
    for provider in KEYS:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        with FaultServer(mf.brain, _plan, echo_key=True) as server:
            llm = bf.llm.Recorder(_llm(provider, server.url, cache, monkeypatch), cassette)
            with pytest.raises(bf.ModelFailed, match="refused the credentials"):
                mf.train(server.url, db, cache, steps=4, llm=llm)
            assert server.log.faults >= 2  # the 500 was retried and the 401 stopped the run
        run_ids.append(bf.store.RunStore(db).list_runs()[0].id)

    places: dict[str, str] = {}
    for path in tmp_path.iterdir():  # cache, cassette, store with its WAL and shm files
        places[path.name] = path.read_bytes().decode("latin-1")
    places["logs"] = "\n".join(r.getMessage() for r in caplog.records) + "".join(capsys.readouterr())
    client = TestClient(create_app(db), base_url="http://127.0.0.1:8765")
    pages = [client.get("/api/runs").text]
    for run_id in run_ids:
        detail = client.get(f"/api/runs/{run_id}")
        pages.append(detail.text)
        for step in detail.json()["steps"]:
            pages.append(client.get(f"/api/runs/{run_id}/steps/{step['step']}").text)
    places["dashboard"] = "\n".join(pages)
    runner = CliRunner()
    places["export"] = "\n".join(runner.invoke(app, ["export", r, "--store", str(db)]).output
                                 for r in run_ids)
    places["show"] = "\n".join(runner.invoke(app, ["show", r, "--store", str(db)]).output
                               for r in run_ids)

    assert "AuthenticationError" in places["dashboard"] + places["export"]  # the error is there
    assert "Incorrect API key provided" in places["export"]
    for provider, key in KEYS.items():
        for place, text in places.items():
            assert key not in text, f"the {provider} key leaked into {place}"
            assert key[-24:] not in text, f"part of the {provider} key leaked into {place}"
