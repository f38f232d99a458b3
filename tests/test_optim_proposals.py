"""Proposals as plain data: no optimizer changes a parameter while it proposes, the reports are
typed from the optimizer to the store and back, and the code keeps its shape (sizes, cycles)."""

from __future__ import annotations

import ast
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import backfeed as bf
from backfeed.optim import (
    OPRO,
    Combine,
    Evolution,
    FewShot,
    Hybrid,
    Numeric,
    Prime,
    Problem,
    Proposal,
    StepReport,
    TextGrad,
)
from backfeed.optim.records import NOT_ASKED, PARSE, REPEAT

ROOT = Path(__file__).resolve().parents[1]


class Guarded(bf.Param):
    """A parameter that raises when its value is assigned while `locked`."""

    locked = False

    def __setattr__(self, name, value):
        if name == "_value" and self.locked:
            raise AssertionError(f"{self.name} was assigned while proposing")
        super().__setattr__(name, value)


@bf.op(trainable=True, description="Return the word in upper case.")
def shout(word: str) -> str:
    return word


def _guarded(value, name, **options):
    return Guarded(value, name=name, **options)


def _give_feedback(params, text="wrong: make it right"):
    out = bf.format(" ".join("{" + p.name + "}" for p in params), **{p.name: p for p in params})
    out.backward(bf.Feedback(score=0.2, text=text))


BLOCKS = "### prompt\n```text\nAnswer in capitals.\n```"

