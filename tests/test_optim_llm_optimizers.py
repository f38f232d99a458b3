"""OPRO, Evolution and TextGrad with scripted answers, including JSON state round trips."""

from __future__ import annotations

import json

import backfeed as bf
from backfeed.optim import OPRO, Evolution, TextGrad


@bf.op
def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()


def score_run(x: bf.Param, score: float, text: str = "") -> None:
    y = x * 2
    y.backward(bf.Feedback(score=score, text=text))


# -- OPRO -----------------------------------------------------------------------------------

def test_opro_history_is_score_sorted_and_bounded():
    x = bf.param(0.0, name="x")
    answers = [f'{{"suggestion": {{"x": {v}}}}}' for v in (1.0, 2.0, 3.0, 4.0)]
    llm = bf.llm.Scripted(answers)
    opt = OPRO([x], llm=llm, history_size=2)
    for score in (0.5, 0.9, 0.1, 0.7):
        opt.zero_feedback()
        score_run(x, score, f"score {score}")
        opt.step()
    user = llm.calls[3].messages[1]["content"]
    history = user.split("#Tried values and their scores (worst first, best last)\n")[1]
    history = history.split("#Latest")[0]
    assert history == "- x=3.0; score=0.7\n- x=1.0; score=0.9\n"
    assert "score 0.7" in user  # latest feedback
    assert x.value == 4.0


def test_opro_state_round_trip_keeps_history():
    x = bf.param(0.0, name="x")
    opt = OPRO([x], llm=bf.llm.Scripted(['{"suggestion": {"x": 1.0}}']))
    score_run(x, 0.3)
    opt.step()
    state = json.loads(json.dumps(opt.state_dict()))
    x2 = bf.param(0.0, name="x")
    opt2 = OPRO([x2], llm=bf.llm.Scripted([]))
    opt2.load_state_dict(state)
    assert x2.value == 1.0 and "- x=0.0; score=0.3" in opt2.history_text()


# -- Evolution ----------------------------------------------------------------------------

MEMBERS = json.dumps({
    "reasoning": "mutate",
    "members": [{"x": 1.0}, {"x": 2.0}, {"x": "bad"}, {"x": 0.0}],
    "stop": False,
})


def test_evolution_queues_members_and_calls_once_per_generation():
    x = bf.param(0.0, name="x")
    llm = bf.llm.Scripted([MEMBERS])
    opt = Evolution([x], llm=llm, offspring=4)
    score_run(x, 0.1)
    report = opt.step()
    assert x.value == 1.0 and report.llm_calls == 1
    assert [u.kind for u in report.rejected] == ["type"]
    assert report.rejected[0].reason.startswith("member 2:")
    assert any("already tried" in p for p in report.problems)  # {"x": 0.0} is the current
    opt.zero_feedback()
    score_run(x, 0.5)
    report = opt.step()  # from the queue, no LLM call
    assert x.value == 2.0 and report.llm_calls == 0 and len(llm.calls) == 1


def test_evolution_prompt_sorts_population_by_fitness():
    x = bf.param(0.0, name="x")
    llm = bf.llm.Scripted([json.dumps({"reasoning": "", "members": [{"x": v}], "stop": False})
                           for v in (5.0, 6.0, 7.0)])
    opt = Evolution([x], llm=llm, offspring=1, population=2)
    for score in (0.2, 0.9, 0.4):
        opt.zero_feedback()
        score_run(x, score)
        opt.step()
    user = llm.calls[2].messages[1]["content"]
    assert "- fitness=0.4; x=6.0\n- fitness=0.9; x=5.0" in user
    assert "fitness=0.2" not in user
    schema = llm.calls[2].options["json_schema"]
    assert schema["properties"]["members"]["minItems"] == 1
    assert set(schema["properties"]["members"]["items"]["properties"]) == {"x"}


