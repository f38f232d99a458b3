"""Long values: shown whole when they fit, else asked for as edits applied to the whole value;
a whole value for one shown in part is rejected; the answer's limit is the model's cap."""

from __future__ import annotations

import pytest

import backfeed as bf
from backfeed.optim import Prime
from backfeed.optim.apply import CUT, EDIT, PARTIAL
from backfeed.optim.edits import Edit, EditError, apply_edits, read_edits


def guidelines(count: int) -> str:
    return "\n".join(f"{i}. Guideline {i}: be polite and precise about rule {i}."
                     for i in range(1, count + 1))


@bf.op
def answer(policy: str, question: str) -> str:
    """Answer the question under the policy."""
    return "no"


def step_on(p: bf.Param, opt: bf.optim.Optimizer) -> bf.optim.StepReport:
    opt.zero_feedback()
    answer(p, bf.node("refund?")).backward(bf.Feedback(score=0.0, text="should say yes"))
    return opt.step()


def edit_answer(name: str, search: str, replace: str) -> str:
    return (f"### {name}\n```text\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n"
            ">>>>>>> REPLACE\n```")


def test_a_prompt_that_fits_the_budget_is_shown_whole_to_its_last_guideline():
    policy = bf.param(guidelines(39), name="policy")  # ~2,100 characters
    llm = bf.llm.Scripted(["### policy\n```text\nx\n```"])
    step_on(policy, Prime([policy], llm=llm, budget_tokens=4000, compact=False))
    user = llm.calls[0].messages[1]["content"]
    assert "39. Guideline 39: be polite and precise about rule 39." in user
    assert "shown in part" not in user


def test_a_larger_budget_shows_more_of_a_long_prompt():
    shown = []
    for budget in (4000, 16000):
        policy = bf.param(guidelines(800), name="policy")
        llm = bf.llm.Scripted(["no change"])
        opt = Prime([policy], llm=llm, budget_tokens=budget)
        step_on(policy, opt)
        shown.append(opt.partial["policy"][0])
        assert len(llm.calls[0].messages[1]["content"]) // 4 <= budget
    assert shown[1] > 3 * shown[0]


def test_an_edit_to_a_50000_character_policy_keeps_every_character_it_does_not_touch():
    text = guidelines(900)
    assert len(text) > 50_000
    policy = bf.param(text, name="policy")
    old = "2. Guideline 2: be polite and precise about rule 2."
    new = "2. Refunds are always granted."
    llm = bf.llm.Scripted([edit_answer("policy", "    " + old, new)])  # copied with the indent
    opt = Prime([policy], llm=llm)
    report = step_on(policy, opt)
    user = llm.calls[0].messages[1]["content"]
    assert "policy" in opt.partial and "edits to policy" in user and "<<<<<<< SEARCH" in user
    assert not report.rejected
    assert policy.value == text.replace(old, new)


def test_a_whole_value_for_a_prompt_shown_in_part_is_rejected_and_nothing_is_lost():
    text = guidelines(900)
    policy = bf.param(text, name="policy")
    llm = bf.llm.Scripted(["### policy\n```text\nBe nice. Refunds are granted.\n```"])
    report = step_on(policy, Prime([policy], llm=llm))
    assert policy.value == text
    (update,) = report.rejected
    assert update.kind == PARTIAL
    assert "shown in part" in update.reason and "SEARCH/REPLACE" in update.reason
    assert not report.candidates


def test_an_edit_whose_search_text_is_not_in_the_value_is_rejected_with_its_first_line():
    text = guidelines(900)
    policy = bf.param(text, name="policy")
    llm = bf.llm.Scripted([edit_answer("policy", "Guideline zero", "x")])
    report = step_on(policy, Prime([policy], llm=llm))
    assert policy.value == text
    assert report.rejected[0].kind == EDIT and "'Guideline zero'" in report.rejected[0].reason


def test_the_answer_limit_is_capped_by_the_model_and_the_cap_is_stated():
    text = guidelines(900)
    policy = bf.param(text, name="policy")
    llm = bf.llm.Scripted(["no change"])
    opt = Prime([policy], llm=llm, budget_tokens=40_000)
    report = step_on(policy, opt)
    assert llm.calls[0].options["max_tokens"] == 8192
    # the whole value fits the prompt, but writing it anew would not fit the answer: edits
    assert not opt.partial and "too long to write anew" in llm.calls[0].messages[1]["content"]
    assert not any("capped" in p for p in report.problems)  # the edits fit: nothing to say
    llm = bf.llm.Scripted(["no change"])
    report = step_on(policy, Prime([policy], llm=llm, budget_tokens=40_000, edits=False))
    assert llm.calls[0].options["max_tokens"] == 8192
    assert any("capped at 8,192" in p and "default cap" in p for p in report.problems)


