"""`bf.chat` and `bf.achat`: traced model calls; every node in the messages is an input."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..example import find_example, leak_error
from ..graph import ErrorInfo, ExecutionError, Node, OpInfo, is_tracing
from ..llm import LLM
from ..llm.context import for_chat

CHAT = OpInfo(
    "chat",
    "chat(messages, **options) -> reply",
    "A call to the program's language model: the messages (system prompt, demonstrations, "
    "user turn) go in, the model's reply comes out.",
)
OPTIONS = ("max_tokens", "temperature", "seed")


def chat(
    messages_or_prompt: Any,
    llm: LLM | None = None,
    *,
    schema: Any = None,
    **options: Any,
) -> Any:
    """Call a model from a program, traced: returns a Node of the reply (or of the parsed object).

    `messages_or_prompt` is a prompt (str or node), or a list of chat messages whose `content`
    may be a node (a `bf.param` system prompt, a `bf.format` result), plus any number of demo
    lists (a node holding `[{"input": ..., "output": ...}, ...]`, each demo becoming a user
    and an assistant turn). Every node found is an input of the call, so feedback on the reply
    reaches each parameter behind it.

    `llm=None` uses `bf.llm.current()`: the model of `with bf.llm.using(llm):` (the trainer's
    `program_llm=` is one), else `bf.llm.default()`. `schema` is a JSON schema (dict) or a
    pydantic model class: the backend is asked for JSON of that shape and the node's value is
    the parsed dict (or model instance); an answer that does not parse or validate becomes an
    error node (raised as `bf.ExecutionError`) that feedback can still reach. Options are
    `max_tokens`, `temperature` and `seed`.
    """
    call = _prepare(messages_or_prompt, llm, schema, options)
    completion = call.model.complete(call.messages, json_schema=call.json_schema, **options)
    return call.finish(completion.text)


async def achat(
    messages_or_prompt: Any,
    llm: LLM | None = None,
    *,
    schema: Any = None,
    **options: Any,
) -> Any:
    """`bf.chat` for `async def` programs: the same node, the model awaited (`acomplete`)."""
    call = _prepare(messages_or_prompt, llm, schema, options)
    completion = await call.model.acomplete(call.messages, json_schema=call.json_schema,
                                            **options)
    return call.finish(completion.text)


@dataclass
class _Call:
    """One model call being made: its model, messages, inputs and how to read the answer."""

    model: LLM
    messages: list[dict[str, str]]
    inputs: list[tuple[str, Node]]
    json_schema: dict[str, Any] | None
    validate: Callable[[str], Any] | None

    def finish(self, text: str) -> Any:
        """The reply as a node (the parsed object with a schema), or an error node raised."""
        value: Any = text
        failure: str | None = None
        if self.validate is not None:
            try:
                value = self.validate(text)
            except ValueError as exc:
                value, failure = None, str(exc)
        if not is_tracing():
            if failure is not None:
                raise ValueError(failure)
            return value
        if failure is not None:
            error = ErrorInfo("SchemaError", f"{failure}; the reply was: {text[:300]!r}")
            raise ExecutionError(Node(None, op=CHAT, inputs=tuple(self.inputs), error=error))
        return Node(value, op=CHAT, inputs=tuple(self.inputs))


def _prepare(spec: Any, llm: LLM | None, schema: Any, options: dict[str, Any]) -> _Call:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"bf.chat got unknown option(s) {unknown}; it accepts {list(OPTIONS)}")
    inputs: list[tuple[str, Node]] = []
    messages = _messages(spec, inputs)
    json_schema, validate = _schema(schema)
    return _Call(for_chat(llm), messages, inputs, json_schema, validate)


# -- messages -----------------------------------------------------------------------------


def _messages(spec: Any, inputs: list[tuple[str, Node]]) -> list[dict[str, str]]:
    """Plain chat messages from `spec`, recording each node met in `inputs`."""
    if isinstance(spec, str) or (isinstance(spec, Node) and isinstance(spec._value, str)):
        return [{"role": "user", "content": _text(spec, "user", inputs)}]
    if isinstance(spec, Node):
        spec = [spec]
    if not isinstance(spec, list | tuple):
        raise TypeError(
            "bf.chat takes a prompt (str or node) or a list of messages "
            f"({{'role': ..., 'content': ...}}); got {type(spec).__name__}"
        )
    out: list[dict[str, str]] = []
    for i, item in enumerate(spec):
        if isinstance(item, Node):  # a list of demos (a `list` parameter) or of messages
            turns = demo_messages(item._value)
            chat_only = all(isinstance(d, dict) and "role" in d for d in item._value)
            default = "messages" if chat_only else "demos"
            inputs.append((_input_name(item.name or default, inputs), item))
            out.extend(turns)
        elif isinstance(item, dict) and "role" in item and "content" in item:
            role = str(_plain(item["role"]))
            out.append({"role": role, "content": _text(item["content"], role, inputs)})
        else:
            raise TypeError(
                f"message {i} of bf.chat must be a dict with 'role' and 'content', or a node "
                f"holding a list of demos; got {item!r:.80}"
            )
    return out


def demo_messages(demos: Any) -> list[dict[str, str]]:
    """User/assistant turns for demos given as {"input", "output"} dicts, (input, output)
    pairs, or ready chat messages."""
    if not isinstance(demos, list):
        raise TypeError(f"demos must be a list, got {type(demos).__name__}")
    out: list[dict[str, str]] = []
    for i, demo in enumerate(demos):
        if isinstance(demo, dict) and "role" in demo and "content" in demo:
            out.append({"role": str(demo["role"]), "content": _as_text(demo["content"])})
        elif isinstance(demo, dict) and "input" in demo and "output" in demo:
            out.append({"role": "user", "content": _as_text(demo["input"])})
            out.append({"role": "assistant", "content": _as_text(demo["output"])})
        elif isinstance(demo, list | tuple) and len(demo) == 2:
            out.append({"role": "user", "content": _as_text(demo[0])})
            out.append({"role": "assistant", "content": _as_text(demo[1])})
        else:
            raise TypeError(
                f"demo {i} must be {{'input': ..., 'output': ...}}, an (input, output) pair or "
                f"a chat message; got {demo!r:.80}"
            )
    return out


def _text(content: Any, role: str, inputs: list[tuple[str, Node]]) -> str:
    """The message text; its node (a constant for plain text) becomes an input named by role,
    so the trace shows what the model was asked and demos can be bootstrapped from it."""
    node = content if isinstance(content, Node) else Node(content)
    inputs.append((_input_name(role, inputs), node))
    return _as_text(node._value)


def _input_name(base: str, inputs: list[tuple[str, Node]]) -> str:
    taken = {name for name, _ in inputs}
    if base not in taken:
        return base
    n = 2
    while f"{base}{n}" in taken:
        n += 1
    return f"{base}{n}"


def _plain(value: Any) -> Any:
    return value._value if isinstance(value, Node) else value


def _as_text(value: Any) -> str:
    """A message's text: text as it is, anything else as JSON; a whole dataset example
    (`bf.Example`, labels included) is refused."""
    if isinstance(value, str):
        return value
    example = find_example(value)
    if example is not None:
        raise leak_error(example)
    return json.dumps(value, ensure_ascii=False, default=str)


# -- structured answers -------------------------------------------------------------------


def _schema(schema: Any) -> tuple[dict[str, Any] | None, Any]:
    """(the JSON schema sent to the backend, a function reading the answer) for `schema`."""
    if schema is None:
        return None, None
    if isinstance(schema, type) and hasattr(schema, "model_json_schema"):  # pydantic v2
        def read_model(text: str) -> Any:
            data = parse_json(text)
            try:
                return schema.model_validate(data)
            except Exception as exc:  # pydantic.ValidationError, without importing pydantic
                raise ValueError(f"the JSON does not fit {schema.__name__}: {exc}") from None

        return schema.model_json_schema(), read_model
    if isinstance(schema, dict):
        def read_dict(text: str) -> Any:
            data = parse_json(text)
            check_schema(data, schema)
            return data

        return schema, read_dict
    raise TypeError(
        f"schema must be a JSON schema (dict) or a pydantic model class, not {schema!r:.80}"
    )


def parse_json(text: str) -> Any:
    """The first JSON value in a model's answer (bare, in a code fence, or inside prose)."""
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for i, char in enumerate(stripped):
        if char in "{[":
            try:
                return decoder.raw_decode(stripped, i)[0]
            except ValueError:
                continue
    raise ValueError("the answer holds no JSON value")


def check_schema(data: Any, schema: dict[str, Any]) -> None:
    """Validate with `jsonschema` when installed; else check the type and required keys."""
    try:
        import jsonschema
    except ImportError:
        if schema.get("type") == "object":
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}") from None
            missing = [k for k in schema.get("required", []) if k not in data]
            if missing:
                raise ValueError(f"the JSON object lacks required key(s) {missing}") from None
        return
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        raise ValueError(f"the JSON does not fit the schema: {exc.message}") from None
