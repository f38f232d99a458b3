"""Limits around model-written code: `Sandbox` and its pool of worker processes.

A `Sandbox` runs the source of a trainable op in a worker process taken from a small pool
that is reused across calls. On Linux with bubblewrap, each worker sits in its own user (or,
under root, its own uid), mount, PID and network namespaces: a read-only root holding only the
system's libraries, Python and the directories on `sys.path`, its own `/proc`, and an empty
size-limited working directory; no `$HOME`, no run store, no network. Inside, Landlock lets it
write only there and signal no one else, and a seccomp filter refuses `ptrace`, `mount`,
`execve`, new processes and namespaces, and network sockets. Rlimits cap open files, threads,
file size, CPU time and memory; a wall-clock timer stops the call. These hold against code
written to escape, ctypes included (`benchmarks/reliability/sandbox_escapes.py`). Where the
kernel refuses a layer, the sandbox says so once, in one line; `strict=True` refuses to run.

An audit hook in front turns the common refusals (sockets, subprocesses, writes outside the
working directory) into a `CodeError` with a clear message and the code's line, which the op
turns into an error node the user can call backward on; a worker that times out, runs out of
memory or crashes is replaced, and the calling process is unaffected.

What crosses the process boundary (the documented rule):

- Arguments and results cross by pickle. An argument that cannot be pickled raises
  `SandboxError` naming it; a result that cannot be pickled is an error of the code
  ("UnpicklableResult"). Results are unpickled as data only (`backfeed.sandbox.unpickle`):
  builtin and standard value types, numpy arrays, enums and classes of your own modules; a
  pickle naming anything else (`os.system`, `subprocess.Popen`, ...) is refused unrun.
- The code runs with its function's module globals: the worker imports the module named by
  `function.__module__`, so module-level names, helpers and classes are there as in-process.
  For a function of `__main__` (a script, a notebook) or of a module the worker cannot import,
  the globals the code names are sent instead: modules are re-imported by name, other values
  go by pickle, and a name whose value cannot be pickled is left undefined (using it raises a
  NameError that says why). Globals changed by the code stay in that worker, not in the caller.
- The code is compiled as a module-level function: variables of an enclosing function
  (closures) are not there, as for any changed code of a trainable op.
- What the code prints is captured and written to the caller's stdout and stderr.
- Parameters whose `.value` the code reads inside the worker are not recorded as hidden
  inputs of the op (pass them as arguments to keep them in the trace).

Linux only (rlimits, /proc, namespaces).
"""

from __future__ import annotations

import inspect
import os
import pickle
import re
import signal
import sys
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any

from ..graph.execute import CodeError, code_filename, function_source, source_line
from ..graph.node import ErrorInfo
from .isolation import describe, readable_paths, say_once
from .process import Died, Expired, StartFailed, WorkerProcess
from .unpickle import loads_result
from .wire import Done, Global, Request, Settings, SetupFailed, Started

# ErrorInfo.type of the failures the sandbox itself reports (the code's own exceptions keep
# their type name: "ValueError", "SyntaxError", ...).
ERROR_TYPES = ("Timeout", "MemoryLimit", "ForbiddenOperation", "WorkerCrash", "UnpicklableResult",
               "ResultTooLarge")
_DUMP_LINE = re.compile(r'File "(?P<file>[^"]*)", line (?P<line>\d+)')


class SandboxError(Exception):
    """The sandbox itself could not run a call: bad settings, an argument that cannot cross,
    a worker that could not start or import the function's module."""


class _NotStarted(SandboxError):
    """The worker failed before the code started: nothing ran."""


