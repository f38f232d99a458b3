"""The sandbox worker process: runs model-written code under limits, one request at a time.

Started by `backfeed.sandbox.pool` as `python -c BOOT <in_fd> <out_fd> <crash_fd>`, inside
bubblewrap's namespaces where it can. Messages are the dataclasses of `backfeed.sandbox.wire`,
pickled over two pipes. Before any code runs, the worker confines itself (`confine`: Landlock,
seccomp, hard rlimits); those hold against ctypes too. The audit hook in front of them turns the
common refusals into clear `ForbiddenOperation` messages with the code's line.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import faulthandler
import importlib
import inspect
import io
import math
import os
import pickle
import resource
import shutil
import signal
import sys
import tempfile
import threading
from multiprocessing.connection import Connection
from types import FrameType, ModuleType
from typing import Any

from ..graph.execute import (
    CodeError,
    FunctionCache,
    code_filename,
    compile_function,
    error_info,
    source_line,
)
from ..graph.node import ErrorInfo
from .confine import confine
from .wire import Done, Ready, Reply, Request, Settings, SetupFailed, Started

_CLONE_NEWNET = 0x40000000
MAX_RESULT_BYTES = 64 * 1024 * 1024  # a pickled return value larger than this is refused
MAX_OUTPUT_CHARS = 1_000_000  # printed output kept per stream; the rest is cut with a note
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

# Audit events refused while model code runs, with what the refusal says.
_PROCESS_EVENTS = {
    "subprocess.Popen": "starting a subprocess",
    "os.system": "running a shell command",
    "os.exec": "replacing the process (os.exec*)",
    "os.posix_spawn": "spawning a process",
    "os.spawn": "spawning a process",
    "os.fork": "forking the process",
    "os.forkpty": "forking the process",
    "os.kill": "sending a signal to a process",
    "os.killpg": "sending a signal to a process group",
    "resource.setrlimit": "changing the sandbox's resource limits",
    "resource.prlimit": "changing the sandbox's resource limits",
}
_NETWORK_EVENTS = {
    "socket.connect": "opening a network connection",
    "socket.bind": "binding a network socket",
    "socket.sendto": "sending network data",
    "socket.sendmsg": "sending network data",
    "socket.getaddrinfo": "resolving a host name",
    "socket.gethostbyname": "resolving a host name",
    "socket.gethostbyaddr": "resolving a host name",
    "socket.getnameinfo": "resolving a host name",
}
# Events whose path arguments (by position) must lie inside the working directory.
_PATH_EVENTS = {
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.mkdir": (0,),
    "os.rename": (0, 1),
    "os.link": (0, 1),
    "os.symlink": (1,),
    "os.truncate": (0,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.utime": (0,),
    "shutil.rmtree": (0,),
    "shutil.copyfile": (1,),
    "shutil.copytree": (1,),
    "shutil.move": (1,),
}


class SandboxViolation(PermissionError):
    """Raised inside the worker when the code attempts a refused operation."""


class _Guard:
    """The audit hook: refusing while model code runs, and always in threads it started."""

    def __init__(self, network: bool) -> None:
        self.network = network
        self.main_thread = threading.get_ident()
        self.active = False
        self.workdir = ""
        self.filename = ""
        self.violations: list[tuple[str, int | None]] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active and threading.get_ident() == self.main_thread:
            return
        what = _PROCESS_EVENTS.get(event)
        if what is None and not self.network:
            what = _NETWORK_EVENTS.get(event)
            if event == "socket.__new__" and args[1] != getattr(_socket_module(), "AF_UNIX", 1):
                what = "creating a network socket"
        if what is None and event == "open":
            what = self._check_open(args)
        if what is None and event in _PATH_EVENTS:
            what = self._check_paths(event, args, _PATH_EVENTS[event])
        if what is not None:
            self._refuse(f"{what} is not allowed in the sandbox ({event})")

    def _check_open(self, args: tuple[Any, ...]) -> str | None:
        path, mode, flags = args
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(
            isinstance(flags, int) and flags & _WRITE_FLAGS
        )
        if writing and not self._inside(path):
            return f"writing to {os.fsdecode(path)!r} outside the working directory"
        return None

    def _check_paths(self, event: str, args: tuple[Any, ...], positions: tuple[int, ...]) -> str | None:
        for i in positions:
            if i < len(args) and not self._inside(args[i]):
                return f"changing {os.fsdecode(args[i])!r} outside the working directory"
        return None

    def _inside(self, path: Any) -> bool:
        if isinstance(path, int) or path is None:  # an already open descriptor
            return True
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return real == os.devnull or real == self.workdir or real.startswith(self.workdir + os.sep)

    def _refuse(self, message: str) -> None:
        self.violations.append((message, _code_line(sys._getframe(2), self.filename)))
        raise SandboxViolation(message)


def _socket_module() -> ModuleType:
    import socket

    return socket


def _code_line(frame: FrameType | None, filename: str) -> int | None:
    while frame is not None:
        if frame.f_code.co_filename == filename:
            return frame.f_lineno
        frame = frame.f_back
    return None


class Worker:
    """One worker's state: its pipes, limits, guard and compiled functions."""

    def __init__(self, inbox: Connection, outbox: Connection, crash_fd: int) -> None:
        self.inbox = inbox
        self.outbox = outbox
        self.crash_fd = crash_fd
        settings: Settings = pickle.loads(inbox.recv_bytes())
        sys.path[:] = settings.sys_path
        self.timeout_s = settings.timeout_s
        self.memory_mb = settings.memory_mb
        self.call_dir = settings.call_dir
        os.environ["TMPDIR"] = tempfile.tempdir = self.call_dir  # tempfile works, inside it
        self.network = settings.network
        # Inside bubblewrap the network namespace is there already; else make one if we may.
        empty_net = not self.network and (settings.namespaces or _unshare_net())
        self.isolation = "network namespace" if empty_net else "audit"
        self.protections = confine(settings)  # from here on, ctypes meets the kernel's limits
        self.environ = dict(os.environ)
        self.guard = _Guard(self.network)
        sys.addaudithook(self.guard)
        self.functions: dict[str, FunctionCache] = {}  # per module, most recent sources
        self.dirty = False

    def send(self, message: Reply) -> None:
        self.outbox.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def serve(self) -> None:
        self.send(Ready(os.getpid(), self.isolation, self.protections))
        while True:
            try:
                request = pickle.loads(self.inbox.recv_bytes())
            except EOFError:  # the caller is gone (or closed us): leave nothing behind
                shutil.rmtree(self.call_dir, ignore_errors=True)
                return
            self.handle(request)

    def handle(self, request: Request) -> None:
        try:
            globals_, missing = self.resolve_globals(request)
            args = [self.load(blob, label) for label, blob in request.args]
            kwargs = {k: self.load(blob, k) for k, blob in request.kwargs.items()}
        except _SetupError as exc:
            self.send(SetupFailed(str(exc)))
            return
        self.send(Started())
        value, error, recycle, (out, err) = self.run(request, globals_, missing, args, kwargs)
        result = None
        if error is None:
            try:
                result = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                error = ErrorInfo(
                    "UnpicklableResult",
                    f"the result of {request.name} ({type(value).__name__}) "
                    f"cannot cross back from the sandbox by pickle: {exc}",
                )
            if result is not None and len(result) > MAX_RESULT_BYTES:
                error = ErrorInfo(
                    "ResultTooLarge",
                    f"the result of {request.name} ({type(value).__name__}) is "
                    f"{len(result) / 2**20:.0f} MiB pickled; the sandbox returns at most "
                    f"{MAX_RESULT_BYTES // 2**20} MiB",
                )
                result = None
        # Threads the code left running, files it left behind, an environment it changed
        # (LD_PRELOAD, PATH, ...) or memory it kept: this worker is done.
        recycle = (recycle or self.dirty or threading.active_count() > 1
                   or os.environ != self.environ)
        self.send(Done(result, error, recycle, out, err))

    def resolve_globals(self, request: Request) -> tuple[dict[str, Any], dict[str, str]]:
        """The globals the code runs with, and why any shipped global is missing."""
        missing = dict(request.missing)
        if request.module is not None:
            try:
                return importlib.import_module(request.module).__dict__, missing
            except BaseException as exc:  # the user's module failed to import here
                raise _SetupError(
                    f"the sandbox worker could not import module {request.module!r} of the "
                    f"function: {type(exc).__name__}: {exc}"
                ) from None
        globals_: dict[str, Any] = {"__builtins__": builtins, "__name__": request.globals_name}
        for key, shipped in request.globals.items():
            try:
                if shipped.kind == "module":  # by name
                    globals_[key] = importlib.import_module(str(shipped.payload))
                else:
                    globals_[key] = pickle.loads(shipped.payload)  # type: ignore[arg-type]
            except Exception as exc:
                missing[key] = f"{type(exc).__name__}: {exc}"
        return globals_, missing

    def load(self, blob: bytes, label: str) -> Any:
        try:
            return pickle.loads(blob)
        except Exception as exc:
            raise _SetupError(
                f"argument {label!r} could not be unpickled in the sandbox worker: "
                f"{type(exc).__name__}: {exc} (its type must be importable by module name, "
                "not defined in __main__)"
            ) from None

    def function(self, request: Request, globals_: dict[str, Any]) -> Any:
        if request.module is None:  # fresh globals each call: compile against them
            return compile_function(request.source, request.name, globals_)
        cache = self.functions.setdefault(request.module, FunctionCache())
        return cache.get(request.source, request.name, globals_)

    def run(
        self, request: Request, globals_: dict[str, Any], missing: dict[str, str],
        args: list[Any], kwargs: dict[str, Any],
    ) -> tuple[Any, ErrorInfo | None, bool, tuple[str, str]]:
        """Run the function under every limit: (value, error or None, recycle, output)."""
        source = request.source
        filename = code_filename(request.name, source)
        out, err = io.StringIO(), io.StringIO()
        saved = sys.stdout, sys.stderr
        os.chdir(self.call_dir)
        self.guard.workdir, self.guard.filename, self.guard.violations = self.call_dir, filename, []
        signal.alarm(math.ceil(self.timeout_s) + 5)  # backstop should the caller be gone
        limits, grown = _apply_limits(self.timeout_s, self.memory_mb)
        sys.stdout, sys.stderr = out, err
        self.guard.active = True
        failure: BaseException | None = None
        try:
            value = self.function(request, globals_)(*args, **kwargs)
            if inspect.iscoroutine(value):
                value = asyncio.run(value)
        except BaseException as exc:
            failure, value = exc, None
        finally:
            self.guard.active = False
            sys.stdout, sys.stderr = saved
            _restore_limits(limits)
            signal.alarm(0)
            # The next call must not see this one's files: if they stay, a new worker follows.
            self.dirty = not _empty(self.call_dir) or grown
        captured = _capped(out.getvalue()), _capped(err.getvalue())
        if self.guard.violations:
            message, lineno = self.guard.violations[0]
            info = ErrorInfo("ForbiddenOperation", message, lineno, source_line(source, lineno))
            return None, info, False, captured
        if failure is None:
            return value, None, False, captured
        if isinstance(failure, MemoryError):
            lineno = error_info(failure, filename, None, source).lineno
            message = f"the code needed more than the sandbox's memory limit of {self.memory_mb} MiB"
            info = ErrorInfo("MemoryLimit", message, lineno, source_line(source, lineno))
            return None, info, True, captured
        if isinstance(failure, CodeError):
            info = failure.info
        else:
            info = error_info(failure, filename, None, source)
        if info.type == "NameError":
            message = info.message
            for key, reason in missing.items():
                if f"'{key}'" in message:
                    message += f" (the global {key!r} could not be sent to the sandbox: {reason})"
            info = dataclasses.replace(info, message=message)
        recycle = not isinstance(failure, Exception)  # SystemExit, KeyboardInterrupt...
        return None, info, recycle, captured


