"""Serve the local model as an OpenAI-compatible endpoint on 127.0.0.1 (`backfeed serve-model`)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from .local import DEFAULT_MODEL, cpu_count, load_server, resolve_model


def start_server(
    model: str = DEFAULT_MODEL,
    *,
    port: int = 8080,
    n_ctx: int = 8192,
    parallel: int = 1,
    threads: int | None = None,
    api_key: str | None = None,
) -> tuple[Any, str]:
    """Start llama.cpp's server on 127.0.0.1:`port` in this process; return it and its base URL.

    The base URL ends in /v1, ready for litellm's `api_base` (model "openai/<name>") or any
    OpenAI client. With `api_key`, requests must send `Authorization: Bearer <api_key>`.
    """
    if not 0 < port < 65536:
        raise ValueError(f"port must be between 1 and 65535, got {port}")
    name, path = resolve_model(model)
    server = load_server(path, n_ctx=n_ctx, parallel=parallel, threads=threads or cpu_count(),
                         port=port, alias=name, api_key=api_key)
    return server, f"{server.listening_address}/v1"


def serve_model(
    model: str = DEFAULT_MODEL,
    *,
    port: int = 8080,
    n_ctx: int = 8192,
    parallel: int = 1,
    threads: int | None = None,
    api_key: str | None = None,
) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    _, url = start_server(model, port=port, n_ctx=n_ctx, parallel=parallel, threads=threads,
                          api_key=api_key)
    name = resolve_model(model)[0]
    print(f"serving {name} at {url}  (litellm: model='openai/{name}', api_base='{url}')",
          flush=True)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
