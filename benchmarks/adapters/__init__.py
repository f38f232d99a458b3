"""Adapters drive each optimizer library, through its public API, on a benchmark task.

Every adapter gets the same `RunContext`: the task, a fresh program, the optimizer's model
(a metered backfeed LLM: all libraries reach the same model through it, and it refuses calls
past the limit), and a metric that logs every score against the calls used so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import backfeed as bf
from backfeed.llm import LLM, Metered

from ..tasks import Example, Task

MINIBATCH = 2  # training examples per optimizer step, the same for every library


@dataclass
class ScoreLog:
    """Every metric evaluation during optimization: (optimizer calls so far, score)."""

    points: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class RunContext:
    """What an adapter may use: the task, the program, the model, the limit, the seed."""

    task: Task
    program: bf.Module
    llm: Metered  # the optimizer's model; raises bf.BudgetExceeded past `call_limit`
    call_limit: int
    seed: int
    max_tokens: int = 1024  # cap on each optimizer completion, the same for every library
    options: dict[str, str] = field(default_factory=dict)  # from `--frameworks name:key=value`
    log: ScoreLog = field(default_factory=ScoreLog)
    started: float = field(default_factory=time.perf_counter)
    # A library whose optimized program is its own (not `program`) sets how to run it on an
    # input; the harness then scores that on the test split.
    final_forward: Callable[[Any], Any] | None = None

    def metric(self, example: Example, output: Any) -> bf.Feedback:
        """The task's metric, logged against the optimizer calls made so far."""
        feedback = self.task.metric(example, output)
        self.log.points.append((self.llm.spend.calls, float(feedback.score or 0.0)))
        return feedback

    def check(self, example: Example) -> bf.Feedback:
        """Run the program on one example and score it (errors score 0), logged."""
        feedback = self.task.check(self.program, example)
        self.log.points.append((self.llm.spend.calls, float(feedback.score or 0.0)))
        return feedback

    def calls_left(self) -> int:
        return self.call_limit - self.llm.spend.calls


class Adapter(Protocol):
    """One optimizer library. `optimize` leaves `ctx.program` at the values it chose."""

    name: str

    def unsupported(self, task: Task) -> str | None:
        """Why this library cannot express the task (reported as n/a), or None."""
        ...

    def optimize(self, ctx: RunContext) -> None: ...


def set_values(program: bf.Module, values: dict[str, Any]) -> list[str]:
    """Set parameters by name; returns the reasons any value was refused (the old one stays)."""
    params = {p.name: p for p in program.parameters()}
    refused = []
    for name, value in values.items():
        if name not in params:
            refused.append(f"unknown parameter {name!r}")
            continue
        try:
            params[name].value = coerce(params[name], value)
        except (TypeError, ValueError) as exc:
            refused.append(str(exc))
    return refused


def coerce(param: bf.Param, value: Any) -> Any:
    """A peer's value (often text) as the parameter's type, or the error saying why not."""
    import json

    if param.kind in ("str", "code") or not isinstance(value, str):
        return value
    text = value.strip()
    if param.kind == "bool" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if param.kind in ("int", "float"):
        number = float(text)
        if param.kind == "int":
            if number != int(number):
                raise ValueError(f"parameter {param.name!r} is int; got {text!r}")
            return int(number)
        return number
    return json.loads(text)


def values_of(program: bf.Module) -> dict[str, Any]:
    """{parameter name: value} of a program."""
    return {p.name: p.value for p in program.parameters()}


def text_of(value: Any) -> str:
    """A parameter value as text for text-only libraries (JSON for non-strings)."""
    import json

    return value if isinstance(value, str) else json.dumps(value)


class ChatShim:
    """An OpenAI-style chat callable over a backfeed LLM, for libraries that want one.

    `shim(messages=[...], max_tokens=..., response_format=...)` returns an object with
    `.choices[0].message.content` and `.usage`, so the call goes through the shared meter.
    """

    def __init__(self, llm: LLM, max_tokens: int) -> None:
        self.llm = llm
        self.max_tokens = max_tokens

    def __call__(self, messages: list[dict[str, Any]], max_tokens: int | None = None,
                 response_format: dict[str, Any] | None = None, **_: Any) -> Any:
        from types import SimpleNamespace

        schema = None
        if response_format and response_format.get("type") == "json_object":
            schema = {"type": "object"}
        completion = self.llm.complete(
            [{"role": m["role"], "content": _content(m.get("content"))} for m in messages],
            json_schema=schema,
            max_tokens=min(max_tokens or self.max_tokens, self.max_tokens),
            temperature=0.0,
        )
        message = SimpleNamespace(content=completion.text, role="assistant")
        usage = SimpleNamespace(prompt_tokens=completion.usage.prompt_tokens,
                                completion_tokens=completion.usage.completion_tokens,
                                total_tokens=completion.usage.total_tokens)
        return SimpleNamespace(choices=[SimpleNamespace(message=message, finish_reason="stop")],
                               usage=usage, model=completion.model)


def _content(content: Any) -> str:
    if isinstance(content, list):  # OpenAI content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


ADAPTERS = ("backfeed", "trace", "textgrad", "dspy", "gepa")


def split_framework(spec: str) -> tuple[str, dict[str, str]]:
    """`backfeed:candidates=4` -> ("backfeed", {"candidates": "4"}); a plain name has none."""
    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, rest.split(":")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"framework option {item!r} in {spec!r} is not key=value")
        options[key] = value
    return name, options


def get_adapter(name: str) -> Adapter:
    """The adapter for a library name (its module is imported only now); options after a
    colon (`backfeed:candidates=4`) are the run's, not the adapter's."""
    import importlib

    name, options = split_framework(name)
    if name not in ADAPTERS:
        raise KeyError(f"unknown framework {name!r}; known: {list(ADAPTERS)}")
    adapter = importlib.import_module(f"{__name__}.{name}_adapter").ADAPTER
    unknown = sorted(set(options) - set(getattr(adapter, "options", ())))
    if unknown:
        raise ValueError(f"{name} takes no option {', '.join(unknown)}; it takes "
                         f"{list(getattr(adapter, 'options', ())) or 'none'}")
    return adapter


__all__ = ["ADAPTERS", "Adapter", "ChatShim", "RunContext", "ScoreLog", "get_adapter",
           "set_values", "split_framework", "values_of"]
