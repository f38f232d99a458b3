"""Reading model answers: fenced blocks for code and long text, JSON for short typed values.

`read_answer` is the one reader every optimizer uses. It never raises on what a model wrote:
what cannot be read is said in `Answer.problems` (the whole answer) or `Answer.unreadable`
(one parameter). `recover_function` pulls a function out of a block padded with prose,
example calls, tests or prints.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

from .._text import short
from ..graph import Param

# Top-level keys of an answer that are not parameter values.
META_KEYS = ("reasoning", "suggestion", "stop", "answer", "explanation", "analysis")


@dataclass
class Answer:
    """What could be read from one model answer."""

    suggestion: dict[str, Any] = field(default_factory=dict)
    reasoning: str = ""
    stop: bool = False
    problems: list[str] = field(default_factory=list)  # what went wrong while reading it
    unreadable: dict[str, str] = field(default_factory=dict)  # name -> why its value was lost
    data: dict[str, Any] | None = None  # the whole JSON object, when one was read
    blocks: dict[str, str] = field(default_factory=dict)  # name -> the block read for it
    unclosed: set[str] = field(default_factory=set)  # blocks with no closing fence (cut short?)


# -- which parameters are written as blocks ------------------------------------------------


def is_block(param: Param) -> bool:
    """Code and free text are written in fenced blocks; everything else as JSON."""
    return param.kind == "code" or (param.kind == "str" and param.choices is None)


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


# -- fenced blocks --------------------------------------------------------------------------

_OPEN = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([A-Za-z0-9_+.-]*)[^`\n]*$")


@dataclass
class Block:
    """One fenced block of an answer: the line before it (its label), language and body."""

    label: str
    lang: str
    body: str
    start: int  # character offsets of the whole block, fences included
    end: int
    closed: bool


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced block, in order; an unclosed last block runs to the end of the text.

    A block closes at a line holding only a fence of the same character at least as long as
    the one that opened it (so a ```python line inside a text block does not close it).
    """
    blocks: list[Block] = []
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    i, label = 0, ""
    while i < len(lines):
        match = _OPEN.match(lines[i].rstrip("\r\n"))
        if not match:
            if lines[i].strip():
                label = lines[i].strip()
            i += 1
            continue
        fence, lang = match.group(1), match.group(2).lower()
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        j = i + 1
        while j < len(lines) and not closing.match(lines[j].rstrip("\r\n")):
            j += 1
        body = "".join(lines[i + 1 : j])
        closed = j < len(lines)
        blocks.append(Block(label, lang, body.removesuffix("\n").removesuffix("\r"),
                            offsets[i], offsets[min(j + 1, len(lines))], closed))
        i, label = j + 1, ""
    return blocks


