"""Speed of the embedded model: prompt and generation tokens/s, JSON-schema cost, prefix caching.

Run: PYTHONPATH=src python benchmarks/local_model.py [--models qwen2.5-coder-0.5b ...] [--repeat 3]
Timings come from llama.cpp's own per-request counters; the load average is reported because
other work on the machine slows it down a lot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from backfeed.llm import local
from backfeed.llm.openai_compat import response_format

ROOT = Path(__file__).resolve().parents[1]
FILLER = (
    "You are the optimizer of a traced program. Each variable has a name, a type and a value; "
    "each operation shows its inputs, its output and its documentation. Read the feedback and "
    "propose new values for the trainable variables only. Keep the same types. "
)
SCHEMA = {
    "type": "object",
    "properties": {"reasoning": {"type": "string"},
                   "suggestion": {"type": "object", "properties": {"x": {"type": "number"}},
                                  "required": ["x"]}},
    "required": ["reasoning", "suggestion"],
}


def ask(server: Any, messages: list[dict[str, str]], **body: Any) -> dict[str, Any]:
    answer = server.handle_chat_completions({"messages": messages, **body})
    return answer["timings"] | {"text": answer["choices"][0]["message"]["content"]}


def measure(name: str, repeat: int, threads: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    path = local.ensure_model(name)
    join_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    server = local.load_server(path, n_ctx=4096, parallel=1, threads=threads)
    load_s = time.perf_counter() - t0
    long_prompt = FILLER * 12  # ~560 tokens
    pp, tg, tg_schema = [], [], []
    for i in range(repeat):
        msgs = [{"role": "system", "content": long_prompt},
                {"role": "user", "content": f"Variant {i}: write a short story about a robot."}]
        t = ask(server, msgs, max_tokens=64, temperature=0.0, cache_prompt=False, ignore_eos=True)
        pp.append(t["prompt_per_second"])
        tg.append(t["predicted_per_second"])
        msgs[-1]["content"] = f"Variant {i}: x=3 gives loss 9; minimise x**2. Answer in JSON."
        t = ask(server, msgs, max_tokens=64, temperature=0.0, cache_prompt=False,
                response_format=response_format(SCHEMA))
        tg_schema.append(t["predicted_per_second"])
    # Prefix caching: consecutive calls share the long system prompt, differ in the question.
    cold, warm = [], []
    for i in range(repeat):
        msgs = [{"role": "system", "content": long_prompt},
                {"role": "user", "content": f"Question {i}: what is {i} + {i}?"}]
        t = ask(server, msgs, max_tokens=8, temperature=0.0, cache_prompt=False)
        cold.append(t["prompt_ms"] + t["predicted_ms"])
        msgs[-1]["content"] = f"Question {i}: what is {i} * {i}?"
        t = ask(server, msgs, max_tokens=8, temperature=0.0, cache_prompt=True)
        warm.append(t["prompt_ms"] + t["predicted_ms"])
    return {
        "model": name, "threads": threads, "join_s": round(join_s, 2), "load_s": round(load_s, 2),
        "prompt_tok_s": round(statistics.median(pp), 1), "prompt_tok_s_best": round(max(pp), 1),
        "gen_tok_s": round(statistics.median(tg), 1), "gen_tok_s_best": round(max(tg), 1),
        "gen_json_schema_tok_s": round(statistics.median(tg_schema), 1),
        "shared_prefix_cold_ms": round(statistics.median(cold)),
        "shared_prefix_cached_ms": round(statistics.median(warm)),
        "prefix_cache_saving": round(1 - statistics.median(warm) / statistics.median(cold), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=[m for m in local.MODELS
                                                         if local.is_installed(m)])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=local.cpu_count())
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = [measure(name, args.repeat, args.threads) for name in args.models]
    header = ("model", "threads", "load s", "prompt tok/s", "gen tok/s", "gen JSON tok/s",
              "shared prefix: cold ms", "cached ms", "saved")
    print(" | ".join(header))
    for r in rows:
        print(" | ".join(str(v) for v in (
            r["model"], r["threads"], r["load_s"], r["prompt_tok_s"], r["gen_tok_s"],
            r["gen_json_schema_tok_s"], r["shared_prefix_cold_ms"], r["shared_prefix_cached_ms"],
            f"{r['prefix_cache_saving']:.0%}")))
    load_after = os.getloadavg()[0]
    print(f"load average before/after: {load_before:.2f} / {load_after:.2f}")
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{os.cpu_count()} cores, {platform.machine()}",
              "load_avg": [load_before, load_after], "rows": rows}
    out = ROOT / "benchmarks" / "results" / "local_model.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
