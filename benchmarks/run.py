"""Run the task suite for backfeed and its peers on one model, budget and set of seeds.

    python -m benchmarks.run --suite quick --model local-0.5b --frameworks backfeed,trace --seeds 1
    python -m benchmarks.run --suite families --frameworks gepa --seeds 3 --out results/a
    python -m benchmarks.run --combine results/a results/b --out results/all

Suites: quick, full, families (code repair, numeric, a prompt family; 12 calls) and
code_repair (all 16 functions). Writes results.json, results.md (a table per task, one per
family, and the calls and tokens each library needs to reach the best peer's final score)
and score_vs_calls.png under --out.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import platform
import shlex
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import backfeed as bf
from backfeed.llm import LLM, BaseLLM, Completion, Message, Metered

from .adapters import ADAPTERS, RunContext, get_adapter, split_framework, values_of
from .models import ModelHandle, open_model
from .tasks import SUITE_SIZES, SUITES, make_task

DEFAULT_CALLS = {"quick": 3, "full": 20, "families": 12, "code_repair": 12, "prompts": 12}
VERBOSE = False  # --verbose: print every optimizer call


@dataclass
class RunRecord:
    """One (task, framework, seed) run."""

    task: str
    framework: str
    seed: int
    status: str  # "ok", "n/a" (the library cannot express the task) or "error"
    reason: str = ""
    test_score: float | None = None
    start_score: float | None = None
    optimizer_calls: int = 0
    program_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    optimizer_prompt_tokens: int = 0
    optimizer_completion_tokens: int = 0
    wall_s: float = 0.0
    curve: list[tuple[int, float]] = field(default_factory=list)
    final_values: dict[str, Any] = field(default_factory=dict)
    # after each optimizer call: [optimizer tokens, program tokens] spent so far
    call_tokens: list[list[int]] = field(default_factory=list)

    @property
    def optimizer_tokens(self) -> int:
        return self.optimizer_prompt_tokens + self.optimizer_completion_tokens

    @property
    def program_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens - self.optimizer_tokens


def run_one(task_name: str, framework: str, seed: int, model: ModelHandle, *, size: str,
            calls: int, max_tokens: int, start_score: float | None) -> RunRecord:
    """Optimize one task with one library, then score the result on the test split."""
    task = make_task(task_name, seed, size)
    adapter = get_adapter(framework)
    record = RunRecord(task_name, framework, seed, "ok", start_score=start_score)
    reason = adapter.unsupported(task)
    if reason:
        record.status, record.reason = "n/a", reason
        return record
    program_llm = Metered(model.program_llm)
    capped = Capped(model.llm, max_tokens, program=program_llm)
    optimizer_llm = Metered(capped, bf.Budget(llm_calls=calls))
    program = task.program(program_llm if task.uses_llm else None)
    ctx = RunContext(task, program, optimizer_llm, calls, seed, max_tokens=max_tokens,
                     options=split_framework(framework)[1])
    started = time.perf_counter()
    try:
        adapter.optimize(ctx)
    except bf.BudgetExceeded:
        pass  # the library stopped at the limit: its program keeps the values it had
    except Exception as exc:  # a library failing on a task is a result, reported as such
        record.status = "error"
        record.reason = f"{type(exc).__name__}: {exc}"[:500]
        record.curve = ctx.log.points
        traceback.print_exc()
    record.wall_s = time.perf_counter() - started
    o, p = optimizer_llm.spend, program_llm.spend
    record.optimizer_calls, record.program_calls = o.calls, p.calls
    record.prompt_tokens = o.prompt_tokens + p.prompt_tokens
    record.completion_tokens = o.completion_tokens + p.completion_tokens
    record.optimizer_prompt_tokens = o.prompt_tokens
    record.optimizer_completion_tokens = o.completion_tokens
    record.call_tokens = capped.log
    record.curve = ctx.log.points
    if record.status == "ok" and ctx.final_forward is not None:
        feedbacks = [task.metric(ex, ctx.final_forward(ex[0])) for ex in task.testset]
        record.test_score = sum(f.score or 0.0 for f in feedbacks) / len(feedbacks)
        record.final_values = {k: _short(v) for k, v in values_of(program).items()}
    elif record.status == "ok":
        record.test_score = task.evaluate(program, "test").score
        record.final_values = {k: _short(v) for k, v in values_of(program).items()}
    return record


class Capped(BaseLLM):
    """Caps every completion at `max_tokens`, the same for every library's optimizer calls,
    and logs the tokens spent so far (its own, and the program's) after each call."""

    def __init__(self, llm: LLM, max_tokens: int, program: Metered | None = None) -> None:
        self.llm, self.max_tokens, self.program = llm, max_tokens, program
        self.model = getattr(llm, "model", "")
        self.tokens = 0
        self.log: list[list[int]] = []

    def complete(self, messages: list[Message], *, json_schema: dict[str, Any] | None = None,
                 max_tokens: int | None = None, temperature: float | None = None,
                 seed: int | None = None) -> Completion:
        started = time.perf_counter()
        completion = self.llm.complete(
            messages, json_schema=json_schema,
            max_tokens=min(max_tokens or self.max_tokens, self.max_tokens),
            temperature=temperature, seed=seed)
        self.tokens += completion.usage.prompt_tokens + completion.usage.completion_tokens
        self.log.append([self.tokens, self.program.spend.tokens if self.program else 0])
        if VERBOSE:
            print(f"    optimizer call: {completion.usage.prompt_tokens} prompt + "
                  f"{completion.usage.completion_tokens} completion tokens, "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
        return completion


def start_score(task_name: str, seed: int, model: ModelHandle, size: str) -> float:
    """The test score of the program before any optimization."""
    task = make_task(task_name, seed, size)
    return task.evaluate(task.program(model.program_llm if task.uses_llm else None),
                         "test").score


def reference_record(task_name: str, seed: int, size: str, calls: int,
                     model: ModelHandle | None = None) -> RunRecord | None:
    """Baselines, for reference: Adam on finite differences for the numeric task; the
    hand-written reference instruction of a prompt task, on the program's model."""
    task = make_task(task_name, seed, size)
    if "reference_instruction" in task.info and model is not None:
        program = task.program(model.program_llm)
        (instruction,) = program.parameters()
        instruction.value = task.info["reference_instruction"]
        return RunRecord(task_name, "reference instruction", seed, "ok",
                         test_score=task.evaluate(program, "test").score,
                         reason="the hand-written instruction, not optimized")
    baseline = task.info.get("baseline")
    if baseline is None:
        return None
    result = baseline(calls)
    return RunRecord(task_name, "adam (reference)", seed, "ok", test_score=result["score"],
                     reason=f"{calls} finite-difference gradient steps, no LLM")


def run_suite(tasks: list[str], frameworks: list[str], seeds: list[int], model: ModelHandle,
              *, size: str, calls: int, max_tokens: int = 1024, progress: bool = True,
              on_record: Any = None) -> list[RunRecord]:
    """Every (task, seed, framework) run; `on_record(records)` after each (partial results)."""
    records: list[RunRecord] = []
    for task_name in tasks:
        for seed in seeds:
            start = start_score(task_name, seed, model, size)
            for framework in frameworks:
                record = run_one(task_name, framework, seed, model, size=size, calls=calls,
                                 max_tokens=max_tokens, start_score=start)
                records.append(record)
                if on_record is not None:
                    on_record(records)
                if progress:
                    score = "-" if record.test_score is None else f"{record.test_score:.3f}"
                    print(f"[{task_name} seed={seed}] {framework}: {record.status} test={score} "
                          f"start={start:.3f} calls={record.optimizer_calls} "
                          f"wall={record.wall_s:.1f}s {record.reason[:120]}", flush=True)
            reference = reference_record(task_name, seed, size, calls, model)
            if reference is not None:
                records.append(reference)
    return records


# -- reporting -----------------------------------------------------------------------------

def family_of(task: str) -> str:
    """The family a task name belongs to: `code_repair/median` -> `code_repair`."""
    return task.split("/")[0]


def summarize(records: list[RunRecord], by: str = "task") -> list[dict[str, Any]]:
    """One row per (task or family, framework): mean and sd over runs, mean costs."""
    key = (lambda r: r.task) if by == "task" else (lambda r: family_of(r.task))
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for r in records:
        groups.setdefault((key(r), r.framework), []).append(r)
    rows = []
    order = {name: i for i, name in enumerate(dict.fromkeys(key(r) for r in records))}
    ordered = sorted(groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))
    for (name, framework), group in ordered:
        ok = [r for r in group if r.status == "ok" and r.test_score is not None]
        statuses = {r.status for r in group}
        row: dict[str, Any] = {"task": name, "framework": framework, "seeds": len(group)}
        if not ok:
            row["status"] = "n/a" if statuses == {"n/a"} else "error"
            row["reason"] = group[0].reason
            rows.append(row)
            continue
        scores = [r.test_score for r in ok]
        starts = [r.start_score for r in ok if r.start_score is not None]
        row.update(
            status="ok" if len(ok) == len(group) else f"{len(group) - len(ok)} failed",
            runs=len(ok),
            score=statistics.fmean(scores),
            spread=statistics.stdev(scores) if len(scores) > 1 else 0.0,
            start=statistics.fmean(starts) if starts else None,
            optimizer_calls=statistics.fmean(r.optimizer_calls for r in ok),
            program_calls=statistics.fmean(r.program_calls for r in ok),
            prompt_tokens=statistics.fmean(r.prompt_tokens for r in ok),
            completion_tokens=statistics.fmean(r.completion_tokens for r in ok),
            optimizer_prompt_tokens=statistics.fmean(r.optimizer_prompt_tokens for r in ok),
            optimizer_tokens=statistics.fmean(r.optimizer_tokens for r in ok),
            program_tokens=statistics.fmean(r.program_tokens for r in ok),
            wall_s=statistics.fmean(r.wall_s for r in ok),
        )
        rows.append(row)
    return rows


def markdown_table(rows: list[dict[str, Any]], first: str = "task") -> str:
    head = (f"| {first} | framework | test score (mean ± sd) | start | optimizer calls | "
            "program calls | optimizer tokens (prompt) | program tokens | wall s |")
    lines = [head, "|" + "---|" * 9]
    for row in rows:
        if row["status"] in ("n/a", "error"):
            reason = row.get("reason", "").replace("|", "/")[:80]
            lines.append(f"| {row['task']} | {row['framework']} | {row['status']} ({reason}) "
                         "| | | | | | |")
            continue
        start = "" if row["start"] is None else f"{row['start']:.3f}"
        failed = "" if row["status"] == "ok" else f" ({row['status']})"
        lines.append(
            f"| {row['task']} | {row['framework']} | {row['score']:.3f} ± {row['spread']:.3f}"
            f"{failed} | {start} | {row['optimizer_calls']:.1f} | {row['program_calls']:.1f} | "
            f"{row['optimizer_tokens']:,.0f} ({row['optimizer_prompt_tokens']:,.0f}) | "
            f"{row['program_tokens']:,.0f} | {row['wall_s']:.1f} |"
        )
    return "\n".join(lines)


def curve_by_call(record: RunRecord) -> list[tuple[int, float]]:
    """(optimizer calls so far, mean score of the evaluations logged at that count), by calls."""
    by_calls: dict[int, list[float]] = {}
    for calls, score in record.curve:
        by_calls.setdefault(calls, []).append(score)
    return [(c, statistics.fmean(by_calls[c])) for c in sorted(by_calls)]


def calls_to_reach(record: RunRecord, target: float) -> tuple[int, int, int] | None:
    """(calls, optimizer tokens, program tokens) spent when the evaluations logged at one call
    count first averaged at least `target`; None if they never did."""
    for calls, score in curve_by_call(record):
        if score >= target - 1e-9:
            if calls == 0:
                return 0, 0, 0
            spent = record.call_tokens[min(calls, len(record.call_tokens)) - 1] \
                if record.call_tokens else [0, 0]
            return calls, spent[0], spent[1]
    return None


def is_peer(framework: str) -> bool:
    """Every library but backfeed (in any configuration) is a peer."""
    return split_framework(framework)[0] != "backfeed"


def reach(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Per task: the best peer's final test score (mean over seeds) as the target, and what each
    library spent until its own evaluations first reached it (runs that never did are counted)."""
    rows = []
    finals: dict[str, dict[str, float]] = {}
    for row in summarize(records):
        if row["status"] not in ("n/a", "error") and "reference" not in row["framework"]:
            finals.setdefault(row["task"], {})[row["framework"]] = row["score"]
    for task, scores in finals.items():
        peers = {f: s for f, s in scores.items() if is_peer(f)}
        if not peers:
            continue
        best_peer, target = max(peers.items(), key=lambda kv: kv[1])
        for framework in scores:
            runs = [r for r in records if r.task == task and r.framework == framework
                    and r.status == "ok"]
            reached = [x for x in (calls_to_reach(r, target) for r in runs) if x is not None]
            row = {"task": task, "framework": framework, "best_peer": best_peer,
                   "target": target, "reached": len(reached), "runs": len(runs)}
            if reached:
                row.update(calls=statistics.fmean(x[0] for x in reached),
                           optimizer_tokens=statistics.fmean(x[1] for x in reached),
                           program_tokens=statistics.fmean(x[2] for x in reached))
            rows.append(row)
    return rows


def reach_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| task | framework | target (best peer) | runs that reached it | optimizer calls | "
             "optimizer tokens | program tokens |", "|" + "---|" * 7]
    for row in rows:
        costs = (f"{row['calls']:.1f} | {row['optimizer_tokens']:,.0f} | "
                 f"{row['program_tokens']:,.0f}") if row["reached"] else "- | - | -"
        lines.append(f"| {row['task']} | {row['framework']} | {row['target']:.3f} "
                     f"({row['best_peer']}) | {row['reached']}/{row['runs']} | {costs} |")
    return "\n".join(lines)


def plot(records: list[RunRecord], path: Path) -> None:
    """Score against optimizer calls, one panel per task, one line per framework."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r.task for r in records if r.curve})
    if not tasks:
        return
    cols = min(3, len(tasks))
    rows_n = (len(tasks) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.5 * cols, 3.4 * rows_n), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        for framework in sorted({r.framework for r in records if r.task == task and r.curve}):
            by_calls: dict[int, list[float]] = {}
            for r in records:
                if r.task == task and r.framework == framework:
                    for calls, score in r.curve:
                        by_calls.setdefault(calls, []).append(score)
            xs = sorted(by_calls)
            ax.plot(xs, [statistics.fmean(by_calls[x]) for x in xs], marker="o", label=framework)
        ax.set_title(task)
        ax.set_xlabel("optimizer LLM calls")
        ax.set_ylabel("mean score of evaluations")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_results(records: list[RunRecord], out: Path, meta: dict[str, Any]) -> str:
    """Write results.json, results.md and score_vs_calls.png; return the markdown tables."""
    out.mkdir(parents=True, exist_ok=True)
    rows = summarize(records)
    families = summarize(records, by="family")
    reached = reach(records)
    table = markdown_table(rows)
    if {r["task"] for r in rows} != {f["task"] for f in families}:
        table += "\n\nBy family (every task and seed of the family together):\n\n"
        table += markdown_table(families, first="family")
    if reached:
        table += ("\n\nCalls and tokens until a library's own evaluations (training minibatch "
                  "and validation, averaged per call count) first reach the best peer's final "
                  "test score:\n\n" + reach_table(reached))
    payload = {"meta": meta, "summary": rows, "families": families, "reach": reached,
               "runs": [r.__dict__ for r in records]}
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=str))
    program = meta.get("program_model") or meta["model"]
    model = meta["model"] if program == meta["model"] else (
        f"{meta['model']} (optimizer), {program} (program)")
    header = (f"Command: `{meta['command']}`  \nModel: {model}; call limit "
              f"{meta['calls']} optimizer calls per run; seeds {meta['seeds']}; "
              f"size {meta['size']}  \nMachine: {meta['machine']}; date {meta['date']}\n\n")
    (out / "results.md").write_text(header + table + "\n")
    plot(records, out / "score_vs_calls.png")
    return table


