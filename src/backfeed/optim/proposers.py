"""Prime's two proposers: the whole trace in one prompt, or each parameter with its own prompt.

Both read answers into `Proposal` records without touching a parameter, and share Prime's
options, asking, limits and its one retry rule (`Prime.retries`): ask once more, within the
same step, when no answer changed anything, never for a value too long to write anew.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..llm import Message
from .apply import answer_proposal
from .asking import SAMPLE_TEMPERATURE
from .compact import blamed, is_prose, retry_turn
from .history import values_key
from .lessons import LESSONS, keep_lessons
from .parse import read_answer
from .records import NOT_ASKED, RETRY, ParamUpdate, Problem, Proposal, StepReport
from .schema import rewrite_tokens

if TYPE_CHECKING:
    from ..graph import Param
    from .prime import Prime

NOT_ASKED_TEXT = "not asked: the feedback names other parameters, not it"  # `name: ` before it


class WholeTrace:
    """One prompt with the minimal subgraph, the feedback and the memory; `candidates`
    answers, each one proposal. Its retry shows the model its answer and the first failing
    test."""

    by = "Prime"

    def __init__(self, prime: Prime) -> None:
        self.prime = prime

    def propose(self, report: StepReport) -> list[Proposal]:
        return [self.read(t) for t in self.prime.ask_full(report)]

    def read(self, text: str) -> Proposal:
        p = self.prime
        return answer_proposal(p.params, p.values(), [(text, p.focus)], by=self.by,
                               partial=set(p.partial), cut_short=p.cut_short,
                               completions=p.completions)

    def retry(self, report: StepReport, answer: str) -> None:
        """Ask once more after an answer that changed nothing: the same prompt, the model's
        answer, and a turn naming what it did and the first failing test, sampled so that the
        new answer can differ. Its proposal, if it changes anything, is the step's."""
        p = self.prime
        rejected = [u.reason or "" for u in report.rejected]
        messages = list(report.prompts[0])
        if messages[-1]["role"] == "assistant":
            messages.pop()  # the prefill: the whole answer follows
        messages += [{"role": "assistant", "content": answer},
                     {"role": "user", "content": retry_turn(p.params, rejected)}]
        start = p.prefix()
        if start:
            messages.append({"role": "assistant", "content": start})
        asked = StepReport(step=report.step)
        limit = p.full_limit(report)
        found = p._ask_many(asked, messages, 1, json_schema=p.schema(),
                            temperature=SAMPLE_TEMPERATURE, max_tokens=limit)
        report.absorb(asked)
        if not found:
            report.problem(f"retry: the call failed: {asked.error}", RETRY)
            return
        text = p.texts(start, found, limit)[0]
        report.answers[-1] = text
        retried = StepReport(step=report.step)
        p._settle(retried, p.values(), [self.read(text)])
        outcome = "changed the values" if retried.proposals else "changed nothing either"
        report.problem(f"retry: the answer changed nothing; asked once more with the failing "
                       f"test ({outcome})", RETRY)
        report.problems += [q.labelled("retry") for q in retried.problems]
        report.rejected += [replace(u, reason=f"retry: {u.reason}") for u in retried.rejected]
        if retried.proposals:
            report.proposals = retried.proposals
            report.updates, report.reasoning = retried.updates, retried.reasoning


RULE_START = "Answer"  # how a prefilled rule begins


