"""Prime, the OPTO optimizer: one call with the trace, feedback and memory, within a budget."""

from __future__ import annotations

import difflib
from functools import partial
from typing import Any

from .._text import clip
from .._tokens import estimate_tokens
from ..graph import Param, RenderBudgetError, render
from ..llm import LLM, Message
from . import prompts
from .apply import apply_answer
from .base import (
    SAMPLE_TEMPERATURE,
    History,
    Observation,
    Optimizer,
    StepReport,
    continues_assistant,
    values_key,
)
from .compact import compact_messages, fits_compact, retry_turn
from .examples import failing_examples
from .schema import (
    answer_format,
    answer_limit,
    answer_schema_for,
    names_text,
    prefix,
    value_text,
)


class Prime(Optimizer):
    """Show the model the minimal subgraph, the feedback and the last `memory` attempts, and
    ask for new values (the `examples` worst failing outputs are listed side by side with their
    feedback): code and text in one fenced block per parameter (under its name), other
    values as JSON; with only typed values, one `{reasoning, suggestion, stop}` object under a
    JSON schema whose only suggestion keys are the parameter names. The whole prompt stays
    within `budget_tokens`; the answer's limit derives from it (`max_tokens` overrides it).
    `prefill` makes the model start its answer with the first block's frame (for code, the
    heading, the fence and the current `def` line); by default on for backends that continue a
    trailing assistant message (the embedded model).

    `candidates=n` asks the same prompt n times (the first answer at `temperature`, the others
    sampled), one call after another so the embedded model processes the prompt once; each
    distinct proposal becomes one of `report.candidates` for the trainer to evaluate. Every
    call counts in the budgets. `split=True` also offers each changed parameter of a
    candidate alone.

    `compact` (default: when the parameters are one function's code) asks with a short prompt:
    the spec, the current function and the failing tests, no trace. `retry` (default: with the
    compact prompt): when no answer changed anything (each repeated the current values or was
    rejected), ask once more in the same step, for the function anew without its code (or,
    with the full prompt, showing the model its answer and the first failing test); both
    calls count in the budgets, and the report's problems say so.
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
        prefill: bool | None = None,
        examples: int = 4,
        candidates: int = 1,
        split: bool = False,
        compact: bool | None = None,
        retry: bool | None = None,
        history: History | None = None,
    ) -> None:
        super().__init__(params, llm, history=history)
        if budget_tokens < 200:
            raise ValueError(f"budget_tokens must be at least 200, got {budget_tokens}")
        if candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {candidates}")
        self.candidates = candidates
        self.split = split
        self.compact = compact
        self.retry = retry
        self.budget_tokens = budget_tokens
        self.memory = memory
        self.reasoning_chars = reasoning_chars
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.prefill = prefill
        self.examples = examples
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
        return clip(text, limit_tokens * 4)

    def messages(self) -> list[Message]:
        """The prompt for the current feedback (raises RenderBudgetError if it cannot fit)."""
        if self.use_compact():
            short = self.compact_messages()
            if short is not None:
                return short
        system = prompts.PRIME_SYSTEM.render()
        fixed = dict(names=names_text(self.params),
                     answer_format=answer_format(self.params, self.reasoning_chars))
        rejected = "\n".join(f"- {r}" for r in self.rejections) or "(nothing)"
        fixed["rejected"] = clip(rejected, self.budget_tokens // 2)  # bounded: 4 chars a token
        skeleton = prompts.PRIME_USER.render(trace="", memory="", examples="", **fixed)
        left = self.budget_tokens - estimate_tokens(system) - estimate_tokens(skeleton) - 8
        examples = clip(failing_examples(self.params, self.examples), max(left // 6, 60) * 4)
        left -= estimate_tokens(examples)
        memory = self.memory_text(max(left // 4, 60))
        left -= estimate_tokens(memory)
        trace = render(self.params, budget_tokens=max(left, 50)).text
        user = prompts.PRIME_USER.render(trace=trace, memory=memory, examples=examples, **fixed)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def use_compact(self) -> bool:
        """Whether the prompt is the compact one (the option, else: one code parameter)."""
        wanted = fits_compact(self.params) if self.compact is None else self.compact
        return wanted and fits_compact(self.params)

    def compact_messages(self, fresh: bool = False,
                         rejections: list[str] | None = None) -> list[Message] | None:
        """The short prompt for one code parameter; None when it does not apply or fit."""
        if not fits_compact(self.params):
            return None
        memory = self.memory_text(self.budget_tokens // 4)
        messages = compact_messages(
            self.params, answer_format=answer_format(self.params, self.reasoning_chars),
            rejections=self.rejections if rejections is None else rejections,
            memory="" if memory == "(none yet)" else memory, limit=self.examples, fresh=fresh,
        )
        used = sum(estimate_tokens(m["content"]) for m in messages)
        return messages if used <= self.budget_tokens else None

    def schema(self) -> dict[str, Any] | None:
        """The JSON schema of the answer (None when it is written in blocks)."""
        return answer_schema_for(self.params, self.reasoning_chars)

    def prefix(self) -> str:
        """The start the model's answer is forced to ("" when not prefilled)."""
        use = continues_assistant(self.llm) if self.prefill is None else self.prefill
        return prefix(self.params) if use else ""

    # -- one step -----------------------------------------------------------------------------
    def propose(self, report: StepReport) -> list[str]:
        """Ask the model for `candidates` answers to one prompt; their texts (empty when the
        call failed: see `report.error`)."""
        try:
            messages = self.messages()
        except RenderBudgetError as exc:
            report.error = f"prompt does not fit budget_tokens={self.budget_tokens}: {exc}"
            return []
        limit = answer_limit(self.params, self.reasoning_chars, self.budget_tokens,
                             self.max_tokens)
        start = self.prefix()
        if start:
            messages = [*messages, {"role": "assistant", "content": start}]
        completions = self._ask_many(
            report, messages, self.candidates, json_schema=self.schema(), max_tokens=limit,
            temperature=self.temperature,
        )
        texts = [self._prefixed(start, c.text) for c in completions]
        if texts:
            report.answers[-len(texts) :] = texts
        return texts

    @staticmethod
    def _prefixed(start: str, text: str) -> str:
        """The whole answer: backends return a continuation with or without its prefix."""
        if start and not text.startswith(start):
            # a continuation of `def name(` often starts with a space (" xs" is one token)
            text = start + (text.lstrip(" ") if start.endswith("(") else text)
        elif start.endswith("(") and text[len(start) : len(start) + 1] == " ":
            text = start + text[len(start) :].lstrip(" ")
        return text

    def _step(self, report: StepReport) -> None:
        texts = self.propose(report)
        if texts:
            self._gather(report, [partial(apply_answer, self.params, t) for t in texts])
            if (self.use_compact() if self.retry is None else self.retry) \
                    and not report.candidates:
                self._retry(report, texts[0])
        self.note_rejections(report)

    def _retry(self, report: StepReport, answer: str) -> None:
        """Ask once more after an answer that changed nothing. With the compact prompt: the
        spec, the signature and the failing tests without the current code, asking for the
        function anew (shown its code, the 0.5B model copied it again: benchmarks/
        repair_rate.py). Otherwise: the same prompt, the model's answer, and a turn naming
        what it did and the first failing test, sampled so that the new answer can differ.
        Its proposal, if it changes anything, is the step's."""
        rejected = [u.reason or "" for u in report.rejected]
        fresh = self.compact_messages(fresh=True, rejections=rejected[:2]) \
            if self.use_compact() else None
        temperature = self.temperature if fresh is not None else SAMPLE_TEMPERATURE
        if fresh is not None:
            messages = fresh
        else:
            messages = list(report.prompts[0])
            if messages[-1]["role"] == "assistant":
                messages.pop()  # the prefill: the whole answer follows
            messages += [{"role": "assistant", "content": answer},
                         {"role": "user", "content": retry_turn(self.params, rejected)}]
        start = self.prefix()
        if start:
            messages.append({"role": "assistant", "content": start})
        asked = StepReport(step=report.step)
        found = self._ask_many(
            asked, messages, 1, json_schema=self.schema(), temperature=temperature,
            max_tokens=answer_limit(self.params, self.reasoning_chars, self.budget_tokens,
                                    self.max_tokens),
        )
        report.prompts += asked.prompts
        report.llm_calls += asked.llm_calls
        report.prompt_tokens += asked.prompt_tokens
        report.completion_tokens += asked.completion_tokens
        report.cost_usd += asked.cost_usd
        if not found:
            report.problems.append(f"retry: the call failed: {asked.error}")
            return
        text = self._prefixed(start, found[0].text)
        report.answers.append(text)
        retried = StepReport(step=report.step)
        self._gather(retried, [partial(apply_answer, self.params, text)])
        outcome = "changed the values" if retried.candidates else "changed nothing either"
        how = "for the function anew" if fresh else "with the failing test"
        report.problems.append(f"retry: the answer changed nothing; asked once more {how} "
                               f"({outcome})")
        report.problems += [f"retry: {p}" for p in retried.problems]
        for update in retried.rejected:
            update.reason = f"retry: {update.reason}"
        report.rejected += retried.rejected
        if retried.candidates:
            report.candidates = retried.candidates
            report.updates, report.reasoning = retried.updates, retried.reasoning

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
            "prefill": self.prefill,
            "examples": self.examples,
            "candidates": self.candidates,
            "compact": self.compact,
            "retry": self.retry,
        }
        state["rejections"] = list(self.rejections)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.rejections = list(state.get("rejections", []))


