"""Numeric (Optuna ask/tell from feedback scores) and Hybrid (LLM for text, Optuna for numbers)."""

from __future__ import annotations

import json

import pytest

import backfeed as bf
from backfeed.optim import Hybrid, Numeric

pytest.importorskip("optuna")


def evaluate(params: list[bf.Param], target: float = 3.0) -> float:
    """A score peaking at x == target; the feedback reaches every parameter."""
    x = params[0]
    y = x - target
    score = -abs(y.value)
    out = bf.node(0.0)
    for p in params:
        out = out + (p * 0 if p.kind in ("int", "float") else bf.len(p) * 0)
    total = y + out
    total.backward(bf.Feedback(score=score, text=f"off by {abs(y.value):.2f}"))
    return score


def test_numeric_improves_on_a_quadratic_from_feedback_scores():
    x = bf.param(-8.0, name="x", bounds=(-10.0, 10.0))
    opt = Numeric([x], seed=0)
    first = evaluate([x])
    scores = []
    for _ in range(30):
        opt.zero_feedback()
        scores.append(evaluate([x]))
        opt.step()
    assert max(scores) > first + 5
    assert len(opt.trials) >= 25
    assert all(-10 <= t["values"]["x"] <= 10 for t in opt.trials)


def test_numeric_handles_int_bool_and_choices():
    n = bf.param(3, name="n", bounds=(1, 5))
    flag = bf.param(False, name="flag")
    mode = bf.param("a", name="mode", choices=["a", "b", "c"])
    opt = Numeric([n, flag, mode], seed=1)
    for _ in range(5):
        opt.zero_feedback()
        (n + 0).backward(bf.Feedback(score=float(n.value)))
        report = opt.step()
        assert type(n.value) is int and type(flag.value) is bool and mode.value in "abc"
        assert not report.rejected


def test_numeric_refuses_params_it_cannot_search():
    with pytest.raises(ValueError, match=r"cannot search \['prompt', 'y'\].*bounds="):
        Numeric([bf.param("hi", name="prompt"), bf.param(1.0, name="y")])
    with pytest.raises(ValueError, match="sampler must be one of"):
        Numeric([bf.param(1.0, name="x", bounds=(0, 1))], sampler="adam")


def test_numeric_without_score_records_a_problem():
    x = bf.param(1.0, name="x", bounds=(0, 2))
    (x + 1).backward("just text")
    report = Numeric([x], seed=0).step()
    assert any("no score" in p for p in report.problems)
    assert report.applied  # still proposes


def test_numeric_tells_the_score_of_the_asked_values():
    x = bf.param(1.0, name="x", bounds=(0, 2))
    opt = Numeric([x], seed=0)
    (x + 1).backward(bf.Feedback(score=0.5))
    opt.step()
    asked = x.value
    opt.zero_feedback()
    (x + 1).backward(bf.Feedback(score=0.8))
    opt.observe()  # e.g. a trainer scoring a candidate it then rejects
    assert opt.trials[-1] == {"values": {"x": asked}, "score": 0.8}
    assert opt.pending is None
    states = [t.state.name for t in opt.study.trials]
    assert states == ["COMPLETE", "COMPLETE"]


def test_numeric_state_round_trip_rebuilds_the_study():
    x = bf.param(-8.0, name="x", bounds=(-10.0, 10.0))
    opt = Numeric([x], seed=0)
    for _ in range(6):
        opt.zero_feedback()
        evaluate([x])
        opt.step()
    state = json.loads(json.dumps(opt.state_dict()))
    x2 = bf.param(0.0, name="x", bounds=(-10.0, 10.0))
    opt2 = Numeric([x2], seed=0)
    opt2.load_state_dict(state)
    assert x2.value == x.value and len(opt2.trials) == 6
    assert len(opt2.study.trials) == 6
    evaluate([x2])
    opt2.step()
    assert len(opt2.trials) == 7


def test_numeric_cmaes_sampler_runs():
    pytest.importorskip("cmaes")
    x = bf.param(0.0, name="x", bounds=(-5.0, 5.0))
    y = bf.param(0.0, name="y", bounds=(-5.0, 5.0))
    opt = Numeric([x, y], sampler="cmaes", seed=0, startup_trials=2)
    for _ in range(8):
        opt.zero_feedback()
        (x + y).backward(bf.Feedback(score=-(x.value - 1) ** 2 - (y.value + 2) ** 2))
        opt.step()
    assert len(opt.trials) == 8


