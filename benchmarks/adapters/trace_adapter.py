"""Trace (`trace-opt`, import `opto`) through its public API: nodes, `@bundle`, OptoPrime.

The numerical task is traced natively (Trace's own operators on a trainable node), and a
code-repair function is Trace's own `@bundle(trainable=True)`. Other tasks wrap the task program in one `@bundle` whose inputs are the trainable nodes (code as
`__code` nodes, as Trace names them), so OptoPrime sees the values, the task description and
the output. The loop is Trace's usual one: minibatch, backward per output, step, keep the
best on validation.
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import signal
from collections.abc import Iterator
from typing import Any

import backfeed as bf

from ..tasks import Task
from ..tasks.numeric import apply_steps
from . import MINIBATCH, ChatShim, RunContext, set_values, values_of


class TraceAdapter:
    name = "trace"

    def unsupported(self, task: Task) -> str | None:
        return None

    def optimize(self, ctx: RunContext) -> None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import
        from opto.optimizers import OptoPrime
        from opto.utils.llm import AbstractModel

        shim = ChatShim(ctx.llm, ctx.max_tokens)
        llm = AbstractModel(lambda: shim)
        if ctx.task.family == "numeric":
            _numeric(ctx, OptoPrime, llm)
        elif ctx.task.family == "code_repair":
            _code_repair(ctx, OptoPrime, llm)
        else:
            _wrapped(ctx, OptoPrime, llm)


def _numeric(ctx: RunContext, OptoPrime: Any, llm: Any) -> None:
    from opto import trace

    program = ctx.program
    steps = program.steps
    x = trace.node(program.x.value, name="x", trainable=True,
                   description="the input of the computation")
    optimizer = OptoPrime([x], llm=llm, max_tokens=ctx.max_tokens)
    example = ctx.task.trainset[0]
    best = (-1.0, program.x.value)

    def absolute(a):
        """abs(a)"""
        return abs(a)

    absolute.__qualname__ = "absolute"  # Trace shows the qualified name in its prompt
    absolute = trace.bundle()(absolute)

    overrides = {"abs": absolute}  # Trace 0.1.3.8's own abs recurses forever
    while ctx.calls_left() > 0:
        try:
            y = apply_steps(steps, x, overrides)
            feedback = ctx.metric(example, y.data)
        except trace.ExecutionError as exc:
            y, feedback = exc.exception_node, bf.Feedback(0.0, f"error: {exc}")
        if feedback.score is not None and feedback.score > best[0] and _is_number(x.data):
            best = (feedback.score, float(x.data))
        optimizer.zero_feedback()
        optimizer.backward(y, feedback.text)
        if not _step(optimizer):
            break
    if _is_number(x.data):  # score the last proposal too
        score = ctx.metric(example, apply_steps(steps, float(x.data))).score or 0.0
        if score > best[0]:
            best = (score, float(x.data))
    program.x.value = best[1]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _wrapped(ctx: RunContext, OptoPrime: Any, llm: Any) -> None:
    from opto import trace

    program, task = ctx.program, ctx.task
    names = {}
    nodes = {}
    for p in program.parameters():
        key = f"__code_{p.name}" if p.kind == "code" else p.name
        names[key] = p.name
        nodes[key] = trace.node(p.value, name=key, trainable=True,
                                description=p.description or None)

    def run_program(example_input: Any, **parameters: Any) -> Any:
        refused = set_values(program, {names[k]: v for k, v in parameters.items()})
        try:
            output = task.run(program, (example_input, None))
        except bf.ExecutionError as exc:
            return {"error": str(exc.error), "refused_values": refused}
        output = output.value if isinstance(output, bf.Node) else output
        return {"output": output, "refused_values": refused} if refused else output

    run_program.__doc__ = task.description
    run_program.__qualname__ = "run_program"
    run = trace.bundle()(run_program)

    def run_example(example: Any) -> tuple[Any, bf.Feedback]:
        output = run(example[0], **nodes)
        data = output.data
        if isinstance(data, dict) and "error" in data and len(data) == 2:
            ctx.log.points.append((ctx.llm.spend.calls, 0.0))
            return output, bf.Feedback(0.0, f"the program raised {data['error']}")
        inner = data["output"] if isinstance(data, dict) and "refused_values" in data else data
        return output, ctx.metric(example, inner)

    optimizer = OptoPrime(list(nodes.values()), llm=llm, max_tokens=ctx.max_tokens)
    _train(ctx, optimizer, run_example,
           lambda: set_values(program, {names[k]: n.data for k, n in nodes.items()}))


def _code_repair(ctx: RunContext, OptoPrime: Any, llm: Any) -> None:
    """The buggy function as Trace's own trainable bundle, called on each test's arguments
    (Trace runs the code in-process: a time limit stops code that never returns)."""
    from opto import trace

    from ..tasks.code_repair import BY_NAME, Raised

    program, task = ctx.program, ctx.task
    bug = BY_NAME[task.info["function"]]
    function = trace.bundle(description=f"[{bug.name}] {bug.spec}", trainable=True)(bug.function)
    (code,) = function.parameters()

    def run_example(example: Any) -> tuple[Any, bf.Feedback]:
        try:
            with _time_limit(2.0):
                output = function(*copy.deepcopy(example[0]))
            value = output.data
        except trace.ExecutionError as exc:
            output = exc.exception_node
            value = Raised(str(exc.exception_node.data))
        return output, ctx.metric(example, value)

    optimizer = OptoPrime([code], llm=llm, max_tokens=ctx.max_tokens)
    _train(ctx, optimizer, run_example, lambda: set_values(program, {bug.name: code.data}))


def _train(ctx: RunContext, optimizer: Any, run_example: Any, read_back: Any) -> None:
    """Trace's loop: a minibatch, one joined feedback, a step, validation; the best kept.

    `run_example(example) -> (output node, bf.Feedback)`; `read_back()` copies the optimizer's
    values into the program.
    """
    from opto import trace

    def batchify(*outputs):
        """The outputs of the minibatch, in order."""
        return list(outputs)

    batchify.__qualname__ = "batchify"
    batchify = trace.bundle()(batchify)
    program, task = ctx.program, ctx.task
    rng = random.Random(ctx.seed)
    best_values, best_score = values_of(program), _validate(ctx)
    while ctx.calls_left() > 0:
        batch = rng.sample(task.trainset, min(MINIBATCH, len(task.trainset)))
        outputs, texts = [], []
        for i, example in enumerate(batch, start=1):
            output, feedback = run_example(example)
            outputs.append(output)
            texts.append(f"Example {i}: score {feedback.score:.3g}: {feedback.text}")
        # Trace 0.1.3.8 needs one feedback per step: join the batch as its examples do
        optimizer.zero_feedback()
        optimizer.backward(batchify(*outputs), "\n".join(texts))
        if not _step(optimizer):
            break
        read_back()
        score = _validate(ctx)
        if score > best_score:
            best_score, best_values = score, values_of(program)
    set_values(program, best_values)


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in the main thread after `seconds` (Trace records it as the error)."""

    def expire(*_: Any) -> None:
        raise TimeoutError(f"the call did not return within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _step(optimizer: Any) -> bool:
    """One OptoPrime step; False once the call limit is reached. A step that crashes on the
    model's answer (OptoPrime 0.1.3.8 does, e.g. on a list proposed for code) is lost, and the
    run goes on, as it would for a user who catches it."""
    try:
        optimizer.step()
    except bf.BudgetExceeded:
        return False
    except Exception as exc:
        print(f"trace step failed: {type(exc).__name__}: {exc}"[:300], flush=True)
    return True


def _validate(ctx: RunContext) -> float:
    feedbacks = [ctx.check(example) for example in ctx.task.valset]
    return sum(f.score or 0.0 for f in feedbacks) / max(1, len(feedbacks))


ADAPTER = TraceAdapter()
