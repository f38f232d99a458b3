"""A program whose one model call is `bf.chat` with a trainable system prompt: shared by the
tests of bf.chat and of bf.train(..., program_llm=)."""

from __future__ import annotations

import backfeed as bf


class Echo(bf.Module):
    """The system prompt (the parameter `prompt`) and the example's word, sent to the model."""

    def __init__(self, prompt: str = "Reply with the word.") -> None:
        self.prompt = bf.param(prompt, name="prompt")

    def forward(self, word):
        return bf.chat([{"role": "system", "content": self.prompt},
                        {"role": "user", "content": word}])
