"""Prime on one code parameter: the compact prompt, and the retry after an answer that
changed nothing (counted in the budgets)."""

from __future__ import annotations

import pytest

import backfeed as bf
from backfeed.budget import BudgetExceeded
from backfeed.llm.meter import Metered
from backfeed.optim import Prime


def second(xs):
    """Return the second smallest item of xs."""
    return sorted(xs)[0]


def make_op() -> bf.Op:
    return bf.op(second, trainable=True)


BUGGY = make_op().code.value.strip("\n")
FIXED = BUGGY.replace("[0]", "[1]")


def answer(code: str) -> str:
    return f"### second\n```python\n{code}\n```"


def run_tests(op: bf.Op) -> None:
    for xs, expected in (([3, 1, 2], 2), ([2, 2], 2), ([1, 2], 2)):
        out = op(bf.node(xs))
        ok = out.value == expected
        text = ("passed" if ok else
                f"second({xs!r}) returned {out.value!r}, expected {expected!r}")
        out.backward(bf.Feedback(score=float(ok), text=text))


def test_compact_prompt_shows_spec_code_and_failing_tests_without_the_trace():
    op = make_op()
    run_tests(op)
    opt = Prime([op.code], llm=bf.llm.Scripted([]))
    system, user = opt.messages()
    assert "fix a Python function" in system["content"]
    text = user["content"]
    assert "#Spec\nReturn the second smallest item of xs." in text
    assert f"```python\n{BUGGY}\n```" in text
    assert "- second([3, 1, 2]) returned 1, expected 2" in text
    assert "- second([1, 2]) returned 1, expected 2" in text
    assert "passed" not in text and "[2, 2]" not in text  # the passing test is left out
    assert "#Graph" not in text and "#Rejected" not in text and "#Earlier" not in text
    assert "### second" in text  # the block format the parser reads
    full = Prime([op.code], llm=bf.llm.Scripted([]), compact=False).messages()
    assert len(text) < 0.6 * len(full[1]["content"]) and "#Graph" in full[1]["content"]


def test_compact_prompt_is_not_used_for_several_parameters():
    op = make_op()
    x = bf.param(1.0, name="x")
    run_tests(op)
    _, user = Prime([op.code, x], llm=bf.llm.Scripted([])).messages()
    assert "#Graph" in user["content"] and "#Spec" not in user["content"]


def test_compact_prompt_shows_rejections_and_earlier_attempts():
    op = make_op()
    run_tests(op)
    llm = bf.llm.Scripted([answer("def second(xs) return xs")])
    opt = Prime([op.code], llm=llm)
    opt.step()  # rejected: does not parse
    opt.zero_feedback()
    run_tests(op)
    opt.observe()
    _, user = opt.messages()
    assert "#Rejected from your last answer\n- " in user["content"]


def test_retry_after_an_unchanged_answer_asks_for_the_function_anew_without_its_code():
    op = make_op()
    run_tests(op)
    llm = bf.llm.Scripted([answer(BUGGY), answer(FIXED)])
    opt = Prime([op.code], llm=llm, retry=True, temperature=0.0)
    report = opt.step()
    assert op.code.value.strip() == FIXED
    assert [c["second"].strip() for c in report.candidates] == [FIXED]
    assert report.llm_calls == 2 and len(llm.calls) == 2 and len(report.answers) == 2
    assert report.prompt_tokens > 0 and report.completion_tokens > 0
    user = llm.calls[1].messages[1]["content"]
    assert "#Signature\ndef second(xs):\n#Failing tests\n" in user
    assert "sorted(xs)[0]" not in user  # the code it copied is not shown
    assert "your last answer did not change it. Write the function anew" in user
    assert "- second([3, 1, 2]) returned 1, expected 2" in user
    assert llm.calls[1].options["temperature"] == 0.0
    assert "retry: no answer changed second; asked once more for the function anew " \
        "(changed the values)" in report.problems
    assert [u.name for u in report.updates if u.changed] == ["second"]


