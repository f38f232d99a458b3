"""A small OTLP/HTTP receiver: POST /v1/traces (and /v1/logs, where instrumentations put
message content as log events) appends each request's document to a file (JSON lines) that
`backfeed ingest` reads."""

from __future__ import annotations

import gzip
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY = 64 * 2**20


def _protobuf_decoder() -> Any:
    """otlp.protobuf_to_json when opentelemetry-proto is installed, else None."""
    try:
        import opentelemetry.proto.collector.trace.v1.trace_service_pb2  # noqa: F401
    except ImportError:
        return None
    from .otlp import protobuf_to_json

    return protobuf_to_json


class Receiver:
    """Listens on host:port (port 0: a free one) and appends each trace export to `out`."""

    def __init__(self, out: str | os.PathLike[str], *, host: str = "127.0.0.1",
                 port: int = 4318) -> None:
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.requests = 0  # documents written
        self._lock = threading.Lock()
        self._decode_protobuf = _protobuf_decoder()
        self.server = ThreadingHTTPServer((host, port), _handler(self))
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1/traces"

    def append(self, document: dict[str, Any]) -> None:
        line = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        with self._lock, open(self.out, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            self.requests += 1

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def start(self) -> Receiver:
        """Serve in a background thread (for tests and notebooks)."""
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
        self.server.server_close()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if path not in ("/v1/traces", "/v1/logs"):
                return self._answer(404, "only POST /v1/traces and /v1/logs are received here")
            logs = path == "/v1/logs"
            size = int(self.headers.get("Content-Length") or 0)
            if size > MAX_BODY:
                return self._answer(413, f"a request over {MAX_BODY} bytes")
            body = self.rfile.read(size)
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                try:
                    body = gzip.decompress(body)
                except OSError:
                    return self._answer(400, "the body is not valid gzip")
            kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if kind == "application/json":
                try:
                    document = json.loads(body)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    return self._answer(400, "the body is not JSON")
                if not isinstance(document, dict):
                    return self._answer(400, "the body is not an OTLP/JSON object")
            elif kind == "application/x-protobuf" and receiver._decode_protobuf is not None:
                try:
                    document = receiver._decode_protobuf(body, logs)
                except ValueError:
                    return self._answer(400, "the body is not an OTLP/protobuf "
                                             f"{'logs' if logs else 'trace'} export")
            elif kind == "application/x-protobuf":
                return self._answer(415, "protobuf bodies need opentelemetry-proto (pip install "
                                         "backfeed[otel]); or set the exporter to the JSON "
                                         "protocol (OTEL_EXPORTER_OTLP_PROTOCOL=http/json)")
            else:
                return self._answer(415, f"Content-Type {kind or 'none'}: send "
                                         "application/json (OTLP/JSON)")
            receiver.append(document)
            if kind == "application/json":
                self._send(200, b"{}", "application/json")
            else:
                self._send(200, b"", "application/x-protobuf")  # an empty response message

        def _answer(self, code: int, message: str) -> None:
            self._send(code, json.dumps({"code": code, "message": message}).encode(),
                       "application/json")

        def _send(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per export would drown the listening line

    return Handler
