"""Few-shot demonstrations as a parameter: FewShot fills the `demos` list from the reviews the
program labelled right, keeps the demo set that validates best, and Prime rewrites the
instruction in the same steps.

    python examples/fewshot_demos.py [local | gpt-4o-mini] [--steps 3]
"""

from __future__ import annotations

import backfeed as bf

REVIEWS = [
    ("I loved this film, wonderful acting.", "pos"),
    ("Terrible plot and boring dialogue.", "neg"),
    ("Not bad at all, quite fun.", "pos"),
    ("I want my money back.", "neg"),
    ("A masterpiece from start to finish.", "pos"),
    ("The sound was broken and the story made no sense.", "neg"),
    ("My kids laughed the whole way through.", "pos"),
    ("Two hours I will never get back.", "neg"),
    ("Charming, warm and beautifully shot.", "pos"),
    ("The worst sequel of the decade.", "neg"),
    ("I would happily watch it again tomorrow.", "pos"),
    ("Dull, slow and far too long.", "neg"),
    ("An absolute delight for the whole family.", "pos"),
    ("I fell asleep halfway through.", "neg"),
    ("Clever writing and a great cast.", "pos"),
    ("Nothing works in this mess of a movie.", "neg"),
]


class Sentiment(bf.Module):
    def __init__(self) -> None:
        self.instruction = bf.param("Classify the review's sentiment. Reply pos or neg.",
                                    description="the system prompt")
        self.demos = bf.param([], description="solved examples shown before the review")

    def forward(self, review: str) -> bf.Node:
        return bf.chat([{"role": "system", "content": self.instruction}, self.demos,
                        {"role": "user", "content": review}], max_tokens=8, temperature=0.0)


def metric(example: tuple[str, str], output: str) -> bf.Feedback:
    got = output.strip().lower().rstrip(".")
    if got == example[1]:
        return bf.Feedback(score=1.0, text="correct")
    return bf.Feedback(score=0.0, text=f"expected exactly {example[1]!r}, got {output!r}")


def accuracy(program: Sentiment, data: list[tuple[str, str]]) -> float:
    return sum(metric(ex, program(ex[0]).value).score for ex in data) / len(data)


if __name__ == "__main__":
    from _model import model_from_args

    llm, args = model_from_args(__doc__)
    train, val, test = REVIEWS[:4], REVIEWS[4:8], REVIEWS[8:]
    program = Sentiment()
    with bf.llm.using(llm):  # the model bf.chat calls inside the program
        before = accuracy(program, test)
        bf.train(program, train, valset=val, metric=metric,
                 optimizer=bf.optim.FewShot(program.parameters(), llm=llm, k=3),
                 steps=args.steps)
        after = accuracy(program, test)
    print(f"instruction: {program.instruction.value!r}")
    print(f"demos: {[d['input'][:30] + ' -> ' + d['output'] for d in program.demos.value]}")
    print(f"test accuracy: {before:.2f} before, {after:.2f} after ({len(test)} reviews)")
