"""The failing examples of a step side by side: the call, its output or error, and the
feedback, worst first (GEPA-style reflection material for the prompt)."""

from __future__ import annotations

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


def failing_examples(params: list[Param], limit: int = 4, line_chars: int = 400) -> str:
    """Up to `limit` outputs whose feedback is not perfect, worst first, one line each:
    the call, what it returned or raised (with the line), the score and the feedback."""
    outputs = {id(out): out for p in params for out in p.outputs}
    rows: list[tuple[float, int, str]] = []
    for out in outputs.values():
        for fb in out._feedback or ():
            score = fb.score if fb.score is not None else (0.0 if out.error else None)
            if score is not None and score >= 1.0:
                continue
            result = result_text(out)
            shown = "" if score is None else f"score={score:.3g}; "
            line = f"- {call_text(out)} -> {result}; {shown}feedback: {fb.text or '(none)'}"
            rows.append((0.5 if score is None else score, len(rows), clip(line, line_chars)))
    rows.sort()
    return "\n".join(line for _, _, line in rows[:limit]) or "(none: every output passed)"
