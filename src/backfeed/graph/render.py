"""Render a subgraph as compact prompt text within a token budget, or as DOT."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .._text import clip
from .._tokens import CHARS_PER_TOKEN, estimate_tokens
from .node import Node, Param
from .subgraph import Subgraph, minimal_subgraph

INLINE_CONSTANT_CHARS = 40


class RenderBudgetError(ValueError):
    """Even the parts that are never dropped (parameters, outputs, feedback, errors) overflow."""


@dataclass
class Rendering:
    """Prompt text for a subgraph, its token estimate, and what was elided to fit the budget."""

    text: str
    tokens: int
    elided: list[str] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict, repr=False)
    # parameters whose value did not fit whole: name -> (characters shown, characters in all)
    partial: dict[str, tuple[int, int]] = field(default_factory=dict)

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
        text = _any_text(value)
    return clip(text, limit)


def _any_text(value: Any) -> str:
    """JSON where it can, else repr; a value too deep to show or whose repr raises is named."""
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError, RecursionError):
        pass
    except Exception as exc:  # the value's own __repr__ failed
        return f"<{type(value).__name__}: repr raised {type(exc).__name__}>"
    try:
        return repr(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deeply to show>"
    except Exception as exc:
        return f"<{type(value).__name__}: repr raised {type(exc).__name__}>"


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
    errors are never dropped; the result never exceeds the budget. Parameter values are shown
    whole (`max_value_chars` bounds the other values) unless nothing else is left to drop:
    then they are cut, both ends kept, and `Rendering.partial` names them, so that an
    optimizer asks for edits to them instead of whole new values it was never shown.
    """
    if isinstance(target, Param):
        target = [target]
    subgraph = target if isinstance(target, Subgraph) else minimal_subgraph(target)
    names = _names(subgraph)
    renderer = _Renderer(subgraph, names, max_value_chars)
    if budget_tokens is None:
        text = renderer.text()
        return Rendering(text, estimate_tokens(text), renderer.elided, renderer.names,
                         renderer.partial)
    budget_chars = budget_tokens * CHARS_PER_TOKEN
    while True:
        text = renderer.fit(budget_chars, budget_tokens)
        tokens = estimate_tokens(text)
        if tokens <= budget_tokens:
            return Rendering(text, tokens, renderer.elided, renderer.names, renderer.partial)
        # digit-heavy text has more tokens per character: fit again into fewer characters
        budget_chars = int(budget_chars * budget_tokens / tokens * 0.95)
        renderer = _Renderer(subgraph, names, max_value_chars)


def param_lines(p: Param, choices_chars: int, text_chars: int | None = None,
                fmt: Callable[[Any, int], str] = value_text) -> list[str]:
    """`x (float, bounds [0, 1]): the offset`, then `  constraint: ...` when it has one.

    Choices are written by `fmt` within `choices_chars`; description and constraint are cut
    to `text_chars` (whole when None).
    """
    def cut(text: str) -> str:
        return text if text_chars is None else clip(text, text_chars)

    facts = [p.kind]
    if p.bounds is not None:
        facts.append(f"bounds [{p.bounds[0]}, {p.bounds[1]}]")
    if p.choices is not None:
        facts.append(f"choices {fmt(p.choices, choices_chars)}")
    head = f"{p.name} ({', '.join(facts)})"
    if p.description:
        head += f": {cut(p.description)}"
    lines = [head, f"  constraint: {cut(p.constraint)}"] if p.constraint else [head]
    return lines + [f"  rule: {rule}" for rule in p.rules()]


def shown_lines(value: Any) -> bool:
    """Whether a value is shown as its own lines (code, text of several lines) rather than
    as one JSON value: the model copies such lines into edits exactly as they are."""
    return isinstance(value, str) and "\n" in value.strip("\n")


