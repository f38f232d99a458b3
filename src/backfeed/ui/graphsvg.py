"""Trace graphs as SVG: Graphviz `dot` when installed, else a small layered layout of our own."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from dataclasses import dataclass, field

_NODE = re.compile(r"^\s*([A-Za-z_][\w]*)\s*\[(.*)\];?\s*$")
_EDGE = re.compile(r"^\s*([A-Za-z_][\w]*)\s*->\s*([A-Za-z_][\w]*)\s*(?:\[(.*)\])?;?\s*$")
_ATTR = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s\]]+))')


@dataclass
class DotGraph:
    """The subset of DOT that `bf.to_dot` writes: nodes with attributes, labelled edges."""

    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    edges: list[tuple[str, str, str]] = field(default_factory=list)


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append({"n": "\n", "l": "\n", "r": "\n"}.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _attrs(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    return {m[1]: _unescape(m[2]) if m[2] is not None else m[3] for m in _ATTR.finditer(text)}


def parse_dot(text: str) -> DotGraph:
    """Parse the node and edge statements of a DOT digraph (global attribute lines are skipped)."""
    graph = DotGraph()
    for line in text.splitlines():
        if m := _EDGE.match(line):
            src, dst = m[1], m[2]
            for n in (src, dst):
                graph.nodes.setdefault(n, {})
            graph.edges.append((src, dst, _attrs(m[3]).get("label", "")))
        elif (m := _NODE.match(line)) and m[1] not in ("node", "edge", "graph"):
            graph.nodes.setdefault(m[1], {}).update(_attrs(m[2]))
    return graph


def dot_to_svg(dot: str, *, use_graphviz: bool = True) -> str:
    """SVG for DOT text: Graphviz when `dot` is on PATH (and works), else `layout_svg`."""
    exe = shutil.which("dot") if use_graphviz else None
    if exe:
        done = subprocess.run(
            [exe, "-Tsvg"], input=dot, capture_output=True, text=True, timeout=20, check=False
        )
        if done.returncode == 0 and "<svg" in done.stdout:
            return done.stdout[done.stdout.index("<svg") :]
        # Graphviz rejected the text: draw it ourselves, so the page still shows the graph.
    return layout_svg(parse_dot(dot))


_CHAR_W, _LINE_H, _PAD, _GAP_X, _GAP_Y, _MAX_CHARS = 7.0, 15, 8, 56, 18, 34


def _label_lines(node_id: str, attrs: dict[str, str]) -> list[str]:
    lines = attrs.get("label", node_id).split("\n")[:4]
    return [ln if len(ln) <= _MAX_CHARS else ln[: _MAX_CHARS - 1] + "…" for ln in lines]


def _ranks(graph: DotGraph) -> dict[str, int]:
    """Longest-path rank from the sources (inputs left, output right); cycles are cut."""
    preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for src, dst, _ in graph.edges:
        preds[dst].append(src)
    rank: dict[str, int] = {}
    for start in graph.nodes:
        stack, on_path = [(start, False)], set()
        while stack:
            node, done = stack.pop()
            if done:
                on_path.discard(node)
                rank[node] = 1 + max((rank.get(p, 0) for p in preds[node] if p in rank), default=-1)
                continue
            if node in rank or node in on_path:
                continue
            on_path.add(node)
            stack.append((node, True))
            stack.extend((p, False) for p in preds[node] if p not in rank and p not in on_path)
    succs: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for src, dst, _ in graph.edges:
        succs[src].append(dst)
    for node in graph.nodes:  # inputs sit just left of their first use, not all in column 0
        if not preds[node] and succs[node]:
            rank[node] = max(0, min(rank[s] for s in succs[node]) - 1)
    return rank


def _centre(nodes: list[str], pos: dict[str, tuple[float, float]],
            size: dict[str, tuple[float, float]]) -> float | None:
    """Mean vertical centre of the already placed `nodes` (None when none is placed)."""
    ys = [pos[n][1] + size[n][1] / 2 for n in nodes if n in pos]
    return sum(ys) / len(ys) if ys else None


def layout_svg(graph: DotGraph) -> str:
    """A left-to-right layered drawing; every label is XML-escaped."""
    if not graph.nodes:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><text x="10" y="24" font-family="sans-serif" font-size="12">(empty graph)</text></svg>'
    rank = _ranks(graph)
    layers: dict[int, list[str]] = {}
    for node in graph.nodes:  # DOT order is topological for bf.to_dot, keep it within a layer
        layers.setdefault(rank[node], []).append(node)
    size = {}
    for node, attrs in graph.nodes.items():
        lines = _label_lines(node, attrs)
        size[node] = (max(len(ln) for ln in lines) * _CHAR_W + 2 * _PAD, len(lines) * _LINE_H + 2 * _PAD)
    preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for src, dst, _ in graph.edges:
        preds[dst].append(src)
    succs: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for src, dst, _ in graph.edges:
        succs[src].append(dst)
    # Pass 1 stacks each layer (operations by the barycentre of their inputs, inputs after);
    # pass 2 moves every input level with the operations that use it.
    pos: dict[str, tuple[float, float]] = {}
    for second in (False, True):
        x, height = 10.0, 0.0
        placed: dict[str, tuple[float, float]] = {}
        for r in sorted(layers):
            nodes = layers[r]
            want = {
                n: _centre(succs[n], pos, size) if second and not preds[n] and succs[n]
                else _centre(preds[n], placed, size) if preds[n] else None
                for n in nodes
            }
            order = sorted(nodes, key=lambda n: (want[n] is None, want[n] or 0.0)) if r else nodes
            width = max(size[n][0] for n in nodes)
            y = 10.0
            for n in order:
                top = y if want[n] is None or not second else max(y, want[n] - size[n][1] / 2)
                placed[n] = (x + (width - size[n][0]) / 2, top)
                y = top + size[n][1] + _GAP_Y
            height = max(height, y)
            x += width + _GAP_X
        pos = placed
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{x:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {x:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#64748b"/></marker></defs>',
    ]
    for src, dst, label in graph.edges:
        (sx, sy), (dx, dy) = pos[src], pos[dst]
        x1, y1 = sx + size[src][0], sy + size[src][1] / 2
        x2, y2 = dx, dy + size[dst][1] / 2
        if x2 <= x1:  # a cut cycle edge: draw it plainly
            x2 = dx + size[dst][0] / 2
        mx = (x1 + x2) / 2
        out.append(
            f'<path d="M{x1:.1f},{y1:.1f} C{mx:.1f},{y1:.1f} {mx:.1f},{y2:.1f} {x2:.1f},{y2:.1f}" '
            'fill="none" stroke="#64748b" marker-end="url(#arrow)"/>'
        )
        if label:
            out.append(
                f'<text x="{mx:.1f}" y="{(y1 + y2) / 2 - 3:.1f}" font-size="10" fill="#475569" '
                f'text-anchor="middle">{html.escape(label[:20])}</text>'
            )
    for node, attrs in graph.nodes.items():
        (nx, ny), (w, h) = pos[node], size[node]
        shape, style = attrs.get("shape", "ellipse"), attrs.get("style", "")
        fill = attrs.get("fillcolor", "#dbeafe") if "filled" in style else "#ffffff"
        stroke = attrs.get("color", "#334155")
        sw = attrs.get("penwidth", "1")
        fill, stroke, sw = (html.escape(v) for v in (fill, stroke, sw))
        if shape == "plaintext":
            pass
        elif shape == "box":
            out.append(f'<rect x="{nx:.1f}" y="{ny:.1f}" width="{w:.1f}" height="{h:.1f}" rx="3" fill="{fill}" stroke="{stroke}" stroke-width="{sw}"/>')
        else:
            cx, cy = nx + w / 2, ny + h / 2
            out.append(f'<ellipse cx="{cx:.1f}" cy="{cy:.1f}" rx="{w / 2:.1f}" ry="{h / 2:.1f}" fill="{fill}" stroke="{stroke}" stroke-width="{sw}"/>')
            if shape == "doubleoctagon":
                out.append(f'<ellipse cx="{cx:.1f}" cy="{cy:.1f}" rx="{w / 2 - 3:.1f}" ry="{h / 2 - 3:.1f}" fill="none" stroke="{stroke}"/>')
        lines = _label_lines(node, attrs)
        for i, line in enumerate(lines):
            ty = ny + _PAD + (i + 1) * _LINE_H - 3
            weight = ' font-weight="bold"' if i == 0 and len(lines) > 1 else ""
            out.append(f'<text x="{nx + w / 2:.1f}" y="{ty:.1f}" text-anchor="middle"{weight}>{html.escape(line)}</text>')
    out.append("</svg>")
    return "\n".join(out)
