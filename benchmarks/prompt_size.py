"""Prompt tokens per optimizer step: Prime (with a token budget) vs Trace's OptoPrime.

Same graphs for both: chains y = x + 1 + ... + 1 of N ops (N = 10, 100, 1,000) and a small
agent-like graph (route -> retrieve -> build prompt -> answer -> parse, over 3 questions,
with a text, an int and a code parameter). Both optimizers get a fake model that records the
prompt; tokens are estimated the same way for both (4 characters a token).

Run: PYTHONPATH=src python benchmarks/prompt_size.py   (needs `pip install 'backfeed[bench]'`)
"""

from __future__ import annotations

import json
import platform
import sys
import warnings
from pathlib import Path

import backfeed as bf
from backfeed._tokens import estimate_tokens

BUDGET = 4000
SIZES = (10, 100, 1000)
RESULTS = Path(__file__).parent / "results"


def prompt_tokens(messages: list[dict]) -> int:
    return sum(estimate_tokens(m["content"]) for m in messages)


# -- backfeed -------------------------------------------------------------------------------

def prime_prompt(build) -> int:
    params, output = build()
    output.backward("the output should be 0")
    llm = bf.llm.Scripted(['{"reasoning": "", "suggestion": {}, "stop": false}'])
    bf.optim.Prime(params, llm=llm, budget_tokens=BUDGET).step()
    return prompt_tokens(llm.calls[0].messages)


def bf_chain(n: int):
    def build():
        x = bf.param(1.0, name="x", description="the input")
        y = x
        for _ in range(n):
            y = y + 1
        return [x], y

    return build


def bf_agent():
    @bf.op
    def retrieve(question: str, k: int) -> list:
        """Return the k documents most relevant to the question."""
        return [f"doc about {question.split()[-1]} #{i}" for i in range(k)]

    @bf.op(trainable=True)
    def route(question: str) -> str:
        """Pick the tool for a question."""
        return "search" if "?" in question else "calculator"

    @bf.op
    def build_prompt(system: str, tool: str, docs: list, question: str) -> str:
        """Assemble the model prompt."""
        return f"{system}\nTool: {tool}\nDocs: {'; '.join(docs)}\nQ: {question}"

    @bf.op
    def answer(prompt: str) -> str:
        """The model's answer (fixed here)."""
        return "Paris" if "capital" in prompt else "42"

    @bf.op
    def parse(text: str) -> str:
        """Normalise the answer."""
        return text.strip().lower()

    def build():
        system = bf.param("You are a helpful assistant. Answer in one word.", name="system_prompt")
        k = bf.param(3, name="k", bounds=(1, 10))
        outputs = []
        for q in ("What is the capital of France?", "Add 40 and 2", "Who wrote Hamlet?"):
            docs = retrieve(q, k)
            tool = route(q)
            outputs.append(parse(answer(build_prompt(system, tool, docs, q))))
        final = bf.format("{a} | {b} | {c}", a=outputs[0], b=outputs[1], c=outputs[2])
        return [system, k, route.code], final

    return build


# -- Trace (opto) ------------------------------------------------------------------------------

def opto_prompt(build) -> int:
    from opto.optimizers import OptoPrime
    from opto.utils.llm import AbstractModel

    seen: list[list[dict]] = []

    from types import SimpleNamespace

    reply = '{"reasoning": "", "answer": "", "suggestion": {}}'

    def fake(messages, **kwargs):
        seen.append(messages)
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=reply))])

    params, output = build()
    optimizer = OptoPrime(params, llm=AbstractModel(lambda: fake))
    optimizer.zero_feedback()
    optimizer.backward(output, "the output should be 0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer.step()
    return prompt_tokens(seen[0])


def opto_chain(n: int):
    def build():
        from opto.trace import node

        x = node(1.0, trainable=True, name="x", description="the input")
        y = x
        for _ in range(n):
            y = y + 1
        return [x], y

    return build


def opto_agent():
    from opto.trace import bundle, node

    @bundle()
    def retrieve(question, k):
        """Return the k documents most relevant to the question."""
        return [f"doc about {question.split()[-1]} #{i}" for i in range(k)]

    @bundle(trainable=True)
    def route(question):
        """Pick the tool for a question."""
        return "search" if "?" in question else "calculator"

    @bundle()
    def build_prompt(system, tool, docs, question):
        """Assemble the model prompt."""
        return f"{system}\nTool: {tool}\nDocs: {'; '.join(docs)}\nQ: {question}"

    @bundle()
    def answer(prompt):
        """The model's answer (fixed here)."""
        return "Paris" if "capital" in prompt else "42"

    @bundle()
    def parse(text):
        """Normalise the answer."""
        return text.strip().lower()

    @bundle()
    def join(a, b, c):
        """Join the three answers."""
        return f"{a} | {b} | {c}"

    def build():
        system = node("You are a helpful assistant. Answer in one word.", trainable=True,
                      name="system_prompt")
        k = node(3, trainable=True, name="k")
        outputs = []
        for q in ("What is the capital of France?", "Add 40 and 2", "Who wrote Hamlet?"):
            docs = retrieve(q, k)
            tool = route(q)
            outputs.append(parse(answer(build_prompt(system, tool, docs, q))))
        return [system, k, route.parameter], join(*outputs)

    return build


def main() -> None:
    rows = []
    cases = [(f"chain N={n}", bf_chain(n), opto_chain(n)) for n in SIZES]
    cases.append(("agent (3 questions, 16 ops)", bf_agent(), opto_agent()))
    for label, bf_build, opto_build in cases:
        prime = prime_prompt(bf_build)
        try:
            opto = opto_prompt(opto_build)
        except ImportError:
            opto = None
        rows.append({"graph": label, "prime_tokens": prime, "optoprime_tokens": opto,
                     "budget": BUDGET, "within_budget": prime <= BUDGET})
    print(f"| graph | Prime (budget {BUDGET:,}) | OptoPrime | Prime within budget |")
    print("|---|---|---|---|")
    for r in rows:
        opto = "n/a" if r["optoprime_tokens"] is None else f"{r['optoprime_tokens']:,}"
        print(f"| {r['graph']} | {r['prime_tokens']:,} | {opto} | "
              f"{'yes' if r['within_budget'] else 'NO'} |")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "prompt_size.json"
    out.write_text(json.dumps({"rows": rows, "python": sys.version.split()[0],
                               "machine": platform.machine()}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
