"""Verbalized machine learning: the model is a text the LLM follows; training rewrites the text.

    python examples/verbalized_ml.py [local | gpt-4o-mini] [--steps 3]
"""

import re

from _model import model_from_args

import backfeed as bf

llm, args = model_from_args(__doc__)
data = [(x, 3 * x - 2) for x in range(-6, 7)]  # the hidden rule: y = 3x - 2
train, val, test = data[::3], data[1::3], data[2::3]


class VerbalRegressor(bf.Module):
    def __init__(self):
        self.theta = bf.param("Predict y as a number close to x.", name="model_description",
                              description="how to compute y from x (the model's parameters)")

    def forward(self, x):
        system = bf.format("You are a model: {theta}\nReply with y only.", theta=self.theta)
        return bf.chat([{"role": "system", "content": system},
                        {"role": "user", "content": f"x = {x}"}], max_tokens=32, temperature=0.0)


def metric(example, output):
    x, y = example
    found = re.findall(r"-?\d+(?:\.\d+)?", output)  # the output's plain value
    if not found:
        return bf.Feedback(score=0.0, text=f"x={x}: no number in {output!r}; y should be {y}")
    guess = float(found[-1])
    return bf.Feedback(score=1 / (1 + abs(guess - y)), text=f"x={x}: predicted {guess:g}, y is {y}")


model = VerbalRegressor()
with bf.llm.using(llm):  # the model bf.chat calls inside the program (its calls are spend too)
    bf.train(model, train, valset=val, metric=metric,
             optimizer=bf.optim.Prime(model.parameters(), llm=llm), steps=args.steps)
    print(model.theta.value)
    print("test score:", sum(metric(e, model(e[0]).value).score for e in test) / len(test))
