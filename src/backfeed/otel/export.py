"""A run's own model calls as OpenTelemetry GenAI CLIENT spans, sent to an OTLP endpoint;
off (and free) unless an endpoint or an exporter is given."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

from ..llm import Completion, Message
from ..llm._keys import redact, secret_values

ENDPOINT_VARIABLE = "BACKFEED_OTLP_ENDPOINT"


class Telemetry:
    """Emits a span for the run, each step and each evaluation (one candidate on the examples
    of one split it had not scored yet, with their mean score), and a `chat {model}` CLIENT
    span for every model call a run makes, with the GenAI
    attributes (model, tokens, options) and `backfeed.role` (optimizer, judge or program);
    message content only with `content=True`, with credentials redacted. API keys are never
    attributes: only the known options are read.

    `endpoint`: an OTLP/HTTP endpoint (http://host:4318, /v1/traces added when it has no path),
    else $BACKFEED_OTLP_ENDPOINT; `exporter`: any SDK SpanExporter instead (tests pass an
    InMemorySpanExporter). With neither, it is off: every method returns at once.
    `ops=True` adds a span for each `@bf.op` call the program makes in the run's process
    (`backfeed.op {name}`; many per example, so off by default; not from Ray workers).
    """

    def __init__(self, endpoint: str | None = None, *, content: bool = False,
                 service_name: str = "backfeed", headers: dict[str, str] | None = None,
                 exporter: Any = None, ops: bool = False) -> None:
        self.endpoint = endpoint or os.environ.get(ENDPOINT_VARIABLE) or None
        self.content = content
        self.ops = ops
        self._tracer: Any = None
        self._provider: Any = None
        if self.endpoint is None and exporter is None:
            return
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        except ImportError:
            raise ImportError("exporting spans needs the OpenTelemetry SDK: "
                              "pip install 'backfeed[otel]'") from None
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if exporter is None:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError:
                raise ImportError("exporting spans to an endpoint needs the OTLP exporter: "
                                  "pip install 'backfeed[otel]'") from None
            exporter = OTLPSpanExporter(endpoint=traces_url(self.endpoint), headers=headers)
            provider.add_span_processor(BatchSpanProcessor(exporter))
        else:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        from importlib.metadata import PackageNotFoundError, version

        try:
            own = version("backfeed")
        except PackageNotFoundError:  # a source checkout that was never installed
            own = "0"
        self._provider = provider
        self._tracer = provider.get_tracer("backfeed", own)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @contextlib.contextmanager
    def run(self, run_id: str, name: str = "") -> Iterator[Any]:
        """A span around a training run; model-call spans in its context nest under it."""
        if self._tracer is None:
            yield None
            return
        with self._tracer.start_as_current_span(
                "backfeed.run" + (f" {name}" if name else ""),
                attributes={"backfeed.run_id": run_id, "backfeed.run_name": name}) as span:
            yield span

    @contextlib.contextmanager
    def step(self, step: int) -> Iterator[Any]:
        """A span around one optimizer step (inside `run`)."""
        if self._tracer is None:
            yield None
            return
        with self._tracer.start_as_current_span(f"backfeed.step {step}",
                                                attributes={"backfeed.step": step}) as span:
            yield span

    @contextlib.contextmanager
    def evaluation(self, candidate: int, split: str, examples: int) -> Iterator[Any]:
        """A span around one candidate's evaluation on `examples` examples of `split`; the
        caller sets `backfeed.score` (their mean) when it is known."""
        if self._tracer is None:
            yield None
            return
        with self._tracer.start_as_current_span(
                f"backfeed.evaluate {split}",
                attributes={"backfeed.candidate": candidate, "backfeed.split": split,
                            "backfeed.examples": examples}) as span:
            yield span

    @contextlib.contextmanager
    def op(self, name: str, code: str | None) -> Iterator[Any]:
        """A span around one op call (`ops=True`); `code` names its code parameter, if any."""
        if self._tracer is None:
            yield None
            return
        attributes = {"backfeed.op": name}
        if code is not None:
            attributes["backfeed.code_param"] = code
        with self._tracer.start_as_current_span(f"backfeed.op {name}",
                                                attributes=attributes) as span:
            yield span

    def model_call(self, *, role: str, model: str, messages: list[Message],
                   options: dict[str, Any], completion: Completion, seconds: float,
                   run_id: str | None = None, step: int | None = None) -> None:
        """One finished call as a span that ended now and lasted `seconds`."""
        if self._tracer is None:
            return
        from opentelemetry.trace import SpanKind

        end = time.time_ns()
        span = self._tracer.start_span(f"chat {model}".strip(), kind=SpanKind.CLIENT,
                                       start_time=end - int(seconds * 1e9),
                                       attributes=self.attributes(role, model, messages,
                                                                  options, completion))
        for key, value in (("backfeed.run_id", run_id), ("backfeed.step", step)):
            if value is not None:
                span.set_attribute(key, value)
        span.end(end_time=end)

    def attributes(self, role: str, model: str, messages: list[Message],
                   options: dict[str, Any], completion: Completion) -> dict[str, Any]:
        """The span's GenAI attributes (content only when `self.content`)."""
        attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model,
                                 "backfeed.role": role,
                                 "gen_ai.usage.input_tokens": completion.usage.prompt_tokens,
                                 "gen_ai.usage.output_tokens": completion.usage.completion_tokens,
                                 "backfeed.cost_usd": completion.cost_usd,
                                 "backfeed.cached": completion.cached}
        if "/" in model:  # a litellm name: openai/gpt-4o-mini
            attrs["gen_ai.provider.name"] = model.split("/", 1)[0]
        if completion.model:
            attrs["gen_ai.response.model"] = completion.model
        for option in ("temperature", "max_tokens", "seed"):
            if options.get(option) is not None:
                attrs[f"gen_ai.request.{option}"] = options[option]
        if options.get("json_schema") is not None:
            attrs["gen_ai.output.type"] = "json"
        if self.content:
            secrets = secret_values(options)
            system = [m.get("content", "") for m in messages if m.get("role") == "system"]
            if system:
                attrs["gen_ai.system_instructions"] = _json(
                    [{"type": "text", "content": text} for text in system], secrets)
            attrs["gen_ai.input.messages"] = _json(
                [{"role": m.get("role", "user"),
                  "parts": [{"type": "text", "content": m.get("content", "")}]}
                 for m in messages if m.get("role") != "system"], secrets)
            attrs["gen_ai.output.messages"] = _json(
                [{"role": "assistant", "parts": [{"type": "text", "content": text}]}
                 for text in (completion.text, *completion.alternatives)], secrets)
        return attrs

    def flush(self) -> None:
        if self._provider is not None:
            self._provider.force_flush()

    def close(self) -> None:
        """Send what is left and stop."""
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = self._tracer = None


def _json(value: Any, secrets: list[str]) -> str:
    return redact(json.dumps(value, ensure_ascii=False), secrets)


def traces_url(endpoint: str) -> str:
    """The traces URL of an OTLP/HTTP endpoint: /v1/traces added to a bare host:port."""
    from urllib.parse import urlsplit

    return endpoint.rstrip("/") + "/v1/traces" if urlsplit(endpoint).path in ("", "/") \
        else endpoint
