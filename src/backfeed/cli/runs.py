"""The run commands of `backfeed`: run, runs, show, diff, export and ui (registered in cli.py)."""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..store import RunStore, default_store_path, export_mlflow
from ..ui.server import DashboardError
from ..ui.views import NotFound, RunReader, value_text

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        envvar="BACKFEED_STORE",
        help="Run store file (default: $BACKFEED_STORE, else ~/.local/share/backfeed/runs.db).",
        show_default=False,
    ),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]
RunArg = Annotated[str, typer.Argument(help="Run id, a unique prefix of one, its name, or `latest`.")]


class CommandError(Exception):
    """A user-facing failure: printed as one line."""


def _flat(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def _one_line(exc: BaseException) -> str:
    """Our own errors speak for themselves; anything else is prefixed with its type."""
    own = (CommandError, NotFound, FileNotFoundError, DashboardError)
    return _flat(exc) if isinstance(exc, own) else f"{type(exc).__name__}: {_flat(exc)}"


@contextlib.contextmanager
def errors(debug: bool) -> Iterator[None]:
    """Turn any exception into `error: <one line>` and exit status 1 (the traceback with --debug)."""
    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        if debug:
            raise
        err.print(Text("error: " + _one_line(exc)), soft_wrap=True)
        raise typer.Exit(1) from None


def _store(store: Path | None) -> Path:
    return Path(store) if store is not None else default_store_path()


def _fmt_score(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def _fmt_usd(v: float | None) -> str:
    return "–" if v is None else f"${v:.4f}" if v < 1 else f"${v:.2f}"


def _fmt_int(v: Any) -> str:
    return "–" if v is None else f"{int(v):,}"


def _role_spend(spend: dict[str, Any]) -> str:
    """One role's share of a run's spend: calls (cached ones said), tokens and dollars."""
    tokens = (spend.get("prompt_tokens") or 0) + (spend.get("completion_tokens") or 0)
    return (f"{_calls(spend.get('calls'), spend.get('cached_calls'))} calls, {_fmt_int(tokens)} "
            f"tokens, {_fmt_usd(spend.get('usd'))}")


def _calls(calls: int | None, cached: int | None) -> str:
    """`12`, or `12 (3 cached)` when the cache answered some."""
    return _fmt_int(calls) + (f" ({cached:,} cached)" if cached else "")


def _fmt_duration(s: float | None) -> str:
    if s is None:
        return "–"
    s = round(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    return f"{s // 3600}h {s % 3600 // 60}m"


def _fmt_age(t: float) -> str:
    return _fmt_duration(max(0.0, time.time() - t)) + " ago"


_STATUS_STYLE = {"running": "bold blue", "finished": "green", "failed": "red", "stopped": "yellow"}


def _status(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, ""))


# -- backfeed runs -----------------------------------------------------------------------------


def runs(
    store: StoreOpt = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status (running, finished, stopped, failed).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    debug: DebugOpt = False,
) -> None:
    """List the runs in the store: status, best score, spend and age.

    Example: backfeed runs --status running --limit 5
    """
    with errors(debug), RunReader(_store(store)) as reader:
        rows = [r for r in reader.runs() if status is None or r["status"] == status][:limit]
        if as_json:
            out.print_json(json.dumps(rows))
            return
        if not rows:
            out.print(Text(f"no runs in {reader.path}" + (f" with status {status!r}" if status else "")))
            return
        cells = {
            "run": lambda r: Text(r["id"]), "name": lambda r: Text(r["name"] or ""),
            "status": lambda r: _status(r["status"]), "best": lambda r: _fmt_score(r["best_score"]),
            "steps": lambda r: _fmt_int(r["steps"]),
            "calls": lambda r: _calls(r["llm_calls"], r["cached_calls"]),
            "tokens": lambda r: _fmt_int(r["tokens"]), "spend": lambda r: _fmt_usd(r["usd"]),
            "held-out": lambda r: _fmt_gain(r["verdict"]),
            "age": lambda r: _fmt_age(r["started_at"]),
            "duration": lambda r: _fmt_duration(r["duration_s"]),
        }
        columns = _fitting(cells, rows, out.width)
        table = Table(title=Text(f"runs in {reader.path}"), title_justify="left", box=box.SIMPLE_HEAD)
        for col in columns:
            justify = "left" if col in ("run", "name", "status") else "right"
            # the id is never cut, so that it can be copied; a long name wraps
            table.add_column(col, justify=justify, no_wrap=col != "name",  # type: ignore[arg-type]
                             min_width=max(len(r["id"]) for r in rows) if col == "run" else None)
        for r in rows:
            table.add_row(*(cells[col](r) for col in columns))
        out.print(table)
        if len(columns) < len(cells):
            left = [c for c in cells if c not in columns]
            out.print(Text(f"({', '.join(left)} left out at {out.width} columns: --json has "
                           "every field)", style="dim"))
        if any(r["by_role"] for r in rows):
            out.print(_roles_table(rows))


_DROP_ORDER = ("duration", "age", "tokens", "steps", "held-out", "spend", "name")  # first left out


def _fmt_gain(verdict: dict[str, Any] | None) -> Text:
    """The held-out improvement, `+0.300*` when its interval lies above 0 (`?`: it includes 0;
    `~`: measured on the examples the best was chosen on)."""
    if not verdict or not verdict["measured"] or verdict["improvement"] is None:
        return Text("–")
    mark = "*" if verdict["significant"] else "?"
    return Text(f"{verdict['improvement']:+.3f}{mark}" + ("" if verdict["split"] == "test" else "~"),
                style="green" if verdict["significant"] else "")


def _fitting(cells: dict[str, Any], rows: list[dict[str, Any]], width: int) -> list[str]:
    """The columns that fit `width` whole (the id never cut), leaving out the least useful
    first: duration, age, tokens, steps, spend, then the name."""
    widths = {col: max([len(col)] + [len(str(cells[col](r))) for r in rows]) for col in cells}
    columns = list(cells)
    for col in _DROP_ORDER:
        if sum(widths[c] + 3 for c in columns) + 2 <= width:  # padding and edges included
            break
        columns.remove(col)
    return columns


def _roles_table(rows: list[dict[str, Any]]) -> Table:
    """The listed runs' spend by role (optimizer, judge, program), one row per run and role."""
    table = Table(title=Text("spend by role"), title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("run", "role", "calls", "tokens", "spend"):
        table.add_column(col, justify="left" if col in ("run", "role") else "right", no_wrap=True)
    for r in rows:
        for role, s in r["by_role"].items():
            tokens = (s.get("prompt_tokens") or 0) + (s.get("completion_tokens") or 0)
            table.add_row(Text(r["id"]), Text(role), _calls(s.get("calls"), s.get("cached_calls")),
                          _fmt_int(tokens), _fmt_usd(s.get("usd")))
    return table


# -- backfeed show -----------------------------------------------------------------------------

_EIGHTHS = " ▁▂▃▄▅▆▇█"


def score_chart(values: list[float | None], height: int = 6, width: int = 60,
                steps: list[int] | None = None) -> list[str]:
    """Bars of `values` (best score after each step) in block characters, with the range;
    `steps` are their step numbers (-1: the seed), named under the bars."""
    known = [v for v in values if v is not None]
    if not known:
        return ["(no scores yet)"]
    if not steps or len(steps) != len(values):
        named = f" {len(values)} points"
    elif steps[0] < 0:
        named = " seed" + (f", then steps {steps[1]}..{steps[-1]}" if len(steps) > 1 else "")
    else:
        named = f" steps {steps[0]}..{steps[-1]}"
    if len(values) > width:  # keep the last value of each bucket
        step = len(values) / width
        values = [values[min(len(values) - 1, int((i + 1) * step) - 1)] for i in range(width)]
    lo, hi = min(known), max(known)
    span = (hi - lo) or 1.0
    levels = [None if v is None else 1 + (v - lo) / span * (height * 8 - 1) for v in values]
    lines = []
    for row in range(height, 0, -1):
        floor = (row - 1) * 8
        chars = []
        for lv in levels:
            fill = 0 if lv is None else max(0, min(8, round(lv - floor)))
            chars.append(_EIGHTHS[fill])
        label = f"{hi:8.3f} ┤" if row == height else f"{lo:8.3f} ┤" if row == 1 else "         │"
        lines.append(label + "".join(chars))
    lines.append("         └" + "─" * len(values) + named)
    return lines


def show(
    run: RunArg,
    store: StoreOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Summarise a run: status, spend, best parameters and the score curve.

    Example: backfeed show latest
    """
    with errors(debug), RunReader(_store(store)) as reader:
        d = reader.run_detail(run)
        r = d["run"]
        head = Table.grid(padding=(0, 2))
        head.add_column(style="dim")
        head.add_column()
        for key, value in [
            ("run", Text(r["id"])), ("name", Text(r["name"] or "–")), ("status", _status(r["status"])),
            ("strategy", Text(r["strategy"] or "–")), ("best score", _fmt_score(r["best_score"])),
            ("best candidate", _fmt_int(r["best_candidate"])), ("steps", _fmt_int(r["steps"])),
            ("LLM calls", Text(_calls(r["llm_calls"], r["cached_calls"]))),
            ("tokens", _fmt_int(r["tokens"])),
            ("spend", _fmt_usd(r["usd"])), ("duration", _fmt_duration(r["duration_s"])),
            ("stopped because", Text(r["stop_reason"] or "–")),
            ("guards fired", Text(f"{r['guards']} (proposals that copied training data)"
                                  if r["guards"] else "0")),
            *((f"  {role} spend", Text(_role_spend(s))) for role, s in r["by_role"].items()),
        ]:
            head.add_row(key, value)
        out.print(head)
        if r["verdict"]:
            out.print(Text(r["verdict"]["line"], style="bold" if r["verdict"]["significant"] else ""),
                      soft_wrap=True)
        out.print()
        out.print(Text("best score after each step", style="bold"))
        for line in score_chart([s["best_score"] for s in d["steps"]],
                                steps=[s["step"] for s in d["steps"]]):
            out.print(Text(line))
        if d["steps"]:
            table = Table(title=Text("steps"), title_justify="left")
            for col in ("step", "candidate", "score", "kept", "applied", "rejected", "calls", "spend", "why"):
                table.add_column(col, justify="left" if col in ("kept", "why") else "right")
            for s in d["steps"]:
                kept = "–" if s["accepted"] is None else "yes" if s["accepted"] else "no"
                table.add_row("seed" if s["step"] < 0 else str(s["step"]), _fmt_int(s["candidate"]),
                              _fmt_score(s["score"]), kept,
                              str(s["applied"]), str(s["rejected"]), _fmt_int(s["llm_calls"]), _fmt_usd(s["usd"]),
                              Text(s["reason"] or ""))
            out.print(table)
        if r["best_params"]:
            out.print(Text("best parameters", style="bold"))
            for name, value in r["best_params"].items():
                out.print(Text(f"  {name} = ", style="cyan") + Text(_indent_value(value)))
        out.print(Text(f"\nsteps in detail: backfeed ui  ·  what changed: backfeed diff {r['id']} seed best", style="dim"), soft_wrap=True)


def _indent_value(value: Any) -> str:
    text = value_text(value)
    return text.replace("\n", "\n    ") if "\n" in text else text


# -- backfeed diff -----------------------------------------------------------------------------


def diff(
    run: RunArg,
    step_a: Annotated[str, typer.Argument(help="The earlier step: a number, `seed` or `best`.")],
    step_b: Annotated[str, typer.Argument(help="The later step: a number, `seed` or `best`.")],
    store: StoreOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Show how each parameter differs between the candidates of two steps, as text diffs.

    Example: backfeed diff latest seed best   (or: backfeed diff latest 0 5)
    """
    from ..ui.views import text_diff

    with errors(debug), RunReader(_store(store)) as reader:
        ca, a = reader.values_at(run, _step_ref(step_a))
        cb, b = reader.values_at(run, _step_ref(step_b))
        changed = 0
        for name in list(dict.fromkeys([*a, *b])):
            if name not in a or name not in b or a[name] != b[name]:
                changed += 1
                out.print(Text(f"{name}", style="bold cyan"))
                lines = text_diff(a.get(name), b.get(name), old_label=f"{_step_label(step_a)} (candidate {ca})",
                                  new_label=f"{_step_label(step_b)} (candidate {cb})")
                for line in lines:
                    style = ("green" if line.startswith("+") and not line.startswith("+++") else
                             "red" if line.startswith("-") and not line.startswith("---") else
                             "dim" if line.startswith("@@") else "")
                    out.print(Text(line, style=style))
        if not changed:
            out.print(Text(f"no parameter differs between {_step_label(step_a)} (candidate {ca}) and {_step_label(step_b)} (candidate {cb})"))


def _step_label(text: str) -> str:
    return text if text in ("seed", "best") else f"step {text}"


def _step_ref(text: str) -> int | str:
    if text in ("seed", "best"):
        return text
    try:
        return int(text)
    except ValueError:
        raise CommandError(f"a step is a number, `seed` or `best`, not {text!r}") from None


# -- backfeed export ---------------------------------------------------------------------------


def export(
    run: RunArg,
    to: Annotated[str, typer.Option("--to", help="json (the whole run as one document), mlflow, or files "
                                                 "(the best values as plain files in the folder -o).")] = "json",
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Write JSON to this file instead of stdout "
                                                                   "(with --to files: the folder).")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default: MLflow's own).")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "backfeed",
    store: StoreOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Export a run: every step, candidate, evaluation, LLM call and decision.

    Example: backfeed export latest --to json -o run.json   (or: --to mlflow --tracking-uri ./mlruns,
    or: --to files -o deploy/ for text .txt, code .py, values.json and manifest.json)
    """
    with errors(debug):
        if to not in ("json", "mlflow", "files"):
            raise CommandError(f"unknown export target {to!r}: use --to json, --to mlflow or --to files")
        if to == "files":
            _export_files(run, output, _store(store))
            return
        with RunReader(_store(store)) as reader:
            data = reader.export(run)
        if to == "json":
            text = json.dumps(data, indent=2, ensure_ascii=False, default=repr)
            if output is None:
                sys.stdout.write(text + "\n")
            else:
                output.write_text(text + "\n", encoding="utf-8")
                err.print(Text(f"wrote {output} ({len(text):,} characters)"))
            return
        try:
            mlflow_id = export_mlflow(RunStore(_store(store), readonly=True), data["run"]["id"],
                                      tracking_uri=tracking_uri, experiment=experiment,
                                      document=data)
        except ImportError as exc:
            raise CommandError(str(exc)) from None
        out.print(Text(f"exported run {data['run']['id']} to MLflow run {mlflow_id} (experiment {experiment!r})"))


def _export_files(run: str, output: Path | None, store_path: Path) -> None:
    from ..store.files_export import export_files

    if output is None:
        raise CommandError("--to files needs a folder: -o DIR")
    with RunReader(store_path) as reader:
        run_id = reader.resolve(run)
    store = RunStore(store_path, readonly=True)
    try:
        manifest = export_files(store, run_id, output)
    finally:
        store.close()
    files = sorted({e["file"] for e in manifest["parameters"].values()})
    out.print(Text(f"wrote {output}: {', '.join(files)} and manifest.json (run {run_id}, "
                   f"score {_fmt_score(manifest['score'])}); load with Module.load({str(output)!r})"))


# -- backfeed ui -------------------------------------------------------------------------------


def ui(
    store: StoreOpt = None,
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8765,
    token: Annotated[str | None, typer.Option(envvar="BACKFEED_UI_TOKEN", help="Secret required by every request (query ?token=, cookie or Bearer header).", show_default=False)] = None,
    debug: DebugOpt = False,
) -> None:
    """Serve the read-only dashboard over the run store (live while a run is writing).

    Example: backfeed ui --port 8765   (then open http://127.0.0.1:8765/)
    """
    from ..ui.server import check_bind

    with errors(debug):
        check_bind(host, token)
        try:
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            raise CommandError("the dashboard needs starlette and uvicorn: pip install 'backfeed[ui]'") from None
        from ..ui.server import serve

        path = _store(store)
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}/" + ("?token=" + token if token else "")
        err.print(Text(f"backfeed dashboard on {url}  (store: {path}; Ctrl-C stops)"))
        serve(path, host=host, port=port, token=token)


# -- backfeed run ------------------------------------------------------------------------------

_CONFIG_KEYS = {"script", "args", "store", "env"}


def _load_config(path: Path) -> dict[str, Any]:
    if path.suffix == ".json":
        config = json.loads(path.read_text(encoding="utf-8"))
    else:
        import tomllib

        config = tomllib.loads(path.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise CommandError(f"{path}: a run config must be a table/object with a `script` key")
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise CommandError(f"{path}: unknown key(s) {unknown}; a run config has {sorted(_CONFIG_KEYS)}")
    if "script" not in config:
        raise CommandError(f"{path}: a run config needs `script = \"train.py\"`")
    return config


def run(
    script_or_config: Annotated[Path, typer.Argument(help="A Python training script, or a .toml/.json config naming one.")],
    args: Annotated[list[str] | None, typer.Argument(help="Arguments passed to the script (after --).")] = None,
    store: StoreOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Run a training script (it calls bf.train) with the store set, then list the runs it made.

    A config file (.toml or .json) holds `script`, and optionally `args`, `store` and `env`.

    Example: backfeed run train.py -- --steps 10   (or: backfeed run experiment.toml)
    """
    with errors(debug):
        path = script_or_config
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        env: dict[str, str] = {}
        argv = list(args or [])
        if path.suffix in (".toml", ".json"):
            config = _load_config(path)
            script = (path.parent / str(config["script"])).resolve()
            argv = [str(a) for a in config.get("args", [])] + argv
            env = {str(k): str(v) for k, v in (config.get("env") or {}).items()}
            if store is None and config.get("store"):
                store = path.parent / str(config["store"])
        elif path.suffix == ".py":
            script = path.resolve()
        else:
            raise CommandError(f"{path}: expected a .py script or a .toml/.json config")
        if not script.is_file():
            raise CommandError(f"the config names a script that does not exist: {script}")
        store_path = _store(store).resolve()
        env["BACKFEED_STORE"] = str(store_path)
        before = _run_ids(store_path)
        _run_script(script, argv, env, debug)
        made = [r for r in _run_ids(store_path) if r not in before]
        if not made:
            out.print(Text(f"the script finished; it wrote no run to {store_path}"))
            return
        with RunReader(store_path) as reader:
            for r in (x for x in reader.runs() if x["id"] in made):
                out.print(Text(f"run {r['id']}: ") + _status(r["status"]) + Text(
                    f", best score {_fmt_score(r['best_score'])}, {_fmt_int(r['llm_calls'])} LLM calls, "
                    f"{_fmt_usd(r['usd'])}  ->  backfeed show {r['id']}"))


def _run_ids(store_path: Path) -> set[str]:
    if not store_path.is_file():
        return set()
    with RunReader(store_path) as reader:
        return set(reader.run_ids())


def _run_script(script: Path, argv: list[str], env: dict[str, str], debug: bool) -> None:
    saved_argv, saved_path = sys.argv, list(sys.path)
    saved_env = {k: os.environ.get(k) for k in env}
    sys.argv = [str(script), *argv]
    sys.path.insert(0, str(script.parent))
    os.environ.update(env)
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise CommandError(f"{script.name} exited with status {exc.code}") from None
    except Exception as exc:
        if debug:
            raise
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(script)]
        where = f" (at {script.name}:{frames[-1].lineno})" if frames else ""
        raise CommandError(
            f"{script.name} raised {type(exc).__name__}: {_flat(exc)}{where}; --debug shows the traceback"
        ) from None
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def register(app: typer.Typer) -> None:
    """Add the run commands to the `backfeed` app."""
    app.command()(run)
    app.command()(runs)
    app.command()(show)
    app.command()(diff)
    app.command()(export)
    app.command()(ui)
