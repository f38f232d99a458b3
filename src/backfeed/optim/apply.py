"""The one place an LLM answer becomes parameter updates: tolerant parsing, typed coercion.

Every optimizer goes through `parse_answer` and `apply_suggestion`, so every proposal is
applied, coerced to the parameter's type by a rule listed in `coerce`, or rejected with a
reason recorded in the step report. Nothing the model writes makes these functions raise.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

from ..graph import Param
from .base import ParamUpdate, StepReport

# Rejection kinds, as recorded in `ParamUpdate.kind`.
UNKNOWN, TYPE, BOUNDS, CONSTRAINT, SYNTAX = "unknown", "type", "bounds", "constraint", "syntax"
# Top-level keys of an answer that are not parameter values.
META_KEYS = ("reasoning", "suggestion", "stop", "answer", "explanation", "analysis")


class Rejected(ValueError):
    """A proposed value cannot become the parameter's value; `kind` says which rule failed."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Answer:
    """What could be read from one model answer."""

    suggestion: dict[str, Any] = field(default_factory=dict)
    reasoning: str = ""
    stop: bool = False
    problems: list[str] = field(default_factory=list)  # what went wrong while reading it
    unreadable: dict[str, str] = field(default_factory=dict)  # name -> why its value was lost
    data: dict[str, Any] | None = None  # the whole JSON object, when one was read


# -- reading JSON out of free text -------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)(?:```|\Z)", re.S)


def _balanced_objects(text: str) -> list[str]:
    """Top-level `{...}` spans, honouring strings; an unclosed last one is returned as is."""
    spans: list[str] = []
    depth, start, in_string, escape = 0, -1, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
        elif ch == '"' and depth > 0:
            in_string = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    if depth > 0:
        spans.append(text[start:])
    return spans


def _outside_strings(text: str, fix: Any) -> str:
    """Apply `fix` to the parts of JSON-ish `text` that are not inside double-quoted strings."""
    parts = re.split(r'("(?:[^"\\]|\\.)*")', text, flags=re.S)
    return "".join(p if i % 2 else fix(p) for i, p in enumerate(parts))


def _repair(text: str) -> str:
    """Fix what small models get wrong: trailing commas, Python literals, comments."""

    def fix(part: str) -> str:
        part = re.sub(r"//[^\n]*", "", part)
        part = re.sub(r",\s*([}\]])", r"\1", part)
        part = re.sub(r"\bTrue\b", "true", part)
        part = re.sub(r"\bFalse\b", "false", part)
        return re.sub(r"\bNone\b", "null", part)

    return _outside_strings(text, fix)


def _close(text: str) -> str | None:
    """Close the brackets of a truncated object, unless it was cut inside a string."""
    stack: list[str] = []
    in_string, escape = False, False
    for ch in text:
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    if in_string or not stack:
        return None
    body = text.rstrip()
    body = re.sub(r'(,|:|,\s*"[^"]*")\s*$', "", body)  # a dangling comma, key or colon
    return body + "".join(reversed(stack))


def _loads(text: str) -> Any:
    """json.loads, then with repairs, then as a Python literal; raises ValueError."""
    for attempt in (text, _repair(text)):
        try:
            return json.loads(attempt, strict=False)
        except json.JSONDecodeError:
            continue
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


