"""The `backfeed` command."""

from __future__ import annotations

import typer

app = typer.Typer(help="backfeed: optimize whole AI workflows.", no_args_is_help=True)


@app.callback()
def _commands() -> None:
    """backfeed: optimize whole AI workflows (subcommands even while there is only one)."""


@app.command()
def demo(
    steps: int = typer.Option(8, min=1, help="optimizer steps to run"),
    seed: int = typer.Option(0, help="seed of the numeric sampler"),
) -> None:
    """Optimize a small built-in workflow (a text, a code and a numeric parameter) with the
    embedded model, showing each step's score, tokens and time.

    Example: backfeed demo --steps 8
    """
    from .demo import run_demo
    from .llm import LLMError

    try:
        run_demo(steps=steps, seed=seed)
    except LLMError as exc:
        typer.echo(f"backfeed demo: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    app()
