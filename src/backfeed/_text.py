"""The one way text is shortened for a prompt or a report: `clip`, with one visible marker."""

from __future__ import annotations

ELISION = "…[{} chars elided]"


def clip(text: str, limit: int | None, *, tail: bool = False, ends: bool = False) -> str:
    """`text` cut to at most `limit` characters (at least 8 kept) with the marker that says
    how many were dropped: the start is kept, or the end with `tail=True` (the marker then
    comes first), or both ends with `ends=True` (two thirds from the start, the marker between
    them). Unchanged when it fits or `limit` is None."""
    if limit is None or len(text) <= limit:
        return text
    keep = max(limit - len(ELISION.format(len(text))), 8)
    marker = ELISION.format(len(text) - keep)
    if ends:
        head = keep * 2 // 3
        return text[:head] + marker + text[len(text) - (keep - head) :]
    return marker + text[len(text) - keep :] if tail else text[:keep] + marker


def short(value: object, limit: int = 80) -> str:
    """A value as short text for a message: its repr (a string in quotes), clipped to `limit`
    characters (`clip`)."""
    return clip(repr(value), limit)
