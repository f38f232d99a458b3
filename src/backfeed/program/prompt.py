"""`bf.Prompt`: one model call declared by its fields, with a trainable instruction, demos and
output description."""

from __future__ import annotations

import keyword
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..graph import OpInfo, param
from ..graph.module import Module
from ..graph.node import SetupError, _apply
from ..llm import LLM
from .chat import _as_text, chat

TYPES = ("str", "int", "float", "bool", "list[str]")
_JSON_TYPES = {"str": {"type": "string"}, "int": {"type": "integer"},
               "float": {"type": "number"}, "bool": {"type": "boolean"},
               "list[str]": {"type": "array", "items": {"type": "string"}}}
_SHOWN = {"str": "text", "int": "a whole number", "float": "a number", "bool": "true or false",
          "list[str]": "a list of texts"}

_USER = OpInfo("prompt_inputs", "prompt_inputs(**fields) -> text",
               "The user turn of a bf.Prompt: each input field on its own labelled lines.")
_SYSTEM = OpInfo("prompt_system", "prompt_system(instruction, format) -> text",
                 "The system turn of a bf.Prompt: its instruction, then how to write the answer.")
_READ = OpInfo("prompt_output", "prompt_output(reply) -> value",
               "The model's reply read as the prompt's output field(s).")


class SignatureError(SetupError, ValueError):
    """A `bf.Prompt` signature, or the fields it was called with, do not fit together."""


@dataclass(frozen=True)
class Field:
    """One named input or output of a prompt, with its type (one of `TYPES`)."""

    name: str
    type: str = "str"


def parse_signature(spec: str) -> tuple[tuple[Field, ...], tuple[Field, ...]]:
    """The (inputs, outputs) of `"question, context -> answer"`; a field may carry a type
    (`"n: int"`, one of `TYPES`)."""
    if not isinstance(spec, str) or spec.count("->") != 1:
        raise SignatureError(
            f"a prompt signature reads 'inputs -> outputs', e.g. 'question, context -> "
            f"answer'; got {spec!r}")
    left, right = spec.split("->")
    inputs, outputs = _fields(left, spec, "input"), _fields(right, spec, "output")
    clash = sorted({f.name for f in inputs} & {f.name for f in outputs})
    if clash:
        raise SignatureError(f"{clash[0]!r} is both an input and an output in {spec!r}")
    return inputs, outputs


def _fields(side: str, spec: str, what: str) -> tuple[Field, ...]:
    found: list[Field] = []
    for part in (p.strip() for p in side.split(",")):
        if not part:
            raise SignatureError(f"an {what} field of {spec!r} is empty")
        name, _, kind = (s.strip() for s in part.partition(":"))
        kind = kind.replace(" ", "") or "str"
        if not name.isidentifier() or keyword.iskeyword(name):
            raise SignatureError(f"{name!r} in {spec!r} is not a field name (a Python identifier)")
        if kind not in TYPES:
            raise SignatureError(f"field {name!r} of {spec!r} has type {kind!r}; types are "
                                 f"{list(TYPES)}")
        if name in {f.name for f in found}:
            raise SignatureError(f"{what} field {name!r} appears twice in {spec!r}")
        found.append(Field(name, kind))
    return tuple(found)


