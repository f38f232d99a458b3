"""How long `import backfeed` takes in a fresh interpreter, against `import opto.optimizers`.

Run: PYTHONPATH=src python benchmarks/import_time.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["litellm", "openai", "xllamacpp", "ray", "optuna", "starlette"]


def time_import(statement: str, repeat: int) -> tuple[list[float], list[str]]:
    """Seconds for `statement` in `repeat` fresh interpreters, and heavy modules it loaded."""
    code = (
        "import time, sys, json\n"
        "t = time.perf_counter()\n"
        f"{statement}\n"
        "elapsed = time.perf_counter() - t\n"
        f"print(json.dumps([elapsed, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    times, loaded = [], []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, check=True)
        elapsed, loaded = json.loads(out.stdout.strip().splitlines()[-1])
        times.append(elapsed)
    return times, loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = []
    ours, loaded = time_import("import backfeed", args.repeat)
    rows.append({"import": "backfeed", "median_s": statistics.median(ours), "min_s": min(ours),
                 "heavy_modules": loaded})
    if importlib.util.find_spec("opto") is not None:
        theirs, loaded = time_import("import opto.optimizers", max(1, args.repeat // 2))
        rows.append({"import": "opto.optimizers (trace-opt)", "median_s": statistics.median(theirs),
                     "min_s": min(theirs), "heavy_modules": loaded})
    print(f"{'import':<30} {'median s':>9} {'min s':>7}  heavy modules loaded")
    for r in rows:
        print(f"{r['import']:<30} {r['median_s']:>9.3f} {r['min_s']:>7.3f}  {r['heavy_modules']}")
    if len(rows) == 2:
        ratio = rows[1]["median_s"] / rows[0]["median_s"]
        print(f"import backfeed is {ratio:.0f}x faster than import opto.optimizers")
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{os.cpu_count()} cores, {platform.machine()}",
              "load_avg": os.getloadavg()[0], "rows": rows}
    out = ROOT / "benchmarks" / "results" / "import_time.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