# -- Hybrid -----------------------------------------------------------------------------------

def test_hybrid_routes_text_to_llm_and_adds_llm_numbers_as_a_candidate():
    x = bf.param(-8.0, name="x", bounds=(-10.0, 10.0))
    prompt = bf.param("hello", name="prompt")
    llm = bf.llm.Scripted(['{"reasoning": "r", "suggestion": {"x": 3.0, "prompt": "hi"}}'])
    opt = Hybrid([x, prompt], llm=llm, seed=0)
    evaluate([x, prompt])
    report = opt.step()
    sampled = opt.numeric.pending["x"]
    assert (prompt.value, x.value) == ("hi", sampled) and sampled not in (3.0, -8.0)
    # the model's own numbers are the second candidate, for the trainer to evaluate
    assert report.candidates == [{"x": sampled, "prompt": "hi"}, {"x": 3.0, "prompt": "hi"}]
    update = next(u for u in report.updates if u.name == "x")
    assert update.proposed == 3.0 and update.new == sampled and update.applied
    user = llm.calls[0].messages[1]["content"]  # text is asked for in a block, x in JSON
    assert llm.calls[0].options["json_schema"] is None
    assert "a line `### prompt`, then the whole new text" in user and '"x": <number>' in user


def test_hybrid_invalid_llm_number_is_rejected_and_sampler_still_asks():
    x = bf.param(-8.0, name="x", bounds=(-10.0, 10.0))
    prompt = bf.param("hello", name="prompt")
    llm = bf.llm.Scripted(['{"suggestion": {"x": 99.0, "prompt": "yo"}}'])
    opt = Hybrid([x, prompt], llm=llm, seed=0)
    evaluate([x, prompt])
    report = opt.step()
    assert [(u.name, u.kind) for u in report.rejected] == [("x", "bounds")]
    assert -10 <= x.value <= 10 and prompt.value == "yo"


def test_hybrid_warm_start_enqueues_llm_candidates():
    x = bf.param(-8.0, name="x", bounds=(-10.0, 10.0))
    prompt = bf.param("hello", name="prompt")
    warm = json.dumps({"reasoning": "", "members": [{"x": 1.5}, {"x": 2.5}], "stop": False})
    llm = bf.llm.Scripted([warm, '{"suggestion": {"prompt": "a"}}',
                           '{"suggestion": {"prompt": "b"}}'])
    opt = Hybrid([x, prompt], llm=llm, seed=0, warm_start=2)
    evaluate([x, prompt])
    opt.step()
    assert x.value == 1.5 and len(llm.calls) == 2
    opt.zero_feedback()
    evaluate([x, prompt])
    opt.step()
    assert x.value == 2.5 and len(llm.calls) == 3  # no second warm start
    assert "promising settings of the numeric parameters x" in llm.calls[0].messages[1]["content"]


def test_hybrid_backend_error_applies_nothing():
    x = bf.param(-8.0, name="x", bounds=(-10.0, 10.0))
    prompt = bf.param("hello", name="prompt")
    evaluate([x, prompt])
    report = Hybrid([x, prompt], llm=bf.llm.Scripted([]), seed=0).step()
    assert report.error and x.value == -8.0 and prompt.value == "hello"


def test_hybrid_state_round_trip():
    x = bf.param(-8.0, name="x", bounds=(-10.0, 10.0))
    prompt = bf.param("hello", name="prompt")
    llm = bf.llm.Scripted(['{"suggestion": {"x": 3.0, "prompt": "hi"}}'])
    opt = Hybrid([x, prompt], llm=llm, seed=0)
    evaluate([x, prompt])
    opt.step()
    state = json.loads(json.dumps(opt.state_dict()))
    x2 = bf.param(0.0, name="x", bounds=(-10.0, 10.0))
    p2 = bf.param("", name="prompt")
    opt2 = Hybrid([x2, p2], llm=bf.llm.Scripted(['{"suggestion": {"prompt": "z"}}']), seed=0)
    opt2.load_state_dict(state)
    assert (x2.value, p2.value) == (x.value, "hi")
    assert opt2.numeric.trials == [{"values": {"x": -8.0}, "score": -11.0}]
    assert opt2.history[0].values == {"x": -8.0, "prompt": "hello"}
    evaluate([x2, p2])
    opt2.step()
    assert p2.value == "z" and len(opt2.numeric.trials) == 2