def param_value_text(p: Param, limit: int | None = None) -> str:
    """A parameter's current value as a prompt shows it: code and text of several lines
    indented under `  value:` (code bare), anything else as `  value = <JSON>`; cut to about
    `limit` characters with both ends kept (whole when None)."""
    if p.kind == "code":
        return _indent(clip(p._value, limit, ends=True))
    if shown_lines(p._value):
        return "  value:\n" + _indent(clip(p._value, limit, ends=True))
    return f"  value = {clip(value_text(p._value, None), limit, ends=True)}"


def cuttable(p: Param) -> bool:
    """Whether a parameter's value may be shown in part: text and code, which take edits.
    Other values (numbers, lists, dicts) are always shown whole."""
    return p.kind in ("str", "code")


def shown_length(p: Param) -> int:
    """The characters of `p`'s value as `param_value_text` shows it whole."""
    return len(p._value) if p.kind == "code" or shown_lines(p._value) \
        else len(value_text(p._value, None))


class _Renderer:
    """The text of one subgraph, fitted to a budget.

    Graph lines are kept as parallel lists indexed by line number, and a line's text is built
    only when something needs it. Lengths are summed with an early exit at the budget, so a
    graph of 100,000 operations that collapses into a few lines formats a few lines, not all.
    """

    def __init__(self, subgraph: Subgraph, names: dict[int, str], max_value_chars: int) -> None:
        self.subgraph = subgraph
        self.names = names = dict(names)  # long constants get names here; the caller's stay
        self.value_chars = max_value_chars
        self.param_chars: int | None = None  # parameter values are whole until nothing else fits
        self.cut_all = False  # lists and dicts are cut too (only when nothing else fits)
        self.partial: dict[str, tuple[int, int]] = {}
        self.elided: list[str] = []
        self.values_dropped = 0  # how many lines lost their value, for the elision note
        self.docs: dict[str, str] = {}
        self.inline: dict[int, str] = {}
        self.show_docs = True
        self.nodes: list[Node] = []  # the node of each graph line
        self.ops: list[str | None] = []  # its op name; None for lines that are never collapsed
        self.keep: set[int] = set()  # lines never dropped: outputs and errors
        param_ids = {id(p) for p in subgraph.params}
        output_ids = {id(o) for o in subgraph.outputs}
        inline, docs, nodes, ops = self.inline, self.docs, self.nodes, self.ops
        for n in subgraph.nodes:
            key = id(n)
            if key in param_ids:
                continue
            op = n.op
            if op is None and not n.args and key not in names:  # an unnamed constant
                if type(n._value) in _NUMBERS:
                    inline[key] = repr(n._value)
                    continue
                text = value_text(n._value, None)
                if len(text) <= INLINE_CONSTANT_CHARS:
                    inline[key] = text
                    continue
                names[key] = f"input{len(names)}"  # too long to inline: a named input line
            if key in output_ids or n.error is not None:
                self.keep.add(len(nodes))
                ops.append(None)
            else:
                ops.append(op.name if op is not None else None)
            if op is not None and op.name not in docs:
                docs[op.name] = op.doc.split("\n\n")[0].strip()
            nodes.append(n)
        self.heads: list[str | None] = [None] * len(nodes)
        self.values: list[str | None] = [None] * len(nodes)  # None: not formatted; "": dropped
        self.items: list[int | str] = list(range(len(nodes)))  # the graph section, in order

    # -- one line -----------------------------------------------------------------------
    def _ref(self, n: Node) -> str:
        key = id(n)
        return self.names.get(key) or self.inline.get(key) or value_text(n._value, None)

    def head(self, i: int) -> str:
        """`add0 = add(a=x, b=1)`: a line without its value."""
        head = self.heads[i]
        if head is None:
            n = self.nodes[i]
            name = self.names[id(n)]
            if n.op is None:
                head = f"{name} = input"
            else:
                ref = self._ref
                args = ", ".join([f"{arg}={ref(child)}" for arg, child in zip(n.arg_names, n.args)
                                  if arg != "__code__"])
                head = f"{name} = {n.op.name}({args})"
            self.heads[i] = head
        return head

    def value(self, i: int) -> str:
        """` -> 2.0`, the error it raised, or "" once dropped."""
        value = self.values[i]
        if value is None:
            n = self.nodes[i]
            if n.error is not None:
                value = f" -> raised {n.error.type}"
            else:
                value = f" -> {_node_value(n, self.value_chars)}"
            self.values[i] = value
        return value

    def _item_len(self, item: int | str, values: bool = True) -> int:
        if type(item) is str:
            return len(item) + 1
        if values or item in self.keep:
            return len(self.head(item)) + 1 + len(self.value(item))
        return len(self.head(item)) + 1

    def _graph_len(self, limit: float, items: Iterable[int | str] | None = None,
                   values: bool = True) -> int:
        """Characters of the graph lines, exact up to `limit`; past it, stops and returns more."""
        total = 0
        item_len = self._item_len
        for item in self.items if items is None else items:
            total += item_len(item, values)
            if total > limit:
                break
        return total

    # -- sections ---------------------------------------------------------------------
    def _params(self) -> list[str]:
        out = ["#Parameters (you may change these)"]
        for p in self.subgraph.params:
            out += param_lines(p, self.value_chars, self.value_chars)
            cut = cuttable(p) or self.cut_all
            out.append(param_value_text(p, self.param_chars if cut else None))
            if p.name in self.partial:
                shown, total = self.partial[p.name]
                out.append(f"  (shown in part: {shown:,} of {total:,} characters)")
        return out

    def _feedback(self) -> list[str]:
        out = ["#Feedback"]
        for o in self.subgraph.outputs:
            for fb in o._feedback or ():
                out.append(f"{self._ref(o)}: {clip(str(fb), self.value_chars * 2)}")
        return out

    def _errors(self) -> list[str]:
        errors = self.subgraph.errors
        if not errors:
            return []
        return ["#Errors"] + [
            f"{self._ref(n)}: {n.error.type}: "
            f"{clip(str(n.error)[len(n.error.type) + 2:], self.value_chars)}"
            for n in errors
        ]

    def _doc_lines(self) -> list[str]:
        docs = [f"{op}: {doc}" for op, doc in self.docs.items() if doc]
        if not docs or not self.show_docs:
            return []
        return ["#Operations", *docs]

    def text(self, graph: bool = True) -> str:
        lines = [item if type(item) is str else self.head(item) + self.value(item)
                 for item in self.items] if graph else []
        parts = [
            *self._params(),
            *self._doc_lines(),
            "#Graph (in order; -> value)",
            *lines,
            *self._feedback(),
            *self._errors(),
        ]
        if self.elided:
            parts.append(f"#Elided for the budget: {'; '.join(self.elided)}")
        return "\n".join(parts)

    def _room(self, budget_chars: int, reserve: int = 80) -> int:
        """Characters left for graph lines, keeping `reserve` (80: the elision note)."""
        return budget_chars - len(self.text(graph=False)) - reserve

    def _fits(self, budget_chars: int, reserve: int = 0) -> bool:
        room = self._room(budget_chars, reserve)
        return self._graph_len(room) <= room

    # -- fitting the budget ---------------------------------------------------------------
    def fit(self, budget_chars: int, budget_tokens: int) -> str:
        """Text within `budget_chars`, eliding in the order `render` documents."""
        if self._fits(budget_chars):
            return self.text()
        for stage in (self._drop_values, self._collapse_runs, self._drop_docs, self._drop_lines):
            stage(budget_chars)
            if self._fits(budget_chars):
                return self.text()
        while self.value_chars > 16:
            self.value_chars //= 2
            self._note("kept values shortened", f"to {self.value_chars} chars")
            self.values = [None if value else value for value in self.values]  # dropped stay dropped
            self._drop_values(budget_chars)
            if self._fits(budget_chars):
                return self.text()
        # text and code first (they take edits); a list or dict only when nothing else fits
        if self._cut_params(budget_chars) or self._cut_params(budget_chars, everything=True):
            return self.text()
        text = self.text()
        raise RenderBudgetError(
            f"cannot render within {budget_tokens} tokens: parameters, outputs, "
            f"feedback and errors alone need ~{estimate_tokens(text)} tokens"
        )

    def _cut_params(self, budget_chars: int, least: int = 200, everything: bool = False) -> bool:
        """Cut the text and code values (`everything`: every value) to the most characters
        that fit (at least `least`), recording which were shown in part; False when even
        `least` does not fit."""
        self.cut_all = everything
        lengths = {p.name: shown_length(p) for p in self.subgraph.params
                   if everything or cuttable(p)}
        longest = max(lengths.values(), default=0)
        if longest <= least:
            return False

        def fits(limit: int) -> bool:
            self.param_chars = limit
            self.partial = {name: (limit, n) for name, n in lengths.items() if n > limit}
            return self._fits(budget_chars)

        if not fits(least):
            self.param_chars, self.partial = None, {}
            return False
        lo, hi = least, longest  # lo fits; find the most that fits
        while hi - lo > 16:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        fits(lo)
        self._note("parameter values shown in part", f"({', '.join(self.partial)})")
        return True

    def _note(self, what: str, detail: str) -> None:
        self.elided = [e for e in self.elided if not e.startswith(what)]
        self.elided.append(f"{what} {detail}")

    def _droppable(self) -> list[int]:
        """Lines whose value is shown and may be dropped."""
        keep, values = self.keep, self.values
        return [i for i in self.items if type(i) is int and i not in keep and values[i] != ""]

    def _drop_values(self, budget_chars: int) -> None:
        """Drop the values of the lines furthest from the parameters until the text fits."""
        room = self._room(budget_chars)
        if self._graph_len(room, values=False) > room:  # every droppable value must go
            dropped = self._droppable()
            for i in dropped:
                self.values[i] = ""
        else:
            over = self._graph_len(float("inf")) - room
            distance, nodes = self.subgraph.distance, self.nodes
            dropped = []
            for i in sorted(self._droppable(), key=lambda i: -distance.get(nodes[i], 0)):
                if over <= 0:
                    break
                over -= len(self.values[i])
                self.values[i] = ""
                dropped.append(i)
        if dropped:
            self.values_dropped += len(dropped)
            self._note("values of", f"{self.values_dropped} nodes far from the parameters")

    def _runs(self) -> list[tuple[int, int, int]]:
        """(start, end, period) of every run of a repeated op pattern (period up to 4)."""
        ops = [self.ops[item] if type(item) is int else None for item in self.items]
        ops.append(None)  # sentinel: no run continues past the end
        size = len(self.items)
        runs: list[tuple[int, int, int]] = []
        i = 0
        while i < size:
            best_end, best_period = i + 1, 1
            if ops[i] is not None:
                for period in range(1, 5):
                    j = i + period
                    if j >= size:
                        break
                    while ops[j] is not None and ops[j] == ops[j - period]:
                        j += 1
                    if j - i >= 3 * period and j > best_end:
                        best_end, best_period = j, period
                    if best_end == size:  # a longer period cannot do better
                        break
            if best_end - i >= 3:
                runs.append((i, best_end, best_period))
            i = best_end
        return runs

    def _collapse_runs(self, budget_chars: int) -> None:
        """Collapse repeated runs of operations (one op, or a pattern of up to 4) to one line.

        The longest runs go first, as few as make the text fit: the fewest is found by
        bisection, each try summing only the lines left outside the collapsed runs.
        """
        if self._fits(budget_chars, reserve=80):
            return
        room = self._room(budget_chars)
        items, names, nodes = self.items, self.names, self.nodes
        runs = sorted(self._runs(), key=lambda r: r[0] - r[1])
        if not runs:
            return

        def collapsed(k: int) -> list[int | str]:
            out: list[int | str] = []
            pos = 0
            for start, end, period in sorted(runs[:k]):
                out.extend(items[pos:start])
                pattern = ", ".join(self.ops[items[s]] for s in range(start, start + period))
                out.append(f"{names[id(nodes[items[start]])]} … {names[id(nodes[items[end - 1]])]}: "
                           f"[{pattern}] repeated, {end - start} similar operations collapsed")
                pos = end
            out.extend(items[pos:])
            return out

        def fits(k: int) -> bool:
            return self._graph_len(room, collapsed(k)) <= room

        lo, hi = 1, len(runs)  # the fewest runs that fit; all of them if none fits
        if fits(hi):
            while lo < hi:
                mid = (lo + hi) // 2
                if fits(mid):
                    hi = mid
                else:
                    lo = mid + 1
        self.items = collapsed(hi)
        count = sum(end - start for start, end, _ in runs[:hi])
        self._note("runs of", f"repeats collapsed ({count} lines)")

    def _drop_docs(self, budget_chars: int) -> None:
        if self.docs and not self._fits(budget_chars, reserve=80):
            self.show_docs = False
            self._note("operation docs", f"({len(self.docs)})")

    def _drop_lines(self, budget_chars: int) -> None:
        """Keep the lines nearest the parameters (and every output and error) that fit."""
        room = self._room(budget_chars) - 60  # 60: room for the marker line
        keep, distance, nodes = self.keep, self.subgraph.distance, self.nodes
        items = self.items
        room -= sum(self._item_len(item) for item in items if type(item) is int and item in keep)
        # nearest first; among equals the later line (dropping went furthest, then earliest)
        order = sorted(
            (pos for pos, item in enumerate(items) if type(item) is str or item not in keep),
            key=lambda pos: (0 if type(items[pos]) is str else distance.get(nodes[items[pos]], 0),
                             -pos),
        )
        kept: set[int] = set()
        for pos in order:
            room -= self._item_len(items[pos])
            if room < 0:
                break
            kept.add(pos)
        dropped = len(order) - len(kept)
        if dropped:
            self.items = [item for pos, item in enumerate(items)
                          if pos in kept or (type(item) is int and item in keep)]
            self.items.append(f"[{dropped} operation lines elided]")
            self._note("operation lines", f"({dropped}, furthest first)")


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _dot_escape(text: str) -> str:
    """Text inside a DOT double-quoted string: backslashes and quotes escaped, line breaks as
    DOT's `\\n` (Graphviz reads it back as the same text)."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


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
        return "\\n".join(map(_dot_escape, [name, body] if name != body else [body]))

    def attributes(n: Node) -> str:
        attrs = [f'label="{label(n)}"']
        if id(n) in params:
            attrs += ["shape=box", "style=filled", 'fillcolor="#dbeafe"']
        elif n.error is not None:
            attrs += ['color="#dc2626"', "penwidth=2"]
        elif id(n) in outputs:
            attrs += ["shape=doubleoctagon"]
        elif n.op is None:
            attrs += ["shape=plaintext"]
        return ", ".join(attrs)

    # A shared constant (the small ints) is drawn once per use, next to its consumer, as the
    # prompt inlines it: one `1` node wired to every `+ 1` of a loop would tangle the picture.
    uses: dict[int, int] = {}
    sources: dict[tuple[int, int], str] = {}  # (id of consumer, argument position) -> DOT id
    out = ["digraph backfeed {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for n in subgraph.nodes:
        for pos, child in enumerate(n.args):
            if child.op is None and not child.args and id(child) not in names and id(child) in local:
                k = uses[id(child)] = uses.get(id(child), -1) + 1
                if k:
                    sources[id(n), pos] = f"{node_id(child)}_{k}"
                    out.append(f"  {node_id(child)}_{k} [{attributes(child)}];")
        out.append(f"  {node_id(n)} [{attributes(n)}];")
    for n in subgraph.nodes:
        for pos, (arg, child) in enumerate(zip(n.arg_names, n.args)):
            if id(child) in local:
                source = sources.get((id(n), pos)) or node_id(child)
                out.append(f'  {source} -> {node_id(n)} [label="{arg}"];')
    out.append("}")
    return "\n".join(out)
