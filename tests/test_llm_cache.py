"""The SQLite response cache: hits cost nothing, keys cover every answer-changing option."""

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import backfeed as bf
from backfeed.llm import Cached, ResponseCache, Scripted, no_cache
from backfeed.llm.cache import default_cache_path

MSG = [{"role": "user", "content": "What is 2 + 2?"}]
SRC = str(Path(__file__).resolve().parents[1] / "src")


def echo(messages, options):
    return f"answer to {messages[-1]['content']} with {options}"


def test_second_identical_call_is_cached_free_and_skips_backend(tmp_path):
    backend = Scripted([echo] * 5)
    llm = Cached(backend, tmp_path / "c.sqlite")
    first = llm.complete(MSG, temperature=0.0)
    second = llm.complete(MSG, temperature=0.0)
    assert not first.cached and second.cached
    assert second.cost_usd == 0.0
    assert second.text == first.text
    assert len(backend.calls) == 1


def test_metered_counts_a_cache_hit_as_free():
    backend = Scripted([bf.llm.Completion("x", bf.llm.Usage(10, 2), 0.5, "m")])
    cache = Cached(backend, ResponseCache(":memory:"))
    meter = bf.llm.Metered(cache)
    meter.complete(MSG, seed=1)
    meter.complete(MSG, seed=1)
    assert meter.spend.calls == 2 and meter.spend.cached_calls == 1
    assert meter.spend.usd == 0.5 and meter.spend.tokens == 12


@pytest.mark.parametrize(
    "changed",
    [{"seed": 2}, {"temperature": 0.5, "seed": 1}, {"max_tokens": 5},
     {"json_schema": {"type": "object"}}],
)
def test_every_answer_changing_option_is_in_the_key(tmp_path, changed):
    backend = Scripted([echo] * 2)
    llm = Cached(backend, tmp_path / "c.sqlite")
    llm.complete(MSG, seed=1)
    again = llm.complete(MSG, **{"seed": 1, **changed})
    assert not again.cached and len(backend.calls) == 2


def test_model_is_in_the_key(tmp_path):
    path = tmp_path / "c.sqlite"
    Cached(Scripted(["a"], model="m1"), path).complete(MSG, seed=1)
    other = Scripted(["b"], model="m2")
    assert Cached(other, path).complete(MSG, seed=1).text == "b"


def test_sampled_calls_without_seed_are_not_cached(tmp_path):
    backend = Scripted(["a", "b"])
    llm = Cached(backend, tmp_path / "c.sqlite")
    assert llm.complete(MSG, temperature=0.9).text == "a"
    assert llm.complete(MSG, temperature=0.9).text == "b"


def test_no_cache_bypasses_reads_and_writes(tmp_path):
    backend = Scripted(["a", "b", "c"])
    llm = Cached(backend, tmp_path / "c.sqlite")
    with no_cache():
        assert llm.complete(MSG).text == "a"
    assert llm.complete(MSG).text == "b"
    with no_cache():
        assert llm.complete(MSG).text == "c"
    assert llm.complete(MSG).text == "b" and llm.complete(MSG).cached


def test_async_calls_use_the_cache(tmp_path):
    backend = Scripted(["a"])
    llm = Cached(backend, tmp_path / "c.sqlite")

    async def twice():
        return [await llm.acomplete(MSG), await llm.acomplete(MSG)]

    first, second = asyncio.run(twice())
    assert first.text == "a" and second.cached


def test_cache_is_safe_across_threads(tmp_path):
    backend = Scripted([echo] * 400)
    llm = Cached(backend, tmp_path / "c.sqlite")
    errors = []

    def work(i):
        try:
            for j in range(20):
                msg = [{"role": "user", "content": f"q{(i * 20 + j) % 50}"}]
                assert llm.complete(msg).text.startswith(f"answer to {msg[0]['content']} ")
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(ResponseCache(tmp_path / "c.sqlite")) == 50