class Sandbox:
    """Run trainable code in pooled worker processes under time, memory and access limits.

    `timeout_s`: wall-clock seconds per call (CPU time is capped a little above it).
    `memory_mb`: address space the code may add on top of the idle worker (None: no limit).
    `network`: allow sockets (False: an empty network namespace plus refused socket creation).
    `workdir`: directory under which each call's fresh temporary directory is made (default:
    the system temp dir); the code may write only inside its own call directory.
    `workers`: most worker processes alive at once, i.e. concurrent calls (default: CPU count).
    `strict`: refuse to run (`SandboxError`) unless every kernel protection is on.
    `kernel`: False runs without the kernel's isolation (namespaces, Landlock, seccomp), with
    only rlimits and the audit hook, as before; for measuring what the isolation costs.
    `disk_mb`: what the code may write in its working directory; `open_files`: its open file
    descriptors; `threads`: its threads (processes are refused), where the kernel counts them.
    """

    def __init__(
        self,
        timeout_s: float = 10.0,
        memory_mb: int | None = 1024,
        network: bool = False,
        workdir: str | os.PathLike[str] | None = None,
        *,
        workers: int | None = None,
        start_timeout_s: float = 60.0,
        strict: bool = False,
        kernel: bool = True,
        disk_mb: int | None = 256,
        open_files: int = 256,
        threads: int = 64,
    ) -> None:
        if not sys.platform.startswith("linux"):
            raise SandboxError(f"bf.Sandbox needs Linux (rlimits, /proc); this is {sys.platform}")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or timeout_s <= 0:
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        for label, value, optional in (("memory_mb", memory_mb, True), ("disk_mb", disk_mb, True),
                                       ("open_files", open_files, False),
                                       ("threads", threads, False)):
            if (value is not None or not optional) and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0
            ):
                unit = " or None" if optional else ""
                raise ValueError(f"{label} must be a positive int{unit}, got {value!r}")
        for label, flag in (("network", network), ("strict", strict), ("kernel", kernel)):
            if not isinstance(flag, bool):
                raise TypeError(f"{label} must be True or False, got {flag!r}")
        if strict and not kernel:
            raise ValueError("strict=True needs the kernel's isolation: drop kernel=False")
        if workdir is not None:
            workdir = os.path.realpath(os.fspath(workdir))
            if not os.path.isdir(workdir):
                raise ValueError(f"workdir {workdir!r} is not an existing directory")
        workers = workers if workers is not None else max(2, os.cpu_count() or 2)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        self.timeout_s = float(timeout_s)
        self.memory_mb = memory_mb
        self.network = network
        self.workdir = workdir
        self.workers = workers
        self.start_timeout_s = start_timeout_s
        self.strict = strict
        self.kernel = kernel
        self.disk_mb = disk_mb
        self.open_files = open_files
        self.threads = threads
        self._lock = threading.Lock()
        self._pool: _Pool | None = None
        self._finalizer: weakref.finalize | None = None

    # -- running code ---------------------------------------------------------------------
    def call(
        self,
        function: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        source: str | None = None,
        name: str | None = None,
    ) -> Any:
        """Run `source` (default: the source of `function`), which defines function `name`,
        with `function`'s globals on `args`/`kwargs` in a worker; return its result or raise
        `CodeError` (the code failed or broke a limit) or `SandboxError` (nothing ran)."""
        kwargs = kwargs or {}
        if name is None:
            name = function.__name__
        if source is None:
            source = _source_of(function)
        request = _request(function, args, kwargs, source, name)
        if inspect.iscoroutinefunction(function):
            import asyncio

            return asyncio.to_thread(self._run, request)
        return self._run(request)

    def _run(self, request: Request) -> Any:
        pool = self._get_pool()
        for attempt in (1, 2):
            worker = pool.acquire()
            reuse = False
            try:
                reply = self._exchange(worker, request)
                reuse = isinstance(reply, SetupFailed) or not reply.recycle
                break
            except _NotStarted:
                # a worker killed while idle can look alive for a moment (bwrap outlives
                # it): nothing ran, so a fresh worker takes the request, once
                if attempt == 2:
                    raise
            finally:
                pool.release(worker, reuse)
        if isinstance(reply, SetupFailed):
            raise SandboxError(reply.message)
        if reply.error is not None:
            raise CodeError(reply.error)
        try:
            return loads_result(reply.result)  # type: ignore[arg-type]
        except Exception as exc:
            raise CodeError(ErrorInfo(
                "UnpicklableResult",
                f"the result of {request.name} cannot be unpickled outside the sandbox: "
                f"{type(exc).__name__}: {exc} (return plain data, or instances of classes "
                "defined in your own modules)",
            )) from None

    def _exchange(self, worker: WorkerProcess, request: Request) -> SetupFailed | Done:
        """Send one request; return the worker's answer (a dead or late worker is an error)."""
        try:
            worker.send(request)
            reply = worker.receive(self.start_timeout_s)
        except (Expired, Died) as exc:
            raise _NotStarted(
                f"the sandbox worker failed before running {request.name}: {exc}"
            ) from None
        if isinstance(reply, SetupFailed):
            return reply
        assert isinstance(reply, Started), reply
        filename = code_filename(request.name, request.source)
        try:
            done = worker.receive(self.timeout_s)
        except Expired:
            worker.interrupt()
            info = self._death(worker, filename, request.source, timed_out=True)
            raise CodeError(info) from None
        except Died:
            raise CodeError(self._death(worker, filename, request.source)) from None
        assert isinstance(done, Done), done
        if done.stdout:
            sys.stdout.write(done.stdout)
        if done.stderr:
            sys.stderr.write(done.stderr)
        return done

    def _death(
        self, worker: WorkerProcess, filename: str, source: str, timed_out: bool = False
    ) -> ErrorInfo:
        """Kill and reap the worker; describe why it stopped, with the code's line if known."""
        worker.kill(grace_s=0.0 if timed_out else 1.0)
        dump = worker.crash_dump()
        lineno = next(
            (int(m["line"]) for m in _DUMP_LINE.finditer(dump) if m["file"] == filename), None
        )
        line = source_line(source, lineno)
        code = worker.returncode
        if timed_out or code in (-signal.SIGXCPU, -signal.SIGALRM):
            message = f"the code did not finish within the sandbox's time limit of {self.timeout_s:g} s"
            return ErrorInfo("Timeout", message, lineno, line)
        if code is not None and code < 0:
            signame = signal.Signals(-code).name
            message = f"the sandbox worker was killed by {signame}"
            if signame == "SIGKILL":
                message += " (possibly by the system running out of memory)"
            elif signame in ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT"):
                message = f"the code crashed the sandbox worker with {signame}"
        else:
            message = f"the sandbox worker exited with status {code} while running the code"
        return ErrorInfo("WorkerCrash", message, lineno, line)

    # -- the pool ---------------------------------------------------------------------------
    def _settings(self) -> Settings:
        return Settings(
            [os.path.abspath(p or os.curdir) for p in sys.path],  # "" is the caller's cwd
            self.timeout_s, self.memory_mb, self.network, self.workdir,
            kernel=self.kernel, readable=readable_paths(self.network) if self.kernel else (),
            disk_mb=self.disk_mb, open_files=self.open_files, threads=self.threads,
        )

    def _started(self, worker: WorkerProcess) -> None:
        """Say which kernel protections are off (once), or refuse them under strict=True."""
        if not self.kernel:
            return
        line = describe(worker.protections)
        if line is not None and self.strict:
            raise SandboxError(line.replace("refuses to run without them",
                                            "refused to run without them"))
        if line is not None:
            say_once(line)

    def _get_pool(self) -> _Pool:
        with self._lock:
            if self._pool is None:
                self._pool = _Pool(self._settings, self.workers, self.start_timeout_s,
                                   self._started)
                self._finalizer = weakref.finalize(self, self._pool.close)  # also runs at exit
            return self._pool

    @property
    def protections(self) -> dict[str, str] | None:
        """The kernel protections of the last worker started ({"namespaces", "landlock",
        "seccomp": "on" or why it is off}), or None before any worker started."""
        pool = self._pool
        return pool.protections if pool is not None else None

    @property
    def isolation(self) -> str | None:
        """How network access is denied in the workers ("network namespace" or "audit"),
        "none" with network=True, or None before any worker started."""
        if self.network:
            return "none"
        pool = self._pool
        return pool.isolation if pool is not None else None

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (idle and busy)."""
        pool = self._pool
        return pool.pids() if pool is not None else []

    def close(self) -> None:
        """Stop every worker now (busy ones when their call ends); a later call starts anew."""
        with self._lock:
            self._pool = None
            finalizer, self._finalizer = self._finalizer, None
        if finalizer is not None:
            finalizer()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:  # settings travel; the pool stays here
        state = self.__dict__.copy()
        state.update(_lock=None, _pool=None, _finalizer=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        extra = ", strict=True" if self.strict else ", kernel=False" if not self.kernel else ""
        return (
            f"Sandbox(timeout_s={self.timeout_s:g}, memory_mb={self.memory_mb}, "
            f"network={self.network}, workdir={self.workdir!r}, workers={self.workers}{extra})"
        )


_sources: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _source_of(function: Callable[..., Any]) -> str:
    """The source of `function` without decorator lines (looked up once per function)."""
    source = _sources.get(function)
    if source is None:
        source = _sources[function] = function_source(function)[0]
    return source


def _request(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], source: str,
    name: str,
) -> Request:
    """The message for one call: where the globals come from, and every argument pickled."""
    code = getattr(function, "__code__", None)
    positional = code.co_varnames[: code.co_argcount] if code is not None else ()
    labels = [positional[i] if i < len(positional) else f"args[{i}]" for i in range(len(args))]
    module_name = getattr(function, "__module__", None) or "__main__"
    module = sys.modules.get(module_name)
    by_module = module_name != "__main__" and getattr(module, "__spec__", None) is not None
    shipped: dict[str, Global] = {}
    missing: dict[str, str] = {}
    if not by_module and code is not None:
        shipped, missing = _ship_globals(code, getattr(function, "__globals__", {}))
    return Request(
        name=name,
        source=source,
        args=[(label, _dumps(value, label, name)) for label, value in zip(labels, args)],
        kwargs={key: _dumps(value, key, name) for key, value in kwargs.items()},
        globals_name=module_name,
        module=module_name if by_module else None,
        globals=shipped,
        missing=missing,
    )


def _ship_globals(
    code: types.CodeType, globals_: dict[str, Any]
) -> tuple[dict[str, Global], dict[str, str]]:
    """The globals the code names (modules by name, other values by pickle), and why any
    could not be shipped."""
    shipped: dict[str, Global] = {}
    missing: dict[str, str] = {}
    for key in sorted(_global_names(code)):
        if key not in globals_:
            continue
        value = globals_[key]
        if isinstance(value, types.ModuleType):
            shipped[key] = Global("module", value.__name__)
            continue
        try:
            shipped[key] = Global("value", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception as exc:
            missing[key] = f"{type(exc).__name__}: {exc}"
    return shipped, missing


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _dumps(value: Any, label: str, function_name: str) -> bytes:
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise SandboxError(
            f"argument {label!r} of {function_name} ({type(value).__name__}) cannot be sent to "
            f"the sandbox: {type(exc).__name__}: {exc}. Arguments and results cross the process "
            "boundary by pickle: pass plain data or instances of classes importable by module name"
        ) from None


class _Pool:
    """At most `size` workers; idle ones are reused, broken ones replaced on demand."""

    def __init__(
        self, settings: Callable[[], Settings], size: int, start_timeout_s: float,
        started: Callable[[WorkerProcess], None],
    ) -> None:
        self._settings = settings
        self._size = size
        self._start_timeout_s = start_timeout_s
        self._started = started  # may refuse a new worker by raising
        self.protections: dict[str, str] | None = None
        self._idle: list[WorkerProcess] = []
        self._busy: set[WorkerProcess] = set()
        self._starting = 0
        self._cond = threading.Condition()
        self._closed = False
        self.isolation: str | None = None

    def acquire(self) -> WorkerProcess:
        with self._cond:
            while True:
                if self._closed:
                    raise SandboxError("this sandbox was closed while the call waited for a worker")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        self._busy.add(worker)
                        return worker
                    worker.close()  # died while idle (e.g. killed from outside): replace it
                if len(self._busy) + self._starting < self._size:
                    self._starting += 1
                    break
                self._cond.wait()
        try:
            worker = WorkerProcess(self._settings(), self._start_timeout_s)
            try:
                self._started(worker)
            except BaseException:
                worker.close()
                raise
        except BaseException as exc:
            with self._cond:
                self._starting -= 1
                self._cond.notify()
            if isinstance(exc, StartFailed):
                raise SandboxError(f"a sandbox worker failed to start: {exc}") from None
            raise
        with self._cond:
            self._starting -= 1
            self._busy.add(worker)
            self.isolation = worker.isolation
            self.protections = worker.protections
            closed = self._closed
        if closed:
            worker.close()
            raise SandboxError("this sandbox was closed while a worker started")
        return worker

    def release(self, worker: WorkerProcess, reuse: bool) -> None:
        with self._cond:
            self._busy.discard(worker)
            keep = reuse and not self._closed
            if keep:
                self._idle.append(worker)
            self._cond.notify()
        if not keep:
            worker.close()

    def pids(self) -> list[int]:
        with self._cond:
            return [w.pid for w in [*self._idle, *self._busy]]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for worker in idle:
            worker.close()


__all__ = ["ERROR_TYPES", "Sandbox", "SandboxError"]
