"""The model every library shares: the local model served over HTTP, or any litellm model."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import backfeed as bf
from backfeed.llm import LLM

LOCAL_MODELS = {"local-0.5b": "qwen2.5-coder-0.5b", "local-1.5b": "qwen2.5-coder-1.5b"}
_SERVE = ("import sys; from backfeed.llm.serve import serve_model; "
          "serve_model(sys.argv[1], port=int(sys.argv[2]), threads=int(sys.argv[3]) or None)")
LOCAL_TIMEOUT_S = 1800.0  # a slow local call is waited for, not retried (a retry redoes it)


@dataclass
class ModelHandle:
    """The optimizers' model, and the task programs' (`program`, else the same model)."""

    name: str
    llm: LLM
    api_base: str | None = None
    program: LLM | None = None  # --program-model: a cheaper model for the task programs
    program_name: str | None = None

    @property
    def program_llm(self) -> LLM:
        return self.program if self.program is not None else self.llm


def litellm_llm(model: str, api_base: str | None = None) -> LLM:
    """backfeed's litellm backend, without its response cache; a local server is waited for."""
    options: dict[str, Any] = {}
    if api_base:
        options = {"api_base": api_base, "api_key": "none", "timeout": LOCAL_TIMEOUT_S,
                   "max_retries": 0}
    # no response cache: every library pays for every call it makes
    return bf.llm.LiteLLM(model, cache=False, **options)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """Run in a server's child process before its program starts: Linux sends it SIGTERM
    when the harness dies, so a harness killed mid-run (SIGTERM, SIGKILL) leaves no model
    server holding gigabytes behind (two did, 2026-12-05). Elsewhere it does nothing."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server process; kill it if it has not gone within 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextlib.contextmanager
def serving(command: list[str], url: str, *, seconds: float = 300.0,
            log: Path | None = None) -> Iterator[subprocess.Popen]:
    """Run a server (`command`) until the block ends, once `url` answers (any HTTP status
    counts: a 405 to a GET is an answer). Its stderr goes to `log`, whose end is quoted if
    it exits before answering."""
    errors = log.open("w") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors,
                            preexec_fn=die_with_parent)
    try:
        deadline = time.monotonic() + seconds
        while True:
            if proc.poll() is not None:
                tail = log.read_text()[-1500:] if log is not None else ""
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}"
                                   + (f": {tail}" if tail else ""))
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nothing answered at {url} within {seconds:.0f} s"
                                       ) from None
                time.sleep(0.5)
        yield proc
    finally:
        stop(proc)
        if log is not None:
            errors.close()  # type: ignore[union-attr]


@contextlib.contextmanager
def open_model(spec: str, *, threads: int = 0,
               startup_seconds: float = 300.0) -> Iterator[ModelHandle]:
    """`local-0.5b` / `local-1.5b`: serve the model (`backfeed serve-model`'s server) in a
    subprocess and talk to it over HTTP like every peer does;
    anything else is a litellm model name. `threads=0` lets the server pick (the idle cores, `cpu_count`)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if spec not in LOCAL_MODELS:
        yield ModelHandle(spec, litellm_llm(spec))
        return
    port = free_port()
    command = [sys.executable, "-c", _SERVE, LOCAL_MODELS[spec], str(port), str(threads)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              preexec_fn=die_with_parent)
    api_base = f"http://127.0.0.1:{port}/v1"
    try:
        name = _wait_for_server(server, api_base, startup_seconds)
        yield ModelHandle(spec, litellm_llm(f"openai/{name}", api_base), api_base)
    finally:
        stop(server)


def _wait_for_server(server: subprocess.Popen, api_base: str, seconds: float) -> str:
    import json

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            error = server.stderr.read().decode(errors="replace")[-2000:] if server.stderr else ""
            raise RuntimeError(f"backfeed serve-model exited with {server.returncode}: {error}")
        try:
            with urllib.request.urlopen(f"{api_base}/models", timeout=2) as response:
                models = json.load(response).get("data", [])
            return models[0]["id"] if models else "local"
        except OSError:
            time.sleep(1.0)
    raise RuntimeError(f"backfeed serve-model did not answer at {api_base} in {seconds:.0f} s")