class Prompt(Module):
    """A model call declared in one line: `bf.Prompt("question, context -> answer")`.

    Called with its inputs by name (or in order), it renders its own messages (a system turn
    with the instruction and the output description, the demos as earlier turns, and a user
    turn with each input labelled), calls the model through `bf.chat` (traced, so feedback on
    the result reaches each part), and reads the reply:
    - one text output: the reply's text, without a leading `answer:` label;
    - one `int`, `float` or `bool` output: that value, read from the reply;
    - several outputs, or a `list[str]`: a dict, asked for as JSON of that shape;
    - `output=` a pydantic model class or a JSON schema: the validated object (the signature's
      one output names it).
    A reply that cannot be read becomes an error node whose feedback reaches the parameters.

    Its parameters, each changeable by any optimizer: `instruction` (text), `demos` (a list of
    `{"input": <user turn>, "output": <reply>}`, as `bf.optim.FewShot` fills it; demos given
    as dicts of the signature's fields are rendered so) and `format` (the output description).
    Within a module they take its attribute path: `self.answer = bf.Prompt(...)` gives
    `answer.instruction`, `answer.demos`, `answer.format`. `llm` and `options` (`max_tokens`,
    `temperature`, `seed`) go to `bf.chat`.
    """

    def __init__(
        self,
        signature: str,
        instruction: str | None = None,
        *,
        output: Any = None,
        demos: Sequence[Any] = (),
        format: str | None = None,
        llm: LLM | None = None,
        **options: Any,
    ) -> None:
        inputs, outputs = parse_signature(signature)
        if output is not None and len(outputs) != 1:
            raise SignatureError(
                f"output= gives the shape of one output; {signature!r} names {len(outputs)}")
        self._signature, self._inputs, self._outputs = signature, inputs, outputs
        self._schema = output if output is not None else _schema_of(outputs)
        self._given = output is not None  # the one output is that object, not a field of it
        self._llm, self._options = llm, options
        self.instruction = param(instruction if instruction is not None
                                 else default_instruction(inputs, outputs), name="instruction")
        self.demos = param([self._demo(d) for d in demos], name="demos")
        self.format = param(format if format is not None
                            else describe_output(outputs, self._schema), name="format")

    def __repr__(self) -> str:
        return f"bf.Prompt({self._signature!r})"

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self._inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self._outputs)

    def forward(self, *args: Any, **fields: Any) -> Any:
        values = self._bind(args, fields)
        names = self.input_names
        user = _apply(_USER, lambda *vs: render_inputs(dict(zip(names, vs))), names,
                      *(values[n] for n in names))
        system = _apply(_SYSTEM, _join, ("instruction", "format"), self.instruction, self.format)
        reply = chat([{"role": "system", "content": system}, self.demos,
                      {"role": "user", "content": user}], self._llm,
                     schema=self._schema, **self._options)
        if self._schema is not None:
            return reply
        (out,) = self._outputs
        return _apply(_READ, lambda text: read_field(text, out), ("reply",), reply)

    def _bind(self, args: tuple[Any, ...], fields: dict[str, Any]) -> dict[str, Any]:
        names = self.input_names
        if len(args) > len(names):
            raise SignatureError(f"{self!r} takes {len(names)} input(s) {list(names)}; "
                                 f"got {len(args)} positional")
        values = dict(zip(names, args))
        twice = sorted(set(values) & set(fields))
        unknown = sorted(set(fields) - set(names))
        if twice or unknown:
            what = f"input {twice[0]!r} twice" if twice else f"unknown input {unknown[0]!r}"
            raise SignatureError(f"{self!r} got {what}; its inputs are {list(names)}")
        values.update(fields)
        missing = [n for n in names if n not in values]
        if missing:
            raise SignatureError(f"{self!r} is missing input {missing[0]!r}; its inputs are "
                                 f"{list(names)}")
        return values

    def _demo(self, demo: Any) -> Any:
        """A demo as {"input", "output"} turns; one given by field names is rendered."""
        if isinstance(demo, dict) and not ({"input", "output"} <= set(demo) or "role" in demo):
            missing = [f.name for f in (*self._inputs, *self._outputs) if f.name not in demo]
            if missing:
                raise SignatureError(f"demo {demo!r:.80} of {self!r} lacks field {missing[0]!r}")
            single = len(self._outputs) == 1
            reply = (demo[self._outputs[0].name] if single and (
                self._schema is None or self._given) else
                {f.name: demo[f.name] for f in self._outputs})
            if hasattr(reply, "model_dump"):  # a pydantic instance: its JSON, as asked for
                reply = reply.model_dump(mode="json")
            return {"input": render_inputs({f.name: demo[f.name] for f in self._inputs}),
                    "output": _as_text(reply)}
        return demo