def _label_names(label: str) -> set[str]:
    """The words of a block's label (`### clean_name`, `**prompt**:`), lower-cased."""
    return {w.lower().rstrip(".") for w in re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", label)}


def _defines(body: str, name: str) -> bool:
    return re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", body, re.M) is not None


def _is_json_block(block: Block) -> bool:
    return block.lang == "json" or (block.lang == "" and block.body.lstrip().startswith("{"))


def match_blocks(blocks: list[Block], params: list[Param]) -> dict[str, Block]:
    """Which block holds which block parameter: by the name in its label, then (code) by the
    function it defines, then the only block left for the only parameter left."""
    wanted = [p for p in params if is_block(p)]
    found: dict[str, Block] = {}
    free = [b for b in blocks if not _is_json_block(b)]
    for p in wanted:  # by label
        for b in free:
            if p.name.lower() in _label_names(b.label):
                found[p.name] = b
                free.remove(b)
                break
    for p in wanted:  # code: by the function it defines
        fname = function_name(p._value) if p.kind == "code" else None
        if p.name in found or fname is None:
            continue
        for b in free:
            if _defines(b.body, fname):
                found[p.name] = b
                free.remove(b)
                break
    left = [p for p in wanted if p.name not in found]
    if len(left) == 1 and len(free) >= 1:
        # the only parameter left takes the last free block (a first draft may come before)
        p = left[0]
        usable = [b for b in free if p.kind != "code" or b.lang in ("", "python", "py")]
        if usable:
            found[p.name] = usable[-1]
    return found


_UNFENCED = "(unfenced)"


def unfenced_section(text: str, name: str, blocks: list[Block], *,
                     one_paragraph: bool = False) -> Block | None:
    """A text parameter's section written without a fence (seen from the 0.5B model with no
    prefill: `### instruction`, the value, then `### feedback` and a copy of the prompt): the
    lines after a `#`-heading that is the parameter's name, up to the next heading or fence,
    or with `one_paragraph` (the value has no blank line) up to the first blank line: the
    1.5B writes the value, a blank line, then why ("This new instruction ensures ...").
    None when there is no such heading, it is inside a fenced block, or nothing follows it."""
    heading = re.compile(rf"^[ \t]*#{{1,4}}[ \t]*`?{re.escape(name)}`?[ \t:]*$", re.M | re.I)
    for match in heading.finditer(text):
        if any(b.start <= match.start() < b.end for b in blocks):
            continue
        start = match.end() + 1
        end = re.search(r"^[ \t]*(#{1,4}[ \t]|`{3,}|~{3,})", text[start:], re.M)
        stop = start + end.start() if end else len(text)
        raw = text[start:stop]
        lead = len(raw) - len(raw.lstrip("\n \t"))  # blank lines right after the heading
        cut = re.search(r"\n[ \t]*\n", raw[lead:]) if one_paragraph else None
        if cut is not None:
            stop = start + lead + cut.start()
        body = text[start:stop].strip("\n")
        if body.strip():
            return Block(match.group(0).strip(), _UNFENCED, body, match.start(), stop, True)
    return None


# -- function recovery ----------------------------------------------------------------------


def _bound_names(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {stmt.name}
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    targets: list[ast.expr] = []
    if isinstance(stmt, ast.Assign):
        targets = stmt.targets
    elif isinstance(stmt, ast.AnnAssign):
        targets = [stmt.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _used_names(stmt: ast.stmt) -> set[str]:
    return {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)}


_KEEPABLE = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
             ast.Assign, ast.AnnAssign)


def _units(lines: list[str]) -> list[list[str]]:
    """Split lines into top-level statements: a unit starts at a non-blank line at column 0
    (decorators stay with what they decorate; closing brackets with what they close)."""
    units: list[list[str]] = []
    for line in lines:
        starts = line[:1] not in ("", " ", "\t", ")", "]", "}") and line.strip()
        if starts and not (units and units[-1][-1].startswith("@")):
            units.append([line])
        elif units:
            units[-1].append(line)
        elif line.strip():
            units.append([line])
    return units


def _parse(lines: list[str]) -> list[ast.stmt]:
    """The top-level statements of the lines, or [] when they don't parse."""
    try:
        return ast.parse("\n".join(lines)).body
    except (SyntaxError, ValueError):
        return []


def _decorated(stmt: ast.stmt, lines: list[str]) -> str:
    """The statement's source from its first decorator (ast's segment starts at `def`)."""
    start = min([d.lineno for d in getattr(stmt, "decorator_list", [])] + [stmt.lineno])
    return "\n".join(lines[start - 1 : stmt.end_lineno])


def recover_function(text: str, name: str) -> str | None:
    """The function `name` from a block that may hold more: the longest part that parses and
    defines it, with the imports, helper functions and constants it uses (also from outside
    that part). Prose, example calls, tests and prints are dropped. None: no such function.
    """
    lines = textwrap.dedent(text.replace("\r\n", "\n")).split("\n")
    head = re.compile(rf"^([ \t]*)(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(")
    for d in reversed([i for i, line in enumerate(lines) if head.match(line)]):  # last wins
        indent = len(head.match(lines[d]).group(1))  # type: ignore[union-attr]
        body = [ln[indent:] if ln[:indent].strip() == "" else ln for ln in lines] if indent else lines
        found = _longest_def(body, d, name)
        if found is not None:
            return found
    return None


def _longest_def(lines: list[str], d: int, name: str) -> str | None:
    """The longest run of lines from line `d` that parses and defines `name`, plus what it
    needs from the lines around it."""
    while d > 0 and lines[d - 1].startswith("@"):
        d -= 1
    main: list[tuple[ast.stmt, str]] = []
    end = len(lines)
    for end in range(len(lines), d, -1):
        main = [(s, _decorated(s, lines[d:end])) for s in _parse(lines[d:end])]
        if any(_is_def(s, name) for s, _ in main):
            break
        main = []
    if not main:
        return None
    pool: list[tuple[int, ast.stmt, str]] = []  # (original position, statement, source)
    for offset, (stmt, src) in enumerate(main):
        pool.append((d + offset, stmt, src))
    for part, base in ((lines[:d], 0), (lines[end:], end)):
        position = base
        for unit in _units(part):
            for stmt in _parse(unit):
                pool.append((position, stmt, _decorated(stmt, unit)))
            position += len(unit)
    return _needed(pool, name)


def _is_def(stmt: ast.stmt, name: str) -> bool:
    return isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name == name


def _needed(pool: list[tuple[int, ast.stmt, str]], name: str) -> str:
    """The function and, transitively, the statements that bind names it uses; imports first."""
    keep = [(pos, s, src) for pos, s, src in pool if isinstance(s, _KEEPABLE)]
    main = next(item for item in keep if _is_def(item[1], name))
    chosen = [main]
    wanted = _used_names(main[1])
    changed = True
    while changed:
        changed = False
        for item in keep:
            if item in chosen or not (_bound_names(item[1]) & wanted):
                continue
            if isinstance(item[1], ast.FunctionDef | ast.AsyncFunctionDef) and item[1].name == name:
                continue  # another definition of the same function (a draft): the main one wins
            chosen.append(item)
            wanted |= _used_names(item[1])
            changed = True
    imports = sorted((c for c in chosen if isinstance(c[1], ast.Import | ast.ImportFrom)),
                     key=lambda c: c[0])
    rest = sorted((c for c in chosen if not isinstance(c[1], ast.Import | ast.ImportFrom)),
                  key=lambda c: c[0])
    parts = ["\n".join(c[2] for c in imports)] if imports else []
    parts += [c[2] for c in rest]
    return ("\n\n".join(parts) if len(rest) > 1 else "\n".join(parts)).rstrip() + "\n"


# -- reading JSON out of free text ----------------------------------------------------------

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
    body = re.sub(r'(,\s*"[^"]*"\s*:?|,|:)\s*$', "", body)  # a dangling comma or key
    return body + "".join(reversed(stack))


def loads(text: str) -> Any:
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
                value = loads(span)
            except ValueError:
                closed = _close(_repair(span))
                if closed is None:
                    truncated = truncated or span.count("{") > span.count("}")
                    continue
                try:
                    value = loads(closed)
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
    """Read `{reasoning, suggestion, stop}` from a JSON answer; `names` enable per-value recovery.

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
                suggestion = loads(suggestion.strip())
            except ValueError:
                answer.problems.append(
                    f"parse: `suggestion` is text, not an object: {short(suggestion)}"
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


def read_answer(text: str, params: list[Param]) -> Answer:
    """Read an answer in any format: one fenced block per code or text parameter (under its
    name), and JSON (bare or in a ```json block) for the others, or for all of them.

    A value in a block wins over one for the same parameter in the JSON. Prose outside the
    blocks is kept as the reasoning.
    """
    text = text or ""
    blocks = fenced_blocks(text)
    matched = match_blocks(blocks, params)
    unfenced = [p for p in params if p.kind == "str" and p.name not in matched]
    for param in unfenced:
        name = param.name
        section = unfenced_section(text, name, blocks,
                                   one_paragraph=not re.search(r"\n[ \t]*\n", str(param._value)))
        if section is not None:
            matched[name] = section
    rest = text
    for block in sorted(matched.values(), key=lambda b: -b.start):
        rest = rest[: block.start] + rest[block.end :]
    names = [p.name for p in params]
    if matched and not rest.strip():
        answer = Answer()
    elif matched and not re.search(r"[{]", rest):  # blocks and prose: no JSON was meant
        answer = Answer(reasoning=_prose(rest))
    else:
        answer = parse_answer(rest, names)
        if matched:  # a JSON part was optional: only say what was wrong in it, not that it's absent
            answer.problems = [p for p in answer.problems if "no readable JSON" not in p]
            if not answer.reasoning:
                answer.reasoning = _prose(re.sub(r"\{.*\}", "", rest, flags=re.S))
    for name, block in matched.items():
        answer.suggestion[name] = block.body
        answer.blocks[name] = block.body
        answer.unreadable.pop(name, None)
        if block.lang == _UNFENCED:
            answer.problems.append(f"parse: the section of {name!r} has no fence; its text up "
                                   "to the next heading was taken")
            answer.unclosed.add(name)
        if not block.closed:
            answer.problems.append(f"parse: the block of {name!r} is not closed (cut short?)")
            answer.unclosed.add(name)
    if not matched and not answer.suggestion and blocks and any(is_block(p) for p in params):
        labels = [b.label or "(no label)" for b in blocks if not _is_json_block(b)]
        if labels:
            answer.problems.append(
                "parse: no block is labelled with a parameter name; labels seen: "
                + ", ".join(x[:40] for x in labels[:3])
            )
    return answer


_VARIANT = re.compile(
    r"^[ \t]*(?:#{1,3}|\*\*)?[ \t]*(?:candidate|variant|member|option)[ \t]*#?(\d+)\b.*$",
    re.I | re.M,
)


def split_variants(text: str) -> list[str]:
    """The parts of an answer holding several variants under `## Candidate N` headings (the
    whole text when it has no such heading)."""
    heads = list(_VARIANT.finditer(text or ""))
    if not heads:
        return [text or ""]
    ends = [h.start() for h in heads[1:]] + [len(text)]
    return [text[h.end() : end] for h, end in zip(heads, ends)]


def _prose(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not re.fullmatch(r"[#*`\s]*[\w.]*[:*\s]*", line)]
    return " ".join(lines)[:1000]


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


__all__ = [
    "Answer",
    "Block",
    "extract_json",
    "fenced_blocks",
    "function_name",
    "is_block",
    "loads",
    "match_blocks",
    "parse_answer",
    "read_answer",
    "recover_function",
    "split_variants",
]
