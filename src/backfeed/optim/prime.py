"""Prime, the OPTO optimizer: one call with the trace, feedback and memory, within a budget."""

from __future__ import annotations

import difflib
from typing import Any

from .._text import clip
from .._tokens import estimate_tokens
from ..graph import Param, RenderBudgetError, render
from ..llm import LLM, Message
from ..llm.wrap import continues_assistant, output_cap
from . import prompts
from .base import Optimizer
from .compact import (
    compact_messages,
    each_compact,
    failing_outputs,
    fits_compact,
    focus_feedback,
    is_prose,
)
from .examples import failing_examples
from .history import History, Observation, values_key
from .parse import is_block
from .proposers import NOT_ASKED_TEXT, EachParam, WholeTrace
from .records import CAP, PARSE, Proposal, StepReport
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

NOT_ASKED = NOT_ASKED_TEXT  # older name


class Prime(Optimizer):
    """Show the model the minimal subgraph, the feedback and the last `memory` attempts, and
    ask for new values (the `examples` worst failing outputs are listed side by side with their
    feedback; a prose text's compact prompt also lists up to `past_examples` failing examples
    of earlier minibatches): code and text in one fenced block per parameter (under its name), other
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
        past_examples: int = 4,
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
        self.completions: dict[str, Any] = {}  # this step's answers, with what each cost
        self.budget_tokens = budget_tokens
        self.memory = memory
        self.reasoning_chars = reasoning_chars
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.prefill = prefill
        self.examples = examples
        self.past_examples = past_examples
        # a prose text's failing examples of earlier steps, newest last (shown with this step's)
        self.failures: dict[str, list[str]] = {}
        self.start = self.values()  # before any step: what a prose text has learned is since
        self.rejections: list[str] = []  # reasons from the last answer, shown in the next prompt
        self.focus: set[str] | None = None  # the parameters it writes (None: all)
        self.whole_trace = WholeTrace(self)
        self.each_param = EachParam(self)

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
        room = self.answer_cap() - self.reasoning_chars // 3 - 48
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

    def answer_cap(self) -> int:
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
        # one prose text is compact by default only when it is all there is (Hybrid's
        # whole-trace prompt also asks the model for its numbers)
        alone = fits_compact(written) and (written[0].kind == "code" or len(self.params) == 1)
        if self.compact or alone or continues_assistant(self.llm):
            return written
        return []

    def use_compact(self) -> bool:
        """Whether the prompts are the compact ones."""
        return bool(self.compact_params())

    def compact_messages(self, param: Param | None = None, *, fresh: bool = False,
                         rejections: list[str] | None = None,
                         rule: bool = False) -> list[Message] | None:
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
            limit=self.examples, fresh=fresh, rule=rule,
            among=self.params if len(self.params) > 1 else None,
            earlier=self.earlier_failures(param) if is_prose(param) else None,
        )
        used = sum(estimate_tokens(m["content"]) for m in messages)
        return messages if used <= self.budget_tokens else None

    def earlier_failures(self, param: Param) -> list[str]:
        """Up to `past_examples` failing examples of earlier minibatches for a prose text,
        newest last, none of them this step's; this step's are kept for the next steps.
        Reflection over one minibatch sees 4 examples of a convention; over several it sees
        more of them (issue 19: a JSON shape's rules were in every failure, one at a time)."""
        if not self.past_examples:
            return []
        among = self.params if len(self.params) > 1 else None
        now = failing_outputs(param, self.examples, among=among)
        kept = [row for row in self.failures.get(param.name, []) if row not in now]
        self.failures[param.name] = (kept + now)[-4 * max(self.past_examples, self.examples):]
        return kept[-self.past_examples:]

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
    def ask_full(self, report: StepReport) -> list[str]:
        """Ask the model for `candidates` answers to the full prompt; their texts (empty when
        the call failed: see `report.error`)."""
        try:
            messages = self.messages()
        except RenderBudgetError as exc:
            report.error = f"prompt does not fit budget_tokens={self.budget_tokens}: {exc}"
            return []
        limit = self.full_limit(report)
        start = self.prefix()
        if start:
            messages = [*messages, {"role": "assistant", "content": start}]
        completions = self._ask_many(
            report, messages, self.candidates, json_schema=self.schema(), max_tokens=limit,
            temperature=self.temperature,
        )
        texts = self.texts(start, completions, limit)
        if texts:
            report.answers[-len(texts) :] = texts
        return texts

    def full_limit(self, report: StepReport) -> int:
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
                report.problem(note, CAP)
        return min(wanted, cap)

    def texts(self, start: str, completions: list[Any], limit: int) -> list[str]:
        """The whole answers; those that reached `limit` tokens are remembered as cut short
        (a block they never closed is then rejected, not kept)."""
        texts = [self._prefixed(start, c.text) for c in completions]
        self.cut_short.update(t for t, c in zip(texts, completions) if reached_limit(c, limit))
        self.completions.update(zip(texts, completions))
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

    def retries(self, *, long: bool = False, compact: bool = True) -> bool:
        """The one retry rule of both proposers: ask once more in the same step when no answer
        changed anything (`retry`; by default with the compact prompts only), never for a
        value too long to write anew (`long`)."""
        wanted = compact if self.retry is None else self.retry
        return bool(wanted) and not long

    def proposals(self, report: StepReport) -> list[Proposal]:
        """Ask the model; one proposal per answer (per-parameter prompts: see `EachParam`).
        Numbers the model wrote outside `focus` are each proposal's `outside`."""
        self.cut_short, self.completions = set(), {}
        each = self.compact_params()
        if each and all(self.compact_messages(p) is not None for p in each):
            return self.each_param.propose(report, each)
        return self.whole_trace.propose(report)

    def _propose(self, report: StepReport) -> list[Proposal]:
        return self.proposals(report)

    def _settled(self, report: StepReport) -> None:
        if not report.proposals and report.answers and not self.use_compact() \
                and self.retries(compact=False):
            self.whole_trace.retry(report, report.answers[0])
        self.note_rejections(report)

    def note_rejections(self, report: StepReport) -> None:
        """Remember why proposals were rejected, to tell the model in the next prompt."""
        notes = [u.reason or "" for u in report.rejected][:5]
        notes += report.problems_of(PARSE)[:2]
        self.rejections = [n[:300] for n in notes if n]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["options"] = {
            "budget_tokens": self.budget_tokens,
            "memory": self.memory,
            "reasoning_chars": self.reasoning_chars,
            "prefill": self.prefill,
            "examples": self.examples,
            "past_examples": self.past_examples,
            "candidates": self.candidates,
            "compact": self.compact,
            "retry": self.retry,
            "edits": self.edits,
        }
        state["rejections"] = list(self.rejections)
        state["failures"] = {name: list(rows) for name, rows in self.failures.items()}
        state["start"] = dict(self.start)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.rejections = list(state.get("rejections", []))
        self.failures = {name: list(rows) for name, rows in state.get("failures", {}).items()}
        self.start = {**self.start, **state.get("start", {})}


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