def test_evolution_state_round_trip_keeps_queue():
    x = bf.param(0.0, name="x")
    opt = Evolution([x], llm=bf.llm.Scripted([MEMBERS]))
    score_run(x, 0.1)
    opt.step()
    state = json.loads(json.dumps(opt.state_dict()))
    x2 = bf.param(0.0, name="x")
    opt2 = Evolution([x2], llm=bf.llm.Scripted([]))
    opt2.load_state_dict(state)
    assert x2.value == 1.0 and opt2.queue == [{"x": 2.0}]
    assert opt2.step().applied == {"x": 2.0}


def test_evolution_unparseable_answer_is_reported():
    x = bf.param(0.0, name="x")
    score_run(x, 0.1)
    report = Evolution([x], llm=bf.llm.Scripted(["no idea"])).step()
    assert x.value == 0.0 and any("no readable JSON" in p for p in report.problems)


# -- TextGrad -----------------------------------------------------------------------------

def test_textgrad_batches_gradients_then_updates_each_parameter():
    prompt = bf.param("hello", name="prompt")
    x = bf.param(1.0, name="x")
    y = prompt
    for _ in range(10):
        y = shout(y)
    z = bf.format("{a} {b}", a=y, b=x)
    z.backward("should be lower case and mention 2")

    def gradients(messages, options):
        nodes = list(options["json_schema"]["properties"]["gradients"]["properties"])
        return json.dumps({"gradients": {n: f"fix {n}" for n in nodes}})

    llm = bf.llm.Scripted([gradients, "Lower case.\n### prompt\n```text\nhi there\n```",
                           '{"reasoning": "two", "value": "2"}'])
    opt = TextGrad([prompt, x], llm=llm, batch_size=16)
    report = opt.step()
    assert len(llm.calls) == 3  # one gradient call for 11 ops + 2 params, then one per parameter
    assert prompt.value == "hi there" and x.value == 2.0
    assert report.details["gradients"]["prompt"] == "fix prompt"
    update_prompt = llm.calls[1].messages[1]["content"]
    assert "#Criticism of this parameter\nfix prompt" in update_prompt
    assert "shout0: fix shout0" in update_prompt  # the node it feeds
    assert llm.calls[1].options["json_schema"] is None  # text is asked for in a block
    assert "a line `### prompt`, then the whole new text" in update_prompt
    x_schema = llm.calls[2].options["json_schema"]["properties"]["suggestion"]
    assert x_schema["properties"] == {"x": {"type": "number"}}
    assert report.reasoning == "prompt: Lower case.\nx: two"


def test_textgrad_chain_costs_few_calls():
    x = bf.param(1.0, name="x")
    y = x
    for _ in range(100):
        y = y + 1
    y.backward("too big")

    def gradients(messages, options):
        nodes = list(options["json_schema"]["properties"]["gradients"]["properties"])
        return json.dumps({"gradients": {n: "smaller" for n in nodes}})

    llm = bf.llm.Scripted([gradients, gradients, '{"reasoning": "", "value": 0.5}'])
    opt = TextGrad([x], llm=llm, batch_size=16, max_gradient_calls=2)
    report = opt.step()
    assert report.llm_calls == 3 < 2 * 100
    assert x.value == 0.5


def test_textgrad_failed_call_applies_nothing():
    x = bf.param(1.0, name="x")
    (x + 1).backward("bad")

    def gradients(messages, options):
        return '{"gradients": {"add0": "less", "x": "less"}}'

    report = TextGrad([x], llm=bf.llm.Scripted([gradients])).step()
    assert "ran out" in report.error and x.value == 1.0


def test_textgrad_state_round_trip():
    x = bf.param(1.0, name="x")
    (x + 1).backward("bad")
    llm = bf.llm.Scripted(['{"gradients": {"add0": "less", "x": "less"}}',
                           '{"reasoning": "", "value": 0.0}'])
    opt = TextGrad([x], llm=llm)
    opt.step()
    state = json.loads(json.dumps(opt.state_dict()))
    x2 = bf.param(5.0, name="x")
    opt2 = TextGrad([x2], llm=bf.llm.Scripted([]))
    opt2.load_state_dict(state)
    assert x2.value == 0.0 and opt2.step_count == 1
