"""Protected parts and a size budget: a text parameter's spans to keep and its most tokens."""

from __future__ import annotations

import pytest

import backfeed as bf
from backfeed.optim import Prime

FORMAT = 'Answer as JSON: {"label": "spam" | "ham"}'


def _instruction(**options):
    return bf.param(f"Classify the message. {FORMAT}", name="instruction", keep=[FORMAT],
                    max_tokens=40, **options)


def _feedback(p):
    out = bf.format("{i}", i=p)
    out.backward(bf.Feedback(score=0.0, text="the label was wrong"))


def test_a_value_must_keep_its_spans_and_its_length_from_the_start():
    with pytest.raises(bf.graph.KeptError, match="must keep"):
        bf.param("Classify the message.", keep=[FORMAT])
    with pytest.raises(bf.graph.LengthError, match="at most 3 tokens"):
        bf.param("Classify the message, please, carefully.", max_tokens=3)
    with pytest.raises(ValueError, match="apply to text and code"):
        bf.param(3, keep=["3"])
    p = _instruction()
    assert p.rules() == [f"keep verbatim: {FORMAT!r}", "at most 40 tokens"]
    with pytest.raises(bf.graph.KeptError):
        p.value = "Classify it."


@pytest.mark.parametrize("compact", [False, True])
def test_a_proposal_that_drops_the_format_or_runs_long_is_rejected_and_the_prompt_says_both(
        compact):
    p = _instruction()
    _feedback(p)
    dropped = "### instruction\n```text\nClassify the message: spam or ham.\n```"
    llm = bf.llm.Scripted([dropped])
    report = Prime([p], llm, compact=compact).propose()
    prompt = llm.calls[0].messages[1]["content"]
    assert "keep verbatim: 'Answer as JSON" in prompt and "at most 40 tokens" in prompt
    assert not report.proposals
    [rejected] = report.rejected
    assert rejected.kind == "kept" and "must keep" in rejected.reason
    long = "### instruction\n```text\n" + "Think hard. " * 30 + FORMAT + "\n```"
    report = Prime([p], bf.llm.Scripted([long]), compact=compact).propose()
    assert [u.kind for u in report.rejected] == ["length"] and p.value.startswith("Classify")
    kept = "### instruction\n```text\nSay if the message is spam. " + FORMAT + "\n```"
    report = Prime([p], bf.llm.Scripted([kept]), compact=compact).propose()
    assert report.proposals and report.proposals[0].values["instruction"].endswith(FORMAT)
