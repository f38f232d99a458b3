"""Applying proposed values: typed coercion, function recovery, and the step report.

Every optimizer reads answers with `optim.parse` and applies them here, so every proposal is
applied, coerced to the parameter's type by a rule listed in `coerce`, or rejected with a
reason recorded in the step report. Nothing the model writes makes these functions raise.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import re
import textwrap
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._text import short
from ..graph import BoundsError, ChoiceError, KeptError, LengthError, Param
from ..graph.render import cuttable
from .clean import META, clean_text
from .edits import EditError, apply_edits, has_edits, read_edits
from .parse import Answer, function_name, loads, read_answer, recover_function, split_variants
from .parse import parse_answer as parse_answer  # re-exported: older callers import it here
from .records import PARSE, ParamUpdate, Problem, Proposal, StepReport

# Rejection kinds, as recorded in `ParamUpdate.kind`.
UNKNOWN, TYPE, BOUNDS, CONSTRAINT, SYNTAX = "unknown", "type", "bounds", "constraint", "syntax"
EDIT = "edit"  # an edit that does not apply
PARTIAL = "partial"  # a whole value for one the prompt showed in part
CUT = "cut"  # a value whose block the answer's token limit cut off
KEPT = "kept"  # a text that drops a span its parameter must keep verbatim
LENGTH = "length"  # a text over its parameter's max_tokens


class Rejected(ValueError):
    """A proposed value cannot become the parameter's value; `kind` says which rule failed."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# -- coercion -------------------------------------------------------------------------------

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def _strip_fence(text: str) -> str:
    match = re.fullmatch(r"\s*```[ \t]*[A-Za-z0-9_+-]*[ \t]*\n(.*?)\n?```\s*", text, re.S)
    return match.group(1) if match else text


def _number(param: Param, value: Any) -> float | int:
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise Rejected(
                    TYPE, f"{param.name!r} is {param.kind}; the text {short(value)} is not a number"
                ) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected(
            TYPE, f"{param.name!r} is {param.kind}; got {type(value).__name__} {short(value)}"
        )
    return value


def coerce(param: Param, value: Any) -> Any:
    """`value` as a valid value of `param`, or `Rejected` saying which rule it breaks.

    Rules: bool accepts true/false and the texts true/false/yes/no/1/0 (any case), and 0/1;
    int accepts whole numbers and numeric text ("3", "3.0"); 3.7 is rejected, never truncated;
    float accepts numbers and numeric text; str accepts text (numbers become their text),
    kept exactly as written; list and dict accept the value or text holding it as JSON;
    code must parse and define the same function as the current code (a surrounding
    markdown fence and common indentation are removed, and it ends with one newline; it is
    never reformatted).
    Then bounds (kind "bounds") and choices (kind "constraint") are enforced.
    """
    kind = param.kind
    if value is None:
        raise Rejected(TYPE, f"{param.name!r} is {kind}; got null")
    if kind == "bool":
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            value = value.strip().lower() in _TRUE
        elif isinstance(value, int | float) and not isinstance(value, bool) and value in (0, 1):
            value = bool(value)
        if not isinstance(value, bool):
            raise Rejected(TYPE, f"{param.name!r} is bool; got {type(value).__name__} {short(value)}")
    elif kind == "int":
        value = _number(param, value)
        if isinstance(value, float):
            if not (math.isfinite(value) and value.is_integer()):
                raise Rejected(
                    TYPE, f"{param.name!r} is int; {value} is not a whole number (not truncated)"
                )
            value = int(value)
    elif kind == "float":
        value = float(_number(param, value))
        if not math.isfinite(value):
            raise Rejected(CONSTRAINT, f"{param.name!r} must be a finite number, got {value}")
    elif kind == "str":
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = json.dumps(value)
        if not isinstance(value, str):
            raise Rejected(TYPE, f"{param.name!r} is text; got {type(value).__name__} {short(value)}")
    elif kind in ("list", "dict"):
        expected = list if kind == "list" else dict
        if isinstance(value, str):
            try:
                value = loads(value.strip())
            except ValueError:
                raise Rejected(
                    TYPE, f"{param.name!r} is {kind}; the text {short(value)} is not JSON"
                ) from None
        if not isinstance(value, expected):
            raise Rejected(TYPE, f"{param.name!r} is {kind}; got {type(value).__name__} {short(value)}")
    elif kind == "code":
        value = _code(param, value)
    return _check_limits(param, value)


