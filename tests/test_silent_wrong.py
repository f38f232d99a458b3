"""Nothing a user sees or keeps is silently wrong: resume, several optimizers, NaN metrics,
and an optimizer built on another module's parameters."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import backfeed as bf
import train_helpers as h
from backfeed.cli import app
from backfeed.cli import runs as commands
from backfeed.store import RunStore


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


# -- several optimizers on disjoint groups --------------------------------------------------


@bf.op
def join(a: str, b: str) -> str:
    """Join two words."""
    return a + " " + b


def _fix(params, *suggestions):
    return h.FixOptimizer(params, llm=bf.llm.Scripted(
        [f'{{"suggestion": {s}}}' for s in suggestions]))


def test_one_optimizers_zero_feedback_leaves_anothers_feedback():
    a, b = bf.param("x", name="a"), bf.param("y", name="b")
    opt_a, opt_b = _fix([a], '{"a": "A"}'), _fix([b], '{"b": "B"}')
    out = join(a, b)
    out.backward("both words should be capitals")
    assert opt_a.step().applied == {"a": "A"}
    opt_a.zero_feedback()
    assert a.feedback == [] and [fb.text for _, fb in b.feedback] == [
        "both words should be capitals"]
    report = opt_b.step()
    assert report.applied == {"b": "B"} and not report.problems
    opt_b.zero_feedback()
    assert b.feedback == [] and out.feedback == []  # released once no parameter holds it


def test_combine_steps_each_member_and_merges_their_reports_and_state():
    a, b = bf.param("x", name="a"), bf.param("y", name="b")
    llm = bf.llm.Scripted(['{"suggestion": {"a": "A"}}', '{"suggestion": {"b": "B"}}'])
    both = bf.optim.Combine([h.FixOptimizer([a], llm=llm), h.FixOptimizer([b])])
    assert both.params == [a, b] and both.members[1].llm is llm  # one model for all
    join(a, b).backward("capitals")
    report = both.step()
    assert report.applied == {"a": "A", "b": "B"} and (a.value, b.value) == ("A", "B")
    assert len(report.answers) == 2 and not report.problems
    state = both.state_dict()
    assert [m["step_count"] for m in state["members"]] == [1, 1]
    again = bf.optim.Combine([h.FixOptimizer([a]), h.FixOptimizer([b])])
    again.load_state_dict(state)
    assert again.state_dict() == state
    with pytest.raises(ValueError, match=r"share parameter\(s\) \['a'\]"):
        bf.optim.Combine([h.FixOptimizer([a]), h.FixOptimizer([a, b])])
    with pytest.raises(ValueError, match="different models"):
        bf.optim.Combine([_fix([a]), _fix([b])])


def test_combine_offers_each_members_other_candidates_with_the_others_first_values():
    a, b = bf.param("x", name="a"), bf.param("y", name="b")

    class Two(h.FixOptimizer):  # proposes its answer, then "Z", as two candidates
        def _step(self, report):
            super()._step(report)
            report.candidates = [self.values(), {p.name: "Z" for p in self.params}]

    llm = bf.llm.Scripted(['{"suggestion": {"a": "A"}}', '{"suggestion": {"b": "B"}}'])
    both = bf.optim.Combine([h.FixOptimizer([a], llm=llm), Two([b], llm=llm)])
    join(a, b).backward("capitals")
    report = both.step()
    assert report.candidates == [{"a": "A", "b": "B"}, {"a": "A", "b": "Z"}]
    assert (a.value, b.value) == ("A", "B")


class Pair(bf.Module):
    def __init__(self) -> None:
        self.a = bf.param("x", name="a")
        self.b = bf.param("y", name="b")

    def forward(self, kind: str):
        return join(self.a, self.b)


def test_train_takes_a_list_of_optimizers_on_disjoint_groups_and_steps_both(tmp_path):
    module = Pair()
    llm = bf.llm.Scripted(['{"suggestion": {"a": "A"}}', '{"suggestion": {"b": "B"}}'])
    opts = [h.FixOptimizer([module.a], llm=llm), h.FixOptimizer([module.b], llm=llm)]

    def metric(example, output):
        return bf.Feedback(score=(output == "A B") + 0.0, text="both words capitals")

    result = bf.train(module, ["q"], metric=metric, optimizer=opts, steps=1,
                      store=tmp_path / "r.db", minibatch_size=1, progress=False)
    assert result.best_values == {"a": "A", "b": "B"} and result.best_score == 1.0
    assert result.store.get_run(result.run_id).config["optimizer"] == "Combine"
    with pytest.raises(ValueError, match=r"share parameter\(s\) \['a'\]"):
        bf.train(Pair(), ["q"], metric=metric, optimizer=[opts[0], opts[0]], steps=1,
                 store=tmp_path / "r.db", progress=False)


# -- resume and a parameter edited by hand --------------------------------------------------


def _run(tmp_path, module=None, **options):
    """Train a Router (a fresh one unless given) for `steps` on the shared store."""
    module = module or h.Router()
    result = _train(module, h.FixOptimizer(module.parameters(), llm=h.scripted()), tmp_path,
                    strategy=bf.search.Pareto(), **options)
    return module, result


def test_resume_restores_the_stored_values_into_an_untouched_module(tmp_path):
    _, first = _run(tmp_path, steps=2)
    assert first.best_values != h.Router().state_dict()  # the store holds newer values
    module, again = _run(tmp_path, steps=4, resume=first.run_id)  # seed values: no hand edit
    assert module.state_dict() == again.best_values and len(again.history) >= 2
    _, third = _run(tmp_path, module, steps=5, resume=first.run_id)  # what it ended with
    assert third.status == "finished"


def test_resume_refuses_a_parameter_edited_by_hand_and_names_it(tmp_path):
    _, first = _run(tmp_path, steps=2)
    module = h.Router()
    module.pb.value = "my own wording"
    with pytest.raises(bf.EditedByHand, match=r"'pb' = 'my own wording' were edited by hand.*"
                                              r"on_edit='keep'.*on_edit='discard'") as caught:
        _run(tmp_path, module, steps=4, resume=first.run_id)
    assert "'pa'" not in str(caught.value) and isinstance(caught.value, ValueError)
    assert module.pb.value == "my own wording"  # nothing overwritten
    run = bf.store.RunStore(tmp_path / "r.db").get_run(first.run_id)
    assert run.status == first.status and run.step == first.history[-1].step  # untouched


def test_resume_with_on_edit_discard_restores_the_stored_values(tmp_path):
    _, first = _run(tmp_path, steps=2)
    module = h.Router()
    module.pb.value = "my own wording"
    _, again = _run(tmp_path, module, steps=3, resume=first.run_id, on_edit="discard")
    values = [c.values["pb"] for c in again.store.candidates(again.run_id)]
    assert "my own wording" not in values and module.pb.value != "my own wording"


def test_resume_with_on_edit_keep_records_the_edit_as_a_step_and_keeps_it(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(commands.out, "_width", 200)  # `backfeed show` on one line a step
    _, first = _run(tmp_path, steps=2)
    module = h.Router()
    module.pb.value = "right-b"  # the fix the run had not found yet
    _, again = _run(tmp_path, module, steps=4, resume=first.run_id, on_edit="keep")
    store, run_id = again.store, again.run_id
    edit = next(c for c in store.candidates(run_id) if c.origin == "edit")
    assert edit.values == {**first.best_values, "pb": "right-b"} and edit.status == "accepted"
    assert edit.parents == [first.best_candidate] and edit.val_scores is not None
    step = next(s for s in again.history if s.candidate == edit.id)
    assert step.step == first.history[-1].step + 1 and step.accepted
    assert step.reason.startswith("edited by hand: pb")
    report = store.step_reports(run_id, step=step.step)[0].report
    assert report.reasoning == "edited by hand: pb"
    assert [(u.name, u.new, u.applied) for u in report.updates] == [
        ("pb", "right-b", True)]
    assert module.state_dict()["pb"] == "right-b"  # the best values keep it
    shown = CliRunner().invoke(app, ["show", run_id, "--store", str(tmp_path / "r.db")])
    assert shown.exit_code == 0 and "edited by hand: pb" in shown.output
    # resumed again with the edit still in the code: a kept edit is the run's own value
    later = h.Router()
    later.pb.value = "right-b"
    _, third = _run(tmp_path, later, steps=5, resume=run_id)
    assert third.status == "finished"


def test_a_failed_run_leaves_its_best_values_so_resume_sees_no_hand_edit(tmp_path):
    module = h.Router()
    calls = {"n": 0}

    def flaky(example, output):
        calls["n"] += 1
        if calls["n"] == 18:  # while a child of step 1 is loaded
            raise RuntimeError("metric service down")
        return h.metric(example, output)

    with pytest.raises(bf.MetricError, match="metric service down"):
        _run(tmp_path, module, steps=10, metric=flaky)
    run = bf.store.RunStore(tmp_path / "r.db").list_runs()[0]
    assert run.status == "failed" and run.step >= 0
    _, again = _run(tmp_path, module, steps=10, resume=run.id)
    assert again.status == "finished"


def test_on_edit_must_be_a_known_choice(tmp_path):
    with pytest.raises(ValueError, match=r"on_edit must be one of \('error', 'keep', 'discard'\)"):
        _run(tmp_path, steps=1, on_edit="merge")


# -- a stop file left behind, and a KeyboardInterrupt that is not Ctrl-C ------------------


def test_resume_removes_the_stop_file_that_stopped_the_run_and_says_so(tmp_path):
    db = tmp_path / "r.db"
    module = h.Router()
    data = h.dataset()
    first = bf.train(module, data, metric=h.metric, steps=1, store=db, progress=False,
                     optimizer=h.FixOptimizer(module.parameters(), llm=h.scripted()))
    stop = db.parent / f"{first.run_id}.stop"
    stop.touch()  # left behind by `touch` to stop it, never deleted
    fresh = h.Router()
    with pytest.warns(UserWarning, match="removed the stop file"):
        again = bf.train(fresh, data, metric=h.metric, steps=3, store=db, progress=False,
                         resume=first.run_id,
                         optimizer=h.FixOptimizer(fresh.parameters(), llm=h.scripted()))
    assert not stop.exists()
    assert "stop file" not in again.stop_reason and len(again.history) > 1


def test_a_keyboard_interrupt_raised_by_the_program_is_not_called_ctrl_c_twice(tmp_path):
    class Interrupting(h.Router):
        def forward(self, kind):
            raise KeyboardInterrupt

    module = Interrupting()
    with pytest.raises(KeyboardInterrupt):
        bf.train(module, h.dataset(), metric=h.metric, steps=1, store=tmp_path / "r.db",
                 progress=False, optimizer=h.FixOptimizer(module.parameters(), llm=h.scripted()))
    (run,) = RunStore(tmp_path / "r.db").list_runs()
    assert run.status == "stopped" and run.stop_reason != "interrupted (Ctrl-C twice)"
    assert "a KeyboardInterrupt, not Ctrl-C twice" in run.stop_reason
