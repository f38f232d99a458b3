"""Per-call cost of bf.Sandbox against running the same code in-process, before and after the
kernel's isolation, in one run.

Run: python benchmarks/sandbox.py [--quick]
Three sandboxes: `kernel=False` (rlimits and the audit hook only, the sandbox before kernel
isolation), Landlock and seccomp without bubblewrap (the fallback), and the full sandbox
(bubblewrap's namespaces as well). For each: a trivial function and a 10 ms (busy CPU) function
as a bare `Sandbox.call` and through a traced `@bf.op(trainable=True)`, the cold start of one
worker, and the sandbox's share of the code-repair suite (every test of its 16 functions
through one sandbox, as `benchmarks/tasks/code_repair.py` runs them). Ratios are full over
`kernel=False`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path
from unittest import mock

import backfeed as bf
from backfeed.sandbox import isolation

RESULTS = Path(__file__).parent / "results"
CONFIGS = {"kernel=False": dict(kernel=False), "no bubblewrap": dict(namespaces=False),
           "full": {}}


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


def sandbox(options: dict, **limits) -> bf.Sandbox:
    return bf.Sandbox(kernel=options.get("kernel", True), **limits)


def started(options: dict):
    """While workers start: bubblewrap hidden where the configuration goes without it."""
    if options.get("namespaces", True):
        return mock.patch.object(isolation, "bubblewrap", isolation.bubblewrap)
    return mock.patch.object(isolation, "bubblewrap",
                             lambda root: (None, "off (hidden for this run)"))


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


def measure(box: bf.Sandbox, options: dict, function, calls: int) -> dict:
    plain_op = bf.op(trainable=True, sandbox=False)(function)
    boxed_op = bf.op(trainable=True, sandbox=box)(function)
    x = bf.node(1)
    with started(options):
        return {
            "Sandbox.call vs call": paired(
                lambda: function(1), lambda: box.call(function, (1,), {}), calls
            ),
            "traced op": paired(lambda: plain_op(x), lambda: boxed_op(x), calls),
        }


def cold_start(options: dict, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        with sandbox(options, timeout_s=5, workers=1) as box, started(options):
            start = time.perf_counter()
            box.call(trivial, (1,), {})
            times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "repeats": repeats}


def code_repair(options: dict) -> dict:
    """Every test of the 16 code-repair functions (full size, seed 0) through one new
    sandbox, as the suite's tasks make it (2 s, 512 MiB, one worker): the sandbox's share of
    the suite's wall time (the rest is the model's)."""
    from benchmarks.tasks import code_repair as tasks

    start = time.perf_counter()
    calls = 0
    with sandbox(options, timeout_s=2.0, memory_mb=512, workers=1) as box, started(options):
        for bug in tasks.BUGS:
            op = bf.op(bug.function, trainable=True, sandbox=box)
            for split in tasks.make_tests(bug, 0, "full"):
                for args, _expected in split:
                    try:
                        op(*copy.deepcopy(args))
                    except bf.ExecutionError:
                        pass
                    calls += 1
    return {"wall_s": time.perf_counter() - start, "calls": calls}


_LAYER_PROBE = """
import json, os, sys, tempfile, time
from backfeed.sandbox import confine, landlock  # the worker has imported them already
t = time.perf_counter()
sc = confine.seccomp_module()
imported = time.perf_counter() - t
t = time.perf_counter()
confine.syscall_filter(sc, False, os.getpid()).load()
seccomp = time.perf_counter() - t
t = time.perf_counter()
landlock.restrict([sys.prefix, "/usr"], [tempfile.mkdtemp()], network=False)
print(json.dumps({"seccomp_import_s": imported, "seccomp_load_s": seccomp,
                  "landlock_s": time.perf_counter() - t}))
