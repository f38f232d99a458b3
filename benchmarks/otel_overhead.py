"""What telemetry costs a training run: off (the default), and on with an in-memory exporter.

    python -m benchmarks.otel_overhead --steps 40 --repeats 5

The run is `tests/train_helpers.py`'s (a scripted model, no model time), so what is timed is
the trainer's own work. Off, every telemetry hook is one `if` (the run's, each step's, each
evaluation's and each model call's); the table gives the run's time off and on, their ratio,
the spans sent, the extra time per span, and the cost of one hook while off against a bare
`contextlib.nullcontext()`. Best of `--repeats`; prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import backfeed as bf
from backfeed.otel.export import Telemetry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import train_helpers as h


def one_run(steps: int, telemetry: Telemetry | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        module = h.Router()
        started = time.perf_counter()
        bf.train(module, h.dataset(2), metric=h.metric, steps=steps, store=Path(tmp) / "r.db",
                 optimizer=h.FixOptimizer(module.parameters(), llm=h.scripted()),
                 strategy=bf.search.Greedy(), progress=False, telemetry=telemetry)
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/otel_overhead.json")
    args = parser.parse_args(argv)
    off, on, spans = [], [], 0
    for _ in range(args.repeats):  # interleaved, so drift on a noisy machine hits both
        off.append(one_run(args.steps, None))
        exporter = InMemorySpanExporter()
        on.append(one_run(args.steps, Telemetry(exporter=exporter)))
        spans = len(exporter.get_finished_spans())
    hooks = 200_000
    idle = Telemetry()
    started = time.perf_counter()
    for _ in range(hooks):
        with idle.step(0):
            pass
    hook_ns = (time.perf_counter() - started) / hooks * 1e9
    started = time.perf_counter()
    for _ in range(hooks):
        with contextlib.nullcontext():
            pass
    null_ns = (time.perf_counter() - started) / hooks * 1e9
    row = {"steps": args.steps, "off_s": min(off), "on_s": min(on),
           "ratio_on_off": min(on) / min(off), "spans": spans,
           "extra_us_per_span": (min(on) - min(off)) / max(spans, 1) * 1e6,
           "off_hook_ns": hook_ns, "nullcontext_ns": null_ns}
    print("| steps | run, telemetry off | on (in-memory exporter) | on / off | spans | extra per "
          "span | one hook while off | nullcontext |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {args.steps} | {row['off_s']:.3f} s | {row['on_s']:.3f} s | "
          f"{row['ratio_on_off']:.3f} | {spans} | {row['extra_us_per_span']:.0f} µs | "
          f"{hook_ns:.0f} ns | {null_ns:.0f} ns |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
