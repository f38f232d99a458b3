"""The minimal subgraph between parameters and their outputs, in linear time (backward itself
is in node.py, beside Node)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from .node import (  # backward lives beside Node; re-exported here, where it always was
    Node,
    NoTrainableAncestor,
    Param,
    backward,
    trainable_ancestors,
    zero_feedback,
)


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


__all__ = ["NoTrainableAncestor", "Subgraph", "backward", "minimal_subgraph",
           "trainable_ancestors", "zero_feedback"]
