"""Render a subgraph as compact prompt text within a token budget, or as DOT."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .._tokens import CHARS_PER_TOKEN, estimate_tokens
from .node import Node, Param
from .subgraph import Subgraph, minimal_subgraph

INLINE_CONSTANT_CHARS = 40
ELISION = "…[{} chars elided]"


class RenderBudgetError(ValueError):
    """Even the parts that are never dropped (parameters, outputs, feedback, errors) overflow."""


@dataclass
class Rendering:
    """Prompt text for a subgraph, its token estimate, and what was elided to fit the budget."""

    text: str
    tokens: int
    elided: list[str] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        return self.text


_PLAIN = (int, float, bool, type(None))
_NUMBERS = frozenset({int, float})  # repr is also their JSON text (finite floats)


def value_text(value: Any, limit: int | None) -> str:
    """A readable one-value text, cut to `limit` characters with an explicit marker."""
    if type(value) in _PLAIN:
        text = "null" if value is None else ("true" if value is True else "false"
                                            if value is False else repr(value))
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=repr)
        except (TypeError, ValueError):
            text = repr(value)
    if limit is not None and len(text) > limit:
        cut = max(limit - len(ELISION.format(len(text))), 8)
        text = text[:cut] + ELISION.format(len(text) - cut)
    return text


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = max(limit - len(ELISION.format(len(text))), 8)
    return text[:cut] + ELISION.format(len(text) - cut)


class _Line:
    """One graph line; its value part (" -> 2.0") is formatted only when shown."""

    __slots__ = ("_value", "distance", "head", "keep", "node", "op")

    def __init__(self, node: Node, head: str, value: str | int, distance: int, op: str,
                 keep: bool) -> None:
        self.node = node
        self.head = head  # "add0 = add(a=x, b=1)"
        self._value = value  # the text, or the character limit to format the node's value with
        self.distance = distance
        self.op = op
        self.keep = keep  # outputs and errors are never dropped

    @property
    def value(self) -> str:
        if type(self._value) is int:
            self._value = f" -> {_node_value(self.node, self._value)}"
        return self._value

    @value.setter
    def value(self, text: str) -> None:
        self._value = text

    def text(self) -> str:
        return self.head + self.value


def _node_value(n: Node, limit: int) -> str:
    text = value_text(n._value, None)
    return text if len(text) <= INLINE_CONSTANT_CHARS else value_text(n._value, limit)


def _names(subgraph: Subgraph) -> dict[int, str]:
    """Stable short names: parameters and named inputs by name, ops as `<op><k>`."""
    names: dict[int, str] = {}
    taken: set[str] = set()
    counters: dict[str, int] = {}
    bases: dict[str, str] = {}

    def claim(base: str) -> str:
        k = counters.get(base, 0)
        name = base if k == 0 and not base[-1:].isdigit() and base not in taken else f"{base}{k}"
        while name in taken:
            k += 1
            name = f"{base}{k}"
        counters[base] = k + 1
        taken.add(name)
        return name

    for p in subgraph.params:
        names[id(p)] = p.name
        taken.add(p.name)
    for n in subgraph.nodes:
        if id(n) in names:
            continue
        if isinstance(n, Param):
            names[id(n)] = claim(n.name)
        elif n.op is not None:
            base = bases.get(n.op.name)
            if base is None:
                base = bases[n.op.name] = re.sub(r"\W", "_", n.op.name)
            k = counters.get(base, 0)
            name = f"{base}{k}"
            while name in taken:
                k += 1
                name = f"{base}{k}"
            counters[base] = k + 1
            taken.add(name)
            names[id(n)] = name
        elif n.name:
            names[id(n)] = claim(n.name)
    return names


def render(
    target: Subgraph | Param | Iterable[Param],
    budget_tokens: int | None = None,
    *,
    max_value_chars: int = 400,
) -> Rendering:
    """Turn a subgraph (or the minimal subgraph of some parameters) into prompt text.

    One line per operation in topological order, each operation's docstring once, the
    parameters with their types and constraints, inputs, outputs, feedback and errors.
    Over budget it drops, in order: values of the nodes furthest from the parameters,
    runs of the same operation (collapsed to a counted line), operation docs, whole lines
    furthest first, and finally shortens the kept values. Parameters, outputs, feedback and
    errors are never dropped; the result never exceeds the budget.
    """
    if isinstance(target, Param):
        target = [target]
    subgraph = target if isinstance(target, Subgraph) else minimal_subgraph(target)
    names = _names(subgraph)
    renderer = _Renderer(subgraph, names, max_value_chars)
    if budget_tokens is None or renderer.length(values=False) <= budget_tokens * CHARS_PER_TOKEN:
        text = renderer.text()
        if budget_tokens is None or estimate_tokens(text) <= budget_tokens:
            return Rendering(text, estimate_tokens(text), renderer.elided, names)
    budget_chars = budget_tokens * CHARS_PER_TOKEN
    while True:
        text = renderer.fit(budget_chars, budget_tokens)
        tokens = estimate_tokens(text)
        if tokens <= budget_tokens:
            return Rendering(text, tokens, renderer.elided, names)
        # digit-heavy text has more tokens per character: fit again into fewer characters
        budget_chars = int(budget_chars * budget_tokens / tokens * 0.95)
        renderer = _Renderer(subgraph, names, max_value_chars)


class _Renderer:
    def __init__(self, subgraph: Subgraph, names: dict[int, str], max_value_chars: int) -> None:
        self.subgraph = subgraph
        self.names = names
        self.value_chars = max_value_chars
        self.elided: list[str] = []
        self.param_ids = {id(p) for p in subgraph.params}
        self.output_ids = {id(o) for o in subgraph.outputs}
        self.docs: dict[str, str] = {}
        self.inline: dict[int, str] = {}
        self.lines: list[_Line | str] = []
        self.show_docs = True
        names, inline, param_ids = self.names, self.inline, self.param_ids
        for n in subgraph.nodes:
            if id(n) in param_ids:
                continue
            if not n.args and id(n) not in names and type(n._value) in _NUMBERS:
                inline[id(n)] = repr(n._value)  # the common short constant, without _line
                continue
            line = self._line(n)
            if line is not None:
                self.lines.append(line)

    def _ref(self, n: Node) -> str:
        name = self.names.get(id(n))
        if name is not None:
            return name
        return self.inline.get(id(n)) or value_text(n._value, None)

    def _line(self, n: Node) -> _Line | None:
        names = self.names
        name = names.get(id(n))
        if name is None:  # an inline constant, or an unnamed input too long to inline
            text = value_text(n._value, None)
            if len(text) <= INLINE_CONSTANT_CHARS:
                self.inline[id(n)] = text
                return None
            name = names[id(n)] = f"input{len(names)}"
        distance = self.subgraph.distance.get(id(n), 0)
        keep = id(n) in self.output_ids or n.error is not None
        op = n.op
        if op is None:
            return _Line(n, f"{name} = input", self.value_chars, distance, "", keep)
        if op.name not in self.docs:
            self.docs[op.name] = op.doc.split("\n\n")[0].strip()
        inline = self.inline
        args = ", ".join([
            f"{arg}={names.get(id(child)) or inline.get(id(child)) or self._ref(child)}"
            for arg, child in zip(n.arg_names, n.args)
            if arg != "__code__"
        ])
        head = f"{name} = {op.name}({args})"
        if n.error is not None:
            return _Line(n, head, f" -> raised {n.error.type}", distance, op.name, True)
        return _Line(n, head, self.value_chars, distance, op.name, keep)

    # -- sections ---------------------------------------------------------------------
    def _params(self) -> list[str]:
        out = ["#Parameters (you may change these)"]
        for p in self.subgraph.params:
            facts = [p.kind]
            if p.bounds is not None:
                facts.append(f"bounds [{p.bounds[0]}, {p.bounds[1]}]")
            if p.choices is not None:
                facts.append(f"choices {value_text(p.choices, self.value_chars)}")
            head = f"{p.name} ({', '.join(facts)})"
            if p.description:
                head += f": {_cut(p.description, self.value_chars)}"
            out.append(head)
            if p.constraint:
                out.append(f"  constraint: {_cut(p.constraint, self.value_chars)}")
            if p.kind == "code":
                out.append(_indent(_cut(p._value, max(self.value_chars * 8, 200))))
            else:
                out.append(f"  value = {value_text(p._value, self.value_chars)}")
        return out

    def _feedback(self) -> list[str]:
        out = ["#Feedback"]
        for o in self.subgraph.outputs:
            for fb in o._feedback or ():
                out.append(f"{self._ref(o)}: {_cut(str(fb), self.value_chars * 2)}")
        return out

    def _errors(self) -> list[str]:
        errors = self.subgraph.errors
        if not errors:
            return []
        return ["#Errors"] + [
            f"{self._ref(n)}: {n.error.type}: "
            f"{_cut(str(n.error)[len(n.error.type) + 2:], self.value_chars)}"
            for n in errors
        ]

    def _doc_lines(self) -> list[str]:
        docs = [f"{op}: {doc}" for op, doc in self.docs.items() if doc]
        if not docs or not self.show_docs:
            return []
        return ["#Operations", *docs]

    def length(self, values: bool = True) -> int:
        """Length of `text()`; with values=False, as if every droppable value were dropped."""
        graph = sum(
            len(line) + 1 if isinstance(line, str)
            else len(line.head) + 1 + (len(line.value) if values or line.keep else 0)
            for line in self.lines
        )
        return len(self.text(graph=False)) + graph

    def text(self, graph: bool = True) -> str:
        graph = [line if isinstance(line, str) else line.text() for line in self.lines] if graph else []
        parts = [
            *self._params(),
            *self._doc_lines(),
            "#Graph (in order; -> value)",
            *graph,
            *self._feedback(),
            *self._errors(),
        ]
        if self.elided:
            parts.append(f"#Elided for the budget: {'; '.join(self.elided)}")
        return "\n".join(parts)

    # -- fitting the budget ---------------------------------------------------------------
    def fit(self, budget_chars: int, budget_tokens: int) -> str:
        stages = [self._drop_values, self._collapse_runs, self._drop_docs, self._drop_lines]
        for stage in stages:
            stage(budget_chars)
            text = self.text()
            if len(text) <= budget_chars:
                return text
        while self.value_chars > 16:
            self.value_chars //= 2
            self._note("kept values shortened", f"to {self.value_chars} chars")
            self.lines = [
                line if isinstance(line, str) else self._line(line.node) or line
                for line in self.lines
            ]
            self._drop_values(budget_chars, force=True)
            text = self.text()
            if len(text) <= budget_chars:
                return text
        raise RenderBudgetError(
            f"cannot render within {budget_tokens} tokens: parameters, outputs, "
            f"feedback and errors alone need ~{estimate_tokens(text)} tokens"
        )

    def _note(self, what: str, detail: str) -> None:
        self.elided = [e for e in self.elided if not e.startswith(what)]
        self.elided.append(f"{what} {detail}")

    def _over(self, budget_chars: int) -> int:
        return self.length() + 80 - budget_chars  # 80: room for the elision note

    def _drop_values(self, budget_chars: int, force: bool = False) -> None:
        if self.length(values=False) + 80 > budget_chars:  # every droppable value must go
            over = float("inf")
        else:
            over = self._over(budget_chars)
        candidates = sorted(
            (line for line in self.lines
             if not isinstance(line, str) and line.value and not line.keep),
            key=lambda line: -line.distance,
        )
        dropped = 0
        for line in candidates:
            if over <= 0:
                break
            if over != float("inf"):
                over -= len(line.value)
            line.value = ""
            dropped += 1
        if dropped:
            previous = next((e for e in self.elided if e.startswith("values of")), None)
            total = dropped + (int(previous.split()[2]) if previous else 0)
            self._note("values of", f"{total} nodes far from the parameters")

    def _collapse_runs(self, budget_chars: int) -> None:
        """Collapse repeated runs of operations (one op, or a pattern of up to 4) to one line."""
        lines = self.lines
        ops = [line.op if isinstance(line, _Line) and not line.keep and line.op else None
               for line in lines]
        ops.append(None)  # sentinel: no run continues past the end
        runs: list[tuple[int, int, int]] = []  # (start, end, period)
        i = 0
        while i < len(lines):
            best_end, best_period = i + 1, 1
            if ops[i] is not None:
                for period in range(1, 5):
                    j = i + period
                    if j >= len(lines):
                        break
                    while ops[j] is not None and ops[j] == ops[j - period]:
                        j += 1
                    if j - i >= 3 * period and j > best_end:
                        best_end, best_period = j, period
                    if best_end == len(lines):  # a longer period cannot do better
                        break
            if best_end - i >= 3:
                runs.append((i, best_end, best_period))
            i = best_end
        over = self._over(budget_chars)
        collapsed: dict[int, tuple[int, str]] = {}
        count = 0
        for start, end, period in sorted(runs, key=lambda r: r[0] - r[1]):
            if over <= 0:
                break
            first, last = lines[start], lines[end - 1]
            pattern = ", ".join(lines[k].op for k in range(start, start + period))
            text = (f"{self.names[id(first.node)]} … {self.names[id(last.node)]}: "
                    f"[{pattern}] repeated, {end - start} similar operations collapsed")
            saved = sum(len(line.head) + len(line.value) + 1 for line in lines[start:end])
            saved -= len(text) + 1
            collapsed[start] = (end, text)
            over -= saved
            count += end - start
        if not collapsed:
            return
        new: list[_Line | str] = []
        i = 0
        while i < len(lines):
            if i in collapsed:
                end, text = collapsed[i]
                new.append(text)
                i = end
            else:
                new.append(lines[i])
                i += 1
        self.lines = new
        self._note("runs of", f"repeats collapsed ({count} lines)")

    def _drop_docs(self, budget_chars: int) -> None:
        if self._over(budget_chars) > 0 and self.docs:
            self.show_docs = False
            self._note("operation docs", f"({len(self.docs)})")

    def _drop_lines(self, budget_chars: int) -> None:
        over = self._over(budget_chars)
        marker_room = 60
        over += marker_room
        indexed = sorted(
            ((i, line) for i, line in enumerate(self.lines)
             if isinstance(line, str) or not line.keep),
            key=lambda item: -(item[1].distance if isinstance(item[1], _Line) else 0),
        )
        drop: set[int] = set()
        for i, line in indexed:
            if over <= 0:
                break
            over -= len(line if isinstance(line, str) else line.text()) + 1
            drop.add(i)
        if drop:
            kept = [line for i, line in enumerate(self.lines) if i not in drop]
            kept.append(f"[{len(drop)} operation lines elided]")
            self.lines = kept
            self._note("operation lines", f"({len(drop)}, furthest first)")


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def to_dot(target: Subgraph | Param | Iterable[Param]) -> str:
    """Graphviz DOT text of a subgraph: parameters as boxes, errors in red."""
    if isinstance(target, Param):
        target = [target]
    subgraph = target if isinstance(target, Subgraph) else minimal_subgraph(target)
    names = _names(subgraph)
    params = {id(p) for p in subgraph.params}
    outputs = {id(o) for o in subgraph.outputs}

    local = {id(n): i for i, n in enumerate(subgraph.nodes)}  # stable across runs

    def node_id(n: Node) -> str:
        return f"n{local[id(n)]}"

    def label(n: Node) -> str:
        name = names.get(id(n)) or value_text(n._value, 30)
        body = f"error: {n.error.type}" if n.error else value_text(n._value, 30)
        return f"{name}\\n{body}".replace('"', '\\"') if name != body else body.replace('"', '\\"')

    out = ["digraph backfeed {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for n in subgraph.nodes:
        attrs = [f'label="{label(n)}"']
        if id(n) in params:
            attrs += ["shape=box", "style=filled", 'fillcolor="#dbeafe"']
        elif n.error is not None:
            attrs += ['color="#dc2626"', "penwidth=2"]
        elif id(n) in outputs:
            attrs += ["shape=doubleoctagon"]
        elif n.op is None:
            attrs += ["shape=plaintext"]
        out.append(f"  {node_id(n)} [{', '.join(attrs)}];")
    for n in subgraph.nodes:
        for arg, child in zip(n.arg_names, n.args):
            if id(child) in local:
                out.append(f'  {node_id(child)} -> {node_id(n)} [label="{arg}"];')
    out.append("}")
    return "\n".join(out)