def test_retry_with_the_full_prompt_shows_the_answer_and_the_failing_test():
    op = make_op()
    run_tests(op)
    llm = bf.llm.Scripted([answer(BUGGY), answer(FIXED)])
    report = Prime([op.code], llm=llm, retry=True, compact=False).step()
    assert op.code.value.strip() == FIXED and report.llm_calls == 2
    first, second = (c.messages for c in llm.calls)
    assert second[: len(first)] == first
    assert second[len(first)] == {"role": "assistant", "content": answer(BUGGY)}
    turn = second[len(first) + 1]["content"]
    assert turn.startswith("That is the current function, unchanged. It still fails: "
                           "second([3, 1, 2]) returned 1, expected 2")
    assert llm.calls[1].options["temperature"] == 0.8  # sampled, so that it can differ


def test_retry_after_a_rejected_answer_names_the_reason():
    op = make_op()
    run_tests(op)
    llm = bf.llm.Scripted([answer("def second(xs) return xs"), answer(FIXED)])
    report = Prime([op.code], llm=llm, retry=True, compact=False).step()
    turn = llm.calls[1].messages[-1]["content"]
    assert turn.startswith("That answer was rejected: ") and "It still fails" in turn
    assert op.code.value.strip() == FIXED and report.llm_calls == 2
    assert report.rejected and not report.rejected[0].reason.startswith("retry:")
    op2 = make_op()
    run_tests(op2)
    llm2 = bf.llm.Scripted([answer("def second(xs) return xs"), answer(FIXED)])
    Prime([op2.code], llm=llm2, retry=True).step()
    assert "#Rejected from your last answer\n- " in llm2.calls[1].messages[1]["content"]


def test_retry_happens_once_and_only_when_nothing_changed():
    op = make_op()
    run_tests(op)
    llm = bf.llm.Scripted([answer(BUGGY), answer(BUGGY)])
    report = Prime([op.code], llm=llm, retry=True).step()
    assert report.llm_calls == 2 and op.code.value.strip() == BUGGY and report.candidates == []
    assert any("changed nothing either" in p for p in report.problems)
    op2 = make_op()
    run_tests(op2)
    llm2 = bf.llm.Scripted([answer(FIXED)])
    assert Prime([op2.code], llm=llm2, retry=True).step().llm_calls == 1
    for options, calls in (({}, 2), ({"retry": False}, 1), ({"compact": False}, 1)):
        op3 = make_op()
        run_tests(op3)  # by default, retry goes with the compact prompt
        llm3 = bf.llm.Scripted([answer(BUGGY), answer(BUGGY)])
        assert Prime([op3.code], llm=llm3, **options).step().llm_calls == calls, options


def test_retry_call_counts_in_the_budget():
    op = make_op()
    run_tests(op)
    metered = Metered(bf.llm.Scripted([answer(BUGGY), answer(FIXED)]),
                      bf.Budget(llm_calls=1))
    with pytest.raises(BudgetExceeded):
        Prime([op.code], llm=metered, retry=True).step()
    assert metered.spend.calls == 1
    op2 = make_op()
    run_tests(op2)
    metered = Metered(bf.llm.Scripted([answer(BUGGY), answer(FIXED)]))
    Prime([op2.code], llm=metered, retry=True).step()
    assert metered.spend.calls == 2 and metered.spend.prompt_tokens > 0


def test_options_round_trip_in_state():
    op = make_op()
    state = Prime([op.code], llm=bf.llm.Scripted([]), retry=True, compact=False).state_dict()
    assert state["options"]["retry"] is True and state["options"]["compact"] is False


def test_compact_failing_line_shows_call_and_error_when_the_feedback_does_not():
    op = make_op()
    with pytest.raises(bf.ExecutionError) as caught:
        op(bf.node(5))
    caught.value.node.backward("it crashed")
    _, user = Prime([op.code], llm=bf.llm.Scripted([])).messages()
    line = user["content"].split("#Failing tests\n")[1].splitlines()[0]
    assert line.startswith("- second(xs=5) -> raised TypeError: ")
    assert line.endswith("; feedback: it crashed")


