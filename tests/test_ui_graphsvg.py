"""Trace graphs as SVG: DOT parsing and the built-in layout."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import backfeed as bf
from backfeed.ui.graphsvg import dot_to_svg, layout_svg, parse_dot


def _traced() -> tuple[bf.Param, bf.Param]:
    x = bf.param(1.0, name="x")
    prompt = bf.param("Be <b>brief</b> & \"exact\"", name="prompt")

    @bf.op
    def scale(v: float, factor: int) -> float:
        """Multiply v by factor."""
        return v * factor

    @bf.op
    def ask(prompt: str, value: float) -> str:
        """Ask."""
        return f"{prompt} {value}"

    out = ask(prompt, scale(x + 1, bf.node(3, name="k")))
    out.backward("wrong")
    return x, prompt


def test_parse_dot_reads_what_to_dot_writes():
    x, prompt = _traced()
    graph = parse_dot(bf.to_dot([x, prompt]))
    labels = {a.get("label", "").split("\n")[0] for a in graph.nodes.values()}
    assert {"x", "prompt", "add0", "scale0", "ask0", "k"} <= labels
    params = [n for n, a in graph.nodes.items() if a.get("shape") == "box"]
    assert len(params) == 2
    assert len(graph.edges) == 6 and {e[2] for e in graph.edges} >= {"a", "v", "factor", "prompt", "value"}


def test_layout_svg_is_valid_xml_and_escapes_labels():
    x, prompt = _traced()
    svg = dot_to_svg(bf.to_dot([x, prompt]), use_graphviz=False)
    root = ET.fromstring(svg)  # well-formed: every label was escaped
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert any(t and "<b>brief</b>" in t for t in texts)  # shown as text, not markup
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert len(list(root.iter("{http://www.w3.org/2000/svg}path"))) == 7  # 6 edges + arrow head


def test_layout_survives_cycles_and_empty_graphs():
    svg = layout_svg(parse_dot('digraph {\n  a -> b;\n  b -> a;\n  c [label="<c>"];\n}'))
    ET.fromstring(svg)
    assert "&lt;c&gt;" in svg
    ET.fromstring(layout_svg(parse_dot("digraph {}")))


def test_graphviz_is_used_when_dot_is_installed(tmp_path, monkeypatch):
    fake = tmp_path / "dot"
    fake.write_text('#!/bin/sh\ncat > /dev/null\necho \'<?xml version="1.0"?>\'\necho "<svg id=from-graphviz></svg>"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert dot_to_svg('digraph {\n  a -> b;\n}') == "<svg id=from-graphviz></svg>\n"
    fake.write_text("#!/bin/sh\nexit 3\n")  # a broken graphviz: our own layout instead
    assert "<text" in dot_to_svg('digraph {\n  a -> b;\n}')
