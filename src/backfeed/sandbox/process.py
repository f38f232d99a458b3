"""The caller's handle on one sandbox worker process: how it is started (inside bubblewrap where
the kernel allows), its two pipes, its crash-dump file, and how it is stopped."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from . import isolation
from .isolation import BACKFEED_ROOT, bwrap_command, worker_env, worker_uid
from .unpickle import loads_message
from .wire import Message, Ready, Reply, Settings

_DUMP_WAIT_S = 1.0  # after a timeout, how long the worker gets to write where it was
_BOOT = (
    "import sys; sys.path.insert(0, {root!r}); "
    "from backfeed.sandbox.worker import main; main()"
)


class Expired(Exception):
    """The worker did not answer in time."""


class Died(Exception):
    """The worker's pipe closed: it is gone."""


class StartFailed(Exception):
    """A worker could not be started or did not report ready."""


class WorkerProcess:
    """One worker: started with `settings`, ready when the constructor returns.

    Inside bubblewrap, the direct child is bwrap; `pid` is the worker's own process id (as this
    process sees it) and `returncode` the worker's status as bwrap passes it on.
    """

    def __init__(self, settings: Settings, start_timeout_s: float) -> None:
        import tempfile
        from multiprocessing.connection import Connection

        self.crash = tempfile.TemporaryFile(prefix="backfeed-sandbox-")
        root = os.geteuid() == 0
        bwrap, self.namespaces = (isolation.bubblewrap(root) if settings.kernel
                                  else (None, "off (Sandbox(kernel=False))"))
        # The code's working directory, emptied by the worker after each call, removed here.
        # Inside bubblewrap it is a size-limited tmpfs that bwrap makes, so nothing is left on
        # disk; only where the workdir is itself on sys.path must its mount point exist here.
        workdir = os.path.realpath(settings.workdir or tempfile.gettempdir())
        if bwrap is None or workdir in settings.readable:
            self.call_dir = os.path.realpath(tempfile.mkdtemp(prefix="backfeed-sandbox-",
                                                              dir=workdir))
        else:
            self.call_dir = os.path.join(workdir, f"backfeed-sandbox-{secrets.token_hex(6)}")
        settings = dataclasses.replace(settings, call_dir=self.call_dir,
                                       namespaces=bwrap is not None)
        uid, self.thread_limit = None, "on"
        if bwrap is None:
            self.thread_limit = "off (RLIMIT_NPROC counts a user's threads only in namespaces)"
        elif root:
            uid, self.thread_limit = worker_uid(settings)
        # RLIMIT_NPROC counts the worker's main thread and, in a user namespace, bwrap's init.
        threads = settings.threads + (1 if root else 2) if settings.threads else None
        settings = dataclasses.replace(
            settings, uid=uid, threads=threads if self.thread_limit == "on" else None)
        from_parent, to_child = os.pipe()
        from_child, to_parent = os.pipe()
        fds = [from_parent, to_parent, self.crash.fileno()]
        command = [sys.executable, "-c", _BOOT.format(root=BACKFEED_ROOT), *map(str, fds)]
        info = None
        if bwrap is not None:
            info, info_w = os.pipe()
            fds.append(info_w)
            command = bwrap_command(bwrap, settings, info_w, root) + command
        try:
            self.proc = _popen(
                command,
                pass_fds=fds,
                stdin=subprocess.DEVNULL,
                env=worker_env(self.call_dir),
                start_new_session=True,  # Ctrl-C in a terminal reaches the caller, not workers
            )
        except BaseException:
            for fd in (to_child, from_child, info):
                if fd is not None:
                    os.close(fd)
            self.crash.close()
            _remove_tree(self.call_dir)
            raise
        finally:
            for fd in fds[:2] + fds[3:]:
                os.close(fd)
        self.outbox = Connection(to_child, readable=False)
        self.inbox = Connection(from_child, writable=False)
        self.sandbox_init = _read_init_pid(info) if info is not None else None
        try:
            self.send(settings)
            reply = self.receive(start_timeout_s)
        except (Expired, Died) as exc:
            self.close()
            why = "; bwrap's message, if any, is on stderr" if bwrap is not None else ""
            raise StartFailed(f"{exc}{why}") from None
        assert isinstance(reply, Ready), reply
        self.pid = reply.pid if self.sandbox_init is None else _child_of(self.sandbox_init)
        self.isolation = reply.isolation
        self.protections = {"namespaces": self.namespaces, **reply.protections,
                            "thread limit": self.thread_limit}

    def send(self, message: Message) -> None:
        try:
            self.outbox.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as exc:  # BrokenPipeError: it died
            raise Died(f"the worker is gone ({exc})") from None

    def receive(self, timeout: float) -> Reply:
        try:
            if not self.inbox.poll(timeout):
                raise Expired(f"no answer within {timeout:g} s")
            return loads_message(self.inbox.recv_bytes())  # written where the code runs
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            raise Died(f"the worker stopped ({type(exc).__name__})") from None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def interrupt(self) -> None:
        """Ask a worker that overran to dump where it is (faulthandler on SIGUSR1)."""
        if self.proc.poll() is not None:
            return
        try:
            os.kill(self.pid, signal.SIGUSR1)  # bwrap is alive, so its worker is not reaped
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + _DUMP_WAIT_S
        written = 0
        while time.monotonic() < deadline:  # until the dump has started and stopped growing
            time.sleep(0.01)
            size = os.fstat(self.crash.fileno()).st_size
            if size and size == written:
                break
            written = size

    @property
    def returncode(self) -> int | None:
        code = self.proc.returncode
        if self.sandbox_init is not None and code is not None and code > 128:
            return 128 - code  # bwrap exits with 128 + the signal that killed the worker
        return code

    def crash_dump(self) -> str:
        try:
            return os.pread(self.crash.fileno(), 1 << 16, 0).decode(errors="replace")
        except (OSError, ValueError):  # already closed
            return ""

    def kill(self, grace_s: float = 0.0) -> None:
        """Stop and reap the process, and close the pipes (the crash file stays readable).
        Killing bwrap kills its PID namespace, the worker in it. A worker that died on its own
        gets `grace_s` for bwrap to pass its status on."""
        if grace_s and self.proc.poll() is None:
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.outbox.close()
        self.inbox.close()

    def close(self) -> None:
        self.kill()
        self.crash.close()
        _remove_tree(self.call_dir)


