"""TextGrad through its public API: Variables, StringBasedFunction, backward, TGD.

TextGrad optimizes text, so it takes tasks whose parameters are all text or code (numbers,
flags and choices are n/a). Each example is a string function (the program) followed by a
string function that returns the metric's feedback (the loss); `backward` asks the model for
textual gradients (one call per edge) and TGD rewrites each parameter (one call each).
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from collections.abc import Iterator
from typing import Any

import backfeed as bf

from ..tasks import Task
from . import MINIBATCH, RunContext, set_values, values_of

TEXT_KINDS = {"str", "code"}


@contextlib.contextmanager
def _elsewhere() -> Iterator[None]:
    """TextGrad writes ./logs when imported: import it from a scratch directory."""
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="textgrad-") as scratch:
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(here)


class TextGradAdapter:
    name = "textgrad"

    def unsupported(self, task: Task) -> str | None:
        other = task.param_kinds() - TEXT_KINDS
        if other:
            return f"TextGrad optimizes text; this task has {'/'.join(sorted(other))} parameters"
        return None

    def optimize(self, ctx: RunContext) -> None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        with _elsewhere():
            import textgrad as tg
            from textgrad.autograd import StringBasedFunction
            from textgrad.engine import EngineLM

        class Engine(EngineLM):
            model_string = "benchmark-shared-model"

            def generate(self, prompt: str, system_prompt: str | None = None, **_: Any) -> str:
                messages = [{"role": "system", "content": system_prompt or self.system_prompt},
                            {"role": "user", "content": str(prompt)}]
                return ctx.llm.complete(messages, max_tokens=ctx.max_tokens,
                                        temperature=0.0).text

            def __call__(self, prompt: str, **kwargs: Any) -> str:
                return self.generate(prompt, **kwargs)

        engine = Engine()
        tg.set_backward_engine(engine, override=True)
        program, task = ctx.program, ctx.task
        variables = {
            p.name: tg.Variable(str(p.value), requires_grad=True,
                                role_description=p.description or f"parameter {p.name}")
            for p in program.parameters()
        }
        optimizer = tg.TGD(parameters=list(variables.values()), engine=engine)

        last: dict[str, Any] = {}
        last_input: list[Any] = [None]  # the plain input (the Variable holds its text)

        def run_program(example_input: Any, **parameters: Any) -> str:
            refused = set_values(program, {k: v.value for k, v in parameters.items()})
            last.clear()
            try:
                output = task.run(program, (last_input[0], None))
            except bf.ExecutionError as exc:
                last["error"] = str(exc.error)
                return f"error: {exc.error}"
            output = output.value if isinstance(output, bf.Node) else output
            last["output"] = output
            return (f"refused values: {refused}; " if refused else "") + str(output)

        program_fn = StringBasedFunction(run_program, task.description)
        rng = random.Random(ctx.seed)
        n_params = len(variables)
        best_values, best_score = values_of(program), _validate(ctx)
        while ctx.calls_left() >= 1 + 2 * n_params:
            per_example = 1 + n_params  # loss -> output, output -> each parameter
            batch_size = max(1, min(MINIBATCH, (ctx.calls_left() - n_params) // per_example))
            batch = rng.sample(task.trainset, min(batch_size, len(task.trainset)))
            optimizer.zero_grad()
            losses = []
            for example in batch:
                x = tg.Variable(repr(example[0]), requires_grad=False,
                                role_description="input of the program")
                last_input[0] = example[0]
                output = program_fn(inputs={"example_input": x, **variables},
                                    response_role_description="output of the program")
                if "error" in last:
                    ctx.log.points.append((ctx.llm.spend.calls, 0.0))
                    feedback = bf.Feedback(0.0, f"the program raised {last['error']}")
                else:
                    feedback = ctx.metric(example, last["output"])
                loss_fn = StringBasedFunction(lambda output, text=feedback.text: text,
                                              "evaluate the output with the task's metric")
                losses.append(loss_fn(inputs={"output": output},
                                      response_role_description="evaluation of the output"))
            try:
                (tg.sum(losses) if len(losses) > 1 else losses[0]).backward()
                optimizer.step()
            except bf.BudgetExceeded:
                break
            except Exception as exc:  # an unparseable rewrite: the step is lost, as in TextGrad
                print(f"textgrad step failed: {type(exc).__name__}: {exc}"[:300], flush=True)
            set_values(program, {name: v.value for name, v in variables.items()})
            score = _validate(ctx)
            if score > best_score:
                best_score, best_values = score, values_of(program)
        set_values(program, best_values)


def _validate(ctx: RunContext) -> float:
    feedbacks = [ctx.check(example) for example in ctx.task.valset]
    return sum(f.score or 0.0 for f in feedbacks) / max(1, len(feedbacks))


ADAPTER = TextGradAdapter()