class EachParam:
    """One compact prompt per parameter (no trace), `candidates` answers each; a parameter
    none of whose answers changed it is asked once more for it anew, without its value (not
    when the value is too long to write anew). The proposals: the distinct changes of the
    parameters combined (first answers first, at most `candidates` times the number of
    parameters changed; only when several changed), then each answer alone."""

    by = "Prime (per parameter)"

    def __init__(self, prime: Prime) -> None:
        self.prime = prime

    def propose(self, report: StepReport, each: list[Param]) -> list[Proposal]:
        p = self.prime
        p.partial = {}  # compact prompts show each value whole
        asked: list[tuple[Param, list[str]]] = []
        for param in each:
            if blamed(param, p.params) is False:
                report.problem(f"{param.name}: {NOT_ASKED_TEXT}", NOT_ASKED, param.name)
                continue
            edits = p.edit_reasons([param], {})
            limit = p.answer_limit(report, [param], edits)
            messages = p.compact_messages(param)
            assert messages is not None  # checked by `Prime.proposals`
            texts = self.ask(report, messages, param, p.candidates, limit)
            if not any(self.changes(param, t) for t in texts):
                texts += self.retry(report, param, texts, limit, long=bool(edits) or
                                    rewrite_tokens(param) > p.answer_cap())
            asked.append((param, texts))
        changes = [(q, self.distinct_changes(q, texts)) for q, texts in asked]
        changes = [(q, texts) for q, texts in changes if texts]
        proposals: list[Proposal] = []
        if len(changes) > 1:  # the changes of several parameters together, first ones first
            combos = itertools.islice(itertools.product(*(texts for _, texts in changes)),
                                      max(p.candidates, 1) * len(changes))
            for combo in combos:
                proposals.append(self.read([(t, {q.name}) for (q, _), t in zip(changes, combo)]))
        alone = [self.read([(t, {q.name})]) for q, texts in asked for t in texts]
        return proposals + alone + self.lessons_kept(alone, [q for q, _ in asked])

    def lessons_kept(self, proposals: list[Proposal], params: list[Param]) -> list[Proposal]:
        """For each proposal that rewrote a prose text and dropped rules its current value
        had learned since the start (`lessons.learned`), one more candidate: the proposal with
        those rules put back as its last lines, so that a rule learned at step 2 is not lost
        at step 5 because one answer left it out. Both are evaluated; the scores decide."""
        p = self.prime
        now = p.values()
        extra = []
        for param in params:
            start = p.start.get(param.name)
            if not is_prose(param) or not isinstance(start, str):
                continue
            for proposal in proposals:
                new = proposal.values.get(param.name)
                if not isinstance(new, str) or new == now[param.name]:
                    continue
                kept = keep_lessons(start, str(now[param.name]), new)
                if kept is None:
                    continue
                value, dropped = kept
                extra.append(replace(proposal.with_values(
                    {**proposal.values, param.name: value},
                    Problem(f"{param.name}: kept {len(dropped)} rule(s) the current value learned "
                            f"and this answer dropped: {'; '.join(dropped)[:200]}", LESSONS,
                            param.name)), by=f"{self.by}, lessons kept"))
        return extra

    def retry(self, report: StepReport, param: Param, texts: list[str], limit: int, *,
              long: bool) -> list[str]:
        """No answer changed `param`: ask once more for it anew without its value (Prime's
        retry rule decides); the new answers."""
        p = self.prime
        if not p.retries(long=long):
            if long and p.retries(long=False):
                report.problem(f"retry: no answer changed {param.name}; not asked for it anew, "
                               "which shows no value: a long value changes by edits only", RETRY)
            return []
        rejected = [u.reason or "" for u in self.trial(param, texts[0])[1]] if texts else []
        if is_prose(param):
            return self.rule_retry(report, param, rejected, limit)
        fresh = p.compact_messages(param, fresh=True, rejections=rejected[:2])
        if fresh is None:
            return []
        more = self.ask(report, fresh, param, 1, limit)
        changed = bool(more) and self.changes(param, more[0])
        what = "the function" if param.kind == "code" else "a value"
        report.problem(f"retry: no answer changed {param.name}; asked once more for {what} anew "
                       f"({'changed the values' if changed else 'changed nothing either'})", RETRY)
        return more

    def rule_retry(self, report: StepReport, param: Param, rejected: list[str], limit: int
                   ) -> list[str]:
        """A prose text none of whose answers changed it: ask for one new rule, with its
        value shown (asked anew without it, a small model pastes a training input), and add
        the rule to the value as a line; the answer so made, as if written whole."""
        messages = self.prime.compact_messages(param, rule=True, rejections=rejected[:2])
        # prefilled, the rule starts as a rule would: a small model given an empty line closes
        # the block at once (measured on the 0.5B, benchmarks/instruction_answers.py)
        current = str(param._value).rstrip("\n") + "\n" + RULE_START
        more = self.ask(report, messages, param, 1, limit, then=current) \
            if messages is not None else []
        made = [with_rule(param, text) for text in more]
        made = [text for text in made if text is not None]
        changed = bool(made) and self.changes(param, made[0])
        report.problem(f"retry: no answer changed {param.name}; asked once more for one rule to "
                       f"add ({'changed the values' if changed else 'changed nothing either'})",
                       RETRY)
        return made

    def read(self, answers: list[tuple[str, set[str]]]) -> Proposal:
        p = self.prime
        return answer_proposal(p.params, p.values(), answers, by=self.by, cut_short=p.cut_short,
                               completions=p.completions)

    def ask(self, report: StepReport, messages: list[Message], param: Param, n: int,
            limit: int, then: str = "") -> list[str]:
        """`n` answers for `param`; with a prefill, the answer starts with its frame and then
        `then` (the rule retry's current value, so the model can only add to it)."""
        p = self.prime
        start = p.prefix([param])
        start = start + then if start else ""
        if start:
            messages = [*messages, {"role": "assistant", "content": start}]
        completions = p._ask_many(report, messages, n, max_tokens=limit,
                                  temperature=p.temperature)
        texts = p.texts(start, completions, limit)
        if texts:
            report.answers[-len(texts) :] = texts
        return texts

    def trial(self, param: Param, text: str) -> tuple[dict[str, Any], tuple[ParamUpdate, ...]]:
        """The values after reading `text` for `param`, and its rejected updates."""
        proposal = self.read([(text, {param.name})])
        return proposal.values, proposal.rejected

    def distinct_changes(self, param: Param, texts: list[str]) -> list[str]:
        """The answers that change `param` to a value not yet evaluated, one per value."""
        p = self.prime
        found: dict[str, str] = {}
        now = p.values()
        for text in texts:
            after, _ = self.trial(param, text)
            if after != now and values_key(after) not in p.history.keys():
                found.setdefault(repr(after[param.name]), text)
        return list(found.values())

    def changes(self, param: Param, text: str) -> bool:
        """Whether `text` sets `param` to a value never evaluated with the others as now."""
        return bool(self.distinct_changes(param, [text]))


def with_rule(param: Param, text: str) -> str | None:
    """An answer holding `param`'s value with the first new line `text` wrote for it (after
    the current value, when it wrote that too) added as its last line; None when the answer
    holds no line the value does not already have."""
    found = read_answer(text, [param]).suggestion.get(param.name)
    if not isinstance(found, str) or not found.strip():
        return None
    current = str(param._value).rstrip("\n")
    written = found.strip()
    if written.startswith(current.strip()):  # the value, then what was added (a prefill)
        written = written[len(current.strip()):]
    lines = {line.strip() for line in current.splitlines()}
    new = [line.strip() for line in written.splitlines()
           if line.strip() and line.strip() not in lines
           and len(line.split()) >= 3]  # "Answer" alone (the prefill, closed at once) is none
    if not new:
        return None
    return f"### {param.name}\n```text\n{current}\n{new[0]}\n```"  # one rule a step
