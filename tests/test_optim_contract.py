"""Every LLM optimizer honours the same contract: errors recorded, budget stops, JSON state."""

from __future__ import annotations

import json

import pytest

import backfeed as bf
from backfeed.budget import BudgetExceeded
from backfeed.optim import OPRO, Evolution, Hybrid, Prime, TextGrad

OPTIMIZERS = [Prime, OPRO, Evolution, TextGrad, Hybrid]
GARBAGE = ["", "TERMINATE", "{", '{"suggestion": {"nope": 1}}', "[[[", '{"members": 3}',
           '{"gradients": "x"}', '{"value": {"a": 1}}', "```json\n{\"suggestion\": {\"x\": \"big\"}}```"]


def setup():
    x = bf.param(1.0, name="x", bounds=(-10.0, 10.0))
    text = bf.param("hello", name="greeting")
    out = bf.format("{g} {x}", g=text, x=x)
    out.backward(bf.Feedback(score=0.3, text="should be shorter"))
    return [x, text]


def failing(exc: Exception):
    def respond(messages, options):
        raise exc

    return respond


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_backend_error_is_recorded_and_nothing_applied(cls):
    pytest.importorskip("optuna") if cls is Hybrid else None
    params = setup()
    report = cls(params, llm=bf.llm.Scripted([failing(ConnectionError("refused"))] * 5)).step()
    assert report.error == "ConnectionError: refused"
    assert [p.value for p in params] == [1.0, "hello"]


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_budget_exceeded_propagates(cls):
    params = setup()
    llm = bf.llm.Scripted([failing(BudgetExceeded("usd", "usd budget of 0.0 reached"))] * 5)
    with pytest.raises(BudgetExceeded):
        cls(params, llm=llm).step()


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("answer", GARBAGE)
def test_garbage_answers_never_raise_and_never_corrupt(cls, answer):
    pytest.importorskip("optuna") if cls is Hybrid else None
    params = setup()
    report = cls(params, llm=bf.llm.Scripted([answer] * 5)).step()
    assert isinstance(params[0].value, float) and -10 <= params[0].value <= 10
    assert isinstance(params[1].value, str)
    assert report.error is None


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_state_dict_is_json(cls):
    pytest.importorskip("optuna") if cls is Hybrid else None
    params = setup()
    opt = cls(params, llm=bf.llm.Scripted(["{}"] * 5))
    opt.step()
    state = json.loads(json.dumps(opt.state_dict()))
    assert state["type"] == cls.__name__ and state["step_count"] == 1
    fresh = cls(setup(), llm=bf.llm.Scripted([]))
    fresh.load_state_dict(state)
    assert fresh.step_count == 1 and fresh.history[0].score == 0.3


def test_calls_through_lends_every_optimizer_a_model_and_changes_none():
    import contextvars
    import threading

    own, lent = bf.llm.Scripted([]), bf.llm.Scripted([])
    p = bf.param("hi", name="p")
    prime = bf.optim.Prime([p], llm=own)
    hybrid = bf.optim.Hybrid([p, bf.param(1.0, name="x", bounds=(0.0, 2.0))], llm=own)
    seen: list[object] = []
    with bf.optim.Optimizer.calls_through(lent):
        assert prime.llm is lent and hybrid.llm is lent and hybrid.prime.llm is lent
        assert prime._llm is own and hybrid.prime._llm is own  # nothing was set on them
        context = contextvars.copy_context()  # a thread that copies the context sees it too
        worker = threading.Thread(target=context.run, args=(lambda: seen.append(prime.llm),))
        worker.start()
        worker.join()
        with bf.optim.Optimizer.calls_through(own):
            assert prime.llm is own
        assert prime.llm is lent
    assert seen == [lent] and prime.llm is own and hybrid.prime.llm is own
