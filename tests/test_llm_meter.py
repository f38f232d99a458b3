"""Usage and cost accounting with budgets checked before each call."""

import threading

import pytest

import backfeed as bf
from backfeed.llm import Completion, Metered, Scripted, Spend, Usage

MSG = [{"role": "user", "content": "x" * 40}]  # ~10 tokens by estimate


def paid(text="ok", usd=0.01):
    return Completion(text, Usage(10, 5), usd, "m")


def test_counts_calls_tokens_and_dollars():
    llm = Metered(Scripted([paid(), paid(usd=0.02)]))
    llm.complete(MSG)
    llm.complete(MSG)
    assert llm.spend.to_dict() == {"calls": 2, "cached_calls": 0, "prompt_tokens": 20,
                                   "completion_tokens": 10, "usd": pytest.approx(0.03),
                                   "tokens": 30, "llm_calls": 2, "by_role": {"optimizer": {
                                       "calls": 2, "cached_calls": 0, "prompt_tokens": 20,
                                       "completion_tokens": 10, "usd": pytest.approx(0.03),
                                       "tokens": 30}}}


def test_call_budget_raises_before_the_call():
    backend = Scripted([paid()] * 3)
    llm = Metered(backend, bf.Budget(llm_calls=2))
    llm.complete(MSG)
    llm.complete(MSG)
    with pytest.raises(bf.BudgetExceeded, match="2 of 2 calls") as info:
        llm.complete(MSG)
    assert info.value.limit == "llm_calls" and len(backend.calls) == 2


def test_token_budget_uses_the_prompt_estimate_and_max_tokens():
    backend = Scripted([paid()] * 2)
    llm = Metered(backend, bf.Budget(tokens=40))
    llm.complete(MSG)  # 15 used
    with pytest.raises(bf.BudgetExceeded, match="needs ~30") as info:
        llm.complete(MSG, max_tokens=20)  # 15 + 10 + 20 > 40
    assert info.value.limit == "tokens" and len(backend.calls) == 1


def test_dollar_budget_stops_before_the_average_call_would_pass_it():
    llm = Metered(Scripted([paid(usd=0.4)] * 3), bf.Budget(usd=1.0))
    llm.complete(MSG)
    llm.complete(MSG)
    with pytest.raises(bf.BudgetExceeded, match="dollar budget"):
        llm.complete(MSG)


def test_concurrent_callers_cannot_jointly_pass_the_call_budget():
    backend = Scripted([paid()] * 50)
    llm = Metered(backend, bf.Budget(llm_calls=10))
    refused = []

    def work():
        for _ in range(5):
            try:
                llm.complete(MSG)
            except bf.BudgetExceeded:
                refused.append(1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(backend.calls) == 10 and llm.spend.calls == 10 and len(refused) == 30


def test_meters_can_share_one_spend():
    spend = Spend()
    a, b = Metered(Scripted([paid()]), spend=spend), Metered(Scripted([paid()]), spend=spend)
    a.complete(MSG)
    b.complete(MSG)
    assert spend.calls == 2


def test_spend_counts_each_role_apart_and_rebuilds_from_stored_calls():
    spend = Spend()
    Metered(Scripted([paid()]), spend=spend).complete(MSG)
    Metered(Scripted([paid(usd=0.5)]), spend=spend, role="judge").complete(MSG)
    by_role = spend.to_dict()["by_role"]
    assert by_role["optimizer"]["calls"] == 1 and by_role["judge"]["usd"] == pytest.approx(0.5)
    assert spend.calls == 2 and spend.usd == pytest.approx(0.51)
    rebuilt = Spend.from_calls([type("Call", (), {"prompt_tokens": 10, "completion_tokens": 5,
                                                  "cost_usd": 0.5, "cached": False,
                                                  "role": "judge"})()])
    assert rebuilt.to_dict()["by_role"] == {"judge": by_role["judge"]}
    with pytest.raises(ValueError, match="unknown spend role 'user'"):
        Metered(Scripted([]), role="user")


def test_metered_is_a_wrapper_so_unwrap_reaches_the_backend():
    backend = Scripted([paid()])
    assert Metered(bf.llm.Retrying(backend)).unwrap() is backend
