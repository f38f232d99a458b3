"""Item 1: `bf.train` (Prime, Pareto, Threads(8)) against a model server that fails on purpose.

    python -m benchmarks.reliability.model_faults --steps 30            # every fault, one by one
    python -m benchmarks.reliability.model_faults --mix 0.2 --seeds 5   # random 20% mix

Each fault hits every 5th request (from the 2nd). A trial records the outcome (finished, stopped
with an error, resumed), complete answers the server delivered twice for one request, steps
missing from the store, and wall time. The mix first records a clean run to a cassette; the
server then answers from that cassette, with faults, and the run must end on the same values.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import backfeed as bf
from backfeed.store import RunStore

from .faults import FAULTS, TRANSIENT, FaultServer, Plan, every, random_mix

KINDS = ("a", "b", "c", "d")
NEEDS = re.compile(r"needs (p[a-z])=(right-[a-z])")


@bf.op
def route(kind: str, pa: str, pb: str, pc: str, pd: str) -> str:
    """Return the setting of the parameter for this kind."""
    return {"a": pa, "b": pb, "c": pc, "d": pd}[kind]


class Router(bf.Module):
    """Kind k is answered right only when p<k> holds "right-<k>"."""

    def __init__(self) -> None:
        self.pa = bf.param("start", name="pa")
        self.pb = bf.param("start", name="pb")
        self.pc = bf.param("start", name="pc")
        self.pd = bf.param("start", name="pd")

    def forward(self, kind: str) -> Any:
        return route(kind, self.pa, self.pb, self.pc, self.pd)


def metric(example: tuple[str, int], output: str) -> bf.Feedback:
    kind = example[0]
    if output == f"right-{kind}":
        return bf.Feedback(score=1.0, text="correct")
    return bf.Feedback(score=0.0, text=f"needs p{kind}=right-{kind}")


def brain(body: dict[str, Any]) -> str:
    """An overfitting model: fix the first need in the feedback, reset every other parameter."""
    text = str(body["messages"][-1]["content"])
    found = NEEDS.search(text)
    values = {f"p{k}": "start" for k in KINDS}
    if found:
        values[found.group(1)] = found.group(2)
    return json.dumps({"reasoning": "fix the first failing kind", "suggestion": values,
                       "stop": False})


def dataset() -> list[tuple[str, int]]:
    return [(k, i) for i in range(2) for k in KINDS]


def train(url: str, db: Path, cache: Path, *, steps: int, resume: str | None = None,
          llm: Any = None) -> Any:
    module = Router()
    llm = llm or bf.llm.LiteLLM("openai/fault-model", api_base=url, api_key="sk-fault-test",
                                timeout=2.0, cache=cache, max_retries=4)
    optimizer = bf.optim.Prime(module.parameters(), llm=llm)
    return bf.train(module, dataset(), dataset(), metric=metric, optimizer=optimizer,
                    strategy=bf.search.Pareto(), executor=bf.executors.Threads(8), steps=steps,
                    seed=0, store=str(db), resume=resume, minibatch_size=2, progress=False)


def trial(fault: str | None, *, steps: int, workdir: Path, plan: Plan | None = None,
          brain_fn: Any = brain, recorder: Path | None = None) -> dict[str, Any]:
    """One run against the server with `fault` (or `plan`): a transient fault on every 5th
    request from the 2nd, a final one (bad key, context too long) on every request from the 2nd.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    db, cache = workdir / "run.db", workdir / "cache.sqlite"
    if plan is None and fault:
        plan = every(5 if fault in TRANSIENT else 1, fault, first=1)
    row: dict[str, Any] = {"fault": fault or "none"}
    started = time.perf_counter()
    with FaultServer(brain_fn, plan, hold=30.0, trickle=4.0) as server:
        llm = None
        if recorder is not None:
            llm = bf.llm.Recorder(bf.llm.LiteLLM(
                "openai/fault-model", api_base=server.url, api_key="sk-fault-test", timeout=2.0,
                cache=False, max_retries=4), recorder)
        try:
            result = train(server.url, db, cache, steps=steps, llm=llm)
            row["outcome"] = "finished"
            run_id = result.run_id
        except Exception as exc:  # the outcome we measure: which error, and is it resumable
            row["outcome"] = "stopped"
            row["error"] = f"{type(exc).__name__}: {str(exc)[-300:]}"
            runs = RunStore(db).list_runs()
            run_id = runs[0].id if runs else None
            if run_id is not None:
                server.plan = lambda n, b: None
                try:
                    train(server.url, db, cache, steps=steps, resume=run_id, llm=llm)
                    row["outcome"] = "stopped, resumed to the end"
                except Exception as again:
                    row["resume_error"] = f"{type(again).__name__}: {str(again)[:120]}"
        row["seconds"] = round(time.perf_counter() - started, 2)
        row["requests"] = len(server.log.requests)
        row["faults"] = server.log.faults
        row["paid_twice"] = server.log.paid_twice
    if run_id is not None:
        store = RunStore(db)
        run = store.get_run(run_id)
        row["status"] = run.status
        row["steps_stored"] = len(store.steps(run_id))
        row["failed_steps"] = sum(1 for r in store.step_reports(run_id) if r.report.error)
        row["stored_calls"] = len(store.llm_calls(run_id))
        row["best_score"] = run.best_score
        best = max(store.candidates(run_id),
                   key=lambda c: ((c.val_scores and sum(c.val_scores)) or 0.0, -c.id))
        row["best_values"] = best.values
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--faults", nargs="*", default=list(FAULTS))
    parser.add_argument("--mix", type=float, default=None, help="random fault rate, e.g. 0.2")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    from backfeed.llm.litellm_backend import import_litellm

    import_litellm()  # once, before the clean run's clock starts
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clean = trial(None, steps=args.steps, workdir=root / "clean",
                      recorder=root / "clean.jsonl" if args.mix is not None else None)
        print(json.dumps(clean), flush=True)
        if args.mix is None:
            for fault in args.faults:
                row = trial(fault, steps=args.steps, workdir=root / fault)
                row["slowdown"] = round(row["seconds"] / clean["seconds"], 2)
                row["steps_lost"] = clean["steps_stored"] - row.get("steps_stored", 0)
                print(json.dumps(row), flush=True)
            return 0
        held = 0
        for seed in range(args.seeds):
            cassette = Cassette(root / "clean.jsonl")
            row = trial(f"mix-{args.mix}-seed{seed}", steps=args.steps,
                        workdir=root / f"mix{seed}", plan=random_mix(args.mix, seed),
                        brain_fn=cassette)
            row["same_best_values"] = row.get("best_values") == clean["best_values"]
            held += row["same_best_values"]
            print(json.dumps(row), flush=True)
        print(json.dumps({"mix": args.mix, "seeds": args.seeds, "same_best_values": held}))
    return 0


class Cassette:
    """The clean run's answers, looked up by the request's messages (the server sees the schema
    as litellm rewrote it, so the messages are the stable part); repeats answer in order."""

    def __init__(self, path: Path) -> None:
        self.answers: dict[str, list[str]] = {}
        for raw in Path(path).read_text(encoding="utf-8").splitlines():
            line = json.loads(raw)
            key = json.dumps(line["request"]["messages"], sort_keys=True)
            self.answers.setdefault(key, []).append(line["response"]["text"])
        self.used: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        key = json.dumps([{"role": m.get("role", ""), "content": m.get("content", "")}
                          for m in body["messages"]], sort_keys=True)
        with self.lock:
            answers = self.answers.get(key)
            if not answers:
                raise KeyError("the clean run's cassette has no answer for this request")
            n = self.used.get(key, 0)
            self.used[key] = n + 1
            return answers[min(n, len(answers) - 1)]


if __name__ == "__main__":
    sys.exit(main())
