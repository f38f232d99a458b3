"""bf.optim.Around: compass search around the current numbers, the LLM's numbers as extras."""

from __future__ import annotations

import json

import pytest

import backfeed as bf
from backfeed.optim import Around


class Peak(bf.Module):
    def __init__(self, x0=0.0, **options):
        self.x = bf.param(x0, name="x", **options)

    def forward(self, _):
        return self.x * 1


def peak_metric(at):
    def metric(example, out):
        error = abs(out - at)
        return bf.Feedback(score=1 / (1 + error), text=f"off by {error:.3g}")
    return metric


def train(program, optimizer, at, steps):
    return bf.train(program, [("e", 0)], [("e", 0)], metric=peak_metric(at),
                    optimizer=optimizer, steps=steps, store=":memory:", progress=False)


def test_auto_searches_numbers_around_and_leaves_text_to_prime():
    assert type(bf.optim.auto([bf.param(1.0, name="x")], llm=bf.llm.Scripted([]))) is Around
    assert type(bf.optim.auto([bf.param(3, name="n", bounds=(0, 9))],
                              llm=bf.llm.Scripted([]))) is Around
    assert type(bf.optim.auto([bf.param("hi", name="t")], llm=bf.llm.Scripted([]))).__name__ \
        == "Prime"
    with pytest.raises(ValueError, match="int and float"):
        Around([bf.param("hi", name="t")])


def test_an_unbounded_float_far_from_its_start_is_found_without_a_model():
    program = Peak()
    result = train(program, Around(program.parameters(), ask=False), at=-37.25, steps=14)
    assert result.best_score > 0.9 and abs(program.x.value + 37.25) < 0.12
    sizes = [c.values["x"] for c in result.store.candidates(result.run_id)]
    assert sizes[:3] == [0.0, 1.0, -1.0]  # probes at the start value's ± its first step


def test_an_int_stays_in_its_bounds_and_moves_by_whole_steps():
    program = Peak(2, bounds=(0, 10))
    assert program.x.kind == "int"
    result = train(program, Around(program.parameters(), ask=False), at=10, steps=8)
    values = [c.values["x"] for c in result.store.candidates(result.run_id)]
    assert all(isinstance(v, int) and 0 <= v <= 10 for v in values)
    assert program.x.value == 10


def test_the_models_numbers_join_the_probes_and_win_when_better():
    program = Peak()
    llm = bf.llm.Scripted([json.dumps({"suggestion": {"x": 41.5}})] * 4)
    result = train(program, Around(program.parameters(), llm=llm), at=41.5, steps=1)
    assert result.best_score == 1.0 and program.x.value == 41.5
    assert {c.values["x"] for c in result.store.candidates(result.run_id)} == {0.0, 1.0, -1.0,
                                                                                41.5}


def test_its_state_resumes_the_same_search():
    program = Peak()
    first = Around(program.parameters(), ask=False)
    train(program, first, at=5.0, steps=3)
    again = Around(Peak().parameters(), ask=False)
    again.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert (again.size, again.turn, again.last, again.probe_keys) == (
        first.size, first.turn, first.last, first.probe_keys)
    with pytest.raises(ValueError, match="not among the parameters"):
        Around(Peak().parameters(), ask=False, steps={"y": 1.0})


def test_a_steep_peak_far_from_the_probes_is_found_by_the_reciprocal_fit():
    """A score 1/(1 + 14|x - x*|) (issue 19's numeric problem 11): after probes at ±2 that
    both score under half the center's, the line fit on the scores is refused; the fit on
    -1/score is exact there, and its guess is the peak."""

    class Steep(bf.Module):
        def __init__(self):
            self.x = bf.param(-10.0, name="x")

        def forward(self, _):
            return self.x * 14

    program = Steep()
    optimizer = Around(program.parameters(), ask=False, steps={"x": 2.0})
    result = train(program, optimizer, at=-9.91 * 14, steps=3)
    guesses = [c.values["x"] for c in result.store.candidates(result.run_id)]
    assert guesses[:3] == [-10.0, -8.0, -12.0]
    assert any(abs(g + 9.91) < 1e-6 for g in guesses[3:])  # the peak, at the next step
    assert result.best_score == pytest.approx(1.0)


def test_the_peak_of_three_unevenly_spaced_points():
    from backfeed.optim.local import _peak

    # a V of slope 2 with its top at 0.3: points at -1, 0 and 2
    def v(x):
        return -2 * abs(x - 0.3)

    assert _peak([(-1, v(-1)), (0, v(0)), (2, v(2))], near_only=False) == pytest.approx(0.3)
    assert _peak([(-1, v(-1)), (0.5, v(0.5)), (2, v(2))], near_only=False) == pytest.approx(0.3)
    assert _peak([(-1, 0.1), (0, 0.05), (1, 0.0)], near_only=False) is None  # not a peak
    assert _peak([(-1, 0.1), (0, 1.0), (1, 0.2)], near_only=True) is None  # too far for a line
