"""GEPA through its public API: `gepa.optimize` with a `GEPAAdapter` over the task program.

GEPA evolves named texts, so it takes tasks whose parameters are all text or code; numbers,
flags and choices (the numeric and scikit-learn tasks) are reported as n/a.
"""

from __future__ import annotations

import os
from typing import Any

import backfeed as bf

from ..tasks import Example, Task
from . import MINIBATCH, RunContext, set_values, text_of

TEXT_KINDS = {"str", "code"}


class GepaAdapter:
    name = "gepa"

    def unsupported(self, task: Task) -> str | None:
        other = task.param_kinds() - TEXT_KINDS
        if other:
            return f"GEPA optimizes texts; this task has {'/'.join(sorted(other))} parameters"
        return None

    def optimize(self, ctx: RunContext) -> None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import gepa

        seed_candidate = {p.name: text_of(p.value) for p in ctx.program.parameters()}

        def reflection_lm(prompt: str) -> str:
            messages = [{"role": "user", "content": prompt}]
            return ctx.llm.complete(messages, max_tokens=ctx.max_tokens, temperature=0.0).text

        result = gepa.optimize(
            seed_candidate=seed_candidate,
            trainset=list(ctx.task.trainset),
            valset=list(ctx.task.valset),
            adapter=_ProgramAdapter(ctx),
            reflection_lm=reflection_lm,
            reflection_minibatch_size=MINIBATCH,
            stop_callbacks=[_Stop(ctx)],
            raise_on_exception=False,  # a refused call past the limit ends the run, not the result
            seed=ctx.seed,
            display_progress_bar=False,
        )
        set_values(ctx.program, dict(result.best_candidate))


class _Stop:
    """Stop at the call limit, or when iterations keep passing without any call (a stuck run)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.iterations = 0

    def __call__(self, state: Any) -> bool:
        self.iterations += 1
        return self.ctx.calls_left() <= 0 or self.iterations > 3 * self.ctx.call_limit + 5


class _ProgramAdapter:
    """GEPA's adapter protocol over a backfeed task program."""

    propose_new_texts = None  # GEPA's own reflective proposer writes the new texts

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def evaluate(self, batch: list[Example], candidate: dict[str, str],
                 capture_traces: bool = False) -> Any:
        from gepa import EvaluationBatch

        refused = set_values(self.ctx.program, candidate)
        outputs, scores, trajectories = [], [], []
        for example in batch:
            if refused:
                output, feedback = None, bf.Feedback(0.0, "refused: " + "; ".join(refused))
            else:
                try:
                    output = self.ctx.task.run(self.ctx.program, example)
                    output = output.value if isinstance(output, bf.Node) else output
                    feedback = self.ctx.metric(example, output)
                except bf.ExecutionError as exc:
                    output, feedback = None, bf.Feedback(0.0, f"the program raised {exc.error}")
            outputs.append(output)
            scores.append(float(feedback.score or 0.0))
            trajectories.append({"input": example[0], "output": output,
                                 "feedback": feedback.text})
        return EvaluationBatch(outputs=outputs, scores=scores,
                               trajectories=trajectories if capture_traces else None)

    def make_reflective_dataset(self, candidate: dict[str, str], eval_batch: Any,
                                components_to_update: list[str]) -> dict[str, list[dict]]:
        records = [
            {"Inputs": _short(t["input"]), "Generated Outputs": _short(t["output"]),
             "Feedback": t["feedback"]}
            for t in eval_batch.trajectories or []
        ]
        return {name: records for name in components_to_update}


def _short(value: Any, limit: int = 1500) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + " ..."


ADAPTER = GepaAdapter()
