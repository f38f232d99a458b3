"""FewShot: demos bootstrapped from correct traces, candidate sets, and Prime for the rest."""

from __future__ import annotations

import json

import pytest

import backfeed as bf
from backfeed.optim.base import values_key

LABELS = {"great film": "positive", "awful plot": "negative", "loved it": "positive",
          "BORING": "negative", "TOP NOTCH": "positive", "so dull": "negative"}


class Sentiment(bf.Module):
    def __init__(self):
        self.instruction = bf.param("Label the review.", name="instruction")
        self.demos = bf.param([], name="demos")

    def forward(self, review):
        return bf.chat([{"role": "system", "content": self.instruction}, self.demos,
                        {"role": "user", "content": review}])


def model(messages, options):
    """Right on lowercase reviews; right on every review once it has seen two demos."""
    review = messages[-1]["content"]
    demos = sum(m["role"] == "assistant" for m in messages)
    return LABELS[review] if review.islower() or demos >= 2 else "unsure"


def metric(example, output):
    return bf.Feedback(score=float(output == example[1]), text=f"expected {example[1]}")


DATA = list(LABELS.items())


def run_and_score(program, data):
    with bf.llm.using(bf.llm.Scripted([model] * len(data))):
        outputs = [program(x) for x, _ in data]
    for out, example in zip(outputs, data):
        out.backward(metric(example, out.value))
    return outputs


def test_a_step_fills_demos_from_correct_traces_and_prime_rewrites_the_instruction():
    program = Sentiment()
    opt_llm = bf.llm.Scripted(['{"suggestion": {"instruction": "Answer positive or negative."}}'])
    opt = bf.optim.FewShot(program.parameters(), llm=opt_llm, k=2, candidates=3)
    run_and_score(program, DATA)
    report = opt.step()
    correct = [{"input": x, "output": y} for x, y in DATA if x.islower()]
    assert sorted(opt.pool["demos"], key=json.dumps) == sorted(correct, key=json.dumps)
    assert len(program.demos.value) == 2 and all(d in correct for d in program.demos.value)
    assert program.instruction.value == "Answer positive or negative."
    assert len(report.candidates) == 3
    assert report.candidates[0] == program.state_dict()
    assert len({values_key(c) for c in report.candidates}) == 3
    assert all(c["instruction"] == "Answer positive or negative." for c in report.candidates)
    assert {u.name for u in report.updates} == {"instruction", "demos"}
    assert report.llm_calls == 1  # Prime's call; FewShot adds none


def test_the_chosen_demos_fix_the_examples_the_program_got_wrong():
    program = Sentiment()
    opt = bf.optim.FewShot([program.demos], k=2)
    run_and_score(program, DATA)
    opt.step()
    opt.zero_feedback()
    outputs = run_and_score(program, DATA)
    assert [o.value for o in outputs] == [y for _, y in DATA]


def test_no_correct_output_means_no_demos_and_a_problem_that_says_why():
    program = Sentiment()
    opt = bf.optim.FewShot([program.demos], llm=bf.llm.Scripted([]))
    run_and_score(program, [("BORING", "negative")])
    report = opt.step()
    assert program.demos.value == [] and report.candidates == []
    assert "no new demo set" in report.problems[0] and "demos: 0" in report.problems[0]


def test_demo_sets_already_evaluated_are_not_proposed_again():
    program = Sentiment()
    opt = bf.optim.FewShot([program.demos], k=1, candidates=2)
    run_and_score(program, DATA)
    first = opt.step().candidates
    for values in first:
        opt.record(values, 0.5, "tried")
    second = opt.step().candidates
    assert not {values_key(c) for c in first} & {values_key(c) for c in second}
    for values in second:
        opt.record(values, 0.5, "tried")
    third = opt.step()  # four lowercase reviews, k=1: all four sets were tried
    assert len(second) == 2 and third.candidates == []
    assert "no new demo set" in third.problems[0]


