"""backfeed.otel.export.Telemetry: a recorded model call becomes a GenAI CLIENT span (content
only when asked for, never a key), which `backfeed ingest` reads back; off, it does nothing."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind

import backfeed as bf
import backfeed.otel as otel
from backfeed.otel.export import Telemetry, traces_url
from backfeed.store import RunStore
from backfeed.train.record import Recorded

SECRET = "sk-live-0123456789abcdef"
MESSAGES = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2+2?"}]


def recorded_call(tmp_path, telemetry, role="judge", **options):
    store = RunStore(tmp_path / "runs.db")
    run = store.create_run(name="n", config={})
    model = Recorded(bf.llm.Scripted(["4"]), store, run, role=role)
    model.telemetry = telemetry
    model.begin_step(3)
    with telemetry.run(run, "n"), telemetry.step(3):
        answer = model.complete(MESSAGES, **options)
    return run, answer, store


def test_a_recorded_call_is_a_genai_client_span_with_its_role_model_tokens_and_options(tmp_path):
    exporter = InMemorySpanExporter()
    run, answer, _ = recorded_call(tmp_path, Telemetry(exporter=exporter), temperature=0.3,
                                   max_tokens=50, seed=1)
    assert answer.text == "4"
    spans = {s.name.split()[0]: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"chat", "backfeed.step", "backfeed.run"}
    chat = spans["chat"]
    assert chat.name == f"chat {bf.llm.Scripted([]).model}" and chat.kind == SpanKind.CLIENT
    attrs = dict(chat.attributes)
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["backfeed.role"] == "judge"
    assert attrs["gen_ai.request.model"] == bf.llm.Scripted([]).model
    assert (attrs["gen_ai.request.temperature"], attrs["gen_ai.request.max_tokens"],
            attrs["gen_ai.request.seed"]) == (0.3, 50, 1)
    assert "gen_ai.usage.input_tokens" in attrs and "gen_ai.usage.output_tokens" in attrs
    assert (attrs["backfeed.run_id"], attrs["backfeed.step"]) == (run, 3)
    # nested: run > step > chat
    assert chat.parent.span_id == spans["backfeed.step"].context.span_id
    assert spans["backfeed.step"].parent.span_id == spans["backfeed.run"].context.span_id


def test_with_content_off_no_message_text_is_in_the_span(tmp_path):
    exporter = InMemorySpanExporter()
    recorded_call(tmp_path, Telemetry(exporter=exporter))
    chat = next(s for s in exporter.get_finished_spans() if s.name.startswith("chat"))
    text = json.dumps(dict(chat.attributes)) + json.dumps([dict(e.attributes) for e in chat.events])
    assert "Be brief" not in text and "2+2" not in text and '"4"' not in text
    assert not any(k.startswith(("gen_ai.input", "gen_ai.output.messages", "gen_ai.system_"))
                   for k in chat.attributes)


def test_with_content_on_the_messages_are_there_and_a_key_in_them_is_redacted(tmp_path,
                                                                              monkeypatch):
    monkeypatch.setenv("ACME_API_KEY", SECRET)
    exporter = InMemorySpanExporter()
    telemetry = Telemetry(exporter=exporter, content=True)
    messages = [*MESSAGES[:1], {"role": "user", "content": f"my key is {SECRET}"}]
    from backfeed.llm import Completion
    telemetry.model_call(role="program", model="openai/gpt-4o-mini", messages=messages,
                         options={"api_key": SECRET, "temperature": None},
                         completion=Completion("ok"), seconds=0.5)
    (chat,) = exporter.get_finished_spans()
    assert SECRET not in json.dumps(dict(chat.attributes))
    assert chat.attributes["gen_ai.provider.name"] == "openai"
    assert "my key is ***" in chat.attributes["gen_ai.input.messages"]
    assert json.loads(chat.attributes["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Be brief."}]
    assert "gen_ai.request.temperature" not in chat.attributes


def test_off_it_touches_no_opentelemetry_code_and_the_call_is_still_stored(tmp_path,
                                                                           monkeypatch):
    import sys

    monkeypatch.delenv("BACKFEED_OTLP_ENDPOINT", raising=False)
    telemetry = Telemetry()
    assert not telemetry.enabled
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)  # importing it would fail
    run, answer, store = recorded_call(tmp_path, telemetry)
    assert answer.text == "4" and len(store.llm_calls(run)) == 1


def test_the_endpoint_variable_turns_it_on(monkeypatch):
    monkeypatch.setenv("BACKFEED_OTLP_ENDPOINT", "http://127.0.0.1:9")
    telemetry = Telemetry()
    assert telemetry.enabled and telemetry.endpoint == "http://127.0.0.1:9"
    telemetry._provider.shutdown()  # nothing was sent


def test_exported_spans_sent_to_backfeed_collect_are_ingested_as_the_calls_they_were(tmp_path):
    from backfeed.otel.collect import Receiver

    receiver = Receiver(tmp_path / "traces.jsonl", port=0).start()
    try:  # the SDK's own OTLP/HTTP exporter (protobuf), to the bare endpoint
        telemetry = Telemetry(receiver.url.removesuffix("/v1/traces"), content=True)
        recorded_call(tmp_path, telemetry, role="program", temperature=0.0)
        telemetry.close()
    finally:
        receiver.close()
    records, report = otel.ingest(receiver.out)
    assert report.model_calls == 1 and report.spans == 3, report.summary()
    (call,) = records
    assert (call["system"], call["messages"], call["output"]) == (
        "Be brief.", [{"role": "user", "content": "What is 2+2?"}], "4")
    assert call["temperature"] == 0.0


def test_the_endpoint_gets_v1_traces_only_when_it_has_no_path():
    assert traces_url("http://h:4318") == "http://h:4318/v1/traces"
    assert traces_url("http://h:4318/") == "http://h:4318/v1/traces"
    assert traces_url("https://h/otlp/v1/traces") == "https://h/otlp/v1/traces"


def test_importing_backfeed_and_its_otel_modules_imports_no_opentelemetry_package():
    import subprocess
    import sys

    code = ("import sys, backfeed, backfeed.otel, backfeed.otel.export, backfeed.otel.collect;"
            "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'google'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_training_run_sends_its_run_its_steps_and_every_model_call_as_nested_spans(tmp_path):
    import train_helpers as h

    exporter = InMemorySpanExporter()
    module = h.Router()
    result = bf.train(module, h.dataset(1), metric=h.metric, steps=2, store=tmp_path / "r.db",
                      optimizer=h.FixOptimizer(module.parameters(), llm=h.scripted()),
                      progress=False, name="traced", telemetry=Telemetry(exporter=exporter))
    spans = exporter.get_finished_spans()
    [run] = [s for s in spans if s.name == "backfeed.run traced"]
    steps = [s for s in spans if s.name.startswith("backfeed.step ")]
    chats = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert run.attributes["backfeed.run_id"] == result.run_id
    assert [s.name for s in steps] == ["backfeed.step 0", "backfeed.step 1"]
    assert all(s.parent.span_id == run.context.span_id for s in steps)
    assert len(chats) == result.spend["calls"] > 0
    assert {c.parent.span_id for c in chats} <= {s.context.span_id for s in steps}
    assert all(c.attributes["backfeed.role"] == "optimizer" for c in chats)
    # each evaluation (a candidate on the examples of a split it had not scored) is a span
    evaluations = [s for s in spans if s.name.startswith("backfeed.evaluate ")]
    stored = result.store.evaluations(result.run_id)
    assert sum(s.attributes["backfeed.examples"] for s in evaluations) == len(stored)
    assert {s.attributes["backfeed.split"] for s in evaluations} <= {"train", "val"}
    inside = {run.context.span_id} | {s.context.span_id for s in steps}
    assert all(s.parent.span_id in inside for s in evaluations)
    first = evaluations[0]
    scores = [e.score for e in stored if e.candidate_id == first.attributes["backfeed.candidate"]
              and e.split == first.attributes["backfeed.split"]]
    assert first.attributes["backfeed.score"] == pytest.approx(
        sum(scores[:first.attributes["backfeed.examples"]])
        / first.attributes["backfeed.examples"])


def test_with_ops_on_each_op_call_is_a_span_inside_its_evaluation(tmp_path):
    import train_helpers as h

    exporter = InMemorySpanExporter()
    module = h.Router()
    result = bf.train(module, h.dataset(1), metric=h.metric, steps=1, store=tmp_path / "r.db",
                      optimizer=h.FixOptimizer(module.parameters(), llm=h.scripted()),
                      progress=False, telemetry=Telemetry(exporter=exporter, ops=True))
    spans = exporter.get_finished_spans()
    ops = [s for s in spans if s.name == "backfeed.op route"]
    evaluations = {s.context.span_id for s in spans if s.name.startswith("backfeed.evaluate")}
    steps = {s.context.span_id for s in spans if s.name.startswith("backfeed.step")}
    assert len(ops) >= len(result.store.evaluations(result.run_id)) > 0
    # inside an evaluation, or a step's rebuild of stored outputs' graphs for the optimizer
    assert all(s.parent.span_id in evaluations | steps for s in ops)
    assert any(s.parent.span_id in evaluations for s in ops)
    assert ops[0].attributes["backfeed.op"] == "route"
    quiet = InMemorySpanExporter()  # ops off (the default): no op spans
    other = h.Router()
    bf.train(other, h.dataset(1), metric=h.metric, steps=1, store=tmp_path / "q.db",
             optimizer=h.FixOptimizer(other.parameters(), llm=h.scripted()),
             progress=False, telemetry=Telemetry(exporter=quiet))
    assert not [s for s in quiet.get_finished_spans() if s.name.startswith("backfeed.op")]