def default_instruction(inputs: tuple[Field, ...], outputs: tuple[Field, ...]) -> str:
    """"Given the question and context, write the answer." for `question, context -> answer`."""
    return f"Given the {_and(f.name for f in inputs)}, write the {_and(f.name for f in outputs)}."


def describe_output(outputs: tuple[Field, ...], schema: Any) -> str:
    """How the reply is written, said to the model (the `format` parameter's start value)."""
    if schema is None:
        (out,) = outputs
        what = "" if out.type == "str" else f" ({_SHOWN[out.type]})"
        return f"Answer with the {out.name}{what} only, no other text."
    shape = schema.model_json_schema() if hasattr(schema, "model_json_schema") else schema
    props = shape.get("properties") or {}
    if not props:
        return "Answer with one JSON value of the schema you are given, and nothing else."
    fields = ", ".join(f'"{k}": <{_json_shown(v)}>' for k, v in props.items())
    return f"Answer with one JSON object and nothing else: {{{fields}}}"


def render_inputs(values: dict[str, Any]) -> str:
    """Each input on its own labelled lines: `question: ...`; a list as numbered lines."""
    parts = []
    for name, value in values.items():
        if isinstance(value, list | tuple):
            body = "\n".join(f"[{i}] {_as_text(v)}" for i, v in enumerate(value, 1))
            parts.append(f"{name}:\n{body}" if body else f"{name}: (none)")
        else:
            text = _as_text(value)
            parts.append(f"{name}:\n{text}" if "\n" in text else f"{name}: {text}")
    return "\n\n".join(parts)


def read_field(text: str, field: Field) -> Any:
    """One output read from a reply: text without its `name:` label, or a number or bool."""
    body = re.sub(rf"^\s*\**{re.escape(field.name)}\**\s*:\s*", "", text.strip(), flags=re.I)
    body = body.strip()
    if field.type == "str":
        return body
    if field.type == "bool":
        word = re.match(r"\W*(\w+)", body)
        found = word.group(1).lower() if word else ""
        if found in ("true", "yes"):
            return True
        if found in ("false", "no"):
            return False
        raise ValueError(f"{field.name} must be true or false; the reply was {text[:120]!r}")
    grouped = re.sub(r"(?<=\d),(?=\d{3}\b)", "", body)  # 1,234 is a thousand; 3,5 is not
    number = re.search(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", grouped)
    if number is None:
        raise ValueError(f"{field.name} must be {_SHOWN[field.type]}; the reply was "
                         f"{text[:120]!r}")
    found = number.group()
    if field.type == "int":
        if re.fullmatch(r"-?\d+", found):
            return int(found)
        value = float(found)
        if not value.is_integer():
            raise ValueError(f"{field.name} must be a whole number; the reply has {value}")
        return int(value)
    return float(found)


def _schema_of(outputs: tuple[Field, ...]) -> dict[str, Any] | None:
    """The JSON schema asked for: None for one plain output, read from the text instead."""
    if len(outputs) == 1 and outputs[0].type != "list[str]":
        return None
    return {"type": "object", "properties": {f.name: _JSON_TYPES[f.type] for f in outputs},
            "required": [f.name for f in outputs], "additionalProperties": False}


def _json_shown(prop: dict[str, Any]) -> str:
    kind = prop.get("type", "value")
    if kind == "array":
        return f"list of {_json_shown(prop.get('items') or {})}"
    return {"string": "text", "integer": "whole number"}.get(str(kind), str(kind))


def _join(instruction: Any, format: Any) -> str:
    return "\n\n".join(str(part).strip() for part in (instruction, format) if str(part).strip())


def _and(names: Any) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


__all__ = ["Field", "Prompt", "SignatureError", "parse_signature", "read_field",
           "render_inputs"]