def test_cache_is_shared_across_processes(tmp_path):
    path = tmp_path / "c.sqlite"
    code = (
        "import sys; from backfeed.llm import Cached, Scripted\n"
        "llm = Cached(Scripted(['from child']), sys.argv[1])\n"
        "llm.complete([{'role': 'user', 'content': 'What is 2 + 2?'}], seed=3)\n"
    )
    for _ in range(2):  # two writers one after another; WAL lets them and the reader coexist
        subprocess.run([sys.executable, "-c", code, str(path)], check=True,
                       env={**os.environ, "PYTHONPATH": SRC})
    hit = Cached(Scripted([]), path).complete(MSG, seed=3)
    assert hit.cached and hit.text == "from child"
    import sqlite3
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_default_path_is_under_xdg_cache_not_cwd(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("BACKFEED_LLM_CACHE", raising=False)
    assert default_cache_path() == tmp_path / "xdg" / "backfeed" / "llm-cache.sqlite"


def test_env_switch_turns_default_cache_off(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKFEED_LLM_CACHE", "off")
    llm = bf.llm.with_policies(Scripted(["a", "b"]), max_retries=0)
    assert llm.complete(MSG).text == "a" and llm.complete(MSG).text == "b"


def test_litellm_and_local_cache_by_default_and_can_turn_it_off(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("BACKFEED_LLM_CACHE", raising=False)
    assert isinstance(bf.llm.LiteLLM("gpt-4o-mini")._chain, Cached)
    assert isinstance(bf.llm.Local()._chain, Cached)
    assert not isinstance(bf.llm.LiteLLM("gpt-4o-mini", cache=False)._chain, Cached)
    assert not isinstance(bf.llm.Local(cache=False)._chain, Cached)
    assert (tmp_path / "backfeed" / "llm-cache.sqlite").exists()


def _answer(i: int) -> bf.llm.Completion:
    return bf.llm.Completion(f"{i:04d}" + "x" * 996, bf.llm.Usage(10, 250), 0.01, "m")


class _Clock:
    """A settable time.time for the cache module."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def time(self) -> float:
        self.now += 0.001  # every call a little later, so recency has an order
        return self.now


def test_cache_evicts_least_recently_used_past_its_size_limit(tmp_path, monkeypatch):
    clock = _Clock()
    monkeypatch.setattr("backfeed.llm.cache.time", clock)
    cache = ResponseCache(tmp_path / "c.sqlite", max_mb=30_000 / 2**20)  # about 30 answers
    for i in range(40):
        cache.put(f"k{i}", _answer(i))
    clock.now += 3_600  # an hour later
    for i in range(5):  # the oldest, read again: now the most recently used
        assert cache.get(f"k{i}").text.startswith(f"{i:04d}")
    deleted = cache.evict()
    assert deleted > 0 and cache.size_bytes() <= 30_000 * 0.8
    assert all(cache.get(f"k{i}") is not None for i in range(5))  # recently read: kept
    assert cache.get("k5") is None and cache.get("k39") is not None  # oldest unread went first
    assert len(cache) == 40 - deleted


def test_cache_size_is_checked_while_writing(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite", max_mb=20_000 / 2**20)
    for i in range(300):
        cache.put(f"k{i}", _answer(i))
    assert cache.size_bytes() <= 20_000 + 64 * 1_100  # never more than one check interval over
    assert cache.get("k299") is not None and cache.get("k0") is None


def test_cache_limit_from_env_and_bad_values_name_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKFEED_LLM_CACHE_MAX_MB", "none")
    assert ResponseCache(tmp_path / "a.sqlite").max_bytes is None
    monkeypatch.setenv("BACKFEED_LLM_CACHE_MAX_MB", "2")
    assert ResponseCache(tmp_path / "b.sqlite").max_bytes == 2 * 2**20
    monkeypatch.setenv("BACKFEED_LLM_CACHE_MAX_MB", "lots")
    with pytest.raises(ValueError, match="BACKFEED_LLM_CACHE_MAX_MB='lots'"):
        ResponseCache(tmp_path / "c.sqlite")


def test_cache_written_by_an_older_version_opens_and_keeps_its_answers(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, text TEXT NOT "
               "NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, "
               "cost_usd REAL NOT NULL, created REAL NOT NULL)")
    db.execute("INSERT INTO responses VALUES ('k', 'm', 'old answer', 1, 2, 0.0, 1.0)")
    db.commit()
    db.close()
    cache = ResponseCache(path)
    assert cache.get("k").text == "old answer"
    cache.put("k2", _answer(2))
    assert len(cache) == 2


def test_cache_command_shows_evicts_and_clears(tmp_path):
    from typer.testing import CliRunner

    from backfeed.cli import app

    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path)
    for i in range(10):
        cache.put(f"k{i}", _answer(i))
    runner = CliRunner()
    shown = runner.invoke(app, ["cache", "--path", str(path)])
    assert shown.exit_code == 0 and "10 answers" in shown.output and "limit 1,024 MiB" in shown.output
    evicted = runner.invoke(app, ["cache", "--path", str(path), "--evict-to-mb", str(5_000 / 2**20)])
    assert "evicted 7 answers" in evicted.output and "3 answers" in evicted.output
    cleared = runner.invoke(app, ["cache", "--path", str(path), "--clear"])
    assert cleared.exit_code == 0 and "0 answers" in cleared.output
    assert len(ResponseCache(path)) == 0


def test_a_hit_refreshes_recency_at_most_once_a_minute(tmp_path, monkeypatch):
    clock = _Clock()
    monkeypatch.setattr("backfeed.llm.cache.time", clock)
    cache = ResponseCache(tmp_path / "c.sqlite")

    def used() -> float:
        return cache._db.execute("SELECT used FROM responses WHERE key = 'k'").fetchone()[0]

    cache.put("k", _answer(1))
    written = used()
    cache.get("k")
    assert used() == written  # read within the minute: no write
    clock.now += 120
    cache.get("k")
    assert used() > written + 100  # read two minutes later: recency refreshed
