"""Answers a small model can write: fenced blocks per parameter, JSON for typed values, and
the function recovered from a block padded with prose, example calls and tests."""

from __future__ import annotations

import json

import pytest

import backfeed as bf
from backfeed.graph import BoundsError, ChoiceError
from backfeed.llm.wrap import Wrapper
from backfeed.optim import Prime, StepReport, read_answer, recover_function
from backfeed.optim import apply as apply_module
from backfeed.optim.apply import apply_answer, check_suggestion
from backfeed.optim.parse import fenced_blocks

MEDIAN = "def median(xs):\n    return xs[len(xs) // 2]\n"
FIXED = "def median(xs):\n    s = sorted(xs)\n    return s[len(s) // 2]\n"


def code_param() -> bf.Param:
    return bf.param(MEDIAN, name="median", kind="code")


# -- reading blocks -------------------------------------------------------------------------

def test_code_block_under_its_name_is_applied_as_written():
    p = code_param()
    report = StepReport(step=0)
    apply_answer([p], f"Sort first.\n### median\n```python\n{FIXED}```\n", report)
    assert p.value == FIXED and report.applied == {"median": FIXED}
    assert report.reasoning == "Sort first." and report.problems == []


def test_blocks_and_a_json_block_set_code_text_and_numbers_together():
    code, prompt = code_param(), bf.param("Be brief.", name="system_prompt")
    x = bf.param(1.0, name="x", bounds=(0, 10))
    text = (f"### system_prompt\n```text\nAnswer with one word.\nNo punctuation.\n```\n"
            f"### median\n```python\n{FIXED}```\n### values\n```json\n{{\"x\": 4}}\n```\n")
    report = StepReport(step=0)
    apply_answer([code, prompt, x], text, report)
    assert report.applied == {"median": FIXED, "x": 4.0,
                              "system_prompt": "Answer with one word.\nNo punctuation."}
    assert type(x.value) is float and report.rejected == []


def test_a_block_is_matched_by_the_function_it_defines_when_its_label_is_missing():
    code, prompt = code_param(), bf.param("Be brief.", name="system_prompt")
    text = f"Here is the fix:\n```python\n{FIXED}```\n"
    answer = read_answer(text, [code, prompt])
    assert answer.suggestion == {"median": FIXED.rstrip("\n")}


def test_the_only_block_parameter_takes_an_unlabelled_block():
    prompt = bf.param("Be brief.", name="system_prompt")
    answer = read_answer("Sure!\n```\nThink step by step.\n```", [prompt])
    assert answer.suggestion == {"system_prompt": "Think step by step."}


def test_a_text_block_may_hold_a_fenced_example_in_a_longer_fence():
    prompt = bf.param("x", name="prompt")
    text = "### prompt\n````text\nShow code like this:\n```python\nprint(1)\n```\nThen stop.\n````"
    assert read_answer(text, [prompt]).suggestion["prompt"] == (
        "Show code like this:\n```python\nprint(1)\n```\nThen stop."
    )


def test_an_unclosed_block_is_read_and_said_to_be_cut_short():
    p = code_param()
    report = StepReport(step=0)
    apply_answer([p], f"### median\n```python\n{FIXED}", report)
    assert p.value == FIXED
    assert any("not closed" in problem for problem in report.problems)


def test_blocks_with_unknown_labels_are_reported_not_guessed():
    code, prompt = code_param(), bf.param("Be brief.", name="system_prompt")
    report = StepReport(step=0)
    apply_answer([code, prompt], "### notes\n```text\nhello\n```\n### more\n```text\nx\n```",
                 report)
    assert report.applied == {}
    assert any("labels seen: ### notes" in problem for problem in report.problems)


def test_fence_closes_only_on_a_bare_fence_line():
    blocks = fenced_blocks("a\n```python\nx = '```'\n```\nb\n")
    assert [(b.label, b.lang, b.body, b.closed) for b in blocks] == [("a", "python", "x = '```'", True)]


# -- function recovery ----------------------------------------------------------------------

