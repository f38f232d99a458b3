"""Summaries of the feedback that reached a set of parameters (the step's starting point)."""

from __future__ import annotations

from .._text import clip
from ..graph import Param


def current_feedback(params: list[Param], limit: int = 2000) -> tuple[float | None, str, int]:
    """(mean score, joined feedback text, count) over the outputs the parameters influenced.

    An output that raised and got only text feedback scores 0 (as inside `bf.train`)."""
    outputs = {id(out): out for p in params for out in p.outputs}
    scores: list[float] = []
    texts: list[str] = []
    count = 0
    for out in outputs.values():
        for fb in out._feedback or ():
            count += 1
            if fb.score is not None:
                scores.append(fb.score)
            elif out.error is not None:  # an error with text feedback only is a failure
                scores.append(0.0)
            if fb.text and fb.text not in texts:
                texts.append(fb.text)
    text = clip("; ".join(texts), limit)
    score = sum(scores) / len(scores) if scores else None
    return score, text, count


NOTHING_TO_OPTIMIZE = (
    "nothing to optimize: no output that depends on these parameters received feedback "
    "(call .backward(feedback) on an output first); the model was not called"
)


def all_perfect(params: list[Param]) -> bool:
    """True when the outputs have feedback and every feedback has the score 1 (or more)."""
    outputs = {id(out): out for p in params for out in p.outputs}
    scores = [fb.score for out in outputs.values() for fb in out._feedback or ()]
    return bool(scores) and all(s is not None and s >= 1.0 for s in scores)
