"""Backward: feedback to parameters, and the minimal subgraph between them, in linear time."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from .node import Feedback, Node, Param


class NoTrainableAncestor(ValueError):
    """backward() was called on an output that no parameter influenced."""


def ancestors(outputs: Iterable[Node]) -> dict[int, Node]:
    """Every node the outputs depend on, themselves included (iterative, visits each once)."""
    seen: dict[int, Node] = {}
    stack = list(outputs)
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen[id(n)] = n
        stack.extend(child for _, child in n.inputs if id(child) not in seen)
    return seen


def backward(output: Node, feedback: Feedback | str | float | int) -> list[Param]:
    """Attach feedback to `output` and register it with every parameter it depends on."""
    fb = Feedback.of(feedback)
    params = [n for n in ancestors([output]).values() if isinstance(n, Param)]
    if not params:
        raise NoTrainableAncestor(
            f"backward() on {output!r}: no trainable parameter influenced this output. "
            "Pass parameters into @bf.op functions (or read them there) so the trace reaches them."
        )
    if output._feedback is None:
        output._feedback = []
    output._feedback.append(fb)
    for p in params:
        p._outputs[id(output)] = output
    return params


def zero_feedback(params: Iterable[Param]) -> None:
    """Forget the feedback of `params`, releasing the graphs it kept alive."""
    for p in params:
        p.zero_feedback()


@dataclass
class Subgraph:
    """Nodes on a path from a parameter to an output with feedback, plus their direct inputs.

    `nodes` is in topological order; `distance` maps id(node) to the number of steps from the
    nearest parameter (inputs that are not on a path get their consumer's distance + 1).
    """

    params: list[Param]
    outputs: list[Node]
    nodes: list[Node]
    distance: dict[int, int]

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def errors(self) -> list[Node]:
        return [n for n in self.nodes if n.error is not None]


def minimal_subgraph(params: Iterable[Param], outputs: Iterable[Node] | None = None) -> Subgraph:
    """The minimal subgraph of `params` up to `outputs` (default: the outputs with feedback).

    Two linear passes: reachability backward from the outputs, then forward from the
    parameters over the reversed edges of that set. No per-node copies of descendant lists.
    """
    params = list(dict.fromkeys(params))
    if outputs is None:
        outputs = [o for p in params for o in p._outputs.values()]
    outputs = list({id(o): o for o in outputs}.values())
    upstream = ancestors(outputs)
    consumers: dict[int, list[Node]] = {}
    for n in upstream.values():
        for _, child in n.inputs:
            consumers.setdefault(id(child), []).append(n)
    # forward from the parameters, inside the set of nodes the outputs depend on
    distance: dict[int, int] = {}
    on_path: dict[int, Node] = {}
    queue = deque()
    for p in params:
        if id(p) in upstream and id(p) not in distance:
            distance[id(p)] = 0
            on_path[id(p)] = p
            queue.append(p)
    while queue:
        n = queue.popleft()
        for consumer in consumers.get(id(n), ()):
            if id(consumer) not in distance:
                distance[id(consumer)] = distance[id(n)] + 1
                on_path[id(consumer)] = consumer
                queue.append(consumer)
    selected = dict(on_path)
    for n in on_path.values():
        for _, child in n.inputs:
            if id(child) not in selected:
                selected[id(child)] = child
                distance[id(child)] = distance[id(n)] + 1
    # creation ids are a topological order (inputs exist before the nodes made from them)
    nodes = sorted(selected.values(), key=lambda n: n.id)
    return Subgraph(
        [p for p in params if id(p) in on_path],
        [o for o in outputs if id(o) in on_path],
        nodes,
        distance,
    )
