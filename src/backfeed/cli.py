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


@app.command("serve-model")
def serve_model(
    model: str = typer.Option(
        "qwen2.5-coder-0.5b",
        help="qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, or a path to a .gguf file.",
    ),
    port: int = typer.Option(8080, help="Port on 127.0.0.1."),
    n_ctx: int = typer.Option(8192, help="Context length per request slot."),
    parallel: int = typer.Option(1, help="Requests decoded at once (slots)."),
    api_key: str = typer.Option(
        "", envvar="BACKFEED_SERVE_API_KEY", help="Require this bearer key (default: none)."
    ),
) -> None:
    """Serve the embedded model as an OpenAI-compatible endpoint on 127.0.0.1.

    Example: backfeed serve-model --port 8080, then point litellm at it with
    model="openai/qwen2.5-coder-0.5b", api_base="http://127.0.0.1:8080/v1".
    """
    from backfeed.llm.serve import serve_model as serve

    serve(model, port=port, n_ctx=n_ctx, parallel=parallel, api_key=api_key or None)


from .ui.commands import register as _register_run_commands  # noqa: E402

_register_run_commands(app)  # run, runs, show, diff, export, ui


def main() -> None:
    app()
