"""Search strategies: Pareto beats Greedy when examples need different fixes; unit behaviour."""

from __future__ import annotations

import random

import pytest

import backfeed as bf
import train_helpers as h
from backfeed.train import Candidate, pareto_front


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pareto_beats_greedy_at_equal_budget(tmp_path, seed):
    budget = bf.Budget(llm_calls=12)
    scores = {}
    for strategy in (bf.search.Greedy(), bf.search.Pareto()):
        result = h.run(str(tmp_path / "r.db"), seed=seed, steps=None, strategy=strategy,
                       budget=budget)
        assert result.spend["calls"] <= 12
        scores[strategy.name] = result.best_score
    assert scores["greedy"] == pytest.approx(1 / 3)
    assert scores["pareto"] > scores["greedy"] + 0.3


def _cand(i, scores, parents=(), values=None):
    return Candidate(i, values or {"x": i}, list(parents), "proposal", 0, list(scores))


def test_pareto_front_counts_wins_and_drops_dominated():
    pool = [_cand(0, [0, 0, 0]), _cand(1, [1, 0, 0]), _cand(2, [0, 1, 1]), _cand(3, [1, 0, 0])]
    assert pareto_front(pool) == {1: 1, 2: 2, 3: 1}
    pool.append(_cand(4, [1, 1, 1]))
    assert pareto_front(pool) == {4: 3}


def test_pareto_samples_parents_by_wins_and_merges_lineages():
    seed = Candidate(0, {"a": 0, "b": 0}, [], "seed", -1, [0, 0])
    left = Candidate(1, {"a": 1, "b": 0}, [0], "proposal", 0, [1, 0])
    right = Candidate(2, {"a": 0, "b": 1}, [1], "proposal", 1, [0, 1])
    pool = [seed, left, right]
    strategy = bf.search.Pareto()
    rng = random.Random(0)
    picks = [strategy.select(pool, rng).id for _ in range(200)]
    assert set(picks) == {1, 2} and 60 < picks.count(1) < 140
    assert strategy.merge(pool, rng, set()) is None  # nothing accepted yet: no merge due
    strategy.admitted(pool, right)
    a, b, merged = strategy.merge(pool, rng, set())
    assert {a.id, b.id} == {1, 2} and merged == {"a": 1, "b": 1}
    ok, why = strategy.accept_merge([1, 0], [0, 1], [1, 1])
    assert ok and "merge" in why
    assert not strategy.accept([1.0], [1.0])[0] and strategy.accept([0.0], [1.0])[0]
    state = strategy.state_dict()
    other = bf.search.Pareto()
    other.load_state_dict(state)
    assert other.state_dict() == state == {"merges_due": 0, "merges_done": 1}


def test_greedy_beam_ucb_best_of_n():
    pool = [_cand(0, [0.2]), _cand(1, [0.9]), _cand(2, [0.5])]
    rng = random.Random(0)
    assert bf.search.Greedy().select(pool, rng).id == 1
    assert bf.search.Greedy().accept([1, 0], [0, 1])[0]  # a tie does not lose
    beam = bf.search.Beam(2)
    assert [beam.select(pool, rng).id for _ in range(4)] == [1, 2, 1, 2]
    ucb = bf.search.UCB(c=1.0)
    first = ucb.select(pool, rng)
    for _ in range(5):
        ucb.observe(first, [0.0])
    assert ucb.select(pool, rng).id != first.id  # a parent that keeps failing loses its turn
    restored = bf.search.UCB()
    restored.load_state_dict(ucb.state_dict())
    assert restored.select(pool, rng).id == ucb.select(pool, rng).id
    assert bf.search.BestOfN(3).proposals == 3
    with pytest.raises(ValueError, match="positive int"):
        bf.search.BestOfN(0)
    with pytest.raises(ValueError, match="positive int"):
        bf.search.Beam(0)


def test_best_of_n_asks_n_proposals_per_step(tmp_path):
    llm = h.scripted()
    module = h.Router()
    result = bf.train(module, h.dataset(), metric=h.metric,
                      optimizer=h.FixOptimizer(module.parameters(), llm=llm),
                      strategy=bf.search.BestOfN(3), steps=2, store=tmp_path / "r.db",
                      minibatch_size=2, progress=False)
    assert len(llm.calls) == 6 and result.spend["calls"] == 6
    assert [r.seq for r in result.store.step_reports(result.run_id, step=0)] == [0, 1, 2]


class Writer(bf.Module):
    def __init__(self) -> None:
        self.style = bf.param("x", name="style")

    def forward(self, topic):
        return compose(topic, self.style)


def grow(messages, options):
    """A scripted optimizer model that makes the style one character longer."""
    import json
    import re

    value = re.search(r'"style": "(x*)"', messages[-1]["content"]).group(1)
    return json.dumps({"suggestion": {"style": value + "x"}})


def test_pairwise_mode_ranks_by_a_judge_without_ground_truth(tmp_path):
    """A judge prefers longer outputs; the optimizer proposes longer and longer values."""
    judged = []

    def judge(example, a, b):
        judged.append((a, b))
        if len(a) == len(b):
            return "tie"
        return ("a", "A is longer") if len(a) > len(b) else ("b", "B is longer")

    module = Writer()
    opt = h.FixOptimizer(module.parameters(), llm=bf.llm.Scripted([grow] * 20))
    result = bf.train(module, ["t1", "t2", "t3"], optimizer=opt,
                      strategy=bf.search.Pairwise(judge), steps=4, store=tmp_path / "r.db",
                      minibatch_size=2, progress=False)
    assert module.style.value == "xxxxx" and result.best_values == {"style": "xxxxx"}
    comparisons = result.store.comparisons(result.run_id)
    assert comparisons and {c.winner for c in comparisons} <= {"a", "b", "tie"}
    assert all(s.accepted for s in result.history)
    # the judge's reasons reached the optimizer as feedback
    assert any("longer" in c.messages[-1]["content"] for c in opt.llm.calls)
    with pytest.raises(ValueError, match="judge must answer"):
        bf.search.Verdict.of("left")


def test_llm_judge_is_recorded_and_metered(tmp_path):
    judge_llm = bf.llm.Scripted(['{"winner": "B", "reason": "more detail"}'] * 50)
    judge = bf.search.LLMJudge(judge_llm)
    assert judge("q", "short", "longer").winner == "b"
    module = Writer()
    opt = h.FixOptimizer(module.parameters(), llm=bf.llm.Scripted([grow] * 20))
    result = bf.train(module, ["t1", "t2", "t3"], optimizer=opt,
                      strategy=bf.search.Pairwise(judge), steps=2, store=tmp_path / "r.db",
                      minibatch_size=2, budget=bf.Budget(llm_calls=5), progress=False)
    assert result.spend["calls"] <= 5
    assert judge.llm is judge_llm  # restored after the run
    assert any("Output A" in c.messages[0]["content"] for c in result.store.llm_calls(result.run_id))


@bf.op
def compose(topic: str, style: str) -> str:
    """Join topic and style."""
    return f"{topic}:{style}"
