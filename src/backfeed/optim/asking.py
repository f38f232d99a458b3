"""Asking the optimizer's model: n answers to one prompt, every request metered in the report."""

from __future__ import annotations

from typing import Any

from ..budget import RunStop
from ..llm import LLM, Completion, Message, Usage
from ..llm.wrap import answers_n
from .records import CALL, StepReport

SAMPLE_TEMPERATURE = 0.8  # the temperature of every candidate after the first


def ask_many(
    llm: LLM,
    report: StepReport,
    messages: list[Message],
    n: int,
    *,
    json_schema: dict[str, Any] | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> list[Completion]:
    """`n` answers to one prompt: the first at `temperature`, the others sampled at
    SAMPLE_TEMPERATURE. On a backend that answers one request with several (`answers_n`:
    litellm's `n`, where the provider bills the prompt once), the others come from one
    request; otherwise they are asked one after another: on the embedded model that processes
    the prompt once (the slot keeps it cached) and only generates n times; parallel slots
    would each process the whole prompt again (benchmarks/candidates.py).

    Every request is accounted in the report (`llm_calls` counts requests; `prompts` holds the
    prompt once per answer, beside it). The answers that came back, in order; empty, with
    `report.error`, when the first call failed (a later failure is one of the report's
    problems). A `RunStop` (a budget reached, a model the run cannot use) is raised, never
    recorded: it ends the run, not the step.
    """
    rest = n - 1
    requests = [(1, temperature)]
    if rest > 1 and answers_n(llm):
        requests.append((rest, SAMPLE_TEMPERATURE))
    else:
        requests += [(1, SAMPLE_TEMPERATURE)] * rest
    completions: list[Completion] = []
    for i, (count, temp) in enumerate(requests):
        report.llm_calls += 1
        try:
            options: dict[str, Any] = {"n": count} if count != 1 else {}
            completion = llm.complete(messages, json_schema=json_schema, max_tokens=max_tokens,
                                      temperature=temp, **options)
        except RunStop:
            raise
        except Exception as exc:  # a backend failure is recorded; the step goes on without it
            failure = f"{type(exc).__name__}: {exc}"
            if i == 0:
                report.prompts.append(messages)
                report.error = failure
                return []
            which = f"candidates {i}-{i + count - 1}" if count > 1 else f"candidate {i}"
            report.problem(f"{which}: the call failed: {failure}", CALL)
            continue
        report.prompt_tokens += completion.usage.prompt_tokens
        report.completion_tokens += completion.usage.completion_tokens
        report.cost_usd += completion.cost_usd
        texts = [completion.text, *completion.alternatives][:count]
        for k, text in enumerate(texts):
            report.prompts.append(messages)
            report.answers.append(text)
            # the request's tokens and cost are counted once, with its first answer
            completions.append(completion if k == 0 else Completion(
                text, Usage(), 0.0, completion.model, completion.cached))
    return completions
