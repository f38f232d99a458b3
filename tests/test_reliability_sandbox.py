"""Hostile code in the sandbox: what is refused, and the cheap safer defaults (no credentials in
the worker's environment, capped output and return size). The whole catalogue is
`python -m benchmarks.reliability.sandbox_escapes`; RELIABILITY.md quotes it."""

from __future__ import annotations

import pytest
from benchmarks.reliability import sandbox_escapes as esc

import backfeed as bf
from backfeed.graph.execute import CodeError


def probe() -> object:  # stand-in whose globals the sources below get
    return None


@pytest.fixture
def box(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", esc.FAKE_KEY)
    monkeypatch.setenv("BACKFEED_TEST_PLAIN", "kept")
    with bf.Sandbox(timeout_s=20, workdir=tmp_path, workers=1) as sandbox:
        yield sandbox


def test_model_code_does_not_see_credentials_in_its_environment(box):
    source = ("def probe():\n    import os\n"
              "    return os.environ.get('OPENAI_API_KEY'), os.environ.get('BACKFEED_TEST_PLAIN')\n")
    assert box.call(probe, source=source) == (None, "kept")


def test_huge_printed_output_is_cut_with_a_note(box, capsys):
    source = "def probe():\n    print('x' * 3_000_000)\n    return 'done'\n"
    assert box.call(probe, source=source) == "done"
    out = capsys.readouterr().out
    assert len(out) < 1_100_000 and "more characters of output cut" in out


def test_a_huge_return_value_is_refused_with_its_size(box):
    source = "def probe():\n    return b'x' * (65 * 1024 * 1024)\n"
    with pytest.raises(CodeError) as info:
        box.call(probe, source=source)
    assert info.value.info.type == "ResultTooLarge" and "64 MiB" in info.value.info.message
    assert box.call(probe, source="def probe():\n    return 1\n") == 1  # the worker goes on


def test_the_catalogue_records_what_each_attempt_yields():
    rows = {r["attempt"]: r["outcome"] for r in esc.catalogue(names=[
        "env var holding a key", "write outside the workdir", "socket to the internet",
        "os.fork loop", "signal to the parent", "ctypes libc write"])}
    assert rows["env var holding a key"] == "harmless"
    for refused in ("write outside the workdir", "socket to the internet", "os.fork loop",
                    "signal to the parent"):
        assert rows[refused] == "refused: ForbiddenOperation", rows
    # the kernel's layers (Landlock, seccomp) refuse it even through ctypes, where available
    assert not rows["ctypes libc write"].startswith("escaped"), rows
