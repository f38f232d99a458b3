"""The shapes of answers: JSON schemas for short typed values, fenced-block skeletons for code
and text, the prefix an embedded model is made to start with, and the answer's token limit."""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any

from .._text import clip
from .._tokens import estimate_tokens
from ..graph import Param
from ..graph.render import (
    cuttable,
    param_lines,
    param_value_text,
    shown_length,
    shown_lines,
    value_text,
)
from . import prompts
from .parse import function_name, is_block

_TYPES = {
    "str": {"type": "string"},
    "code": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "list": {"type": "array"},
    "dict": {"type": "object"},
}
_PLACEHOLDER = {
    "str": '"<the new text>"',
    "code": '"<python source of the whole function>"',
    "int": "<integer>",
    "float": "<number>",
    "bool": "<true or false>",
    "list": "<list>",
    "dict": "<object>",
}


def value_schema(param: Param) -> dict[str, Any]:
    """The JSON schema of one parameter's value: its type, bounds and choices."""
    if param.choices is not None and all(
        isinstance(c, str | int | float | bool) or c is None for c in param.choices
    ):
        return {"enum": list(param.choices)}
    schema = dict(_TYPES[param.kind])
    if param.bounds is not None:
        lo, hi = param.bounds
        if lo is not None:
            schema["minimum"] = lo
        if hi is not None:
            schema["maximum"] = hi
    return schema


def suggestion_schema(params: list[Param]) -> dict[str, Any]:
    """An object whose only keys are the parameter names, each with its type (all required)."""
    return {
        "type": "object",
        "properties": {p.name: value_schema(p) for p in params},
        "required": [p.name for p in params],
        "additionalProperties": False,
    }


def answer_schema(params: list[Param], reasoning_chars: int) -> dict[str, Any]:
    """`{reasoning, suggestion, stop}` with the reasoning's length capped."""
    return {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string", "maxLength": reasoning_chars},
            "suggestion": suggestion_schema(params),
            "stop": {"type": "boolean"},
        },
        "required": ["reasoning", "suggestion", "stop"],
        "additionalProperties": False,
    }


def members_schema(params: list[Param], reasoning_chars: int, count: int) -> dict[str, Any]:
    """`{reasoning, members: [suggestion, ...], stop}` with exactly `count` members."""
    return {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string", "maxLength": reasoning_chars},
            "members": {
                "type": "array",
                "items": suggestion_schema(params),
                "minItems": count,
                "maxItems": count,
            },
            "stop": {"type": "boolean"},
        },
        "required": ["reasoning", "members", "stop"],
        "additionalProperties": False,
    }


def gradients_schema(nodes: list[str], gradient_chars: int) -> dict[str, Any]:
    """`{gradients: {node: text}}` for exactly the named nodes."""
    text = {"type": "string", "maxLength": gradient_chars}
    return {
        "type": "object",
        "properties": {
            "gradients": {
                "type": "object",
                "properties": {n: text for n in nodes},
                "required": list(nodes),
                "additionalProperties": False,
            }
        },
        "required": ["gradients"],
        "additionalProperties": False,
    }


def update_schema(param: Param, reasoning_chars: int) -> dict[str, Any]:
    """`{reasoning, value}` for one parameter."""
    return {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string", "maxLength": reasoning_chars},
            "value": value_schema(param),
        },
        "required": ["reasoning", "value"],
        "additionalProperties": False,
    }


def example(params: list[Param]) -> str:
    """`{"name": <type>, ...}`: the shape of a suggestion, shown to the model."""
    return "{" + ", ".join(f'"{p.name}": {_PLACEHOLDER[p.kind]}' for p in params) + "}"


__all__ = ["answer_format", "answer_limit", "answer_schema", "answer_schema_for", "clip",
           "describe", "names_text", "partial_edits", "prefix", "reached_limit", "rewrite_tokens",
           "shown_in_part", "value_text", "values_text", "variants_format"]


def names_text(params: list[Param]) -> str:
    return ", ".join(p.name for p in params)


def describe(params: list[Param], value_chars: int = 600) -> str:
    """One block per parameter: name, type, bounds/choices, description, current value (code
    and text of several lines as their own lines), cut to `value_chars` (`shown_in_part`
    names the parameters it cuts)."""
    lines = []
    for p in params:
        lines += param_lines(p, choices_chars=200)
        limit = value_chars if cuttable(p) else None  # a list or dict is shown whole
        if p.kind == "code" or shown_lines(p._value):
            lines.append("  current value:\n" + param_value_text(p, limit)
                         .removeprefix("  value:\n"))
        else:
            lines.append(f"  current value = {value_text(p._value, limit)}")
    return "\n".join(lines)


