"""Evolution (EvoLLM): a fitness-sorted population in the prompt; the model proposes members."""

from __future__ import annotations

from typing import Any

from ..graph import Param
from ..llm import LLM, Message
from . import prompts
from .apply import check_suggestion, read_members, values_proposal
from .base import Optimizer
from .history import values_key
from .parse import is_block
from .records import PARSE, REPEAT, Proposal, StepReport
from .schema import (
    answer_limit,
    describe,
    members_schema,
    names_text,
    partial_edits,
    shown_in_part,
    values_text,
    variants_format,
)


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
        budget_tokens: int = 4000,
        candidates: int = 1,
    ) -> None:
        super().__init__(params, llm)
        self.budget_tokens = budget_tokens
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

    @property
    def needs_feedback(self) -> bool:  # type: ignore[override]
        """Queued members are applied without feedback; breeding needs some."""
        return len(self.queue) < self.candidates

    def population_text(self) -> str:
        scored = [h for h in self.history if h.score is not None]
        members = sorted(scored, key=lambda h: h.score)[-self.population :]  # type: ignore[arg-type, return-value]
        if not members:
            return "(empty: only the current values, shown above)"
        rows = []
        for h in members:
            values = values_text(h.values, self.params, self.value_chars)
            rows.append(f"- fitness={h.score:.4g}{chr(10) if chr(10) in values else '; '}{values}")
        return "\n".join(rows)

    def messages(self) -> list[Message]:
        user = prompts.EVOLUTION_USER.render(
            parameters=describe(self.params, self.value_chars),
            population=self.population_text(),
            offspring=max(self.offspring, self.candidates),
            names=names_text(self.params),
            answer_format=variants_format(
                self.params, max(self.offspring, self.candidates), self.reasoning_chars,
                partial_edits(self.params, self.value_chars)),
        )
        return [
            {"role": "system", "content": prompts.EVOLUTION_SYSTEM.render()},
            {"role": "user", "content": user},
        ]

    def _cut(self) -> set[str]:
        """The values the prompt shows in part: answered with edits, never whole."""
        return shown_in_part(self.params, self.value_chars)

    def _propose(self, report: StepReport) -> list[Proposal]:
        if len(self.queue) < self.candidates:
            self._breed(report)
        members, self.queue = self.queue[: self.candidates], self.queue[self.candidates :]
        start = self.values()
        return [values_proposal(self.params, start, m, by=self.name) for m in members]

    def _breed(self, report: StepReport) -> None:
        count = max(self.offspring, self.candidates)
        blocks = any(is_block(p) for p in self.params)
        completion = self._ask(
            report,
            self.messages(),
            json_schema=None if blocks else members_schema(
                self.params, self.reasoning_chars, count),
            max_tokens=answer_limit(self.params, self.reasoning_chars, self.budget_tokens,
                                    self.max_tokens, values=count, edits=self._cut()),
            temperature=self.temperature,
        )
        if completion is None:
            return
        members = read_members(report, completion.text, self.params, blocks=blocks)
        seen = {h.key() for h in self.history}
        current = self.values()
        for i, member in enumerate(members):
            if not isinstance(member, dict):
                report.problem(f"member {i}: not an object: {str(member)[:80]}", PARSE)
                continue
            accepted, rejected = check_suggestion(self.params, member, self._cut())
            for update in rejected:
                update.reason = f"member {i}: {update.reason}"
            report.rejected.extend(rejected)
            if not accepted:
                continue
            values = {**current, **accepted}
            key = values_key(values)
            if key in seen:
                report.problem(f"member {i}: already tried; skipped", REPEAT)
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
