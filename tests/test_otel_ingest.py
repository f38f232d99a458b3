"""backfeed ingest: OpenTelemetry GenAI spans (OTLP/JSON) become a dataset of model calls, and
malformed input is counted in the summary, never raised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import backfeed.otel as otel
from backfeed.cli import app

FIXTURES = Path(__file__).parent / "fixtures" / "otel"
TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


def value(v):
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": v}


def attrs(**kw):
    return [{"key": k.replace("__", "."), "value": value(v)} for k, v in kw.items()]


def chat_span(trace=TRACE, span=SPAN, parent="", events=(), **extra):
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m1",
                  "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
                      {"type": "text", "content": "hi"}]}]),
                  "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                      {"type": "text", "content": "hello"}]}]), **extra}
    return {"traceId": trace, "spanId": span, "parentSpanId": parent, "name": "chat m1",
            "attributes": [{"key": k, "value": value(v)} for k, v in attributes.items()
                           if v is not None],
            "events": list(events)}


def doc(*spans):
    return {"resourceSpans": [{"resource": {"attributes": attrs(service__name="app")},
                               "scopeSpans": [{"scope": {"name": "t"}, "spans": list(spans)}]}]}


def read(tmp_path, text, feedback=None):
    path = tmp_path / "spans.json"
    path.write_text(text)
    return otel.ingest(path, feedback=feedback)


def test_the_sdk_made_genai_fixture_gives_one_record_per_chat_span_with_its_trace_rating():
    records, report = otel.ingest(FIXTURES / "genai_spans.json")
    assert report.spans == 9 and report.model_calls == 3 and not report.skipped
    first = records[0]
    assert first["system"] == "You are a support agent for Acme. Answer in one sentence."
    assert first["messages"] == [{"role": "user", "content": "How do I reset my password?"}]
    assert first["output"] == "Click 'Forgot password' on the login page."
    assert (first["model"], first["provider"], first["response_model"]) == (
        "gpt-4o-mini", "openai", "gpt-4o-mini-2024-07-18")
    assert (first["input_tokens"], first["output_tokens"]) == (31, 12)
    assert (first["temperature"], first["max_tokens"], first["seed"]) == (0.2, 200, 7)
    assert len(first["trace_id"]) == 32 and len(first["span_id"]) == 16
    # the rating is an evaluation event on the agent span: it reaches the chat of that trace
    assert [(r["score"], r["label"], r["feedback_from"]) for r in records] == [
        (1.0, "good", "trace"), (0.0, "bad", "trace"), (None, None, None)]
    assert records[1]["feedback"] == "thumbs down"


def test_the_openinference_fixture_and_older_genai_prompt_names_are_read():
    records, report = otel.ingest(FIXTURES / "openinference_spans.json")
    assert report.model_calls == 3
    assert records[0]["system"].startswith("You are a support agent")
    assert records[0]["messages"] == [{"role": "user", "content": "How do I reset my password?"}]
    assert records[0]["output"] == "Click 'Forgot password' on the login page."
    assert (records[0]["input_tokens"], records[0]["temperature"], records[0]["max_tokens"]) == (
        30, 0.5, 64)
    old = records[2]  # gen_ai.prompt.0.content / gen_ai.completion.0.content
    assert (old["model"], old["input"], old["output"]) == (
        "gpt-3.5-turbo", "Where is my order #1234?", "It shipped yesterday and arrives Friday.")
    assert (old["input_tokens"], old["output_tokens"]) == (9, 11)


def test_an_evaluation_event_on_the_span_itself_wins_over_one_elsewhere_in_the_trace(tmp_path):
    def rating(score, text):
        return {"name": "gen_ai.evaluation.result", "attributes": attrs(
            gen_ai__evaluation__name="rating", gen_ai__evaluation__score__value=score,
            gen_ai__evaluation__explanation=text)}
    root = {"traceId": TRACE, "spanId": "1" * 16, "name": "root", "events": [rating(0.1, "r")]}
    records, _ = read(tmp_path, json.dumps(doc(
        root, chat_span(parent="1" * 16, events=[rating(0.9, "the span's")]))))
    assert (records[0]["score"], records[0]["feedback"], records[0]["feedback_from"]) == (
        0.9, "the span's", "span")


def test_feedback_appended_by_trace_id_is_joined_and_the_last_one_wins(tmp_path):
    path = tmp_path / "feedback.jsonl"
    otel.feedback(TRACE, score=0.2, path=path)
    otel.feedback(int(TRACE, 16), score=0.75, text="almost", path=path)  # the SDK's int id
    with path.open("a") as f:
        f.write("not json\n")
    records, report = read(tmp_path, json.dumps(doc(chat_span())), feedback=path)
    assert (records[0]["score"], records[0]["feedback"], records[0]["feedback_from"]) == (
        0.75, "almost", "file")
    assert report.problems["feedback lines that cannot be read"] == 1


def test_feedback_refuses_a_trace_id_that_is_not_one_and_needs_a_score_or_text(tmp_path):
    with pytest.raises(ValueError, match="32 hex digits"):
        otel.feedback("abc", score=1.0, path=tmp_path / "f.jsonl")
    with pytest.raises(ValueError, match="score=, a text="):
        otel.feedback(TRACE, path=tmp_path / "f.jsonl")
    assert not (tmp_path / "f.jsonl").exists()


def test_base64_ids_from_protobufs_json_mapping_are_read_as_hex(tmp_path):
    import base64
    span = chat_span(trace=base64.b64encode(bytes.fromhex(TRACE)).decode(),
                     span=base64.b64encode(bytes.fromhex(SPAN)).decode())
    records, _ = read(tmp_path, json.dumps(doc(span)))
    assert (records[0]["trace_id"], records[0]["span_id"]) == (TRACE, SPAN)


# Malformed or partial input: each kind is counted under its reason, the rest is read.

def test_a_model_span_without_content_is_skipped_and_says_to_capture_content(tmp_path):
    bare = chat_span(span="2" * 16, **{"gen_ai.input.messages": None,
                                       "gen_ai.output.messages": None})
    records, report = read(tmp_path, json.dumps(doc(chat_span(), bare)))
    assert len(records) == 1
    assert report.skipped == {"without message content (capture it in the app)": 1}
    assert "2 spans read, 1 model calls, 1 skipped (1 without message content" in report.summary()


def test_a_span_whose_parent_is_missing_is_kept_and_noted(tmp_path):
    records, report = read(tmp_path, json.dumps(doc(chat_span(parent="9" * 16))))
    assert records[0]["parent_span_id"] == "9" * 16
    assert report.notes["model calls whose parent span is not in the input"] == 1


def test_unknown_attributes_and_unknown_operations_are_ignored(tmp_path):
    tool = {"traceId": TRACE, "spanId": "3" * 16, "name": "x",
            "attributes": attrs(gen_ai__operation__name="execute_tool")}
    records, report = read(tmp_path, json.dumps(doc(chat_span(**{"acme.tenant": "t1",
                                                                 "acme.flags": 3}), tool)))
    assert len(records) == 1 and "acme.tenant" not in json.dumps(records)
    assert report.notes["other spans (not model calls)"] == 1 and not report.problems


def test_a_truncated_file_keeps_the_whole_lines_before_the_cut(tmp_path):
    line = json.dumps(doc(chat_span()))
    records, report = read(tmp_path, line + "\n" + line[: len(line) // 2])
    assert len(records) == 1
    assert report.problems["lines that are not JSON (truncated?)"] == 1


def test_a_single_truncated_document_is_reported_not_raised(tmp_path):
    text = json.dumps(doc(chat_span()), indent=1)
    records, report = read(tmp_path, text[: len(text) // 2])
    assert records == [] and sum(report.problems.values()) >= 1
    assert report.summary().startswith("0 spans read, 0 model calls, 0 skipped; not read:")


def test_non_json_lines_between_documents_are_counted(tmp_path):
    line = json.dumps(doc(chat_span()))
    records, report = read(tmp_path, f"{line}\nhello\n{line}\n")
    assert len(records) == 2 and report.problems["lines that are not JSON (truncated?)"] == 1


def test_values_of_wrong_types_are_counted_and_the_span_still_read(tmp_path):
    span = chat_span()
    span["attributes"] += [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "many"}},
                           {"key": "gen_ai.request.seed", "value": "7"},
                           {"value": {"stringValue": "no key"}}]
    span["startTimeUnixNano"] = "soon"
    broken = {"traceId": TRACE, "spanId": "4" * 16, "attributes": {"not": "a list"}}
    document = doc(span, broken, "a span that is a string")
    records, report = read(tmp_path, json.dumps(document))
    assert len(records) == 1 and records[0]["input_tokens"] is None
    assert report.problems["attributes of a wrong type"] == 2
    assert report.problems["attributes without a key"] == 1
    assert report.problems["attribute lists that are not lists"] == 1
    assert report.problems["spans entries that are not objects"] == 1


def test_a_span_without_a_valid_trace_id_is_skipped(tmp_path):
    missing = chat_span(span="5" * 16)
    del missing["traceId"]
    zero = chat_span(trace="0" * 32, span="6" * 16)
    number = chat_span(trace=12345, span="7" * 16)
    records, report = read(tmp_path, json.dumps(doc(chat_span(), missing, zero, number)))
    assert len(records) == 1 and report.skipped["without a valid trace id"] == 3


@pytest.mark.parametrize("text", ["", "\n\n", "{}", '{"resourceSpans": []}', "[1, 2]", "null"])
def test_an_empty_or_non_object_document_gives_an_empty_dataset_and_says_why(tmp_path, text):
    records, report = read(tmp_path, text)
    assert records == [] and report.spans == 0
    assert sum(report.problems.values()) == 1, report.problems


def test_the_ingest_command_writes_the_dataset_and_prints_the_summary(tmp_path):
    out = tmp_path / "calls.jsonl"
    spans = tmp_path / "spans.jsonl"
    spans.write_text(json.dumps(doc(chat_span())) + "\nnot json\n")
    done = CliRunner().invoke(app, ["ingest", str(spans), str(FIXTURES / "genai_spans.json"),
                                    "--out", str(out), "--feedback", ""],
                              env={"XDG_DATA_HOME": str(tmp_path), "BACKFEED_FEEDBACK": ""})
    assert done.exit_code == 0, done.output
    assert "10 spans read, 4 model calls, 0 skipped" in done.output
    assert "1 lines that are not JSON" in done.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 4 and lines[0]["output"] == "hello"


def test_the_ingest_command_joins_the_default_feedback_file(tmp_path):
    otel.feedback(TRACE, score=1.0, text="great", path=tmp_path / "backfeed" / "feedback.jsonl")
    spans = tmp_path / "spans.json"
    spans.write_text(json.dumps(doc(chat_span())))
    out = tmp_path / "calls.jsonl"
    done = CliRunner().invoke(app, ["ingest", str(spans), "--out", str(out)],
                              env={"XDG_DATA_HOME": str(tmp_path), "BACKFEED_FEEDBACK": ""})
    assert done.exit_code == 0, done.output
    assert json.loads(out.read_text())["feedback"] == "great"


def test_the_ingest_command_names_a_missing_file(tmp_path):
    done = CliRunner().invoke(app, ["ingest", str(tmp_path / "nope.json"), "--out",
                                    str(tmp_path / "o.jsonl")])
    assert done.exit_code == 1 and "nope.json" in done.output


def test_the_official_openai_instrumentations_spans_and_log_events_are_joined():
    """A real app (examples/apps/otel_app.py: the openai client under
    opentelemetry-instrumentation-openai-v2 2.3b0) sent these to `backfeed collect`: the
    spans carry no content; the messages are log events of each span, on /v1/logs."""
    records, report = otel.ingest(FIXTURES / "openai_v2_app.jsonl",
                                  feedback=FIXTURES / "openai_v2_app_feedback.jsonl")
    assert (report.model_calls, dict(report.skipped)) == (4, {})
    first = records[0]
    assert first["system"] == "What date does the text mention?"
    assert first["input"] == "The invoice is due 28 February 2015."
    assert first["output"] and first["model"] == "qwen2.5-coder-0.5b"
    assert first["input_tokens"] > 0 and first["provider"] == "openai"
    assert all(r["score"] == 0.0 and "booking system" in r["feedback"] for r in records)


def test_a_log_record_that_is_no_spans_event_is_counted(tmp_path):
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"eventName": "gen_ai.user.message", "body": {"kvlistValue": {"values": [
            {"key": "content", "value": {"stringValue": "hi there"}}]}}},  # no span id
        {"spanId": SPAN, "traceId": TRACE, "eventName": "gen_ai.user.message",
         "body": {"kvlistValue": {"values": [
             {"key": "content", "value": {"stringValue": "hi there"}}]}}},
        {"spanId": SPAN, "traceId": TRACE, "attributes": attrs(event__name="gen_ai.choice"),
         "body": {"kvlistValue": {"values": [{"key": "message", "value": {"kvlistValue": {
             "values": [{"key": "content", "value": {"stringValue": "hello back"}}]}}}]}}},
    ]}]}]}
    span = chat_span(**{"gen_ai.input.messages": None, "gen_ai.output.messages": None})
    records, report = read(tmp_path, json.dumps(logs) + "\n" + json.dumps(doc(span)))
    (record,) = records
    assert (record["input"], record["output"]) == ("hi there", "hello back")
    assert report.problems["log records that are no span's event"] == 1


def test_spans_and_their_log_events_in_separate_files_are_joined(tmp_path):
    documents = [json.loads(line) for line in
                 (FIXTURES / "openai_v2_app.jsonl").read_text().splitlines()]
    spans, logs = tmp_path / "spans.jsonl", tmp_path / "logs.jsonl"
    spans.write_text("".join(json.dumps(d) + "\n" for d in documents if "resourceSpans" in d))
    logs.write_text("".join(json.dumps(d) + "\n" for d in documents if "resourceLogs" in d))
    apart, _ = otel.ingest([logs, spans])
    together, _ = otel.ingest(FIXTURES / "openai_v2_app.jsonl")
    assert apart == together and len(apart) == 4
    _, report = otel.ingest([logs])  # events whose spans never came are counted
    assert report.problems["log events whose span is not in the input"] > 0
