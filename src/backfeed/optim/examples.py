"""The failing examples of a step side by side: the call, its output or error, and the
feedback, worst first (GEPA-style reflection material for the prompt)."""

from __future__ import annotations

from dataclasses import dataclass

from .._text import clip
from ..graph import Node, Param
from ..graph.render import value_text


def call_text(out: Node, value_chars: int = 80) -> str:
    """`op(arg=value, ...)` for an output made by an op (its non-parameter inputs), or its name."""
    if out.op is None:
        return out.name or "output"
    args = ", ".join(f"{name}={value_text(child._value, value_chars)}"
                     for name, child in out.inputs if not isinstance(child, Param))
    return f"{out.op.name}({args})"


def result_text(node: Node, value_chars: int = 160) -> str:
    """What a call gave: `raised <error>`, or its value cut to `value_chars`."""
    return f"raised {node.error}" if node.error else value_text(node._value, value_chars)


@dataclass(frozen=True)
class Failure:
    """One imperfect feedback on an output: the output, its score (None: text feedback only;
    an output that raised scores 0), and the feedback text."""

    out: Node
    score: float | None
    text: str

    @property
    def rank(self) -> float:
        """Its place among failures, worst first (text-only feedback sits at 0.5)."""
        return 0.5 if self.score is None else self.score


def worst_failures(params: list[Param]) -> list[Failure]:
    """Every imperfect feedback on the outputs the parameters influenced, worst first (ties
    in the order the outputs got it): the one list every prompt's failing examples come
    from."""
    outputs = {id(out): out for p in params for out in p.outputs}
    found = []
    for out in outputs.values():
        for fb in out._feedback or ():
            score = fb.score if fb.score is not None else (0.0 if out.error else None)
            if score is None or score < 1.0:
                found.append(Failure(out, score, fb.text or ""))
    return sorted(found, key=lambda f: f.rank)  # stable: ties keep their order


def failing_examples(params: list[Param], limit: int = 4, line_chars: int = 400) -> str:
    """Up to `limit` outputs whose feedback is not perfect, worst first, one line each:
    the call, what it returned or raised (with the line), the score and the feedback."""
    lines = []
    for f in worst_failures(params)[:limit]:
        shown = "" if f.score is None else f"score={f.score:.3g}; "
        line = f"- {call_text(f.out)} -> {result_text(f.out)}; {shown}feedback: {f.text or '(none)'}"
        lines.append(clip(line, line_chars))
    return "\n".join(lines) or "(none: every output passed)"
