"""Errors a backend raises, sorted into those worth retrying and those that are not."""

from __future__ import annotations

import re
import time
from typing import Any

from .base import LLMError

_CONTEXT = re.compile(r"context.length|context.window|maximum context|too many tokens", re.I)


class TransientError(LLMError):
    """A failure that may pass if the call is repeated later: rate limit, timeout, 5xx.

    `retry_after` is the wait in seconds the server asked for (Retry-After), if it said.
    """

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RateLimitError(TransientError):
    """HTTP 429 or a provider's rate-limit error."""


class ServerError(TransientError):
    """HTTP 5xx, or the connection failed."""


class LLMTimeout(TransientError):
    """The call did not finish within its timeout."""


class ContextLengthError(LLMError):
    """HTTP 400 saying the prompt exceeds the model's context: not retried, since the same
    prompt fails again; the message says to lower the optimizer's `budget_tokens`."""


class AuthenticationError(LLMError):
    """HTTP 401/403: the key is wrong or lacks access. Not retried: repeating the call cannot
    help; the message says to check the key."""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def from_status(status: int, message: str, headers: Any = None) -> LLMError:
    """The error for an HTTP status: transient for 408, 409, 429 and 5xx, final otherwise."""
    retry_after = parse_retry_after(_header(headers, "retry-after"))
    if status == 429:
        return RateLimitError(message, status=status, retry_after=retry_after)
    if status in (408, 409) or status >= 500:
        return ServerError(message, status=status, retry_after=retry_after)
    if status == 400 and _CONTEXT.search(message):
        return ContextLengthError(f"{message} (give the optimizer a smaller budget_tokens)")
    if status in (401, 403):
        return AuthenticationError(f"{message} (check the API key and its access to the model)")
    return LLMError(message)


def classify(exc: BaseException) -> LLMError:
    """Map a foreign exception (a provider SDK's, a socket's) to an `LLMError` subclass."""
    if isinstance(exc, LLMError):
        return exc
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower():
        return LLMTimeout(message)
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if isinstance(status, int):
        return from_status(status, message, headers)
    name = type(exc).__name__.lower()
    if "contextwindowexceeded" in name:
        return ContextLengthError(f"{message} (give the optimizer a smaller budget_tokens)")
    if "authentication" in name or "permissiondenied" in name:
        return AuthenticationError(f"{message} (check the API key and its access to the model)")
    if "ratelimit" in name:
        return RateLimitError(message, retry_after=parse_retry_after(_header(headers, "retry-after")))
    if isinstance(exc, ConnectionError) or "connection" in name or "unavailable" in name:
        return ServerError(message)
    return LLMError(message)


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    try:
        value = headers.get(name)
        if value is None:
            value = headers.get(name.title())
    except AttributeError:
        return None
    return value