def _memory_row(obs: Observation, limit_chars: int, now: dict[str, Any]) -> str:
    """One earlier attempt: its score, the values that differ from now, and its feedback.

    Values equal to the current ones (shown in full under #Parameters) are left out, so a
    step that changed one of several parameters costs one value; a multi-line value (code,
    a long prompt) is shown as the lines it had that differ from now.
    """
    score = "no score" if obs.score is None else f"score={obs.score:.4g}"
    changed = {k: v for k, v in obs.values.items() if k not in now or now[k] != v}
    value_chars = max(limit_chars // max(len(changed), 1) - 20, 40)
    inline, diffs = [], []
    for k, v in changed.items():
        if isinstance(v, str) and isinstance(now.get(k), str) and "\n" in v + now[k]:
            diffs.append(f"  {k} differed from now:\n" + clip(line_diff(now[k], v), value_chars))
        else:
            inline.append(f"{k}={value_text(v, value_chars)}")
    values = ", ".join(inline)
    if len(changed) < len(obs.values):
        values += ("; " if values else "") + "other parameters as now"
    feedback = clip(obs.feedback, min(max(limit_chars // 4, 60), 160))
    row = f"- {score}; {values}" if values else f"- {score}"
    row += f"; feedback: {feedback}" if feedback else ""
    return "\n".join([row, *diffs])


def line_diff(old: str, new: str) -> str:
    """The lines `new` has instead of `old`, as `-`/`+` lines (no headers, no context)."""
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
    return "\n".join(f"    {line}" for line in lines
                     if line[:1] in "-+" and not line.startswith(("---", "+++")))