def _code(param: Param, value: Any) -> str:
    if not isinstance(value, str):
        raise Rejected(TYPE, f"{param.name!r} is code; got {type(value).__name__} {short(value)}")
    source = textwrap.dedent(_strip_fence(value)).rstrip() + "\n"  # one final newline
    if not source.strip():
        raise Rejected(SYNTAX, f"{param.name!r} is code; the proposal is empty")
    expected = function_name(param._value)
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        tree, error = None, f"{exc.msg} at line {exc.lineno}"
    exact = tree is not None and all(isinstance(s, _DEFINITIONS) for s in tree.body)
    if exact and (expected is None or any(_defines(s, expected) for s in tree.body)):
        return source  # exactly a definition: kept as written, never reformatted
    if expected is not None:
        recovered = recover_function(source, expected)
        if recovered is not None:
            return recovered
        defined = re.findall(r"^[ \t]*(?:async[ \t]+)?def[ \t]+(\w+)", source, re.M)
        if expected not in defined:
            raise Rejected(
                SYNTAX,
                f"{param.name!r}: the code must define the function {expected!r}; it defines "
                f"{defined or 'no function'}",
            )
    if tree is None:
        raise Rejected(SYNTAX, f"{param.name!r}: the code does not parse: {error}")
    if expected is None:
        return source
    raise Rejected(SYNTAX, f"{param.name!r}: no part of the code that parses defines {expected!r}")


_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                ast.Assign, ast.AnnAssign)


def _defines(stmt: ast.stmt, name: str) -> bool:
    return isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name == name


def _check_limits(param: Param, value: Any) -> Any:
    """`Param.validate` decides; its error's type says which rule the value broke."""
    try:
        return param.validate(value)
    except BoundsError as exc:
        raise Rejected(BOUNDS, str(exc)) from None
    except ChoiceError as exc:
        raise Rejected(CONSTRAINT, str(exc)) from None
    except KeptError as exc:
        raise Rejected(KEPT, str(exc)) from None
    except LengthError as exc:
        raise Rejected(LENGTH, str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise Rejected(TYPE if isinstance(exc, TypeError) else CONSTRAINT, str(exc)) from None


# -- names and application ------------------------------------------------------------------

def resolve_name(name: str, params: list[Param]) -> Param | None:
    """The parameter `name` refers to: an exact match, else a unique case-insensitive one."""
    for p in params:
        if p.name == name:
            return p
    folded = [p for p in params if p.name.lower() == name.strip().lower()]
    return folded[0] if len(folded) == 1 else None


def unknown_reason(name: str, params: list[Param]) -> str:
    """The rejection reason for a name that is not a parameter, with the closest real name."""
    names = [p.name for p in params]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.4)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown: {name!r} is not a parameter (parameters: {names}){hint}"


@dataclass
class Checked:
    """One proposal for a known parameter, checked: its coerced value, or why it was rejected."""

    param: Param
    proposed: Any
    value: Any = None
    rejected: Rejected | None = None
    cleaned: list[str] = field(default_factory=list)  # the answer format's text taken out

    def update(self) -> ParamUpdate:
        """The rejection as a step-report entry (the parameter keeps its value)."""
        assert self.rejected is not None
        p, exc = self.param, self.rejected
        return ParamUpdate(p.name, p._value, self.proposed, p._value, False,
                           f"{exc.kind}: {exc}", exc.kind)


