"""The messages between a `Sandbox` and its worker process, pickled over two pipes.

One exchange: the caller sends `Settings` once and the worker answers `Ready`; then, per call,
the caller sends a `Request`, the worker answers `SetupFailed` (nothing ran) or `Started`,
and after the code ran, `Done`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..graph.node import ErrorInfo


@dataclass(frozen=True)
class Settings:
    """The limits and paths a worker is started with.

    `kernel`: confine the worker with Landlock and seccomp (`backfeed.sandbox.confine`);
    `readable`: the paths it may read; `uid`: the user it becomes (only when started as root,
    inside namespaces); `threads`: its RLIMIT_NPROC (only where the count is its own).
    """

    sys_path: list[str]
    timeout_s: float
    memory_mb: int | None
    network: bool
    workdir: str | None
    call_dir: str = ""
    kernel: bool = False
    readable: tuple[str, ...] = ()
    uid: int | None = None
    namespaces: bool = False
    open_files: int = 256
    threads: int | None = None
    disk_mb: int | None = None


@dataclass(frozen=True)
class Ready:
    """The worker started: its process id, how it denies the network, and which kernel
    protections it could put on itself ({name: "on" or why it is off})."""

    pid: int
    isolation: str
    protections: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Global:
    """One global the code names, shipped by module name or by pickle."""

    kind: Literal["module", "value"]
    payload: str | bytes


@dataclass(frozen=True)
class Request:
    """One call: the code, its pickled arguments, and where its globals come from.

    `module` names the module whose globals the code runs with; when it is None, `globals`
    holds the names the code uses, and `missing` says why the others could not be shipped.
    """

    name: str
    source: str
    args: list[tuple[str, bytes]]
    kwargs: dict[str, bytes]
    globals_name: str
    module: str | None = None
    globals: dict[str, Global] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SetupFailed:
    """The worker could not prepare the call (import the module, unpickle an argument)."""

    message: str


@dataclass(frozen=True)
class Started:
    """The code is about to run: from now on the call's time limit counts."""


@dataclass(frozen=True)
class Done:
    """The call ended: its pickled result or its error, the output, and whether to retire.

    `recycle` is True when the worker must not be reused (it ran out of memory, the code left
    threads or files behind, or it raised SystemExit and the like).
    """

    result: bytes | None
    error: ErrorInfo | None
    recycle: bool
    stdout: str = ""
    stderr: str = ""


Reply = Ready | SetupFailed | Started | Done
Message = Settings | Request

__all__ = [
    "Done",
    "Global",
    "Message",
    "Ready",
    "Reply",
    "Request",
    "Settings",
    "SetupFailed",
    "Started",
]
