"""backfeed collect: an OTLP/HTTP receiver on 127.0.0.1 that appends each trace export to a
file `backfeed ingest` reads."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import backfeed.otel as otel
from backfeed.otel.collect import Receiver

FIXTURE = Path(__file__).parent / "fixtures" / "otel" / "genai_spans.json"


@pytest.fixture
def receiver(tmp_path):
    running = Receiver(tmp_path / "traces.jsonl", port=0).start()
    yield running
    running.close()


def post(url, body, kind="application/json", **headers):
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": kind, **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_it_listens_on_127_0_0_1_by_default(receiver):
    assert receiver.url.startswith("http://127.0.0.1:") and receiver.url.endswith("/v1/traces")


def test_posted_json_exports_are_appended_and_ingested_as_the_file_was(receiver, tmp_path):
    body = FIXTURE.read_bytes()
    assert post(receiver.url, body) == (200, b"{}")
    assert post(receiver.url, gzip.compress(body), **{"Content-Encoding": "gzip"})[0] == 200
    lines = receiver.out.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0]) == json.loads(body)
    records, report = otel.ingest(receiver.out)
    assert report.model_calls == 6 and not report.problems
    assert records[0]["output"] == "Click 'Forgot password' on the login page."


def test_a_body_that_is_not_json_is_refused_and_nothing_is_written(receiver):
    code, body = post(receiver.url, b"{not json")
    assert code == 400 and b"not JSON" in body
    assert post(receiver.url.replace("/v1/traces", "/v1/metrics"), b"{}")[0] == 404
    code, body = post(receiver.url, b"x", kind="text/plain")
    assert code == 415 and b"application/json" in body
    assert not receiver.out.exists() or receiver.out.read_text() == ""


def test_a_protobuf_export_is_decoded_with_opentelemetry_proto(receiver):
    pytest.importorskip("opentelemetry.proto")
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    document = json.loads(FIXTURE.read_text())
    for rs in document["resourceSpans"]:  # protobuf's JSON mapping has base64 ids
        for span in rs["scopeSpans"][0]["spans"]:
            for key in ("traceId", "spanId", "parentSpanId"):
                if span.get(key):
                    import base64
                    span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    body = ParseDict(document, ExportTraceServiceRequest()).SerializeToString()
    assert post(receiver.url, body, kind="application/x-protobuf")[0] == 200
    assert post(receiver.url, b"\xff\xff", kind="application/x-protobuf")[0] == 400
    records, report = otel.ingest(receiver.out)
    expected, _ = otel.ingest(FIXTURE)
    assert report.model_calls == 3 and records == expected


def test_a_protobuf_logs_export_is_received_and_its_events_join_their_spans(receiver):
    pytest.importorskip("opentelemetry.proto")
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    real = Path(__file__).parent / "fixtures" / "otel" / "openai_v2_app.jsonl"
    documents = [json.loads(line) for line in real.read_text().splitlines()]
    spans = [d for d in documents if "resourceSpans" in d]
    logs = [d for d in documents if "resourceLogs" in d]
    import base64
    for document in logs:  # protobuf's JSON mapping has base64 ids
        for rl in document["resourceLogs"]:
            for record in rl["scopeLogs"][0]["logRecords"]:
                for key in ("traceId", "spanId"):
                    record[key] = base64.b64encode(bytes.fromhex(record[key])).decode()
        body = ParseDict(document, ExportLogsServiceRequest()).SerializeToString()
        assert post(receiver.url.replace("/v1/traces", "/v1/logs"), body,
                    kind="application/x-protobuf")[0] == 200
    assert post(receiver.url, json.dumps(spans[0]).encode())[0] == 200
    records, _ = otel.ingest(receiver.out)
    expected, _ = otel.ingest(real)
    assert [r["input"] for r in records] == [r["input"] for r in expected][:len(records)]
    assert records and all(r["system"] == "What date does the text mention?" for r in records)


def test_without_opentelemetry_proto_a_protobuf_body_is_answered_415_naming_the_json_protocol(
        tmp_path):
    running = Receiver(tmp_path / "t.jsonl", port=0)
    running._decode_protobuf = None  # as on a machine without opentelemetry-proto
    running.start()
    try:
        code, body = post(running.url, b"\x0a\x00", kind="application/x-protobuf")
    finally:
        running.close()
    assert code == 415 and b"http/json" in body


def test_the_collect_command_prints_where_it_listens_and_writes_what_it_receives(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "traces.jsonl"
    process = subprocess.Popen([sys.executable, "-c", "from backfeed.cli import main; main()", "collect", "--port", "0",
                                "--out", str(out)], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        url = line.split()[2].rstrip(",")
        assert post(url, FIXTURE.read_bytes())[0] == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert otel.ingest(out)[1].model_calls == 3