def combine(folders: list[str], out: Path) -> str:
    """Merge the runs of several result folders (e.g. one per library) into one report."""
    records: list[RunRecord] = []
    metas = []
    for folder in folders:
        payload = json.loads((Path(folder) / "results.json").read_text())
        metas.append(payload["meta"])
        records += [RunRecord(**{**run, "curve": [tuple(p) for p in run["curve"]]})
                    for run in payload["runs"]]
    seen, unique = set(), []
    for r in records:  # a reference row appears once per folder: keep one
        key = (r.task, r.framework, r.seed)
        if key not in seen:
            seen.add(key)
            unique.append(r)
    meta = {**metas[0], "command": " ; ".join(m["command"] for m in metas),
            "frameworks": sorted({f for m in metas for f in m["frameworks"]}),
            "date": ", ".join(m["date"] for m in metas),
            "total_wall_s": sum(m.get("total_wall_s", 0) for m in metas)}
    return write_results(unique, out, meta)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(SUITES), default="quick")
    parser.add_argument("--model", default="local-0.5b",
                        help="local-0.5b, local-1.5b or any litellm model name")
    parser.add_argument("--program-model", default=None,
                        help="the task programs' model, when not --model's (a teacher "
                             "optimizing a student: --model local-1.5b --program-model "
                             "local-0.5b)")
    parser.add_argument("--frameworks", default="backfeed,trace",
                        help=f"comma-separated, from {','.join(ADAPTERS)}; options after a "
                             "colon, e.g. backfeed:candidates=4")
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (0, 1, ...)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="run seeds first-seed .. first-seed + seeds - 1 (to split a run)")
    parser.add_argument("--calls", type=int, default=None,
                        help="optimizer LLM calls per run (default: quick 3, full 20, "
                             "families and code_repair 12)")
    parser.add_argument("--size", choices=("quick", "full"), default=None,
                        help="task instance size (default: the suite's, see SUITE_SIZES)")
    parser.add_argument("--tasks", default=None, help="comma-separated task names (default: suite)")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="cap on every optimizer completion, the same for all libraries "
                             "(default: quick 512, full 1024)")
    parser.add_argument("--out", default=None, help="output folder (default benchmarks/results/...)")
    parser.add_argument("--machine", default=None, help="machine description for the report")
    parser.add_argument("--verbose", action="store_true", help="print every optimizer call")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads of the local model server (default: the idle cores, see bf.llm.local.cpu_count)")
    parser.add_argument("--combine", nargs="+", default=None, metavar="FOLDER",
                        help="merge earlier result folders into --out instead of running")
    args = parser.parse_args(argv)
    if args.combine:
        if not args.out:
            parser.error("--combine needs --out")
        print(combine(args.combine, Path(args.out)))
        return
    global VERBOSE
    VERBOSE = args.verbose
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    for framework in frameworks:
        get_adapter(framework)  # fail early on an unknown name
    tasks = args.tasks.split(",") if args.tasks else SUITES[args.suite]
    size = args.size or SUITE_SIZES[args.suite]
    calls = args.calls or DEFAULT_CALLS[args.suite]
    max_tokens = args.max_tokens or (512 if size == "quick" else 1024)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out or f"benchmarks/results/{args.suite}-{stamp}")
    meta = {
        "command": "python -m benchmarks.run " + shlex.join(argv if argv is not None else
                                                            sys.argv[1:]),
        "model": args.model, "program_model": args.program_model or args.model,
        "calls": calls, "max_tokens": max_tokens, "seeds": seeds, "size": size, "tasks": tasks,
        "frameworks": frameworks, "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": args.machine or f"{platform.machine()}, {__import__('os').cpu_count()} cores",
    }
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        model = stack.enter_context(open_model(args.model, threads=args.threads))
        if args.program_model and args.program_model != args.model:
            student = stack.enter_context(open_model(args.program_model, threads=args.threads))
            model = dataclasses.replace(model, program=student.llm, program_name=student.name)
        records = run_suite(tasks, frameworks, seeds, model, size=size, calls=calls,
                            max_tokens=max_tokens,
                            on_record=lambda partial: write_results(partial, out, meta))
    meta["total_wall_s"] = round(time.perf_counter() - started, 1)
    table = write_results(records, out, meta)
    print(table)
    print(f"\nwrote {out}/results.json, results.md, score_vs_calls.png "
          f"in {meta['total_wall_s']} s")


def _short(value: Any, limit: int = 400) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "..."
    return value


def scripted_model(llm: LLM) -> ModelHandle:
    """Wrap any backfeed LLM (e.g. `bf.llm.Scripted`) as the shared model, for tests."""
    return ModelHandle(getattr(llm, "model", "scripted") or "scripted", llm)


if __name__ == "__main__":
    main()