def _capped(text: str) -> str:
    """Printed output within MAX_OUTPUT_CHARS, the cut said at the end."""
    if len(text) <= MAX_OUTPUT_CHARS:
        return text
    return (text[:MAX_OUTPUT_CHARS]
            + f"\n…[{len(text) - MAX_OUTPUT_CHARS:,} more characters of output cut]\n")


class _SetupError(Exception):
    pass


def _apply_limits(
    timeout_s: float, memory_mb: int | None
) -> tuple[list[tuple[int, tuple[int, int]]], bool]:
    """Lower the soft CPU and address-space limits for one call; return what to restore, and
    whether the worker has grown so near its hard ceiling that the call got less memory."""
    saved = []
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(usage.ru_utime + usage.ru_stime + timeout_s) + 2  # the wall timer fires first
    saved.append((resource.RLIMIT_CPU, resource.getrlimit(resource.RLIMIT_CPU)))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, saved[-1][1][1]))
    grown = False
    if memory_mb is not None:
        with open("/proc/self/statm") as f:
            in_use = int(f.read().split()[0]) * resource.getpagesize()
        saved.append((resource.RLIMIT_AS, resource.getrlimit(resource.RLIMIT_AS)))
        ceiling = saved[-1][1][1]
        wanted = in_use + memory_mb * 2**20
        grown = ceiling != resource.RLIM_INFINITY and wanted > ceiling
        resource.setrlimit(resource.RLIMIT_AS, (min(wanted, ceiling) if grown else wanted,
                                                ceiling))
    return saved, grown


def _restore_limits(saved: list[tuple[int, tuple[int, int]]]) -> None:
    for which, limits in saved:
        resource.setrlimit(which, limits)


def _empty(directory: str) -> bool:
    """Remove what a call left in its working directory (cheaper than a new directory)."""
    try:
        os.chdir(directory)
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
    except OSError:
        return False
    return True


def _unshare_net() -> bool:
    """Move this process into an empty network namespace, where the platform allows it."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.unshare(_CLONE_NEWNET) == 0
    except (OSError, AttributeError):
        return False


def main() -> None:
    in_fd, out_fd, crash_fd = (int(a) for a in sys.argv[1:4])
    sys.dont_write_bytecode = True  # imports inside the code must not write __pycache__
    faulthandler.enable(file=crash_fd)  # a crash dumps the code's line here
    faulthandler.register(signal.SIGUSR1, file=crash_fd, chain=False)  # so does a timeout
    worker = Worker(Connection(in_fd, writable=False), Connection(out_fd, readable=False), crash_fd)
    worker.serve()
