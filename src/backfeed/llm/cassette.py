"""Record every exchange to a JSON-lines cassette, and replay a cassette with no backend."""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from pathlib import Path
from typing import Any

from ._keys import identity_of, public_options, request_key, request_record
from .base import LLM, BaseLLM, Completion, LLMError, Message, Usage
from .wrap import Wrapper


class CassetteMiss(LLMError):
    """`Replay` was asked a request its cassette does not hold (or holds fewer times)."""


def _request(messages: list[Message], options: dict[str, Any]) -> dict[str, Any]:
    record = request_record({}, messages, **options)
    record.pop("llm")
    return record


def _completion_to_dict(c: Completion) -> dict[str, Any]:
    return {
        "text": c.text,
        "prompt_tokens": c.usage.prompt_tokens,
        "completion_tokens": c.usage.completion_tokens,
        "cost_usd": c.cost_usd,
        "model": c.model,
        "cached": c.cached,
        **({"alternatives": list(c.alternatives)} if c.alternatives else {}),
    }


def _completion_from_dict(d: dict[str, Any]) -> Completion:
    return Completion(
        text=d["text"],
        usage=Usage(int(d.get("prompt_tokens", 0)), int(d.get("completion_tokens", 0))),
        cost_usd=float(d.get("cost_usd", 0.0)),
        model=d.get("model", ""),
        cached=bool(d.get("cached", False)),
        alternatives=tuple(d.get("alternatives", ())),
    )


class Recorder(Wrapper):
    """Pass calls through to `llm` and append each exchange to a JSON-lines cassette at `path`.

    Each line holds the backend identity (no credentials), the request and the completion.
    """

    def __init__(self, llm: LLM, path: str | os.PathLike[str]) -> None:
        super().__init__(llm)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _write(self, messages: list[Message], options: dict[str, Any], c: Completion) -> None:
        line = {
            "llm": public_options(identity_of(self.llm)),
            "request": _request(messages, options),
            "response": _completion_to_dict(c),
        }
        text = json.dumps(line, ensure_ascii=False, sort_keys=True, default=str)
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(text + "\n")

    def call(self, messages: list[Message], options: dict[str, Any]) -> Completion:
        completion = self.llm.complete(messages, **options)
        self._write(messages, options, completion)
        return completion

    async def acall(self, messages: list[Message], options: dict[str, Any]) -> Completion:
        completion = await self.llm.acomplete(messages, **options)
        self._write(messages, options, completion)
        return completion


class Replay(BaseLLM):
    """Answer from a cassette written by `Recorder`, with no backend at all.

    A request is matched on its messages and options; a request recorded several times is
    answered with its recorded completions in order. Anything else raises `CassetteMiss`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"cassette not found: {self.path}")
        self._answers: dict[str, deque[Completion]] = {}
        self.answers_n = False
        self._recorded: dict[str, int] = {}
        self._lock = threading.Lock()
        self.model = ""
        self._identity: dict[str, Any] = {}
        with self.path.open(encoding="utf-8") as f:
            for number, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    line = json.loads(raw)
                    key = request_key(line["request"])
                    completion = _completion_from_dict(line["response"])
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    raise ValueError(f"{self.path}:{number}: not a cassette line ({exc})") from exc
                self._answers.setdefault(key, deque()).append(completion)
                # a cassette recorded with several answers per request replays them the same way
                self.answers_n = self.answers_n or line["request"].get("n", 1) != 1
                self._recorded[key] = self._recorded.get(key, 0) + 1
                if not self.model:
                    self._identity = line.get("llm", {})
                    self.model = self._identity.get("model", completion.model)

    @property
    def remaining(self) -> int:
        """How many recorded answers have not been replayed yet."""
        with self._lock:
            return sum(len(q) for q in self._answers.values())

    def cache_identity(self) -> dict[str, Any]:
        return dict(self._identity) or {"backend": "replay", "model": self.model}

    def complete(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        n: int = 1,
    ) -> Completion:
        options: dict[str, Any] = {"json_schema": json_schema, "max_tokens": max_tokens,
                                   "temperature": temperature, "seed": seed}
        if n != 1:
            options["n"] = n
        key = request_key(_request(messages, options))
        with self._lock:
            queue = self._answers.get(key)
            if queue:
                return queue.popleft()
        last = messages[-1].get("content", "") if messages else ""
        if key in self._recorded:
            raise CassetteMiss(
                f"cassette {self.path} recorded this request {self._recorded[key]} time(s) and all "
                f"were replayed; it was asked once more. Last message: {last[:200]!r}"
            )
        raise CassetteMiss(
            f"cassette {self.path} has no recording of this request (options "
            f"{ {k: v for k, v in options.items() if v is not None} }). Last message: "
            f"{last[:200]!r}. Record it again with bf.llm.Recorder(llm, path)."
        )
