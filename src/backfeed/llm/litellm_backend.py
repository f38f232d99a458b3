"""`LiteLLM`: every provider litellm reaches, imported on first use and kept offline on import."""

from __future__ import annotations

import functools
import logging
import os
import threading
from typing import Any

from ._keys import public_options, redact, secret_values
from .base import BaseLLM, Completion, LLMError, Message, Usage
from .errors import ServerError, classify
from .openai_compat import response_format
from .policies import CacheSetting, with_policies
from .wrap import DEFAULT_OUTPUT_CAP

_import_lock = threading.Lock()


def import_litellm() -> Any:
    """Import litellm configured so that the import makes no network call.

    litellm otherwise fetches its model price list from the web at import; the bundled copy
    is used instead. Telemetry and its own retries are turned off (backfeed retries).
    """
    with _import_lock:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
        try:
            import litellm
        except ImportError as exc:
            raise LLMError(
                "bf.llm.LiteLLM needs litellm: pip install 'backfeed[litellm]'"
            ) from exc
        litellm.telemetry = False
        litellm.suppress_debug_info = True
        for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
            logger = logging.getLogger(name)
            if _redacting not in logger.filters:
                logger.addFilter(_redacting)
        return litellm


@functools.lru_cache(maxsize=64)
def _model_output_tokens(model: str) -> int | None:
    """litellm's max output tokens for `model` (None when its model info does not say)."""
    litellm = import_litellm()
    try:
        info = litellm.get_model_info(model)
    except Exception:  # a model litellm has not mapped
        return None
    found = info.get("max_output_tokens") or info.get("max_tokens")
    return int(found) if found else None


class _Redacting(logging.Filter):
    """Takes the keys out of litellm's own log records (its debug log prints raw responses,
    and a server may echo the key it was sent)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, sorted(self.secrets))
        if clean != message:
            record.msg, record.args = clean, ()
        return True


_redacting = _Redacting()


class _RawLiteLLM(BaseLLM):
    """One litellm call per request, errors mapped to backfeed's."""

    def __init__(self, owner: LiteLLM) -> None:
        self.owner = owner
        self.model = owner.model

    def cache_identity(self) -> dict[str, Any]:
        return self.owner.cache_identity()

    answers_n = True

    def _kwargs(self, messages: list[Message], json_schema: dict[str, Any] | None,
                max_tokens: int | None, temperature: float | None, seed: int | None,
                n: int = 1) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages,
                                  "num_retries": 0, **self.owner.options}
        if max_tokens is not None:
            max_tokens = min(max_tokens, self.owner.max_output_tokens()[0])
        if n != 1:
            kwargs["n"] = n  # one request, the prompt billed once
        for name, value in (("max_tokens", max_tokens), ("temperature", temperature),
                            ("seed", seed), ("timeout", self.owner.timeout)):
            if value is not None:
                kwargs[name] = value
        if json_schema is not None:
            kwargs["response_format"] = response_format(json_schema)
        return kwargs

    def _completion(self, litellm: Any, response: Any) -> Completion:
        if not getattr(response, "choices", None):  # a provider hiccup: worth another attempt
            raise ServerError(f"{self.model} answered with no choices")
        text = response.choices[0].message.content or ""
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        generated = int(getattr(usage, "completion_tokens", 0) or 0)
        cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
        if cost is None:
            try:
                cost = litellm.completion_cost(completion_response=response)
            except Exception:  # unknown model in litellm's price list: its cost is unknown
                cost = 0.0
        more = tuple(choice.message.content or "" for choice in response.choices[1:])
        return Completion(text, Usage(prompt, generated), float(cost or 0.0),
                          getattr(response, "model", None) or self.model, cached=False,
                          alternatives=more)

    def _error(self, exc: Exception) -> LLMError:
        error = classify(exc)
        error.args = (redact(str(error), self.owner._secrets),)
        return error

    def complete(self, messages: list[Message], *, json_schema: dict[str, Any] | None = None,
                 max_tokens: int | None = None, temperature: float | None = None,
                 seed: int | None = None, n: int = 1) -> Completion:
        litellm = import_litellm()
        kwargs = self._kwargs(messages, json_schema, max_tokens, temperature, seed, n)
        try:
            response = litellm.completion(**kwargs)
        except Exception as exc:
            raise self._error(exc) from None
        return self._completion(litellm, response)

    async def acomplete(self, messages: list[Message], *, json_schema: dict[str, Any] | None = None,
                        max_tokens: int | None = None, temperature: float | None = None,
                        seed: int | None = None, n: int = 1) -> Completion:
        litellm = import_litellm()
        kwargs = self._kwargs(messages, json_schema, max_tokens, temperature, seed, n)
        try:
            response = await litellm.acompletion(**kwargs)
        except Exception as exc:
            raise self._error(exc) from None
        return self._completion(litellm, response)


