"""Trace graphs as SVG: drawn by Graphviz, and said plainly when it is missing."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest

import backfeed as bf
from backfeed.ui.graphsvg import GraphvizMissing, dot_to_svg, notice_svg


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


def test_graphviz_draws_what_to_dot_writes_with_labels_escaped():
    if shutil.which("dot") is None:
        pytest.fail("Graphviz is not installed: .ci/run installs it (apt install graphviz)")
    x, prompt = _traced()
    svg = dot_to_svg(bf.to_dot([x, prompt]))
    root = ET.fromstring(svg)  # well-formed: every label was escaped
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "x" in texts and "scale0" in texts and "<b>brief</b>" in texts  # text, not markup
    assert len([g for g in root.iter("{http://www.w3.org/2000/svg}g")
                if g.get("class") == "edge"]) == 6


def test_without_graphviz_the_page_says_how_to_get_the_drawing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on it
    with pytest.raises(GraphvizMissing, match="apt install graphviz"):
        dot_to_svg("digraph {\n  a -> b;\n}")
    notice = notice_svg("Graphviz is not installed: <install it>")
    assert "&lt;install it&gt;" in ET.tostring(ET.fromstring(notice), encoding="unicode")


def test_a_graphviz_that_rejects_the_text_is_named_not_hidden(tmp_path, monkeypatch):
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\n/bin/cat > /dev/null\necho 'syntax error in line 2' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GraphvizMissing, match="syntax error in line 2"):
        dot_to_svg("digraph {")
