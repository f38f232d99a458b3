"""Lessons a prose text learned at accepted steps, and the candidate that keeps those an answer dropped."""

from __future__ import annotations

import re

LESSONS = "lessons"  # Problem kind: a candidate that puts back rules an answer dropped

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'`(<{\[-])")
_WORD = re.compile(r"[a-z0-9]+")


def sentences(text: str) -> list[str]:
    """The text's rules: its lines, each cut into sentences; bullets and numbering kept."""
    found = []
    for line in text.splitlines():
        found += [s.strip() for s in _SENTENCE.split(line.strip()) if s.strip()]
    return found


def _words(text: str) -> set[str]:
    """The content words: four letters or more, or any number (qty rules name numbers)."""
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 4 or w.isdigit()}


def covered(sentence: str, text: str, share: float = 0.6) -> bool:
    """Whether `text` already says `sentence`: most of its content words are in `text` (a
    paraphrase keeps them; a dropped rule loses them). A sentence with no content word is
    taken as said."""
    words = _words(sentence)
    return not words or len(words & _words(text)) >= share * len(words)


def learned(start: str, current: str) -> list[str]:
    """The rules `current` has that `start` (the value before any step) did not say: what the
    accepted steps taught the text."""
    return [s for s in sentences(current) if not covered(s, start)]


def keep_lessons(start: str, current: str, new: str) -> tuple[str, list[str]] | None:
    """`new` with the lessons of `current` it dropped put back as lines after it, and those
    lessons; None when it drops none (or `current` learned none)."""
    dropped = [s for s in learned(start, current) if not covered(s, new)]
    if not dropped:
        return None
    return new.rstrip("\n") + "\n" + "\n".join(dropped), dropped
