"""What a span says about a model call, read from the OpenTelemetry GenAI attribute names
(current and older) and from OpenInference's."""

from __future__ import annotations

import json
import re
from typing import Any

from .otlp import Span

MODEL_OPERATIONS = {"chat", "text_completion", "generate_content", "completion"}
EVALUATION_EVENT = "gen_ai.evaluation.result"
DETAILS_EVENT = "gen_ai.client.inference.operation.details"  # content carried on an event


def is_model_call(attrs: dict[str, Any]) -> bool:
    """A chat or completion call: by its GenAI operation, else by a model name or by
    OpenInference's span kind LLM. Agents, tools and embeddings are not model calls."""
    operation = attrs.get("gen_ai.operation.name")
    if operation is not None:
        return operation in MODEL_OPERATIONS
    kind = attrs.get("openinference.span.kind")
    if kind is not None:
        return str(kind).upper() == "LLM"
    return any(k in attrs for k in ("gen_ai.request.model", "gen_ai.system", "llm.model_name"))


# one event per message (the official instrumentations' content, on the span or as logs)
MESSAGE_EVENTS = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                  "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}
CHOICE_EVENT = "gen_ai.choice"


def content_attributes(span: Span) -> dict[str, Any]:
    """The span's attributes, with those of a content-carrying event added, and messages
    written one event each (`gen_ai.user.message`, ..., `gen_ai.choice`) as
    `gen_ai.input.messages` / `gen_ai.output.messages` where the span has none."""
    attrs = dict(span.attributes)
    inputs, outputs = [], []
    for event in span.events:
        if event.name == DETAILS_EVENT or event.name.startswith("gen_ai.content."):
            attrs.update({k: v for k, v in event.attributes.items() if k not in attrs})
        body = event.attributes.get("body")
        body = body if isinstance(body, dict) else event.attributes
        if event.name in MESSAGE_EVENTS:
            inputs.append({"role": str(body.get("role") or MESSAGE_EVENTS[event.name]),
                           "content": body.get("content")})
        elif event.name == CHOICE_EVENT:
            message = body.get("message") if isinstance(body.get("message"), dict) else body
            outputs.append({"role": str(message.get("role") or "assistant"),
                            "content": message.get("content")})
    if inputs and "gen_ai.input.messages" not in attrs:
        attrs["gen_ai.input.messages"] = inputs
    if outputs and "gen_ai.output.messages" not in attrs:
        attrs["gen_ai.output.messages"] = outputs
    return attrs


def messages_of(attrs: dict[str, Any]) -> tuple[list[dict[str, str]], list[dict[str, str]], str]:
    """(input messages, output messages, system instructions), each message {role, content}."""
    system = _system(attrs.get("gen_ai.system_instructions"))
    inputs = (_messages(attrs.get("gen_ai.input.messages"))
              or _messages(attrs.get("gen_ai.prompt"))
              or _indexed(attrs, "gen_ai.prompt.", ".role", ".content")
              or _indexed(attrs, "llm.input_messages.", ".message.role", ".message.content")
              or _value_messages(attrs.get("input.value"), "user"))
    outputs = (_messages(attrs.get("gen_ai.output.messages"))
               or _messages(attrs.get("gen_ai.completion"))
               or _indexed(attrs, "gen_ai.completion.", ".role", ".content")
               or _indexed(attrs, "llm.output_messages.", ".message.role", ".message.content")
               or _value_messages(attrs.get("output.value"), "assistant"))
    systems = [m["content"] for m in inputs if m["role"] == "system"]
    if not system and systems:
        system = "\n\n".join(systems)
    return [m for m in inputs if m["role"] != "system"], outputs, system


def _loads(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return value


def _text(content: Any) -> str:
    """A message's text: a string, or the GenAI `parts` (text parts as they are, others as
    compact JSON so that a tool call is not lost)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and "content" in part:
                texts.append(str(part["content"]))
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                texts.append(json.dumps(part, ensure_ascii=False, sort_keys=True))
        return "\n".join(texts)
    return "" if content is None else json.dumps(content, ensure_ascii=False, sort_keys=True)


def _messages(value: Any) -> list[dict[str, str]]:
    value = _loads(value)
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        value = value["messages"]
    if not isinstance(value, list):
        return []
    found = []
    for item in value:
        if isinstance(item, dict):
            content = item.get("parts", item.get("content"))
            found.append({"role": str(item.get("role") or "user"), "content": _text(content)})
    return found


def _system(value: Any) -> str:
    loaded = _loads(value)
    if isinstance(loaded, list):
        return _text(loaded)
    return value if isinstance(value, str) else ""


_INDEX = re.compile(r"(\d+)")


def _indexed(attrs: dict[str, Any], prefix: str, role: str, content: str) -> list[dict[str, str]]:
    """Messages flattened as PREFIX.N.role / PREFIX.N.content, in the order of N."""
    by_index: dict[int, dict[str, str]] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        number = _INDEX.match(rest)
        if number is None:
            continue
        field = rest[number.end():]
        message = by_index.setdefault(int(number.group(1)), {"role": "", "content": ""})
        if field == role:
            message["role"] = str(value)
        elif field == content:
            message["content"] = _text(value)
        elif field.startswith(".message.contents.") and field.endswith(".message_content.text"):
            message["content"] = (message["content"] + "\n" + str(value)).lstrip("\n")
    return [{"role": m["role"] or "user", "content": m["content"]}
            for _, m in sorted(by_index.items()) if m["content"] or m["role"]]


def _value_messages(value: Any, role: str) -> list[dict[str, str]]:
    """OpenInference's input.value / output.value: JSON with messages (or choices), else text."""
    if value is None:
        return []
    loaded = _loads(value)
    if isinstance(loaded, dict):
        if isinstance(loaded.get("messages"), list):
            return _messages(loaded["messages"])
        choices = loaded.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            return _messages([c.get("message", {}) for c in choices])
    return [{"role": role, "content": value if isinstance(value, str) else _text(loaded)}]


def first(attrs: dict[str, Any], *names: str) -> Any:
    """The value of the first of `names` the span has."""
    for name in names:
        if attrs.get(name) is not None:
            return attrs[name]
    return None


def invocation(attrs: dict[str, Any], name: str) -> Any:
    """An option from OpenInference's llm.invocation_parameters JSON."""
    params = _loads(attrs.get("llm.invocation_parameters"))
    return params.get(name) if isinstance(params, dict) else None


def evaluation(attrs: dict[str, Any]) -> dict[str, Any]:
    """A gen_ai.evaluation.result event as {name, score, label, text}."""
    score = attrs.get("gen_ai.evaluation.score.value")
    if isinstance(score, bool) or not isinstance(score, int | float):
        try:
            score = float(score) if isinstance(score, str) else None
        except ValueError:
            score = None
    return {"name": attrs.get("gen_ai.evaluation.name"), "score": score,
            "label": attrs.get("gen_ai.evaluation.score.label"),
            "text": attrs.get("gen_ai.evaluation.explanation")}
