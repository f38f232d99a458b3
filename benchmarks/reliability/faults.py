"""A fault-injecting OpenAI-compatible server on 127.0.0.1 (starlette + uvicorn, in a thread).

Each POST /v1/chat/completions is either answered by the `brain` (a function of the request
body) or fails with one of `FAULTS`, chosen by the `plan` (request number, body) -> fault name
or None. The server counts what it delivered, so a run's "calls paid twice" is measurable.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CONTEXT_ERROR = ("This model's maximum context length is 8192 tokens. However, your messages "
                 "resulted in 9001 tokens. Please reduce the length of the messages.")

FAULTS: dict[str, str] = {
    "429-retry-after": "429 with Retry-After: 1",
    "429": "429 without Retry-After",
    "500": "500 Internal Server Error",
    "503": "503 Service Unavailable",
    "timeout": "no answer (the server holds the request)",
    "reset": "connection closed halfway through a 200 body",
    "malformed": "200 with a body that is not JSON",
    "empty-choices": "200 with an empty `choices` list",
    "401": "401 invalid API key",
    "400-context": "400 context length exceeded",
    "slow-stream": "200 whose body trickles in over several seconds",
}
TRANSIENT = ("429-retry-after", "429", "500", "503", "timeout", "reset", "malformed",
             "empty-choices", "slow-stream")

Brain = Callable[[dict[str, Any]], str]
Plan = Callable[[int, dict[str, Any]], str | None]


def request_hash(body: dict[str, Any]) -> str:
    """What a provider bills for: the model, messages and sampling options."""
    keep = {k: body.get(k) for k in ("model", "messages", "max_tokens", "temperature", "seed",
                                      "response_format")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def completion_body(text: str, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fault", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
    }


@dataclass
class Log:
    """What the server saw and did: every request's fault (or None) and every full answer."""

    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (hash, fault)
    delivered: Counter[str] = field(default_factory=Counter)  # hash -> complete 200 answers

    @property
    def faults(self) -> int:
        return sum(1 for _, f in self.requests if f)

    @property
    def paid_twice(self) -> int:
        """Complete answers delivered for a request that had been answered before."""
        return sum(n - 1 for n in self.delivered.values() if n > 1)


class FaultServer:
    """Serve `brain` answers with `plan`'s faults; use as a context manager, `.url` for api_base.

    `hold` is how long a "timeout" request is held, `trickle` how long a slow body takes.
    With `echo_key`, a 401 repeats the whole key it was sent (some proxies do), so tests can
    check that backfeed redacts it wherever the error goes.
    """

    def __init__(self, brain: Brain, plan: Plan | None = None, *, hold: float = 30.0,
                 trickle: float = 4.0, retry_after: str = "1", echo_key: bool = False) -> None:
        self.echo_key = echo_key
        self.brain = brain
        self.plan: Plan = plan or (lambda n, body: None)
        self.hold = hold
        self.trickle = trickle
        self.retry_after = retry_after
        self.log = Log()
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"

    # -- the ASGI app -------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        key = request_hash(body)
        with self._lock:
            number = len(self.log.requests)
            fault = self.plan(number, body)
            self.log.requests.append((key, fault))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        sent_key = " ".join([headers.get("authorization", "").removeprefix("Bearer "),
                             *(v for k, v in headers.items() if k.endswith("-key"))]).strip()
        await self._answer(fault, body, key, send, sent_key)

    async def _send(self, send: Any, status: int, payload: bytes,
                    headers: dict[str, str] | None = None) -> None:
        head = [(b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode())]
        head += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": payload})

    @staticmethod
    def _error(message: str, kind: str, code: str | None = None) -> bytes:
        return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()

    async def _answer(self, fault: str | None, body: dict[str, Any], key: str, send: Any,
                      sent_key: str = "") -> None:
        model = str(body.get("model", "fault-model"))
        if fault == "429-retry-after":
            await self._send(send, 429, self._error("Rate limit reached", "rate_limit"),
                             {"retry-after": self.retry_after})
        elif fault == "429":
            await self._send(send, 429, self._error("Rate limit reached", "rate_limit"))
        elif fault in ("500", "503"):
            await self._send(send, int(fault), self._error(f"upstream {fault}", "server_error"))
        elif fault == "401":
            echoed = f": {sent_key}" if self.echo_key else ""
            await self._send(send, 401, self._error(f"Incorrect API key provided{echoed}",
                                                     "invalid_request_error", "invalid_api_key"))
        elif fault == "400-context":
            await self._send(send, 400, self._error(CONTEXT_ERROR, "invalid_request_error",
                                                     "context_length_exceeded"))
        elif fault == "timeout":
            await asyncio.sleep(self.hold)
            await self._send(send, 504, self._error("held too long", "server_error"))
        elif fault == "malformed":
            await self._send(send, 200, b'{"id": "chatcmpl-x", "choices": [{"message": {"con')
        elif fault == "empty-choices":
            payload = completion_body("", model)
            payload["choices"] = []
            await self._send(send, 200, json.dumps(payload).encode())
        elif fault == "reset":
            payload = json.dumps(completion_body(await self._think(body), model)).encode()
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload[: len(payload) // 2],
                        "more_body": True})
            raise ConnectionResetError("fault: connection reset halfway through the body")
        elif fault == "slow-stream":
            payload = json.dumps(completion_body(await self._think(body), model)).encode()
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode())]})
            pieces = 20
            size = -(-len(payload) // pieces)
            for start in range(0, len(payload), size):
                await asyncio.sleep(self.trickle / pieces)
                await send({"type": "http.response.body", "body": payload[start:start + size],
                            "more_body": start + size < len(payload)})
            with self._lock:
                self.log.delivered[key] += 1
        else:
            payload = json.dumps(completion_body(await self._think(body), model)).encode()
            await self._send(send, 200, payload)
            with self._lock:
                self.log.delivered[key] += 1

    async def _think(self, body: dict[str, Any]) -> str:
        return await asyncio.to_thread(self.brain, body)

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> FaultServer:
        import uvicorn

        config = uvicorn.Config(self, log_level="critical", lifespan="on",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        daemon=True, name="fault-server")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fault server did not start within 10s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(5)
        self._sock.close()


def every(n: int, fault: str, *, first: int = 1) -> Plan:
    """Fail request numbers first, first+n, first+2n, ... with `fault`."""
    return lambda number, body: fault if number >= first and (number - first) % n == 0 else None


def random_mix(rate: float, seed: int, faults: tuple[str, ...] = TRANSIENT) -> Plan:
    """Fail a `rate` share of requests at random places, each with a fault drawn from `faults`
    (seeded): in every block of round(1/rate) requests, one random request fails."""
    import random

    rng = random.Random(seed)
    block = max(1, round(1 / rate))
    chosen: dict[int, int] = {}
    lock = threading.Lock()

    def plan(number: int, body: dict[str, Any]) -> str | None:
        with lock:
            start = number - number % block
            if start not in chosen:
                chosen[start] = start + rng.randrange(block)
            return rng.choice(faults) if chosen[start] == number else None
    return plan