# -- one compact prompt per parameter (text and code), as the embedded model gets them ------

def clean(name: str) -> str:
    """Return the name in lower case."""
    return name


def receipt_program():
    """A text template and a function's code, each named by its own part of the feedback."""
    op = bf.op(clean, trainable=True)
    template = bf.param("Items: {items}", name="template",
                        description="format string of the receipt, filled with {items} and {total}")
    rate = bf.param(0.0, name="rate", bounds=(0.0, 1.0))

    def run(problems: list[str]) -> None:
        item = op(bf.node("Apple"))
        out = bf.format(template, items=item, total=(rate + 1) * 2)
        out.backward(bf.Feedback(score=0.3, text="; ".join(problems)))

    return op, template, rate, run


TEMPLATE_FIX = "Items: {items} Total: {total} EUR"
CLEAN_FIX = "def clean(name: str) -> str:\n    return name.lower()"
FEEDBACK = ["clean('Apple') must return 'apple'",
            "the receipt must end with 'Total: {total} EUR': fix the template",
            "the total 2.00 should be 2.40: the rate is wrong"]


def text_answer(value: str) -> str:
    return f"### template\n```text\n{value}\n```"


def code_answer(code: str) -> str:
    return f"### clean\n```python\n{code}\n```"


def test_fields_lists_the_format_fields_of_the_description_and_value():
    from backfeed.optim.compact import fields

    p = bf.param("Dear {name}, {{literal}} {greeting}", name="t",
                 description="filled with {name} and {total}")
    assert fields(p) == ["name", "total", "greeting"]


def test_focus_feedback_keeps_the_parts_that_name_the_parameter():
    from backfeed.optim.compact import blamed, focus_feedback

    op, template, rate, run = receipt_program()
    params = [template, op.code, rate]
    text = "; ".join(FEEDBACK)
    assert focus_feedback(text, template, params) == (FEEDBACK[1], True)
    assert focus_feedback(text, op.code, params) == (FEEDBACK[0], True)
    # a part that names no parameter goes to a parameter no part names
    other = bf.param("x", name="other")
    assert focus_feedback("too long; the template is wrong", other, [template, other]) == \
        ("too long", False)
    assert focus_feedback(text, template, [template]) == (text, True)  # alone: all of it
    run(FEEDBACK[2:])
    assert blamed(template, params) is False and blamed(rate, params) is True
    op2, template2, _, run2 = receipt_program()
    run2(["the receipt is wrong"])
    assert blamed(template2, [template2, op2.code]) is None


def test_each_parameter_gets_its_own_compact_prompt_and_their_changes_are_combined():
    op, template, _, run = receipt_program()
    run(FEEDBACK)
    llm = bf.llm.Scripted([text_answer(TEMPLATE_FIX), text_answer("Items: 10"),
                           code_answer(CLEAN_FIX), code_answer(CLEAN_FIX)])
    opt = Prime([template, op.code], llm=llm, compact=True, candidates=2, temperature=0.0)
    report = opt.step()
    assert report.llm_calls == 4 and len(llm.calls) == 4
    first, third = llm.calls[0].messages[1]["content"], llm.calls[2].messages[1]["content"]
    assert "#Parameter `template`" in first and "#Current value\n```text\nItems: {items}\n```" in first
    assert "#Fields (write them in braces; the program fills them in)\n- {items}\n- {total}" in first
    assert FEEDBACK[1] in first and "clean(" not in first and "rate is wrong" not in first
    assert "#Spec\nReturn the name in lower case." in third and FEEDBACK[0] in third
    assert "Total" not in third
    # both template changes with the code fix, then each change alone
    assert len(report.candidates) == 5
    together = report.candidates[:2]
    assert [c["template"] for c in together] == [TEMPLATE_FIX, "Items: 10"]
    assert all(c["clean"].strip() == CLEAN_FIX for c in together)
    alone = report.candidates[2:]
    assert {c["template"] for c in alone} == {TEMPLATE_FIX, "Items: 10", "Items: {items}"}
    assert template.value == TEMPLATE_FIX and op.code.value.strip() == CLEAN_FIX