def extract_json(text: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The JSON object in a model answer, and notes on what had to be repaired to read it.

    Looks inside code fences and around prose; repairs trailing commas and Python literals;
    closes the brackets of an answer cut short after a complete value. Among several objects
    it prefers the last one that has a `suggestion` field.
    """
    notes: list[str] = []
    if not text or not text.strip():
        return None, ["parse: the answer is empty"]
    sources = [body for _, body in _FENCE.findall(text)] + [text]
    readable: list[dict[str, Any]] = []
    truncated = False
    for source in sources:
        for span in _balanced_objects(source):
            try:
                value = _loads(span)
            except ValueError:
                closed = _close(_repair(span))
                if closed is None:
                    truncated = truncated or span.count("{") > span.count("}")
                    continue
                try:
                    value = _loads(closed)
                except ValueError:
                    continue
                truncated = True
            if isinstance(value, dict):
                readable.append(value)
        if readable:
            break
    if truncated:
        notes.append("parse: the answer was cut short (truncated JSON)")
    if not readable:
        notes.append("parse: no readable JSON object in the answer")
        return None, notes
    with_suggestion = [v for v in readable if "suggestion" in v]
    return (with_suggestion or readable)[-1], notes


def _recover_values(text: str, names: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Per-parameter recovery from a broken object: complete `"name": value` pairs only."""
    decoder = json.JSONDecoder(strict=False)
    found: dict[str, Any] = {}
    lost: dict[str, str] = {}
    for name in names:
        matches = list(re.finditer(rf'"{re.escape(name)}"\s*:\s*', text))
        if not matches:
            continue
        tail = text[matches[-1].end() :]
        try:
            found[name], _ = decoder.raw_decode(tail)
        except json.JSONDecodeError:
            literal = re.match(r"(True|False|None)\b", tail)
            if literal:
                found[name] = {"True": True, "False": False, "None": None}[literal.group(1)]
            else:
                lost[name] = "syntax: its value is cut short or malformed JSON; nothing applied"
    return found, lost


def parse_answer(text: str, names: list[str] | None = None) -> Answer:
    """Read `{reasoning, suggestion, stop}` from an answer; `names` enable per-value recovery.

    `stop` is true only when the answer has an explicit `"stop": true` field; words such as
    TERMINATE in the reasoning mean nothing. An answer without a `suggestion` field whose keys
    are parameter names is read as the suggestion itself.
    """
    answer = Answer()
    try:
        data, answer.problems = extract_json(text or "")
    except RecursionError:
        data, answer.problems = None, ["parse: the answer nests too deeply to read"]
    names = list(names or [])
    if data is None:
        found, lost = _recover_values(text or "", names)
        if found or lost:
            answer.problems.append(f"parse: recovered {len(found)} value(s) one by one")
        answer.suggestion, answer.unreadable = found, lost
        stop = re.search(r'"stop"\s*:\s*(true|false)', text or "", re.I)
        answer.stop = bool(stop and stop.group(1).lower() == "true")
        reasoning = re.search(r'"reasoning"\s*:\s*"((?:[^"\\]|\\.)*)', text or "", re.S)
        answer.reasoning = reasoning.group(1) if reasoning else ""
        return answer
    answer.data = data
    answer.reasoning = _text(data.get("reasoning", ""))
    answer.stop = _explicit_true(data.get("stop", False))
    if "suggestion" in data:
        suggestion = data["suggestion"]
        if isinstance(suggestion, str):
            try:
                suggestion = _loads(suggestion.strip())
            except ValueError:
                answer.problems.append(
                    f"parse: `suggestion` is text, not an object: {_short(suggestion)}"
                )
                suggestion = {}
        suggestion = _pairs_to_dict(suggestion)
        if not isinstance(suggestion, dict):
            answer.problems.append(
                f"parse: `suggestion` must be an object of parameter values, not "
                f"{type(suggestion).__name__}"
            )
            suggestion = {}
    else:
        suggestion = {k: v for k, v in data.items() if k not in META_KEYS}
    answer.suggestion = {str(k): v for k, v in suggestion.items()}
    if answer.problems and names:  # a repaired object may have lost values: look again
        found, lost = _recover_values(text, [n for n in names if n not in answer.suggestion])
        answer.suggestion.update(found)
        answer.unreadable.update(lost)
    return answer


def _pairs_to_dict(value: Any) -> Any:
    """`[{"name": n, "value": v}, ...]` (a form models like) as `{n: v}`."""
    if isinstance(value, list) and value and all(
        isinstance(item, dict) and "name" in item and "value" in item for item in value
    ):
        return {str(item["name"]): item["value"] for item in value}
    return value


def _explicit_true(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return False


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=repr)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- coercion -------------------------------------------------------------------------------

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def function_name(source: str) -> str | None:
    """Name of the first top-level function `source` defines (None if it defines none)."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return None
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            return stmt.name
    return None


def _strip_fence(text: str) -> str:
    match = re.fullmatch(r"\s*```[ \t]*[A-Za-z0-9_+-]*[ \t]*\n(.*?)\n?```\s*", text, re.S)
    return match.group(1) if match else text


def _number(param: Param, value: Any) -> float | int:
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise Rejected(
                    TYPE, f"{param.name!r} is {param.kind}; the text {_short(value)} is not a number"
                ) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected(
            TYPE, f"{param.name!r} is {param.kind}; got {type(value).__name__} {_short(value)}"
        )
    return value


def coerce(param: Param, value: Any) -> Any:
    """`value` as a valid value of `param`, or `Rejected` saying which rule it breaks.

    Rules: bool accepts true/false and the texts true/false/yes/no/1/0 (any case), and 0/1;
    int accepts whole numbers and numeric text ("3", "3.0"); 3.7 is rejected, never truncated;
    float accepts numbers and numeric text; str accepts text (numbers become their text),
    kept exactly as written; list and dict accept the value or text holding it as JSON;
    code must parse and define the same function as the current code (a surrounding
    markdown fence and common indentation are removed, and it ends with one newline; it is
    never reformatted).
    Then bounds (kind "bounds") and choices (kind "constraint") are enforced.
    """
    kind = param.kind
    if value is None:
        raise Rejected(TYPE, f"{param.name!r} is {kind}; got null")
    if kind == "bool":
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            value = value.strip().lower() in _TRUE
        elif isinstance(value, int | float) and not isinstance(value, bool) and value in (0, 1):
            value = bool(value)
        if not isinstance(value, bool):
            raise Rejected(TYPE, f"{param.name!r} is bool; got {type(value).__name__} {_short(value)}")
    elif kind == "int":
        value = _number(param, value)
        if isinstance(value, float):
            if not (math.isfinite(value) and value.is_integer()):
                raise Rejected(
                    TYPE, f"{param.name!r} is int; {value} is not a whole number (not truncated)"
                )
            value = int(value)
    elif kind == "float":
        value = float(_number(param, value))
        if not math.isfinite(value):
            raise Rejected(CONSTRAINT, f"{param.name!r} must be a finite number, got {value}")
    elif kind == "str":
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = json.dumps(value)
        if not isinstance(value, str):
            raise Rejected(TYPE, f"{param.name!r} is text; got {type(value).__name__} {_short(value)}")
    elif kind in ("list", "dict"):
        expected = list if kind == "list" else dict
        if isinstance(value, str):
            try:
                value = _loads(value.strip())
            except ValueError:
                raise Rejected(
                    TYPE, f"{param.name!r} is {kind}; the text {_short(value)} is not JSON"
                ) from None
        if not isinstance(value, expected):
            raise Rejected(TYPE, f"{param.name!r} is {kind}; got {type(value).__name__} {_short(value)}")
    elif kind == "code":
        value = _code(param, value)
    return _check_limits(param, value)


def _code(param: Param, value: Any) -> str:
    if not isinstance(value, str):
        raise Rejected(TYPE, f"{param.name!r} is code; got {type(value).__name__} {_short(value)}")
    source = textwrap.dedent(_strip_fence(value)).rstrip() + "\n"  # one final newline
    if not source.strip():
        raise Rejected(SYNTAX, f"{param.name!r} is code; the proposal is empty")
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise Rejected(
            SYNTAX, f"{param.name!r}: the code does not parse: {exc.msg} at line {exc.lineno}"
        ) from None
    expected = function_name(param._value)
    defined = [s.name for s in tree.body if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)]
    if expected is not None and expected not in defined:
        raise Rejected(
            SYNTAX,
            f"{param.name!r}: the code must define the function {expected!r}; it defines "
            f"{defined or 'no function'}",
        )
    return source


def _check_limits(param: Param, value: Any) -> Any:
    if param.bounds is not None:
        lo, hi = param.bounds
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise Rejected(BOUNDS, f"{param.name!r} must lie in [{lo}, {hi}], got {value}")
    if param.choices is not None and value not in param.choices:
        raise Rejected(
            CONSTRAINT, f"{param.name!r} must be one of {param.choices}, got {_short(value)}"
        )
    try:
        return param.validate(value)
    except (TypeError, ValueError) as exc:
        raise Rejected(TYPE if isinstance(exc, TypeError) else CONSTRAINT, str(exc)) from None


# -- names and application ------------------------------------------------------------------

def resolve_name(name: str, params: list[Param]) -> Param | None:
    """The parameter `name` refers to: an exact match, else a unique case-insensitive one."""
    for p in params:
        if p.name == name:
            return p
    folded = [p for p in params if p.name.lower() == name.strip().lower()]
    return folded[0] if len(folded) == 1 else None


def unknown_reason(name: str, params: list[Param]) -> str:
    """The rejection reason for a name that is not a parameter, with the closest real name."""
    names = [p.name for p in params]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.4)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown: {name!r} is not a parameter (parameters: {names}){hint}"


def apply_suggestion(
    params: list[Param],
    suggestion: dict[str, Any],
    report: StepReport,
    *,
    unreadable: dict[str, str] | None = None,
    only: set[str] | None = None,
) -> dict[str, Any]:
    """Coerce and set each proposed value, recording every outcome in `report`.

    `report.updates` gets one entry per parameter (proposed, applied, new value, reason);
    `report.rejected` gets every rejected proposal, unknown names included. With `only`,
    parameters outside that set are left to the caller: their coerced values are returned,
    not set. Returns {name: coerced value} for every accepted proposal.
    """
    accepted: dict[str, Any] = {}
    proposals: dict[str, tuple[str, Any]] = {}
    for raw_name, value in (suggestion or {}).items():
        target = resolve_name(str(raw_name), params)
        if target is None:
            update = ParamUpdate(str(raw_name), None, value, None, False,
                                 unknown_reason(str(raw_name), params), UNKNOWN)
            report.rejected.append(update)
            continue
        proposals[target.name] = (str(raw_name), value)
    by_name = {u.name: u for u in report.updates}
    for p in params:
        update = by_name.get(p.name)
        if update is None:
            update = ParamUpdate(p.name, p._value, new=p._value)
            report.updates.append(update)
            by_name[p.name] = update
        if p.name in (unreadable or {}) and p.name not in proposals:
            update.reason, update.kind = unreadable[p.name], SYNTAX  # type: ignore[index]
            report.rejected.append(update)
            continue
        if p.name not in proposals:
            continue
        _, value = proposals[p.name]
        update.proposed = value
        try:
            coerced = coerce(p, value)
        except Rejected as exc:
            update.reason, update.kind = f"{exc.kind}: {exc}", exc.kind
            report.rejected.append(update)
            continue
        except Exception as exc:  # a rule we did not foresee: recorded, never raised
            update.reason, update.kind = f"type: {type(exc).__name__}: {exc}", TYPE
            report.rejected.append(update)
            continue
        accepted[p.name] = coerced
        if only is not None and p.name not in only:
            continue
        update.changed = coerced != p._value or type(coerced) is not type(p._value)
        p._value = coerced  # already validated by coerce()
        update.new, update.applied = coerced, True
    return accepted


def check_suggestion(
    params: list[Param], suggestion: dict[str, Any]
) -> tuple[dict[str, Any], list[ParamUpdate]]:
    """Coerce a suggestion without setting anything: (accepted values, rejected proposals)."""
    scratch = StepReport(step=-1)
    accepted = apply_suggestion(params, suggestion, scratch, only=set())
    return accepted, scratch.rejected


def apply_answer(
    params: list[Param], text: str, report: StepReport, *, only: set[str] | None = None
) -> tuple[Answer, dict[str, Any]]:
    """Parse one answer and apply it: reasoning, stop and parse problems go to the report."""
    answer = parse_answer(text, [p.name for p in params])
    report.reasoning = answer.reasoning
    report.stop = report.stop or answer.stop
    report.problems.extend(answer.problems)
    accepted = apply_suggestion(
        params, answer.suggestion, report, unreadable=answer.unreadable, only=only
    )
    return answer, accepted


__all__ = [
    "BOUNDS",
    "CONSTRAINT",
    "SYNTAX",
    "TYPE",
    "UNKNOWN",
    "Answer",
    "Rejected",
    "apply_answer",
    "apply_suggestion",
    "check_suggestion",
    "coerce",
    "extract_json",
    "function_name",
    "parse_answer",
    "resolve_name",
    "unknown_reason",
]
