"""Nothing a user sees or keeps is silently wrong: resume, several optimizers, NaN metrics,
and an optimizer built on another module's parameters."""

from __future__ import annotations

import pytest

import backfeed as bf
import train_helpers as h


def _train(module, optimizer, tmp_path, **options):
    data = h.dataset()
    common = {"metric": h.metric, "steps": 2, "store": tmp_path / "r.db", "minibatch_size": 2,
              "progress": False}
    return bf.train(module, data, data, optimizer=optimizer, **{**common, **options})


# -- an optimizer built on another instance's parameters ------------------------------------


def test_train_refuses_an_optimizer_over_another_instances_parameters(tmp_path):
    module, other = h.Router(), h.Router()
    opt = h.FixOptimizer(other.parameters(), llm=h.scripted())
    with pytest.raises(ValueError, match=r"\['pa', 'pb', 'pc'\] are not parameters of this "
                                         r"Router.*module\.parameters\(\)"):
        _train(module, opt, tmp_path)
    assert bf.store.RunStore(tmp_path / "r.db").list_runs() == []  # refused before the run


def test_train_names_only_the_foreign_parameters_and_accepts_a_subset(tmp_path):
    module, other = h.Router(), h.Router()
    mixed = h.FixOptimizer([module.pa, other.pb], llm=h.scripted())
    with pytest.raises(ValueError, match=r"\['pb'\] are not parameters"):
        _train(module, mixed, tmp_path)
    subset = h.FixOptimizer([module.pa, module.pb], llm=h.scripted())
    assert _train(module, subset, tmp_path).status == "finished"


class Outer(bf.Module):
    """A module with a nested module and a trainable op: their parameters are its own."""

    def __init__(self) -> None:
        self.inner = h.Router()
        self.suffix = bf.param("", name="suffix")

    @bf.op(trainable=True)
    def shout(self, text: str) -> str:
        return text

    def forward(self, kind: str):
        return self.shout(self.inner(kind) + self.suffix)


def test_nested_modules_and_trainable_ops_count_as_the_modules_parameters(tmp_path):
    module = Outer()
    names = [p.name for p in module.parameters()]
    assert "inner.pa" in names and "shout" in names  # the shape this test relies on
    opt = h.FixOptimizer(module.parameters(), llm=h.scripted())
    assert _train(module, opt, tmp_path).status == "finished"


# -- a metric that returns NaN or inf -------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), bf.Feedback(score=float("nan")),
                                 bf.Feedback(score=float("-inf"), text="way off")])
def test_a_nan_or_infinite_score_fails_the_run_with_a_metric_error_not_sqlite(tmp_path, bad):
    module = h.Router()

    def metric(example, output):
        return bad if example == ("b", 0) else h.metric(example, output)

    with pytest.raises(bf.MetricError, match=r"score (nan|inf|-inf) for example \d+ "
                                             r"\(\('b', 0\)\).*finite") as caught:
        _train(module, h.FixOptimizer(module.parameters(), llm=h.scripted()), tmp_path,
               metric=metric)
    assert "sqlite" not in repr(caught.value) and caught.value.__cause__ is None
    run = bf.store.RunStore(tmp_path / "r.db").list_runs()[0]
    assert run.status == "failed" and run.stop_reason.startswith("MetricError: metric returned")


@pytest.mark.parametrize("bad", [float("nan"), bf.Feedback(score=float("inf"))])
def test_evaluate_refuses_a_nan_or_infinite_score_instead_of_a_nan_mean(bad):
    data = [("a", 0), ("b", 1)]

    def metric(example, output):
        return bad if example == ("b", 1) else 1.0

    with pytest.raises(bf.MetricError, match=r"for example 1 \(\('b', 1\)\)"):
        bf.evaluate(h.Router(), data, metric, progress=False)
