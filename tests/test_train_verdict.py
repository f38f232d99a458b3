"""Trust the winner: the held-out verdict with its bootstrap interval, acceptance rules, the
copy guard and no idle steps."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import backfeed as bf
import train_helpers as h
from backfeed.cli import app
from backfeed.train import ModelFailed
from backfeed.train.acceptance import Significant, TieAtZero, as_acceptance, improves, no_worse
from backfeed.train.guards import CopyGuard
from backfeed.train.search import objective_front
from backfeed.train.verdict import paired_bootstrap


def _train(tmp_path, **options):
    module = h.Router()
    data = h.dataset()
    result = bf.train(module, data, data, metric=h.metric,
                      optimizer=h.FixOptimizer(module.parameters(), llm=h.scripted()),
                      strategy=bf.search.Pareto(), steps=12, store=tmp_path / "r.db",
                      minibatch_size=2, progress=False, **options)
    return module, result


# -- the interval ---------------------------------------------------------------------------

def test_the_paired_bootstrap_interval_on_known_cases():
    same = paired_bootstrap([0.0] * 20, [0.5] * 20)
    assert same == (0.5, 0.5, 0.5)  # every example gained 0.5: no spread at all
    half = [0.0] * 100
    mixed = [1.0, 0.0] * 50  # half the examples gained 1: mean 0.5, standard error 0.05
    mean, low, high = paired_bootstrap(half, mixed)
    assert mean == 0.5 and 0.39 < low < 0.42 and 0.58 < high < 0.61  # about 0.5 +- 1.96 * 0.05
    assert paired_bootstrap(half, mixed) == (mean, low, high)  # seeded: the same every time
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap([1.0], [1.0, 0.0])


def test_an_interval_that_includes_zero_says_the_gain_may_be_noise():
    verdict = bf.store.HeldOut("test", 4, 0.5, 0.75, 0.25, -0.25, 0.75, seed_candidate=0,
                               best_candidate=3)
    assert not verdict.significant
    assert verdict.line().endswith("the interval includes 0: the gain may be noise")
    assert "on the test split, 4 examples: seed 0.500 -> best 0.750, +0.250" in verdict.line()


# -- the verdict of a run -------------------------------------------------------------------

def test_the_winner_is_chosen_on_validation_and_reported_on_the_test_split(tmp_path):
    _, plain = _train(tmp_path / "a")
    test = h.dataset(3)  # 9 examples the search never sees
    _, result = _train(tmp_path / "b", testset=test)
    assert result.best_values == plain.best_values  # the test split chose nothing
    verdict = result.verdict
    assert verdict.split == "test" and verdict.n == len(test) and verdict.significant
    assert (verdict.seed_score, verdict.best_score) == (0.0, 1.0)
    assert verdict.low > 0 and verdict.best_candidate == result.best_candidate
    store = result.store
    assert store.get_run(result.run_id).verdict == verdict  # stored, typed
    tested = {(e.candidate_id, e.example_index) for e in store.evaluations(result.run_id)
              if e.split == "test"}
    assert tested == {(c, i) for c in (0, result.best_candidate) for i in range(len(test))}
    assert store.get_run(result.run_id).config["testset"]["examples"] == len(test)
    shown = CliRunner().invoke(app, ["show", result.run_id, "--store", str(tmp_path / "b/r.db")])
    assert shown.exit_code == 0 and verdict.line() in " ".join(shown.output.split())
    listed = CliRunner().invoke(app, ["runs", "--store", str(tmp_path / "b/r.db"), "--json"])
    assert '"significant": true' in listed.output


def test_without_a_test_split_the_verdict_is_on_validation_and_says_it_is_optimistic(tmp_path):
    _, result = _train(tmp_path)
    assert result.verdict.split == "val" and result.verdict.n == len(h.dataset())
    assert "no test split: optimistic" in result.verdict.line()


def test_a_run_whose_seed_stays_best_says_so(tmp_path):
    module = h.Router()
    data = h.dataset(1)
    result = bf.train(module, data, metric=h.metric, steps=1, store=tmp_path / "r.db",
                      optimizer=h.FixOptimizer(module.parameters(),
                                               llm=bf.llm.Scripted(['{"suggestion": {}}'])),
                      progress=False, testset=data)
    assert result.verdict.improvement == 0 and result.verdict.line().endswith(
        "the seed is still the best")


# -- acceptance -----------------------------------------------------------------------------

def test_acceptance_rules():
    assert improves([0.5], [0.5])[0] is False and improves([0.5], [0.6])[0] is True
    assert no_worse([0.5, 0.5], [0.5, 0.5])[0] is True
    ok, why = no_worse([0.0, 0.0], [0.0, 0.0])
    assert ok is False and why.startswith("ties at 0")
    significant = Significant(level=0.05)
    assert significant([0.0] * 6, [1.0] * 6)[0] is True  # p = 1/64
    assert significant([0.0] * 3, [1.0] * 3)[0] is False  # p = 1/8: too few examples
    assert significant.p_value([0.0] * 6, [1.0] * 6) == pytest.approx(1 / 64)
    assert as_acceptance("no_worse") is no_worse and as_acceptance(None) is None
    custom = as_acceptance(lambda p, c: sum(c) >= 2 * sum(p))
    assert custom([1.0], [2.0])[0] is True and custom([1.0], [1.5])[0] is False
    with pytest.raises(ValueError, match="accept='better'"):
        as_acceptance("better")


def test_greedy_refuses_a_tie_at_zero_that_it_used_to_keep(tmp_path):
    module = h.Router()
    data = [("a", 0), ("b", 0)]
    # the proposal changes pc only, which neither example reads: 0 against 0
    llm = bf.llm.Scripted(['{"suggestion": {"pc": "right-c"}}'] * 3)
    result = bf.train(module, data, metric=h.metric, steps=1, store=tmp_path / "r.db",
                      optimizer=h.FixOptimizer(module.parameters(), llm=llm), progress=False)
    assert result.history[0].accepted is False
    assert result.history[0].reason.startswith("ties at 0 on the minibatch")


def test_a_tie_at_zero_is_decided_on_validation(tmp_path):
    # the minibatch (kinds a, b) cannot show the change to pc; validation (kind c) can
    module = h.Router()
    llm = bf.llm.Scripted(['{"suggestion": {"pc": "right-c"}}'] * 3)
    result = bf.train(module, [("a", 0), ("b", 0)], [("c", 0), ("c", 1)], metric=h.metric,
                      steps=1, store=tmp_path / "r.db", progress=False,
                      optimizer=h.FixOptimizer(module.parameters(), llm=llm))
    (step,) = result.history
    assert step.accepted is True and module.pc.value == "right-c"
    assert step.reason == "ties at 0 on the minibatch; on validation 1 > the parent's 0"
    assert result.best_score == 1.0
    assert isinstance(no_worse([0.0], [0.0])[1], TieAtZero)


def test_accept_improves_rejects_what_no_worse_keeps(tmp_path):
    def run(accept, where):
        module = h.Router()
        data = [("a", 0), ("b", 0)]
        llm = bf.llm.Scripted(['{"suggestion": {"pa": "right-a", "pb": "start"}}',
                               '{"suggestion": {"pa": "right-a", "pb": "wrong"}}'])
        return bf.train(module, data, metric=h.metric, steps=2, store=tmp_path / where,
                        optimizer=h.FixOptimizer(module.parameters(), llm=llm),
                        progress=False, accept=accept)

    kept = run(None, "a.db")
    strict = run("improves", "b.db")
    assert [s.accepted for s in kept.history] == [True, True]  # the second ties at 0.5
    assert [s.accepted for s in strict.history] == [True, False]
    assert strict.history[1].reason.startswith("does not improve on the minibatch")
    assert strict.store.get_run(strict.run_id).config["accept"] == "improves"



# -- overfitting guards -----------------------------------------------------------------------

class Support(bf.Module):
    def __init__(self):
        self.instruction = bf.param("Answer the ticket.", name="instruction")

    def forward(self, ticket):
        return bf.format("{i} {t}", i=self.instruction, t=ticket)


TICKETS = [("Order 1234 arrived broken, I paid 69 EUR and want my money back", "69 EUR"),
           ("The parcel never came; it cost 25 EUR", "25 EUR")]


def _support(tmp_path, answer, **options):
    module = Support()
    llm = bf.llm.Scripted([json.dumps({"suggestion": {"instruction": answer}})] * 3)
    return bf.train(module, TICKETS, metric=lambda ex, out: float(out.startswith(ex[1])), steps=1,
                    optimizer=h.FixOptimizer(module.parameters(), llm=llm),
                    store=tmp_path / "r.db", progress=False, **options)


def test_a_proposal_that_copies_a_training_answer_is_refused_and_counted(tmp_path):
    result = _support(tmp_path, "The refund amount is 69 EUR.")
    [decision] = result.store.decisions(result.run_id)
    assert decision.reason.startswith(
        "copied training data: 'instruction' now holds '69 eur', from training example 0")
    assert result.spend["guards"] == 1 and result.candidates == 1  # never evaluated
    assert result.store.get_run(result.run_id).spend["guards"] == 1
    shown = CliRunner().invoke(app, ["show", result.run_id, "--store", str(tmp_path / "r.db")])
    assert "guards fired" in shown.output and "1 (proposals that copied" in shown.output
    allowed = _support(tmp_path / "off", "The refund amount is 69 EUR.", copy_guard=False)
    assert allowed.candidates == 2 and allowed.spend["guards"] == 0


def test_an_instruction_that_copies_nothing_passes_the_guard(tmp_path):
    result = _support(tmp_path, "State the amount the customer paid, with its currency.")
    assert result.candidates == 2 and result.spend["guards"] == 0


def test_the_copy_rule_is_a_run_of_five_words_or_a_whole_short_field():
    guard = CopyGuard(TICKETS)
    assert guard.copied("", "say: I paid 69 EUR and want") == ("i paid 69 eur and", 0)
    assert guard.copied("", "answer in EUR only") is None  # one word of a field is no copy
    assert guard.copied("Quote it: 25 EUR", "Quote it: 25 EUR, please") is None  # had it
    assert guard.copied("", "cost 25 eur") == ("25 eur", 1)


# -- no idle steps ----------------------------------------------------------------------------

def test_an_all_correct_minibatch_is_replaced_by_examples_the_best_fails(tmp_path):
    module = h.Router()
    module.pa.value = "right-a"  # ("a", 0) is right; ("b", 0) is not
    llm = h.scripted()
    bf.train(module, [("a", 0), ("b", 0)], metric=h.metric, steps=1, minibatch_size=1,
             seed=1, optimizer=h.FixOptimizer(module.parameters(), llm=llm),  # seed 1: "a"
             store=tmp_path / "r.db", progress=False)
    assert len(llm.calls) == 1 and "needs pb=right-b" in llm.calls[0].messages[0]["content"]


def test_a_run_with_nothing_left_to_learn_on_the_trainset_says_so_and_asks_no_model(tmp_path):
    module = h.Router()
    module.pa.value = "right-a"
    llm = h.scripted()
    result = bf.train(module, [("a", 0)], [("b", 0)], metric=h.metric, steps=3,
                      optimizer=h.FixOptimizer(module.parameters(), llm=llm),
                      store=tmp_path / "r.db", progress=False)
    assert not llm.calls and result.status == "finished"
    assert result.stop_reason.startswith("nothing left to learn: the best values score 1 on "
                                         "every training example (validation mean 0")


# -- what the review of this work found -------------------------------------------------------

class _Catching(bf.optim.Optimizer):
    """An optimizer on the pre-0.3 contract that catches every exception of its model."""

    def _step(self, report):
        try:
            self.llm.complete([{"role": "user", "content": "x"}], max_tokens=8)
        except Exception as exc:
            report.error = str(exc)


def test_a_run_stops_when_an_optimizer_swallows_its_models_failure_or_budget(tmp_path):
    module = h.Router()
    broken = bf.llm.Scripted([])  # every call raises: the script is empty
    with pytest.warns(DeprecationWarning), pytest.raises(ModelFailed, match="ran out of answers"):
        bf.train(module, h.dataset(1), metric=h.metric, steps=5, store=tmp_path / "a.db",
                 optimizer=_Catching(module.parameters(), llm=broken), progress=False)
    module = h.Router()
    result = bf.train(module, h.dataset(1), metric=h.metric, budget=bf.Budget(llm_calls=2),
                      store=tmp_path / "b.db", progress=False,  # no step limit: it must end
                      optimizer=_Catching(module.parameters(), llm=h.scripted()))
    assert result.stop_reason.startswith("llm_calls") and result.spend["calls"] == 2


def test_a_failing_verdict_loses_nothing_the_run_found(tmp_path):
    def metric(example, output):
        if example[1] == 99:
            raise ValueError("metric bug on a test example")
        return h.metric(example, output)

    module = h.Router()
    data = h.dataset()
    result = bf.train(module, data, data, metric=metric, strategy=bf.search.Pareto(),
                      optimizer=h.FixOptimizer(module.parameters(), llm=h.scripted()),
                      steps=12, store=tmp_path / "r.db", minibatch_size=2, progress=False,
                      testset=[("a", 99), *h.dataset(1)])
    assert result.status == "finished" and module.state_dict() == result.best_values
    assert not result.verdict.measured and "metric bug" in result.verdict.why
    assert result.store.get_run(result.run_id).status == "finished"


def test_significant_refuses_a_minibatch_too_small_to_ever_pass(tmp_path):
    module = h.Router()
    with pytest.raises(ValueError, match="can never accept on a minibatch of 4"):
        bf.train(module, h.dataset(), metric=h.metric, steps=1, accept="significant",
                 optimizer=h.FixOptimizer(module.parameters(), llm=h.scripted()),
                 store=tmp_path / "r.db", progress=False)
    assert Significant().p_value([0.0] * 20, [1.0] * 20) > 0  # sampled: never exactly 0


def test_resuming_with_another_acceptance_rule_is_refused(tmp_path):
    module = h.Router()
    first = bf.train(module, h.dataset(), metric=h.metric, steps=1, store=tmp_path / "r.db",
                     optimizer=h.FixOptimizer(module.parameters(), llm=h.scripted()),
                     progress=False)
    again = h.Router()
    with pytest.raises(ValueError, match="accept: stored None, given 'improves'"):
        bf.train(again, h.dataset(), metric=h.metric, steps=2, store=tmp_path / "r.db",
                 optimizer=h.FixOptimizer(again.parameters(), llm=h.scripted()),
                 progress=False, resume=first.run_id, accept="improves")


def test_shared_wording_and_numbers_are_no_copy():
    guard = CopyGuard([("Summarize the following article in one sentence: rain fell", "rain"),
                       ("Summarize the following article in one sentence: sun rose", "sun"),
                       ("x", 0.5)])
    assert guard.copied("", "Summarize the following article in one sentence.") is None
    assert guard.copied("", "Give a score between 0.5 and 1.") is None


# -- objectives beyond score ------------------------------------------------------------------

def test_a_candidate_better_on_every_objective_enters_the_front_and_domination_is_strict():
    from backfeed.store.pareto import nondominated

    front = nondominated({1: (0.5, -100.0), 2: (0.7, -300.0), 3: (0.9, -50.0)})
    assert front == {3}  # better on the score and cheaper than both: the only one left
    assert nondominated({1: (0.5, -100.0), 2: (0.7, -300.0)}) == {1, 2}  # a trade-off
    assert nondominated({1: (0.5, -100.0), 2: (0.5, -100.0)}) == {1, 2}  # equals: no domination
    pool = [bf.search.Candidate(1, {}, val_scores=[0.5], objectives={"prompt_tokens": 100}),
            bf.search.Candidate(2, {}, val_scores=[0.7], objectives={"prompt_tokens": 300})]
    assert objective_front(pool) == {1, 2}


class Verbose(bf.Module):
    def __init__(self):
        self.instruction = bf.param("Say it.", name="instruction")

    def forward(self, word):
        return bf.format("{i} {w}", i=self.instruction, w=word)


def test_objectives_are_measured_per_candidate_and_pick_chooses_within_a_limit(tmp_path):
    long = "Say the word back, and nothing else: " + "be exact. " * 40
    data = ["apple", "pear"]

    def run(**options):
        module = Verbose()
        llm = bf.llm.Scripted([json.dumps({"suggestion": {"instruction": long}})] * 3)
        return bf.train(module, data, metric=lambda ex, out: 1.0 if "nothing else" in out
                        else 0.5, steps=1, optimizer=h.FixOptimizer(module.parameters(), llm=llm),
                        store=tmp_path / f"{len(options)}.db", progress=False,
                        objectives=["prompt_tokens", "latency"], **options)

    plain = run()
    cands = {c.id: c for c in plain.store.candidates(plain.run_id)}
    assert cands[0].objectives["prompt_tokens"] < 10 < cands[1].objectives["prompt_tokens"]
    assert set(cands[1].objectives) == {"prompt_tokens", "latency"}
    assert plain.best_values["instruction"] == long  # the best score
    short = run(pick={"prompt_tokens": 50})
    assert short.best_values["instruction"] == "Say it."  # the best within 50 tokens
    module = Verbose()
    optimizer = h.FixOptimizer(module.parameters(), llm=h.scripted())
    with pytest.raises(ValueError, match="which objectives= does not measure"):
        bf.train(module, data, metric=lambda ex, out: 1.0, steps=1, pick={"usd": 0.01},
                 optimizer=optimizer)
    with pytest.raises(ValueError, match="unknown objective"):
        bf.train(module, data, metric=lambda ex, out: 1.0, steps=1, objectives=["speed"],
                 optimizer=optimizer)


# -- k-fold cross-validation ------------------------------------------------------------------

def test_cross_validation_trains_once_per_fold_and_chooses_on_the_held_out_fold(tmp_path):
    module = h.Router()
    data = h.dataset(2)  # 6 examples, 2 of each kind
    cv = bf.cross_validate(module, data, k=3, metric=h.metric, steps=6, minibatch_size=2,
                           optimizer=lambda m: h.FixOptimizer(m.parameters(), llm=h.scripted()),
                           store=tmp_path / "r.db", progress=False, name="cv")
    assert len(cv.results) == 3 and sorted(i for f in cv.folds for i in f) == list(range(6))
    assert all(len(f) == 2 for f in cv.folds)
    for result, fold in zip(cv.results, cv.folds):
        config = result.store.get_run(result.run_id).config
        assert (config["trainset"], config["valset"]) == (4, 2)  # chosen on its own fold
        validated = {e.example for e in result.store.evaluations(result.run_id, split="val")}
        assert validated == {str(data[j]) for j in fold}
    assert cv.scores == [r.best_score for r in cv.results] and 0 <= cv.mean <= 1
    assert module.state_dict() == h.Router().state_dict()  # the module itself is untouched
    assert cv.line().startswith("3-fold cross-validation: held-out ")
    assert [r.store.get_run(r.run_id).name for r in cv.results] == [
        "cv: fold 1 of 3", "cv: fold 2 of 3", "cv: fold 3 of 3"]
    with pytest.raises(ValueError, match="k must be between 2 and the number of examples"):
        bf.cross_validate(module, data, k=7, metric=h.metric, optimizer=lambda m: None)