def test_several_values_that_do_not_fit_one_answer_together_are_asked_for_as_edits():
    values = [bf.param(guidelines(80), name=f"policy{i}") for i in range(3)]  # ~1,100 tokens each

    @bf.op
    def answer3(a: str, b: str, c: str) -> str:
        """Answer."""
        return "no"

    out = answer3(*values)
    out.backward(bf.Feedback(score=0.0, text="wrong"))
    llm = bf.llm.Scripted(["no change"])
    Prime(values, llm=llm, budget_tokens=40_000, max_tokens=3000, compact=False).step()
    user = llm.calls[0].messages[1]["content"]
    assert user.count("too long to write anew") >= 1 and "edits to policy" in user


def test_litellm_lowers_max_tokens_to_the_models_output_limit(monkeypatch):
    from backfeed.llm.litellm_backend import import_litellm

    litellm = import_litellm()  # offline: its bundled model list
    seen = []
    original = litellm.completion

    def completion(**kwargs):
        seen.append(kwargs.get("max_tokens"))
        return original(**kwargs, mock_response="ok")

    monkeypatch.setattr(litellm, "completion", completion)
    llm = bf.llm.LiteLLM("gpt-4o-mini", cache=False)
    assert llm.max_output_tokens() == (16384, "litellm's model info for gpt-4o-mini")
    llm.complete([{"role": "user", "content": "hi"}], max_tokens=49_226)
    unknown = bf.llm.LiteLLM("openai/in-house", cache=False, api_base="http://127.0.0.1:9")
    assert unknown.max_output_tokens()[0] == 8192
    capped = bf.llm.LiteLLM("gpt-4o-mini", cache=False, max_output_tokens=300)
    capped.complete([{"role": "user", "content": "hi"}], max_tokens=1000)
    assert seen == [16384, 300]


def test_edits_asked_for_a_code_parameter_change_only_the_edited_line():
    @bf.op(trainable=True)
    def total(prices: list) -> float:
        """Sum the prices."""
        result = 0
        for p in prices:
            result += p
        return result * 2

    answer_text = ("### total\n```python\n<<<<<<< SEARCH\n        return result * 2\n=======\n"
                   "        return result\n>>>>>>> REPLACE\n```")
    llm = bf.llm.Scripted([answer_text])
    opt = Prime([total.code], llm=llm, edits=True, compact=False)
    before = total.code.value
    out = total(bf.node([1, 2]))
    opt.zero_feedback()
    out.backward("should be 3")
    report = opt.step()
    assert "edits to the function `total(prices: list) -> float`" in \
        llm.calls[0].messages[1]["content"]
    assert not report.rejected
    assert total.code.value == before.replace("return result * 2", "return result")
    assert total(bf.node([1, 2])).value == 3


def test_opro_and_textgrad_take_edits_and_reject_whole_values_for_values_they_cut():
    text = guidelines(50)
    old, new = "7. Guideline 7: be polite and precise about rule 7.", "7. Refunds: yes."
    gradients = '{"gradients": {"answer0": "say yes", "policy": "grant refunds"}}'
    makers = {"OPRO": (lambda p, llm: bf.optim.OPRO([p], llm=llm, value_chars=300), []),
              "TextGrad": (lambda p, llm: bf.optim.TextGrad([p], llm=llm, value_chars=300),
                           [gradients])}
    for name, (make, before) in makers.items():
        p = bf.param(text, name="policy")
        llm = bf.llm.Scripted([*before, "### policy\n```text\nshort\n```"])
        report = step_on(p, make(p, llm))
        assert p.value == text, name
        assert any(u.kind == PARTIAL for u in report.rejected), name
        assert "edits to policy" in llm.calls[-1].messages[-1]["content"], name
        llm = bf.llm.Scripted([*before, edit_answer("policy", old, new)])
        step_on(p, make(p, llm))
        assert p.value == text.replace(old, new), name


# -- reading and applying edits ------------------------------------------------------------


