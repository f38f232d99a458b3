"""Read OTLP/JSON trace documents (one document, or JSON lines of them) into flat spans,
counting what could not be read instead of failing on it. Log documents are read too: a log
record that is an event of a span (the message events of the official OpenTelemetry
instrumentations, `gen_ai.user.message`, `gen_ai.choice`, ...) joins that span's events."""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Event:
    name: str
    attributes: dict[str, Any]


@dataclass
class Span:
    trace_id: str  # 32 lowercase hex digits, or "" when the span had no valid one
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)


@dataclass
class Spans:
    """The spans read and, by reason, what was left out (lines, documents, attributes)."""

    spans: list[Span] = field(default_factory=list)
    problems: Counter[str] = field(default_factory=Counter)
    pending: dict[str, list[Event]] = field(default_factory=dict)  # log events by span id

    def attach(self) -> None:
        """Move the log events read so far onto their spans (a span may come later)."""
        for span in self.spans:
            span.events.extend(self.pending.pop(span.span_id, ()))


class BadValue(ValueError):
    """An attribute value of a type OTLP/JSON does not have."""


def any_value(value: Any) -> Any:
    """The Python value of an OTLP AnyValue (`{"stringValue": "x"}`, `{"intValue": "3"}`...)."""
    if not isinstance(value, dict):
        raise BadValue(f"an AnyValue must be an object, not {type(value).__name__}")
    if not value:
        return None
    if "stringValue" in value:
        return _typed(value["stringValue"], str)
    if "boolValue" in value:
        return _typed(value["boolValue"], bool)
    if "intValue" in value:  # int64 is a JSON string in OTLP/JSON; a number is accepted too
        raw = value["intValue"]
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise BadValue(f"intValue {raw!r} is not an integer")
        try:
            return int(raw)
        except ValueError:
            raise BadValue(f"intValue {raw!r} is not an integer") from None
    if "doubleValue" in value:
        raw = value["doubleValue"]
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise BadValue(f"doubleValue {raw!r} is not a number")
        try:
            return float(raw)  # "NaN" and "Infinity" are strings in OTLP/JSON
        except ValueError:
            raise BadValue(f"doubleValue {raw!r} is not a number") from None
    if "arrayValue" in value:
        values = _typed(value["arrayValue"], dict).get("values", [])
        return [any_value(v) for v in _typed(values, list)]
    if "kvlistValue" in value:
        values = _typed(value["kvlistValue"], dict).get("values", [])
        return {_typed(kv, dict).get("key", ""): any_value(kv.get("value", {}))
                for kv in _typed(values, list)}
    if "bytesValue" in value:
        return _typed(value["bytesValue"], str)
    raise BadValue(f"unknown AnyValue kind {sorted(value)}")


