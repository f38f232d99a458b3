"""A backfeed run's spans in a receiver a user runs: MLflow's tracking server (OTLP at /v1/traces).

    python -m benchmarks.otel_mlflow --screenshot docs/mlflow-traces.png

Starts `mlflow server` on 127.0.0.1 with a SQLite store, makes an experiment, trains
`tests/train_helpers.py`'s program with `bf.train(..., telemetry=Telemetry(url, headers=
{"x-mlflow-experiment-id": id}))`, then asks MLflow for the experiment's traces
(`MlflowClient.search_traces`) and checks that the run's span, its steps, its evaluations and
every model call are there. With `--screenshot`, Chromium (playwright, no browser download)
photographs the experiment's traces page. `run(...)` is what tests/test_otel_mlflow.py calls.
Needs the full `mlflow` package (the server), not only mlflow-skinny.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import backfeed as bf
from backfeed.otel.export import Telemetry

from .models import free_port, serving

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import train_helpers as h


@contextlib.contextmanager
def mlflow_server(work: Path, seconds: float = 120) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 with its store in `work`; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [shutil.which("mlflow") or "mlflow", "server", "--host", "127.0.0.1", "--port",
               str(port), "--workers", "1", "--backend-store-uri",
               f"sqlite:///{work / 'mlflow.db'}", "--default-artifact-root",
               str(work / "artifacts")]
    with serving(command, f"{url}/health", seconds=seconds, log=work / "mlflow.log"):
        yield url


def run(work: Path, screenshot: Path | None = None) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    work.mkdir(parents=True, exist_ok=True)
    with mlflow_server(work) as url:
        client = MlflowClient(url)
        experiment = client.create_experiment("backfeed-runs")
        telemetry = Telemetry(url, headers={"x-mlflow-experiment-id": experiment},
                              service_name="backfeed")
        module = h.Router()
        result = bf.train(module, h.dataset(2), metric=h.metric, steps=3, name="router",
                          store=work / "runs.db", progress=False, telemetry=telemetry,
                          optimizer=h.FixOptimizer(module.parameters(), llm=h.scripted()))
        telemetry.close()
        found = []
        for _ in range(40):  # the server writes what it received in the background
            found = client.search_traces(locations=[experiment])
            if found:
                break
            time.sleep(0.5)
        names = sorted({s.name for t in found for s in t.data.spans})
        row = {"mlflow": url, "experiment": experiment, "run_id": result.run_id,
               "traces": len(found), "span_names": names,
               "model_calls": sum(s.name.startswith("chat ") for t in found
                                  for s in t.data.spans),
               "spend_calls": result.spend["calls"]}
        if screenshot is not None:
            _photograph(f"{url}/#/experiments/{experiment}/traces", screenshot)
            row["screenshot"] = str(screenshot)
    return row


def _photograph(page_url: str, path: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 800})
        page.goto(page_url)
        page.wait_for_timeout(6000)  # the traces table loads after the page
        for label in ("Got it",):  # first-visit tips
            with contextlib.suppress(Exception):
                page.get_by_text(label, exact=True).click(timeout=2000)
        with contextlib.suppress(Exception):  # the assistant panel
            page.locator("button[aria-label*='lose']").last.click(timeout=2000)
        with contextlib.suppress(Exception):  # open the run's trace: its span tree
            page.get_by_text("ago").first.click(timeout=3000)
            page.wait_for_timeout(3000)
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path))
        browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshot", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(Path(tmp), args.screenshot)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