EDIT_TOKENS = 768  # the answer's room for the edits to one parameter (under Local's 1,024)


def rewrite_tokens(param: Param) -> int:
    """Completion tokens to write `param`'s value anew, with room to grow (twice its size)."""
    return 2 * estimate_tokens(json.dumps(param._value, default=repr)) + 24


def answer_tokens(params: list[Param], reasoning_chars: int, values: int = 1,
                  edits: Collection[str] = ()) -> int:
    """Enough completion tokens for the reasoning plus `values` copies of every value, grown
    (for a parameter answered with edits, `EDIT_TOKENS` or its rewrite if smaller)."""
    per_copy = sum(min(rewrite_tokens(p), EDIT_TOKENS) if p.name in edits else rewrite_tokens(p)
                   for p in params)
    return reasoning_chars // 3 + values * per_copy + 48


def reached_limit(completion: Any, limit: int) -> bool:
    """Whether an answer may have been cut by its token limit. One answer of a request for
    several carries no count of its own (the request's tokens are on the first), so its
    text's estimated tokens decide."""
    own = completion.usage.completion_tokens
    if completion.alternatives or (own == 0 and not completion.cached):
        return estimate_tokens(completion.text) >= 0.9 * limit
    return own >= limit


def partial_edits(params: list[Param], value_chars: int | None) -> dict[str, str]:
    """The values a prompt that cuts them to `value_chars` shows in part, each asked for as
    edits, with why (the `edits` of `answer_format` and `variants_format`)."""
    return {name: prompts.EDIT_WHY_PARTIAL for name in shown_in_part(params, value_chars)}


def shown_in_part(params: list[Param], value_chars: int | None) -> set[str]:
    """The code and text parameters `describe` and `values_text` show in part when they cut
    values to `value_chars` (other values are shown whole)."""
    if value_chars is None:
        return set()
    return {p.name for p in params if cuttable(p) and shown_length(p) > value_chars}


# -- fenced-block answers ---------------------------------------------------------------------


def code_head(param: Param) -> str:
    """The `def name(args):` line of a code parameter's current function."""
    name = function_name(param._value)
    for line in param._value.splitlines():
        if name is not None and line.lstrip().startswith(("def ", "async def ")) and name in line:
            return line.strip()
    return f"def {name or param.name}(...):"


def block_lang(param: Param) -> str:
    return "python" if param.kind == "code" else "text"


def block_skeleton(params: list[Param], edits: dict[str, str] | None = None) -> str:
    """The answer's shape in words, one line per section: a `### name` line, then the value in
    a fenced block (code and text), and the typed values as one JSON object. No placeholder
    stands where a value goes: small models copy placeholders. `edits`: the parameters
    answered with SEARCH/REPLACE edits instead, each with why (said in the line)."""
    lines = []
    edits = edits or {}
    for p in params:
        if p.name in edits and is_block(p):
            what = f"the function `{code_head(p).removeprefix('def ').rstrip(':')}`" \
                if p.kind == "code" else p.name
            lines.append(prompts.EDIT_SECTION.render(name=p.name, what=what, lang=block_lang(p),
                                                     why=edits[p.name]))
        elif p.kind == "code":
            lines.append(f"- a line `### {p.name}`, then the whole new function "
                         f"`{code_head(p).removeprefix('def ').rstrip(':')}` (def line, body and "
                         "the imports it needs) in one ```python block;")
        elif is_block(p):
            lines.append(f"- a line `### {p.name}`, then the whole new text of {p.name} in one "
                         "```text block;")
    typed = [p for p in params if not is_block(p)]
    if typed:
        example_json = "{" + ", ".join(f'"{p.name}": {_PLACEHOLDER[p.kind]}' for p in typed) + "}"
        lines.append(f"- a line `### values`, then {example_json} in one ```json block;")
    return "\n".join(lines)


