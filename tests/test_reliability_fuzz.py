"""Fuzzing with hypothesis: hostile model answers, values, state files, CLI and URL arguments.

Each property runs a few dozen examples by default and thousands in its `long` variant
(`python -m pytest tests/test_reliability_fuzz.py -m long`; RELIABILITY.md quotes the counts).
Nothing may escape but the documented error types, and every call finishes within its bound.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backfeed as bf
from backfeed.optim.apply import Rejected, apply_answer, coerce, parse_answer
from backfeed.optim.base import StepReport

DEPTH = [pytest.param(40, id="quick"),
         pytest.param(2000, id="thousands", marks=[pytest.mark.long, pytest.mark.timeout(1800)])]
BOUND_S = 2.0  # one call, on a busy 2-core machine


def _fuzz(examples: int, *strategies: Any) -> Any:
    """`given(*strategies)` with `examples` examples, no per-example deadline (we time ourselves)."""
    def wrap(check: Any) -> Any:
        return settings(max_examples=examples, deadline=None, database=None,
                        suppress_health_check=list(HealthCheck))(given(*strategies)(check))
    return wrap


def _timed(fn: Any, *args: Any, **kwargs: Any) -> Any:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    assert time.perf_counter() - started < BOUND_S, f"{fn.__name__} took too long"
    return result


# -- values a model or a user might produce ----------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=200))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=30)
NAMES = ["prompt", "temperature", "k", "flag", "mode", "config", "items", "solve"]


def _params() -> list[bf.Param]:
    return [
        bf.param("Answer briefly.", name="prompt"),
        bf.param(0.5, name="temperature", bounds=(0.0, 2.0)),
        bf.param(3, name="k", bounds=(1, 10)),
        bf.param(True, name="flag"),
        bf.param("fast", name="mode", choices=["fast", "careful"]),
        bf.param({"depth": 2}, name="config"),
        bf.param(["a"], name="items"),
        bf.param("def solve(x):\n    return x\n", name="solve", kind="code"),
    ]


def _answers() -> Any:
    """Answers shaped like the model's: JSON objects, fenced blocks, broken JSON, plain text."""
    suggestion = st.dictionaries(st.sampled_from([*NAMES, "unknown", ""]), json_values, max_size=6)
    as_json = st.builds(lambda s, r, stop: json.dumps({"reasoning": r, "suggestion": s,
                                                       "stop": stop}), suggestion,
                        st.text(max_size=50), json_values)
    fenced = st.builds(lambda name, body, lang: f"{name}\n```{lang}\n{body}\n```",
                       st.sampled_from(NAMES), st.text(max_size=300),
                       st.sampled_from(["", "python", "json", "text"]))
    cut = st.builds(lambda text, n: text[: n % (len(text) + 1)], as_json, st.integers(0, 400))
    nested = st.integers(1, 3000).map(lambda n: "[" * n + "{" * (n // 2))
    return st.one_of(st.text(max_size=500), as_json, fenced, cut, nested,
                     st.lists(st.one_of(as_json, fenced, st.text(max_size=40)),
                              max_size=4).map("\n".join))


@pytest.mark.parametrize("examples", DEPTH)
def test_parse_answer_reads_any_text_without_raising(examples):
    @_fuzz(examples, _answers())
    def check(text: str) -> None:
        answer = _timed(parse_answer, text, NAMES)
        assert isinstance(answer.suggestion, dict) and isinstance(answer.stop, bool)
    check()


@pytest.mark.parametrize("examples", DEPTH)
def test_apply_answer_records_every_proposal_and_never_raises(examples):
    @_fuzz(examples, _answers())
    def check(text: str) -> None:
        params = _params()
        report = StepReport(step=0)
        _timed(apply_answer, params, text, report)
        assert {u.name for u in report.updates} == set(NAMES)
        for p in params:  # whatever was applied still satisfies the parameter's rules
            p.value = p.value
    check()


@pytest.mark.parametrize("examples", DEPTH)
def test_coerce_accepts_or_rejects_with_a_reason(examples):
    @_fuzz(examples, st.sampled_from(NAMES), json_values)
    def check(name: str, value: Any) -> None:
        param = next(p for p in _params() if p.name == name)
        try:
            _timed(coerce, param, value)
        except Rejected as exc:
            assert str(exc) and exc.kind
    check()


# -- render on hostile values ------------------------------------------------------------------

class ReprRaises:
    def __repr__(self) -> str:
        raise RuntimeError("repr refuses")


def _hostile() -> Any:
    def cyclic_list(items: list[Any]) -> list[Any]:
        items.append(items)
        return items

    def cyclic_dict(d: dict[str, Any]) -> dict[str, Any]:
        d["self"] = d
        return d

    def deep(n: int) -> Any:
        value: Any = "bottom"
        for _ in range(n):
            value = [value]
        return value

    return st.one_of(
        json_values,
        st.integers(10_000, 2_000_000).map(lambda n: "x" * n),
        st.integers(1, 5000).map(deep),
        st.lists(json_values, max_size=3).map(cyclic_list),
        st.dictionaries(st.text(max_size=5), json_values, max_size=3).map(cyclic_dict),
        st.sampled_from([math.nan, math.inf, -math.inf, b"\x00\xff bytes", "\ud800 lone",
                         "\u202e\u0000 control", ReprRaises(), {1: ReprRaises()}]),
        st.binary(max_size=300),
        st.text(alphabet=st.characters(), max_size=300),
    )


@bf.op
def combine(prompt: str, value: Any) -> str:
    """Join the prompt and a value."""
    return prompt


@pytest.mark.parametrize("examples", DEPTH)
def test_render_shows_any_value_within_its_budget(examples):
    @_fuzz(examples, _hostile(), st.sampled_from([None, 300, 2000]))
    def check(value: Any, budget: int | None) -> None:
        prompt = bf.param("Answer.", name="prompt")
        out = combine(prompt, bf.node(value))
        out.backward("too vague")
        try:
            rendering = _timed(bf.graph.render, prompt, budget)
        except bf.graph.RenderBudgetError:
            return
        assert "prompt" in rendering.text
        if budget is not None:
            assert rendering.tokens <= budget
    check()


# -- Module.load on malformed or hostile JSON ---------------------------------------------------

class Agent(bf.Module):
    def __init__(self) -> None:
        self.prompt = bf.param("Answer.", name="prompt")
        self.k = bf.param(3, name="k", bounds=(1, 10))


LOAD_ERRORS = (KeyError, TypeError, ValueError, UnicodeDecodeError)


@pytest.mark.parametrize("examples", DEPTH)
def test_module_load_rejects_hostile_state_with_a_clear_error(examples, tmp_path_factory):
    folder = tmp_path_factory.mktemp("load")
    state = st.one_of(
        st.dictionaries(st.sampled_from(["prompt", "k", "other", "__class__"]), json_values,
                        max_size=3).map(json.dumps),
        json_values.map(lambda v: json.dumps(v)),
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
        st.integers(1, 100_000).map(lambda n: "[" * n),
        st.just('{"prompt": "a", "prompt": 1, "k": 1e999}'),
    )

    @_fuzz(examples, state)
    def check(text: str) -> None:
        path = folder / "state.json"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        agent = Agent()
        before = agent.state_dict()
        try:
            _timed(agent.load, path)
        except LOAD_ERRORS as exc:
            assert str(exc)
            assert agent.state_dict() == before  # nothing half-loaded
            return
        assert set(agent.state_dict()) == {"prompt", "k"}
        assert isinstance(agent.k.value, int) and 1 <= agent.k.value <= 10
    check()


# -- the CLI's run-id and step arguments, the dashboard's URL parameters ------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, str]:
    from _ui_store import make_run

    path = tmp_path_factory.mktemp("store") / "runs.db"
    return path, make_run(path)


run_ids = st.one_of(st.text(max_size=60), st.sampled_from(
    ["latest", "best", "-1", "0", "../../etc/passwd", "%", "_", "' OR 1=1 --", "\x00", "latest~1"]))
steps = st.one_of(st.text(max_size=20), st.integers(-10**20, 10**20).map(str),
                  st.sampled_from(["seed", "best", "1e3", "0x10", "-0", "nan", " 1"]))


@pytest.mark.parametrize("examples", DEPTH)
def test_cli_run_id_and_step_arguments_end_in_a_message_or_an_answer(examples, store):
    from typer.testing import CliRunner

    from backfeed.cli import app

    path, run_id = store
    runner = CliRunner()

    @_fuzz(examples, run_ids, steps, st.sampled_from(["show", "diff", "export"]),
           st.booleans())
    def check(run: str, step: str, command: str, real: bool) -> None:
        if "\x00" in run + step:  # an OS never passes NUL in argv
            return
        target = run_id if real else run
        args = {"show": ["show", target], "diff": ["diff", target, step, "best"],
                "export": ["export", target]}[command]
        started = time.perf_counter()
        result = runner.invoke(app, [*args, "--store", str(path)])
        assert time.perf_counter() - started < BOUND_S * 3
        assert result.exit_code in (0, 1, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            repr(result.exception))
        if result.exit_code == 1:
            assert "error: " in result.output
            assert "Traceback" not in result.output
    check()


@pytest.mark.parametrize("examples", DEPTH)
def test_dashboard_url_parameters_answer_with_a_client_error_not_a_crash(examples, store):
    from urllib.parse import quote

    from starlette.testclient import TestClient

    from backfeed.ui.server import create_app

    path, run_id = store
    client = TestClient(create_app(path), base_url="http://127.0.0.1:8765",
                        raise_server_exceptions=False)
    assert client.get(f"/api/runs/{run_id}").status_code == 200  # past the Host check

    @_fuzz(examples, run_ids, steps, st.booleans(), st.sampled_from(
        ["/api/runs/{run}", "/api/runs/{run}/steps/{step}", "/api/runs/{run}/steps/{step}/graph.svg",
         "/runs/{run}", "/api/runs?{run}={step}"]))
    def check(run: str, step: str, real: bool, pattern: str) -> None:
        url = pattern.format(run=run_id if real else quote(run, safe=""),
                             step=quote(step, safe=""))
        started = time.perf_counter()
        response = client.get(url)
        assert time.perf_counter() - started < BOUND_S * 3
        assert response.status_code < 500, (url, response.status_code, response.text[:300])
    check()


# -- what the fuzzing found, pinned ------------------------------------------------------------

def test_render_names_a_value_too_deep_to_show_or_whose_repr_raises():
    deep: Any = "bottom"
    for _ in range(5000):
        deep = [deep]
    for value, shown in [(deep, "<list nested too deeply to show>"),
                         (ReprRaises(), "<ReprRaises: repr raised RuntimeError>")]:
        prompt = bf.param("Answer.", name="prompt")
        combine(prompt, bf.node(value)).backward("vague")
        assert shown in bf.graph.render(prompt, 300).text


def test_a_step_number_beyond_64_bits_is_not_found_not_a_server_error(tmp_path):
    from starlette.testclient import TestClient

    from _ui_store import make_run
    from backfeed.ui.server import create_app

    run_id = make_run(tmp_path / "runs.db")
    client = TestClient(create_app(tmp_path / "runs.db"), base_url="http://127.0.0.1:8765")
    for url in (f"/api/runs/{run_id}/steps/{2**63}", f"/api/runs/{run_id}/steps/{2**63}/graph.svg"):
        response = client.get(url)
        assert response.status_code == 404 and "no step" in response.json()["error"]


def test_module_load_refuses_deep_or_non_object_json_and_a_bad_value_loads_nothing(tmp_path):
    agent = Agent()
    for text, message in [("[" * 100_000, "nests too deeply"), ("[1, 2]", "JSON object")]:
        (tmp_path / "s.json").write_text(text)
        with pytest.raises(ValueError, match=message):
            agent.load(tmp_path / "s.json")
    (tmp_path / "s.json").write_text('{"prompt": "changed", "k": "three"}')
    with pytest.raises(TypeError, match="'k' is int"):
        agent.load(tmp_path / "s.json")
    assert agent.state_dict() == {"prompt": "Answer.", "k": 3}
