"""Overfitting guards: a proposal that copies training data into a text parameter.

The rule, stated once: a proposed text copies the trainset when it contains a run of
`COPY_WORDS` (5) words of one training example (any field: an input or an answer), or a whole
field of 2 to 4 words, that the parent's value did not contain. Words are runs of letters and
digits, compared lower-cased. What several examples share (a label most answers have, the
wording every input starts with) is not a copy of one, and a field of numbers alone is no
field here (a "0.5" would forbid "a score between 0.5 and 1"). The trainer rejects such a proposal before evaluating it (the
reason names the text and the example) and counts each firing in the run's summary; code
parameters are not checked (code may need the literals its tests use).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from typing import Any

COPY_WORDS = 5

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _grams(tokens: list[str], n: int) -> Iterator[tuple[str, ...]]:
    return (tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def fields(example: Any, depth: int = 0) -> Iterator[str]:
    """The text of every field of an example: strings and numbers, in dicts, lists, tuples,
    dataclasses and `bf.Example`s, at any depth."""
    if depth > 8 or isinstance(example, bool):
        return
    if isinstance(example, str):
        yield example
    elif isinstance(example, int | float):
        yield str(example)
    elif isinstance(example, dict):
        for value in example.values():
            yield from fields(value, depth + 1)
    elif isinstance(example, list | tuple | set):
        for value in example:
            yield from fields(value, depth + 1)
    elif dataclasses.is_dataclass(example) and not isinstance(example, type):
        for f in dataclasses.fields(example):
            yield from fields(getattr(example, f.name), depth + 1)


class CopyGuard:
    """The trainset's word runs and short fields, indexed once per run."""

    def __init__(self, examples: Iterable[Any], n: int = COPY_WORDS) -> None:
        self.n = n
        runs: dict[tuple[str, ...], set[int]] = {}  # a run of n words -> the examples with it
        short: dict[tuple[str, ...], set[int]] = {}  # a whole field of 2..n-1 words
        for index, example in enumerate(examples):
            for text in fields(example):
                tokens = words(text)
                if 2 <= len(tokens) < n and not all(t.isdigit() for t in tokens):
                    short.setdefault(tuple(tokens), set()).add(index)
                for gram in _grams(tokens, n):
                    runs.setdefault(gram, set()).add(index)
        # only what one example has: shared wording and common labels are no copy
        self.runs = {g: next(iter(ids)) for g, ids in runs.items() if len(ids) == 1}
        self.short = {g: next(iter(ids)) for g, ids in short.items() if len(ids) == 1}

    def copied(self, old: str, new: str) -> tuple[str, int] | None:
        """(the copied words, the example's index) when `new` copies the trainset where `old`
        did not, else None."""
        new_tokens, old_tokens = words(new), words(old)
        for size, index in ((self.n, self.runs),
                            *((k, self.short) for k in range(self.n - 1, 1, -1))):
            if not index:
                continue
            before = set(_grams(old_tokens, size))
            for gram in _grams(new_tokens, size):
                if gram in index and gram not in before:
                    return " ".join(gram), index[gram]
        return None

    def reason(self, parent: dict[str, Any], values: dict[str, Any],
               kinds: dict[str, str]) -> str | None:
        """Why the proposal `values` (from `parent`) is refused, or None: the first text
        parameter it changed that copies the trainset."""
        for name, value in values.items():
            old = parent.get(name)
            if kinds.get(name) != "str" or value == old or not isinstance(value, str):
                continue
            found = self.copied(old if isinstance(old, str) else "", value)
            if found is not None:
                text, index = found
                return (f"copied training data: {name!r} now holds {text!r}, from training "
                        f"example {index} (the copy guard: a run of {self.n} words, or a whole "
                        f"field of 2-{self.n - 1} words, of a training input or answer that "
                        "the parent did not have; copy_guard=False allows it)")
        return None
