"""The short prompt for one code parameter (spec, code, failing tests) and the retry turn."""

from __future__ import annotations

from .._text import clip
from ..graph import Param
from ..graph.render import value_text
from ..llm import Message
from . import prompts
from .examples import call_text
from .schema import code_head


def fits_compact(params: list[Param]) -> bool:
    """Whether the compact prompt applies: the parameters are one function's code."""
    return len(params) == 1 and params[0].kind == "code"


def spec(param: Param) -> str:
    """What the function should do: the docstring of the op it is the code of, else the
    parameter's description."""
    for out in param.outputs:
        if out.op is not None and out.op.doc:
            return out.op.doc
    return param.description or "(no spec given: make the feedback below better)"


def failing_tests(params: list[Param], limit: int = 4, line_chars: int = 300) -> list[str]:
    """Up to `limit` outputs whose feedback is not perfect, worst first, one line each: the
    feedback alone when it already names the call, else `call -> output; feedback: text`."""
    outputs = {id(out): out for p in params for out in p.outputs}
    rows: list[tuple[float, int, str]] = []
    for out in outputs.values():
        for fb in out._feedback or ():
            score = fb.score if fb.score is not None else (0.0 if out.error else 0.5)
            if score >= 1.0:
                continue
            text = fb.text or ""
            if not (out.op is not None and f"{out.op.name}(" in text):
                result = f"raised {out.error}" if out.error else value_text(out._value, 160)
                text = f"{call_text(out)} -> {result}" + (f"; feedback: {text}" if text else "")
            rows.append((score, len(rows), clip(text, line_chars)))
    rows.sort()
    return [line for _, _, line in rows[:limit]]


def compact_messages(params: list[Param], *, answer_format: str, rejections: list[str],
                     memory: str, limit: int, fresh: bool = False) -> list[Message]:
    """The short prompt: spec, current function, failing tests side by side, what the last
    answer had rejected and earlier attempts (each only when there is one), the format.
    `fresh`: the function's signature instead of its code, asking for it anew (a 0.5B model
    shown the code tends to copy it unchanged)."""
    (param,) = params
    failing = "\n".join(f"- {line}" for line in failing_tests(params, limit))
    extra = ""
    if rejections:
        extra += "#Rejected from your last answer\n" + "\n".join(f"- {r}" for r in rejections)
        extra += "\n"
    if memory:
        extra += f"#Earlier attempts (oldest first; higher score is better)\n{memory}\n"
    shared = dict(spec=spec(param), failing=failing or "(none: every test passed)",
                  extra=extra, answer_format=answer_format)
    if fresh:
        user = prompts.COMPACT_FRESH_USER.render(signature=code_head(param), **shared)
    else:
        user = prompts.COMPACT_USER.render(code=str(param._value).strip("\n"), **shared)
    return [{"role": "system", "content": prompts.COMPACT_SYSTEM.render()},
            {"role": "user", "content": user}]


def retry_turn(params: list[Param], rejected: list[str]) -> str:
    """The user turn after an answer that changed nothing: what it did (repeated the current
    code, or was rejected, with the reason) and the first failing test."""
    if rejected:
        what = f"That answer was rejected: {clip(rejected[0], 300)}."
    elif any(p.kind == "code" for p in params):
        what = "That is the current function, unchanged."
    else:
        what = "Those are the current values, unchanged."
    failing = failing_tests(params, 1)
    return prompts.RETRY_TURN.render(what=what,
                                     failure=failing[0] if failing else "the feedback is the same.")
