"""Item 2: SIGKILL a training run at a random moment, then check that it resumes exactly.

    python -m benchmarks.reliability.crash_trials --trials 100 --seed 0

Each trial runs `tests/train_helpers.py` (a real bf.train run with a scripted model; its
model and metric calls are logged to files that survive the kill) and kills it with SIGKILL,
either at a random time (which lands in store writes, evaluations and the trainer's own
work) or while a model call or a metric call is in progress (the n-th, n random). A trial
holds when the store opens, `backfeed runs` lists the run, and the resumed run has the
uninterrupted run's history, best score, and its model calls: none stored is asked again; the
one call in flight at the kill, if any, is (the provider bills a call cut off mid-way), and it
is counted. Metric calls that finished in the instant before the kill, unstored, run again;
they are counted too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / "tests" / "train_helpers.py"
CLI = [sys.executable, "-c", "from backfeed.cli import main; main()"]


def _env(tmp: Path, tag: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANG_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])
    env["LLM_LOG"] = str(tmp / f"{tag}-llm.log")
    env["METRIC_LOG"] = str(tmp / f"{tag}-metric.log")
    env["COLUMNS"] = "200"  # `backfeed runs` prints whole run ids
    env.update(extra)
    return env


def _lines(path: str) -> int:
    return sum(1 for _ in open(path)) if os.path.exists(path) else 0


def history(db: Path, run_id: str) -> dict[str, Any]:
    """What a run decided and paid for, without timestamps."""
    from backfeed.store import RunStore

    store = RunStore(db, readonly=True)
    return {
        "steps": [(s.step, s.parents, s.candidate, s.accepted, s.best_score)
                  for s in store.steps(run_id)],
        "candidates": [(c.id, c.values, c.parents, c.origin, c.status, c.val_scores)
                       for c in store.candidates(run_id)],
        "decisions": [(d.step, d.candidate_id, d.accepted, d.reason) for d in
                      store.decisions(run_id)],
        "llm": sorted((c.step, c.request_hash, c.occurrence, c.answer)
                      for c in store.llm_calls(run_id)),
        "evaluations": sorted((e.values_hash, e.split, e.example_index, e.score)
                              for e in store.evaluations(run_id)),
    }


def _run(db: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(HELPER), str(db), *args], env=env,
                         capture_output=True, text=True, timeout=300)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


class Reference:
    """The uninterrupted run every trial is compared with."""

    def __init__(self, tmp: Path) -> None:
        env = _env(tmp, "ref")
        proc = subprocess.Popen([sys.executable, str(HELPER), str(tmp / "ref.db")], env=env,
                                stdout=subprocess.PIPE, text=True)
        while not (tmp / "ref.db").exists() and proc.poll() is None:
            time.sleep(0.005)
        started = time.perf_counter()
        out = proc.communicate()[0]
        self.seconds = time.perf_counter() - started  # from the store's creation to the end
        self.result = json.loads(out.strip().splitlines()[-1])
        self.history = history(tmp / "ref.db", self.result["run_id"])
        self.llm_calls = _lines(env["LLM_LOG"])
        self.metric_calls = _lines(env["METRIC_LOG"])


def trial(tmp: Path, ref: Reference, rng: random.Random, number: int) -> dict[str, Any]:
    """One kill and resume; returns where it was killed and whether everything held."""
    mode = rng.choice(["time", "time", "llm", "metric"])
    tag = f"t{number}"
    db, mark = tmp / f"{tag}.db", tmp / f"{tag}.hanging"
    extra: dict[str, str] = {}
    if mode == "llm":
        extra = {"HANG_LLM_AT": str(rng.randrange(ref.llm_calls)), "HANG_MARK": str(mark)}
    elif mode == "metric":
        extra = {"HANG_METRIC_AT": str(rng.randrange(ref.metric_calls)), "HANG_MARK": str(mark)}
    env = _env(tmp, tag, **extra)
    proc = subprocess.Popen([sys.executable, str(HELPER), str(db)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if mode == "time":
        while not db.exists() and proc.poll() is None:
            time.sleep(0.005)
        try:
            proc.wait(rng.uniform(0.0, ref.seconds))
        except subprocess.TimeoutExpired:
            pass
    else:
        deadline = time.monotonic() + 120
        while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finished_first = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    row: dict[str, Any] = {"mode": mode, "killed": not finished_first}
    problems: list[str] = []
    from backfeed.store import RunStore

    runs = RunStore(db).list_runs() if db.exists() else []
    if not runs:
        row["where"] = "before the run was created"
        result = _run(db, {k: v for k, v in env.items() if not k.startswith("HANG_")})
        run_id = result["run_id"]
    else:
        run_id = runs[0].id
        row["where"] = f"step {runs[0].step + 1}" if runs[0].status == "running" else "after"
        listed = subprocess.run([*CLI, "runs", "--store", str(db)], env=env, capture_output=True,
                                text=True, timeout=120)
        if listed.returncode or run_id not in listed.stdout:
            problems.append(f"`backfeed runs` did not list it: {listed.stderr[-300:]}")
        clean = {k: v for k, v in env.items() if not k.startswith("HANG_")}
        try:
            result = _run(db, clean, run_id) if runs[0].status != "finished" else {
                "run_id": run_id, "best": runs[0].best_score}
        except RuntimeError as exc:
            problems.append(f"resume failed: {exc}")
            result = {}
    if result:
        if result.get("best") != ref.result["best"]:
            problems.append(f"best {result.get('best')} != {ref.result['best']}")
        if history(db, run_id) != ref.history:
            problems.append("history differs from the uninterrupted run")
        # A model call in flight when the kill came (asked, its answer not yet stored) is asked
        # again on resume: the provider bills it, as it would any call cut off mid-way. One such
        # call per kill is counted; a second, or any repaid call that was stored, is a failure.
        row["llm_reruns"] = _lines(env["LLM_LOG"]) - ref.llm_calls
        if not 0 <= row["llm_reruns"] <= int(row["killed"]):
            problems.append(f"{_lines(env['LLM_LOG'])} model calls, uninterrupted {ref.llm_calls}")
        # A metric call that finished but was not yet stored when the kill came runs again:
        # counted, not a failure (the metric is the user's code, outside the store's commit).
        row["metric_reruns"] = _lines(env["METRIC_LOG"]) - ref.metric_calls
        if row["metric_reruns"] < 0:
            problems.append(f"{_lines(env['METRIC_LOG'])} metric calls, "
                            f"uninterrupted {ref.metric_calls}")
    row["held"] = not problems
    row["problems"] = problems
    for path in tmp.glob(f"{tag}*"):
        path.unlink()
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ref = Reference(root)
        print(json.dumps({"reference_s": round(ref.seconds, 2), "llm_calls": ref.llm_calls,
                          "metric_calls": ref.metric_calls}), flush=True)
        rows = []
        for n in range(args.trials):
            row = trial(root, ref, rng, n)
            rows.append(row)
            print(json.dumps(row), flush=True)
    killed = [r for r in rows if r["killed"]]
    print(json.dumps({"trials": len(rows), "killed_mid_run": len(killed),
                      "held": sum(r["held"] for r in rows),
                      "killed_and_held": sum(r["held"] for r in killed),
                      "by_mode": dict(Counter(r["mode"] for r in killed)),
                      "llm_reruns": sum(r.get("llm_reruns", 0) for r in rows),
                      "metric_reruns": sum(r.get("metric_reruns", 0) for r in rows),
                      "failures": [r for r in rows if not r["held"]][:5]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
