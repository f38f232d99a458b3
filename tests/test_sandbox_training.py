"""An optimization whose first proposals hang or crash still completes, learning from them."""

import json

import pytest

import backfeed as bf

SANDBOX = bf.Sandbox(timeout_s=0.5, memory_mb=256, workers=1)

HANG = "def double(self, n):\n    while True:\n        pass\n"
CRASH = "def double(self, n):\n    import ctypes\n    return ctypes.string_at(0)\n"
GOOD = "def double(self, n):\n    return 2 * n\n"


class Doubler(bf.Module):
    @bf.op(trainable=True, sandbox=SANDBOX)
    def double(self, n):
        """Return twice n."""
        return n

    def forward(self, n):
        return self.double(n)


def metric(example, output):
    expected = 2 * example
    if output == expected:
        return bf.Feedback(score=1.0, text="correct")
    return bf.Feedback(score=0.0, text=f"expected {expected}, got {output!r}")


def answer(code: str) -> str:
    return json.dumps({"reasoning": "try this", "suggestion": {"double": code}, "stop": False})


@pytest.mark.timeout(120)
def test_hanging_and_crashing_proposals_become_feedback(tmp_path):
    module = Doubler()
    llm = bf.llm.Scripted([answer(HANG), answer(CRASH), answer(GOOD)])
    data = [1, 2, 3]
    result = bf.train(
        module, data, data, metric=metric,
        optimizer=bf.optim.Prime(module.parameters(), llm=llm),
        strategy=bf.search.Greedy(), steps=3, minibatch_size=3,
        store=tmp_path / "runs.db", progress=False,
    )
    assert result.best_score == pytest.approx(1.0)  # the run completed and found the fix
    assert module.double.code.value == GOOD and module(4).value == 8

    errors = [e.error or "" for e in result.store.evaluations(result.run_id)]
    assert any("Timeout" in e for e in errors), errors
    assert any("WorkerCrash" in e for e in errors), errors

    # each failure is in the prompt that led to the next proposal
    prompts = ["\n".join(m["content"] for m in call.messages) for call in llm.calls]
    assert len(prompts) == 3
    assert "Timeout" in prompts[1] and "while True" in prompts[1]
    assert "WorkerCrash" in prompts[2]
    reports = result.store.step_reports(result.run_id)
    applied = [[u.new for u in r.report.updates if u.applied] for r in reports]
    assert applied == [[HANG], [CRASH], [GOOD]]
    assert SANDBOX.worker_pids()  # the pool recovered after the timeout and the crash
