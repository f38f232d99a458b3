"""What a run is expected to cost, measured from one probe step before the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._tokens import estimate_tokens
from ..llm import Wrapper
from ..llm.context import running
from ..optim import Optimizer
from .evaluate import install_capture, run_one, uninstall_capture
from .record import Probe


@dataclass(frozen=True)
class Estimate:
    """What a run is expected to cost, with a range (low, high) around each expectation."""

    steps: int
    llm_calls: tuple[int, int]
    tokens: tuple[int, int]
    usd: tuple[float, float] | None  # None: the model's price is unknown
    metric_calls: tuple[int, int]
    expected: dict[str, float] = field(default_factory=dict)
    basis: list[str] = field(default_factory=list)  # how each figure was found

    def __str__(self) -> str:
        usd = "unknown price" if self.usd is None else f"${self.usd[0]:.4f}-${self.usd[1]:.4f}"
        program = self.expected.get("program_calls", 0)
        of = f" (~{program:,.0f} by the program)" if program else ""
        return (f"~{self.steps} steps: {self.llm_calls[0]}-{self.llm_calls[1]} LLM calls{of}, "
                f"{self.tokens[0]:,}-{self.tokens[1]:,} tokens, {usd}, "
                f"{self.metric_calls[0]}-{self.metric_calls[1]} metric calls")


def _probe_step(trainer: Any) -> tuple[Probe, Probe, int]:
    """One optimizer step on the seed's first minibatch against probe models that pay
    nothing: (the optimizer's probe, the program's probe, the examples run). The program's
    `bf.chat` calls, with a model given or not, go to its probe, which answers "" (or `{}`
    under a JSON schema). The module, the optimizer and its model are as before afterwards."""
    module, optimizer, strategy = trainer.module, trainer.optimizer, trainer.strategy
    module_state = module.state_dict()
    optimizer_state = optimizer.state_dict()
    llm = optimizer.llm
    probe = Probe(getattr(llm, "model", "probe"))
    program = Probe("program", answer="", json_answer="{}")
    examples = min(trainer.minibatch_size, len(trainer.trainset))
    install_capture()
    try:
        optimizer.zero_feedback()
        for i in range(examples):
            metric = None if strategy.pairwise else trainer.metric
            with running(program):
                t = run_one(module, trainer.trainset[i], i, metric, trainer.forward)
            fb = "Improve this output." if strategy.pairwise else t.feedback
            if t.node is not None and fb is not None:
                t.node.backward(fb)
        with Optimizer.calls_through(probe):
            optimizer.step()
    finally:
        optimizer.zero_feedback()
        optimizer.load_state_dict(optimizer_state)
        module.load_state_dict(module_state)
        uninstall_capture()
    return probe, program, examples


def estimate(trainer: Any, *, price: tuple[float, float] | None = None) -> Estimate:
    """Expected LLM calls, tokens, dollars and metric calls of `trainer`'s run.

    The prompt size is measured by one probe step, not guessed. The program's own model calls
    per evaluation are counted on the same minibatch with a probe model (a program whose calls
    depend on the answers may make more or fewer); every evaluation is expected to make as
    many, at the measured prompt size and `max_tokens` (else 200) completion tokens each.
    `basis` says how each figure was found. `price` is (USD per 1M prompt tokens, per 1M
    completion tokens); without it, an `estimate_cost(prompt_tokens, completion_tokens)`
    method of the model is used when it has one (for the optimizer's calls). Each figure's
    range is half to twice the expectation.
    """
    probe, program, examples = _probe_step(trainer)
    strategy, budget = trainer.strategy, trainer.budget
    calls_per_step = max(1, len(probe.requests)) * strategy.proposals
    prompt = sum(estimate_tokens(m.get("content", "")) for msgs, _ in probe.requests
                 for m in msgs) / max(1, len(probe.requests))
    max_tokens = [o["max_tokens"] for _, o in probe.requests if o.get("max_tokens")]
    value_tokens = estimate_tokens(str(trainer.module.state_dict()))
    completion = min(max_tokens[0], value_tokens + 30) if max_tokens else value_tokens + 30
    val_n = len(trainer.val_examples)
    per_step = trainer.minibatch_size * (1 + strategy.proposals) + val_n / 2
    judge_calls = trainer.minibatch_size * 2 if strategy.pairwise else 0
    per_evaluation = len(program.requests) / max(1, examples)
    program_prompt = sum(estimate_tokens(m.get("content", "")) for msgs, _ in program.requests
                         for m in msgs) / max(1, len(program.requests))
    program_completion = sum(o.get("max_tokens") or 200 for _, o in program.requests) \
        / max(1, len(program.requests))
    # a call budget is spent by the program's calls too: the seed's validation, then each step
    step_calls = calls_per_step + judge_calls + per_step * per_evaluation
    step_tokens = (calls_per_step + judge_calls) * (prompt + completion) + \
        per_step * per_evaluation * (program_prompt + program_completion)
    steps = _expected_steps(trainer.steps, budget, step_calls, step_tokens, per_step, val_n,
                            fixed_calls=val_n * per_evaluation)
    optimizer_calls = steps * (calls_per_step + judge_calls)
    metric = val_n + steps * per_step
    if budget.metric_calls is not None:
        metric = min(metric, budget.metric_calls)
    program_calls = per_evaluation * metric
    if budget.llm_calls is not None:
        program_calls = min(program_calls, max(0, budget.llm_calls - optimizer_calls))
    calls = optimizer_calls + round(program_calls)
    tokens = optimizer_calls * (prompt + completion) + \
        program_calls * (program_prompt + program_completion)
    basis = [
        f"optimizer: {calls_per_step} call(s) a step, measured by one probe step "
        f"(~{prompt:,.0f} prompt tokens each)",
        f"program: {per_evaluation:g} call(s) per evaluation, counted on {examples} training "
        "example(s) with a probe model (no model paid)" + (
            f", ~{program_prompt:,.0f} prompt tokens each" if program.requests else ""),
        f"evaluations: {metric:,.0f} ({val_n} to validate the seed, ~{per_step:g} a step)",
    ]
    usd_each = None
    priced = _priced(trainer.optimizer.llm)
    if price is not None:
        usd_each = (prompt * price[0] + completion * price[1]) / 1e6
    elif priced is not None:
        usd_each = float(priced.estimate_cost(int(prompt), int(completion)))
    spent = None
    if usd_each is not None:
        spent = optimizer_calls * usd_each
        if price is not None:
            per_call = program_prompt * price[0] + program_completion * price[1]
            spent += program_calls * per_call / 1e6
        elif program_calls:
            basis.append("usd: the optimizer's calls only (pass price= to count the program's)")
    usd = None if spent is None else (spent / 2, spent * 2)
    return Estimate(
        steps=steps,
        llm_calls=(max(0, calls // 2), calls * 2),
        tokens=(int(tokens / 2), int(tokens * 2)),
        usd=usd,
        metric_calls=(int(metric / 2), int(metric * 2)),
        expected={"llm_calls": calls, "tokens": tokens, "prompt_tokens_per_call": prompt,
                  "completion_tokens_per_call": completion, "metric_calls": metric,
                  "program_calls": program_calls,
                  "program_calls_per_evaluation": per_evaluation,
                  "usd": spent},
        basis=basis,
    )


def _priced(llm: Any) -> Any:
    """The backend under any wrappers, when it can price a call; else None."""
    inner = llm.unwrap() if isinstance(llm, Wrapper) else llm
    return inner if callable(getattr(inner, "estimate_cost", None)) else None


def _expected_steps(steps: int | None, budget: Any, calls_per_step: float,
                    tokens_per_step: float, metric_per_step: float, val_n: int,
                    fixed_calls: float = 0.0) -> int:
    bounds = [] if steps is None else [steps]
    if budget.llm_calls is not None:
        bounds.append(int(max(0.0, budget.llm_calls - fixed_calls) // calls_per_step))
    if budget.tokens is not None:
        bounds.append(int(budget.tokens // max(1.0, tokens_per_step)))
    if budget.metric_calls is not None:
        bounds.append(int(max(0, budget.metric_calls - val_n) // max(1.0, metric_per_step)))
    if budget.patience is not None and not bounds:
        bounds.append(budget.patience * 2)
    return max(0, min(bounds)) if bounds else 0
