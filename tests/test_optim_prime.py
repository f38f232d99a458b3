"""Prime: prompt contents, schema, budget, memory, errors and JSON state."""

from __future__ import annotations

import json

import pytest

import backfeed as bf
from backfeed.budget import BudgetExceeded
from backfeed.optim import Prime


@bf.op
def scale(v: float, factor: int) -> float:
    """Multiply v by factor."""
    return v * factor


def run(x: bf.Param, feedback: str | float | bf.Feedback = "y should be 20") -> bf.Node:
    y = scale(x + 1, bf.node(3))
    y.backward(feedback)
    return y


def test_design_example_applies_suggestion():
    x = bf.param(1.0, name="x", description="offset added to the input")
    opt = Prime([x], llm=bf.llm.Scripted(['{"suggestion": {"x": 4.0}}']))
    opt.zero_feedback()
    run(x)
    report = opt.step()
    assert x.value == 4.0
    assert report.applied == {"x": 4.0}
    assert report.llm_calls == 1 and report.prompt_tokens > 0


def test_prompt_shows_trace_feedback_and_plain_names():
    x = bf.param(1.0, name="x", description="offset added to the input")
    llm = bf.llm.Scripted(['{"reasoning": "", "suggestion": {"x": 2.0}, "stop": false}'])
    opt = Prime([x], llm=llm)
    run(x)
    opt.step()
    system, user = (m["content"] for m in llm.calls[0].messages)
    assert "Only parameters can change" in system
    assert "x (float): offset added to the input" in user
    assert "scale0 = scale(v=add0, factor=3) -> 6.0" in user
    assert "y should be 20" in user
    assert '"suggestion": {"x": <number>}' in user
    assert "parameter names: x." in user
    assert "{{" not in user and "}}" not in user


def test_schema_keys_are_exactly_the_parameter_names_with_types():
    x = bf.param(1.0, name="x", bounds=(0, 10))
    n = bf.param(2, name="n")
    mode = bf.param("a", name="mode", choices=["a", "b"])
    llm = bf.llm.Scripted(['{"suggestion": {}}'])
    opt = Prime([x, n, mode], llm=llm, reasoning_chars=123)
    run(x)
    opt.step()
    options = llm.calls[0].options
    schema = options["json_schema"]
    suggestion = schema["properties"]["suggestion"]
    assert set(suggestion["properties"]) == {"x", "n", "mode"}
    assert suggestion["additionalProperties"] is False
    assert suggestion["properties"]["x"] == {"type": "number", "minimum": 0, "maximum": 10}
    assert suggestion["properties"]["n"] == {"type": "integer"}
    assert suggestion["properties"]["mode"] == {"enum": ["a", "b"]}
    assert schema["properties"]["reasoning"]["maxLength"] == 123
    assert schema["required"] == ["reasoning", "suggestion", "stop"]
    assert options["max_tokens"] > 0


def test_max_tokens_option_caps_the_answer():
    x = bf.param(1.0, name="x")
    llm = bf.llm.Scripted(['{"suggestion": {}}'])
    run(x)
    Prime([x], llm=llm, max_tokens=50).step()
    assert llm.calls[0].options["max_tokens"] == 50


def test_prompt_stays_within_budget_on_a_long_chain():
    x = bf.param(1.0, name="x")
    y = x
    for _ in range(1000):
        y = y + 1
    y.backward("too large")
    llm = bf.llm.Scripted(['{"suggestion": {"x": 0.0}}'])
    opt = Prime([x], llm=llm, budget_tokens=1000)
    opt.step()
    text = "".join(m["content"] for m in llm.calls[0].messages)
    assert len(text) / 4 <= 1000
    assert "Elided" in text


def test_memory_lists_earlier_attempts_with_scores():
    x = bf.param(1.0, name="x")
    llm = bf.llm.Scripted(['{"suggestion": {"x": 2.0}}', '{"suggestion": {"x": 3.0}}',
                           '{"suggestion": {"x": 4.0}}'])
    opt = Prime([x], llm=llm, memory=1)
    for score in (0.1, 0.5, 0.7):
        opt.zero_feedback()
        run(x, bf.Feedback(score=score, text=f"got {score}"))
        opt.step()
    last = llm.calls[2].messages[1]["content"]
    assert "score=0.5; x=2.0; feedback: got 0.5" in last  # the previous attempt
    assert "score=0.1" not in last  # memory=1 keeps only the last one
    assert llm.calls[0].messages[1]["content"].count("(none yet)") == 1