class LiteLLM(BaseLLM):
    """Any model litellm reaches: "gpt-4o-mini", "anthropic/claude-3-5-haiku-latest",
    "ollama/qwen2.5", or "openai/<name>" with `api_base="http://127.0.0.1:8080/v1"`.

    Extra keyword options (api_base, api_key, top_p, ...) go to `litellm.completion`.
    Cache, retries and limits are on as in `with_policies` (cache=False turns the cache off).
    Credentials (api_key, headers) never reach the cache key, cassettes or error messages.

    `timeout` is how long the server may stay silent (to connect, or between two pieces of the
    answer); the attempt then fails and is retried. An answer that keeps arriving is read to
    its end however long it takes: the provider bills it either way, and abandoning it to send
    the request again would pay for it twice.
    """

    def __init__(
        self,
        model: str,
        *,
        cache: CacheSetting = True,
        max_retries: int = 4,
        timeout: float | None = None,
        max_in_flight: int | None = None,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        max_output_tokens: int | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"LiteLLM needs a model name such as 'gpt-4o-mini', got {model!r}")
        if max_output_tokens is not None and max_output_tokens < 1:
            raise ValueError(f"max_output_tokens must be at least 1, got {max_output_tokens}")
        self.model = model
        self._output_cap = max_output_tokens
        self.options = options
        self.timeout = timeout
        self._secrets = secret_values(options)
        _redacting.secrets.update(self._secrets)
        # The timeout is the transport's (litellm's HTTP client, per read), not a bound on the
        # whole call that would abandon a slow answer still arriving.
        self._chain = with_policies(
            _RawLiteLLM(self), cache=cache, max_retries=max_retries, timeout=None,
            max_in_flight=max_in_flight, requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
        )

    def cache_identity(self) -> dict[str, Any]:
        return {"backend": "litellm", "model": self.model, **public_options(self.options)}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in public_options(self.options).items())
        return f"LiteLLM({self.model!r}{', ' + shown if shown else ''})"

    answers_n = True  # `n=k`: one request, k answers (the prompt billed once)

    def max_output_tokens(self) -> tuple[int, str]:
        """The most completion tokens a request asks for, and where that number comes from:
        `max_output_tokens=` when given, else litellm's model info, else backfeed's default
        cap. Every request's `max_tokens` is lowered to it."""
        if self._output_cap is not None:
            return self._output_cap, f"LiteLLM(max_output_tokens={self._output_cap})"
        known = _model_output_tokens(self.model)
        if known is not None:
            return known, f"litellm's model info for {self.model}"
        return DEFAULT_OUTPUT_CAP, (f"backfeed's default cap of {DEFAULT_OUTPUT_CAP:,} (litellm "
                                    f"has no model info for {self.model})")

    def complete(self, messages: list[Message], *, json_schema: dict[str, Any] | None = None,
                 max_tokens: int | None = None, temperature: float | None = None,
                 seed: int | None = None, n: int = 1) -> Completion:
        import_litellm()  # outside the per-attempt timeout: a slow first import is not a timeout
        return self._chain.complete(messages, json_schema=json_schema, max_tokens=max_tokens,
                                    temperature=temperature, seed=seed, n=n)

    async def acomplete(self, messages: list[Message], *, json_schema: dict[str, Any] | None = None,
                        max_tokens: int | None = None, temperature: float | None = None,
                        seed: int | None = None, n: int = 1) -> Completion:
        import_litellm()
        return await self._chain.acomplete(messages, json_schema=json_schema,
                                           max_tokens=max_tokens, temperature=temperature,
                                           seed=seed, n=n)
