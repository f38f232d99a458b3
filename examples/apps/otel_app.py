"""A deployed app that knows nothing of backfeed's training: the official `openai` client,
instrumented with the official OpenTelemetry OpenAI instrumentation, sending its spans over
OTLP/HTTP; a downstream check rates each answer with `bf.feedback` by trace id.

    python examples/apps/otel_app.py --model-url http://127.0.0.1:8080/v1 \
        --otlp http://127.0.0.1:4318 --system system_prompt.txt --requests requests.jsonl \
        --out answers.jsonl

Each request line is {"text": ..., "expected": ...}: the app asks the model to read the date
out of the text, and its downstream check (which knows the canonical date, as a booking
system would) compares. Needs `pip install openai opentelemetry-instrumentation-openai-v2
"backfeed[otel]"`; message content is captured
(`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`), as `backfeed ingest` needs it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path


def check(answer: str, expected: str) -> tuple[float, str]:
    """The downstream check: the date as YYYY-MM-DD, nothing else."""
    found = re.search(r"\d{4}-\d{2}-\d{2}", answer)
    if found and found.group() == expected and answer.strip() == expected:
        return 1.0, "accepted"
    return 0.0, (f"rejected: the booking system needs the date as {expected!r} and nothing "
                 f"else; the answer was {answer.strip()[:80]!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-url", required=True)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--otlp", required=True, help="the OTLP/HTTP receiver's base URL")
    parser.add_argument("--system", required=True, help="a file with the system prompt")
    parser.add_argument("--requests", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")

    import openai
    from opentelemetry import _logs, trace
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import backfeed as bf

    resource = Resource.create({"service.name": "date-app"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=args.otlp.rstrip("/") + "/v1/traces")))
    trace.set_tracer_provider(provider)
    logs = LoggerProvider(resource=resource)  # the message content comes as log events
    logs.add_log_record_processor(BatchLogRecordProcessor(
        OTLPLogExporter(endpoint=args.otlp.rstrip("/") + "/v1/logs")))
    _logs.set_logger_provider(logs)
    OpenAIInstrumentor().instrument()
    client = openai.OpenAI(base_url=args.model_url, api_key="none")
    system = Path(args.system).read_text()
    tracer = trace.get_tracer("date-app")
    rows = []
    for line in Path(args.requests).read_text().splitlines():
        request = json.loads(line)
        with tracer.start_as_current_span("handle request") as span:
            reply = client.chat.completions.create(
                model=args.model, temperature=0, max_tokens=48,
                messages=[{"role": "system", "content": system},
                          {"role": "user", "content": request["text"]}])
            answer = reply.choices[0].message.content or ""
            score, text = check(answer, request["expected"])
            trace_id = span.get_span_context().trace_id
        bf.feedback(trace_id, score=score, text=text)
        rows.append({"trace_id": f"{trace_id:032x}", "answer": answer, "score": score})
    for flushed in (provider, logs):
        flushed.force_flush()
        flushed.shutdown()
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(json.dumps({"requests": len(rows), "mean": sum(r["score"] for r in rows) / len(rows)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
