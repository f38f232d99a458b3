"""Retries against a real HTTP server on 127.0.0.1 answering 429 and 500 before 200."""

import asyncio
import email.utils
import time

import pytest

from _llm_http import FakeOpenAI, Reply
from backfeed.llm import (
    LLMError,
    LLMTimeout,
    OpenAICompatible,
    RateLimitError,
    Retrying,
    ServerError,
)
from backfeed.llm.errors import classify, parse_retry_after

MSG = [{"role": "user", "content": "hi"}]


def test_429_with_retry_after_then_500_then_200_succeeds_and_honours_the_wait():
    replies = [Reply(429, {"Retry-After": "1"}), Reply(500), Reply(200, text="finally")]
    with FakeOpenAI(replies) as server:
        llm = Retrying(OpenAICompatible(server.url, "m"), base_delay=0.05, max_delay=0.1)
        answer = llm.complete(MSG)
    assert answer.text == "finally"
    assert len(server.seen) == 3
    assert llm.waits[0] >= 1.0  # Retry-After beats the 0.05 s backoff
    assert server.seen[1].time - server.seen[0].time >= 1.0
    assert llm.waits[1] <= 0.1  # plain exponential backoff with jitter after the 500


def test_gives_up_after_max_retries_with_a_clear_error():
    with FakeOpenAI([Reply(503)] * 3) as server:
        llm = Retrying(OpenAICompatible(server.url, "m"), max_retries=2, base_delay=0.01)
        with pytest.raises(LLMError, match="failed after 3 attempt"):
            llm.complete(MSG)
        assert len(server.seen) == 3


def test_client_errors_are_not_retried():
    with FakeOpenAI([Reply(400)]) as server:
        llm = Retrying(OpenAICompatible(server.url, "m"), base_delay=0.01)
        with pytest.raises(LLMError, match="HTTP 400") as info:
            llm.complete(MSG)
        assert not isinstance(info.value, RateLimitError | ServerError)
        assert len(server.seen) == 1


def test_per_call_timeout_then_retry_succeeds():
    with FakeOpenAI([Reply(200, text="slow", delay=1.5), Reply(200, text="fast")]) as server:
        llm = Retrying(OpenAICompatible(server.url, "m"), timeout=0.3, base_delay=0.01)
        assert llm.complete(MSG).text == "fast"
        no_retry = Retrying(OpenAICompatible(server.url, "m"), timeout=0.3, max_retries=0)
        server.replies.append(Reply(200, delay=1.5))
        with pytest.raises(LLMError, match=r"within 0.3s"):
            no_retry.complete(MSG)


def test_async_retries_with_backoff():
    replies = [Reply(429, {"Retry-After": "0"}), Reply(502), Reply(200, text="ok async")]
    with FakeOpenAI(replies) as server:
        llm = Retrying(OpenAICompatible(server.url, "m"), base_delay=0.01)
        assert asyncio.run(llm.acomplete(MSG)).text == "ok async"
        assert len(server.seen) == 3


def test_exponential_backoff_with_jitter_grows_and_is_capped():
    llm = Retrying(OpenAICompatible("http://127.0.0.1:1/v1"), base_delay=1.0, max_delay=5.0)
    error = ServerError("x")
    for attempt, full in enumerate([1, 2, 4, 5, 5]):
        waits = {llm.delay(attempt, error) for _ in range(20)}
        assert all(full / 2 <= w <= full for w in waits)
        assert len(waits) > 1  # jittered


def test_retry_after_header_forms():
    assert parse_retry_after("3") == 3.0
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after(future) <= 31
    assert parse_retry_after("soon") is None


def test_foreign_errors_are_classified():
    class RateLimit(Exception):
        status_code = 429

    assert isinstance(classify(RateLimit()), RateLimitError)
    assert isinstance(classify(TimeoutError()), LLMTimeout)
    assert isinstance(classify(ConnectionError()), ServerError)
    assert not isinstance(classify(ValueError()), RateLimitError | ServerError | LLMTimeout)


def test_unreachable_server_is_a_transient_error():
    with pytest.raises(ServerError, match="cannot reach"):
        OpenAICompatible("http://127.0.0.1:9/v1", timeout=2).complete(MSG)


def test_api_key_is_sent_but_never_in_errors():
    with FakeOpenAI([Reply(401)]) as server:
        llm = OpenAICompatible(server.url, "m", api_key="sk-secret-123")
        with pytest.raises(LLMError) as info:
            llm.complete(MSG)
        assert server.seen[0].headers["authorization"] == "Bearer sk-secret-123"
        assert "sk-secret-123" not in str(info.value)
        assert "sk-secret-123" not in repr(llm)
