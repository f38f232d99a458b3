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


def apply_edits(value: str, edits: list[Edit]) -> str:
    """`value` with each edit applied in order. A SEARCH text must occur exactly once, as
    written or, failing that, as the same lines with other indentation (a model copies the
    prompt's indentation); an empty SEARCH appends. Raises EditError naming the edit that
    does not apply (then none is applied: the caller keeps the value)."""
    for i, edit in enumerate(edits, 1):
        if not edit.search.strip():
            joint = "\n" if value and not value.endswith("\n") else ""
            value = value + joint + edit.replace
            continue
        count = value.count(edit.search)
        if count == 1:
            value = value.replace(edit.search, edit.replace, 1)
            continue
        if count > 1:
            raise EditError(f"edit {i}: its SEARCH text occurs {count} times in the value; "
                            "include more lines to make it unique")
        value = _replace_loosely(value, edit, i)
    return value


def _replace_loosely(value: str, edit: Edit, index: int) -> str:
    """Apply `edit` where its SEARCH lines match the value's lines up to indentation and
    trailing spaces; the replacement loses the indentation the SEARCH lines had in excess."""
    want = [line.strip() for line in edit.search.strip("\n").splitlines()]
    lines = value.splitlines(keepends=True)
    have = [line.strip() for line in lines]
    starts = [i for i in range(len(have) - len(want) + 1) if have[i : i + len(want)] == want]
    first = edit.search.strip("\n").splitlines()[0].strip()
    if not starts:
        raise EditError(f"edit {index}: its SEARCH text is not in the value (its first line: "
                        f"{first[:80]!r}); copy the lines exactly as shown")
    if len(starts) > 1:
        raise EditError(f"edit {index}: its SEARCH lines occur {len(starts)} times in the value; "
                        "include more lines to make it unique")
    start = starts[0]
    matched = lines[start : start + len(want)]
    extra = _indent_of(edit.search)[len(_indent_of("".join(matched))):]
    replace = [line[len(extra):] if extra and line.startswith(extra) else line
               for line in edit.replace.splitlines()]
    ending = "\n" if matched[-1].endswith("\n") else ""
    new = "\n".join(replace) + ending if replace else ""
    return "".join(lines[:start]) + new + "".join(lines[start + len(want) :])


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


def edit_summary(before: str, after: str, count: int) -> str:
    """`2 edits: 50,000 -> 50,120 characters`."""
    return (f"{count} edit{'s' if count != 1 else ''}: {len(before):,} -> {len(after):,} "
            "characters")
