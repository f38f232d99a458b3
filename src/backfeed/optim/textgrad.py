"""TextGrad-style: textual gradients for the nodes of the trace (batched), then one update per
parameter."""

from __future__ import annotations

from typing import Any

from ..graph import Node, Param, RenderBudgetError, minimal_subgraph, render
from ..llm import LLM, Message
from . import prompts
from .apply import values_proposal
from .base import Optimizer
from .parse import parse_answer, read_answer
from .records import PARSE, Problem, Proposal, StepReport
from .schema import (
    answer_format,
    answer_limit,
    answer_schema_for,
    clip,
    gradients_schema,
    partial_edits,
    shown_in_part,
    values_text,
)


class TextGrad(Optimizer):
    """Ask for a criticism ("textual gradient") of each node on the paths from the parameters
    to the outputs, `batch_size` nodes per call and outputs first, so a chain of n ops costs
    about n / batch_size calls, not 2n. At most `max_gradient_calls` such calls: beyond that
    the nodes nearest the parameters are kept. Then one update call per parameter, given its
    own criticism and that of the nodes it feeds. Values are applied only if every call of the
    step succeeded. `candidates=n` samples n answers to each update call; candidate i takes
    the i-th answer for every parameter.
    """

    def __init__(
        self,
        params: list[Param] | Any,
        llm: LLM | None = None,
        *,
        budget_tokens: int = 4000,
        batch_size: int = 16,
        max_gradient_calls: int = 2,
        gradient_chars: int = 200,
        reasoning_chars: int = 200,
        value_chars: int = 2000,
        temperature: float | None = None,
        candidates: int = 1,
    ) -> None:
        super().__init__(params, llm)
        if batch_size < 1 or max_gradient_calls < 1 or candidates < 1:
            raise ValueError("batch_size, max_gradient_calls and candidates must be at least 1")
        self.candidates = candidates
        self.budget_tokens = budget_tokens
        self.batch_size = batch_size
        self.max_gradient_calls = max_gradient_calls
        self.gradient_chars = gradient_chars
        self.reasoning_chars = reasoning_chars
        self.value_chars = value_chars
        self.temperature = temperature

    def batches(self) -> tuple[list[list[str]], dict[str, list[str]], str]:
        """(node-name batches, each parameter's consumers by name, rendered trace)."""
        subgraph = minimal_subgraph(self.params)
        rendering = render(subgraph, budget_tokens=self.budget_tokens // 2)
        names = rendering.names
        ops: list[Node] = [n for n in subgraph.nodes if n.op is not None and id(n) in names]
        capacity = self.batch_size * self.max_gradient_calls - len(self.params)
        if len(ops) > max(capacity, 0):
            keep = {id(n) for n in sorted(ops, key=lambda n: subgraph.distance.get(n, 0))
                    [: max(capacity, 0)]}
            ops = [n for n in ops if id(n) in keep]
        order = [names[id(n)] for n in reversed(ops)] + [p.name for p in self.params]
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        consumers: dict[str, list[str]] = {p.name: [] for p in self.params}
        for n in ops:
            for _, child in n.inputs:
                if isinstance(child, Param) and child.name in consumers:
                    consumers[child.name].append(names[id(n)])
        return batches, consumers, rendering.text

    def _propose(self, report: StepReport) -> list[Proposal]:
        try:
            batches, consumers, trace = self.batches()
        except RenderBudgetError as exc:
            report.error = f"trace does not fit budget_tokens={self.budget_tokens}: {exc}"
            return []
        gradients: dict[str, str] = {}
        for batch in batches:
            completion = self._ask(
                report,
                self._gradient_messages(trace, batch, gradients),
                json_schema=gradients_schema(batch, self.gradient_chars),
                max_tokens=len(batch) * (self.gradient_chars // 3 + 12) + 32,
                temperature=self.temperature,
            )
            if completion is None:
                return []
            answer = parse_answer(completion.text)
            report.problems.extend(Problem(p, PARSE) for p in answer.problems)
            found = (answer.data or {}).get("gradients")
            if not isinstance(found, dict):
                report.problem(f"gradients: no `gradients` object for {batch}", PARSE)
                continue
            for name in batch:
                if name in found:
                    gradients[name] = clip(str(found[name]), self.gradient_chars * 2)
        suggestions: list[dict[str, Any]] = [{} for _ in range(self.candidates)]
        reasons: list[str] = []
        for p in self.params:
            completions = self._ask_many(
                report,
                self._update_messages(p, gradients, consumers[p.name]),
                self.candidates,
                json_schema=answer_schema_for([p], self.reasoning_chars),
                max_tokens=answer_limit([p], self.reasoning_chars, self.budget_tokens,
                                        edits=shown_in_part([p], self.value_chars)),
                temperature=self.temperature,
            )
            if not completions:
                return []  # nothing proposed: report.error says why
            for i, completion in enumerate(completions):
                answer = read_answer(completion.text, [p])
                where = p.name if i == 0 else f"candidate {i}: {p.name}"
                report.problems.extend(Problem(f"{where}: {problem}", PARSE)
                                       for problem in answer.problems)
                if p.name not in answer.suggestion and "value" in (answer.data or {}):
                    answer.suggestion[p.name] = answer.data["value"]  # type: ignore[index]
                if p.name in answer.suggestion:
                    suggestions[i][p.name] = answer.suggestion[p.name]
                else:
                    report.problem(f"{where}: the answer has no new value", PARSE)
                if answer.reasoning and i == 0:
                    reasons.append(f"{p.name}: {answer.reasoning}")
        report.details["gradients"] = gradients
        cut = shown_in_part(self.params, self.value_chars)
        start = self.values()
        reasoning = "\n".join(reasons)
        return [values_proposal(self.params, start, s, by=self.name, partial=cut,
                                reasoning=reasoning) for s in suggestions]

    def _gradient_messages(
        self, trace: str, batch: list[str], gradients: dict[str, str]
    ) -> list[Message]:
        downstream = "\n".join(f"{k}: {v}" for k, v in gradients.items()) or "(none yet)"
        downstream = clip(downstream, self.budget_tokens // 4 * 4, tail=True)
        user = prompts.TEXTGRAD_GRADIENTS.render(
            trace=trace,
            downstream=downstream,
            nodes=", ".join(batch),
            gradient_chars=self.gradient_chars,
        )
        return [
            {"role": "system", "content": prompts.TEXTGRAD_SYSTEM.render()},
            {"role": "user", "content": user},
        ]

    def _update_messages(
        self, p: Param, gradients: dict[str, str], consumers: list[str]
    ) -> list[Message]:
        feedback = "; ".join(dict.fromkeys(str(fb) for _, fb in p.feedback)) or "(none)"
        downstream = "\n".join(f"{c}: {gradients[c]}" for c in consumers if c in gradients)
        user = prompts.TEXTGRAD_UPDATE.render(
            name=p.name,
            kind=p.kind,
            description=p.description or "(no description)",
            value=values_text({p.name: p._value}, [p], self.value_chars),
            gradient=gradients.get(p.name, "(none)"),
            downstream=downstream or "(none)",
            feedback=clip(feedback, self.value_chars),
            answer_format=answer_format(
                [p], self.reasoning_chars,
                partial_edits([p], self.value_chars)),
        )
        return [
            {"role": "system", "content": prompts.TEXTGRAD_SYSTEM.render()},
            {"role": "user", "content": user},
        ]
