"""What identifies a request (for the cache and cassettes), with secrets left out."""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

from .base import Message

# Option names whose values are credentials or carry them (headers hold Authorization). Matched
# on whole words of snake_case names, so max_tokens or key_prefix-free names stay public.
_SECRET_NAME = re.compile(
    r"(^|_)(api_?key|key|token|secret|password|passwd|auth|authorization|headers?|"
    r"credentials?|cookies?)($|_)",
    re.I,
)


def is_secret_option(name: str) -> bool:
    """True for option names that hold credentials: api_key, extra_headers, aws_secret..."""
    return bool(_SECRET_NAME.search(name))


def public_options(options: dict[str, Any]) -> dict[str, Any]:
    """`options` without credentials and without unset (None) values."""
    return {k: v for k, v in options.items() if v is not None and not is_secret_option(k)}


def identity_of(llm: Any) -> dict[str, Any]:
    """What distinguishes a backend's answers: its `cache_identity()`, else its class and model."""
    method = getattr(llm, "cache_identity", None)
    if callable(method):
        return method()
    return {"backend": type(llm).__name__, "model": getattr(llm, "model", "")}


def request_record(
    identity: dict[str, Any],
    messages: list[Message],
    *,
    json_schema: dict[str, Any] | None,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
    n: int = 1,
) -> dict[str, Any]:
    """The full, secret-free description of a request: backend identity, messages and options
    (`n` only when several answers are asked for, so one-answer keys stay as they were)."""
    record = {
        "llm": public_options(identity),
        "messages": [{"role": m.get("role", ""), "content": m.get("content", "")} for m in messages],
        "json_schema": json_schema,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "seed": seed,
    }
    if n != 1:
        record["n"] = n
    return record


def request_key(record: dict[str, Any]) -> str:
    """A stable sha256 of a request record."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def secret_values(options: dict[str, Any]) -> list[str]:
    """Every credential in `options`: the values of secret-named options, and of the headers
    or nested settings they hold (extra_headers={"x-goog-api-key": ...})."""
    found: list[str] = []

    def leaves(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                leaves(item)
        elif isinstance(value, list | tuple):
            for item in value:
                leaves(item)
        elif value:
            found.append(str(value))
            if isinstance(value, str) and value.lower().startswith("bearer "):
                found.append(value[7:])

    for name, value in options.items():
        if is_secret_option(name):
            leaves(value)
    return found


def env_secrets() -> list[str]:
    """Values of environment variables named like credentials (OPENAI_API_KEY, HF_TOKEN...):
    a provider SDK reads them without backfeed seeing them, and an error may echo them."""
    return [v for k, v in os.environ.items() if len(v) >= 8 and is_secret_option(k)]


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every secret value, and every credential from the environment, as ***."""
    for secret in [*secrets, *env_secrets()]:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
