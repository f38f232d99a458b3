"""DSPy through its public API: a `dspy.Predict` program optimized by MIPROv2 (default) or
COPRO, instructions only.

DSPy optimizes programs made of LM calls, so it takes the tasks whose program is one model
call (prompt tasks and verbalized ML); code, numbers and choices are n/a. Its program is its
own (a signature `input -> answer` whose instructions start as the task's initial text), so
the harness scores DSPy's optimized program on the test split through `ctx.final_forward`.

Options: `optimizer=mipro` (MIPROv2, DSPy's strongest instruction optimizer that installs
here: grounded instruction proposals, then Bayesian search over them on the validation
split) or `optimizer=copro`. MIPROv2 runs zero-shot (no demos: every library here optimizes
the instruction alone) with `call_limit - 4` candidates. Counted with a fake model, its
proposer makes candidates + 2 calls (a dataset summary in 2) with 8 training examples; the
other 2 calls are slack for DSPy's JSON-adapter retry after an answer it cannot parse.
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

from ..tasks import Task
from . import RunContext


class DspyAdapter:
    name = "dspy"
    options = ("optimizer",)

    def unsupported(self, task: Task) -> str | None:
        if task.family == "code_repair":
            # Checked with dspy 3.4: Signature("a -> b", instructions="def f(n):\n    return n")
            # .instructions == "def f(n):\nreturn n", so COPRO could not keep a body intact.
            return ("DSPy holds instructions as a docstring (inspect.cleandoc dedents every "
                    "line after the first), so a function's body loses its indentation")
        if not task.uses_llm or task.param_kinds() != {"str"}:
            return "DSPy optimizes LM-call programs; this task's parameters are code or numbers"
        return None

    def optimize(self, ctx: RunContext) -> None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        os.environ.setdefault("DSPY_CACHEDIR", os.path.join(os.path.expanduser("~"), ".cache",
                                                            "dspy-bench"))
        import dspy

        program_llm = ctx.program.llm  # the task program's (metered) model
        task_lm = _shim_lm(dspy, program_llm, 512)
        prompt_lm = _shim_lm(dspy, ctx.llm, ctx.max_tokens)
        (initial,) = [p.value for p in ctx.program.parameters()]
        signature = dspy.Signature("input -> answer", instructions=initial)
        student = dspy.Predict(signature)

        def metric(example: Any, prediction: Any, trace: Any = None) -> float:
            feedback = ctx.metric((example.input, example.target), prediction.answer)
            return float(feedback.score or 0.0)

        trainset = [dspy.Example(input=_text(x), target=y).with_inputs("input")
                    for x, y in ctx.task.trainset]
        valset = [dspy.Example(input=_text(x), target=y).with_inputs("input")
                  for x, y in ctx.task.valset]
        which = ctx.options.get("optimizer", "mipro")
        with dspy.context(lm=task_lm):
            if which == "copro":
                depth = max(1, (ctx.call_limit - 1) // 2)  # 1 call to start, then 2 a depth
                optimizer = dspy.COPRO(prompt_model=prompt_lm, metric=metric, breadth=2,
                                       depth=depth, init_temperature=1.0)
                optimized = optimizer.compile(student, trainset=trainset,
                                              eval_kwargs={"num_threads": 1,
                                                           "display_progress": False})
            elif which == "mipro":
                candidates = max(2, ctx.call_limit - 4)
                optimizer = dspy.MIPROv2(metric=metric, prompt_model=prompt_lm,
                                         task_model=task_lm, auto=None,
                                         num_candidates=candidates, max_bootstrapped_demos=0,
                                         max_labeled_demos=0, num_threads=1, seed=ctx.seed,
                                         verbose=False)
                optimized = optimizer.compile(
                    student, trainset=trainset, valset=valset or None, num_trials=candidates,
                    minibatch=False, program_aware_proposer=False, data_aware_proposer=True,
                    fewshot_aware_proposer=False, requires_permission_to_run=False)
            else:
                raise ValueError(f"dspy: optimizer must be mipro or copro, got {which!r}")

        def final_forward(x: Any) -> str:
            with dspy.context(lm=task_lm):
                return optimized(input=_text(x)).answer

        ctx.final_forward = final_forward
        instructions = optimized.signature.instructions
        ctx.program.parameters()[0].value = instructions


def _text(x: Any) -> str:
    if isinstance(x, tuple | list) and len(x) == 2:
        return f"x1 = {x[0]}, x2 = {x[1]}"
    return str(x) if not isinstance(x, int | float) else f"x = {x}"


def _shim_lm(dspy: Any, llm: Any, max_tokens: int) -> Any:
    """A DSPy LM whose calls go through a backfeed LLM (and so through the shared meter)."""

    class ShimLM(dspy.BaseLM):
        def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
            messages = messages or [{"role": "user", "content": prompt}]
            choices, prompt_tokens, completion_tokens = [], 0, 0
            for _ in range(int(kwargs.get("n", 1) or 1)):
                completion = llm.complete(
                    [{"role": m["role"], "content": str(m["content"])} for m in messages],
                    max_tokens=min(int(kwargs.get("max_tokens") or max_tokens), max_tokens),
                    temperature=kwargs.get("temperature", 0.0),
                )
                prompt_tokens += completion.usage.prompt_tokens
                completion_tokens += completion.usage.completion_tokens
                message = SimpleNamespace(content=completion.text, role="assistant",
                                          tool_calls=None)
                choices.append(SimpleNamespace(message=message, finish_reason="stop",
                                               index=len(choices)))
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                     "total_tokens": prompt_tokens + completion_tokens}
            return SimpleNamespace(choices=choices, usage=usage, model=self.model)

    return ShimLM(model="benchmark-shared-model", model_type="chat", temperature=0.0,
                  max_tokens=max_tokens, cache=False)


ADAPTER = DspyAdapter()