def test_edits_are_read_in_order_and_prose_between_them_is_ignored():
    text = ("Here:\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\nand\n"
            "<<<<<<< SEARCH\nc\n=======\n>>>>>>> REPLACE")
    assert read_edits(text) == [Edit("a", "b"), Edit("c", "")]
    assert read_edits("a whole new value") is None


def test_an_edit_cut_short_is_an_error_and_applies_nothing():
    with pytest.raises(EditError, match="no >>>>>>> REPLACE line"):
        read_edits("<<<<<<< SEARCH\na\n=======\nb")
    with pytest.raises(EditError, match="no ======= line"):
        read_edits("<<<<<<< SEARCH\na")


def test_a_search_text_must_occur_once():
    with pytest.raises(EditError, match="match 2 places"):
        apply_edits("x\nx\n", [Edit("x", "y")])
    assert apply_edits("a\nb\n", [Edit("b", "c")]) == "a\nc\n"
    assert apply_edits("a", [Edit("", "b")]) == "a\nb"  # an empty SEARCH appends


def test_search_lines_with_other_indentation_match_and_the_replacement_keeps_the_values():
    value = "def f(x):\n    if x:\n        return 1\n    return 2\n"
    edit = Edit("        if x:\n            return 1", "        if x > 0:\n            return 1")
    assert apply_edits(value, [edit]) == "def f(x):\n    if x > 0:\n        return 1\n    return 2\n"


def test_a_value_cut_off_by_the_token_limit_is_rejected_not_kept():
    text = guidelines(20)
    policy = bf.param(text, name="policy")
    cut = "### policy\n```text\n1. Guideline 1: be polite and precise about rule 1.\n2. Guide"
    answer_ = bf.llm.Completion(cut, bf.llm.Usage(100, 50))  # 50 tokens: the limit below
    report = step_on(policy, Prime([policy], llm=bf.llm.Scripted([answer_]), max_tokens=50))
    assert policy.value == text
    (update,) = report.rejected
    assert update.kind == CUT and "token limit" in update.reason and "not kept" in update.reason
    # the same unclosed block from an answer that stopped by itself is still read
    done = bf.llm.Completion(cut, bf.llm.Usage(100, 20))
    step_on(policy, Prime([policy], llm=bf.llm.Scripted([done]), max_tokens=50))
    assert policy.value.endswith("2. Guide")


def test_an_edit_changes_whole_lines_never_the_middle_of_one():
    with pytest.raises(EditError, match="not in the value"):
        apply_edits("max = 10\n", [Edit("x = 1", "x = 2")])


def test_an_edit_copied_with_the_prompts_indent_that_could_mean_two_lines_is_refused():
    value = "def pick(a):\n    if a > 0:\n        return a\n    return a\n"
    # "        return a": the nested line as written, or the last line as the trace shows it
    with pytest.raises(EditError, match="match 2 places"):
        apply_edits(value, [Edit("        return a", "        return -a")])
    # with the prompt's indent, in the SEARCH and the REPLACE lines: one place only
    edit = Edit("        if a > 0:\n            return a", "        if a:\n            return a")
    assert apply_edits(value, [edit]) == "def pick(a):\n    if a:\n        return a\n    return a\n"


def test_an_edit_keeps_the_values_line_endings_and_indentation():
    value = "line one\r\nline two\r\nline three\r\n"
    assert apply_edits(value, [Edit("line two", "A\nB")]) == "line one\r\nA\r\nB\r\nline three\r\n"
    code = "def f(x):\n    if x:\n        y = 1\n        return y\n"
    deeper = apply_edits(code, [Edit("y = 1\nreturn y", "y = 2\nreturn y")])
    assert deeper == "def f(x):\n    if x:\n        y = 2\n        return y\n"


def test_a_long_list_is_shown_whole_and_a_new_list_is_accepted():
    words = [f"keyword-{i}" for i in range(40)]  # 510 characters of JSON
    keywords = bf.param(words, name="keywords")

    @bf.op
    def search(keywords: list) -> str:
        """Search with the keywords."""
        return "none"

    new = '{"suggestion": {"keywords": ["refund", "delivery"]}}'
    for make in (lambda llm: bf.optim.OPRO([keywords], llm=llm, value_chars=300),
                 lambda llm: Prime([keywords], llm=llm, budget_tokens=800)):
        keywords.value = words
        llm = bf.llm.Scripted([new])
        opt = make(llm)
        opt.zero_feedback()
        search(keywords).backward(bf.Feedback(score=0.0, text="found nothing"))
        report = opt.step()
        assert '"keyword-39"' in llm.calls[0].messages[-1]["content"]  # the end was shown
        assert keywords.value == ["refund", "delivery"], report.rejected