def edited(param: Param, proposed: Any, partial: Collection[str] = (),
           current: Any = None) -> Any:
    """The value a proposal stands for: SEARCH/REPLACE edits (for code and text) applied to
    the whole `current` value (default: the parameter's); a whole value as it is, unless the
    prompt showed `param` only in part (`partial`), when a whole value would drop text the
    model never saw: `Rejected`."""
    if cuttable(param) and isinstance(proposed, str):
        try:
            edits = read_edits(proposed)
            if edits is not None:
                return apply_edits(param._value if current is None else current, edits)
        except EditError as exc:
            raise Rejected(EDIT, f"{param.name!r}: {exc}") from None
    if param.name in partial:
        fix = ("answer with SEARCH/REPLACE edits" if cuttable(param) else
               f"a {param.kind} takes no edits: raise budget_tokens to show it whole")
        raise Rejected(
            PARTIAL,
            f"{param.name!r} was shown in part ({len(str(param._value)):,} characters in all), so "
            f"a whole new value would drop what was never shown; {fix}",
        )
    return proposed


def _cleaned(param: Param, value: str, old: Any, verdict: Checked) -> str:
    """A text value without the answer format's text (`clean_text`); nothing else: `Rejected`."""
    found = clean_text(value, old if isinstance(old, str) else "", param.name)
    verdict.cleaned = found.removed
    if found.removed and not found.value.strip():
        raise Rejected(META, f"{param.name!r}: the value holds only the answer format's text "
                             f"({'; '.join(found.removed)[:200]}), no value of its own")
    return found.value


def judge(
    params: list[Param], suggestion: dict[str, Any], partial: Collection[str] = (),
    current: dict[str, Any] | None = None,
) -> tuple[dict[str, Checked], list[ParamUpdate]]:
    """Coerce each proposal, setting nothing: ({name: verdict}, proposals for unknown names).
    Edits are applied to the whole value (`current`'s, by name, else the parameter's);
    `partial` names the parameters the prompt showed in part, for which a whole value is
    rejected (`edited`)."""
    verdicts: dict[str, Checked] = {}
    unknown: list[ParamUpdate] = []
    for raw_name, value in (suggestion or {}).items():
        target = resolve_name(str(raw_name), params)
        if target is None:
            unknown.append(ParamUpdate(str(raw_name), None, value, None, False,
                                       unknown_reason(str(raw_name), params), UNKNOWN))
            continue
        verdict = Checked(target, value)
        try:
            old = (current or {}).get(target.name, target._value)
            whole = edited(target, value, partial, old)
            if target.kind == "str" and isinstance(whole, str):
                whole = _cleaned(target, whole, old, verdict)
            verdict.value = coerce(target, whole)
        except Rejected as exc:
            verdict.rejected = exc
        except Exception as exc:  # a rule we did not foresee: recorded, never raised
            verdict.rejected = Rejected(TYPE, f"{type(exc).__name__}: {exc}")
        verdicts[target.name] = verdict
    return verdicts, unknown


