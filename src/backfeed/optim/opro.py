"""OPRO: the model sees a bounded, score-sorted history of past values and proposes better ones."""

from __future__ import annotations

from typing import Any

from ..graph import Param
from ..llm import LLM, Message
from . import prompts
from .apply import answer_proposal
from .base import Optimizer
from .records import Proposal, StepReport
from .schema import (
    answer_format,
    answer_limit,
    answer_schema_for,
    clip,
    describe,
    names_text,
    partial_edits,
    reached_limit,
    values_text,
)


class OPRO(Optimizer):
    """Optimization by prompting: the best `history_size` distinct values tried so far, sorted
    worst to best with their scores, and a request for values that score higher.
    `candidates=n` samples n answers to that prompt (see `Prime`), each a candidate.
    """

    def __init__(
        self,
        params: list[Param] | Any,
        llm: LLM | None = None,
        *,
        history_size: int = 8,
        value_chars: int = 300,
        reasoning_chars: int = 200,
        max_tokens: int | None = None,
        temperature: float | None = None,
        budget_tokens: int = 4000,
        candidates: int = 1,
    ) -> None:
        super().__init__(params, llm)
        self.budget_tokens = budget_tokens
        if history_size < 1 or candidates < 1:
            raise ValueError(
                f"history_size and candidates must be at least 1, got {history_size} and "
                f"{candidates}"
            )
        self.candidates = candidates
        self.history_size = history_size
        self.value_chars = value_chars
        self.reasoning_chars = reasoning_chars
        self.max_tokens = max_tokens
        self.temperature = temperature

    def history_text(self) -> str:
        scored = [h for h in self.history if h.score is not None]
        top = sorted(scored, key=lambda h: h.score)[-self.history_size :]  # type: ignore[arg-type, return-value]
        if not top:
            return "(none yet)"
        rows = []
        for h in top:
            values = values_text(h.values, self.params, self.value_chars)
            sep = "\n" if "\n" in values else "; "
            rows.append(f"- {values}{sep}score={h.score:.4g}")
        return "\n".join(rows)

    def messages(self) -> list[Message]:
        latest = self.history[-1].feedback if self.history else ""
        user = prompts.OPRO_USER.render(
            parameters=describe(self.params, self.value_chars),
            history=self.history_text(),
            feedback=clip(latest, self.value_chars * 2) or "(none)",
            names=names_text(self.params),
            answer_format=answer_format(self.params, self.reasoning_chars, self._edits()),
        )
        return [
            {"role": "system", "content": prompts.OPRO_SYSTEM.render()},
            {"role": "user", "content": user},
        ]

    def _edits(self) -> dict[str, str]:
        """The values the prompt shows in part, asked for as edits."""
        return partial_edits(self.params, self.value_chars)

    def _propose(self, report: StepReport) -> list[Proposal]:
        cut = set(self._edits())
        limit = answer_limit(self.params, self.reasoning_chars, self.budget_tokens,
                             self.max_tokens, edits=cut)
        completions = self._ask_many(
            report,
            self.messages(),
            self.candidates,
            json_schema=answer_schema_for(self.params, self.reasoning_chars),
            max_tokens=limit,
            temperature=self.temperature,
        )
        start = self.values()
        cut_short = {c.text for c in completions if reached_limit(c, limit)}
        paid = {c.text: c for c in completions}
        return [answer_proposal(self.params, start, [(c.text, None)], by=self.name, partial=cut,
                                cut_short=cut_short, completions=paid) for c in completions]
