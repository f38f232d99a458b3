"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for the LLM tests."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    text: str = "ok"
    delay: float = 0.0
    choices: list[str] | None = None  # several answers (a request with `n`)


@dataclass
class Seen:
    time: float
    body: dict[str, Any]
    headers: dict[str, str]


def ok_body(text: str, model: str = "fake-model", choices: list[str] | None = None
            ) -> dict[str, Any]:
    texts = choices or [text]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": i, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": t}} for i, t in enumerate(texts)],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3 * len(texts),
                  "total_tokens": 11 + 3 * len(texts)},
    }


class FakeOpenAI:
    """Answers POST /v1/chat/completions with the queued replies, then with 200 'ok'."""

    def __init__(self, replies: list[Reply] | None = None) -> None:
        self.replies = list(replies or [])
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with owner.lock:
                    owner.seen.append(Seen(time.monotonic(), body, {k.lower(): v for k, v in self.headers.items()}))
                    reply = owner.replies.pop(0) if owner.replies else Reply()
                if reply.delay:
                    time.sleep(reply.delay)
                payload = (ok_body(reply.text, choices=reply.choices) if reply.status == 200
                           else {"error": {"message": f"status {reply.status}"}})
                data = json.dumps(payload).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
