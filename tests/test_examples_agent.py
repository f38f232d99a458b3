"""The ReAct-style agent example: feedback reaches a tool description through the loop."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import backfeed as bf

PATH = Path(__file__).parents[1] / "examples" / "agent_tools.py"


@pytest.fixture(scope="module")
def agent_module():
    spec = importlib.util.spec_from_file_location("agent_tools_example", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(PATH.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(PATH.parent))
    return module


TURNS = ["ACTION population: Camelot", "ACTION population: Lilliput",
         "ACTION calculator: 4800 + 90", "FINAL: 4890"]


def test_feedback_reaches_a_tool_description_through_four_loop_turns(agent_module):
    agent = agent_module.ToolAgent()
    names = [name for name, _ in agent.named_parameters()]
    assert names == ["system", "tools.population", "tools.calculator"]
    llm = bf.llm.Scripted(TURNS)
    with bf.llm.using(llm):
        answer = agent("How many people live in Camelot and Lilliput together?")
    assert answer.value == "4890"
    # the tools ran on what the model asked for, and each observation went back to the model
    assert llm.calls[3].messages[-1] == {"role": "user", "content": "Observation: 4890"}
    assert llm.calls[2].messages[-1] == {"role": "user", "content": "Observation: 90"}
    reached = answer.backward("correct, but use the calculator right away")
    assert {p.name for p in reached} == set(names)
    sub = bf.minimal_subgraph([agent.tools["calculator"]])
    chats = [n for n in sub.nodes if n.op is not None and n.op.name == "chat"]
    assert len(chats) == 4  # the description reached the answer through every turn


def test_an_optimizer_step_rewrites_a_tool_description_from_the_answers_feedback(agent_module):
    agent = agent_module.ToolAgent()
    calc = agent.tools["calculator"]
    with bf.llm.using(bf.llm.Scripted(["ACTION calculator: 2 * 350", "FINAL: 700"])):
        answer = agent("What is twice the population of Brigadoon?")
    score = agent_module.metric(("q", "350"), answer.value)
    assert score.score == 0.0
    new_doc = "evaluates arithmetic on numbers only; look populations up first"
    opt_llm = bf.llm.Scripted([f'{{"suggestion": {{"tools.calculator": "{new_doc}"}}}}'])
    opt = bf.optim.Prime(agent.parameters(), llm=opt_llm)
    opt.zero_feedback()
    answer.backward(score)
    report = opt.step()
    assert calc.value == new_doc, report
    prompt = opt_llm.calls[0].messages[-1]["content"]
    assert "evaluates arithmetic" in prompt and "expected 350" in prompt


def test_unknown_tools_and_turn_limits_answer_without_crashing(agent_module):
    agent = agent_module.ToolAgent(max_turns=2)
    with bf.llm.using(bf.llm.Scripted(["ACTION search: Avalon", "ACTION population: Avalon"])):
        answer = agent("What is the population of Avalon?")
    assert answer.value == "(no answer within the turn limit)"
    assert agent_module.calculator("2 + 3 * 4") == "14"
    assert agent_module.calculator("__import__('os')").startswith("error")
