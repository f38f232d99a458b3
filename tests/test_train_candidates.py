"""Several candidates per optimizer step: each new one evaluated, the best kept, all recorded."""

from __future__ import annotations

import json

import backfeed as bf
import train_helpers as h
from backfeed.optim import Optimizer, ParamUpdate, StepReport


class ManyOptimizer(Optimizer):
    """Asks its model once for a JSON list of value sets; applies the first, offers them all."""

    def _step(self, report: StepReport) -> None:
        completion = self._ask(report, [{"role": "user", "content": "propose"}])
        if completion is None:
            return
        sets = json.loads(completion.text)
        for name, value in sets[0].items():
            p = self.param(name)
            old, p.value = p.value, value
            report.updates.append(ParamUpdate(name, old, value, value, True, changed=old != value))
        report.candidates = sets  # the field the optimizers' side adds to StepReport


def test_each_candidate_is_evaluated_the_best_kept_and_every_one_recorded(tmp_path):
    module = h.Router()
    a = {"pa": "right-a", "pb": "start", "pc": "start"}
    ab = {"pa": "right-a", "pb": "right-b", "pc": "start"}
    bad = {"pa": ["not", "a", "string"], "pb": "start", "pc": "start"}
    llm = bf.llm.Scripted([json.dumps([a, ab, dict(a), bad])])
    result = bf.train(module, h.dataset(1), metric=h.metric,
                      optimizer=ManyOptimizer(module.parameters(), llm=llm), steps=1,
                      minibatch_size=3, store=tmp_path / "r.db", progress=False)
    store, run = result.store, result.run_id
    assert result.best_values == ab and result.best_score == 2 / 3
    cands = {c.id: c for c in store.candidates(run)}
    assert cands[1].values == a and cands[2].values == ab
    assert cands[1].status == "rejected" and cands[2].status == "accepted"
    assert {c.origin for c in cands.values() if c.id} == {"proposal"}
    reports = store.step_reports(run)
    assert [(r.seq, r.candidate_id, r.candidate_index) for r in reports] == [
        (0, 1, 0), (1, 2, 1), (2, None, 2), (3, None, 3)]
    reasons = {d.candidate_id: d.reason for d in store.decisions(run)}
    assert reasons[1].startswith("candidate 2 of this step scored higher (mean 0.6667 against 0.3333)")
    assert "does not lose" in reasons[2]
    assert reasons[-3] == ("duplicate: same values as candidate 1, already evaluated "
                           "(not evaluated again)")
    assert reasons[-4].startswith("invalid candidate 3: ")
    train_evals = [e for e in store.evaluations(run) if e.split == "train"]
    assert sorted({e.candidate_id for e in train_evals}) == [0, 1, 2]  # the duplicate: none
    assert result.spend["calls"] == 1 and len(llm.calls) == 1  # one call, four candidates


def test_a_call_budget_counts_real_calls_not_candidates(tmp_path):
    module = h.Router()
    answer = json.dumps([{"pa": "right-a", "pb": "start", "pc": "start"},
                         {"pa": "start", "pb": "right-b", "pc": "start"}])
    llm = bf.llm.Scripted([answer] * 5)
    result = bf.train(module, h.dataset(1), metric=h.metric,
                      optimizer=ManyOptimizer(module.parameters(), llm=llm),
                      budget=bf.Budget(llm_calls=2), minibatch_size=3, store=tmp_path / "r.db",
                      progress=False)
    assert result.status == "stopped" and result.stop_reason.startswith("llm_calls")
    assert len(llm.calls) == 2 and result.spend["calls"] == 2
    assert result.spend["by_role"]["optimizer"]["calls"] == 2
    assert result.store.get_run(result.run_id).spend["by_role"]["optimizer"]["calls"] == 2


def test_of_equally_scored_candidates_the_one_changing_fewest_parameters_is_kept(tmp_path):
    module = h.Router()
    noisy = {"pa": "right-a", "pb": "start", "pc": "copied junk"}  # pc's change earns nothing
    lean = {"pa": "right-a", "pb": "start", "pc": "start"}
    llm = bf.llm.Scripted([json.dumps([noisy, lean])])
    result = bf.train(module, h.dataset(1), metric=h.metric,
                      optimizer=ManyOptimizer(module.parameters(), llm=llm), steps=1,
                      minibatch_size=3, store=tmp_path / "r.db", progress=False)
    assert result.best_values == lean  # proposed second, scored the same, changes one value
    statuses = {c.id: c.status for c in result.store.candidates(result.run_id)}
    assert statuses[1] == "rejected" and statuses[2] == "accepted"
