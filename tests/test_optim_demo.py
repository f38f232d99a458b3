"""The demo: a receipt workflow with a text, a code and a numeric parameter, run with Scripted."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

import backfeed as bf
from backfeed import demo

pytest.importorskip("optuna")

GOOD = json.dumps({
    "reasoning": "lower-case names, state the total",
    "suggestion": {
        "template": "Items: {items}. Total: {total} EUR",
        "clean_name": "def clean_name(name: str) -> str:\n    return name.strip().lower()\n",
        "tax_rate": 0.2,
    },
    "stop": False,
})
BROKEN_CODE = json.dumps({
    "reasoning": "r",
    "suggestion": {"template": "{items}", "clean_name": "def clean_name(name):\n  return (",
                   "tax_rate": 0.1},
    "stop": False,
})
BAD_TEMPLATE = json.dumps({
    "reasoning": "r",
    "suggestion": {"template": "Receipt {price}", "clean_name": "def clean_name(name):\n    return 1\n",
                   "tax_rate": 0.45},
    "stop": False,
})


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120, record=True)


def test_initial_workflow_scores_low_and_correct_values_score_one():
    workflow = demo.ReceiptWorkflow()
    assert demo.evaluate(workflow) < 0.3  # names wrong, no total, no tax: the items only
    workflow.template.value = "Items: {items}. Total: {total} EUR"
    workflow.clean_name.value = "def clean_name(name: str) -> str:\n    return name.strip().lower()\n"
    workflow.tax_rate.value = 0.2
    assert demo.evaluate(workflow) == pytest.approx(1.0)


def test_feedback_says_what_to_change_not_the_receipt_to_copy():
    fb = demo.score_receipt(demo.ORDERS[0], "Items:   Apple  x3, BREAD x1", ["  Apple ", "BREAD"], 3.5)
    assert "4.20 EUR" not in fb.text  # the 0.5B model copied a quoted receipt into the template
    assert "end the template with ' Total: {total} EUR'" in fb.text  # the fix, to copy
    assert "with the field {items}" not in fb.text  # the items are listed (not yet clean)
    assert "clean_name('  Apple ') must return 'apple'" in fb.text
    assert "the total 3.50 should be 4.20" in fb.text
    assert fb.score < 0.4
    literal = demo.score_receipt(demo.ORDERS[0], "Receipt: milk x2", ["apple", "bread"], 4.2)
    assert "the template must list this order's items: write the field {items}" in literal.text


def test_a_template_copying_one_receipt_scores_no_better_than_the_seed_template():
    workflow = demo.ReceiptWorkflow()
    workflow.clean_name.value = "def clean_name(name: str) -> str:\n    return name.strip().lower()\n"
    workflow.tax_rate.value = 0.2
    seed = demo.evaluate(workflow)
    workflow.template.value = "Items: apple x3, bread x1. Total: 4.20 EUR"  # order 1, literally
    assert demo.evaluate(workflow) <= seed + 1e-3  # scores are rounded to 4 places
    workflow.template.value = "Items: {items}. Total: {total} EUR\ntax_rate: 0.2"  # junk after
    assert demo.evaluate(workflow) < 1.0
    workflow.template.value = "Items: {items}. Total: {total} EUR"
    assert demo.evaluate(workflow) == pytest.approx(1.0)


def test_run_demo_trains_through_the_store_and_fixes_all_three(tmp_path):
    console = quiet()
    # step 1: two candidates (broken code, then a good one); step 2 is never asked: 1.0 stops
    llm = bf.llm.Scripted([BROKEN_CODE, GOOD])
    store = tmp_path / "runs.db"
    result = demo.run_demo(llm=llm, steps=3, console=console, candidates=2, store=store,
                           compact=False)  # the whole-trace prompt, one JSON answer a call
    assert result.curve[0] < 0.3 and result.best_score == pytest.approx(1.0)
    assert result.curve == sorted(result.curve)  # best so far never drops
    assert len(llm.calls) == 2 and len(result.curve) == 2  # stopped at the perfect score
    assert result.after["clean_name"].strip().endswith("return name.strip().lower()")
    assert result.after["tax_rate"] == pytest.approx(0.2) and "Total" in result.after["template"]
    assert result.prompt_tokens > 0
    # the run is in the store the CLI and the dashboard read
    run = bf.store.RunStore(store).get_run(result.run_id)
    assert run.name == "demo" and run.status == "finished"
    first = result.reports[0].report
    assert len(first.proposals) >= 2
    out = " ".join(console.export_text().split())
    calls = first.prompt_tokens + first.completion_tokens
    assert f"step 0 best 1.000 {len(first.proposals)} candidates" in out
    assert f"{calls} tokens" in out  # the step's two calls, counted once
    for text in ("seed score", "score curve (best so far)", "parameters", "tokens",
                 f"backfeed show {result.run_id}", "backfeed ui"):
        assert text in out
    # the broken code was rejected, and the line names the parameter and the whole reason
    assert "clean_name rejected (syntax): the code does not parse" in out


def test_run_demo_asks_for_each_parameter_alone_as_on_the_embedded_model(tmp_path):
    """The path the embedded model takes: one short prompt per parameter (two answers each),
    the changes combined, the tax rate left to the sampler; once the feedback names only the
    tax rate, the model is not asked again."""
    template = "### template\n```text\nItems: {items}\nTotal: {total} EUR\n```"
    copied = "### template\n```text\nItems: 10\nTotal: 1000 EUR\n```"
    lowered = "### clean_name\n```python\ndef clean_name(name: str) -> str:\n" \
        "    return name.lower()\n```"
    fixed = "### clean_name\n```python\ndef clean_name(name: str) -> str:\n" \
        "    return name.strip().lower()\n```"
    llm = bf.llm.Scripted([template, copied, lowered, fixed])
    console = quiet()
    result = demo.run_demo(llm=llm, steps=4, console=console, candidates=2, compact=True,
                           store=tmp_path / "runs.db")
    assert len(llm.calls) == 4  # steps 2-4: the feedback names only the tax rate
    first = llm.calls[0].messages[1]["content"]
    assert "#Parameter `template`" in first and "- {items}\n- {total}" in first
    assert "clean_name(" not in first and "tax_rate" not in first
    code = llm.calls[2].messages[1]["content"]
    assert "#Spec\nReturn the item name in lower case, without surrounding spaces." in code
    assert "clean_name('  Apple ') must return 'apple'" in code and "Total" not in code
    assert result.after["template"] == "Items: {items}\nTotal: {total} EUR"
    assert result.after["clean_name"].strip().endswith("return name.strip().lower()")
    assert result.after["tax_rate"] != 0.0  # the sampler's
    assert result.best_score > 0.66 and result.curve == sorted(result.curve)
    combined = [c for c in result.reports[0].report.candidates
                if c["template"] != demo.INITIAL_TEMPLATE and c["clean_name"] != demo.clean_name.source]
    assert len(combined) >= 2  # both templates with the first code change, at least
    out = " ".join(console.export_text().split())
    assert "step 2 best" in out and "0 tokens" in out
    assert "model not asked for template, clean_name: the feedback names only the other " \
        "parameters" in out


def test_a_failing_model_stops_the_demo_with_a_resumable_run_and_the_cli_says_so(
        monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from backfeed.cli import app

    with pytest.raises(bf.ModelFailed, match="ran out of answers"):
        demo.run_demo(llm=bf.llm.Scripted([]), steps=2, console=quiet(),
                      store=tmp_path / "runs.db")
    monkeypatch.setenv("BACKFEED_STORE", str(tmp_path / "runs.db"))
    monkeypatch.setattr(demo, "_default_llm", lambda: bf.llm.Scripted([]))
    result = CliRunner().invoke(app, ["demo", "--steps", "1"])
    assert result.exit_code == 1 and "error: the optimizer's model" in result.output


def test_demo_command_runs_with_the_default_model(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from backfeed.cli import app

    monkeypatch.setenv("BACKFEED_STORE", str(tmp_path / "runs.db"))
    monkeypatch.setattr(demo, "_default_llm", lambda: bf.llm.Scripted([GOOD] * 4))
    result = CliRunner().invoke(app, ["demo", "--steps", "1"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "score curve" in out and "backfeed show latest" in out


def test_run_demo_without_optuna_uses_prime_and_prints_the_hint_whole(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "optuna" else real(name, *a))
    console = quiet()
    result = demo.run_demo(llm=bf.llm.Scripted([GOOD]), steps=1, console=console, candidates=1,
                           store=tmp_path / "runs.db")
    assert result.best_score == pytest.approx(1.0)
    out = " ".join(console.export_text().split())
    assert "pip install 'backfeed[numeric]'" in out  # not eaten as rich markup
    assert "Prime instead of Hybrid" in out and "Prime with 1 candidates" in out


def test_a_demo_that_ends_short_of_one_says_which_parameter_is_off_and_why(tmp_path):
    no_rate = json.dumps({"reasoning": "r", "suggestion": {
        "template": "Items: {items}. Total: {total} EUR",
        "clean_name": "def clean_name(name: str) -> str:\n    return name.replace(' ', '').lower()\n",
    }, "stop": False})
    console = quiet()
    result = demo.run_demo(llm=bf.llm.Scripted([no_rate] * 20), steps=1, console=console,
                           candidates=1, compact=False, store=tmp_path / "runs.db")
    out = console.export_text()
    assert result.best_score < 0.999 and "Not perfect yet" in out
    # the code that removes inner spaces is caught by the order with one, and named
    assert "clean_name(' Goat cheese') must return 'goat cheese'" in out
    assert "the tax_rate is wrong" in out and "numeric search" in out
