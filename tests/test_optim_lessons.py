"""A prose text's learned rules: found, kept when an answer drops them, evaluated as a candidate."""

from __future__ import annotations

import backfeed as bf
from backfeed.optim import Prime
from backfeed.optim.lessons import LESSONS, covered, keep_lessons, learned, sentences

START = "Extract the order as JSON."
LEARNED = ("Extract the order as JSON. Use the keys item and qty.\n"
           "- qty is an integer, never a word.")


def test_sentences_cut_lines_into_rules():
    assert sentences(LEARNED) == ["Extract the order as JSON.", "Use the keys item and qty.",
                                  "- qty is an integer, never a word."]


def test_a_paraphrase_covers_a_rule_and_a_rewrite_that_drops_it_does_not():
    assert covered("Use the keys item and qty.", "Answer with the keys item and qty only.")
    assert not covered("- qty is an integer, never a word.", "Answer with the keys item and qty.")


def test_learned_rules_are_those_the_start_did_not_say():
    assert learned(START, LEARNED) == ["Use the keys item and qty.",
                                       "- qty is an integer, never a word."]
    assert learned(START, START) == []


def test_keep_lessons_puts_back_only_the_dropped_rules():
    new = "Reply with one JSON object with the keys item and qty."
    value, dropped = keep_lessons(START, LEARNED, new)
    assert dropped == ["- qty is an integer, never a word."]
    assert value == new + "\n- qty is an integer, never a word."
    assert keep_lessons(START, LEARNED, LEARNED + " Nothing else.") is None
    assert keep_lessons(START, START, "Something new entirely.") is None  # nothing learned yet


def _program(value: str):
    instruction = bf.param(value, name="instruction", description="the system prompt")

    @bf.op
    def answer(instruction: str, question: str) -> str:
        """The model's answer (a fixed one)."""
        return "no"

    def batch():
        out = answer(instruction, bf.node("Add 6 mugs."))
        out.backward(bf.Feedback(score=0.0, text="wrong: expected {'item': 'mugs', 'qty': 6}"))

    return instruction, batch


def test_a_step_that_drops_a_learned_rule_also_proposes_the_answer_with_it_kept():
    instruction, batch = _program(START)
    new = "Reply with one JSON object with the keys item and qty."
    llm = bf.llm.Scripted([f"### instruction\n```text\n{new}\n```"])
    opt = Prime([instruction], llm=llm, compact=True, retry=False)
    instruction.value = LEARNED  # what earlier accepted steps taught it
    batch()
    report = opt.propose()
    values = [p.values["instruction"] for p in report.proposals]
    assert values == [new, new + "\n- qty is an integer, never a word."]
    merged = report.proposals[1]
    assert merged.by.endswith("lessons kept")
    assert [q.kind for q in merged.problems] == [LESSONS]
    assert instruction.value == LEARNED  # proposing changes no parameter
    state = opt.state_dict()
    assert state["start"] == {"instruction": START}
    again = Prime([instruction], llm=bf.llm.Scripted([]), compact=True)
    again.load_state_dict(state)  # built after the value changed, the start comes from the state
    assert again.start == {"instruction": START}


def test_an_answer_that_keeps_every_rule_gets_no_extra_candidate():
    instruction, batch = _program(START)
    new = LEARNED + "\nAnswer with JSON only."
    opt = Prime([instruction], llm=bf.llm.Scripted([f"### instruction\n```text\n{new}\n```"]),
                compact=True, retry=False)
    instruction.value = LEARNED
    batch()
    assert [p.values["instruction"] for p in opt.propose().proposals] == [new]