def _typed(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise BadValue(f"{value!r} is not a {kind.__name__}")
    return value


def attributes(raw: Any, problems: Counter[str]) -> dict[str, Any]:
    """A `[{key, value}]` list as a dict; a malformed entry is left out and counted."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        problems["attribute lists that are not lists"] += 1
        return {}
    found: dict[str, Any] = {}
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            problems["attributes without a key"] += 1
            continue
        try:
            found[item["key"]] = any_value(item.get("value", {}))
        except BadValue:
            problems["attributes of a wrong type"] += 1
    return found


def hex_id(raw: Any, size: int) -> str:
    """An id of `size` bytes as lowercase hex: OTLP/JSON writes hex, protobuf's JSON mapping
    base64; "" for anything else (and for the all-zero invalid id)."""
    if not isinstance(raw, str) or not raw:
        return ""
    text = raw.strip().lower()
    if len(text) == 2 * size:
        try:
            bytes.fromhex(text)
        except ValueError:
            text = ""
    else:
        try:
            decoded = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        text = decoded.hex() if len(decoded) == size else ""
    return "" if text.strip("0") == "" else text


def parse_documents(text: str, problems: Counter[str]) -> Iterator[Any]:
    """The JSON documents of `text`: one document, or one per line."""
    if not text.strip():
        problems["empty documents"] += 1
        return
    try:
        yield json.loads(text)
        return
    except json.JSONDecodeError:
        pass
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            problems["lines that are not JSON (truncated?)"] += 1


def read_text(text: str) -> Spans:
    """Every span of the OTLP/JSON documents in `text`."""
    found = Spans()
    read_documents(parse_documents(text, found.problems), found)
    return found


def read_documents(documents: Iterable[Any], found: Spans) -> Spans:
    """Add the spans of `documents` (parsed OTLP/JSON) to `found`."""
    for document in documents:
        if not isinstance(document, dict):
            found.problems["documents that are not JSON objects"] += 1
            continue
        if document.get("resourceLogs"):
            _logs(document["resourceLogs"], found)
            continue
        resource_spans = document.get("resourceSpans")
        if not resource_spans:
            found.problems["documents with no spans"] += 1
            continue
        for rs in _list(resource_spans, found.problems, "resourceSpans"):
            resource = attributes(_dict(rs.get("resource")).get("attributes"), found.problems)
            for scope in _list(rs.get("scopeSpans", []), found.problems, "scopeSpans"):
                for raw in _list(scope.get("spans", []), found.problems, "spans"):
                    found.spans.append(_span(raw, resource, found.problems))
    found.attach()
    return found


def _logs(resource_logs: Any, found: Spans) -> None:
    """The log records of an OTLP logs document that belong to a span, as its events (the
    record's event name, from `eventName` or the `event.name` attribute; its attributes, and
    its body under "body")."""
    for rl in _list(resource_logs, found.problems, "resourceLogs"):
        for scope in _list(rl.get("scopeLogs", []), found.problems, "scopeLogs"):
            for raw in _list(scope.get("logRecords", []), found.problems, "logRecords"):
                attrs = attributes(raw.get("attributes"), found.problems)
                name = raw.get("eventName") or attrs.get("event.name")
                span_id = hex_id(raw.get("spanId"), 8)
                if not isinstance(name, str) or not span_id:
                    found.problems["log records that are no span's event"] += 1
                    continue
                try:
                    body = any_value(raw["body"]) if "body" in raw else None
                except BadValue:
                    found.problems["log record bodies that are not AnyValues"] += 1
                    body = None
                found.pending.setdefault(span_id, []).append(
                    Event(name, {**attrs, "body": body}))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any, problems: Counter[str], what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        problems[f"{what} that are not lists"] += 1
        return []
    items = [item for item in value if isinstance(item, dict)]
    if len(items) < len(value):
        problems[f"{what} entries that are not objects"] += len(value) - len(items)
    return items


def _span(raw: dict[str, Any], resource: dict[str, Any], problems: Counter[str]) -> Span:
    events = []
    for event in _list(raw.get("events", []), problems, "events"):
        name = event.get("name")
        events.append(Event(name if isinstance(name, str) else "",
                            attributes(event.get("attributes"), problems)))
    name = raw.get("name")
    return Span(
        trace_id=hex_id(raw.get("traceId"), 16),
        span_id=hex_id(raw.get("spanId"), 8),
        parent_span_id=hex_id(raw.get("parentSpanId"), 8),
        name=name if isinstance(name, str) else "",
        start_ns=_nanos(raw.get("startTimeUnixNano")),
        end_ns=_nanos(raw.get("endTimeUnixNano")),
        attributes=attributes(raw.get("attributes"), problems),
        events=events,
        resource=resource,
    )


def _nanos(raw: Any) -> int:
    try:
        return int(raw) if not isinstance(raw, bool) else 0
    except (TypeError, ValueError):
        return 0


def protobuf_to_json(body: bytes, logs: bool = False) -> dict[str, Any]:
    """An OTLP/protobuf ExportTraceServiceRequest (or, with `logs`, ExportLogsServiceRequest)
    as its OTLP/JSON document (ids as hex). Needs opentelemetry-proto (backfeed[otel])."""
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message import DecodeError

    if logs:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceRequest as Request,
        )
    else:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest as Request,
        )
    request = Request()
    try:
        request.ParseFromString(body)
    except DecodeError as e:
        raise ValueError(f"not an OTLP/protobuf {'logs' if logs else 'trace'} export: {e}"
                         ) from None
    return ids_as_hex(MessageToDict(request))


def ids_as_hex(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with the base64 ids of protobuf's JSON mapping as OTLP/JSON's hex ids."""
    items = [item for rs in document.get("resourceSpans", [])
             for scope in rs.get("scopeSpans", []) for span in scope.get("spans", [])
             for item in [span, *span.get("links", [])]]
    items += [record for rl in document.get("resourceLogs", [])
              for scope in rl.get("scopeLogs", []) for record in scope.get("logRecords", [])]
    for item in items:
        for key, size in (("traceId", 16), ("spanId", 8), ("parentSpanId", 8)):
            if item.get(key):
                item[key] = base64.b64decode(item[key]).hex().rjust(2 * size, "0")
    return document
