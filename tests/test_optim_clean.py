"""The optimizer's own format never becomes a value: headings, fences, rules and quotes are
taken out (or the value refused), and a value that only re-spaces or re-quotes one already
evaluated is not evaluated again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

import backfeed as bf
from backfeed.optim import Prime
from backfeed.optim.apply import answer_proposal
from backfeed.optim.clean import META, clean_text, same_text
from backfeed.train.guards import CopyGuard

SEED = "Classify the support ticket."

# The raw proposals quoted in issue 19, as the 0.5B model wrote them for an instruction
ISSUE_19 = [
    ("Classify the support ticket into one label.\n"
     "In the blocks, plain text: no JSON quoting, no example calls, no tests.",
     "Classify the support ticket into one label."),
    ("### instruction\n```text\nAnswer with one label: REFUND, LOCKOUT, LATE or BROKEN.\n```",
     "Answer with one label: REFUND, LOCKOUT, LATE or BROKEN."),
    ('"Classify the support ticket."', SEED),
    ("Write the new value of `instruction`, changed to fix the feedback.\n"
     "Use the labels REFUND and LATE.", "Use the labels REFUND and LATE."),
    ("#Current value\nAnswer in one word.", "Answer in one word."),
]


@pytest.mark.parametrize("raw, kept", ISSUE_19)
def test_the_answer_formats_text_is_taken_out_of_a_value(raw, kept):
    cleaned = clean_text(raw, SEED, "instruction")
    assert cleaned.value == kept
    assert cleaned.removed


def test_what_the_old_value_already_had_and_the_users_own_text_stay():
    old = "### instruction\nAnswer with one JSON object and nothing else: {\"a\": 1}"
    assert clean_text(old + "\nBe brief.", old, "instruction").value == old + "\nBe brief."
    own = "# Rules\n- Refunds are REFUND.\n- Say \"LATE\" for parcels that did not arrive."
    assert clean_text(own, SEED, "instruction").removed == []
    two = '"REFUND" or "LATE"'  # two quoted words, not one quoted value
    assert clean_text(two, SEED, "instruction").value == two


def _prime_answer(answer: str, value: str = SEED):
    p = bf.param(value, name="instruction")
    return p, answer_proposal([p], {"instruction": value}, [(answer, None)], by="test")


def test_a_proposal_says_what_was_taken_out_and_the_parameter_keeps_its_value():
    p, proposal = _prime_answer('```json\n{"suggestion": {"instruction": "\\"Answer REFUND.\\""}}'
                                '\n```')
    assert proposal.values["instruction"] == "Answer REFUND."
    (note,) = [q for q in proposal.problems if q.kind == META]
    assert note.param == "instruction" and "quotes" in note
    assert p.value == SEED  # making a proposal changes no parameter


def test_a_value_that_is_only_format_text_is_rejected_with_the_reason():
    _, proposal = _prime_answer(
        '{"suggestion": {"instruction": "In the blocks, plain text: no JSON quoting, no example '
        'calls, no tests."}}')
    assert proposal.values["instruction"] == SEED
    (rejected,) = proposal.rejected
    assert rejected.kind == META and "only the answer format's text" in rejected.reason


def test_re_spaced_or_re_quoted_seeds_are_not_evaluated_again():
    assert same_text('  "Classify  the support\nticket."', SEED)
    p = bf.param(SEED, name="instruction")
    answers = [f'{{"suggestion": {{"instruction": "{v}"}}}}' for v in
               ("Classify   the support ticket.", "'Classify the support ticket.'")]
    opt = Prime([p], llm=bf.llm.Scripted(answers), candidates=2)
    bf.format("{i}", i=p).backward(bf.Feedback(score=0.0, text="wrong label"))
    report = opt.propose()
    assert report.proposals == []  # both are the seed once spaces and quotes are set aside
    assert any(q.kind == "repeat" for q in report.problems)


def test_code_is_compared_as_written():
    code = bf.param("def f(x):\n    return x\n", kind="code", name="f")
    opt = Prime([code], llm=bf.llm.Scripted([]))
    seen = opt._seen_key()
    assert seen({"f": "def f(x):\n  return x\n"}) != seen({"f": code.value})


FIXTURES = Path(__file__).parent / "fixtures" / "instruction_answers"
ROWS = [json.loads(line) for path in sorted(FIXTURES.glob("*.jsonl"))
        for line in path.read_text().splitlines() if line.strip()]


def test_there_are_real_answers_of_both_embedded_models():
    assert {r["model"] for r in ROWS} >= {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['model']}: {r['source'][-24:]}" for r in ROWS])
def test_real_answers_leave_no_format_text_and_their_copies_are_caught(row):
    """Raw answers of the embedded models asked to improve an instruction
    (benchmarks/instruction_answers.py), read again by today's code."""
    name, seed = row["name"], row["seed"]
    p = bf.param(seed, name=name)
    guard = CopyGuard(row["trainset"])
    for answer in row["answers"]:
        value = answer_proposal([p], {name: seed}, [(answer, None)], by="fixture").values[name]
        assert clean_text(value, seed, name).removed == []  # nothing of our format is left
        assert not value.lstrip().startswith(("#", "```", '"')), value
        copies = [q for q, _ in row["trainset"] if q in value]
        if copies:  # a training input pasted whole is refused before it is evaluated
            assert guard.reason({name: seed}, {name: value}, {name: "str"}) is not None


