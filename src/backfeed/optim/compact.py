"""The short prompt for one parameter (spec or description, value, its failing feedback) and
the retry turn."""

from __future__ import annotations

import re

from .._text import clip
from ..graph import Node, Param
from ..llm import Message
from . import prompts
from .examples import call_text, result_text, worst_failures
from .schema import code_head, fields, function_name, is_prose


def fits_compact(params: list[Param]) -> bool:
    """Whether the compact prompt is the default on any model: the parameters are one
    function's code, or one prose text (an instruction: over HTTP the 1.5B took the dates
    convention from 0.000 to 0.917 with it, and stayed at 0.000 with the whole trace)."""
    return len(params) == 1 and (params[0].kind == "code" or is_prose(params[0]))


def each_compact(params: list[Param]) -> bool:
    """Whether every parameter can be asked for with its own compact prompt (code or text)."""
    return bool(params) and all(p.kind in ("code", "str") for p in params)


def _names(param: Param) -> set[str]:
    """The names feedback may call a parameter by: its own, and its function's for code."""
    names = {param.name}
    if param.kind == "code":
        name = function_name(str(param._value))
        if name:
            names.add(name)
    return names


def _mentions(text: str, names: set[str]) -> bool:
    return any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", text) for n in names)


def focus_feedback(text: str, param: Param, params: list[Param]) -> tuple[str, bool]:
    """The part of one feedback text meant for `param`, and whether it names `param`.

    Among several parameters, feedback is read as `; `-separated clauses: the clauses that
    name `param` (its name, or its function's) when there are some, else the clauses that name
    no parameter. One parameter sees the whole text."""
    others = [_names(p) for p in params if p is not param]
    if not others:
        return text, _mentions(text, _names(param))
    clauses = [c.strip() for c in re.split(r";\s+|\n+", text) if c.strip()]
    mine = [c for c in clauses if _mentions(c, _names(param))]
    if mine:
        return "; ".join(mine), True
    free = [c for c in clauses if not any(_mentions(c, n) for n in others)]
    return "; ".join(free), False


def spec(param: Param) -> str:
    """What the function should do: the docstring of the op it is the code of (the op whose
    node has the parameter among its inputs, found from the outputs back), else the
    parameter's description."""
    seen: set[int] = set()
    stack = list(param.outputs)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        children = [child for _, child in node.inputs]
        if node.op is not None and any(child is param for child in children):
            if node.op.doc:
                return node.op.doc
            break
        stack.extend(c for c in children if not isinstance(c, Param))
    return param.description or "(no spec given: make the feedback below better)"


def blamed(param: Param, params: list[Param]) -> bool | None:
    """Whether the imperfect feedback on `param`'s outputs names it: True when some part does,
    False when parts name other parameters of `params` but none names it (it is not the
    problem), None when no part names any parameter."""
    others = [_names(p) for p in params if p is not param]
    named_other = False
    for out in {id(o): o for o in param.outputs}.values():
        for fb in out._feedback or ():
            if (fb.score is not None and fb.score >= 1.0) or not fb.text:
                continue
            if _mentions(fb.text, _names(param)):
                return True
            named_other = named_other or any(_mentions(fb.text, n) for n in others)
    return False if named_other else None


def failing_tests(params: list[Param], limit: int = 4, line_chars: int = 300, *,
                  among: list[Param] | None = None) -> list[str]:
    """Up to `limit` distinct outputs' feedback that is not perfect, worst first, one line
    each: the feedback alone when it names the call or the parameter, else
    `call -> output; feedback: text`. With `among` (the optimizer's parameters), each feedback
    is first narrowed to the part meant for `params[0]` (`focus_feedback`)."""
    rows: list[tuple[float, int, str]] = []
    for out, score, text, named in _failing(params, among):
        calls = [n for n in own_calls(params[0], out) if n is not out]
        if calls and not any(f"{n.op.name}(" in text for n in calls if n.op is not None):
            # the function is a step inside the program: what it got and gave, then the end
            inner = "; ".join(f"{call_text(n)} -> {result_text(n)}" for n in calls[:2])
            text = (f"{inner}; the program then returned {call_text(out)} -> {result_text(out)}"
                    + (f"; feedback: {text}" if text else ""))
        elif not (named or (out.op is not None and f"{out.op.name}(" in text)):
            text = f"{call_text(out)} -> {result_text(out)}" + \
                (f"; feedback: {text}" if text else "")
        rows.append((score, len(rows), clip(text, line_chars)))
    rows.sort()
    lines = list(dict.fromkeys(line for _, _, line in rows))
    return lines[:limit]


def own_calls(param: Param, out: Node, limit: int = 64) -> list[Node]:
    """The calls behind `out` that took `param` as an input (for code, the trainable
    function's own calls), oldest first: at most `limit` nodes are walked."""
    found, seen, stack = [], set(), [out]
    while stack and len(seen) < limit:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        children = [child for _, child in node.inputs]
        if any(child is param for child in children):
            found.append(node)
        stack.extend(c for c in children if not isinstance(c, Param))
    return found[::-1]


