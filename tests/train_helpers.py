"""Shared pieces for the training tests: a deterministic task, a test optimizer and its script.

The task has examples of several kinds; kind k is right only when parameter p<k> holds
"right-<k>". The scripted "LLM" reads the feedback in the prompt and, like an overfitting model,
fixes the first failing kind it sees while resetting every other parameter to its start value,
so examples need different fixes that must be combined.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import backfeed as bf
from backfeed.optim import Optimizer, ParamUpdate, StepReport

KINDS = ("a", "b", "c")


@bf.op
def route(kind: str, pa: str, pb: str, pc: str) -> str:
    """Return the setting of the parameter for this kind."""
    return {"a": pa, "b": pb, "c": pc}[kind]


class Router(bf.Module):
    def __init__(self) -> None:
        self.pa = bf.param("start", name="pa")
        self.pb = bf.param("start", name="pb")
        self.pc = bf.param("start", name="pc")

    def forward(self, kind: str) -> Any:
        if kind == "boom":
            raise RuntimeError("kind boom is not supported")
        if kind == "loud":
            print("routing a loud example")
        return route(kind, self.pa, self.pb, self.pc)


def dataset(n_per_kind: int = 2, kinds: tuple[str, ...] = KINDS) -> list[tuple[str, int]]:
    return [(k, i) for i in range(n_per_kind) for k in kinds]


def metric(example: tuple[str, int], output: str) -> bf.Feedback:
    kind = example[0]
    _maybe_hang("METRIC")
    _count("METRIC_LOG")
    if output == f"right-{kind}":
        return bf.Feedback(score=1.0, text="correct")
    return bf.Feedback(score=0.0, text=f"needs p{kind}=right-{kind}")


def _count(var: str) -> None:
    """Append a line to the file named by $var (survives SIGKILL of the process)."""
    path = os.environ.get(var)
    if path:
        with open(path, "a") as f:
            f.write("x\n")


def _maybe_hang(what: str) -> None:
    """With $HANG_<what>_AT=n, the call after n completed ones marks $HANG_MARK and hangs."""
    hang = os.environ.get(f"HANG_{what}_AT")
    log = os.environ.get(f"{what}_LOG")
    if hang and log and os.path.exists(log) and sum(1 for _ in open(log)) >= int(hang):
        open(os.environ["HANG_MARK"], "w").close()
        time.sleep(600)


class FixOptimizer(Optimizer):
    """A tiny real optimizer: shows values and feedback to its LLM, applies its JSON suggestion."""

    def _step(self, report: StepReport) -> None:
        values = {p.name: p.value for p in self.params}
        lines: dict[str, None] = {}
        for p in self.params:
            for _, fb in p.feedback:
                if fb.text:
                    lines[fb.text] = None
        messages = [{"role": "user", "content": f"Values: {json.dumps(values, sort_keys=True)}\n"
                     "Feedback:\n" + "\n".join(lines) + "\nAnswer {\"suggestion\": {...}}"}]
        report.prompts.append(messages)
        try:
            completion = self.llm.complete(messages, max_tokens=64)
        except bf.RunStop:  # a budget reached or a model the run cannot use: the run stops
            raise
        except Exception as e:  # an optimizer turns model failures into a report
            report.error = str(e)
            return
        report.answers.append(completion.text)
        report.prompt_tokens += completion.usage.prompt_tokens
        report.completion_tokens += completion.usage.completion_tokens
        report.cost_usd += completion.cost_usd
        suggestion = json.loads(completion.text).get("suggestion", {})
        for name, value in suggestion.items():
            try:
                p = self.param(name)
            except KeyError as e:
                report.rejected.append(ParamUpdate(name, None, value, reason=str(e)))
                continue
            old = p.value
            p.value = value
            report.updates.append(ParamUpdate(name, old, value, value, True))


def overfit_answer(messages: list[dict[str, str]], options: dict[str, Any]) -> str:
    """Fix the first failing kind named in the feedback; reset every other parameter."""
    _maybe_hang("LLM")
    _count("LLM_LOG")
    text = messages[-1]["content"]
    for line in text.splitlines():
        if line.startswith("needs "):
            name, value = line[len("needs "):].split("=")
            return json.dumps({"suggestion": {p: value if p == name else "start"
                                              for p in ("pa", "pb", "pc")}})
    return json.dumps({"suggestion": {}})


def scripted(n: int = 500, cost: float = 0.0) -> bf.llm.Scripted:
    if cost:
        def priced(messages: list[dict[str, str]], options: dict[str, Any]) -> bf.llm.Completion:
            text = overfit_answer(messages, options)
            prompt = sum(len(m["content"]) for m in messages) // 4
            return bf.llm.Completion(text, bf.llm.Usage(prompt, len(text) // 4), cost, "priced")
        return bf.llm.Scripted([priced] * n)
    return bf.llm.Scripted([overfit_answer] * n)


def decisions_of(store: Any, run_id: str) -> dict[str, Any]:
    """What a run decided (steps, candidates, decisions, evaluations), without timestamps."""
    return {
        "steps": [(s.step, s.parents, s.candidate, s.accepted, s.best_score)
                  for s in store.steps(run_id)],
        "candidates": [(c.id, c.values, c.parents, c.origin, c.status, c.val_scores)
                       for c in store.candidates(run_id)],
        "decisions": [(d.step, d.candidate_id, d.accepted, d.reason, d.parent_score,
                       d.child_score) for d in store.decisions(run_id)],
        "evaluations": sorted((e.values_hash, e.split, e.example_index, e.score, e.feedback,
                               e.output, e.error, e.stdout) for e in store.evaluations(run_id)),
    }


def run(store: str, *, seed: int = 0, steps: int = 12, strategy: Any = None,
        resume: str | None = None, budget: bf.Budget | None = None,
        executor: Any = None, kinds: tuple[str, ...] = KINDS) -> Any:
    module = Router()
    data = dataset(2, kinds)
    opt = FixOptimizer(module.parameters(), llm=scripted())
    return bf.train(module, data, data, metric=metric, optimizer=opt,
                    strategy=strategy or bf.search.Pareto(), budget=budget, steps=steps,
                    seed=seed, store=store, resume=resume, minibatch_size=2,
                    executor=executor, progress=False)


if __name__ == "__main__":  # the subprocess of the SIGKILL test: python train_helpers.py DB [RUN]
    import sys

    result = run(sys.argv[1], resume=sys.argv[2] if len(sys.argv) > 2 else None)
    print(json.dumps({"run_id": result.run_id, "best": result.best_score}))
