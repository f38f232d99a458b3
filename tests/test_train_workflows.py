"""Programs as users write them: structured outputs, metric styles, datasets, bf.evaluate,
steps that did nothing and why, and model errors that stop the run."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

import backfeed as bf
import train_helpers as h
from backfeed.llm import LLMError, Retrying, ServerError


@bf.op
def label_of(kind: str, prefix: str) -> str:
    """The label: prefix + kind."""
    return prefix + kind


@bf.op
def reply_to(kind: str, greeting: str) -> str:
    """A reply for the kind."""
    return f"{greeting} {kind}"


@dataclasses.dataclass
class Answer:
    label: Any
    reply: Any


class TwoHeads(bf.Module):
    """Returns its two outputs in the shape given by `shape`."""

    def __init__(self, shape: str) -> None:
        self.prefix = bf.param("x-", name="prefix")
        self.greeting = bf.param("hi", name="greeting")
        self.shape = shape

    def forward(self, kind: str) -> Any:
        label, reply = label_of(kind, self.prefix), reply_to(kind, self.greeting)
        return {"dict": {"label": label, "reply": reply}, "list": [label, reply],
                "tuple": (label, reply), "dataclass": Answer(label, reply)}[self.shape]


def _parts(out: Any) -> tuple[Any, Any]:
    if isinstance(out, dict):
        return out["label"], out["reply"]
    if isinstance(out, Answer):
        return out.label, out.reply
    return out[0], out[1]


@pytest.mark.parametrize("shape", ["dict", "list", "tuple", "dataclass"])
def test_structured_outputs_give_the_metric_plain_values_and_feedback_to_every_part(
        tmp_path, shape):
    module = TwoHeads(shape)
    seen = []

    def metric(example, out):
        seen.append(out)
        label, reply = _parts(out)
        return bf.Feedback(score=0.0, text=f"label {label} and reply {reply} are both wrong")

    llm = bf.llm.Scripted(['{"suggestion": {"prefix": "y-", "greeting": "hello"}}'])
    bf.train(module, ["a"], metric=metric, optimizer=h.FixOptimizer(module.parameters(), llm=llm),
             steps=1, store=tmp_path / "r.db", progress=False)
    label, reply = _parts(seen[0])
    assert (label, reply) == ("x-a", "hi a") and type(seen[0]).__name__ == {
        "dict": "dict", "list": "list", "tuple": "tuple", "dataclass": "Answer"}[shape]
    prompt = llm.calls[0].messages[-1]["content"]
    assert '"greeting": "hi"' in prompt and '"prefix": "x-"' in prompt
    assert "are both wrong" in prompt  # the feedback reached both parameters


class Untraced(bf.Module):
    def __init__(self) -> None:
        self.prefix = bf.param("x-", name="prefix")

    def forward(self, kind: str) -> str:
        return f"{self.prefix.value}{kind}"  # an f-string drops the trace


def test_an_output_without_a_trace_is_an_error_that_says_what_to_return(tmp_path):
    module = Untraced()
    with pytest.raises(bf.OutputNotTraced, match="return the Node .* not its .value, str"):
        bf.train(module, ["a"], metric=lambda ex, out: 0.0,
                 optimizer=h.FixOptimizer(module.parameters(), llm=bf.llm.Scripted([])),
                 steps=1, store=tmp_path / "r.db", progress=False)


def test_dspy_style_metrics_generators_and_a_wrong_arity(tmp_path):
    module = h.Router()
    traces = []

    def dspy_metric(example, pred, trace=None):
        traces.append(trace)
        return pred == f"right-{example[0]}"

    def required_trace(example, pred, trace):
        return 1.0

    result = bf.train(module, (ex for ex in h.dataset(1)), iter(h.dataset(1)),
                      metric=dspy_metric, optimizer=h.FixOptimizer(module.parameters(),
                                                                   llm=h.scripted()),
                      steps=1, store=tmp_path / "r.db", progress=False)
    assert result.status == "finished" and result.metric_calls >= 3  # the generators were read
    assert traces and set(traces) == {None}
    report = bf.evaluate(module, iter(h.dataset(1)), required_trace, progress=False)
    assert report.mean == 1.0
    with pytest.raises(bf.MetricError, match=r"metric\(example, output\) or "
                                             r"metric\(example, pred, trace=None\)"):
        bf.train(module, h.dataset(1), metric=lambda out: 1.0,
                 optimizer=h.FixOptimizer(module.parameters(), llm=h.scripted()), steps=1,
                 store=tmp_path / "r.db", progress=False)
    assert bf.NoTrainableAncestor is bf.graph.NoTrainableAncestor
    assert issubclass(bf.MetricError, RuntimeError)


def test_evaluate_reports_mean_rows_and_a_table():
    module = h.Router()
    module.pa.value = "right-a"
    report = bf.evaluate(module, [("a", 0), ("b", 0), ("boom", 0)], h.metric, progress=False)
    assert isinstance(report, bf.EvalReport)
    assert report.mean == pytest.approx(1 / 3) and report.scores == [1.0, 0.0, 0.0]
    assert [r.input for r in report.rows] == [("a", 0), ("b", 0), ("boom", 0)]
    assert report.rows[0].output == "right-a" and report.rows[1].feedback == "needs pb=right-b"
    assert report.rows[2].error == "RuntimeError: kind boom is not supported"
    assert report.errors == 1 and report.spend["metric_calls"] == 3
    text = str(report)
    assert "mean 0.333 over 3 examples, 1 errors" in text and "needs pb=right-b" in text
    threaded = bf.evaluate(module, [("a", 0), ("b", 0)], h.metric,
                           executor=bf.executors.Threads(2), progress=False)
    assert threaded.scores == [1.0, 0.0]


@pytest.mark.parametrize(("answer", "reason"), [
    ("I think the values are fine as they are.", "the answer could not be used"),
    ('{"suggestion": {"pz": "right-a"}}', "every proposal was rejected (pz: "),
])
def test_a_step_that_did_nothing_says_why(tmp_path, capsys, answer, reason):
    module = h.Router()

    class Reading(h.FixOptimizer):
        def _step(self, report):
            try:
                super()._step(report)
            except json.JSONDecodeError as e:
                report.problems.append(f"not JSON: {e}")

    result = bf.train(module, h.dataset(1), metric=h.metric,
                      optimizer=Reading(module.parameters(), llm=bf.llm.Scripted([answer])),
                      steps=1, store=tmp_path / "r.db", progress=True)
    assert result.history[0].reason.startswith("no change proposed: " + reason)
    decision = result.store.decisions(result.run_id)[0]
    assert decision.reason == result.history[0].reason  # what `backfeed show` and the UI print
    progress = " ".join(capsys.readouterr().err.split())
    assert "step 0: no change proposed: " + reason in progress


class Constant(bf.Module):
    def __init__(self) -> None:
        self.unused = bf.param("u", name="unused")
        self.prefix = bf.param("x-", name="prefix")

    def forward(self, kind: str) -> Any:
        return label_of(kind, self.prefix)


def test_nothing_to_optimize_never_calls_the_model(tmp_path):
    module = Constant()
    llm = bf.llm.Scripted([])
    result = bf.train(module, ["a"], metric=lambda ex, out: 0.0,
                      optimizer=h.FixOptimizer([module.unused], llm=llm), steps=1,
                      store=tmp_path / "r.db", progress=False)
    assert llm.calls == [] and result.history[0].reason.startswith("nothing to optimize")


class Failing(bf.llm.BaseLLM):
    """Raises `errors` one after another, then answers like `h.scripted()`."""

    def __init__(self, *errors: Exception, model: str = "acme/large") -> None:
        self.errors = list(errors)
        self.model = model
        self.calls = 0

    def complete(self, messages, **options):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return h.scripted(1).complete(messages, **options)


class AuthenticationError(Exception):
    status_code = 401


class NotFoundError(Exception):
    status_code = 404


@pytest.mark.parametrize(("error", "says"), [
    (AuthenticationError("invalid api key"), "refused the credentials"),
    (NotFoundError("model acme/large does not exist"), "is unknown to the provider"),
    (LLMError("400: max_tokens too large"), "rejected the request"),
])
def test_a_wrong_key_model_or_request_stops_the_run_at_once_naming_the_model(
        tmp_path, error, says):
    module = h.Router()
    llm = Failing(error, error, error)
    with pytest.raises(bf.ModelFailed, match=f"the optimizer's model 'acme/large' {says}") as e:
        bf.train(module, h.dataset(1), metric=h.metric,
                 optimizer=h.FixOptimizer(module.parameters(), llm=llm), steps=3,
                 store=tmp_path / "r.db", progress=False)
    assert e.value.fatal and llm.calls == 1 and "\n" not in str(e.value)
    run = bf.store.RunStore(tmp_path / "r.db").list_runs()[0]
    assert run.status == "stopped" and says in run.stop_reason and "resume=" in run.stop_reason


def test_transient_errors_are_retried_and_persistent_ones_stop_a_resumable_run(tmp_path):
    module = h.Router()
    retried = Retrying(Failing(ServerError("503 busy")), sleep=lambda s: None)
    result = bf.train(module, h.dataset(1), metric=h.metric,
                      optimizer=h.FixOptimizer(module.parameters(), llm=retried), steps=1,
                      store=tmp_path / "r.db", progress=False)
    assert result.status == "finished" and result.best_score == pytest.approx(1 / 3)

    module = h.Router()
    down = Retrying(Failing(*[ServerError("503 busy")] * 3), max_retries=2,
                    sleep=lambda s: None)
    with pytest.raises(bf.ModelFailed, match="kept failing after retries") as e:
        bf.train(module, h.dataset(1), metric=h.metric,
                 optimizer=h.FixOptimizer(module.parameters(), llm=down), steps=2,
                 store=tmp_path / "r.db", progress=False)
    assert not e.value.fatal
    store = bf.store.RunStore(tmp_path / "r.db")
    run = store.list_runs(status="stopped")[0]
    assert run.step == -1  # the seed's checkpoint: the failed step left nothing behind
    module = h.Router()
    resumed = bf.train(module, h.dataset(1), metric=h.metric,
                       optimizer=h.FixOptimizer(module.parameters(), llm=h.scripted()),
                       steps=2, store=tmp_path / "r.db", resume=run.id, progress=False)
    assert resumed.status == "finished" and [s.step for s in resumed.history] == [0, 1]


def test_backfeed_run_exits_non_zero_when_the_model_keeps_failing(tmp_path):
    from typer.testing import CliRunner

    from backfeed.cli import app

    script = tmp_path / "train.py"
    script.write_text(
        "import backfeed as bf, train_helpers as h\n"
        "from backfeed.llm import Scripted, ServerError\n"
        "def down(messages, options):\n"
        "    raise ServerError('connection refused')\n"
        "m = h.Router()\n"
        "bf.train(m, h.dataset(1), metric=h.metric, steps=2, progress=False,\n"
        "         optimizer=h.FixOptimizer(m.parameters(), llm=Scripted([down] * 3)))\n")
    result = CliRunner().invoke(app, ["run", str(script), "--store", str(tmp_path / "r.db")])
    assert result.exit_code == 1 and "kept failing after retries" in result.output


def test_the_run_does_not_change_the_users_optimizer_or_judge(tmp_path):
    module = h.Router()
    llm = bf.llm.Scripted(['{"suggestion": {"pa": "right-a"}}', '{"suggestion": {"pb": "b"}}'])
    opt = h.FixOptimizer(module.parameters(), llm=llm)
    judge = bf.search.LLMJudge(bf.llm.Scripted(['{"winner": "B"}'] * 20))
    judge_llm = judge.llm
    result = bf.train(module, h.dataset(1), optimizer=opt, strategy=bf.search.Pairwise(judge),
                      steps=2, store=tmp_path / "r.db", progress=False)
    assert opt.llm is llm and judge.llm is judge_llm
    roles = {c.role for c in result.store.llm_calls(result.run_id)}
    assert roles == {"optimizer", "judge"}
    by_role = result.spend["by_role"]
    assert by_role["judge"]["calls"] == len(judge_llm.calls) > 0
    assert by_role["optimizer"]["calls"] == len(llm.calls) > 0



def test_a_dict_outputs_parts_are_named_by_their_keys_in_the_optimizers_trace(tmp_path):
    module = TwoHeads("dict")
    llm = bf.llm.Scripted(["### greeting\n```text\nhello\n```"])
    bf.train(module, ["a"], metric=lambda ex, out: bf.Feedback(score=0.0, text="wrong"),
             optimizer=bf.optim.Prime(module.parameters(), llm=llm), steps=1,
             store=tmp_path / "r.db", progress=False)
    prompt = llm.calls[0].messages[-1]["content"]
    assert "parts['label']=" in prompt and "parts['reply']=" in prompt
    assert "parts[0]" not in prompt


def test_a_missing_package_is_named_as_such_not_as_an_unknown_model():
    from backfeed.train.failures import model_failure

    try:
        try:
            raise ModuleNotFoundError("No module named 'litellm'")
        except ImportError as exc:
            raise bf.llm.LLMError("bf.llm.LiteLLM needs litellm: pip install 'backfeed[litellm]'") from exc
    except bf.llm.LLMError as error:
        failed = model_failure(error, model="openai/x", role="optimizer", run_id="r")
    assert "a package is missing" in str(failed) and "unknown to the provider" not in str(failed)
    assert failed.fatal