def failing_outputs(param: Param, limit: int = 4, *, among: list[Param] | None = None,
                    chars: int = 300) -> list[str]:
    """For a text parameter: up to `limit` distinct failing outputs, worst first, each as its
    input (a chat's last user message, else the call's other inputs), the output and the
    feedback meant for `param`, on their own lines; the feedback alone when it names `param`."""
    rows: list[tuple[float, int, str]] = []
    for out, score, text, named in _failing([param], among):
        if named:
            row = text
        else:
            result = result_text(out, chars)
            row = f"input: {clip(_input_text(out), chars)}\n  output: {result}"
            row += f"\n  feedback: {clip(text, chars)}" if text else ""
        rows.append((score, len(rows), row))
    rows.sort()
    return list(dict.fromkeys(row for _, _, row in rows))[:limit]


def _failing(params: list[Param], among: list[Param] | None
             ) -> list[tuple[Node, float, str, bool]]:
    """(output, rank, feedback text meant for params[0], whether it names it) for every
    imperfect feedback on the parameters' outputs, worst first (`worst_failures`)."""
    found = []
    for f in worst_failures(params):
        text, named = f.text, False
        if among is not None:
            text, named = focus_feedback(text, params[0], among)
        found.append((f.out, f.rank, text, named))
    return found


def _input_text(out: Node) -> str:
    """What an output was made from, for a prompt: a chat's last user message, else the
    call's non-parameter inputs."""
    for _, child in out.inputs:
        value = child._value
        if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
            users = [m for m in value if m.get("role") == "user"]
            if users:
                return str(users[-1].get("content", ""))
    return call_text(out)


def compact_messages(params: list[Param], *, answer_format: str, rejections: list[str],
                     memory: str, limit: int, fresh: bool = False,
                     among: list[Param] | None = None, edits: bool = False,
                     rule: bool = False, earlier: list[str] | None = None) -> list[Message]:
    """The short prompt for one parameter. For code: spec, current function, failing tests
    side by side, what the last answer had rejected and earlier attempts (each only when there
    is one), the format; `fresh`: the function's signature instead of its code, asking for it
    anew (a 0.5B model shown the code tends to copy it unchanged). For text: its description,
    its format fields, its value (not with `fresh`) and the feedback meant for it. `among`:
    the optimizer's parameters, to narrow each feedback to the part that names this one.
    `rule`: a prose text's value shown, one new rule asked for (`EachParam.rule_retry`).
    `earlier`: failing examples of earlier minibatches, shown after this step's (a text only)."""
    (param,) = params
    rows = failing_tests(params, limit, among=among) if param.kind == "code" else \
        failing_outputs(param, limit, among=among)
    failing = "\n".join(f"- {line}" for line in rows)
    extra = ""
    if rejections:
        extra += "#Rejected from your last answer\n" + "\n".join(f"- {r}" for r in rejections)
        extra += "\n"
    if memory:
        extra += f"#Earlier attempts (oldest first; higher score is better)\n{memory}\n"
    if param.kind != "code":
        if earlier:
            failing += ("\n#Failing examples of earlier minibatches (made with earlier values)\n"
                        + "\n".join(f"- {row}" for row in earlier))
        listed = fields(param)
        field_text = ("#Fields (write them in braces; the program fills them in)\n"
                      + "\n".join(f"- {{{f}}}" for f in listed) + "\n") if listed else ""
        if param.rules():  # a value that breaks one is rejected: say them
            field_text += "#Rules (a value that breaks one is rejected)\n" + "".join(
                f"- {rule}\n" for rule in param.rules())
        text = dict(name=param.name, description=param.description or "(no description)",
                    fields=field_text, feedback=failing or "(none)", extra=extra,
                    answer_format=answer_format)
        task = (prompts.COMPACT_TASK_ONE_RULE if rule else prompts.COMPACT_TASK_TEXT_EDITS
                if edits else prompts.COMPACT_TASK_TEXT if listed
                else prompts.COMPACT_TASK_RULES).format(name=param.name)
        user = prompts.COMPACT_TEXT_FRESH_USER.render(**text) if fresh else \
            prompts.COMPACT_TEXT_USER.render(value=str(param._value), task=task, **text)
        return [{"role": "system", "content": prompts.COMPACT_TEXT_SYSTEM.render()},
                {"role": "user", "content": user}]
    shared = dict(spec=spec(param), failing=failing or "(none: every test passed)",
                  extra=extra, answer_format=answer_format)
    if fresh:
        user = prompts.COMPACT_FRESH_USER.render(signature=code_head(param), **shared)
    else:
        task = prompts.COMPACT_TASK_CODE_EDITS if edits else prompts.COMPACT_TASK_CODE
        user = prompts.COMPACT_USER.render(code=str(param._value).strip("\n"), task=task,
                                           **shared)
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

