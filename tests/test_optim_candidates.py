"""Several candidates per step: n samples of one prompt, deduplicated, counted in budgets."""

from __future__ import annotations

import json

import pytest

import backfeed as bf
from backfeed.budget import Budget, BudgetExceeded
from backfeed.llm import Metered
from backfeed.optim import OPRO, Evolution, Hybrid, Prime, TextGrad, auto
from backfeed.optim.base import SAMPLE_TEMPERATURE


def suggest(**values) -> str:
    return json.dumps({"reasoning": "r", "suggestion": values, "stop": False})


def setup(x0: float = 1.0):
    x = bf.param(x0, name="x", bounds=(-10.0, 10.0))
    text = bf.param("hello", name="greeting")
    out = bf.format("{g} {x}", g=text, x=x)
    out.backward(bf.Feedback(score=0.3, text="should be shorter"))
    return [x, text]


def test_prime_candidates_sample_one_prompt_n_times_and_apply_the_first():
    params = setup()
    llm = bf.llm.Scripted([suggest(x=2.0, greeting="hi"), suggest(x=3.0, greeting="hey"),
                           suggest(x=2.0, greeting="hi"), suggest(x=4.0, greeting="yo")])
    report = Prime(params, llm=llm, candidates=4, temperature=0.0).step()
    # the third answer repeats the first: it is not a candidate
    assert report.candidates == [{"x": 2.0, "greeting": "hi"}, {"x": 3.0, "greeting": "hey"},
                                 {"x": 4.0, "greeting": "yo"}]
    assert [p.value for p in params] == [2.0, "hi"]
    assert [c.options["temperature"] for c in llm.calls] == [0.0] + [SAMPLE_TEMPERATURE] * 3
    assert len({json.dumps(c.messages) for c in llm.calls}) == 1  # one prompt
    assert report.llm_calls == 4 and len(report.answers) == 4
    assert report.prompt_tokens == sum(
        bf.llm.Scripted([""]).complete(c.messages).usage.prompt_tokens for c in llm.calls
    )


def test_n_candidates_are_counted_in_budgets():
    params = setup()
    answers = [suggest(x=float(i), greeting=f"g{i}") for i in range(2, 10)]
    metered = Metered(bf.llm.Scripted(answers), Budget(llm_calls=6))
    opt = Prime(params, llm=metered, candidates=4)
    report = opt.step()
    assert metered.spend.calls == 4 == report.llm_calls
    assert metered.spend.prompt_tokens == report.prompt_tokens > 0
    assert metered.spend.completion_tokens == report.completion_tokens > 0
    with pytest.raises(BudgetExceeded):
        opt.step()  # 4 more calls do not fit in the 2 left
    assert metered.spend.calls == 6


def test_a_repeat_of_evaluated_values_is_perturbed_within_bounds_and_recorded():
    params = setup()
    opt = Prime(params, llm=bf.llm.Scripted([suggest(x=3.0, greeting="hi")]))
    opt.record({"x": 3.0, "greeting": "hi"}, 0.5, "too long")  # evaluated before
    report = opt.step()
    assert len(report.candidates) == 1
    x = report.candidates[0]["x"]
    assert x != 3.0 and -10 <= x <= 10 and params[0].value == x
    assert any("already evaluated; perturbed ['x']" in p for p in report.problems)


def test_a_repeat_that_cannot_be_perturbed_is_dropped_for_the_next_candidate():
    text = bf.param("hello", name="greeting")
    bf.format("{g}!", g=text).backward(bf.Feedback(score=0.1, text="shorter"))
    llm = bf.llm.Scripted([suggest(greeting="hi"), suggest(greeting="yo")])
    opt = Prime([text], llm=llm, candidates=2)
    opt.record({"greeting": "hi"}, 0.2, "no")
    report = opt.step()
    assert report.candidates == [{"greeting": "yo"}] and text.value == "yo"
    assert "repeat: these values were already evaluated; dropped" in report.problems


def test_a_failed_sample_is_a_problem_and_the_others_are_kept():
    def refuse(messages, options):
        raise ConnectionError("slot busy")

    params = setup()
    llm = bf.llm.Scripted([suggest(x=2.0), refuse, suggest(x=5.0)])
    report = Prime(params, llm=llm, candidates=3).step()
    assert report.error is None and report.llm_calls == 3
    assert [c["x"] for c in report.candidates] == [2.0, 5.0]
    assert "candidate 1: the call failed: ConnectionError: slot busy" in report.problems


def test_opro_and_textgrad_candidates():
    params = setup()
    report = OPRO(params, llm=bf.llm.Scripted([suggest(x=2.0), suggest(x=5.0)]),
                  candidates=2).step()
    assert [c["x"] for c in report.candidates] == [2.0, 5.0] and params[0].value == 2.0

    params = setup()
    gradients = json.dumps({"gradients": {"x": "too big", "greeting": "long"}})
    value = lambda v: json.dumps({"reasoning": "", "value": v})  # noqa: E731
    llm = bf.llm.Scripted([gradients, value(2.0), value(6.0), value("a"), value("b")])
    report = TextGrad(params, llm=llm, candidates=2).step()
    assert report.candidates == [{"x": 2.0, "greeting": "a"}, {"x": 6.0, "greeting": "b"}]


