"""Turn a deployed app's OpenTelemetry GenAI spans into a dataset: one record per model call,
with the feedback given on its trace."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .conventions import (
    EVALUATION_EVENT,
    content_attributes,
    evaluation,
    first,
    invocation,
    is_model_call,
    messages_of,
)
from .feedback import read_feedback
from .otlp import Span, Spans, read_text


@dataclass
class IngestReport:
    """What `ingest` read: spans, model calls written, and what it skipped or noticed, by reason."""

    spans: int = 0
    model_calls: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # model calls left out, by reason
    problems: Counter[str] = field(default_factory=Counter)  # input that could not be read
    notes: Counter[str] = field(default_factory=Counter)  # written, but worth knowing

    def summary(self) -> str:
        """One line: `N spans read, M model calls, K skipped (why); ...`."""
        skipped = sum(self.skipped.values())
        line = f"{self.spans} spans read, {self.model_calls} model calls, {skipped} skipped"
        if skipped:
            line += " (" + _reasons(self.skipped) + ")"
        if self.problems:
            line += "; not read: " + _reasons(self.problems)
        if self.notes:
            line += "; " + _reasons(self.notes)
        return line


def _reasons(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in counts.most_common())


def records(spans: Spans, feedback: dict[str, dict[str, Any]] | None = None
            ) -> tuple[list[dict[str, Any]], IngestReport]:
    """The dataset records of `spans` and the report. Feedback for a call: the feedback file's
    (`feedback`, by trace id) if any, else a gen_ai.evaluation.result event on its span, else
    one elsewhere in its trace."""
    report = IngestReport(spans=len(spans.spans), problems=Counter(spans.problems))
    ids = {s.span_id for s in spans.spans if s.span_id}
    by_trace: dict[str, dict[str, Any]] = {}
    for span in spans.spans:
        for event in span.events:
            if event.name == EVALUATION_EVENT and span.trace_id:
                by_trace[span.trace_id] = evaluation(event.attributes)
    found = []
    for span in spans.spans:
        attrs = content_attributes(span)
        if not is_model_call(attrs):
            report.notes["other spans (not model calls)"] += 1
            continue
        if not span.trace_id:
            report.skipped["without a valid trace id"] += 1
            continue
        inputs, outputs, system = messages_of(attrs)
        if not inputs and not system:
            report.skipped["without message content (capture it in the app)"] += 1
            continue
        if not outputs:
            report.notes["model calls without an output"] += 1
        if span.parent_span_id and span.parent_span_id not in ids:
            report.notes["model calls whose parent span is not in the input"] += 1
        record = _record(span, attrs, inputs, outputs, system)
        record.update(_feedback(span, (feedback or {}).get(span.trace_id), by_trace))
        found.append(record)
    report.model_calls = len(found)
    return found, report


def _record(span: Span, attrs: dict[str, Any], inputs: list[dict[str, str]],
            outputs: list[dict[str, str]], system: str) -> dict[str, Any]:
    users = [m["content"] for m in inputs if m["role"] == "user"]
    return {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id or None,
        "operation": first(attrs, "gen_ai.operation.name") or "chat",
        "provider": first(attrs, "gen_ai.provider.name", "gen_ai.system", "llm.provider",
                          "llm.system"),
        "model": first(attrs, "gen_ai.request.model", "llm.model_name", "gen_ai.response.model"),
        "response_model": first(attrs, "gen_ai.response.model"),
        "response_id": first(attrs, "gen_ai.response.id"),
        "system": system,
        "messages": inputs,
        "input": users[-1] if users else None,
        "output": "\n".join(m["content"] for m in outputs) if outputs else None,
        "input_tokens": _int(first(attrs, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
                                   "llm.token_count.prompt")),
        "output_tokens": _int(first(attrs, "gen_ai.usage.output_tokens",
                                    "gen_ai.usage.completion_tokens",
                                    "llm.token_count.completion")),
        "temperature": _number(first(attrs, "gen_ai.request.temperature")
                               if "gen_ai.request.temperature" in attrs
                               else invocation(attrs, "temperature")),
        "max_tokens": _int(first(attrs, "gen_ai.request.max_tokens")
                           if "gen_ai.request.max_tokens" in attrs
                           else invocation(attrs, "max_tokens")),
        "seed": _int(first(attrs, "gen_ai.request.seed")),
        "start_unix_nano": span.start_ns or None,
        "seconds": (span.end_ns - span.start_ns) / 1e9 if span.end_ns > span.start_ns else None,
    }


def _feedback(span: Span, given: dict[str, Any] | None,
              by_trace: dict[str, dict[str, Any]]) -> dict[str, Any]:
    on_span = [evaluation(e.attributes) for e in span.events if e.name == EVALUATION_EVENT]
    if given is not None:
        chosen, source = {"score": given["score"], "text": given["text"]}, "file"
    elif on_span:
        chosen, source = on_span[-1], "span"
    elif span.trace_id in by_trace:
        chosen, source = by_trace[span.trace_id], "trace"
    else:
        return {"score": None, "label": None, "feedback": None, "feedback_from": None}
    return {"score": chosen.get("score"), "label": chosen.get("label"),
            "feedback": chosen.get("text"), "feedback_from": source}


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def ingest(paths: str | os.PathLike[str] | list[str | os.PathLike[str]],
           out: str | os.PathLike[str] | None = None, *,
           feedback: str | os.PathLike[str] | None = None
           ) -> tuple[list[dict[str, Any]], IngestReport]:
    """Read OTLP/JSON span files (`paths`), join the feedback file (`feedback`, if given) and,
    with `out`, write the records as JSON lines. Malformed input is counted in the report,
    never raised."""
    spans = Spans()
    for path in [paths] if isinstance(paths, str | os.PathLike) else paths:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        read = read_text(text)
        spans.spans.extend(read.spans)
        spans.problems.update(read.problems)
        for span_id, events in read.pending.items():  # logs in one file, spans in another
            spans.pending.setdefault(span_id, []).extend(events)
    spans.attach()
    if spans.pending:
        spans.problems["log events whose span is not in the input"] += sum(
            len(events) for events in spans.pending.values())
    given = read_feedback(feedback, spans.problems) if feedback is not None else None
    found, report = records(spans, given)
    if out is not None:
        with open(out, "w", encoding="utf-8") as f:
            for record in found:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return found, report
