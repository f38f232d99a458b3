"""Evolution (EvoLLM): a fitness-sorted population in the prompt; the model proposes members."""

from __future__ import annotations

from functools import partial
from typing import Any

from ..graph import Param
from ..llm import LLM, Message
from . import prompts
from .apply import apply_suggestion, check_suggestion, parse_answer
from .base import Optimizer, StepReport, values_key
from .schema import answer_tokens, describe, example, members_schema, names_text, value_text


class Evolution(Optimizer):
    """An LLM evolution strategy. Each step first scores the current values (the fitness is
    the feedback's score), then applies the next queued member; when the queue is empty it
    asks the model for `offspring` new members, shown the `population` fittest so far.
    One LLM call serves `offspring` steps; the trainer's evaluation decides what survives.
    `candidates=n` hands out n queued members per step (`report.candidates`), breeding
    at least n at a time.
    """

    def __init__(
        self,
        params: list[Param] | Any,
        llm: LLM | None = None,
        *,
        population: int = 8,
        offspring: int = 4,
        value_chars: int = 300,
        reasoning_chars: int = 200,
        max_tokens: int | None = None,
        temperature: float | None = None,
        candidates: int = 1,
    ) -> None:
        super().__init__(params, llm)
        if population < 1 or offspring < 1 or candidates < 1:
            raise ValueError(
                "population, offspring and candidates must be at least 1, got "
                f"{population}, {offspring} and {candidates}"
            )
        self.candidates = candidates
        self.population = population
        self.offspring = offspring
        self.value_chars = value_chars
        self.reasoning_chars = reasoning_chars
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.queue: list[dict[str, Any]] = []  # proposed members not yet tried

    def population_text(self) -> str:
        scored = [h for h in self.history if h.score is not None]
        members = sorted(scored, key=lambda h: h.score)[-self.population :]  # type: ignore[arg-type, return-value]
        if not members:
            return "(empty: only the current values, shown above)"
        rows = []
        for h in members:
            values = ", ".join(f"{k}={value_text(v, self.value_chars)}" for k, v in h.values.items())
            rows.append(f"- fitness={h.score:.4g}; {values}")
        return "\n".join(rows)

    def messages(self) -> list[Message]:
        user = prompts.EVOLUTION_USER.render(
            parameters=describe(self.params, self.value_chars),
            population=self.population_text(),
            offspring=max(self.offspring, self.candidates),
            names=names_text(self.params),
            reasoning_chars=self.reasoning_chars,
            example=example(self.params),
        )
        return [
            {"role": "system", "content": prompts.EVOLUTION_SYSTEM.render()},
            {"role": "user", "content": user},
        ]

    def _step(self, report: StepReport) -> None:
        if len(self.queue) < self.candidates:
            self._breed(report)
        members, self.queue = self.queue[: self.candidates], self.queue[self.candidates :]
        if members:
            self._gather(report, [partial(apply_suggestion, self.params, m) for m in members])

    def _breed(self, report: StepReport) -> None:
        count = max(self.offspring, self.candidates)
        limit = answer_tokens(self.params, self.reasoning_chars, values=count)
        if self.max_tokens is not None:
            limit = min(limit, self.max_tokens)
        completion = self._ask(
            report,
            self.messages(),
            json_schema=members_schema(self.params, self.reasoning_chars, count),
            max_tokens=limit,
            temperature=self.temperature,
        )
        if completion is None:
            return
        answer = parse_answer(completion.text)
        report.reasoning, report.stop = answer.reasoning, answer.stop
        report.problems.extend(answer.problems)
        members = (answer.data or {}).get("members")
        if not isinstance(members, list):
            if answer.data is not None:
                report.problems.append("parse: the answer has no `members` list")
            return
        seen = {h.key() for h in self.history}
        current = self.values()
        for i, member in enumerate(members):
            if not isinstance(member, dict):
                report.problems.append(f"member {i}: not an object: {str(member)[:80]}")
                continue
            accepted, rejected = check_suggestion(self.params, member)
            for update in rejected:
                update.reason = f"member {i}: {update.reason}"
            report.rejected.extend(rejected)
            if not accepted:
                continue
            values = {**current, **accepted}
            key = values_key(values)
            if key in seen:
                report.problems.append(f"member {i}: already tried; skipped")
                continue
            seen.add(key)
            self.queue.append(values)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["queue"] = [dict(m) for m in self.queue]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.queue = [dict(m) for m in state.get("queue", [])]