def test_recovery_drops_prose_example_calls_and_prints_and_keeps_needed_imports():
    text = (
        "Here is the corrected function:\n"
        "import statistics\nimport os\n\n"
        "def median(xs):\n    return statistics.median(xs)\n\n"
        "# Example usage:\nmedian([3, 1, 2]) -> 2\nprint(median([1, 2]))\n"
        "This works because statistics handles even lengths.\n"
    )
    assert recover_function(text, "median") == (
        "import statistics\ndef median(xs):\n    return statistics.median(xs)\n"
    )


def test_recovery_keeps_helpers_and_constants_the_function_uses():
    text = (
        "LIMIT = 3\n\ndef _clip(v):\n    return min(v, LIMIT)\n\n"
        "def unused():\n    pass\n\n"
        "def f(xs):\n    return [_clip(v) for v in xs]\n\n"
        "assert f([5]) == [3]\n"
    )
    out = recover_function(text, "f")
    assert out is not None
    assert "LIMIT = 3" in out and "def _clip" in out and "def unused" not in out
    assert "assert" not in out
    namespace: dict = {}
    exec(out, namespace)
    assert namespace["f"]([1, 9]) == [1, 3]


def test_recovery_keeps_a_docstring_at_column_zero_and_takes_the_last_full_definition():
    text = (
        'def f(x):\n    """Add one.\n\nReturns x + 1.\n"""\n    return x\n'
        "Corrected:\n"
        'def f(x):\n    """Add one.\n\nReturns x + 1.\n"""\n    return x + 1\n'
        "f(1)  # 2\n"
    )
    out = recover_function(text, "f")
    namespace: dict = {}
    exec(out, namespace)
    assert namespace["f"](1) == 2 and "f(1)" not in out.split("return")[-1]


def test_recovery_of_an_indented_function_and_a_missing_one():
    assert recover_function("    def g(a):\n        return a\n    g(1)", "g") == (
        "def g(a):\n    return a\n"
    )
    assert recover_function("def other():\n    pass\n", "g") is None
    assert recover_function("def g(a):\n    return (a\n", "g") is None


def test_recovered_code_is_applied_and_unrecoverable_code_is_rejected_with_its_reason():
    p = code_param()
    report = StepReport(step=0)
    apply_answer([p], f"### median\n```python\n{FIXED}\nprint(median([3, 1, 2]))\n```", report)
    assert p.value == FIXED
    p2 = code_param()
    report = StepReport(step=0)
    apply_answer([p2], "### median\n```python\ndef mid(xs):\n    return 1\n```", report)
    assert p2.value == MEDIAN
    assert report.rejected[0].reason.startswith("syntax: 'median': the code must define")


# -- checking without applying ----------------------------------------------------------------

