"""Prompt optimization on a Big-Bench-Hard-style task with known answers (object counting).

The instruction given to the model is the parameter; accuracy on held-out questions is the score.

    python examples/prompt_bbh.py [local | gpt-4o-mini] [--steps 3]
"""

import random
import re

from _model import model_from_args

import backfeed as bf

llm, args = model_from_args(__doc__)


def make_question(rng):
    fruits = rng.sample(["apple", "banana", "plum", "peach", "grape"], 3)
    counts = {f: rng.randint(1, 3) for f in fruits}
    listing = ", ".join(f"{n} {f}{'s' if n > 1 else ''}" for f, n in counts.items())
    return f"I have {listing}, and a violin. How many fruits do I have?", str(sum(counts.values()))


rng = random.Random(0)
questions = [make_question(rng) for _ in range(12)]
train, val, test = questions[:4], questions[4:8], questions[8:]


class Counter(bf.Module):
    def __init__(self):
        self.instruction = bf.param("Answer the question.", name="instruction",
                                    description="system prompt given before every question")

    def forward(self, question):
        # a traced model call: the optimizer sees the instruction, the question and the reply
        return bf.chat([{"role": "system", "content": self.instruction},
                        {"role": "user", "content": question}], max_tokens=128, temperature=0.0)


def metric(example, output):
    numbers = re.findall(r"\d+", output)  # the output's plain value
    got = numbers[-1] if numbers else None
    if got == example[1]:
        return bf.Feedback(score=1.0, text="correct")
    return bf.Feedback(score=0.0, text=f"wrong: expected {example[1]}, read {got!r} from the reply")


program = Counter()
with bf.llm.using(llm):  # the model bf.chat calls inside the program (its calls are spend too)
    bf.train(program, train, valset=val, metric=metric,
             optimizer=bf.optim.Prime(program.parameters(), llm=llm), steps=args.steps)
    accuracy = sum(metric(q, program(q[0]).value).score for q in test) / len(test)
print(f"instruction: {program.instruction.value!r}\ntest accuracy: {accuracy:.2f}")
