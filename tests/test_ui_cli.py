"""The run commands of `backfeed` on a store made by a scripted run."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _ui_store import XSS_SCRIPT, train_run
from backfeed.cli import app
from backfeed.cli import runs as commands

runner = CliRunner()
COMMANDS = ["run", "runs", "show", "diff", "export", "ui"]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands.out, "_width", 200)
    monkeypatch.setattr(commands.err, "_width", 200)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("cli") / "runs.db"
    return path, train_run(path, payload=True)  # a scripted training through bf.train


def invoke(*args: str, store: Path | None = None) -> object:
    extra = ["--store", str(store)] if store is not None else []
    return runner.invoke(app, [*args, *extra])


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example: backfeed " + command in " ".join(result.output.split())


def test_runs_lists_status_best_score_and_spend(store):
    path, run_id = store
    result = invoke("runs", store=path)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if run_id in line)
    assert "finished" in row and "0.000" in row and "$0.0000" in row and "scripted-train" in row
    data = json.loads(invoke("runs", "--json", store=path).output)
    assert data[0]["id"] == run_id and data[0]["llm_calls"] == 3
    assert "no runs in" in invoke("runs", "--status", "running", store=path).output


def test_show_prints_summary_curve_and_best_parameters(store):
    path, run_id = store
    result = invoke("show", run_id[:12], store=path)  # a unique prefix is enough
    assert result.exit_code == 0, result.output
    out = result.output
    assert "best score after each step" in out and "█" in out
    assert "system_prompt = " in out and XSS_SCRIPT in out  # shown verbatim, not as rich markup
    assert "x = 3.0" in out
    assert invoke("show", "latest", store=path).exit_code == 0


def test_diff_shows_parameter_text_diffs(store):
    path, run_id = store
    out = invoke("diff", run_id, "seed", "best", store=path).output
    assert "-1.0" in out and "+3.0" in out and "+Answer briefly. <script>" in out
    out = invoke("diff", run_id, "0", "2", store=path).output
    assert "-2.0" in out and "+3.0" in out and "system_prompt" not in out
    assert "no parameter differs" in invoke("diff", run_id, "1", "1", store=path).output


def test_export_json_holds_the_whole_run(store, tmp_path):
    path, run_id = store
    data = json.loads(invoke("export", run_id, "--to", "json", store=path).stdout)
    assert data["run"]["id"] == run_id
    assert [s["step"] for s in data["steps"]] == [-1, 0, 1, 2]  # the seed, then three steps
    assert len(data["candidates"]) == 4 and len(data["llm_calls"]) == 3
    assert data["step_reports"][1]["report"]["rejected"][0]["reason"] == "parameter 'x' is float; got str 'three'"
    target = tmp_path / "run.json"
    assert invoke("export", run_id, "-o", str(target), store=path).exit_code == 0
    assert json.loads(target.read_text())["run"]["id"] == run_id


def test_export_mlflow_logs_params_metrics_and_the_json(store, monkeypatch):
    path, run_id = store
    log: dict[str, list] = {"params": [], "metrics": [], "dicts": [], "tags": []}

    class _Run:
        info = types.SimpleNamespace(run_id="mlf-123")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    fake = types.SimpleNamespace(
        set_tracking_uri=lambda uri: log.setdefault("uri", uri),
        set_experiment=lambda name: log.setdefault("experiment", name),
        start_run=lambda run_name: _Run(),
        set_tags=lambda tags: log["tags"].append(tags),
        log_params=lambda p: log["params"].append(p),
        log_metrics=lambda m, step: log["metrics"].append((step, m)),
        log_dict=lambda d, name: log["dicts"].append(name),
    )
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    result = invoke("export", run_id, "--to", "mlflow", "--tracking-uri", "file:///tmp/x", store=path)
    assert result.exit_code == 0, result.output
    assert "MLflow run mlf-123" in result.output
    assert log["params"][0]["param.x"] == "3.0" and log["uri"] == "file:///tmp/x"
    assert [s for s, _ in log["metrics"]] == [-1, 0, 1, 2] and log["metrics"][-1][1]["best_score"] == 0.0
    assert "backfeed_run.json" in log["dicts"] and log["tags"][0]["backfeed.run_id"] == run_id


def test_errors_are_one_line_unless_debug(store, monkeypatch):
    path, _ = store
    result = invoke("show", "no-such-run", store=path)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: no run 'no-such-run' in {path} (see `backfeed runs`)"]
    missing = invoke("runs", store=path.parent / "absent.db")
    assert missing.exit_code == 1 and missing.output.startswith("error: no run store at")
    bad = invoke("export", "latest", "--to", "csv", store=path)
    assert bad.output.strip() == "error: unknown export target 'csv': use --to json, --to mlflow or --to files"
    monkeypatch.setitem(sys.modules, "mlflow", None)  # not installed
    assert "pip install 'backfeed[mlflow]'" in invoke("export", "latest", "--to", "mlflow", store=path).output
    debug = runner.invoke(app, ["show", "no-such-run", "--store", str(path), "--debug"])
    assert debug.exit_code == 1 and type(debug.exception).__name__ == "NotFound"  # raised, traceback shown


def test_ui_refuses_a_public_address_without_a_token():
    proc = subprocess.run(
        [sys.executable, "-c", "from backfeed.cli import main; main()", "ui", "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(Path(commands.__file__).parents[2]), "COLUMNS": "80", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing to serve on 0.0.0.0 without a token")
    assert "Traceback" not in proc.stderr


def test_ui_serves_loopback_and_a_public_address_with_a_token(store, monkeypatch):
    path, _ = store
    calls = []
    monkeypatch.setattr("backfeed.ui.server.serve", lambda store, **kw: calls.append((store, kw)))
    assert invoke("ui", "--port", "9999", store=path).exit_code == 0
    result = invoke("ui", "--host", "0.0.0.0", "--token", "s3cret-token", store=path)
    assert result.exit_code == 0 and "?token=s3cret-token" in result.output
    assert calls == [(path, {"host": "127.0.0.1", "port": 9999, "token": None}),
                     (path, {"host": "0.0.0.0", "port": 8765, "token": "s3cret-token"})]


TRAIN_SCRIPT = """
import os, sys
from _ui_store import make_run
make_run(os.environ["BACKFEED_STORE"], name="from-script-" + "-".join(sys.argv[1:]))
"""
BF_TRAIN_SCRIPT = """
import os
from _ui_store import train_run
train_run(os.environ["BACKFEED_STORE"])
"""


def test_run_a_script_then_list_the_runs_it_made(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    store = tmp_path / "runs.db"
    result = runner.invoke(app, ["run", str(script), "--store", str(store), "--", "a", "b"])
    assert result.exit_code == 0, result.output
    assert "finished" in result.output and "best score 0.000" in result.output
    assert "from-script-a-b" in invoke("runs", store=store).output


def test_run_a_script_that_calls_bf_train(tmp_path, monkeypatch):
    script = tmp_path / "train.py"
    script.write_text(BF_TRAIN_SCRIPT)
    monkeypatch.setenv("BACKFEED_STORE", str(tmp_path / "env.db"))  # the store comes from the env
    result = runner.invoke(app, ["run", str(script)])
    assert result.exit_code == 0, result.output
    assert "finished, best score 0.000, 3 LLM calls" in result.output


def test_run_a_config(tmp_path):
    (tmp_path / "train.py").write_text(TRAIN_SCRIPT)
    config = tmp_path / "experiment.toml"
    config.write_text('script = "train.py"\nargs = ["cfg"]\nstore = "cfg-runs.db"\n')
    result = runner.invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    assert "from-script-cfg" in invoke("runs", store=tmp_path / "cfg-runs.db").output
    config.write_text('script = "train.py"\nsteps = 3\n')
    result = runner.invoke(app, ["run", str(config)])
    assert result.exit_code == 1 and "unknown key(s) ['steps']" in result.output


def test_run_reports_a_failing_script_in_one_line(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("x = 1\nraise ValueError('the metric returned None')\n")
    result = runner.invoke(app, ["run", str(script), "--store", str(tmp_path / "r.db")])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: broken.py raised ValueError: the metric returned None (at broken.py:2); --debug shows the traceback"
    )
    debug = runner.invoke(app, ["run", str(script), "--store", str(tmp_path / "r.db"), "--debug"])
    assert isinstance(debug.exception, ValueError)
    assert "no such file" in runner.invoke(app, ["run", str(tmp_path / "nope.py")]).output


def test_ui_serves_the_store_for_real(store):
    import socket
    import time
    import urllib.request

    path, run_id = store
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from backfeed.cli import main; main()", "ui", "--port", str(port),
         "--store", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PYTHONPATH": str(Path(commands.__file__).parents[2]), "PATH": "/usr/bin:/bin"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs", timeout=5) as r:
                    runs = json.loads(r.read())["runs"]
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "timeout"
                time.sleep(0.1)
        assert [r["id"] for r in runs] == [run_id]
    finally:
        proc.terminate()
        proc.wait(10)
    assert f"backfeed dashboard on http://127.0.0.1:{port}/" in proc.stderr.read()


def test_show_runs_and_runs_json_give_spend_by_role(tmp_path):
    from backfeed.store import RunStore

    path = tmp_path / "r.db"
    store = RunStore(path)
    run = store.create_run({"strategy": "greedy"}, name="roles")
    by_role = {"optimizer": {"calls": 4, "prompt_tokens": 900, "completion_tokens": 100, "usd": 0.02},
               "program": {"calls": 12, "prompt_tokens": 300, "completion_tokens": 60, "usd": 0.001}}
    store.update_run(run, spend={"calls": 16, "usd": 0.021, "by_role": by_role})
    store.close()
    out = invoke("show", run, store=path).output
    assert "optimizer spend" in out and "4 calls, 1,000 tokens, $0.0200" in out
    assert "program spend" in out and "12 calls, 360 tokens" in out
    assert json.loads(invoke("runs", "--json", store=path).output)[0]["by_role"] == by_role
    listed = invoke("runs", store=path).output.split("spend by role", 1)[1].splitlines()
    rows = [line.split() for line in listed if run in line]
    assert rows == [[run, "optimizer", "4", "1,000", "$0.0200"], [run, "program", "12", "360", "$0.0010"]]


def test_a_step_that_kept_nothing_shows_why_in_show_and_on_the_run_page(tmp_path):
    from backfeed.store import RunStore
    from backfeed.ui.views import RunReader

    path = tmp_path / "r.db"
    store = RunStore(path)
    run = store.create_run({"strategy": "greedy"})
    store.add_candidate(run, 0, step=-1, values={"x": 1}, parents=[], origin="seed", status="accepted")
    why = "no change proposed: the answer could not be used (not JSON)"
    store.add_decision(run, step=0, candidate_id=-1, accepted=False, reason=why)
    store.checkpoint(run, step=0, parents=[0], candidate=None, accepted=False, best_score=None,
                     best_candidate=0, spend={}, state={}, started_at=0.0)
    store.close()
    with RunReader(path) as reader:
        assert reader.run_detail(run)["steps"][0]["reason"] == why
    assert why in " ".join(invoke("show", run, store=path).output.split())


def test_runs_at_80_columns_keeps_the_run_id_whole_and_says_what_it_left_out(store, monkeypatch):
    path, run_id = store
    monkeypatch.setattr(commands.out, "_width", 80)
    result = invoke("runs", store=path)
    assert result.exit_code == 0, result.output
    assert run_id in result.output  # whole, so that it can be copied
    assert "scripted-train" in result.output  # a column kept is shown, not squeezed to nothing
    assert all(len(line) <= 80 for line in result.output.splitlines())
    assert "left out at 80 columns" in result.output


def test_show_numbers_the_seed_and_steps_as_the_dashboard_does_and_counts_calls_per_step(store):
    path, run_id = store
    result = invoke("show", run_id, store=path)
    assert result.exit_code == 0, result.output
    assert "seed, then steps 0..2" in result.output
    rows = [line.strip("│ ").split() for line in result.output.splitlines()
            if line.startswith("│")]
    assert [r[0] for r in rows] == ["seed", "0", "1", "2"]
    data = commands.RunReader(path).run_detail(run_id)
    per_step = [s["llm_calls"] for s in data["steps"]]
    assert sum(per_step) == data["run"]["llm_calls"]  # not a running total repeated
