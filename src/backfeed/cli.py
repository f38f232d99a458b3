"""The `backfeed` command."""

from __future__ import annotations

import typer

app = typer.Typer(help="backfeed: optimize whole AI workflows.", no_args_is_help=True)


@app.command()
def demo() -> None:
    """Trace a small program and print its graph.

    Example: backfeed demo
    """
    import backfeed as bf

    x = bf.param(1.0, name="x", description="offset added to the input")

    @bf.op
    def scale(v: float, factor: int) -> float:
        """Multiply v by factor."""
        return v * factor

    y = scale(x + 1, bf.node(3, name="k"))
    y.backward("y should be 20")
    print(bf.render([x]).text)


from .ui.commands import register as _register_run_commands  # noqa: E402

_register_run_commands(app)  # run, runs, show, diff, export, ui


def main() -> None:
    app()
