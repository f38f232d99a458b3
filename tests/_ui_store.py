"""A scripted training written through the run store's write API, for the ui and cli tests.

It traces a real program with backfeed, renders the trace the way an optimizer prompt holds
it, asks `bf.llm.Scripted` for suggestions, applies or rejects each one with a reason, and
records everything (candidates, evaluations, LLM calls, step reports, decisions, checkpoints)
as the trainer does.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import backfeed as bf
from backfeed.optim.base import ParamUpdate, StepReport
from backfeed.store import RunStore, values_hash

XSS_SCRIPT = "<script>window.__pwned = 1</script>"
XSS_IMG = '<img src=x onerror="window.__pwned = 2">'
PAYLOAD = f"Answer briefly. {XSS_SCRIPT} {XSS_IMG}"

EXAMPLES = [(2, 20.0), (3, 24.0), (4, 28.0)]  # input, target: the best x is 3


@bf.op
def scale(v: float, factor: int) -> float:
    """Multiply v by factor."""
    return v * factor


@bf.op
def answer(prompt: str, value: float) -> str:
    """Format the answer with the system prompt."""
    return f"{prompt[:20]} {value}"


def _program(values: dict[str, Any], example: tuple[int, float]) -> tuple[bf.Node, float, list[bf.Param]]:
    x = bf.param(values["x"], name="x", description="offset added to the input")
    prompt = bf.param(values["system_prompt"], name="system_prompt", description="system prompt")
    y = scale(x + example[0], bf.node(4, name="factor"))
    out = answer(prompt, y)
    score = -abs(y.value - example[1])
    return out, score, [x, prompt]


def _evaluate(store: RunStore, run_id: str, cid: int, values: dict[str, Any], split: str) -> list[float]:
    scores = []
    for i, ex in enumerate(EXAMPLES):
        out, score, _ = _program(values, ex)
        store.add_evaluation(
            run_id, candidate_id=cid, values_hash=values_hash(values), split=split, example_index=i,
            example=json.dumps(ex), output=str(out.value), score=score,
            feedback=f"expected {ex[1]}, got {out.value!r}; score {score}",
        )
        scores.append(score)
    return scores


def scripted_answers(payload: bool) -> list[str]:
    prompt_value = PAYLOAD if payload else "Answer briefly and show the number."
    return [
        json.dumps({"reasoning": "x is too small: raise it.", "suggestion": {
            "x": 2.0, "system_prompt": prompt_value, "temperature": 0.2}}),
        json.dumps({"reasoning": "closer; raise x again.", "suggestion": {"x": "three", "system_prompt": prompt_value + " Be exact."}}),
        json.dumps({"reasoning": "x = 3 fits every example.", "suggestion": {"x": 3.0}}),
    ]


def make_run(
    path: str | Path,
    *,
    name: str = "scripted-demo",
    strategy: str = "Pareto",
    payload: bool = False,
    finish: bool = True,
) -> str:
    """Write one three-step scripted run into the store at `path` and return its id."""
    store = RunStore(path)
    llm = bf.llm.Scripted(scripted_answers(payload))
    run_id = store.create_run({"strategy": strategy, "optimizer": "Prime", "budget": {"llm_calls": 10}}, name=name)
    values = {"x": 1.0, "system_prompt": "Answer briefly."}
    scores = _evaluate(store, run_id, 0, values, "val")
    store.add_candidate(run_id, 0, step=-1, values=values, parents=[], origin="seed", status="accepted",
                        val_score=sum(scores) / len(scores), val_scores=scores)
    best, best_id, current_id = sum(scores) / len(scores), 0, 0
    calls, tokens, usd = 0, 0, 0.0
    for step in range(3):
        started = time.time()
        _evaluate(store, run_id, current_id, values, "train")
        out, score, params = _program(values, EXAMPLES[0])
        out.backward(f"the answer should hold {EXAMPLES[0][1]}; score {score}")
        trace = bf.render(params).text
        messages = [{"role": "system", "content": "You improve parameters. Answer in JSON."},
                    {"role": "user", "content": trace}]
        reply = llm.complete(messages)
        calls, tokens, usd = calls + 1, tokens + reply.usage.prompt_tokens + reply.usage.completion_tokens, usd + 0.0012
        store.add_llm_call(run_id, step=step, request_hash=f"h{step}", occurrence=0, model="scripted",
                           messages=messages, options={}, answer=reply.text,
                           prompt_tokens=reply.usage.prompt_tokens,
                           completion_tokens=reply.usage.completion_tokens, cost_usd=0.0012,
                           cached=False, seconds=0.01)
        report = StepReport(step=step, prompts=[messages], answers=[reply.text],
                            prompt_tokens=reply.usage.prompt_tokens,
                            completion_tokens=reply.usage.completion_tokens, cost_usd=0.0012)
        parsed = json.loads(reply.text)
        report.reasoning = parsed["reasoning"]
        new_values = dict(values)
        for key, proposed in parsed["suggestion"].items():
            if key not in values:
                report.rejected.append(ParamUpdate(key, None, proposed, reason=f"unknown parameter {key!r}; known: ['system_prompt', 'x']"))
            elif key == "x" and not isinstance(proposed, int | float):
                update = ParamUpdate(key, values[key], proposed, reason=f"x is a float; cannot use {proposed!r}")
                report.updates.append(update)
                report.rejected.append(update)
            else:
                new_values[key] = proposed
                report.updates.append(ParamUpdate(key, values[key], proposed, proposed, applied=True))
        cid = step + 1
        store.add_step_report(run_id, step=step, seq=0, candidate_id=cid,
                              report=report, dot=bf.to_dot(params))
        child = _evaluate(store, run_id, cid, new_values, "val")
        child_score = sum(child) / len(child)
        accepted = child_score > best
        store.add_candidate(run_id, cid, step=step, values=new_values, parents=[current_id], origin="proposal",
                            status="accepted" if accepted else "rejected", val_score=child_score, val_scores=child)
        store.add_decision(run_id, step=step, candidate_id=cid, accepted=accepted,
                           reason="better on validation" if accepted else "no better on validation",
                           parent_score=best, child_score=child_score)
        if accepted:
            best, best_id, current_id, values = child_score, cid, cid, new_values
        store.checkpoint(run_id, step=step, parents=[cid - 1 if cid > 1 else 0], candidate=cid, accepted=accepted,
                         best_score=best, best_candidate=best_id,
                         spend={"calls": calls, "tokens": tokens, "usd": usd}, state={"step": step},
                         started_at=started)
    if finish:
        store.update_run(run_id, status="finished", stop_reason="max_steps")
    store.close()
    return run_id


# -- the same task through the real trainer (bf.train) -------------------------------------


class Calculator(bf.Module):
    """The task above as a module: an offset and a system prompt shape every answer."""

    def __init__(self) -> None:
        self.x = bf.param(1.0, name="x", description="offset added to the input")
        self.system_prompt = bf.param("Answer briefly.", name="system_prompt", description="system prompt")

    def forward(self, value: int) -> bf.Node:
        return answer(self.system_prompt, scale(self.x + value, bf.node(4, name="factor")))


def answer_metric(example: tuple[int, float], output: str) -> bf.Feedback:
    got = float(output.rsplit(" ", 1)[-1])
    return bf.Feedback(score=-abs(got - example[1]), text=f"expected {example[1]}, got {got}")


class TraceOptimizer(bf.optim.Optimizer):
    """A small real optimizer: shows its LLM the rendered trace, applies or rejects each suggestion."""

    def _step(self, report: StepReport) -> None:
        messages = [{"role": "system", "content": "You improve parameters. Answer in JSON."},
                    {"role": "user", "content": bf.render(self.params).text}]
        report.prompts.append(messages)
        completion = self.llm.complete(messages)
        report.answers.append(completion.text)
        report.prompt_tokens += completion.usage.prompt_tokens
        report.completion_tokens += completion.usage.completion_tokens
        report.cost_usd += completion.cost_usd
        parsed = json.loads(completion.text)
        report.reasoning = parsed.get("reasoning", "")
        for name, value in parsed.get("suggestion", {}).items():
            try:
                p = self.param(name)
            except KeyError as e:
                report.rejected.append(ParamUpdate(name, None, value, reason=str(e.args[0])))
                continue
            old = p.value
            try:
                p.value = value
            except (TypeError, ValueError) as e:
                update = ParamUpdate(name, old, value, old, reason=str(e))
                report.updates.append(update)
                report.rejected.append(update)
                continue
            report.updates.append(ParamUpdate(name, old, value, p.value, applied=True))


def train_run(path: str | Path, *, payload: bool = True, steps: int = 3) -> str:
    """Train `Calculator` with bf.train (Pareto search, scripted LLM) into the store at `path`."""
    answers = scripted_answers(payload)

    def reply(messages: list[dict[str, str]], options: dict[str, Any]) -> str:
        reply.n += 1  # type: ignore[attr-defined]
        return answers[reply.n - 1] if reply.n <= len(answers) else json.dumps({"suggestion": {}})

    reply.n = 0  # type: ignore[attr-defined]
    module = Calculator()
    optimizer = TraceOptimizer(module.parameters(), llm=bf.llm.Scripted([reply] * 20))
    result = bf.train(module, EXAMPLES, EXAMPLES, metric=answer_metric, optimizer=optimizer,
                      strategy=bf.search.Pareto(), steps=steps, minibatch_size=3, store=str(path),
                      name="scripted-train", progress=False)
    return result.run_id


def long_run(path: Path, steps: int) -> str:
    """A run of `steps` steps, each proposing one candidate scored a little differently."""
    store = RunStore(path)
    run_id = store.create_run({"strategy": "Pareto"}, name="long")
    store.add_candidate(run_id, 0, step=-1, values={"p": "v0"}, parents=[], origin="seed",
                        status="accepted", val_score=0.0, val_scores=[0.0, 0.0])
    best, t0 = 0, 0.0
    for step in range(steps):
        score = 2.0 if step == 333 else (step % 97) / 100  # step 333 makes the best
        store.add_candidate(run_id, step + 1, step=step, values={"p": f"v{step + 1}"},
                            parents=[best], origin="proposal", val_score=score,
                            val_scores=[score, score])
        best = step + 1 if step == 333 else best
        store.checkpoint(run_id, step=step, parents=[best], candidate=step + 1, accepted=step == 333,
                         best_score=None, best_candidate=best,
                         spend={"calls": step + 1, "usd": 0.001 * (step + 1)}, state={},
                         started_at=t0)
    store.close()
    return run_id