def test_a_parameter_the_feedback_does_not_name_is_not_asked():
    op, template, rate, run = receipt_program()
    run(FEEDBACK[2:])  # only the rate is named
    llm = bf.llm.Scripted([code_answer(CLEAN_FIX)])
    opt = Prime([template, op.code, rate], llm=llm, compact=True)
    opt.focus = {"template", "clean"}  # as Hybrid's Prime: the rate is the sampler's
    report = opt.step()
    assert len(llm.calls) == 0 and report.candidates == []
    assert "template: not asked: the feedback names other parameters, not it" in report.problems


def test_hybrid_offers_the_samplers_numbers_when_its_prime_asks_nothing():
    pytest.importorskip("optuna")
    from backfeed.optim import Hybrid

    op, template, rate, run = receipt_program()
    run(FEEDBACK[2:])
    llm = bf.llm.Scripted([])
    report = Hybrid([template, op.code, rate], llm=llm, compact=True, seed=0).step()
    assert len(llm.calls) == 0
    assert len(report.candidates) == 1 and report.candidates[0]["rate"] != 0.0
    assert report.candidates[0]["template"] == "Items: {items}"


def test_earlier_attempts_of_a_parameter_are_those_made_with_the_others_as_now():
    op, template, _, run = receipt_program()
    opt = Prime([template, op.code], llm=bf.llm.Scripted([]), compact=True)
    now = {"template": template.value, "clean": op.code.value}
    opt.record({**now, "template": "Items: 10"}, 0.2, "the template is wrong")
    opt.record({"template": "Sum: {total}", "clean": CLEAN_FIX}, 0.9, "ok")  # code differed
    run(FEEDBACK)
    user = opt.compact_messages(template)[1]["content"]
    assert "#Earlier attempts" in user and "Items: 10" in user
    assert "Sum: {total}" not in user


def test_a_text_parameter_sees_each_failing_input_output_and_whole_feedback():
    instruction = bf.param("Answer the question.", name="instruction",
                           description="instructions given to the model before every question")

    @bf.op
    def prompt(instruction: str, question: str) -> list:
        """The chat messages."""
        return [{"role": "system", "content": instruction}, {"role": "user", "content": question}]

    @bf.op
    def answer(messages: list) -> str:
        """The model's answer (here: a fixed one)."""
        return "The words in order are: a, b"

    tail = "The output has no line 'Answer: <answer>', so the answer was guessed from it."
    for question in ("Sort: b a", "Sort: d c"):
        out = answer(prompt(instruction, bf.node(question)))
        out.backward(bf.Feedback(score=0.0, text=f"wrong: expected 'a b'. {tail}"))
    user = Prime([instruction], llm=bf.llm.Scripted([]), compact=True) \
        .compact_messages(instruction)[1]["content"]
    assert "#Parameter `instruction`" in user and "```text\nAnswer the question.\n```" in user
    assert "- input: Sort: b a\n  output: \"The words in order are: a, b\"\n  feedback: " in user
    assert "- input: Sort: d c\n" in user and "role" not in user  # the question, not the list
    assert user.count(tail) == 2  # the whole feedback, not cut in the middle


def test_a_text_answer_that_repeats_the_value_is_retried_without_the_value_shown():
    _op, template, _, run = receipt_program()
    run(FEEDBACK)
    llm = bf.llm.Scripted([text_answer("Items: {items}"), text_answer(TEMPLATE_FIX)])
    opt = Prime([template], llm=llm, compact=True, temperature=0.0)
    report = opt.step()
    assert len(llm.calls) == 2 and report.llm_calls == 2
    fresh = llm.calls[1].messages[1]["content"]
    assert "#Current value" not in fresh and "Your last answer repeated the current value" in fresh
    assert "- {items}\n- {total}" in fresh  # the fields are still listed
    assert [c["template"] for c in report.candidates] == [TEMPLATE_FIX]
    assert "retry: no answer changed template; asked once more for a value anew " \
        "(changed the values)" in report.problems


