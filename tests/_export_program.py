"""A small program for the export and eval tests (loaded by `backfeed eval` as a file)."""

import backfeed as bf


class Shouter(bf.Module):
    def __init__(self):
        self.prompt = bf.param("say it", name="prompt")
        self.gain = bf.param(1.0, name="gain")
        self.config = bf.param({"suffix": "!"}, name="config")

    @bf.op(trainable=True)
    def shout(self, word: str, prompt: str) -> str:
        return word.upper() if "LOUD" in prompt else word

    def forward(self, word):
        return self.shout(word, self.prompt)


DATA = [("a", "A"), ("b", "B"), ("c", "C")]


def metric(example, output):
    return float(output == example[1])
