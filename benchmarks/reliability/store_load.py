"""Item 3: the run store and the dashboard under load (loopback only, bounded loops).

    python -m benchmarks.reliability.store_load --steps 2000 --readers 8
    python -m benchmarks.reliability.store_load --clients 50 --requests 40

The writer is a separate process writing steps the way the trainer does (candidate,
evaluations, LLM call, step report, decision, checkpoint: one transaction each). Readers poll
the dashboard's JSON endpoints over HTTP (the dashboard is another process) and run
`backfeed show`. Reported: 'database is locked' errors, other errors, torn reads (a run page
whose steps disagree with its own summary or name a candidate it does not list), and the
writer's time with readers against without.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from backfeed.cli import main; main()"]  # the `backfeed` command


def write_run(path: Path, steps: int, pace: float = 0.0, go: Path | None = None,
              fast: int = 0) -> dict[str, Any]:
    """Write one run of `steps` steps as the trainer would; returns seconds and errors.

    With `go`, the run is created first and the steps start once that file exists. `pace`
    seconds pass between steps, except for the first `fast` ones (a long run to start from).
    """
    from backfeed.store import RunStore

    store = RunStore(path)
    run_id = store.create_run({"strategy": "Pareto", "optimizer": "Prime"}, name="load")
    store.add_candidate(run_id, 0, step=-1, values={"prompt": "v0"}, parents=[], origin="seed",
                        status="accepted", val_score=0.0, val_scores=[0.0, 0.0])
    deadline = time.monotonic() + 120
    while go is not None and not go.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    started, errors, best = time.perf_counter(), [], 0.0
    for step in range(steps):
        t0 = time.time()
        try:
            cid = step + 1
            values = {"prompt": f"v{cid} " + "text " * 40}
            messages = [{"role": "user", "content": f"step {step} " + "trace " * 200}]
            store.add_llm_call(run_id, step=step, request_hash=f"h{step}", occurrence=0,
                               model="load", messages=messages, options={}, answer="{}",
                               prompt_tokens=400, completion_tokens=40, cost_usd=0.001,
                               cached=False, seconds=0.01)
            store.add_step_report(run_id, step=step, seq=0, candidate_id=cid,
                                  report={"step": step, "updates": [], "rejected": [],
                                          "prompts": [messages], "answers": ["{}"]})
            score = (step % 7) / 7
            for i in range(2):
                store.add_evaluation(run_id, candidate_id=cid, values_hash=f"vh{cid}",
                                     split="val", example_index=i, example=f"example {i}",
                                     output="out", score=score, feedback="ok")
            accepted = score > best
            store.add_candidate(run_id, cid, step=step, values=values, parents=[cid - 1],
                                origin="proposal", status="accepted" if accepted else "rejected",
                                val_score=score, val_scores=[score, score])
            store.add_decision(run_id, step=step, candidate_id=cid, accepted=accepted,
                               reason="load", parent_score=best, child_score=score)
            best = max(best, score)
            store.checkpoint(run_id, step=step, parents=[cid - 1], candidate=cid,
                             accepted=accepted, best_score=best, best_candidate=cid,
                             spend={"calls": step + 1, "tokens": 440 * (step + 1),
                                    "usd": 0.001 * (step + 1)},
                             state={"step": step}, started_at=t0)
        except Exception as exc:  # counted, and the writer goes on
            errors.append(f"{type(exc).__name__}: {exc}")
        if pace and step >= fast:
            time.sleep(pace)
    seconds = time.perf_counter() - started
    store.update_run(run_id, status="finished", stop_reason="max_steps")
    if errors and len(errors) == steps:
        raise RuntimeError(f"every step failed to write: {errors[0]}")
    return {"run_id": run_id, "seconds": round(seconds, 2), "errors": errors}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


class Dashboard:
    """`backfeed ui` in its own process on a free loopback port."""

    def __init__(self, db: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [*CLI, "ui", "--store", str(db), "--port",
             str(self.port)], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def __enter__(self) -> Dashboard:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/api/meta", timeout=2)
                return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("the dashboard did not start within 60s")

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # busy answering: it must not outlive the measurement
            self.proc.kill()
            self.proc.wait(10)


def _torn(detail: dict[str, Any]) -> str | None:
    """Why a run page is inconsistent with itself, or None."""
    steps = [s["step"] for s in detail["steps"]]  # one page: the newest steps of the run
    total = detail["run"]["steps"]
    if steps != list(range(total - len(steps), total)):
        return f"the page's steps are not the newest of {total}: {steps[:3]}..{steps[-3:]}"
    if detail["page"]["total_steps"] != total:
        return f"summary says {total} steps, the page counts {detail['page']['total_steps']}"
    ids = {c["id"] for c in detail["candidates"]}
    missing = [s["candidate"] for s in detail["steps"] if s["candidate"] not in ids]
    if missing:
        return f"steps name candidates the page does not list: {missing[:3]}"
    return None


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.locked = 0
        self.errors: list[str] = []
        self.torn: list[str] = []
        self.latencies: list[float] = []

    def add(self, seconds: float, error: str | None = None, torn: str | None = None) -> None:
        with self.lock:
            self.requests += 1
            self.latencies.append(seconds)
            if error:
                self.locked += "database is locked" in error
                self.errors.append(error[:200])
            if torn:
                self.torn.append(torn)


def _http_reader(url: str, run_id: str, tally: Tally, stop: threading.Event) -> None:
    import httpx

    with httpx.Client(base_url=url, timeout=30) as client:
        n = 0
        while not stop.is_set():
            n += 1
            path = ["/api/runs", f"/api/runs/{run_id}", f"/api/runs/{run_id}/steps/{n % 50}"][n % 3]
            t0 = time.perf_counter()
            try:
                r = client.get(path)
                error = None if r.status_code < 500 else f"{r.status_code}: {r.text}"
                torn = _torn(r.json()) if path == f"/api/runs/{run_id}" and r.is_success else None
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                error, torn = f"{type(exc).__name__}: {exc}", None
            tally.add(time.perf_counter() - t0, error, torn)


def _show_reader(db: Path, run_id: str, tally: Tally, stop: threading.Event) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        out = subprocess.run([*CLI, "show", run_id, "--store",
                              str(db)], env=_env(), capture_output=True, text=True, timeout=120)
        tally.add(time.perf_counter() - t0, out.stderr if out.returncode else None)


def _writer(db: Path, steps: int, pace: float = 0.0, go: Path | None = None, fast: int = 0
            ) -> subprocess.Popen[str]:
    extra = (["--go", str(go)] if go else []) + ["--fast", str(fast)]
    return subprocess.Popen([sys.executable, "-m", "benchmarks.reliability.store_load",
                             "--write", str(db), "--steps", str(steps), "--pace", str(pace),
                             *extra],
                            env=_env(), stdout=subprocess.PIPE, text=True, cwd=ROOT)


def _wait_for_run(db: Path) -> str:
    from backfeed.store import RunStore

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if db.exists():
            try:
                runs = RunStore(db, readonly=True).list_runs()
            except Exception:  # the writer is still creating the schema
                runs = []
            if runs:
                return runs[0].id
        time.sleep(0.05)
    raise RuntimeError("the writer never created its run")


def readers_under_load(root: Path, steps: int, readers: int) -> dict[str, Any]:
    alone = _writer(root / "alone.db", steps)
    solo = json.loads(alone.communicate()[0].strip().splitlines()[-1])
    db, go = root / "busy.db", root / "go"
    writer = _writer(db, steps, go=go)
    run_id = _wait_for_run(db)
    tally, stop = Tally(), threading.Event()
    with Dashboard(db) as dash:
        shows = min(2, readers)
        threads = [threading.Thread(target=_show_reader, args=(db, run_id, tally, stop))
                   for _ in range(shows)]
        threads += [threading.Thread(target=_http_reader, args=(dash.url, run_id, tally, stop))
                    for _ in range(readers - shows)]
        for t in threads:
            t.start()
        while tally.requests < readers:  # every reader is polling before the first step
            time.sleep(0.05)
        go.touch()
        busy = json.loads(writer.communicate()[0].strip().splitlines()[-1])
        stop.set()
        for t in threads:
            t.join(120)
    return {
        "steps": steps, "readers": f"{readers - shows} HTTP + {shows} `backfeed show`",
        "reads": tally.requests, "database_is_locked": tally.locked + sum(
            "database is locked" in e for e in busy["errors"]),
        "reader_errors": len(tally.errors), "writer_errors": len(busy["errors"]),
        "torn_reads": len(tally.torn), "torn_examples": tally.torn[:3],
        "error_examples": tally.errors[:3],
        "writer_s_alone": solo["seconds"], "writer_s_with_readers": busy["seconds"],
        "slowdown": round(busy["seconds"] / solo["seconds"], 2),
    }


def many_clients(root: Path, clients: int, requests: int, steps: int = 5000,
                 prefill: int = 40) -> dict[str, Any]:
    import asyncio

    import httpx

    from backfeed.store import RunStore

    db, go = root / "live.db", root / "go"
    writer = _writer(db, steps + prefill, pace=0.05, go=go, fast=prefill)  # then 20 steps/s
    run_id = _wait_for_run(db)
    tally = Tally()
    with Dashboard(db) as dash:
        async def client(i: int) -> None:
            async with httpx.AsyncClient(base_url=dash.url, timeout=60) as c:
                for n in range(requests):
                    path = [f"/api/runs/{run_id}", "/api/runs",
                            f"/api/runs/{run_id}/steps/{(i + n) % 20}"][n % 3]
                    t0 = time.perf_counter()
                    try:
                        r = await c.get(path)
                        error = None if r.status_code < 400 else f"{r.status_code}: {r.text}"
                    except httpx.HTTPError as exc:
                        error = f"{type(exc).__name__}: {exc}"
                    tally.add(time.perf_counter() - t0, error)

        async def everyone() -> None:
            await asyncio.gather(*(client(i) for i in range(clients)))

        go.touch()
        steps_before = 0  # the run has `prefill` steps before the clients arrive
        while steps_before < prefill and writer.poll() is None:
            time.sleep(0.2)
            steps_before = len(RunStore(db, readonly=True).steps(run_id))
        started = time.perf_counter()
        asyncio.run(everyone())
        wall = time.perf_counter() - started
    writer.kill()
    writer.wait(10)
    steps_then = len(RunStore(db, readonly=True).steps(run_id))
    cuts = statistics.quantiles(tally.latencies, n=20)
    return {"clients": clients, "requests": tally.requests,
            "run_steps_at_start": steps_before, "run_steps_at_end": steps_then, "errors": len(tally.errors),
            "error_examples": tally.errors[:3], "database_is_locked": tally.locked,
            "p50_ms": round(statistics.median(tally.latencies) * 1000, 1),
            "p95_ms": round(cuts[18] * 1000, 1), "wall_s": round(wall, 1),
            "requests_per_s": round(tally.requests / wall, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)  # the writer process
    parser.add_argument("--pace", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--go", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--requests", type=int, default=40, help="per client")
    parser.add_argument("--prefill", type=int, default=40,
                        help="steps the run has (written at full speed) before the clients come")
    parser.add_argument("--fast", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))  # `timeout`: clean up children
    if args.write:
        print(json.dumps(write_run(args.write, args.steps, args.pace, args.go, args.fast)),
              flush=True)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        if args.clients:
            print(json.dumps(many_clients(Path(tmp), args.clients, args.requests,
                                          prefill=args.prefill)))
        else:
            print(json.dumps(readers_under_load(Path(tmp), args.steps, args.readers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
