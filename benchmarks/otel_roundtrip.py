"""Optimize a deployed app from its traces, end to end, with parts nobody here wrote.

    python -m benchmarks.otel_roundtrip --requests 24 --held-out 12 --steps 8 \
        --optimizer qwen2.5-coder-1.5b

1. `backfeed serve-model` serves the 0.5B model; `backfeed collect` receives OTLP/HTTP.
2. `examples/apps/otel_app.py` (the official `openai` client and OpenTelemetry OpenAI
   instrumentation, in its own process) answers `--requests` date-reading requests with its
   system prompt; its downstream check rates each answer with `bf.feedback` by trace id.
3. `backfeed ingest` turns the received spans and the feedback into a dataset;
   `backfeed.otel.recorded_app` makes the system prompt a parameter and the recorded user
   turns the examples; `bf.train` (`bf.optim.auto`, `--optimizer` in process) replays them
   through the served model, scoring new outputs by the date the check asked for.
4. `backfeed export RUN --to files` writes `system_prompt.txt`; the app, rerun with it on
   `--held-out` requests it never saw, is scored by its own check, as it was with the seed.

Prints one JSON line and writes it to --out. `run(...)` is what tests/test_otel_roundtrip.py
calls, with fewer requests and steps.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import backfeed as bf
from backfeed import otel

from .models import free_port, serving
from .tasks.conventions import generate

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "apps" / "otel_app.py"
SEED_PROMPT = "What date does the text mention?"
CLI = [sys.executable, "-c", "from backfeed.cli import main; main()"]


def _app(model_url: str, otlp: str, system: str, requests: list[dict[str, str]], work: Path,
         tag: str) -> dict[str, Any]:
    (work / f"{tag}-system.txt").write_text(system)
    (work / f"{tag}-requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in requests))
    env = {**os.environ, "BACKFEED_FEEDBACK": str(work / f"{tag}-feedback.jsonl"),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, str(APP), "--model-url", model_url, "--otlp", otlp,
         "--system", str(work / f"{tag}-system.txt"),
         "--requests", str(work / f"{tag}-requests.jsonl"),
         "--out", str(work / f"{tag}-answers.jsonl")],
        env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise RuntimeError(f"the app failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def expected_date(example: Any) -> str | None:
    """The date the app's check asked for: in its feedback, or the output it accepted."""
    found = re.search(r"\d{4}-\d{2}-\d{2}", str(example.get("feedback") or ""))
    if found:
        return found.group()
    if example.get("score") == 1.0:
        return str(example.get("recorded_output") or "").strip()
    return None


def metric(example: Any, output: Any) -> bf.Feedback:
    """New outputs scored as the app's check would: the date, and nothing else."""
    expected = expected_date(example)
    text = str(output).strip()
    if expected is not None and text == expected:
        return bf.Feedback(score=1.0, text="accepted")
    return bf.Feedback(score=0.0, text=f"rejected: the booking system needs the date as "
                                       f"{expected!r} and nothing else; the answer was "
                                       f"{text[:80]!r}")


def run(work: Path, *, requests: int = 24, held_out: int = 12, steps: int = 8,
        optimizer: str = "qwen2.5-coder-1.5b", program: str = "qwen2.5-coder-0.5b",
        seed: int = 0) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    data = generate("dates", seed, requests + held_out)
    train = [{"text": t, "expected": e} for t, e in data[:requests]]
    test = [{"text": t, "expected": e} for t, e in data[requests:]]
    model_port, collect_port = free_port(), free_port()
    model_url = f"http://127.0.0.1:{model_port}/v1"
    otlp = f"http://127.0.0.1:{collect_port}"
    traces = work / "traces.jsonl"
    started = time.perf_counter()
    with serving([*CLI, "serve-model", "--model", program, "--port", str(model_port)],
                 f"{model_url}/models"):
        with serving([*CLI, "collect", "--port", str(collect_port), "--out", str(traces)],
                     f"{otlp}/v1/traces", seconds=60):
            recorded = _app(model_url, otlp, SEED_PROMPT, train, work, "recorded")
            time.sleep(1.0)  # the receiver appends each export as it arrives
        records, report = otel.ingest(traces, work / "calls.jsonl",
                                      feedback=work / "recorded-feedback.jsonl")
        app, examples = otel.recorded_app(records)
        store = work / "runs.db"
        result = bf.train(app, examples, metric=metric, steps=steps, store=store,
                          optimizer=bf.optim.auto(app.parameters(), llm=bf.llm.Local(optimizer)),
                          program_llm=bf.llm.OpenAICompatible(model_url, program),
                          progress=False, seed=seed)
        deploy = work / "deploy"
        exported = subprocess.run([*CLI, "export", result.run_id, "--to", "files", "-o",
                                   str(deploy), "--store", str(store)],
                                  capture_output=True, text=True, timeout=120)
        if exported.returncode:
            raise RuntimeError(f"backfeed export failed: {exported.stderr[-1500:]}")
        prompt = (deploy / "system_prompt.txt").read_text()
        heldout_collect = free_port()
        with serving([*CLI, "collect", "--port", str(heldout_collect), "--out",
                      str(work / "heldout-traces.jsonl")],
                     f"http://127.0.0.1:{heldout_collect}/v1/traces", seconds=60):
            before = _app(model_url, f"http://127.0.0.1:{heldout_collect}", SEED_PROMPT, test,
                          work, "before")
            after = _app(model_url, f"http://127.0.0.1:{heldout_collect}", prompt, test, work,
                         "after")
    return {
        "requests": recorded["requests"], "recorded_mean": recorded["mean"],
        "ingest": report.summary(), "examples": len(examples),
        "with_feedback": sum(e.get("feedback") is not None for e in examples),
        "run_id": result.run_id, "steps": steps, "optimizer": optimizer, "program": program,
        "best_validation": result.best_score, "exported_prompt": prompt,
        "held_out": len(test), "held_out_before": before["mean"],
        "held_out_after": after["mean"], "wall_s": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--held-out", type=int, default=12)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--optimizer", default="qwen2.5-coder-1.5b")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="benchmarks/results/otel_roundtrip")
    parser.add_argument("--out", default="benchmarks/results/otel_roundtrip.json")
    args = parser.parse_args(argv)
    row = run(Path(args.work), requests=args.requests, held_out=args.held_out,
              steps=args.steps, optimizer=args.optimizer, seed=args.seed)
    print(json.dumps(row))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
