"""`OpenAICompatible`: a small stdlib client for any server speaking /v1/chat/completions."""

from __future__ import annotations

import json
from typing import Any

from ._keys import redact
from .base import BaseLLM, Completion, LLMError, Message, Usage
from .errors import LLMTimeout, ServerError, from_status


def response_format(json_schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI `response_format` asking for output that matches `json_schema`."""
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": json_schema}}


class OpenAICompatible(BaseLLM):
    """Call `{api_base}/chat/completions` directly (e.g. `backfeed serve-model`, vLLM, Ollama).

    A raw backend: no cache, retries or limits; wrap it with `with_policies` for those.
    HTTP errors become `RateLimitError`/`ServerError` (with Retry-After) or `LLMError`.
    """

    def __init__(
        self,
        api_base: str,
        model: str = "local",
        *,
        api_key: str | None = None,
        timeout: float = 600.0,
        **options: Any,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.model = model
        self._api_key = api_key
        self.timeout = timeout
        self.options = options

    def cache_identity(self) -> dict[str, Any]:
        return {"backend": "openai-compatible", "model": self.model, "api_base": self.api_base,
                **self.options}

    def __repr__(self) -> str:
        return f"OpenAICompatible({self.api_base!r}, model={self.model!r})"

    def complete(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> Completion:
        import urllib.error
        import urllib.request

        body: dict[str, Any] = {"model": self.model, "messages": messages, **self.options}
        for name, value in (("max_tokens", max_tokens), ("temperature", temperature),
                            ("seed", seed)):
            if value is not None:
                body[name] = value
        if json_schema is not None:
            body["response_format"] = response_format(json_schema)
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(
            f"{self.api_base}/chat/completions", json.dumps(body).encode(), headers, method="POST"
        )
        secrets = [self._api_key or ""]
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode("utf-8", "replace")
            message = redact(f"HTTP {exc.code} from {self.api_base}: {detail}", secrets)
            raise from_status(exc.code, message, exc.headers) from None
        except TimeoutError as exc:
            raise LLMTimeout(f"no answer from {self.api_base} within {self.timeout}s") from exc
        except urllib.error.URLError as exc:
            raise ServerError(redact(f"cannot reach {self.api_base}: {exc.reason}", secrets)) from None
        try:
            text = payload["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"unexpected answer from {self.api_base}: {str(payload)[:300]}") from exc
        usage = payload.get("usage") or {}
        return Completion(
            text=text,
            usage=Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
            cost_usd=0.0,
            model=payload.get("model") or self.model,
            cached=False,
        )