def test_a_long_text_is_never_asked_for_anew_without_its_value():
    text = guidelines(120)  # ~6,000 characters: more than Local's 1,024-token answer
    policy = bf.param(text, name="policy")
    class Capped(bf.llm.Scripted):
        def max_output_tokens(self):
            return 1024, "test cap"

    tasks = []
    for edits in (None, False):  # with edits=False too: the value is as long either way
        llm = Capped(["no change here"] * 3)
        report = step_on(policy, Prime([policy], llm=llm, compact=True, edits=edits))
        assert len(llm.calls) == 1 and policy.value == text
        assert any("not asked for it anew" in p for p in report.problems)
        tasks.append(llm.calls[0].messages[1]["content"])
    assert "Write edits to `policy`" in tasks[0] and "Write a new `policy`" in tasks[1]


def test_a_prefilled_answer_for_a_long_value_starts_with_the_first_search_line():
    class Continues(bf.llm.Scripted):
        continues_assistant = True

        def max_output_tokens(self):
            return 1024, "test cap"

    text = guidelines(120)
    policy = bf.param(text, name="policy")
    old = "3. Guideline 3: be polite and precise about rule 3."
    llm = Continues([f"{old}\n=======\n3. Refunds: yes.\n>>>>>>> REPLACE\n```"])
    step_on(policy, Prime([policy], llm=llm, compact=True))
    assert llm.calls[0].messages[-1] == {
        "role": "assistant", "content": "### policy\n```text\n<<<<<<< SEARCH\n"}
    assert policy.value == text.replace(old, "3. Refunds: yes.")


def test_edits_in_a_second_block_are_said_to_be_ignored():
    from backfeed.optim import StepReport
    from backfeed.optim.apply import apply_answer

    p = bf.param("a\nb\n", name="policy")
    text = (edit_answer("policy", "a", "A") + "\n" + edit_answer("policy", "b", "B"))
    report = StepReport(step=0)
    apply_answer([p], text, report)
    assert p.value == "A\nb\n"
    assert any("outside a parameter's block were not applied" in x for x in report.problems)


def test_review_edge_cases_of_edits():
    one_line = "Be polite. Never offer refunds. Answer in English."
    assert apply_edits(one_line, [Edit("Never offer refunds.", "Refund within 30 days.")]) == \
        "Be polite. Refund within 30 days. Answer in English."
    assert apply_edits("a\nb\nc\n", [Edit("a", "a\n\n")]) == "a\n\n\nb\nc\n"  # blank lines kept
    assert apply_edits("  x = 1\n  y = 2\n", [Edit("      x = 1", "      x = 3\n    z")]) == \
        "  x = 3\nz\n  y = 2\n"  # a line shallower than the SEARCH moves as much


def test_a_cut_alternative_of_one_request_is_rejected():
    class Several(bf.llm.Scripted):
        answers_n = True

        def complete(self, messages, *, n=1, **options):
            whole = "### policy\n```text\nshort\n```"
            cut = "### policy\n```text\n" + "word " * 80
            return bf.llm.Completion(whole, bf.llm.Usage(10, 90), alternatives=(cut,) * (n - 1))

    text = guidelines(5)
    policy = bf.param(text, name="policy")
    opt = Prime([policy], llm=Several([]), candidates=3, max_tokens=50, compact=False)
    report = step_on(policy, opt)
    assert sum(u.kind == CUT for u in report.rejected) >= 1
    assert all("word word" not in str(c.get("policy")) for c in report.candidates)


def test_a_list_too_long_for_the_budget_is_kept_while_the_other_parameters_change():
    items = bf.param([f"item number {i} with some words" for i in range(300)], name="items")
    prompt = bf.param("Answer.", name="prompt")

    @bf.op
    def use(items: list, prompt: str) -> str:
        """Use both."""
        return "no"

    out = use(items, prompt)
    out.backward(bf.Feedback(score=0.0, text="say yes"))
    llm = bf.llm.Scripted(['### prompt\n```text\nAnswer yes.\n```\n### values\n```json\n'
                           '{"items": ["a"]}\n```'])
    report = Prime([items, prompt], llm=llm, compact=False).step()
    assert prompt.value == "Answer yes." and len(items.value) == 300
    assert any(u.name == "items" and u.kind == PARTIAL and "raise budget_tokens" in u.reason
               for u in report.rejected)
