"""Feedback on a deployed app's traces, kept in a JSON-lines file keyed by trace id."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .otlp import hex_id


def default_feedback_path() -> Path:
    """`$BACKFEED_FEEDBACK`, else `$XDG_DATA_HOME/backfeed/feedback.jsonl`."""
    if os.environ.get("BACKFEED_FEEDBACK"):
        return Path(os.environ["BACKFEED_FEEDBACK"])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                           "share")
    return Path(base) / "backfeed" / "feedback.jsonl"


def trace_id_text(trace_id: str | int) -> str:
    """A trace id as 32 hex digits: OpenTelemetry's int (span.get_span_context().trace_id)
    or its hex text."""
    if isinstance(trace_id, int) and not isinstance(trace_id, bool) and 0 < trace_id < 2**128:
        return f"{trace_id:032x}"
    text = hex_id(trace_id, 16) if isinstance(trace_id, str) and len(trace_id) == 32 else ""
    if not text:
        raise ValueError(f"{trace_id!r} is not a trace id: give the 32 hex digits of the trace "
                         "(or the int of span.get_span_context().trace_id)")
    return text


def feedback(trace_id: str | int, *, score: float | None = None, text: str | None = None,
             path: str | os.PathLike[str] | None = None) -> Path:
    """Append feedback (a score, a sentence, or both) on one trace to the feedback file
    (`path`, else default_feedback_path()), which `backfeed ingest` joins to the trace's
    model calls. Returns the file's path."""
    if score is None and text is None:
        raise ValueError("feedback needs a score=, a text=, or both")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
        raise TypeError(f"score must be a number, not {type(score).__name__}")
    if text is not None and not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    where = Path(path) if path is not None else default_feedback_path()
    where.parent.mkdir(parents=True, exist_ok=True)
    line = {"trace_id": trace_id_text(trace_id), "score": score, "text": text,
            "time": time.time()}
    with open(where, "a", encoding="utf-8") as f:
        f.write(json.dumps(line, ensure_ascii=False) + "\n")
    return where


def read_feedback(path: str | os.PathLike[str],
                  problems: Counter[str]) -> dict[str, dict[str, Any]]:
    """The feedback file as {trace id: {score, text}}, the last line for a trace winning;
    a line that cannot be read is counted in `problems`."""
    found: dict[str, dict[str, Any]] = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            trace = trace_id_text(item["trace_id"])
        except (json.JSONDecodeError, TypeError, KeyError, ValueError):
            problems["feedback lines that cannot be read"] += 1
            continue
        score = item.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float | type(None)):
            problems["feedback lines that cannot be read"] += 1
            continue
        text = item.get("text")
        found[trace] = {"score": score, "text": text if isinstance(text, str) else None}
    return found