def test_state_round_trips_the_pool():
    program = Sentiment()
    opt = bf.optim.FewShot([program.demos], k=2)
    run_and_score(program, DATA)
    opt.step()
    again = bf.optim.FewShot([Sentiment().demos], k=2)
    again.load_state_dict(json.loads(json.dumps(opt.state_dict())))
    assert again.pool == opt.pool and again.step_count == 1


def test_fewshot_without_a_list_parameter_says_how_to_add_one():
    with pytest.raises(ValueError, match=r"bf.param\(\[\], name='demos'\)"):
        bf.optim.FewShot([bf.param("x", name="instruction")])


def test_training_with_fewshot_keeps_the_demo_set_that_validates():
    program = Sentiment()
    with bf.llm.using(bf.llm.Scripted([model] * 200)):
        result = bf.train(program, DATA, valset=DATA, metric=metric,
                          optimizer=bf.optim.FewShot([program.demos], k=2),
                          steps=2, store=":memory:", progress=False)
    assert result.best_score == 1.0
    assert len(program.demos.value) == 2


def test_the_trainer_evaluates_every_demo_set_a_step_proposes(tmp_path):
    program = Sentiment()
    with bf.llm.using(bf.llm.Scripted([model] * 200)):
        result = bf.train(program, DATA, valset=DATA, metric=metric,
                          optimizer=bf.optim.FewShot([program.demos], k=1, candidates=3),
                          steps=1, minibatch_size=6, store=tmp_path / "runs.db", progress=False)
    children = [c for c in result.store.candidates(result.run_id) if c.step == 0]
    assert len(children) == 3
    assert len({json.dumps(c.values, sort_keys=True) for c in children}) == 3


class DemosOnly(bf.Module):
    def __init__(self):
        self.demos = bf.param([], name="demos")

    def forward(self, review):
        return bf.chat([self.demos, {"role": "user", "content": review}])


def test_labelled_examples_seed_the_demo_pool_before_any_output_scored(tmp_path):
    """Every review is uppercase: no output is right without demos, so bootstrapping alone
    never finds one; the labelled training set seeds the pool and the next step tries it."""
    data = [(x.upper(), y) for x, y in DATA]
    program = DemosOnly()
    opt = bf.optim.FewShot(program.parameters(), llm=bf.llm.Scripted([]), k=2, candidates=2,
                           labelled=data)
    assert [d["input"] for d in opt.pool["demos"]] == [x for x, _ in data]
    def shouting_model(messages, options):  # right only once it has seen two demos
        demos = sum(m["role"] == "assistant" for m in messages)
        by_upper = {x.upper(): y for x, y in LABELS.items()}
        return by_upper[messages[-1]["content"]] if demos >= 2 else "unsure"

    with bf.llm.using(bf.llm.Scripted([shouting_model] * 200)):
        result = bf.train(program, data, metric=metric, optimizer=opt, steps=2,
                          store=tmp_path / "r.db", progress=False)
    assert result.best_score == 1.0 and len(program.demos.value) == 2
    examples = [bf.Example(review=x, label=y).with_inputs("review") for x, y in DATA]
    assert bf.optim.FewShot(DemosOnly().parameters(), llm=bf.llm.Scripted([]),
                            labelled=examples).pool["demos"][0] == \
        {"input": "great film", "output": "positive"}
    with pytest.raises(ValueError, match=r"labelled\[0\].*to_demo="):
        bf.optim.FewShot(DemosOnly().parameters(), llm=bf.llm.Scripted([]), labelled=[42])


def test_fewshot_trains_on_a_machine_without_any_model_it_never_calls(monkeypatch, tmp_path):
    """No optimizer model is made before it is called: FewShot on demos alone calls none, so
    a machine with no embedded model and no BACKFEED_MODEL trains it."""
    import backfeed.llm
    import backfeed.llm.defaults

    def no_model():
        raise bf.llm.LLMError("no model configured (this test's machine has none)")

    monkeypatch.setattr(backfeed.llm.defaults, "default", no_model)
    monkeypatch.setattr(backfeed.llm, "default", no_model)
    test_training_with_fewshot_keeps_the_demo_set_that_validates()
    test_the_trainer_evaluates_every_demo_set_a_step_proposes(tmp_path)