def test_stop_comes_only_from_the_explicit_field():
    x = bf.param(1.0, name="x")
    llm = bf.llm.Scripted(['{"reasoning": "TERMINATE", "suggestion": {"x": 2.0}, "stop": false}',
                           '{"reasoning": "done", "suggestion": {"x": 2.0}, "stop": true}'])
    opt = Prime([x], llm=llm)
    run(x, bf.Feedback(score=1.0, text="right"))
    assert opt.step().stop is False and x.value == 2.0
    assert opt.step().stop is True


def test_backend_error_is_recorded_and_nothing_applied():
    x = bf.param(1.0, name="x")

    def fail(messages, options):
        raise ConnectionError("server down")

    run(x)
    report = Prime([x], llm=bf.llm.Scripted([fail])).step()
    assert report.error == "ConnectionError: server down"
    assert x.value == 1.0 and report.applied == {}


def test_budget_exceeded_propagates():
    x = bf.param(1.0, name="x")

    def over(messages, options):
        raise BudgetExceeded("llm_calls", "llm_calls budget of 0 reached")

    run(x)
    with pytest.raises(BudgetExceeded):
        Prime([x], llm=bf.llm.Scripted([over])).step()


def test_scripted_exhaustion_is_a_recorded_error():
    x = bf.param(1.0, name="x")
    run(x)
    report = Prime([x], llm=bf.llm.Scripted([])).step()
    assert "ran out of responses" in report.error


def test_state_dict_round_trips_through_json():
    x = bf.param(1.0, name="x")
    opt = Prime([x], llm=bf.llm.Scripted(['{"suggestion": {"x": 5.0}}']), memory=3)
    run(x, bf.Feedback(score=0.25, text="low"))
    opt.step()
    state = json.loads(json.dumps(opt.state_dict()))
    x2 = bf.param(0.0, name="x")
    opt2 = Prime([x2], llm=bf.llm.Scripted([]))
    opt2.load_state_dict(state)
    assert x2.value == 5.0 and opt2.step_count == 1
    assert opt2.history[0].values == {"x": 1.0} and opt2.history[0].score == 0.25
    assert "score=0.25" in opt2.memory_text(500)


def test_load_state_of_another_optimizer_is_refused():
    x = bf.param(1.0, name="x")
    with pytest.raises(ValueError, match="state is for OPRO"):
        Prime([x], llm=bf.llm.Scripted([])).load_state_dict({"type": "OPRO"})


def test_tiny_budget_is_refused():
    with pytest.raises(ValueError, match="budget_tokens"):
        Prime([bf.param(1.0, name="x")], budget_tokens=10)


def test_observe_records_rejected_candidate_and_best():
    x = bf.param(1.0, name="x")
    opt = Prime([x], llm=bf.llm.Scripted([]))
    run(x, bf.Feedback(score=0.9))
    opt.observe()
    opt.zero_feedback()
    x.value = 7.0
    run(x, bf.Feedback(score=0.2))
    opt.observe()
    assert opt.best().values == {"x": 1.0}
    assert [h.values["x"] for h in opt.history] == [1.0, 7.0]
    opt.observe()  # the same values again replace their row
    assert len(opt.history) == 2


def test_rejections_of_the_last_answer_are_shown_in_the_next_prompt():
    x = bf.param(1.0, name="x", bounds=(0, 10))
    llm = bf.llm.Scripted(['{"suggestion": {"x": 50.0, "y": 1}}', '{"suggestion": {"x": 2.0}}'])
    opt = Prime([x], llm=llm)
    run(x)
    opt.step()
    user = llm.calls[0].messages[1]["content"]
    assert "#Rejected from your last answer\n(nothing)" in user
    opt.step()
    user = llm.calls[1].messages[1]["content"]
    assert "- bounds: parameter 'x' must lie in [0, 10], got 50.0" in user
    assert "- unknown: 'y' is not a parameter" in user
    state = json.loads(json.dumps(opt.state_dict()))
    assert state["rejections"] == []  # the second answer was clean


def test_memory_rows_show_only_the_values_that_differ_from_now():
    x = bf.param(1.0, name="x")
    note = bf.param("short", name="note")
    opt = Prime([x, note], llm=bf.llm.Scripted([
        '{"suggestion": {"x": 2.0, "note": "short"}}',
        '{"suggestion": {"x": 2.0, "note": "' + "long " * 30 + '"}}',
    ]))
    for _ in range(2):
        (x * 3 + bf.len(note)).backward(bf.Feedback(score=x.value, text="more"))
        opt.step()
        opt.zero_feedback()
    # attempts so far: (1.0, short) and (2.0, short); now (2.0, long ...)
    memory = opt.memory_text(1_000)
    rows = memory.splitlines()
    assert rows[0].startswith("- score=1; x=1.0, note=\"short\"; feedback")  # both differ
    assert rows[1].startswith('- score=2; note="short"; other parameters as now')
    assert "long long" not in memory  # the current value is under #Parameters, not repeated
