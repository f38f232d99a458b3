"""A recorded app as a program to optimize: the system prompt found in its traces becomes a
text parameter, its recorded user turns the training data, each with the recorded output and
feedback for the metric to read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..example import Example
from ..graph import Module, param
from ..program import chat


class RecordedApp(Module):
    """The app's model call, replayed: `forward(input)` sends the system prompt (a trainable
    text parameter, `system_prompt`) and the user turn through `bf.chat`, to the model of an
    enclosing `bf.llm.using` block or `bf.train(..., program_llm=...)` (the app's own model
    behind `backfeed serve-model` or litellm, or any other). Export the result with
    `backfeed export RUN --to files`: `system_prompt.txt` is what the app loads."""

    def __init__(self, system: str, *, description: str = "") -> None:
        self.system_prompt = param(
            system, name="system_prompt",
            description=description or "the system prompt of the deployed app's model call")

    def forward(self, input: str) -> Any:
        return chat([{"role": "system", "content": self.system_prompt},
                     {"role": "user", "content": input}])


def recorded_app(records: Iterable[dict[str, Any]], *, system: str | None = None
                 ) -> tuple[RecordedApp, list[Example]]:
    """(the app as a program, its recorded calls as examples) from `backfeed ingest` records.

    The system prompt is `system`, else the one most records used; only records with that
    prompt and a user turn become examples. Each example's input is `input`; its labels are
    the recorded `output`, `score`, `label` and `feedback`, which a metric may read (e.g. to
    keep what users liked); the program sees only the input."""
    found = [r for r in records if r.get("input")]
    if not found:
        raise ValueError("no record has a user turn: ingest spans that capture message "
                         "content (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true)")
    prompts = Counter(r.get("system") or "" for r in found)
    chosen = system if system is not None else prompts.most_common(1)[0][0]
    used = [r for r in found if (r.get("system") or "") == chosen]
    if not used:
        raise ValueError(f"no record used the system prompt {chosen[:60]!r}; the traces hold "
                         f"{len(prompts)} other(s)")
    examples = [Example(input=r["input"], recorded_output=r.get("output"),
                        score=r.get("score"), label=r.get("label"),
                        feedback=r.get("feedback")).with_inputs("input") for r in used]
    return RecordedApp(chosen), examples
