"""bf.train(..., program_llm=): the program's bf.chat calls are the run's "program" spend."""

from __future__ import annotations

import pytest

import backfeed as bf
from backfeed.store import RunStore
from backfeed.store.files_export import export_files
from chat_helpers import Echo


def echo(messages, options):
    word = messages[-1]["content"]
    return word.upper() if "CAPITALS" in messages[0]["content"] else word


DATA = [("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")]


def metric(example, output):
    return bf.Feedback(score=float(output == example[1]), text=f"expected {example[1]}")


def test_program_calls_use_program_llm_and_are_recorded_as_program_spend(tmp_path):
    program = Echo()
    program_llm = bf.llm.Scripted([echo] * 100, model="program-model")
    optimizer_llm = bf.llm.Scripted(['{"suggestion": {"prompt": "Reply in CAPITALS."}}'] * 4)
    result = bf.train(program, DATA, metric=metric, program_llm=program_llm,
                      optimizer=bf.optim.Prime(program.parameters(), llm=optimizer_llm),
                      executor=bf.executors.Threads(4), steps=1, store=tmp_path / "runs.db",
                      progress=False)
    assert program.prompt.value == "Reply in CAPITALS."
    store = RunStore(tmp_path / "runs.db", readonly=True)
    calls = store.llm_calls(result.run_id, role="program")
    assert len(calls) == len(program_llm.calls) > 0
    assert {c.model for c in calls} == {"program-model"}
    by_role = result.spend["by_role"]
    assert by_role["program"]["calls"] == len(program_llm.calls)
    assert by_role["optimizer"]["calls"] == len(optimizer_llm.calls)
    assert result.spend["calls"] == len(program_llm.calls) + len(optimizer_llm.calls)
    manifest = export_files(store, result.run_id, tmp_path / "deploy")
    assert manifest["program_model"] == "program-model" and manifest["model"] == "scripted"


def test_program_calls_count_against_the_budget_and_stop_the_run_cleanly(tmp_path):
    program = Echo()
    program_llm = bf.llm.Scripted([echo] * 100)
    result = bf.train(program, DATA, metric=metric, program_llm=program_llm,
                      optimizer=bf.optim.Prime(program.parameters(),
                                               llm=bf.llm.Scripted(["{}"] * 4)),
                      budget=bf.Budget(llm_calls=2), steps=3, store=tmp_path / "runs.db",
                      progress=False)
    assert result.status == "stopped" and "llm_calls" in result.stop_reason
    assert len(program_llm.calls) == 2
    store = RunStore(tmp_path / "runs.db", readonly=True)
    assert not [e for e in store.evaluations(result.run_id) if e.error]  # no example blamed


def test_without_program_llm_the_model_of_using_is_wrapped_as_program_spend(tmp_path):
    program = Echo()
    program_llm = bf.llm.Scripted([echo] * 100)
    with bf.llm.using(program_llm):
        result = bf.train(program, DATA, metric=metric,
                          optimizer=bf.optim.Prime(program.parameters(),
                                                   llm=bf.llm.Scripted(["{}"] * 4)),
                          steps=1, store=tmp_path / "runs.db", progress=False)
    assert result.spend["by_role"]["program"]["calls"] == len(program_llm.calls) > 0


def test_a_failing_program_model_stops_the_run_naming_it(tmp_path):
    class Broken(bf.llm.BaseLLM):
        model = "broken-model"

        def complete(self, messages, **options):
            raise bf.llm.LLMError("AuthenticationError: invalid api key")

    program = Echo()
    with pytest.raises(bf.ModelFailed, match="program.*broken-model"):
        bf.train(program, DATA, metric=metric, program_llm=Broken(),
                 optimizer=bf.optim.Prime(program.parameters(), llm=bf.llm.Scripted([])),
                 steps=1, store=tmp_path / "runs.db", progress=False)
    store = RunStore(tmp_path / "runs.db", readonly=True)
    run = store.list_runs()[0]
    assert run.status == "stopped" and not store.evaluations(run.id)


def test_with_no_program_model_given_the_default_is_made_on_first_call_and_recorded(
        tmp_path, monkeypatch):
    from backfeed.llm import context

    made = []

    def default():
        made.append(bf.llm.Scripted([echo] * 100, model="the-default"))
        return made[-1]

    monkeypatch.setattr(context, "_default", None)
    monkeypatch.setattr(bf.llm.defaults, "default", default)
    program = Echo()
    result = bf.train(program, DATA, metric=metric,
                      optimizer=bf.optim.Prime(program.parameters(),
                                               llm=bf.llm.Scripted(["{}"] * 4)),
                      steps=1, store=tmp_path / "runs.db", progress=False)
    assert len(made) == 1 and made[0].calls
    calls = result.store.llm_calls(result.run_id, role="program")
    assert len(calls) == len(made[0].calls) and calls[0].model == "the-default"


def test_the_run_calls_the_users_optimizer_through_its_model_without_changing_it(tmp_path):
    program = Echo()
    own = bf.llm.Scripted(['{"suggestion": {"prompt": "Reply in CAPITALS."}}'] * 4)
    during: list[tuple[object, object]] = []

    class Watched(bf.optim.Prime):
        def _propose(self, report):
            during.append((self._llm, self.llm))  # what it holds, and what it calls
            return super()._propose(report)

    optimizer = Watched(program.parameters(), llm=own)
    bf.train(program, DATA, metric=metric, program_llm=bf.llm.Scripted([echo] * 100),
             optimizer=optimizer, steps=1, store=tmp_path / "runs.db", progress=False)
    assert during and all(held is own and called is not own for held, called in during)
    assert optimizer.llm is own and len(own.calls) == len(during)  # the run's model wraps it