"""


def layer_costs(repeats: int) -> dict:
    """What each layer adds to a worker's start, alone: bwrap around a program (`true`), and
    Landlock and the seccomp filter put on a fresh Python process."""
    import subprocess
    import sys

    root = os.geteuid() == 0
    bwrap, _ = isolation.bubblewrap(root)
    costs: dict = {}
    if bwrap is not None:
        flags = [bwrap, *isolation._namespace_flags(root, network=False), "--ro-bind", "/", "/"]
        plain = statistics.median(timed(lambda: subprocess.run(["true"])) for _ in range(repeats))
        wrapped = statistics.median(timed(lambda: subprocess.run([*flags, "true"]))
                                    for _ in range(repeats))
        costs["bwrap_s"] = wrapped - plain
    env = {**os.environ, "PYTHONPATH": isolation.BACKFEED_ROOT}
    runs = [json.loads(subprocess.run([sys.executable, "-c", _LAYER_PROBE], env=env,
                                      capture_output=True, text=True, check=True).stdout)
            for _ in range(repeats)]
    for key in runs[0]:
        costs[key] = statistics.median(r[key] for r in runs)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer calls")
    args = parser.parse_args()
    warnings.simplefilter("ignore", bf.sandbox.SandboxWarning)  # the table says what is on
    trivial_calls, busy_calls = (300, 30) if args.quick else (3000, 300)
    results: dict = {}
    for label, options in CONFIGS.items():
        with sandbox(options, timeout_s=5, memory_mb=512, workers=1) as box:
            row = {"trivial": measure(box, options, trivial, trivial_calls),
                   "10 ms": measure(box, options, busy_10ms, busy_calls)}
            row["protections"] = box.protections
        row["cold_start_first_call"] = cold_start(options, 3 if args.quick else 10)
        results[label] = row
    repeats = 1 if args.quick else 3
    for _ in range(repeats):  # interleaved, so that each sees the same load
        for label, options in CONFIGS.items():
            results[label].setdefault("code_repair", []).append(code_repair(options))
    for row in results.values():
        row["code_repair_wall_s"] = statistics.median(r["wall_s"] for r in row["code_repair"])
    results["layer_start_costs"] = layer_costs(5 if args.quick else 20)
    before, after = results["kernel=False"], results["full"]
    results["ratio full / kernel=False"] = {
        "trivial Sandbox.call": after["trivial"]["Sandbox.call vs call"]["sandboxed_median_s"]
        / before["trivial"]["Sandbox.call vs call"]["sandboxed_median_s"],
        "10 ms Sandbox.call": after["10 ms"]["Sandbox.call vs call"]["sandboxed_median_s"]
        / before["10 ms"]["Sandbox.call vs call"]["sandboxed_median_s"],
        "cold start": after["cold_start_first_call"]["median_s"]
        / before["cold_start_first_call"]["median_s"],
        "code repair": after["code_repair_wall_s"] / before["code_repair_wall_s"],
    }
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform(), "load_1min": os.getloadavg()[0]}
    results["date"] = time.strftime("%Y-%m-%d", time.gmtime())

    print(f"{'sandbox':<14} {'function':<8} {'how':<21} {'in-process ms':>13} "
          f"{'sandboxed ms':>12} {'p95 ms':>7} {'overhead ms':>11}")
    for label in CONFIGS:
        for function in ("trivial", "10 ms"):
            for how, row in results[label][function].items():
                print(f"{label:<14} {function:<8} {how:<21} "
                      f"{row['in_process_median_s'] * 1e3:>13.3f} "
                      f"{row['sandboxed_median_s'] * 1e3:>12.3f} "
                      f"{row['sandboxed_p95_s'] * 1e3:>7.3f} "
                      f"{row['overhead_median_s'] * 1e3:>11.3f}")
    for label in CONFIGS:
        row = results[label]
        print(f"{label:<14} cold start {row['cold_start_first_call']['median_s'] * 1e3:.1f} ms; "
              f"code repair ({row['code_repair'][0]['calls']} calls) "
              f"{row['code_repair_wall_s']:.2f} s; {json.dumps(row['protections'])}")
    print("start cost of each layer alone: " + ", ".join(
        f"{k.removesuffix('_s')} {v * 1e3:.2f} ms" for k, v in results["layer_start_costs"].items()))
    print("ratio full / kernel=False: " + ", ".join(
        f"{k} {v:.2f}" for k, v in results["ratio full / kernel=False"].items()))
    print(f"load average {results['machine']['load_1min']:.1f} on {os.cpu_count()} CPUs")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "sandbox.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
