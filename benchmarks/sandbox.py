"""Per-call cost of bf.Sandbox against running the same code in-process.

Run: python benchmarks/sandbox.py [--quick]
Measures a trivial function and a 10 ms (busy CPU) function, both as a bare `Sandbox.call`
and through a traced `@bf.op(trainable=True)`, plus the cold start of one worker.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import backfeed as bf

RESULTS = Path(__file__).parent / "results"


def trivial(x: int) -> int:
    return x + 1


def busy_10ms(x: int) -> int:
    end = time.perf_counter() + 0.010
    n = 0
    while time.perf_counter() < end:
        n += 1
    return x + 1


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired(inprocess, sandboxed, calls: int) -> dict:
    """Alternate the two calls so both see the same machine load; overhead is the median
    of the per-pair differences."""
    inprocess(), sandboxed()  # warm: the worker is started and the function compiled
    pairs = [(timed(inprocess), timed(sandboxed)) for _ in range(calls)]
    ins, outs = [p[0] for p in pairs], [p[1] for p in pairs]
    return {
        "in_process_median_s": statistics.median(ins),
        "sandboxed_median_s": statistics.median(outs),
        "sandboxed_p95_s": sorted(outs)[int(0.95 * calls) - 1],
        "overhead_median_s": statistics.median(o - i for i, o in pairs),
        "calls": calls,
    }


def measure(sandbox: bf.Sandbox, function, calls: int) -> dict:
    plain_op = bf.op(trainable=True, sandbox=False)(function)
    boxed_op = bf.op(trainable=True, sandbox=sandbox)(function)
    x = bf.node(1)
    return {
        "Sandbox.call vs call": paired(
            lambda: function(1), lambda: sandbox.call(function, (1,), {}), calls
        ),
        "traced op": paired(lambda: plain_op(x), lambda: boxed_op(x), calls),
    }


def cold_start(repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        with bf.Sandbox(timeout_s=5, workers=1) as sandbox:
            start = time.perf_counter()
            sandbox.call(trivial, (1,), {})
            times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "repeats": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer calls")
    args = parser.parse_args()
    trivial_calls, busy_calls = (300, 30) if args.quick else (3000, 300)
    with bf.Sandbox(timeout_s=5, memory_mb=512, workers=1) as sandbox:
        results = {
            "trivial": measure(sandbox, trivial, trivial_calls),
            "10 ms": measure(sandbox, busy_10ms, busy_calls),
            "isolation": None,
        }
        results["isolation"] = sandbox.isolation
    results["cold_start_first_call"] = cold_start(3 if args.quick else 10)
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform(), "load_1min": os.getloadavg()[0]}
    results["date"] = time.strftime("%Y-%m-%d", time.gmtime())

    print(f"{'function':<9} {'how':<22} {'in-process ms':>14} {'sandboxed ms':>13} "
          f"{'p95 ms':>8} {'overhead ms':>12}")
    for function in ("trivial", "10 ms"):
        for how, row in results[function].items():
            print(f"{function:<9} {how:<22} {row['in_process_median_s'] * 1e3:>14.3f} "
                  f"{row['sandboxed_median_s'] * 1e3:>13.3f} {row['sandboxed_p95_s'] * 1e3:>8.3f} "
                  f"{row['overhead_median_s'] * 1e3:>12.3f}")
    print(f"cold start (new worker + first call): "
          f"{results['cold_start_first_call']['median_s'] * 1e3:.1f} ms; "
          f"network isolation: {results['isolation']}; "
          f"load average {results['machine']['load_1min']:.1f} on {os.cpu_count()} CPUs")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "sandbox.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