def test_check_suggestion_sets_nothing_and_does_not_build_a_step_report(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("check_suggestion must not apply")

    monkeypatch.setattr(apply_module, "apply_suggestion", refuse)
    x = bf.param(1.0, name="x", bounds=(0, 10))
    mode = bf.param("a", name="mode", choices=["a", "b"])
    accepted, rejected = check_suggestion([x, mode], {"x": 3, "mode": "c", "zz": 1})
    assert accepted == {"x": 3.0} and x.value == 1.0
    assert {u.name: u.kind for u in rejected} == {"zz": "unknown", "mode": "constraint"}


def test_param_validate_raises_typed_errors_for_bounds_and_choices():
    with pytest.raises(BoundsError, match="must lie in"):
        bf.param(1.0, name="x", bounds=(0, 2)).value = 5.0
    with pytest.raises(ChoiceError, match="must be one of"):
        bf.param("a", name="m", choices=["a", "b"]).value = "c"


# -- Prime asks for blocks --------------------------------------------------------------------

@bf.op(trainable=True)
def median(xs: list) -> float:
    return xs[len(xs) // 2]


def failing_run() -> bf.Node:
    out = median(bf.node([3, 1, 2]))
    out.backward(bf.Feedback(score=0.0, text="median([3, 1, 2]) returned 1, expected 2"))
    return out


def test_prime_asks_for_code_in_a_block_and_applies_the_block():
    llm = bf.llm.Scripted([f"### median\n```python\n{FIXED}```"])
    opt = Prime(median.parameters(), llm=llm, prefill=False)
    opt.zero_feedback()
    failing_run()
    report = opt.step()
    user = llm.calls[0].messages[-1]["content"]
    assert ("a line `### median`, then the whole new function `median(xs: list) -> float`"
            in user)
    assert "<" not in user.split("#Task")[1]  # no placeholder a small model could copy
    assert llm.calls[0].options["json_schema"] is None
    assert median.code.value == FIXED and report.applied == {"median": FIXED}
    median.code.value = "def median(xs: list) -> float:\n    return xs[len(xs) // 2]\n"


def test_prime_prefills_the_frame_and_reads_a_continuation_with_or_without_it():
    frame = "### median\n```python\ndef median(xs):\n"
    body = "    s = sorted(xs)\n    return s[len(s) // 2]\n```"
    for answer in (body, frame + body):  # backends return the continuation, or all of it
        code = bf.param(MEDIAN, name="median", kind="code")
        llm = bf.llm.Scripted([answer])
        opt = Prime([code], llm=llm, prefill=True)
        bf.format("{a}", a=code).backward("wrong")
        report = opt.step()
        assert llm.calls[0].messages[-1] == {"role": "assistant", "content": frame}
        assert code.value == FIXED
        assert report.answers[0] == frame + body


def test_a_signature_over_several_lines_is_prefilled_up_to_the_parenthesis():
    seed = "def median(\n    xs,\n):\n    return xs[len(xs) // 2]\n"
    code = bf.param(seed, name="median", kind="code")
    llm = bf.llm.Scripted([" xs):\n    s = sorted(xs)\n    return s[len(s) // 2]\n```"])
    opt = Prime([code], llm=llm, prefill=True)
    bf.format("{a}", a=code).backward("wrong")
    opt.step()
    assert llm.calls[0].messages[-1]["content"] == "### median\n```python\ndef median("
    assert code.value == FIXED  # the space a continuation starts with is dropped


def test_prefill_is_on_by_default_for_a_backend_that_continues_assistant_messages():
    class Continues(Wrapper):
        continues_assistant = True

    code = bf.param(MEDIAN, name="median", kind="code")
    llm = bf.llm.Scripted(["    return sorted(xs)[len(xs) // 2]\n```"])
    opt = Prime([code], llm=Continues(llm))
    bf.format("{a}", a=code).backward("wrong")
    opt.step()
    assert llm.calls[0].messages[-1]["role"] == "assistant"
    assert "sorted(xs)" in code.value
    assert Prime([code], llm=llm).prefix() == ""  # a plain backend gets no prefill


def test_a_short_seed_prompt_grows_into_a_long_few_shot_prompt_in_one_step():
    prompt = bf.param("Answer briefly.", name="system_prompt")
    shots = "\n".join(f"Q: what is {i} + {i}?\nA: {2 * i}" for i in range(150))
    long_prompt = "Answer with the number only. Examples:\n" + shots
    llm = bf.llm.Scripted([f"### system_prompt\n```text\n{long_prompt}\n```"])
    opt = Prime([prompt], llm=llm)
    bf.format("{p} 2+2", p=prompt).backward(bf.Feedback(score=0.0, text="answer was 'four'"))
    opt.step()
    assert prompt.value == long_prompt and len(long_prompt) > 3000
    assert llm.calls[0].options["max_tokens"] >= len(long_prompt) // 4  # room to write it


def test_max_tokens_can_raise_the_answer_limit_as_well_as_lower_it():
    prompt = bf.param("Answer briefly.", name="system_prompt")
    llm = bf.llm.Scripted(["### system_prompt\n```text\nx\n```"] * 2)
    for limit in (5000, 40):
        opt = Prime([prompt], llm=llm, max_tokens=limit)
        bf.format("{p}", p=prompt).backward("bad")
        opt.step()
    assert [c.options["max_tokens"] for c in llm.calls] == [5000, 40]


def test_without_feedback_the_model_is_not_called_and_the_report_says_why():
    llm = bf.llm.Scripted([])
    report = Prime([bf.param(1.0, name="x")], llm=llm).step()
    assert llm.calls == [] and report.llm_calls == 0
    assert report.problems[0].startswith("nothing to optimize")


def test_stop_stands_only_when_every_feedback_score_is_perfect():
    x = bf.param(1.0, name="x")
    answer = '{"reasoning": "done", "suggestion": {}, "stop": true}'
    opt = Prime([x], llm=bf.llm.Scripted([answer, answer]))
    (x + 1).backward(bf.Feedback(score=0.4, text="3 of 4 tests fail"))
    report = opt.step()
    assert report.stop is False and any("stop ignored" in p for p in report.problems)
    opt.zero_feedback()
    (x + 1).backward(bf.Feedback(score=1.0, text="all pass"))
    assert opt.step().stop is True


# -- the other optimizers ask for and read the same formats -----------------------------------

def test_evolution_reads_candidates_as_sections_of_blocks():
    code = bf.param(MEDIAN, name="median", kind="code")
    answer = (f"## Candidate 1\n### median\n```python\n{FIXED}```\n"
              "## Candidate 2\n### median\n```python\ndef median(xs):\n    return 0\n```\n")
    llm = bf.llm.Scripted([answer])
    opt = bf.optim.Evolution([code], llm=llm, offspring=2)
    bf.format("{c}", c=code).backward(bf.Feedback(score=0.0, text="wrong"))
    report = opt.step()
    user = llm.calls[0].messages[-1]["content"]
    assert "Start each with a line `## Candidate N`" in user
    assert llm.calls[0].options["json_schema"] is None
    assert code.value == FIXED and report.applied == {"median": FIXED}
    assert opt.queue == [{"median": "def median(xs):\n    return 0\n"}]


def test_opro_shows_tried_code_as_blocks_and_reads_a_block_answer():
    code = bf.param(MEDIAN, name="median", kind="code")
    llm = bf.llm.Scripted([f"### median\n```python\n{FIXED}```"])
    opt = bf.optim.OPRO([code], llm=llm)
    bf.format("{c}", c=code).backward(bf.Feedback(score=0.25, text="1 of 4 pass"))
    opt.step()
    user = llm.calls[0].messages[-1]["content"]
    assert "- ### median\n```python\ndef median(xs):" in user and "score=0.25" in user
    assert code.value == FIXED


def test_memory_shows_what_an_earlier_code_attempt_changed_as_lines():
    code = bf.param(MEDIAN, name="median", kind="code")
    llm = bf.llm.Scripted([f"### median\n```python\n{FIXED}```",
                           "### median\n```python\ndef median(xs):\n    return xs[0]\n```"])
    opt = Prime([code], llm=llm)
    for score in (0.25, 0.5):
        opt.zero_feedback()
        bf.format("{c}", c=code).backward(bf.Feedback(score=score, text=f"got {score}"))
        opt.step()
    user = llm.calls[1].messages[-1]["content"]
    memory = user.split("#Earlier attempts (oldest first; higher score is better)\n")[1]
    assert memory.startswith(
        "- score=0.25; feedback: got 0.25\n  median differed from now:\n"
        "    -    s = sorted(xs)\n    -    return s[len(s) // 2]\n"
        "    +    return xs[len(xs) // 2]\n"
    )


def test_code_in_a_json_string_followed_by_example_usage_is_recovered():
    p = code_param()
    source = ("import statistics\ndef median(xs):\n    return statistics.median(xs)\n\n"
              "# Example usage:\nmedian([3, 1, 2]) -> 2\n")
    report = StepReport(step=0)
    apply_answer([p], json.dumps({"reasoning": "use statistics", "suggestion": {"median": source}}),
                 report)
    assert p.value == "import statistics\ndef median(xs):\n    return statistics.median(xs)\n"


@bf.op(trainable=True)
def inverse(x: int) -> float:
    return 1 / x


def test_an_error_node_with_text_feedback_counts_as_a_failure_in_memory():
    fine = inverse(bf.node(2))
    with pytest.raises(bf.ExecutionError) as caught:
        inverse(bf.node(0))
    caught.value.node.backward("it crashed")
    fine.backward("fine")
    opt = Prime(inverse.parameters(), llm=bf.llm.Scripted([]))
    assert opt.observe().score == 0.0


def test_prompt_lists_failing_examples_worst_first_with_output_error_and_feedback():
    code = inverse.code
    code.zero_feedback()  # outputs of other tests
    outs = []
    for x, score in ((4, 1.0), (2, 0.5)):
        out = inverse(bf.node(x, name="x"))
        out.backward(bf.Feedback(score=score, text=f"inverse({x}) scored {score}"))
        outs.append(out)
    with pytest.raises(bf.ExecutionError) as caught:
        inverse(bf.node(0, name="x"))
    caught.value.node.backward("it crashed")
    llm = bf.llm.Scripted(["nothing"])
    Prime([code], llm=llm, prefill=False, compact=False).step()
    user = llm.calls[0].messages[-1]["content"]
    section = user.split("#Failing examples (worst first)\n")[1].split("#Earlier")[0]
    lines = section.strip().splitlines()
    assert lines[0].startswith("- inverse(x=0) -> raised ZeroDivisionError: division by zero at "
                               "line 2 of inverse: return 1 / x; score=0; feedback: it crashed")
    assert lines[1] == "- inverse(x=2) -> 0.5; score=0.5; feedback: inverse(2) scored 0.5"
    assert len(lines) == 2  # the passing example is not listed


def test_all_shortening_goes_through_one_clip_with_one_marker():
    from backfeed._text import clip
    from backfeed.optim.schema import describe

    assert clip("a" * 100, 40) == "a" * 21 + "…[79 chars elided]"
    assert clip("a" * 100 + "END", 40, tail=True).endswith("aEND")
    assert clip("short", 40) == "short"
    x = bf.param("y" * 5000, name="x")
    opt = Prime([x], llm=bf.llm.Scripted([]))
    recorded = opt.record({"x": "z"}, 0.1, "f" * 5000).feedback
    texts = [describe([x], 300), recorded]
    assert all("chars elided]" in t and "chars cut]" not in t for t in texts)


def test_blocks_are_matched_to_qualified_parameter_names():
    retrieve = bf.param("Find facts.", name="retrieve.prompt")
    answer = bf.param("Answer.", name="answer.prompt")
    text = ("**answer.prompt**:\n```text\nAnswer in one word.\n```\n"
            "### retrieve.prompt.\n```\nFind three facts.\n```")
    assert read_answer(text, [retrieve, answer]).suggestion == {
        "answer.prompt": "Answer in one word.", "retrieve.prompt": "Find three facts."}


def test_a_text_section_without_a_fence_is_read_up_to_the_next_heading():
    """The 0.5B model's answer to the compact text prompt over HTTP (no prefill): the value
    under its heading with no fence, then a copy of the prompt's feedback section."""
    from backfeed.optim.parse import read_answer

    instruction = bf.param("Answer the question.", name="instruction")
    answer = ("### instruction\nSort the following words alphabetically: List: harbor thimble "
              "quiver lilac yonder\n### feedback\nwrong: the expected answer is 'harbor lilac "
              "quiver thimble yonder', the answer read from the output was 'the words'.")
    read = read_answer(answer, [instruction])
    assert read.suggestion == {"instruction": "Sort the following words alphabetically: List: "
                                              "harbor thimble quiver lilac yonder"}
    assert any("has no fence" in p for p in read.problems)
    fenced = read_answer("### instruction\n```text\nSay hi.\n```\n### note\nnone", [instruction])
    assert fenced.suggestion == {"instruction": "Say hi."} and not fenced.problems
    # a heading with nothing under it is no value
    assert read_answer("### instruction\n### other\nx", [instruction]).suggestion == {}