def test_a_prose_text_that_was_repeated_is_asked_for_one_rule_added_as_a_line():
    p = bf.param("What date does the text mention?", name="instruction",
                 description="instructions given to the model before every question")
    out = bf.format("{i}", i=p)
    out.backward(bf.Feedback(score=0.0, text="wrong: expected '2015-02-28', got 'Feb 28'"))
    repeat = "### instruction\n```text\nWhat date does the text mention?\n```"
    rule = "### instruction\n```text\nAnswer with the date as YYYY-MM-DD only.\n```"
    llm = bf.llm.Scripted([repeat, rule])
    report = Prime([p], llm=llm, compact=True).propose()
    (proposal,) = report.proposals
    assert proposal.values["instruction"] == ("What date does the text mention?\n"
                                              "Answer with the date as YYYY-MM-DD only.")
    asked = llm.calls[1].messages[-1]["content"]
    assert "What date does the text mention?" in asked  # the value is shown, not hidden
    assert "Write only one new line to add to it" in asked
    assert any("one rule to add (changed the values)" in q for q in report.problems)
    assert p.value == "What date does the text mention?"  # proposing changes nothing


def test_a_rule_answer_adds_one_new_line_and_a_repeat_adds_nothing():
    from backfeed.optim.proposers import with_rule

    p = bf.param("Answer the question.", name="instruction")
    block = "### instruction\n```text\n{}\n```"
    prefilled = block.format("Answer the question.\nAnswer yes or no.\nAnswer yes or no.")
    assert with_rule(p, prefilled) == block.format("Answer the question.\nAnswer yes or no.")
    assert with_rule(p, block.format("Answer the question.")) is None
    assert with_rule(p, "no block at all") is None


def test_a_fenced_example_and_headings_inside_the_value_are_its_own():
    own = ("Answer in JSON.\n## Example\n```json\n{\"label\": \"REFUND\"}\n```\n"
           "## Instruction\nBe brief.")
    assert clean_text(own, SEED, "instruction") .value == own
    wrapped = "```\nAnswer in JSON.\n```"
    assert clean_text(wrapped, SEED, "instruction").value == "Answer in JSON."
    odd = "Answer in JSON.\n```\nBe brief."
    assert clean_text(odd, SEED, "instruction").value == "Answer in JSON.\nBe brief."


def test_an_unfenced_one_line_value_stops_at_the_blank_line_before_the_why():
    p = bf.param("What date does the text mention?", name="instruction")
    answer = ("### instruction\nGive me the date of the text in a YYYY-MM-DD format.\n\n"
              "This new instruction ensures that the output is always a date string.")
    _, proposal = _prime_answer(answer, p.value)
    assert proposal.values["instruction"] == "Give me the date of the text in a YYYY-MM-DD format."


def test_review_cases_of_the_cleaner_keep_the_users_text():
    example = 'Reply in JSON like:\n```json\n{"label": "A"}\n```'
    assert clean_text(example, SEED, "instruction").value == example  # its own closing fence
    assert clean_text("# Task\nClassify the ticket.", SEED, "instruction").removed == []
    assert clean_text("Leave out the others.", SEED, "instruction").removed == []  # one 4-gram


def test_review_cases_of_prompt_outputs_and_demos():
    class Label(BaseModel):
        label: str

    ask = bf.Prompt("text -> result", output=Label, demos=[{"text": "hi", "result": Label(
        label="A")}], llm=bf.llm.Scripted(['{"label": "B"}']))
    assert ask.demos.value[0]["output"] == '{"label": "A"}'  # the object itself, as JSON
    from backfeed.program.prompt import Field, read_field
    assert read_field("12345678901234567890", Field("n", "int")) == 12345678901234567890
    assert read_field("3,5", Field("x", "float")) == 3.0 and read_field(
        "1,234 items", Field("n", "int")) == 1234
