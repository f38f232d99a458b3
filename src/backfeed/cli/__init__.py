"""The `backfeed` command: every subcommand (demo, serve-model, cache, eval here; runs, show,
diff, export, ui, run in `runs.py`)."""

from __future__ import annotations

from typing import Annotated, Any

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
    from ..demo import run_demo
    from ..llm import LLMError
    from ..train import ModelFailed

    try:
        run_demo(steps=steps, seed=seed, candidates=candidates)
    except (LLMError, ModelFailed) as exc:
        typer.echo(f"error: {exc}", err=True)
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
    from ..llm.cache import ResponseCache, default_cache_path

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


@app.command("eval")
def eval_(
    program: str = typer.Argument(..., help="The program: FILE.py:NAME or MODULE:NAME naming a "
                                            "bf.Module instance, class, or function making one."),
    values: str = typer.Option(..., "--values", help="A folder from `backfeed export RUN --to "
                                                     "files`, or a JSON file from Module.save."),
    data: str = typer.Option(..., "--data", help="Examples: a .json list, a .jsonl file, or "
                                                 "FILE.py:NAME."),
    metric: str = typer.Option(..., "--metric", help="FILE.py:NAME of metric(example, output)."),
    model: str = typer.Option("", "--model", help="The model bf.chat uses: local, local-1.5b, "
                                                  "a litellm model, or FILE.py:NAME naming a "
                                                  "backend (default: bf.llm.default())."),
    inputs: str = typer.Option("", "--inputs", help="For dict examples: the fields the program "
                                                    "takes, comma-separated (e.g. question)."),
    threads: int = typer.Option(1, min=1, help="Examples evaluated at once."),
    fail_under: float = typer.Option(None, "--fail-under",
                                     help="Exit with status 1 when the mean score is lower."),
) -> None:
    """Re-score saved or exported values on a dataset, to check that what you deploy scores
    what the run said (with bf.evaluate, as the trainer scores). Exits with status 1 when
    every example raised, or the mean is under --fail-under.

    Example: backfeed eval agent.py:Agent --values deploy/ --data test.jsonl --metric agent.py:metric
    """
    import contextlib

    from rich.console import Console

    from .. import llm as llms
    from .rescore import exported_score, load_data, load_object, load_program, rescore

    console = Console(highlight=False)
    try:
        module = load_program(program)
        examples = load_data(data)
        score = load_object(metric)
        chosen = _eval_model(model)
        using = llms.using(chosen) if chosen is not None else contextlib.nullcontext()
        fields = [f.strip() for f in inputs.split(",") if f.strip()] or None
        with using:
            report = rescore(module, values, examples, score, threads, inputs=fields)
    except Exception as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    console.print(report)
    mean = report.mean
    said = exported_score(values)
    note = "" if said is None else f" (the run's best score was {said:.3f})"
    console.print(f"mean score {mean:.3f} on {len(report.rows)} examples{note}")
    if report.rows and report.errors == len(report.rows):
        typer.echo(f"error: every example raised ({len(report.rows)} of {len(report.rows)}); "
                   "the first: " + str(report.rows[0].error), err=True)
        raise typer.Exit(1)
    if fail_under is not None and mean < fail_under:
        typer.echo(f"error: mean score {mean:.3f} is under {fail_under:g}", err=True)
        raise typer.Exit(1)


def _eval_model(spec: str) -> Any:
    """The backend `--model` names: local, local-1.5b, FILE.py:NAME (an object with
    .complete, or a function or class making one), or a litellm model name."""
    from .. import llm as llms
    from .rescore import load_object

    if not spec:
        return None
    if spec in ("local", "local-1.5b"):
        return llms.Local() if spec == "local" else llms.Local("qwen2.5-coder-1.5b")
    where = spec.rpartition(":")[0]
    if where.endswith(".py"):
        obj = load_object(spec)
        if isinstance(obj, type) or (not callable(getattr(obj, "complete", None))
                                     and callable(obj)):
            obj = obj()  # a class or a function making the model
        if not callable(getattr(obj, "complete", None)):
            raise TypeError(f"{spec} is not a model (an object with .complete(messages)), nor "
                            "a function or class making one")
        return obj
    return llms.LiteLLM(spec)


@app.command()
def ingest(
    files: Annotated[list[str], typer.Argument(
        help="OTLP/JSON span files (one document, or JSON lines of them, as `backfeed collect` "
             "writes).")],
    out: str = typer.Option(..., "--out", "-o", help="The dataset to write (JSON lines, one "
                                                     "record per model call)."),
    feedback: str = typer.Option("", "--feedback", help="A feedback file from bf.feedback "
                                                        "(default: its default file, if any)."),
) -> None:
    """Read a deployed app's OpenTelemetry GenAI spans into a dataset: one record per model
    call (trace and span ids, model, system prompt, messages, output, tokens) with the
    feedback given on its trace. Malformed input is counted in the summary line, not fatal.

    Example: backfeed ingest traces.jsonl --out calls.jsonl
    """
    from pathlib import Path

    from ..otel import default_feedback_path
    from ..otel import ingest as read

    given = Path(feedback) if feedback else default_feedback_path()
    if feedback and not given.exists():
        typer.echo(f"error: no feedback file {given}", err=True)
        raise typer.Exit(1)
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        typer.echo(f"error: no such file: {', '.join(missing)}", err=True)
        raise typer.Exit(1)
    _, report = read(files, out, feedback=given if given.exists() else None)
    typer.echo(report.summary())
    typer.echo(f"wrote {report.model_calls} records to {out}")


@app.command()
def collect(
    out: str = typer.Option(..., "--out", "-o", help="The file each trace export is appended "
                                                     "to (JSON lines, read by backfeed ingest)."),
    port: int = typer.Option(4318, help="The port (4318 is OTLP/HTTP's)."),
    host: str = typer.Option("127.0.0.1", help="The address to listen on; another than "
                                               "127.0.0.1 lets others on the network send."),
) -> None:
    """Receive OTLP/HTTP trace exports (POST /v1/traces, JSON, or protobuf with
    opentelemetry-proto installed) and append them to a file for `backfeed ingest`.

    Example: backfeed collect --port 4318 --out traces.jsonl, then point the app's exporter at
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
    """
    from ..otel.collect import Receiver

    try:
        receiver = Receiver(out, host=host, port=port)
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: listening on {host}: anyone who reaches it can append to {out}",
                   err=True)
    typer.echo(f"listening on {receiver.url}, appending to {out} (Ctrl-C stops)")
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        typer.echo(f"stopped: {receiver.requests} exports written to {out}")
    finally:
        receiver.server.server_close()


from .runs import register as _register_run_commands  # noqa: E402

_register_run_commands(app)  # run, runs, show, diff, export, ui


def main() -> None:
    app()
