"""Prime, the OPTO optimizer: one call with the trace, feedback and memory, within a budget."""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable
from typing import Any

from .._text import clip
from .._tokens import estimate_tokens
from ..graph import Param, RenderBudgetError, render
from ..llm import LLM, Message
from ..llm.wrap import output_cap
from . import prompts
from .apply import apply_answer
from .base import (
    SAMPLE_TEMPERATURE,
    History,
    Observation,
    Optimizer,
    ParamUpdate,
    StepReport,
    continues_assistant,
    values_key,
)
from .compact import (
    blamed,
    compact_messages,
    each_compact,
    fits_compact,
    focus_feedback,
    retry_turn,
)
from .examples import failing_examples
from .parse import is_block
from .schema import (
    EDIT_TOKENS,
    answer_format,
    answer_limit,
    answer_schema_for,
    answer_tokens,
    names_text,
    prefix,
    reached_limit,
    rewrite_tokens,
    value_text,
)

NOT_ASKED = "not asked: the feedback names other parameters, not it"  # `name: ` before it


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

    `compact` asks for each parameter with its own short prompt and no trace: for code the
    spec, the current function and the failing tests; for text its description, its format
    fields, its value and the feedback meant for it (among several parameters, the `; `-parts
    of a feedback that name it). Each parameter gets `candidates` answers, each a candidate
    alone, and their changes of several parameters combined are more candidates. By default
    (None) it applies to one function's code, and on a backend that continues an assistant
    message (the embedded model) to any parameters that are all code or text; it needs every
    parameter the optimizer writes to be code or text. `retry` (default: with the compact
    prompt): when no answer changed a parameter (each repeated the current value or was
    rejected), ask once more in the same step for it anew without its value (or,
    with the full prompt, showing the model its answer and the first failing test); both
    calls count in the budgets, and the report's problems say so.

    `focus`: the names of the parameters this optimizer writes (default all; Hybrid gives its
    Prime the non-numeric ones).

    Values are shown whole when the prompt can hold them. A code or text value that cannot be
    shown whole, or whose rewrite would not fit the model's answer (`llm.output_cap`: litellm's
    model info, `Local(max_tokens=)`, else 8,192 tokens), is asked for as SEARCH/REPLACE edits,
    applied to the whole value; a whole new value for a value shown in part is rejected, never
    kept with the text the model did not see. `edits=True` asks for edits to every code and
    text parameter (a short answer for a long value), `edits=False` never (a value shown in
    part then cannot change). The answer's limit is at most the model's cap; the report's
    problems say when it was lowered.
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
        edits: bool | None = None,
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
        self.edits = edits
        self.partial: dict[str, tuple[int, int]] = {}  # shown in part by the last prompt
        self.cut_short: set[str] = set()  # this step's answers that reached their token limit
        self.budget_tokens = budget_tokens
        self.memory = memory
        self.reasoning_chars = reasoning_chars
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.prefill = prefill
        self.examples = examples
        self.rejections: list[str] = []  # reasons from the last answer, shown in the next prompt
        self.focus: set[str] | None = None  # the parameters it writes (None: all)

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

    def edit_reasons(self, params: list[Param], partial: dict[str, tuple[int, int]]
                     ) -> dict[str, str]:
        """The code and text parameters of `params` to ask edits for, each with why: shown in
        part (`partial`), too long to write anew within the answer's limit (the model's cap,
        or `max_tokens` when lower; the largest values first, until the rest fit together),
        or `edits=True`."""
        if self.edits is False:
            return {}
        blocks = [p for p in params if is_block(p)]
        reasons = {p.name: prompts.EDIT_WHY_PARTIAL for p in blocks if p.name in partial}
        room = self._answer_cap() - self.reasoning_chars // 3 - 48
        whole = sorted((p for p in blocks if p.name not in reasons), key=rewrite_tokens,
                       reverse=True)
        need = sum(map(rewrite_tokens, whole)) + EDIT_TOKENS * len(reasons)
        for p in whole:
            if need <= room:
                break
            reasons[p.name] = prompts.EDIT_WHY_LONG
            need += EDIT_TOKENS - rewrite_tokens(p)
        if self.edits:
            reasons.update({p.name: prompts.EDIT_WHY_ASKED for p in blocks
                            if p.name not in reasons})
        return reasons

    def _answer_cap(self) -> int:
        """The most tokens an answer gets: the model's cap, or `max_tokens` when lower."""
        cap = output_cap(self.llm)[0]
        return min(cap, self.max_tokens) if self.max_tokens else cap

    def messages(self) -> list[Message]:
        """The full prompt for the current feedback (the compact one for a single compact
        parameter); raises RenderBudgetError if it cannot fit. Sets `partial`: the values it
        shows in part, asked for as edits."""
        each = self.compact_params()
        if len(each) == 1:
            short = self.compact_messages(each[0])
            if short is not None:
                self.partial = {}
                return short
        partial: dict[str, tuple[int, int]] = {}
        for _ in range(len(self.params) + 1):  # each pass may find more values shown in part
            messages, rendering = self._full_messages(self.edit_reasons(self.params, partial))
            if rendering.partial.keys() <= partial.keys():
                break
            partial = {**partial, **rendering.partial}
        self.partial = rendering.partial
        return messages

    def _full_messages(self, edits: dict[str, str]) -> tuple[list[Message], Any]:
        """The full prompt asking edits for `edits`, and the trace's rendering."""
        system = prompts.PRIME_SYSTEM.render()
        fixed = dict(names=names_text(self.params),
                     answer_format=answer_format(self.params, self.reasoning_chars, edits))
        rejected = "\n".join(f"- {r}" for r in self.rejections) or "(nothing)"
        fixed["rejected"] = clip(rejected, self.budget_tokens // 2)  # bounded: 4 chars a token
        skeleton = prompts.PRIME_USER.render(trace="", memory="", examples="", **fixed)
        left = self.budget_tokens - estimate_tokens(system) - estimate_tokens(skeleton) - 8
        examples = clip(failing_examples(self.params, self.examples), max(left // 6, 60) * 4)
        left -= estimate_tokens(examples)
        memory = self.memory_text(max(left // 4, 60))
        left -= estimate_tokens(memory)
        rendering = render(self.params, budget_tokens=max(left, 50))
        user = prompts.PRIME_USER.render(trace=rendering.text, memory=memory, examples=examples,
                                         **fixed)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}], \
            rendering

    def written(self) -> list[Param]:
        """The parameters this optimizer writes (`focus`, default all)."""
        return [p for p in self.params if self.focus is None or p.name in self.focus]

    def compact_params(self) -> list[Param]:
        """The parameters asked for one at a time with compact prompts ([]: the full prompt)."""
        written = self.written()
        if self.compact is False or not each_compact(written):
            return []
        if self.compact or fits_compact(written) or continues_assistant(self.llm):
            return written
        return []

    def use_compact(self) -> bool:
        """Whether the prompts are the compact ones."""
        return bool(self.compact_params())

    def compact_messages(self, param: Param | None = None, *, fresh: bool = False,
                         rejections: list[str] | None = None) -> list[Message] | None:
        """The short prompt for `param` (default: the only compact one); None when there is
        none or it does not fit `budget_tokens`."""
        if param is None:
            each = self.compact_params()
            if len(each) != 1:
                return None
            param = each[0]
        rejections = self.rejections if rejections is None else rejections
        if len(self.params) > 1:  # the reasons that concern this parameter
            rejections = [r for r in rejections if param.name in r]
        edits = self.edit_reasons([param], {})
        messages = compact_messages(
            [param], answer_format=answer_format([param], self.reasoning_chars, edits),
            edits=bool(edits),
            rejections=rejections, memory=self.param_memory(param, self.budget_tokens // 4),
            limit=self.examples, fresh=fresh,
            among=self.params if len(self.params) > 1 else None,
        )
        used = sum(estimate_tokens(m["content"]) for m in messages)
        return messages if used <= self.budget_tokens else None

    def param_memory(self, param: Param, limit_tokens: int) -> str:
        """The last `memory` values `param` had other than its current one while the other
        parameters this optimizer writes were as now (so the score is this value's), oldest
        first, each once (its latest observation), with its score and the feedback meant for
        it."""
        latest: dict[str, Observation] = {}
        others = [p for p in self.written() if p is not param]
        for h in self.history:
            value = h.values.get(param.name)
            if param.name not in h.values or value == param._value:
                continue
            if any(h.values.get(p.name, p._value) != p._value for p in others):
                continue
            feedback = focus_feedback(h.feedback or "", param, self.params)[0] \
                if len(self.params) > 1 else h.feedback
            latest.pop(repr(value), None)
            latest[repr(value)] = Observation(h.step, {param.name: value}, h.score, feedback)
        rows = list(latest.values())[-self.memory :] if self.memory else []
        if not rows:
            return ""
        per_row = max(limit_tokens * 4 // len(rows), 120)
        now = {param.name: param._value}
        return clip("\n".join(_memory_row(h, per_row, now) for h in rows), limit_tokens * 4)

    def schema(self) -> dict[str, Any] | None:
        """The JSON schema of the answer (None when it is written in blocks)."""
        return answer_schema_for(self.params, self.reasoning_chars)

    def prefix(self, params: list[Param] | None = None) -> str:
        """The start the model's answer is forced to ("" when not prefilled); for a value
        asked for as edits, the first edit's SEARCH line."""
        use = continues_assistant(self.llm) if self.prefill is None else self.prefill
        if not use:
            return ""
        if params is None:  # the full prompt's: its values shown in part are asked as edits
            return prefix(self.params, self.edit_reasons(self.params, self.partial))
        return prefix(params, self.edit_reasons(params, {}))  # compact prompts show it whole

    # -- one step -----------------------------------------------------------------------------
    def propose(self, report: StepReport) -> list[str]:
        """Ask the model for `candidates` answers to one prompt; their texts (empty when the
        call failed: see `report.error`)."""
        try:
            messages = self.messages()
        except RenderBudgetError as exc:
            report.error = f"prompt does not fit budget_tokens={self.budget_tokens}: {exc}"
            return []
        limit = self._full_limit(report)
        start = self.prefix()
        if start:
            messages = [*messages, {"role": "assistant", "content": start}]
        completions = self._ask_many(
            report, messages, self.candidates, json_schema=self.schema(), max_tokens=limit,
            temperature=self.temperature,
        )
        texts = self._texts(start, completions, limit)
        if texts:
            report.answers[-len(texts) :] = texts
        return texts

    def _full_limit(self, report: StepReport) -> int:
        """The answer limit of the full prompt (its values shown in part asked as edits)."""
        return self.answer_limit(report, self.params, self.edit_reasons(self.params, self.partial))

    def answer_limit(self, report: StepReport, params: list[Param],
                     edits: dict[str, str]) -> int:
        """The answer's token limit for `params` (`edits`: those answered with edits), at
        most the model's cap; the report's problems say when the cap lowered it."""
        cap, source = output_cap(self.llm)
        wanted = answer_limit(params, self.reasoning_chars, self.budget_tokens,
                              self.max_tokens, edits=edits)
        needed = self.max_tokens or answer_tokens(params, self.reasoning_chars, edits=edits)
        if needed > cap:  # said only when the answer needs more than the model gives
            note = f"max_tokens: {needed:,} capped at {cap:,} ({source})"
            if note not in report.problems:
                report.problems.append(note)
        return min(wanted, cap)

    def _texts(self, start: str, completions: list[Any], limit: int) -> list[str]:
        """The whole answers; those that reached `limit` tokens are remembered as cut short
        (a block they never closed is then rejected, not kept)."""
        texts = [self._prefixed(start, c.text) for c in completions]
        self.cut_short.update(t for t, c in zip(texts, completions) if reached_limit(c, limit))
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

    def proposals(self, report: StepReport) -> list[Callable[[StepReport], dict[str, Any]]]:
        """Ask the model and return one proposal per answer: each applies its answer to the
        parameters it writes, records what it did in the report it is given, and returns the
        values as the model wrote them (numbers outside `focus` included)."""
        self.cut_short = set()
        each = self.compact_params()
        if each and all(self.compact_messages(p) is not None for p in each):
            return self._ask_each(report, each)
        return [self._applies(t) for t in self.propose(report)]

    def _applies(self, text: str, names: set[str] | None = None
                 ) -> Callable[[StepReport], dict[str, Any]]:
        only = names if names is not None else self.focus
        partial = set(self.partial)  # what the prompt this answers showed in part
        cut = text in self.cut_short

        def apply(report: StepReport) -> dict[str, Any]:
            return apply_answer(self.params, text, report, only=only, partial=partial,
                                cut_short=cut)[1]

        return apply

    def _ask_each(self, report: StepReport, each: list[Param]
                  ) -> list[Callable[[StepReport], dict[str, Any]]]:
        """One compact prompt per parameter, `candidates` answers each (and, for a parameter
        none of whose answers changed it, one more asking for it anew, without its value). A
        parameter the feedback does not name while it names others is not asked (the report's
        problems say so). The proposals: the distinct changes of the parameters combined
        (first answers first, at most `candidates` times the number of parameters changed;
        only when several changed), then each answer alone."""
        self.partial = {}  # compact prompts show each value whole
        retry = True if self.retry is None else self.retry
        asked: list[tuple[Param, list[str]]] = []
        for param in each:
            if blamed(param, self.params) is False:
                report.problems.append(f"{param.name}: {NOT_ASKED}")
                continue
            edits = self.edit_reasons([param], {})
            limit = self.answer_limit(report, [param], edits)
            messages = self.compact_messages(param)
            assert messages is not None  # checked by `proposals`
            texts = self._ask_texts(report, messages, param, self.candidates, limit)
            # a value too long to write in one answer is never asked for anew without it
            long = bool(edits) or rewrite_tokens(param) > self._answer_cap()
            if retry and long and not any(self._changes(param, t) for t in texts):
                report.problems.append(
                    f"retry: no answer changed {param.name}; not asked for it anew, which shows "
                    "no value: a long value changes by edits only")
            elif retry and not any(self._changes(param, t) for t in texts):
                rejected = [u.reason or "" for u in self._trial(param, texts[0])[1]] \
                    if texts else []
                fresh = self.compact_messages(param, fresh=True, rejections=rejected[:2])
                if fresh is not None:
                    more = self._ask_texts(report, fresh, param, 1, limit)
                    changed = bool(more) and self._changes(param, more[0])
                    what = "the function" if param.kind == "code" else "a value"
                    report.problems.append(
                        f"retry: no answer changed {param.name}; asked once more for {what} "
                        f"anew ({'changed the values' if changed else 'changed nothing either'})")
                    texts += more
            asked.append((param, texts))
        changes = [(p, self._distinct_changes(p, texts)) for p, texts in asked]
        changes = [(p, texts) for p, texts in changes if texts]
        proposals: list[Callable[[StepReport], dict[str, Any]]] = []
        if len(changes) > 1:  # the changes of several parameters together, first ones first
            combos = itertools.islice(itertools.product(*(texts for _, texts in changes)),
                                      max(self.candidates, 1) * len(changes))
            for combo in combos:
                proposals.append(self._together([(p, t) for (p, _), t in zip(changes, combo)]))
        proposals += [self._applies(t, {p.name}) for p, texts in asked for t in texts]
        return proposals

    def _distinct_changes(self, param: Param, texts: list[str]) -> list[str]:
        """The answers that change `param` to a value not yet evaluated, one per value."""
        found: dict[str, str] = {}
        for text in texts:
            after, _ = self._trial(param, text)
            if after != self.values() and values_key(after) not in self.history.keys():
                found.setdefault(repr(after[param.name]), text)
        return list(found.values())

    def _together(self, pairs: list[tuple[Param, str]]) -> Callable[[StepReport], dict[str, Any]]:
        def apply(report: StepReport) -> dict[str, Any]:
            accepted: dict[str, Any] = {}
            for param, text in pairs:
                accepted.update(self._applies(text, {param.name})(report))
            return accepted

        return apply

    def _ask_texts(self, report: StepReport, messages: list[Message], param: Param, n: int,
                   limit: int) -> list[str]:
        start = self.prefix([param])
        if start:
            messages = [*messages, {"role": "assistant", "content": start}]
        completions = self._ask_many(report, messages, n, max_tokens=limit,
                                     temperature=self.temperature)
        texts = self._texts(start, completions, limit)
        if texts:
            report.answers[-len(texts) :] = texts
        return texts

    def _trial(self, param: Param, text: str) -> tuple[dict[str, Any], list[ParamUpdate]]:
        """The values after applying `text` to `param`, and its rejected updates; the
        parameters are left as they were."""
        before = self.values()
        scratch = StepReport(step=self.step_count)
        apply_answer(self.params, text, scratch, only={param.name},
                     cut_short=text in self.cut_short)
        after = self.values()
        self._load(before)
        return after, scratch.rejected

    def _changes(self, param: Param, text: str) -> bool:
        """Whether `text` sets `param` to a value never evaluated with the others as now."""
        return bool(self._distinct_changes(param, [text]))

    def _step(self, report: StepReport) -> None:
        proposals = self.proposals(report)
        if proposals:
            self._gather(report, proposals)
            if self.retry and not self.use_compact() and not report.candidates \
                    and report.answers:
                self._retry(report, report.answers[0])
        self.note_rejections(report)

    def _retry(self, report: StepReport, answer: str) -> None:
        """Ask once more after an answer that changed nothing (`retry=True` with the full
        prompt): the same prompt, the model's answer, and a turn naming what it did and the
        first failing test, sampled so that the new answer can differ. Its proposal, if it
        changes anything, is the step's."""
        rejected = [u.reason or "" for u in report.rejected]
        messages = list(report.prompts[0])
        if messages[-1]["role"] == "assistant":
            messages.pop()  # the prefill: the whole answer follows
        messages += [{"role": "assistant", "content": answer},
                     {"role": "user", "content": retry_turn(self.params, rejected)}]
        start = self.prefix()
        if start:
            messages.append({"role": "assistant", "content": start})
        asked = StepReport(step=report.step)
        limit = self._full_limit(report)
        found = self._ask_many(asked, messages, 1, json_schema=self.schema(),
                               temperature=SAMPLE_TEMPERATURE, max_tokens=limit)
        report.prompts += asked.prompts
        report.llm_calls += asked.llm_calls
        report.prompt_tokens += asked.prompt_tokens
        report.completion_tokens += asked.completion_tokens
        report.cost_usd += asked.cost_usd
        if not found:
            report.problems.append(f"retry: the call failed: {asked.error}")
            return
        text = self._texts(start, found, limit)[0]
        report.answers.append(text)
        retried = StepReport(step=report.step)
        self._gather(retried, [self._applies(text)])
        outcome = "changed the values" if retried.candidates else "changed nothing either"
        report.problems.append(f"retry: the answer changed nothing; asked once more with the "
                               f"failing test ({outcome})")
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
            "edits": self.edits,
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
