"""Evaluations per second of each executor on an I/O-bound and a CPU-bound program.

    PYTHONPATH=src python benchmarks/throughput.py [--quick]

The I/O-bound program waits 20 ms per example (a simulated model or API call; the async
variant awaits asyncio.sleep), the CPU-bound one spends ~25 ms in pure Python. Each executor
evaluates one candidate on N examples; the table reports evaluations per second (best of 2).
Writes benchmarks/results/throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import backfeed as bf
from backfeed.train.evaluate import install_capture, uninstall_capture

LATENCY = 0.020
CPU_LOOPS = 300_000


@bf.op
def combine(x: int, offset: int) -> int:
    """x plus the offset."""
    return x + offset


class IOBound(bf.Module):
    def __init__(self) -> None:
        self.offset = bf.param(1, name="offset")

    def forward(self, x: int) -> Any:
        time.sleep(LATENCY)
        return combine(x, self.offset)


class AsyncIOBound(IOBound):
    async def forward(self, x: int) -> Any:
        await asyncio.sleep(LATENCY)
        return combine(x, self.offset)


class CPUBound(IOBound):
    def forward(self, x: int) -> Any:
        total = 0
        for i in range(CPU_LOOPS):
            total += (i * x) % 7
        return combine(total % 3, self.offset)


def metric(example: int, output: int) -> float:
    return float(output > 0)


def measure(executor: Any, module: bf.Module, n: int, repeats: int = 2) -> float:
    items = list(enumerate(range(n)))
    values = module.state_dict()
    best = 0.0
    install_capture()
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            results = executor.evaluate(module, values, items, metric, None)
            elapsed = time.perf_counter() - start
            assert len(results) == n and all(r.result.error is None for r in results)
            best = max(best, n / elapsed)
    finally:
        uninstall_capture()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer examples, no Ray")
    args = parser.parse_args()
    n_io, n_cpu = (60, 20) if args.quick else (200, 60)
    E = bf.executors
    rows: list[dict[str, Any]] = []

    def add(task: str, name: str, executor: Any, module: bf.Module, n: int) -> None:
        rate = measure(executor, module, n)
        executor.close()
        rows.append({"task": task, "executor": name, "examples": n, "evals_per_s": rate})
        print(f"{task:10} {name:34} {rate:10.1f} evals/s", flush=True)

    add("io", "Threads(1)", E.Threads(1), IOBound(), n_io // 4)
    add("io", "Threads(8)", E.Threads(8), IOBound(), n_io)
    add("io", "Threads(32)", E.Threads(32), IOBound(), n_io)
    add("io", "Async(32), sync program", E.Async(32), IOBound(), n_io)
    add("io", "Async(64), async program", E.Async(64), AsyncIOBound(), n_io)
    add("cpu", "Threads(1)", E.Threads(1), CPUBound(), n_cpu)
    add("cpu", "Threads(4)", E.Threads(4), CPUBound(), n_cpu)
    add("cpu", "Async(4)", E.Async(4), CPUBound(), n_cpu)
    if not args.quick:
        import ray

        src = str(Path(__file__).resolve().parents[1] / "src")
        here = str(Path(__file__).resolve().parent)
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([src, here])}})
        try:
            measure(E.Ray(chunk=10), IOBound(), 20, repeats=1)  # warm the workers
            add("io", "Ray(chunk=1)", E.Ray(chunk=1), IOBound(), n_io)
            add("io", "Ray(chunk=10)", E.Ray(chunk=10), IOBound(), n_io)
            add("io", "Ray(chunk=25, threads=25)", E.Ray(chunk=25, threads=25), IOBound(), n_io)
            add("cpu", "Ray(chunk=1)", E.Ray(chunk=1), CPUBound(), n_cpu)
            add("cpu", "Ray(chunk=10)", E.Ray(chunk=10), CPUBound(), n_cpu)
        finally:
            ray.shutdown()

    print("\n| task | executor | examples | evals/s |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['task']} | {r['executor']} | {r['examples']} | {r['evals_per_s']:.1f} |")
    out = Path(__file__).resolve().parent / "results" / "throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
            "cpus": os.cpu_count(), "latency_s": LATENCY, "cpu_loops": CPU_LOOPS}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
