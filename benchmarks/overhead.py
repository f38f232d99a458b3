"""Tracing, backward and rendering cost of backfeed against Trace (trace-opt) on the same graphs.

Run: python benchmarks/overhead.py [--quick] [--repeat 3]   (Trace is measured when `backfeed[bench]` is installed)
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import time
import tracemalloc
from pathlib import Path

import backfeed as bf
from backfeed._tokens import estimate_tokens

BUDGET = 4_000
RESULTS = Path(__file__).parent / "results"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def chain(x, n: int):
    """y = x + 1 + ... + 1 (n additions); works on either library's nodes."""
    y = x
    for _ in range(n):
        y = y + 1
    return y


def tree(x, leaves: int = 2048):
    """A binary tree of additions over `leaves` offsets of x (4,095 ops for 2,048 leaves)."""
    level = [x + i for i in range(leaves)]
    while len(level) > 1:
        level = [level[i] + level[i + 1] for i in range(0, len(level), 2)]
    return level[0]


def backfeed_run(build, peak: bool = True, repeat: int = 1) -> dict:
    """Forward, then backward + render within the budget (best of `repeat`); optionally peak memory."""
    x = bf.param(1.0, name="x")
    y = None

    def back_and_render():
        y.backward("y should be smaller")
        return bf.render([x], budget_tokens=BUDGET)

    out = {"forward_s": float("inf"), "backward_render_s": float("inf")}
    for _ in range(repeat):
        gc.collect()
        t_fwd, y = timed(lambda: build(x))
        t_back, rendering = timed(back_and_render)
        out["forward_s"] = min(out["forward_s"], t_fwd)
        out["backward_render_s"] = min(out["backward_render_s"], t_back)
        out["prompt_tokens"] = rendering.tokens
        x.zero_feedback()
        y = None
    if peak:
        gc.collect()
        tracemalloc.start()
        y = build(x)
        back_and_render()
        out["peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        x.zero_feedback()
    return out


def backfeed_memory(iterations: int = 1_000, n: int = 100) -> dict:
    x = bf.param(1.0, name="x")
    tracemalloc.start()
    first = None
    for i in range(iterations):
        y = x
        for _ in range(n):
            y = y + 1
        y.backward("smaller")
        bf.render([x], budget_tokens=BUDGET)
        x.zero_feedback()
        del y
        if i == 0:
            gc.collect()
            first = tracemalloc.get_traced_memory()[0]
    gc.collect()
    last = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {"first_mib": first / 2**20, "last_mib": last / 2**20,
            "growth_mib": (last - first) / 2**20}


class _FakeTraceLLM:
    """Stands in for Trace's LLM: answers with a fixed suggestion, records the prompt size."""

    def __init__(self):
        self.prompt_tokens = 0

    def __call__(self, messages, **kwargs):
        self.prompt_tokens = sum(estimate_tokens(m["content"]) for m in messages)

        class Message:
            content = '{"reasoning": "", "answer": "", "suggestion": {}}'

        class Choice:
            message = Message()

        class Response:
            choices = [Choice()]

        return Response()


def trace_run(build, repeat: int = 1) -> dict | None:
    """Trace's forward, backward and OptoPrime step (with a fake LLM) on the same graph."""
    try:
        from opto.optimizers import OptoPrime
        from opto.trace import node
        from opto.trace.nodes import GRAPH
    except ImportError:
        return None
    best: dict = {}
    for _ in range(repeat):
        GRAPH.clear()
        gc.collect()
        x = node(1.0, trainable=True, name="x")
        t_fwd, y = timed(functools.partial(build, x))
        llm = _FakeTraceLLM()
        opt = OptoPrime([x], llm=llm)
        opt.zero_feedback()
        t_back, _ = timed(functools.partial(y.backward, "y should be smaller"))
        t_step, _ = timed(opt.step)
        GRAPH.clear()
        run = {"forward_s": t_fwd, "backward_s": t_back, "step_s": t_step,
               "prompt_tokens": llm.prompt_tokens}
        if not best or t_back + t_step < best["backward_s"] + best["step_s"]:
            best = {**run, "forward_s": min(t_fwd, best.get("forward_s", t_fwd))}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip N = 100,000 and Trace at 5,000")
    parser.add_argument("--repeat", type=int, default=3, help="report the best of this many runs")
    args = parser.parse_args()
    sizes = [10, 100, 1_000, 5_000, 10_000] + ([] if args.quick else [100_000])
    # backfeed first, on a clean heap: Trace keeps objects alive after GRAPH.clear() (ANCHORS),
    # and every object left in the process slows the cyclic collector for whoever runs next.
    repeat = args.repeat
    rows = [{"graph": f"chain {n:,}", "n": n,
             "backfeed": backfeed_run(lambda x, n=n: chain(x, n), repeat=repeat)} for n in sizes]
    rows.append({"graph": "tree 4,095", "n": 4095,
                 "backfeed": backfeed_run(tree, peak=False, repeat=repeat)})
    memory = backfeed_memory()
    for row in rows:
        size = row["n"]
        if row["graph"].startswith("tree"):
            row["trace"] = trace_run(tree, repeat)
        elif size <= (1_000 if args.quick else 5_000):
            row["trace"] = trace_run(lambda x, n=size: chain(x, n), repeat)
        else:
            row["trace"] = None

    print(f"{'graph':<14} {'bf fwd s':>9} {'bf back+render s':>17} {'bf tokens':>9} "
          f"{'bf peak MiB':>11} {'Trace fwd s':>11} {'Trace back+step s':>17} {'Trace tokens':>12} "
          f"{'speedup back':>12} {'speedup fwd/op':>14}")
    for r in rows:
        b, t = r["backfeed"], r["trace"]
        if t:
            r["speedup_backward"] = (t["backward_s"] + t["step_s"]) / max(b["backward_render_s"], 1e-9)
            r["speedup_forward"] = t["forward_s"] / max(b["forward_s"], 1e-9)
        print(f"{r['graph']:<14} {b['forward_s']:>9.4f} {b['backward_render_s']:>17.4f} "
              f"{b['prompt_tokens']:>9,} {b.get('peak_mib', float('nan')):>11.1f} "
              + (f"{t['forward_s']:>11.4f} {t['backward_s'] + t['step_s']:>17.4f} "
                 f"{t['prompt_tokens']:>12,} {r['speedup_backward']:>11.0f}x {r['speedup_forward']:>13.1f}x"
                 if t else f"{'-':>11} {'-':>17} {'-':>12} {'-':>12} {'-':>14}"))
    by_n = {r["n"]: r for r in rows}
    summary = {"memory_after_1000_iterations": memory}
    if 100_000 in by_n and 10_000 in by_n:
        a, b = by_n[10_000]["backfeed"], by_n[100_000]["backfeed"]
        summary["growth_10k_to_100k"] = (b["forward_s"] + b["backward_render_s"]) / (
            a["forward_s"] + a["backward_render_s"])
    print(f"memory growth over 1,000 forward/backward iterations: {memory['growth_mib']:.3f} MiB")
    if "growth_10k_to_100k" in summary:
        print(f"time growth from N = 10,000 to 100,000: {summary['growth_10k_to_100k']:.1f}x")
    RESULTS.mkdir(exist_ok=True)
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "rows": rows, **summary}
    (RESULTS / "overhead.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
