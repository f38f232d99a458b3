"""Backward: feedback to parameters, and the minimal subgraph between them, in linear time."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from .node import Feedback, Node, Param, lost_traces


class NoTrainableAncestor(ValueError):
    """backward() was called on an output that no parameter influenced."""


def trainable_ancestors(output: Node) -> list[Param]:
    """The parameters `output` depends on (parameters are leaves, so leaves are not stacked)."""
    params = [output] if isinstance(output, Param) else []
    seen = {output}  # nodes hash by identity
    stack = [output]
    while stack:
        for child in stack.pop().args:
            if child not in seen:
                seen.add(child)
                if child.args:
                    stack.append(child)
                elif isinstance(child, Param):
                    params.append(child)
    return params


def backward(output: Node, feedback: Feedback | str | float | int) -> list[Param]:
    """Attach feedback to `output` and register it with every parameter it depends on."""
    fb = Feedback.of(feedback)
    params = trainable_ancestors(output)
    if not params:
        raise NoTrainableAncestor(
            f"backward() on {output!r}: no trainable parameter influenced this output. "
            + _trace_loss_hint(output)
        )
    if output._feedback is None:
        output._feedback = []
    output._feedback.append(fb)
    for p in params:
        p._outputs[id(output)] = output
    return params


_COMMON_CAUSES = (
    "Common causes: an f-string, str() or .value on a parameter or a node gives plain text "
    "and drops the trace; build text with bf.format(\"{a} {b}\", a=node, b=...) instead, and "
    "pass parameters (or nodes computed from them) as arguments to @bf.op functions."
)


def _trace_loss_hint(output: Node) -> str:
    """Name the parameters whose text reached `output` through an f-string, str() or .value."""
    texts = []  # the plain values that entered the graph of `output` as constants
    seen, stack = {output}, [output]
    while stack:
        n = stack.pop()
        if n.op is None and not n.args and isinstance(n._value, str):
            texts.append(n._value)
        for child in n.args:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    causes: dict[str, str] = {}
    for params, how, text in reversed(lost_traces()):  # the most recent loss first
        if len(text) >= 3 and any(text in t for t in texts):
            for p in params:
                causes.setdefault(p.name, how)
    if not causes:
        return _COMMON_CAUSES
    lost = ", ".join(f"{name!r} (through {how})" for name, how in causes.items())
    return (
        f"The trace was lost: the text of parameter(s) {lost} reached this output as a plain "
        "value, which copies the text and drops the trace. Build the text with "
        "bf.format(\"...{p}...\", p=param) or pass the parameter into a @bf.op function, so "
        "the trace reaches it."
    )


def zero_feedback(params: Iterable[Param]) -> None:
    """Forget the feedback of `params`, releasing the graphs it kept alive.

    Like torch's `zero_grad`, only these parameters forget: an output's feedback is dropped
    once no parameter holds the output any more, so another optimizer's parameters that
    share the output keep theirs."""
    released: dict[int, Node] = {}
    for p in params:
        released.update(p._outputs)
        p._outputs = {}
    for key, out in released.items():
        if not any(key in q._outputs for q in trainable_ancestors(out)):
            out._feedback = None


@dataclass
class Subgraph:
    """Nodes on a path from a parameter to an output with feedback, plus their direct inputs.

    `nodes` is in topological order; `distance` maps each node to the number of steps from the
    nearest parameter (inputs that are not on a path get their consumer's distance + 1).
    """

    params: list[Param]
    outputs: list[Node]
    nodes: list[Node]
    distance: dict[Node, int]

    def __len__(self) -> int:
        return len(self.nodes)

    @functools.cached_property
    def errors(self) -> list[Node]:
        return [n for n in self.nodes if n.error is not None]


def _postorder(outputs: list[Node]) -> list[Node]:
    # Nodes hash by identity (== is a traced op, but equal hashes never meet for live objects),
    # so the seen set holds the nodes themselves: no id() call per visit.
    order: list[Node] = []
    seen: set[Node] = set()
    visit = seen.add
    for root in outputs:
        if root in seen:
            continue
        visit(root)
        stack = [(root, iter(root.args))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in seen:
                    visit(child)
                    if child.args:
                        stack.append((child, iter(child.args)))
                        break
                    order.append(child)  # a leaf: no need to stack it
            else:
                stack.pop()
                order.append(node)
    return order


def minimal_subgraph(params: Iterable[Param], outputs: Iterable[Node] | None = None) -> Subgraph:
    """The minimal subgraph of `params` up to `outputs` (default: the outputs with feedback).

    One depth-first walk back from the outputs, then one pass over what it found, in
    topological order, marking what a parameter reaches. No per-node copies of descendant lists.
    """
    params = list(dict.fromkeys(params))
    if outputs is None:
        outputs = [o for p in params for o in p._outputs.values()]
    outputs = list({id(o): o for o in outputs}.values())
    # Depth-first post-order from the outputs (in the order they got feedback), inputs in
    # argument order: a topological order that does not depend on which thread made a node.
    ordered = _postorder(outputs)
    param_set = set(params)
    distance: dict[Node, int] = {}  # first the nodes on a path, then their direct inputs
    on_path: list[Node] = []
    get = distance.get
    for n in ordered:
        if n in param_set:
            d = 0
        else:
            d = 0
            for child in n.args:
                dc = get(child)
                if dc is not None and (d == 0 or dc < d - 1):
                    d = dc + 1
            if d == 0:
                continue
        distance[n] = d
        on_path.append(n)
    kept_params = [p for p in params if p in distance]
    kept_outputs = [o for o in outputs if o in distance]
    for n in on_path:
        d = distance[n] + 1
        for child in n.args:
            if child not in distance:
                distance[child] = d
    return Subgraph(kept_params, kept_outputs, [n for n in ordered if n in distance], distance)
