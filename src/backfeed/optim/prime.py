"""Prime, the OPTO optimizer: one call with the trace, feedback and memory, within a budget."""

from __future__ import annotations

from functools import partial
from typing import Any

from .._tokens import estimate_tokens
from ..graph import Param, RenderBudgetError, render
from ..llm import LLM, Message
from . import prompts
from .apply import apply_answer
from .base import History, Observation, Optimizer, StepReport, values_key
from .schema import answer_schema, answer_tokens, example, names_text, value_text


class Prime(Optimizer):
    """Show the model the minimal subgraph, the feedback and the last `memory` attempts; ask
    for `{reasoning, suggestion, stop}` under a JSON schema whose only suggestion keys are the
    parameter names. The whole prompt stays within `budget_tokens`.

    `candidates=n` asks the same prompt n times (the first answer at `temperature`, the others
    sampled), on parallel slots when the backend has them; each distinct proposal becomes one
    of `report.candidates` for the trainer to evaluate. Every call counts in the budgets.
    `split=True` also offers each changed parameter of a candidate alone.
    """

    def __init__(
        self,
        params: list[Param] | Any,
        llm: LLM | None = None,
        *,
        budget_tokens: int = 4000,
        memory: int = 5,
        reasoning_chars: int = 300,
        max_tokens: int | None = None,
        temperature: float | None = None,
        candidates: int = 1,
        split: bool = False,
        history: History | None = None,
    ) -> None:
        super().__init__(params, llm, history=history)
        if budget_tokens < 200:
            raise ValueError(f"budget_tokens must be at least 200, got {budget_tokens}")
        if candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {candidates}")
        self.candidates = candidates
        self.split = split
        self.budget_tokens = budget_tokens
        self.memory = memory
        self.reasoning_chars = reasoning_chars
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.rejections: list[str] = []  # reasons from the last answer, shown in the next prompt

    # -- the prompt -------------------------------------------------------------------------
    def memory_text(self, limit_tokens: int) -> str:
        """The last `memory` observed attempts other than the current values, oldest first."""
        current = values_key(self.values())
        rows = [h for h in self.history if h.key() != current][-self.memory :] if self.memory else []
        if not rows:
            return "(none yet)"
        per_row = max(limit_tokens * 4 // len(rows), 120)
        now = self.values()
        text = "\n".join(_memory_row(h, per_row, now) for h in rows)
        limit = limit_tokens * 4
        return text if len(text) <= limit else text[: max(limit - 20, 0)] + " ...[memory cut]"

    def messages(self) -> list[Message]:
        """The prompt for the current feedback (raises RenderBudgetError if it cannot fit)."""
        answer_format = prompts.ANSWER_FORMAT.render(
            reasoning_chars=self.reasoning_chars,
            example=example(self.params),
            names=names_text(self.params),
        )
        system = prompts.PRIME_SYSTEM.render()
        fixed = dict(names=names_text(self.params), answer_format=answer_format)
        rejected = "\n".join(f"- {r}" for r in self.rejections) or "(nothing)"
        fixed["rejected"] = rejected[: self.budget_tokens // 2]  # bounded: 4 chars a token
        skeleton = prompts.PRIME_USER.render(trace="", memory="", **fixed)
        left = self.budget_tokens - estimate_tokens(system) - estimate_tokens(skeleton) - 8
        memory = self.memory_text(max(left // 4, 60))
        left -= estimate_tokens(memory)
        trace = render(self.params, budget_tokens=max(left, 50)).text
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": prompts.PRIME_USER.render(trace=trace, memory=memory, **fixed)},
        ]

    def schema(self) -> dict[str, Any]:
        return answer_schema(self.params, self.reasoning_chars)

    # -- one step -----------------------------------------------------------------------------
    def propose(self, report: StepReport) -> list[str]:
        """Ask the model for `candidates` answers to one prompt; their texts (empty when the
        call failed: see `report.error`)."""
        try:
            messages = self.messages()
        except RenderBudgetError as exc:
            report.error = f"prompt does not fit budget_tokens={self.budget_tokens}: {exc}"
            return []
        limit = answer_tokens(self.params, self.reasoning_chars)
        if self.max_tokens is not None:
            limit = min(limit, self.max_tokens)
        completions = self._ask_many(
            report, messages, self.candidates, json_schema=self.schema(), max_tokens=limit,
            temperature=self.temperature,
        )
        return [c.text for c in completions]

    def _step(self, report: StepReport) -> None:
        texts = self.propose(report)
        if texts:
            self._gather(report, [partial(apply_answer, self.params, t) for t in texts])
        self.note_rejections(report)

    def note_rejections(self, report: StepReport) -> None:
        """Remember why proposals were rejected, to tell the model in the next prompt."""
        notes = [u.reason or "" for u in report.rejected][:5]
        notes += [p for p in report.problems if p.startswith("parse")][:2]
        self.rejections = [n[:300] for n in notes if n]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["options"] = {
            "budget_tokens": self.budget_tokens,
            "memory": self.memory,
            "reasoning_chars": self.reasoning_chars,
            "candidates": self.candidates,
        }
        state["rejections"] = list(self.rejections)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.rejections = list(state.get("rejections", []))


def _memory_row(obs: Observation, limit_chars: int, now: dict[str, Any]) -> str:
    """One earlier attempt: its score, the values that differ from now, and its feedback.

    Values equal to the current ones (shown in full under #Parameters) are left out, so a
    step that changed one of several parameters, or a long code parameter, costs one value.
    """
    score = "no score" if obs.score is None else f"score={obs.score:.4g}"
    changed = {k: v for k, v in obs.values.items() if k not in now or now[k] != v}
    value_chars = max(limit_chars // max(len(changed), 1) - 20, 40)
    values = ", ".join(f"{k}={value_text(v, value_chars)}" for k, v in changed.items())
    if len(changed) < len(obs.values):
        values += ("; " if values else "") + "other parameters as now"
    feedback = obs.feedback[: min(max(limit_chars // 4, 60), 160)]
    row = f"- {score}; {values}"
    return row + (f"; feedback: {feedback}" if feedback else "")
