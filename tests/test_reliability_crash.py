"""Crash safety at random moments: a few SIGKILL trials (the 100-trial run is
`python -m benchmarks.reliability.crash_trials --trials 100`; RELIABILITY.md quotes it)."""

from __future__ import annotations

import random

from benchmarks.reliability import crash_trials


def test_a_run_killed_at_random_moments_resumes_to_the_same_result_paying_nothing_twice(tmp_path):
    ref = crash_trials.Reference(tmp_path)
    rng = random.Random(7)
    rows = [crash_trials.trial(tmp_path, ref, rng, n) for n in range(3)]
    assert all(r["held"] for r in rows), [r["problems"] for r in rows]
    assert any(r["killed"] for r in rows)
