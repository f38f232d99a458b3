"""Trace graphs as SVG, drawn by Graphviz (`dot`), the field's own tool.

The trainer stores each step's trace as DOT text (`bf.to_dot`); this module only hands it to
Graphviz, and never parses it. Without Graphviz (`apt install graphviz`, `brew install
graphviz`; `.ci/run` installs it), the step page shows one line saying so, with the DOT text
to download (`graph.dot`) for any viewer.
"""

from __future__ import annotations

import html
import shutil
import subprocess

INSTALL = "install Graphviz (apt install graphviz, or brew install graphviz) to draw it"


class GraphvizMissing(RuntimeError):
    """Graphviz is not installed, or it could not draw the text; the message says which."""


def dot_to_svg(dot: str) -> str:
    """SVG of DOT text, from Graphviz's `dot -Tsvg`; `GraphvizMissing` when `dot` is not on
    PATH or rejects the text (its own error, first line)."""
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizMissing(f"Graphviz is not installed: {INSTALL}")
    try:
        done = subprocess.run([exe, "-Tsvg"], input=dot, capture_output=True, text=True,
                              timeout=20, check=False)
    except subprocess.TimeoutExpired:
        raise GraphvizMissing("Graphviz took over 20 s to draw the graph") from None
    if done.returncode != 0 or "<svg" not in done.stdout:
        first = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
        raise GraphvizMissing(f"Graphviz could not draw the graph: {first}")
    return done.stdout[done.stdout.index("<svg") :]


def notice_svg(message: str) -> str:
    """A one-line SVG that says why there is no drawing (shown where the graph would be)."""
    width = 8 * len(message) + 24
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="40" '
            f'role="img"><text x="12" y="25" font-family="sans-serif" font-size="13">'
            f"{html.escape(message)}</text></svg>")
