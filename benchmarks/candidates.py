"""What several candidates per step cost on the embedded model, and what parallel slots give.

    PYTHONPATH=src python benchmarks/candidates.py [--model qwen2.5-coder-0.5b] [--ns 1 4 8]
        [--prompts 32] [--skip-throughput]

Part 1 asks the demo's receipt workflow prompt (a real Prime prompt, ~800 tokens) for n
candidates in two ways: "one slot" is `Prime(candidates=n).step()` on a one-slot model, which
sends the n calls one after another (llama.cpp keeps the prompt in the slot's cache, so it is
processed once and only the answers are generated n times); "n slots" sends the same n
requests at once to a model with n parallel slots (continuous batching; each slot processes
the prompt itself). It reports
wall seconds, tokens per candidate and the wall-time ratio to n = 1.
Part 2 sends `--prompts` short prompts (a program's own model calls, each answered in ~40
tokens) from 4 threads to a model with 1 slot and with 4 slots: the throughput ratio.
Each configuration loads its own model, runs back to back with the others and is dropped
after. The machine is shared and its load moves the seconds a lot: read the ratios, and the
load average printed with them. Writes benchmarks/results/candidates.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from backfeed import demo
from backfeed.llm import Local, local
from backfeed.optim import Prime
from backfeed.optim.base import SAMPLE_TEMPERATURE
from backfeed.optim.schema import answer_limit

RESULTS = Path(__file__).resolve().parent / "results" / "candidates.json"


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _drop_models() -> None:
    local._loaded.clear()  # the servers stop when collected
    gc.collect()


def _fresh_prime(llm: Local, n: int) -> Prime:
    workflow = demo.ReceiptWorkflow()
    opt = Prime(workflow.parameters(), llm=llm, candidates=n, budget_tokens=1500, memory=2,
                reasoning_chars=100, temperature=0.0)
    opt.zero_feedback()  # clean_name's code is shared by every workflow: forget earlier runs
    for order in demo.ORDERS:  # traced outputs with feedback, as the trainer leaves them
        out = workflow(order)
        out.backward(workflow.metric(order, out.value))
    return opt


def candidates_row(model: str, n: int, slots: int) -> dict[str, Any]:
    """One slot: `Prime(candidates=n).step()` as the optimizer runs it (calls in sequence).
    n slots: the same n requests sent at once from n threads."""
    llm = Local(model, parallel=slots, cache=False, n_ctx=4096)
    llm.complete([{"role": "user", "content": "Say hi."}], max_tokens=4)  # load, warm up
    opt = _fresh_prime(llm, n)
    load = _load()
    start = time.perf_counter()
    if slots == 1:
        report = opt.step()
        calls, error = report.llm_calls, report.error
        prompt_tokens, completion_tokens = report.prompt_tokens, report.completion_tokens
    else:
        messages, schema = opt.messages(), opt.schema()
        if opt.prefix():
            messages = [*messages, {"role": "assistant", "content": opt.prefix()}]
        limit = answer_limit(opt.params, opt.reasoning_chars, opt.budget_tokens, opt.max_tokens)

        def one(i: int) -> Any:
            return llm.complete(messages, json_schema=schema, max_tokens=limit,
                                temperature=0.0 if i == 0 else SAMPLE_TEMPERATURE)

        with ThreadPoolExecutor(n) as pool:
            answers = list(pool.map(one, range(n)))
        calls, error = n, None
        prompt_tokens = sum(a.usage.prompt_tokens for a in answers)
        completion_tokens = sum(a.usage.completion_tokens for a in answers)
    wall = time.perf_counter() - start
    _drop_models()
    return {
        "n": n, "mode": "one slot" if slots == 1 else f"{slots} slots", "slots": slots,
        "wall_s": round(wall, 2), "calls": calls, "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens, "wall_s_per_candidate": round(wall / n, 2),
        "error": error, "load": load,
    }


def throughput_row(model: str, slots: int, prompts: int) -> dict[str, Any]:
    llm = Local(model, parallel=slots, cache=False, n_ctx=1024)
    llm.complete([{"role": "user", "content": "Say hi."}], max_tokens=4)

    def one(i: int) -> int:
        prompt = f"List {8 + i % 4} colours, one per line. List {i}."
        answer = llm.complete([{"role": "user", "content": prompt}], max_tokens=48,
                              temperature=0.0)
        return answer.usage.completion_tokens

    load = _load()
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        tokens = sum(pool.map(one, range(prompts)))
    wall = time.perf_counter() - start
    _drop_models()
    return {"slots": slots, "prompts": prompts, "wall_s": round(wall, 2),
            "prompts_per_s": round(prompts / wall, 3), "completion_tokens": tokens, "load": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--ns", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-slots", type=int, default=4,
                        help="largest n also run on n parallel slots")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-candidates", action="store_true")
    args = parser.parse_args()
    threads = local.cpu_count()
    print(f"model {args.model}, {threads} llama.cpp threads, {os.cpu_count()} cores, "
          f"load {_load()}", flush=True)
    rows = []
    for n in [] if args.skip_candidates else args.ns:
        for slots in sorted({1, n} if n <= args.max_slots else {1}):
            row = candidates_row(args.model, n, slots)
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = {r["mode"]: r["wall_s"] for r in rows if r["n"] == 1}.get("one slot")
    print("\n| n | mode | wall s | x n=1 | s per candidate | prompt tok | completion tok | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['wall_s'] / base:.2f}" if base else "-"
        print(f"| {r['n']} | {r['mode']} | {r['wall_s']} | {ratio} | {r['wall_s_per_candidate']} "
              f"| {r['prompt_tokens']} | {r['completion_tokens']} | {r['load']} |")
    throughput = []
    if not args.skip_throughput:
        for slots in (1, 4):
            row = throughput_row(args.model, slots, args.prompts)
            throughput.append(row)
            print(json.dumps(row), flush=True)
        speedup = throughput[1]["prompts_per_s"] / throughput[0]["prompts_per_s"]
        print(f"\n{args.prompts} short prompts: 1 slot {throughput[0]['wall_s']} s, "
              f"4 slots {throughput[1]['wall_s']} s: {speedup:.2f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "model": args.model,
        "threads": threads, "machine": platform.platform(), "cores": os.cpu_count(),
        "candidates": rows, "throughput": throughput,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
