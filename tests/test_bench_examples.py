"""Every example program runs end to end (its model replaced by a scripted one)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

import backfeed as bf

EXAMPLES = sorted(p for p in (Path(__file__).parents[1] / "examples").glob("*.py")
                  if not p.name.startswith("_"))


def answer(messages, options):
    """A model that proposes nothing new and answers questions with a number."""
    if options.get("json_schema") or "suggestion" in messages[-1]["content"]:
        return '{"reasoning": "keep", "suggestion": {}}'
    return "Answer: 3"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_with_a_scripted_model(path, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bf.llm, "Local", lambda *a, **k: bf.llm.Scripted([answer] * 200))
    monkeypatch.setenv("BACKFEED_STORE", str(tmp_path / "runs.db"))
    monkeypatch.setattr(sys, "argv", [str(path), "local", "--calls", "1"])
    monkeypatch.syspath_prepend(str(path.parent))
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out.strip()


def test_examples_cover_every_task_family():
    names = {p.stem for p in EXAMPLES}
    assert {"numeric", "prompt_bbh", "battleship", "sklearn_pipeline", "verbalized_ml",
            "control_cartpole"} <= names