def apply_suggestion(
    params: list[Param],
    suggestion: dict[str, Any],
    report: StepReport,
    *,
    unreadable: dict[str, str] | None = None,
    only: set[str] | None = None,
    partial: Collection[str] = (),
    into: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Coerce and set each proposed value, recording every outcome in `report` (`partial`:
    the parameters shown in part, which take edits only; see `judge`).

    `report.updates` gets one entry per parameter (proposed, applied, new value, reason);
    `report.rejected` gets every rejected proposal, unknown names included. With `only`,
    parameters outside that set are left to the caller: their coerced values are returned,
    not set. With `into` (values by name), the accepted values are written there, never to
    a parameter: the optimizers build their proposals so. Returns {name: coerced value} for
    every accepted proposal.
    """
    current = into if into is not None else {p.name: p._value for p in params}
    verdicts, unknown = judge(params, suggestion, partial, current)
    report.rejected.extend(unknown)
    accepted: dict[str, Any] = {}
    by_name = {u.name: u for u in report.updates}
    for p in params:
        update = by_name.get(p.name)
        if update is None:
            update = ParamUpdate(p.name, current[p.name], new=current[p.name])
            report.updates.append(update)
            by_name[p.name] = update
        verdict = verdicts.get(p.name)
        if verdict is None:
            if p.name in (unreadable or {}):
                update.reason, update.kind = unreadable[p.name], SYNTAX  # type: ignore[index]
                report.rejected.append(update)
            continue
        update.proposed = verdict.proposed
        if verdict.rejected is not None:
            update.reason, update.kind = verdict.update().reason, verdict.rejected.kind
            report.rejected.append(update)
            continue
        accepted[p.name] = verdict.value
        if verdict.cleaned:
            report.problem(f"{p.name}: took out {'; '.join(verdict.cleaned)[:240]} (the answer "
                           "format's, not the value's)", META, p.name)
        if only is not None and p.name not in only:
            continue
        old = current[p.name]
        update.changed = verdict.value != old or type(verdict.value) is not type(old)
        if into is None:
            p._value = verdict.value  # already validated by coerce()
        else:
            into[p.name] = verdict.value
        update.new, update.applied = verdict.value, True
    return accepted


def check_suggestion(
    params: list[Param], suggestion: dict[str, Any], partial: Collection[str] = ()
) -> tuple[dict[str, Any], list[ParamUpdate]]:
    """Coerce a suggestion without setting anything: (accepted values, rejected proposals)."""
    verdicts, rejected = judge(params, suggestion, partial)
    accepted = {name: v.value for name, v in verdicts.items() if v.rejected is None}
    return accepted, rejected + [v.update() for v in verdicts.values() if v.rejected is not None]


def apply_answer(
    params: list[Param], text: str, report: StepReport, *, only: set[str] | None = None,
    partial: Collection[str] = (), cut_short: bool = False, into: dict[str, Any] | None = None,
) -> tuple[Answer, dict[str, Any]]:
    """Read one answer (blocks and/or JSON) and apply it: reasoning, stop and reading
    problems go to the report; `partial`: the parameters shown in part (edits only).
    `cut_short`: the answer reached its token limit, so a block it never closed is the start
    of a value, not a value: rejected (kind `cut`), never kept. `into`: as `apply_suggestion`."""
    answer = read_answer(text, params)
    report.reasoning = answer.reasoning
    report.stop = report.stop or answer.stop
    report.problems.extend(Problem(p, PARSE) for p in answer.problems)
    if has_edits(answer.reasoning):  # e.g. a second block for the same parameter
        report.problem("parse: SEARCH/REPLACE edits outside a parameter's block were not "
                       "applied (write every edit of a parameter in its one block)", PARSE)
    cut = {name: answer.suggestion.pop(name) for name in sorted(answer.unclosed)
           if cut_short and name in answer.suggestion}
    accepted = apply_suggestion(
        params, answer.suggestion, report, unreadable=answer.unreadable, only=only,
        partial=partial, into=into,
    )
    by_name = {u.name: u for u in report.updates}
    for name, proposed in cut.items():
        update = by_name.get(name)
        if update is None:
            continue
        update.proposed, update.kind = proposed, CUT
        update.reason = (f"{CUT}: the answer reached its token limit before the block of "
                         f"{name!r} was closed ({len(proposed):,} characters written): a value cut "
                         "short is not kept; raise max_tokens"
                         + ("" if has_edits(proposed) else ", or ask for edits"))
        report.rejected.append(update)
    return answer, accepted


# -- proposals --------------------------------------------------------------------------------

def _proposal(scratch: StepReport, values: dict[str, Any], by: str, answer: str | None,
              outside: dict[str, Any], cost: Any = None) -> Proposal:
    usage = getattr(cost, "usage", None)
    return Proposal(values, by=by, answer=answer, updates=tuple(scratch.updates),
                    rejected=tuple(scratch.rejected), problems=tuple(scratch.problems),
                    reasoning=scratch.reasoning, stop=scratch.stop, outside=outside,
                    prompt_tokens=usage.prompt_tokens if usage else 0,
                    completion_tokens=usage.completion_tokens if usage else 0,
                    cost_usd=getattr(cost, "cost_usd", 0.0) if cost is not None else 0.0)


def answer_proposal(
    params: list[Param], start: dict[str, Any], answers: list[tuple[str, Collection[str] | None]],
    *, by: str, partial: Collection[str] = (), cut_short: Collection[str] = (),
    completions: Mapping[str, Any] | None = None,
) -> Proposal:
    """The proposal of one or more answers read in turn from the values `start` (by name),
    each `(text, only)`: `only` the parameters it may write (None: all); what it writes for
    the others is the proposal's `outside`. `cut_short`: the answers that reached their
    token limit. `completions` ({answer: Completion}) gives a one-answer proposal the cost of
    its answer (a request's cost is on its first answer; a combination of answers costs 0
    here, its answers are counted in their own proposals). No parameter changes."""
    scratch = StepReport(step=-1)
    values = dict(start)
    outside: dict[str, Any] = {}
    for text, only in answers:
        names = None if only is None else set(only)
        _, accepted = apply_answer(params, text, scratch, only=names, partial=partial,
                                   cut_short=text in cut_short, into=values)
        outside.update({k: v for k, v in accepted.items() if names is not None and k not in names})
    answer = answers[0][0] if len(answers) == 1 else None
    cost = (completions or {}).get(answer) if answer is not None else None
    return _proposal(scratch, values, by, answer, outside, cost)


def values_proposal(params: list[Param], start: dict[str, Any], suggestion: dict[str, Any], *,
                    by: str, partial: Collection[str] = (), reasoning: str = "") -> Proposal:
    """The proposal of a suggestion ({name: value}, e.g. a sampler's or an evolved member's)
    from the values `start`: each value coerced or rejected. No parameter changes."""
    scratch = StepReport(step=-1, reasoning=reasoning)
    values = dict(start)
    apply_suggestion(params, suggestion, scratch, partial=partial, into=values)
    return _proposal(scratch, values, by, None, {})


def read_members(report: StepReport, text: str, params: list[Param], *, blocks: bool) -> list[Any]:
    """The value sets an answer proposes (Evolution's members, Hybrid's warm start): its
    `## Candidate N` sections of blocks, or its JSON `members` list; what could not be read
    goes to the report's problems."""
    if blocks:
        members: list[Any] = []
        for i, part in enumerate(split_variants(text)):
            answer = read_answer(part, params)
            report.problems.extend(Problem(f"member {i}: {p}", PARSE) for p in answer.problems)
            if answer.suggestion:
                members.append(answer.suggestion)
        if not members:
            report.problem("parse: no candidate with a readable value", PARSE)
        return members
    answer = parse_answer(text)
    report.reasoning, report.stop = answer.reasoning, answer.stop
    report.problems.extend(Problem(p, PARSE) for p in answer.problems)
    found = (answer.data or {}).get("members")
    if not isinstance(found, list):
        if answer.data is not None:
            report.problem("parse: the answer has no `members` list", PARSE)
        return []
    return found


__all__ = [
    "BOUNDS",
    "CONSTRAINT",
    "CUT",
    "EDIT",
    "META",
    "PARTIAL",
    "SYNTAX",
    "TYPE",
    "UNKNOWN",
    "Checked",
    "Rejected",
    "answer_proposal",
    "apply_answer",
    "apply_suggestion",
    "check_suggestion",
    "coerce",
    "edited",
    "judge",
    "read_members",
    "resolve_name",
    "unknown_reason",
    "values_proposal",
]
