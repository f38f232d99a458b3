"""The `backfeed` command."""

from __future__ import annotations

import typer

app = typer.Typer(help="backfeed: optimize whole AI workflows.", no_args_is_help=True)


@app.callback()
def _commands() -> None:
    """backfeed: optimize whole AI workflows."""


@app.command()
def demo(
    steps: int = typer.Option(10, min=1, help="optimizer steps to run at most"),
    seed: int = typer.Option(0, help="seed of the run and the numeric sampler"),
    candidates: int = typer.Option(4, min=1, help="proposals the optimizer makes per step"),
) -> None:
    """Optimize a small built-in workflow (a text, a code and a numeric parameter) with the
    embedded model through bf.train, showing each step's score and tokens; the run is stored
    (backfeed show latest, backfeed ui).

    Example: backfeed demo --steps 10
    """
    from .demo import run_demo
    from .llm import LLMError
    from .train import ModelFailed

    try:
        run_demo(steps=steps, seed=seed, candidates=candidates)
    except (LLMError, ModelFailed) as exc:
        typer.echo(f"backfeed demo: {exc}", err=True)
        raise typer.Exit(1) from None


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


@app.command()
def cache(
    path: str = typer.Option("", help="The cache file (default: $BACKFEED_LLM_CACHE or "
                                      "~/.cache/backfeed/llm-cache.sqlite)."),
    clear: bool = typer.Option(False, "--clear", help="Delete every cached answer."),
    evict_to_mb: float = typer.Option(None, "--evict-to-mb", min=0,
                                      help="Evict least recently used answers down to 80% of this size."),
) -> None:
    """Show (or clear) the LLM response cache: where it is, how many answers, how big.

    Example: backfeed cache --evict-to-mb 100
    """
    from .llm.cache import ResponseCache, default_cache_path

    store = ResponseCache(path or default_cache_path())
    if clear:
        store.clear()
        typer.echo(f"cleared {store.path}")
    elif evict_to_mb is not None:
        gone = store.evict(int(evict_to_mb * 2**20))
        typer.echo(f"evicted {gone} answers")
    limit = "no limit" if store.max_bytes is None else f"limit {store.max_bytes / 2**20:,.0f} MiB"
    typer.echo(f"{store.path}: {len(store):,} answers, {store.size_bytes() / 2**20:,.2f} MiB ({limit})")
    store.close()


from .ui.commands import register as _register_run_commands  # noqa: E402

_register_run_commands(app)  # run, runs, show, diff, export, ui


def main() -> None:
    app()
