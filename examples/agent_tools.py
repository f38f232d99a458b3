"""A ReAct-style agent that picks tools in a loop; its system prompt and each tool's description
are trainable, and every model call is a traced `bf.chat`, so feedback on the final answer
reaches a tool description through every turn that read it.

    python examples/agent_tools.py [local | gpt-4o-mini] [--steps 3]
"""

from __future__ import annotations

import ast
import operator
import re

import backfeed as bf

FACTS = {"avalon": 1200, "brigadoon": 350, "camelot": 4800, "lilliput": 90}

SYSTEM = ("Answer the question with the tools. Reply with exactly one line: either "
          "`ACTION <tool>: <input>` to call a tool (then wait for its Observation), or "
          "`FINAL: <answer>`.\nExample:\nQuestion: What is the population of Avalon plus 10?\n"
          "ACTION population: Avalon\nObservation: 1200\nACTION calculator: 1200 + 10\n"
          "Observation: 1210\nFINAL: 1210")
TOOL_DOCS = {
    "population": "population of a town",
    "calculator": "evaluates arithmetic",
}


def population(town: str) -> str:
    """The population of a (fictional) town, or a message saying it is unknown."""
    value = FACTS.get(town.strip().strip("'\"").lower())
    return str(value) if value is not None else f"unknown town {town!r}; known: {sorted(FACTS)}"


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.USub: operator.neg}


def calculator(expression: str) -> str:
    """+, -, *, / on numbers (nothing else is evaluated)."""
    def value(n: ast.AST) -> float:
        if isinstance(n, ast.Constant) and isinstance(n.value, int | float):
            return n.value
        if isinstance(n, ast.BinOp) and type(n.op) in _OPS:
            return _OPS[type(n.op)](value(n.left), value(n.right))
        if isinstance(n, ast.UnaryOp) and type(n.op) in _OPS:
            return _OPS[type(n.op)](value(n.operand))
        raise ValueError("only numbers and + - * / are allowed")

    try:
        result = value(ast.parse(expression.strip(), mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError) as exc:
        return f"error: {exc}"
    return f"{result:g}"


TOOLS = {"population": population, "calculator": calculator}


@bf.op
def act(reply: str) -> dict:
    """Read the model's reply: {"final": answer} or {"tool": name, "input": text}."""
    match = re.search(r"ACTION\s+(\w+)\s*:\s*(.+)", reply)
    if match:
        return {"tool": match.group(1).lower(), "input": match.group(2).strip()}
    final = re.search(r"FINAL\s*:\s*(.+)", reply)
    return {"final": (final.group(1) if final else reply).strip()}


@bf.op
def run_tool(action: dict) -> str:
    """Run the chosen tool on its input; an unknown tool's observation names the known ones."""
    tool = TOOLS.get(action["tool"])
    if tool is None:
        return f"unknown tool {action['tool']!r}; tools: {sorted(TOOLS)}"
    return tool(action["input"])


class ToolAgent(bf.Module):
    """Up to `max_turns` model calls; each tool result goes back as an observation."""

    def __init__(self, max_turns: int = 4) -> None:
        self.system = bf.param(SYSTEM, description="the agent's system prompt")
        self.tools = {name: bf.param(doc, description=f"the description of the {name} tool")
                      for name, doc in TOOL_DOCS.items()}
        self.max_turns = max_turns

    def forward(self, question: str) -> bf.Node:
        listing = "\n".join(f"- {name}: {{{name}}}" for name in self.tools)
        system = bf.format("{system}\n\nTools:\n" + listing, system=self.system, **self.tools)
        transcript = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        for _ in range(self.max_turns):
            reply = bf.chat(transcript, max_tokens=96, temperature=0.0)
            action = act(reply)
            if "final" in action.value:
                return action["final"]
            observation = run_tool(action)
            transcript += [{"role": "assistant", "content": reply},
                           {"role": "user", "content": bf.format("Observation: {o}", o=observation)}]
        return action.get("final", "(no answer within the turn limit)")


QUESTIONS = [
    ("What is the population of Avalon?", "1200"),
    ("How many people live in Camelot and Lilliput together?", "4890"),
    ("What is twice the population of Brigadoon?", "700"),
    ("How many more people live in Camelot than in Avalon?", "3600"),
    ("What is the population of Lilliput times 3?", "270"),
    ("What is the population of Brigadoon plus 50?", "400"),
]


def metric(example: tuple[str, str], output: str) -> bf.Feedback:
    numbers = re.findall(r"-?\d+(?:\.\d+)?", str(output).replace(",", ""))
    if numbers and float(numbers[-1]) == float(example[1]):
        return bf.Feedback(score=1.0, text="correct")
    return bf.Feedback(score=0.0, text=f"expected {example[1]}, the agent answered {output!r}")


if __name__ == "__main__":
    from _model import model_from_args

    llm, args = model_from_args(__doc__)
    agent = ToolAgent()
    train, test = QUESTIONS[:4], QUESTIONS[4:]
    with bf.llm.using(llm):  # the model bf.chat calls inside the agent
        bf.train(agent, train, metric=metric,
                 optimizer=bf.optim.Prime(agent.parameters(), llm=llm), steps=args.steps)
        scores = [metric(q, agent(q[0]).value).score for q in test]
    print(f"system prompt: {agent.system.value!r}")
    for name, doc in agent.tools.items():
        print(f"tool {name}: {doc.value!r}")
    print(f"test accuracy: {sum(scores) / len(scores):.2f}")