def test_the_compact_code_prompt_shows_what_the_function_got_and_gave_inside_the_program():
    @bf.op(trainable=True)
    def spamminess(text: str) -> float:
        """How spammy the text is, 0 to 1: 1 for texts that sell something."""
        return 0.1

    @bf.op
    def decide(score: float) -> str:
        """spam above 0.5, else ham."""
        return "spam" if score > 0.5 else "ham"

    out = decide(spamminess(bf.node("BUY NOW cheap pills")))
    out.backward(bf.Feedback(score=0.0, text="expected spam"))
    llm = bf.llm.Scripted(["### spamminess\n```python\ndef spamminess(text: str) -> float:\n"
                           "    return 0.9\n```"])
    bf.optim.Prime([spamminess.code], llm=llm, compact=True).step()
    user = llm.calls[0].messages[-1]["content"]
    assert "spamminess(text=\"BUY NOW cheap pills\") -> 0.1" in user
    assert "the program then returned decide(score=0.1) -> \"ham\"; feedback: expected spam" in user


def _sorting_program():
    instruction = bf.param("Answer the question.", name="instruction",
                           description="instructions given to the model before every question")

    @bf.op
    def prompt(instruction: str, question: str) -> list:
        """The chat messages."""
        return [{"role": "system", "content": instruction}, {"role": "user", "content": question}]

    @bf.op
    def answer(messages: list) -> str:
        """The model's answer (here: a fixed one)."""
        return "no idea"

    def batch(questions):
        for question in questions:
            out = answer(prompt(instruction, bf.node(question)))
            out.backward(bf.Feedback(score=0.0, text=f"wrong: expected the sorted {question}"))

    return instruction, batch


def test_a_prose_text_also_sees_the_failing_examples_of_earlier_minibatches():
    instruction, batch = _sorting_program()
    opt = Prime([instruction], llm=bf.llm.Scripted([]), compact=True, past_examples=2)
    batch(["Sort: b a", "Sort: d c"])
    first = opt.compact_messages(instruction)[1]["content"]
    assert "earlier minibatches" not in first  # nothing earlier yet
    opt.zero_feedback()
    batch(["Sort: f e", "Sort: b a"])  # one input again: shown once, among this step's
    again = opt.compact_messages(instruction)[1]["content"]
    assert again == opt.compact_messages(instruction)[1]["content"]  # asking again adds nothing
    now, earlier = again.split("#Failing examples of earlier minibatches (made with earlier values)")
    assert "Sort: f e" in now and "Sort: b a" in now and "Sort: d c" not in now
    assert "- input: Sort: d c" in earlier and "Sort: b a" not in earlier
    restored = Prime([instruction], llm=bf.llm.Scripted([]), compact=True, past_examples=2)
    restored.load_state_dict(opt.state_dict())  # a resumed run remembers them
    assert restored.failures == opt.failures and restored.past_examples == 2
    off = Prime([instruction], llm=bf.llm.Scripted([]), compact=True, past_examples=0)
    off.failures = dict(opt.failures)
    assert "earlier minibatches" not in off.compact_messages(instruction)[1]["content"]


def test_a_prose_text_may_hold_a_json_example_but_code_may_not():
    instruction, batch = _sorting_program()
    batch(["Sort: b a"])
    user = Prime([instruction], llm=bf.llm.Scripted([]), compact=True) \
        .compact_messages(instruction)[1]["content"]
    assert "no JSON quoting" not in user and "not quoted as a whole" in user
    assert "<placeholders>" in user  # a structured output is asked for by its shape
    op = make_op()
    run_tests(op)
    code = Prime(op.parameters(), llm=bf.llm.Scripted([])).compact_messages()[1]["content"]
    assert "no JSON quoting, no example calls, no tests" in code