_spawner: queue.SimpleQueue | None = None
_spawner_lock = threading.Lock()


def _popen(command: list[str], **options: Any) -> subprocess.Popen:
    """Start `command` from one long-lived thread: bwrap's --die-with-parent follows the thread
    that started it (PR_SET_PDEATHSIG), so a worker started from a thread that ends, as in a
    thread pool, would die with it."""
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = queue.SimpleQueue()
            threading.Thread(target=_spawn_forever, args=(_spawner,), daemon=True,
                             name="backfeed-sandbox-spawner").start()
        requests = _spawner
    answer: queue.SimpleQueue = queue.SimpleQueue()
    requests.put((command, options, answer))
    started = answer.get()
    if isinstance(started, BaseException):
        raise started
    return started


def _spawn_forever(requests: queue.SimpleQueue) -> None:
    while True:
        command, options, answer = requests.get()
        try:
            answer.put(subprocess.Popen(command, **options))
        except BaseException as exc:  # handed to the caller, which raises it
            answer.put(exc)


def _forget_spawner() -> None:  # a forked child has none of its parent's threads
    global _spawner
    _spawner = None


os.register_at_fork(after_in_child=_forget_spawner)


def _read_init_pid(fd: int) -> int | None:
    """bwrap's --info-fd report: the process id of the sandbox's init (None if bwrap failed)."""
    with os.fdopen(fd, "rb") as info:
        text = info.read()
    try:
        return int(json.loads(text)["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None


def _child_of(parent: int) -> int:
    """The process id of `parent`'s one child (the worker under the sandbox's init)."""
    try:
        with open(f"/proc/{parent}/task/{parent}/children") as f:
            children = f.read().split()
    except OSError:  # a kernel without CONFIG_PROC_CHILDREN: look through /proc
        children = [e for e in os.listdir("/proc") if e.isdigit() and _parent_of(e) == parent]
    return int(children[0]) if children else parent


def _parent_of(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)  # best effort: a worker's leftover directory


__all__ = ["Died", "Expired", "StartFailed", "WorkerProcess"]
