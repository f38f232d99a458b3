"""Edits to a text or code value: SEARCH/REPLACE blocks read from an answer, applied to the
whole value, so that a value too long to show or to rewrite changes only where it is edited."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEARCH = re.compile(r"^[ \t]*<{5,9}[ \t]*SEARCH\b.*$", re.I)
_DIVIDER = re.compile(r"^[ \t]*={5,9}[ \t]*$")
_REPLACE = re.compile(r"^[ \t]*>{5,9}[ \t]*(REPLACE\b.*)?$", re.I)


class EditError(ValueError):
    """An edit that cannot be applied: it is malformed, or its SEARCH text is not found once."""


@dataclass(frozen=True)
class Edit:
    """Replace `search` (exact lines of the current value; empty: append) with `replace`."""

    search: str
    replace: str


def has_edits(text: str) -> bool:
    """Whether `text` holds at least one `<<<<<<< SEARCH` line."""
    return any(_SEARCH.match(line) for line in text.splitlines())


def read_edits(text: str) -> list[Edit] | None:
    """The edits in `text` (None when it has no SEARCH line: a whole value). Raises EditError
    for an edit without its `=======` or `>>>>>>> REPLACE` line (a cut answer is never half
    applied)."""
    if not has_edits(text):
        return None
    edits: list[Edit] = []
    search: list[str] | None = None
    replace: list[str] | None = None
    for line in text.splitlines():
        if search is None:
            if _SEARCH.match(line):
                search = []
            continue  # prose between edits is ignored
        if replace is None:
            if _DIVIDER.match(line):
                replace = []
            elif _SEARCH.match(line):
                raise EditError(f"edit {len(edits) + 1} has a second SEARCH line before its "
                                "======= line")
            else:
                search.append(line)
            continue
        if _REPLACE.match(line):
            edits.append(Edit("\n".join(search), "\n".join(replace)))
            search = replace = None
        else:
            replace.append(line)
    if search is not None:
        end = "=======" if replace is None else ">>>>>>> REPLACE"
        raise EditError(f"edit {len(edits) + 1} has no {end} line (cut short?); nothing applied")
    return edits


PROMPT_INDENT = "    "  # the trace shows a code or text value's lines indented by this


def apply_edits(value: str, edits: list[Edit]) -> str:
    """`value` with each edit applied in order, whole lines only. A SEARCH text's lines must
    occur exactly once as written or with the prompt's indentation (`PROMPT_INDENT`) taken
    off, and when both readings match, at the same place; failing that, once as the same
    lines up to indentation, and the replacement is re-indented to the value's. An empty
    SEARCH appends. The value's line endings are kept. Raises EditError naming the edit that
    does not apply (then none is applied: the caller keeps the value)."""
    newline = "\r\n" if "\r\n" in value else "\n"
    for i, edit in enumerate(edits, 1):
        value = _apply_one(value, edit, i, newline)
    return value


def _lines(text: str) -> list[str]:
    """The lines of a SEARCH or REPLACE text (`read_edits` joins them with newlines, so a
    newline at either end is a blank line there, kept)."""
    text = text.replace("\r\n", "\n")
    return text.split("\n") if text else []


def _apply_one(value: str, edit: Edit, index: int, newline: str) -> str:
    search, replace = _lines(edit.search), _lines(edit.replace)
    lines = value.replace("\r\n", "\n").split("\n")
    if len(search) == 1 and search[0].strip() and len([line for line in lines if line]) == 1:
        # a value of one line (shown as one JSON string): an edit may change part of it,
        # from a word's start to a word's end
        part = re.compile(rf"(?<!\w){re.escape(search[0].strip())}(?!\w)")
        if len(part.findall(value)) == 1:
            return part.sub(lambda _: "\n".join(replace), value, count=1)
    if not any(line.strip() for line in search):  # append
        if lines and lines[-1] == "":
            lines = lines[:-1] + replace + [""]
        else:
            lines = lines + replace
        return newline.join(lines)
    readings = [(search, replace)]
    body = [line for line in search if line.strip()]
    if all(line.startswith(PROMPT_INDENT) for line in body):
        readings.append(([_dedent(line) for line in search], [_dedent(line) for line in replace]))
    found = {(start, k) for k, (want, _) in enumerate(readings) for start in _find(lines, want)}
    places = sorted({start for start, _ in found})
    first = body[0].strip()
    if len(places) > 1:
        raise EditError(f"edit {index}: its SEARCH lines match {len(places)} places in the value "
                        f"(its first line: {first[:80]!r}); include more lines to make it unique")
    if places:
        start, k = min(found)
        want, new = readings[k]
    else:  # the same lines with other indentation: re-indent the replacement
        loose = [line.strip() for line in search]
        starts = [i for i in range(len(lines) - len(search) + 1)
                  if [line.strip() for line in lines[i : i + len(search)]] == loose]
        if not starts:
            raise EditError(f"edit {index}: its SEARCH text is not in the value (its first "
                            f"line: {first[:80]!r}); copy the lines exactly as shown")
        if len(starts) > 1:
            raise EditError(f"edit {index}: its SEARCH lines occur {len(starts)} times in the "
                            "value; include more lines to make it unique")
        start, want = starts[0], search
        had = _indent_of("\n".join(search))
        has = _indent_of("\n".join(lines[start : start + len(search)]))
        shift = len(has) - len(had)  # every replacement line moves by as much, either way
        new = [" " * max(0, len(line) - len(line.lstrip()) + shift) + line.lstrip()
               if line.strip() else line for line in replace]
    return newline.join(lines[:start] + new + lines[start + len(want) :])


def _dedent(line: str) -> str:
    return line[len(PROMPT_INDENT):] if line.startswith(PROMPT_INDENT) else line


def _find(lines: list[str], want: list[str]) -> list[int]:
    """Where `want` occurs in `lines` as whole lines (trailing spaces ignored)."""
    target = [line.rstrip() for line in want]
    n = len(want)
    return [i for i in range(len(lines) - n + 1)
            if [line.rstrip() for line in lines[i : i + n]] == target]


def _indent_of(text: str) -> str:
    """The indentation every non-blank line of `text` starts with."""
    indents = [line[: len(line) - len(line.lstrip())] for line in text.splitlines()
               if line.strip()]
    if not indents:
        return ""
    common = indents[0]
    for indent in indents[1:]:
        while not indent.startswith(common):
            common = common[:-1]
    return common
