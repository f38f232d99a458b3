"""A corpus of bad and odd model answers: each is applied correctly or rejected with a reason."""

from __future__ import annotations

import json

import pytest

import backfeed as bf
from backfeed.optim import StepReport
from backfeed.optim.apply import apply_answer

PARSE_CODE = "def parse(text):\n    return int(text.strip())\n"


def make_params() -> list[bf.Param]:
    return [
        bf.param(1.0, name="x", bounds=(-100, 100)),
        bf.param(3, name="n_items", bounds=(1, 10)),
        bf.param(True, name="verbose"),
        bf.param("Answer briefly.", name="system_prompt"),
        bf.param([0], name="weights"),
        bf.param({"k": 1}, name="config"),
        bf.param("fast", name="mode", choices=["fast", "slow"]),
        bf.param(PARSE_CODE, name="parse", kind="code"),
    ]


NEW_CODE = "def parse(text):\n    return int(text.strip() or 0)\n"

# (case id, answer text, {name: applied value}, {name: rejection kind}, expected stop, problem)
CORPUS = [
    ("plain", '{"reasoning": "r", "suggestion": {"x": 4.0}, "stop": false}', {"x": 4.0}, {}, False, None),
    ("json fence", 'Sure!\n```json\n{"suggestion": {"x": 2.5}}\n```\nDone.', {"x": 2.5}, {}, False, None),
    ("bare fence", '```\n{"suggestion": {"n_items": 5}}\n```', {"n_items": 5}, {}, False, None),
    ("prose around", 'I think we should raise it. {"suggestion": {"x": 7}} Hope this helps!', {"x": 7.0}, {}, False, None),
    ("trailing commas", '{"suggestion": {"x": 3.0, "n_items": 4,},}', {"x": 3.0, "n_items": 4}, {}, False, None),
    ("python literals", "{'suggestion': {'verbose': False, 'x': 2.0}}", {"verbose": False, "x": 2.0}, {}, False, None),
    ("True literal unquoted", '{"suggestion": {"verbose": False}}', {"verbose": False}, {}, False, None),
    ("bool as text False", '{"suggestion": {"verbose": "False"}}', {"verbose": False}, {}, False, None),
    ("bool as text yes", '{"suggestion": {"verbose": "yes"}}', {"verbose": True}, {}, False, None),
    ("bool nonsense", '{"suggestion": {"verbose": "maybe"}}', {}, {"verbose": "type"}, False, None),
    ("list as text", '{"suggestion": {"weights": "[1, 2]"}}', {"weights": [1, 2]}, {}, False, None),
    ("dict as text", '{"suggestion": {"config": "{\\"k\\": 2, \\"j\\": [1]}"}}', {"config": {"k": 2, "j": [1]}}, {}, False, None),
    ("list not json", '{"suggestion": {"weights": "1, 2 and 3"}}', {}, {"weights": "type"}, False, None),
    ("int as text", '{"suggestion": {"n_items": "3"}}', {"n_items": 3}, {}, False, None),
    ("int as 5.0", '{"suggestion": {"n_items": 5.0}}', {"n_items": 5}, {}, False, None),
    ("int given 3.7", '{"suggestion": {"n_items": 3.7}}', {}, {"n_items": "type"}, False, None),
    ("int out of bounds", '{"suggestion": {"n_items": 50}}', {}, {"n_items": "bounds"}, False, None),
    ("float out of bounds", '{"suggestion": {"x": -1000.5}}', {}, {"x": "bounds"}, False, None),
    ("float as words", '{"suggestion": {"x": "four"}}', {}, {"x": "type"}, False, None),
    ("choice outside", '{"suggestion": {"mode": "turbo"}}', {}, {"mode": "constraint"}, False, None),
    ("choice inside", '{"suggestion": {"mode": "slow"}}', {"mode": "slow"}, {}, False, None),
    ("unknown intermediate node", '{"suggestion": {"subtract1": 3.0}}', {}, {"subtract1": "unknown"}, False, None),
    ("unknown type name", '{"suggestion": {"float": 3.0, "x": 1.5}}', {"x": 1.5}, {"float": "unknown"}, False, None),
    ("misspelt name", '{"suggestion": {"n_item": 4}}', {}, {"n_item": "unknown"}, False, None),
    ("case of name", '{"suggestion": {"System_Prompt": "Be short."}}', {"system_prompt": "Be short."}, {}, False, None),
    ("TERMINATE in reasoning", '{"reasoning": "Looks done. TERMINATE", "suggestion": {"x": 5.0}}', {"x": 5.0}, {}, False, None),
    ("TERMINATE as the answer", "TERMINATE", {}, {}, False, "no readable JSON"),
    ("explicit stop", '{"reasoning": "optimal", "suggestion": {}, "stop": true}', {}, {}, True, None),
    ("stop as text", '{"suggestion": {"x": 9.0}, "stop": "true"}', {"x": 9.0}, {}, True, None),
    ("def inside text value", '{"suggestion": {"system_prompt": "Define terms; def means definition.\\n  def f(): keep"}}',
     {"system_prompt": "Define terms; def means definition.\n  def f(): keep"}, {}, False, None),
    ("text kept verbatim", '{"suggestion": {"system_prompt": "  x  =  1   "}}', {"system_prompt": "  x  =  1   "}, {}, False, None),
    ("number for text", '{"suggestion": {"system_prompt": 42}}', {"system_prompt": "42"}, {}, False, None),
    ("dict for text", '{"suggestion": {"system_prompt": {"a": 1}}}', {}, {"system_prompt": "type"}, False, None),
    ("empty answer", "", {}, {}, False, "empty"),
    ("whitespace answer", "   \n ", {}, {}, False, "empty"),
    ("truncated after value", '{"reasoning": "r", "suggestion": {"x": 4.0, "n_items": 2', {"x": 4.0, "n_items": 2}, {}, False, "truncated"),
    ("truncated inside text", '{"reasoning": "r", "suggestion": {"x": 6.0, "system_prompt": "Answer in one wor',
     {"x": 6.0}, {"system_prompt": "syntax"}, False, "truncated"),
    ("broken object, values recovered", '{"suggestion": {"x": 8.0 "n_items": 2 }} }}', {"x": 8.0, "n_items": 2}, {}, False, "one by one"),
    ("flat object of names", '{"x": 11.0, "verbose": false}', {"x": 11.0, "verbose": False}, {}, False, None),
    ("suggestion as text", '{"suggestion": "{\\"x\\": 12.0}"}', {"x": 12.0}, {}, False, None),
    ("suggestion as prose", '{"suggestion": "increase x a bit"}', {}, {}, False, "not an object"),
    ("suggestion as list", '{"suggestion": [1, 2]}', {}, {}, False, "must be an object"),
    ("name/value pairs", '{"suggestion": [{"name": "x", "value": 13.0}]}', {"x": 13.0}, {}, False, None),
    ("null value", '{"suggestion": {"x": null}}', {}, {"x": "type"}, False, None),
    ("nan value", '{"suggestion": {"x": NaN}}', {}, {"x": "constraint"}, False, None),
    ("two objects, last wins", 'Example: {"a": 1}. Answer: {"suggestion": {"x": 14.0}}', {"x": 14.0}, {}, False, None),
    ("code ok", json.dumps({"suggestion": {"parse": NEW_CODE}}), {"parse": NEW_CODE}, {}, False, None),
    ("code in fence, indented", json.dumps({"suggestion": {"parse": "```python\n    " + NEW_CODE.replace("\n    ", "\n        ") + "```"}}),
     {"parse": NEW_CODE}, {}, False, None),
    ("code does not compile", json.dumps({"suggestion": {"parse": "def parse(text):\n    return int(text.strip(\n"}}), {}, {"parse": "syntax"}, False, None),
    ("code renames the function", json.dumps({"suggestion": {"parse": "def parse_it(text):\n    return 1\n"}}), {}, {"parse": "syntax"}, False, None),
    ("code as a number", '{"suggestion": {"parse": 5}}', {}, {"parse": "type"}, False, None),
    ("comments in json", '{"suggestion": {"x": 15.0 // bigger\n}}', {"x": 15.0}, {}, False, None),
    ("deeply nested junk", "[" * 3000, {}, {}, False, "no readable JSON"),
]