def prefix(params: list[Param], edits: Collection[str] = ()) -> str:
    """What an embedded model is made to start its answer with: the first block's frame. For
    code, the current `def` line whole (the program calls the function with these arguments),
    so the model writes the body from a line break, not from inside the signature, where a
    0.5B model wrote `def f(### text ...`; up to `def name(` when the line is not whole.
    A parameter in `edits` starts with its first edit's `<<<<<<< SEARCH` line, so that the
    model writes edits, not the whole value the heading would invite."""
    for p in params:
        if is_block(p):
            head = f"### {p.name}\n```{block_lang(p)}\n"
            if p.name in edits:  # answered with edits: the first one starts here
                return head + "<<<<<<< SEARCH\n"
            if p.kind == "code":
                name = function_name(p._value)
                line = code_head(p)
                if line.endswith(":") and name is not None:
                    head += line + "\n"
                elif name is not None:
                    head += f"def {name}("
            return head
    return ""


def answer_limit(params: list[Param], reasoning_chars: int, budget_tokens: int,
                 max_tokens: int | None = None, values: int = 1,
                 edits: Collection[str] = ()) -> int:
    """The completion limit: `max_tokens` when given (it may raise or lower the limit); else
    enough for every value grown (`edits`: the parameters answered with edits), and at least
    half the prompt budget, so that a short value (a seed prompt) can grow into a long one in
    one step. (`Prime.answer_limit` lowers it to the model's cap; backends lower it too.)"""
    if max_tokens is not None:
        return max_tokens
    return max(answer_tokens(params, reasoning_chars, values, edits), budget_tokens // 2)


_FIELD = re.compile(r"(?<!\{)\{([A-Za-z_]\w*)\}(?!\})")


def is_prose(param: Param) -> bool:
    """A text parameter with no `{fields}`: an instruction, not a template."""
    return param.kind == "str" and not fields(param)


def fields(param: Param) -> list[str]:
    """The `{name}` format fields a text parameter's description or value mentions, in order.
    Told to end a template with ` Total: {total} EUR`, a 0.5B model wrote `Total: 100 EUR`;
    with the fields listed as fields it wrote the field in 4 answers of 4 (BENCHMARKS.md)."""
    found = _FIELD.findall(f"{param.description or ''}\n{param._value}")
    return list(dict.fromkeys(found))


def plain_line(params: list[Param]) -> str:
    """The block format's last line: code's rules when any parameter is code or a template
    with fields, else a prose text's (it may hold a JSON example: issue 19's JSON-shape
    convention was refused "no JSON quoting", and the 1.5B wrote "a JSON array" instead)."""
    prose = all(is_prose(p) for p in params if is_block(p))
    return prompts.PLAIN_PROSE if prose else prompts.PLAIN_CODE


def answer_format(params: list[Param], reasoning_chars: int,
                  edits: dict[str, str] | None = None) -> str:
    """How to answer: fenced blocks when any parameter is code or text, else one JSON object
    (`edits`: as in `block_skeleton`)."""
    if any(is_block(p) for p in params):
        return prompts.BLOCK_FORMAT.render(skeleton=block_skeleton(params, edits),
                                           plain=plain_line(params))
    return prompts.ANSWER_FORMAT.render(
        reasoning_chars=reasoning_chars, example=example(params), names=names_text(params)
    )


def answer_schema_for(params: list[Param], reasoning_chars: int) -> dict[str, Any] | None:
    """The JSON schema that constrains the whole answer, or None for a block answer."""
    if any(is_block(p) for p in params):
        return None
    return answer_schema(params, reasoning_chars)


def values_text(values: dict[str, Any], params: list[Param], value_chars: int) -> str:
    """Values for a prompt: typed ones inline as JSON, code and text as fenced blocks."""
    kinds = {p.name: p for p in params}
    inline = [f"{k}={value_text(v, value_chars)}" for k, v in values.items()
              if k not in kinds or not is_block(kinds[k])]
    blocks = [f"### {k}\n```{block_lang(kinds[k])}\n{clip(str(v), value_chars)}\n```"
              for k, v in values.items() if k in kinds and is_block(kinds[k])]
    return "\n".join(([", ".join(inline)] if inline else []) + blocks)


def variants_format(params: list[Param], count: int, reasoning_chars: int,
                    edits: dict[str, str] | None = None) -> str:
    """How to answer with `count` variants: `## Candidate N` sections of blocks, or JSON."""
    if any(is_block(p) for p in params):
        return prompts.VARIANTS_FORMAT.render(count=count, skeleton=block_skeleton(params, edits),
                                              plain=plain_line(params))
    return prompts.MEMBERS_FORMAT.render(reasoning_chars=reasoning_chars, example=example(params))
