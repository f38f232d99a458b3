"""A proposed text value cleaned of the optimizer's own answer format: headings, fences, rules
and quotes that belong to our prompt, not to the value."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from . import prompts

META = "meta"  # the rejection kind: a value that was only the answer format's text

_QUOTES = (('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019"), ("`", "`"))
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*[\w+-]*[ \t]*$")
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]*(.*?)[ \t:]*$")
_GENERIC_HEADINGS = re.compile(
    r"^`?(?:new |updated |improved |changed |revised )?(?:value|instruction|prompt|answer|"
    r"parameter(?: `?[\w.]+`?)?|candidate \d+|text|system prompt)`?$", re.I)
# headings a structured prompt of the user's own starts with (never taken for ours)
_USERS_HEADINGS = {"task", "instruction", "instructions", "prompt", "answer", "text"}
_WORD = re.compile(r"[a-z0-9']+")
_NGRAM = 4
_SHARE = 0.6  # a line is the format's when this share of its word 4-grams come from our prompts


@dataclass
class Cleaned:
    """A text value after cleaning, and what was taken out of it (one phrase each)."""

    value: str
    removed: list[str] = field(default_factory=list)


def clean_text(value: str, old: str, name: str) -> Cleaned:
    """`value` without what our answer format put around or into it, where `old` (the value
    stepped from) does not have it too: quotes around the whole value, a heading naming the
    parameter (or "instruction", "new value", one of our prompt's headings) as its first
    line, a fence line that wraps the value or has no partner, and lines that are our
    prompts' own rules ("In the blocks, plain text: no JSON quoting, ..."). Everything else is
    kept exactly as written: a fenced example or a heading inside the value is its own."""
    out = Cleaned(value)
    text = value
    for _ in range(2):  # "'...'" inside "...": two layers at most
        unwrapped = _unquoted(text, old)
        if unwrapped is None:
            break
        text = unwrapped
        out.removed.append("quotes around the whole value")
    old_lines = {line.strip() for line in old.splitlines()}
    lines = text.splitlines()
    filled = [i for i, line in enumerate(lines) if line.strip()]
    body = filled[1:] if filled and lines[filled[0]].strip() not in old_lines and _HEADING.match(
        lines[filled[0]]) and _meta_line(lines[filled[0]].strip(), name, first=True) else filled
    every = [i for i in filled if _FENCE.match(lines[i])]
    fences = [i for i in every if lines[i].strip() not in old_lines]
    # a fence is ours when two of them wrap the value, or one at its edge has no partner; a
    # fenced example the value holds (opening and closing lines) is the value's own
    wrap = len(body) > 1 and body[0] in fences and body[-1] in fences and \
        not re.search(r"\w", lines[body[-1]])
    stray: set[int] = {body[0], body[-1]} if wrap else set()
    if not wrap and len(every) % 2:  # one fence too many: the new one at an edge, or the
        stray = {i for i in fences if i in (body[0], body[-1])} or (  # only new one
            set(fences) if len(fences) == 1 else set())
    kept: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped and stripped not in old_lines:
            what = "a fence line" if i in stray else None if i in fences else \
                _meta_line(stripped, name, first=bool(filled) and i == filled[0])
            if what:
                out.removed.append(what)
                continue
        kept.append(line)
    if len(kept) != len(text.splitlines()):
        text = "\n".join(kept).strip("\n")
        if value.endswith("\n") and text:
            text += "\n"
    out.value = text
    return out


def _unquoted(text: str, old: str) -> str | None:
    body = text.strip()
    old_body = old.strip()
    for left, right in _QUOTES:
        if (len(body) >= 2 and body.startswith(left) and body.endswith(right)
                and not (old_body.startswith(left) and old_body.endswith(right))):
            inner = body[len(left):-len(right)]
            if left not in inner and right not in inner:  # "a" and "b" is not one quoted value
                return inner
    return None


def _meta_line(line: str, name: str, *, first: bool) -> str | None:
    """What our format `line` is (a phrase), or None when it is the value's own. A heading
    is ours only as the value's `first` line (a value may have headings of its own)."""
    heading = _HEADING.match(line)
    if heading:
        title = heading.group(1).strip()
        short = name.rsplit(".", 1)[-1]
        bare_title = title.strip("`").lower()
        if bare_title in {name.lower(), short.lower()}:
            return f"the heading {line!r}" if first else None
        if first and bare_title not in _USERS_HEADINGS and (
                _GENERIC_HEADINGS.match(title) or bare_title in _prompt_headings()):
            return f"the heading {line!r}"
        return None
    bare = line
    for named in {name, name.rsplit(".", 1)[-1]}:  # our templates hold {name} there
        bare = bare.replace(f"`{named}`", " ").replace(named, " ")
    grams = _ngrams(bare)
    ours = sum(g in _prompt_ngrams() for g in grams)
    if ours >= 2 and ours >= _SHARE * len(grams):  # one shared 4-gram is no proof
        return f"the answer format's line {line!r}"
    return None


def _ngrams(text: str) -> list[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return [tuple(words[i:i + _NGRAM]) for i in range(len(words) - _NGRAM + 1)]


# Our prompts' phrases that a user's own instruction may rightly hold too
_USERS_TOO = ("Answer with one JSON object and nothing else",)


def _template_texts() -> list[str]:
    texts = []
    for value in vars(prompts).values():
        body = getattr(value, "text", value)
        if isinstance(body, str) and len(body) > 20:
            for phrase in _USERS_TOO:
                body = body.replace(phrase, "\n")
            texts.append(re.sub(r"\{[^{}]*\}", " ", body))
    return texts


@functools.cache
def _prompt_ngrams() -> frozenset[tuple[str, ...]]:
    return frozenset(g for text in _template_texts() for g in _ngrams(text))


@functools.cache
def _prompt_headings() -> frozenset[str]:
    found = set()
    for text in _template_texts():
        for line in text.splitlines():
            match = _HEADING.match(line)
            if match and match.group(1).strip():
                found.add(match.group(1).strip().strip("`").lower())
    return frozenset(found)


def same_text(a: object, b: object) -> bool:
    """Equal once whitespace runs and quotes around the whole are set aside: a candidate that
    only re-spaces or re-quotes a value is that value."""
    return isinstance(a, str) and isinstance(b, str) and norm_text(a) == norm_text(b)


def norm_text(text: str) -> str:
    body = " ".join(text.split())
    for left, right in _QUOTES:
        while len(body) >= 2 and body.startswith(left) and body.endswith(right):
            body = body[len(left):-len(right)].strip()
    return body