CASES = {
    "prime": lambda: ([_guarded("Answer.", "prompt")],
                      lambda ps, llm: Prime(ps, llm, candidates=2), [BLOCKS, BLOCKS.replace(
                          "capitals", "CAPITALS")]),
    "prime per parameter": lambda: ([_guarded("Answer.", "prompt"), _guarded("Be short.", "tone")],
                                    lambda ps, llm: Prime(ps, llm, compact=True),
                                    [BLOCKS, "### tone\n```text\nBe brief.\n```"]),
    "opro": lambda: ([_guarded(1.0, "x", bounds=(0.0, 10.0))],
                     lambda ps, llm: OPRO(ps, llm=llm), ['{"suggestion": {"x": 3.0}}']),
    "evolution": lambda: ([_guarded(1.0, "x", bounds=(0.0, 10.0))],
                          lambda ps, llm: Evolution(ps, llm=llm, candidates=2),
                          ['{"members": [{"x": 2.0}, {"x": 4.0}]}']),
    "textgrad": lambda: ([_guarded("Answer.", "prompt")],
                         lambda ps, llm: TextGrad(ps, llm=llm),
                         ['{"gradients": {"prompt": "say capitals"}}',
                          '{"suggestion": {"prompt": "Answer in capitals."}}']),
    "numeric": lambda: ([_guarded(1.0, "x", bounds=(0.0, 10.0))],
                        lambda ps, llm: Numeric(ps, seed=0), []),
    "hybrid": lambda: ([_guarded("Answer.", "prompt"), _guarded(1.0, "x", bounds=(0.0, 10.0))],
                       lambda ps, llm: Hybrid(ps, llm, seed=0, compact=False),
                       ['### prompt\n```text\nAnswer in capitals.\n```\n{"x": 2.0}']),
    "combine": lambda: ([_guarded("Answer.", "prompt"), _guarded(1.0, "x", bounds=(0.0, 10.0))],
                        lambda ps, llm: Combine([Prime(ps[:1], llm), Numeric(ps[1:], seed=0)]),
                        [BLOCKS]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_optimizer_changes_a_parameter_while_it_proposes(case):
    params, make, answers = CASES[case]()
    if case in ("numeric", "hybrid", "combine"):
        pytest.importorskip("optuna")
    optimizer = make(params, bf.llm.Scripted(answers * 3))
    _give_feedback(params)
    before = [p.value for p in params]
    for p in params:
        p.locked = True
    report = optimizer.propose()  # any assignment raises
    assert report.proposals, (report.error, report.problems, report.rejected)
    assert all(isinstance(p, Proposal) and p.by for p in report.proposals)
    assert [p.value for p in params] == before
    assert report.proposals[0].values != dict(zip([p.name for p in params], before))
    for p in params:
        p.locked = False
    optimizer.zero_feedback()
    _give_feedback(params)
    stepped = optimizer.step()  # the one place values change
    if stepped.proposals:
        assert {p.name: p.value for p in params} == stepped.proposals[0].values


def test_fewshot_proposes_demo_sets_without_touching_its_parameters():
    demos = _guarded([], "demos", kind="list")
    labelled = [("2+2", "4"), ("3+3", "6"), ("1+1", "2")]
    opt = FewShot([demos], k=2, candidates=2, labelled=labelled)
    _give_feedback([demos])
    demos.locked = True
    report = opt.propose()
    assert len(report.proposals) == 2 and demos.value == []
    assert all(len(p.values["demos"]) == 2 for p in report.proposals)


def test_a_trained_module_is_changed_only_by_loading_the_chosen_values(tmp_path):
    """Through a whole run: the optimizer proposes on locked parameters; the trainer makes
    each child from the parent's values and the proposal, never from the parameters."""

    class Echo(bf.Module):
        def __init__(self):
            self.prompt = _guarded("Answer.", "prompt")

        def forward(self, word):
            return bf.format("{prompt} {word}", prompt=self.prompt, word=word)

    module = Echo()
    proposing = []

    class Watching(Prime):
        def _propose(self, report):
            module.prompt.locked = True
            try:
                proposing.append(module.prompt.value)
                return super()._propose(report)
            finally:
                module.prompt.locked = False

    llm = bf.llm.Scripted([BLOCKS] * 4)
    result = bf.train(module, ["a", "b"], metric=lambda ex, out: float("capitals" in out),
                      optimizer=Watching(module.parameters(), llm), steps=2,
                      store=tmp_path / "r.db", progress=False)
    assert proposing == ["Answer."] and result.best_values == {"prompt": "Answer in capitals."}


# -- typed records ----------------------------------------------------------------------------

def test_a_step_report_round_trips_with_its_proposals_and_problem_kinds():
    report = StepReport(step=3, answers=["a"], prompt_tokens=5)
    report.problem("parse: no block", PARSE)
    report.problem("template: not asked", NOT_ASKED, param="template")
    report.proposals = [Proposal({"x": 1}, by="Prime", problems=(Problem("dropped", REPEAT),))]
    again = StepReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report
    assert [(p.kind, p.param) for p in again.problems] == [(PARSE, None), (NOT_ASKED, "template")]
    assert again.proposals[0].problems[0].kind == REPEAT and again.candidates == [{"x": 1}]
    assert again.problems_of(NOT_ASKED) == ["template: not asked"]


def test_a_schema_2_store_is_read_as_typed_records(tmp_path):
    """A store written before the columns existed: the DOT text, the candidate index and the
    row it shares with were inside the report's JSON, problems were plain text, TextGrad's
    criticism was a field of its own."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT, status TEXT NOT NULL, config TEXT,
            created_at REAL, updated_at REAL, step INTEGER, best_score REAL,
            best_candidate INTEGER, spend TEXT, stop_reason TEXT, state TEXT);
        CREATE TABLE step_reports (run_id TEXT NOT NULL, step INTEGER NOT NULL,
            seq INTEGER NOT NULL, candidate_id INTEGER, report TEXT NOT NULL,
            created_at REAL NOT NULL, PRIMARY KEY (run_id, step, seq));
    """)
    old = {"step": 0, "problems": ["parse: the block is not closed"], "dot": "digraph {}",
           "candidate_index": 1, "shared_with": 0, "gradients": {"prompt": "be clear"},
           "candidates": [{"prompt": "x"}], "updates": [{"name": "prompt", "old": "a",
                                                        "new": "b", "applied": True}]}
    db.execute("INSERT INTO runs (id, status) VALUES ('r', 'finished')")
    db.execute("INSERT INTO step_reports VALUES ('r', 0, 1, 5, ?, 0.0)", (json.dumps(old),))
    db.commit()
    db.close()
    [row] = bf.store.RunStore(path).step_reports("r")  # the writer adds the new columns
    assert (row.candidate_index, row.shared_with, row.dot) == (1, 0, "digraph {}")
    assert not row.holds_step and row.report.problems[0].kind == PARSE
    assert row.report.details["gradients"] == {"prompt": "be clear"}
    assert row.report.updates[0].new == "b" and row.report.candidates == [{"prompt": "x"}]


# -- the shape of the code ------------------------------------------------------------------

def test_no_class_is_over_450_lines_and_no_file_over_700():
    too_long = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > 700:
            too_long.append(f"{path.name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 450:
                too_long.append(f"{path.name}: class {node.name}")
    assert too_long == []


def test_no_import_cycle_even_inside_functions():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "import_cycles.py")],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "0 import cycle(s)" in done.stdout, done.stdout


def test_the_trainer_asks_the_strategy_and_the_scorer_instead_of_checking_their_types():
    source = "\n".join((ROOT / "src/backfeed/train" / f).read_text()
                       for f in ("trainer.py", "loop.py"))
    names = ("Pairwise", "Pareto", "Greedy", "MetricScorer", "JudgeScorer", "LLMJudge",
             "Strategy", "Scorer")
    calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)
             and getattr(n.func, "id", "") == "isinstance"]
    checked = {ast.unparse(c.args[1]) for c in calls if len(c.args) == 2}
    assert not any(name in text for text in checked for name in names), checked


def test_a_proposal_carries_the_cost_of_the_answer_it_was_read_from():
    prompt = bf.param("Answer.", name="prompt")
    _give_feedback([prompt])

    def paid(messages, options):
        return bf.llm.Completion(BLOCKS, bf.llm.Usage(100, 12), 0.002, "m")

    report = Prime([prompt], bf.llm.Scripted([paid])).propose()
    [proposal] = report.proposals
    assert (proposal.prompt_tokens, proposal.completion_tokens, proposal.cost_usd) == (100, 12, 0.002)
    assert proposal.answer == BLOCKS and proposal.by == "Prime (per parameter)"  # one prose text
    assert report.prompt_tokens == 100 and prompt.value == "Answer."  # proposed, not applied