@pytest.mark.parametrize(("text", "applied", "rejected", "stop", "problem"),
                         [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_answer_is_applied_or_rejected_with_reason(text, applied, rejected, stop, problem):
    params = make_params()
    before = {p.name: p.value for p in params}
    report = StepReport(step=0)
    apply_answer(params, text, report)  # must never raise
    assert report.applied == applied
    for p in params:
        expected = applied.get(p.name, before[p.name])
        assert p.value == expected and type(p.value) is type(expected), p.name
    got_rejected = {u.name: u.kind for u in report.rejected}
    assert got_rejected == rejected
    for u in report.rejected:
        assert u.reason and u.reason.startswith(u.kind), u
    assert report.stop is stop
    if problem is None:
        assert not any("no readable" in p for p in report.problems)
    else:
        assert any(problem in p for p in report.problems), report.problems
    assert len(report.updates) == len(params)  # one entry per parameter, always


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 30


def test_unknown_name_reason_suggests_closest_parameter():
    params = make_params()
    report = StepReport(step=0)
    apply_answer(params, '{"suggestion": {"n_item": 4, "systemprompt": "Hi"}}', report)
    reasons = {u.name: u.reason for u in report.rejected}
    assert "did you mean 'n_items'" in reasons["n_item"]
    assert "did you mean 'system_prompt'" in reasons["systemprompt"]


def test_rejected_update_records_proposed_and_keeps_old_value():
    params = make_params()
    report = StepReport(step=0)
    apply_answer(params, '{"suggestion": {"n_items": 3.7}}', report)
    update = next(u for u in report.updates if u.name == "n_items")
    assert update.proposed == 3.7 and update.new == 3 and not update.applied
    assert "not a whole number" in update.reason and "not truncated" in update.reason


def test_unchanged_value_is_applied_but_not_changed():
    params = make_params()
    report = StepReport(step=0)
    apply_answer(params, '{"suggestion": {"x": 1.0, "n_items": 4}}', report)
    by_name = {u.name: u for u in report.updates}
    assert by_name["x"].applied and not by_name["x"].changed
    assert by_name["n_items"].applied and by_name["n_items"].changed
