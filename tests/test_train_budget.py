"""Budgets and stop rules: every limit stops the run at the limit, never past it; estimates."""

from __future__ import annotations

import pytest

import backfeed as bf
import train_helpers as h


def _train(tmp_path, budget, *, steps=None, llm=None, strategy=None, metric=h.metric, clock=None,
           valset=True):
    module = h.Router()
    data = h.dataset()
    opt = h.FixOptimizer(module.parameters(), llm=llm or h.scripted())
    kwargs = {} if clock is None else {"clock": clock}
    trainer = bf.Trainer(module, data, data if valset else None, metric=metric, optimizer=opt,
                         strategy=strategy or bf.search.Greedy(), budget=budget, steps=steps,
                         store=tmp_path / "r.db", minibatch_size=2, progress=False, **kwargs)
    return trainer, opt


def test_llm_calls_limit_is_exact(tmp_path):
    llm = h.scripted()
    trainer, _ = _train(tmp_path, bf.Budget(llm_calls=5), llm=llm)
    result = trainer.fit()
    assert result.status == "stopped" and result.stop_reason.startswith("llm_calls")
    assert result.spend["calls"] == 5 and len(llm.calls) == 5
    assert len(result.store.llm_calls(result.run_id)) == 5


def test_token_limit_never_passed(tmp_path):
    trainer, _ = _train(tmp_path, bf.Budget(tokens=600))
    result = trainer.fit()
    assert result.stop_reason.startswith("tokens")
    assert 0 < result.spend["tokens"] <= 600
    # one more call would have passed the limit
    per_call = result.spend["tokens"] / result.spend["calls"]
    assert result.spend["tokens"] + per_call > 600 - 64


def test_usd_limit_never_passed(tmp_path):
    trainer, _ = _train(tmp_path, bf.Budget(usd=0.05), llm=h.scripted(cost=0.01))
    result = trainer.fit()
    assert result.stop_reason.startswith("usd")
    assert result.spend["usd"] <= 0.05 + 1e-12
    assert result.spend["calls"] == 5


@pytest.mark.parametrize("limit", [1, 6, 9, 23])
def test_metric_calls_limit_is_exact(tmp_path, limit):
    seen = []

    def metric(example, output):
        seen.append(example)
        return h.metric(example, output)

    trainer, _ = _train(tmp_path, bf.Budget(metric_calls=limit), metric=metric)
    result = trainer.fit()
    assert result.stop_reason.startswith("metric_calls")
    assert len(seen) == limit == result.metric_calls
    assert len(result.store.evaluations(result.run_id)) == limit


def test_seconds_limit_checked_before_every_model_call(tmp_path):
    llm = h.scripted()
    # a fake clock: every model call takes 10 "seconds"
    trainer, _ = _train(tmp_path, bf.Budget(seconds=35), llm=llm,
                        clock=lambda: 10.0 * len(llm.calls))
    result = trainer.fit()
    assert result.stop_reason.startswith("seconds")
    assert len(llm.calls) == 4  # the fifth call would have started at t=40 > 35


def test_patience_and_target_and_steps(tmp_path):
    trainer, _ = _train(tmp_path, bf.Budget(patience=3))
    result = trainer.fit()
    assert result.stop_reason.startswith("patience")
    scores = [s.best_score for s in result.history]
    assert len(scores) >= 4 and scores[-1] == scores[-4]  # three steps without improvement

    trainer, _ = _train(tmp_path, bf.Budget(target=0.6, llm_calls=40),
                        strategy=bf.search.Pareto())
    result = trainer.fit()
    assert result.status == "finished" and result.stop_reason.startswith("target")
    assert result.best_score >= 0.6 and result.history[-2].best_score < 0.6

    trainer, _ = _train(tmp_path, None, steps=3)
    result = trainer.fit()
    assert result.status == "finished" and len(result.history) == 3


def test_a_run_needs_an_end(tmp_path):
    with pytest.raises(ValueError, match="no end"):
        _train(tmp_path, None)


@pytest.mark.parametrize("strategy", [bf.search.Greedy(), bf.search.Pareto()])
def test_estimate_within_2x_of_actual(tmp_path, strategy):
    llm = h.scripted(cost=0.0)
    # a budget the run spends whole (4 calls; Pareto would finish perfect after 5)
    trainer, _ = _train(tmp_path, bf.Budget(llm_calls=4), llm=llm, strategy=strategy)
    before = trainer.module.state_dict()
    est = trainer.estimate(price=(1.0, 2.0))
    assert trainer.module.state_dict() == before and len(llm.calls) == 0  # the probe paid nothing
    result = trainer.fit()
    actual = result.spend
    exp = est.expected
    assert exp["llm_calls"] / 2 <= actual["calls"] <= exp["llm_calls"] * 2
    assert exp["tokens"] / 2 <= actual["tokens"] <= exp["tokens"] * 2
    assert est.tokens[0] <= actual["tokens"] <= est.tokens[1]
    assert exp["metric_calls"] / 2 <= result.metric_calls <= exp["metric_calls"] * 2
    usd = sum(c.prompt_tokens * 1e-6 + c.completion_tokens * 2e-6
              for c in result.store.llm_calls(result.run_id))
    assert est.usd is not None and est.usd[0] <= usd <= est.usd[1]
    assert "LLM calls" in str(est)


def test_estimate_without_price_says_unknown(tmp_path):
    trainer, _ = _train(tmp_path, None, steps=4)
    est = trainer.estimate()
    assert est.usd is None and "unknown price" in str(est)
    assert est.steps == 4 and est.llm_calls == (2, 8)


class _Asks(bf.Module):
    """A program whose every example is one model call."""

    def __init__(self):
        self.prompt = bf.param("Say it.", name="prompt")

    def forward(self, q):
        return bf.chat([{"role": "system", "content": self.prompt}, {"role": "user", "content": q}])


@pytest.mark.parametrize("limit", [{"llm_calls": 2}, {"tokens": 40}])
def test_a_budget_the_programs_calls_spend_ends_the_run_it_never_loops(tmp_path, limit):
    """The seed's validation spends the budget; the next step rebuilds the stored outputs'
    graphs, whose model calls are refused. That run used to step without end, each step
    'nothing to optimize' (a million steps in 12 minutes)."""
    module = _Asks()
    optimizer = bf.optim.Prime(module.parameters(), llm=bf.llm.Scripted(
        ["### prompt\n```text\nSay it louder.\n```"] * 50))
    result = bf.train(module, ["a", "b"], metric=lambda e, o: 0.0, optimizer=optimizer,
                      budget=bf.Budget(**limit), minibatch_size=2, store=tmp_path / "r.db",
                      program_llm=bf.llm.Scripted([lambda m, o: "x"] * 500), progress=False)
    assert result.status == "stopped" and result.stop_reason.startswith(next(iter(limit)))
    assert len(result.history) <= 1
