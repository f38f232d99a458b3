"""The benchmark harness's servers: a harness killed mid-run leaves none behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HARNESS = """
import sys, time
from benchmarks.models import free_port, serving
port = free_port()
with serving([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
             f"http://127.0.0.1:{port}/") as proc:
    print(proc.pid, flush=True)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has exited
        return stat.read().split(") ")[-1][:1] != "Z"


def test_a_killed_harness_takes_its_server_with_it():
    harness = subprocess.Popen([sys.executable, "-c", HARNESS], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE)
    server = int(harness.stdout.readline())
    assert _alive(server)
    harness.send_signal(signal.SIGKILL)  # no finally block runs
    harness.wait()
    deadline = time.monotonic() + 30
    while _alive(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(server)
