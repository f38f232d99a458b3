"""Numerical optimization (as in the Trace paper): find the input that makes a graph hit a target.

    python examples/numeric.py            # embedded local model
    python examples/numeric.py gpt-4o-mini
"""

from _model import model_from_args

import backfeed as bf

llm, args = model_from_args(__doc__)


class Graph(bf.Module):
    def __init__(self):
        # The one trainable value. Its name is how the optimizer refers to it.
        self.x = bf.param(0.0, name="x", description="input of the computation")

    def forward(self, _):
        # Plain arithmetic on a parameter is traced: the optimizer sees every step.
        a = self.x * 3 - 4
        b = abs(a) + self.x / 2
        return b - 7


target = 12.5  # reached at x = 6 (and at another x)


def metric(example, output):
    y = output  # the trainer passes the output's plain value
    error = abs(y - target)
    side = "too large" if y > target else "too small"
    return bf.Feedback(score=1 / (1 + error), text=f"output {y:g} is {side}; target {target:g}")


program = Graph()
data = [("run", target)]  # one example: the trainer calls program("run")
result = bf.train(program, data, valset=data, metric=metric,
                  optimizer=bf.optim.Prime(program.parameters(), llm=llm),
                  budget=bf.Budget(llm_calls=args.calls))
print("x =", program.x.value, "->", program(None).value, "target", target)