def test_evolution_hands_out_n_members_per_step():
    x = bf.param(1.0, name="x", bounds=(-10.0, 10.0))
    (x * 2).backward(bf.Feedback(score=0.3, text="too small"))
    params = [x]
    members = json.dumps({"reasoning": "", "members": [{"x": 2.0}, {"x": 3.0}, {"x": 4.0}]})
    opt = Evolution(params, llm=bf.llm.Scripted([members]), offspring=2, candidates=3)
    report = opt.step()
    assert [c["x"] for c in report.candidates] == [2.0, 3.0, 4.0] and params[0].value == 2.0
    schema = opt.llm.calls[0].options["json_schema"]  # asked for `candidates`, not 2
    assert schema["properties"]["members"]["minItems"] == 3


def test_hybrid_candidates_pair_each_answer_with_the_sampler_numbers():
    pytest.importorskip("optuna")
    params = setup()
    llm = bf.llm.Scripted([suggest(x=2.0, greeting="a"), suggest(greeting="b")])
    opt = Hybrid(params, llm=llm, seed=0, candidates=2)
    report = opt.step()
    s = opt.numeric.pending["x"]
    assert report.candidates == [{"x": s, "greeting": "a"}, {"x": s, "greeting": "b"},
                                 {"x": 2.0, "greeting": "a"}]
    assert opt.prime.history is opt.history  # one history, shared by construction
    assert opt.candidates == 2
    opt.record({"x": 2.0, "greeting": "a"}, 0.9, "good")  # the trainer scores a candidate
    assert {"values": {"x": 2.0}, "score": 0.9} in opt.numeric.trials


def test_auto_sends_bounded_numbers_to_numeric_search_unless_told_not_to():
    pytest.importorskip("optuna")
    params = setup()
    assert isinstance(auto(params, llm=bf.llm.Scripted([]), seed=1), Hybrid)
    assert type(auto(params, llm=bf.llm.Scripted([]), numeric=False, seed=1)) is Prime
    assert type(auto([params[1]], llm=bf.llm.Scripted([]))) is Prime  # no numbers


def test_split_offers_each_changed_parameter_alone():
    params = setup()
    llm = bf.llm.Scripted([suggest(x=2.0, greeting="hi")])
    report = Prime(params, llm=llm, split=True).step()
    assert report.candidates == [{"x": 2.0, "greeting": "hi"}, {"x": 2.0, "greeting": "hello"},
                                 {"x": 1.0, "greeting": "hi"}]
    assert [p.value for p in params] == [2.0, "hi"]


def test_the_trainer_evaluates_prime_candidates_and_spend_counts_every_call(tmp_path):
    import train_helpers as h

    module = h.Router()
    llm = bf.llm.Scripted([suggest(pa="right-a", pb="start", pc="start"),
                           suggest(pa="right-a", pb="right-b", pc="start"),
                           suggest(pa="nope", pb="start", pc="start")])
    result = bf.train(module, h.dataset(1), metric=h.metric, steps=1, minibatch_size=3,
                      optimizer=Prime(module.parameters(), llm=llm, candidates=3),
                      store=tmp_path / "r.db", progress=False)
    assert result.best_values == {"pa": "right-a", "pb": "right-b", "pc": "start"}
    assert result.spend["calls"] == 3 == len(result.store.llm_calls(result.run_id))
    assert result.spend["prompt_tokens"] == sum(
        c.prompt_tokens for c in result.store.llm_calls(result.run_id)) > 0
    assert len(result.store.step_reports(result.run_id)) == 3  # one per candidate


def test_each_candidate_of_a_prefilled_answer_keeps_the_frame():
    code = bf.param("def median(xs):\n    return xs[0]\n", name="median", kind="code")
    frame = "### median\n```python\ndef median(xs):\n"
    llm = bf.llm.Scripted(["    return sorted(xs)[len(xs) // 2]\n```",
                           "    s = sorted(xs)\n    return s[len(s) // 2]\n```"])
    bf.format("{a}", a=code).backward(bf.Feedback(score=0.0, text="wrong median"))
    report = Prime([code], llm=llm, prefill=True, candidates=2).step()
    assert all(a.startswith(frame) for a in report.answers) and len(report.answers) == 2
    assert [c["median"].splitlines()[1].strip() for c in report.candidates] == [
        "return sorted(xs)[len(xs) // 2]", "s = sorted(xs)"]


def test_hybrid_loads_a_state_saved_before_its_parts_kept_their_own():
    pytest.importorskip("optuna")
    params = setup()
    old = {"type": "Hybrid", "step_count": 2, "params": {"x": 3.0, "greeting": "hi"},
           "history": [{"step": 0, "values": {"x": 1.0, "greeting": "hello"}, "score": 0.3,
                        "feedback": "long"}],
           "warmed": False, "rejections": ["greeting: too long"],
           "numeric": {"trials": [{"values": {"x": 1.0}, "score": 0.3}], "pending": None}}
    opt = Hybrid(params, llm=bf.llm.Scripted([]), seed=0)
    opt.load_state_dict(old)
    assert opt.prime.rejections == ["greeting: too long"] and len(opt.prime.history) == 1
    assert opt.numeric.trials == [{"values": {"x": 1.0}, "score": 0.3}]
    assert [p.value for p in params] == [3.0, "hi"]
