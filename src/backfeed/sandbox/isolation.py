"""Kernel isolation around a sandbox worker: the bubblewrap command line, what the worker may
read, and the one line that says which protections are off.

bubblewrap (`bwrap`, Debian's `bubblewrap`, as Flatpak uses it) puts the worker in new user
(or, under root, privileged), mount, PID, network, IPC and UTS namespaces: a read-only root
holding only the system's libraries, Python and the directories on `sys.path`; its own
`/proc`; an empty size-limited working directory; no `$HOME` and no network. Inside, the worker
adds Landlock and a seccomp filter itself (`backfeed.sandbox.confine`).
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import shutil
import stat
import subprocess
import sys
import warnings
from collections.abc import Collection
from pathlib import Path

from .wire import Settings

PROTECTIONS = ("namespaces", "landlock", "seccomp")
BACKFEED_ROOT = str(Path(__file__).resolve().parents[2])  # where `import backfeed` is found
# Environment variables a worker does not inherit: anything named like a credential.
_SECRET_ENV = re.compile(r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|AUTH|CREDENTIALS?|"
                         r"COOKIES?)($|_)", re.I)
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime")  # the dynamic loader's index; local time
_NETWORK_FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf",
                  "/etc/gai.conf", "/etc/ssl", "/etc/ca-certificates")
_UID_BASE = 1 << 30  # under root, worker k of this process runs as user _UID_BASE + ...
_uids = itertools.count()
_said: set[str] = set()
_WITHOUT_NAMESPACES = (", so the code sees this system's files, processes and /proc where "
                       "Landlock does not stop it, and its working directory has no size limit")


class SandboxWarning(RuntimeWarning):
    """The sandbox runs with fewer kernel protections than it was built for."""


def worker_env(call_dir: str) -> dict[str, str]:
    """The caller's environment without credentials, with `$HOME` and `$TMPDIR` in the
    call's working directory."""
    env = {k: v for k, v in os.environ.items() if not _SECRET_ENV.search(k)}
    env["HOME"] = env["TMPDIR"] = call_dir
    return env


def readable_paths(network: bool) -> tuple[str, ...]:
    """What a worker may read: system libraries, Python, every directory on `sys.path` and of
    an imported module (editable installs live outside sys.path), and nothing beneath them
    twice. Under root, a module's directory that only root may enter is left out: the worker
    runs as a user of its own, who could not read it (one on sys.path stays, see worker_uid)."""
    paths = {d for d in _SYSTEM_DIRS if os.path.isdir(d) and not os.path.islink(d)}
    paths.update(_SYSTEM_FILES + (_NETWORK_FILES if network else ()))
    paths.update({sys.prefix, sys.base_prefix, sys.exec_prefix, BACKFEED_ROOT,
                  os.path.dirname(os.path.realpath(sys.executable))})
    paths.update(os.path.abspath(p or os.curdir) for p in sys.path)
    modules = set()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and os.path.isabs(file):
            modules.add(os.path.dirname(file))
    if os.geteuid() == 0:
        modules = {m for m in modules - paths if _inside(m, paths) or _others_reach(m, (m,))}
    paths |= modules
    kept: list[str] = []
    for path in sorted(p for p in paths if os.path.exists(p)):
        if not _inside(path, kept):
            kept.append(path)
    return tuple(kept)


@functools.cache
def bubblewrap(root: bool) -> tuple[str | None, str]:
    """(the bwrap executable, "on") where it can make the namespaces, else (None, why not)."""
    path = shutil.which("bwrap")
    if path is None:
        return None, "off (bubblewrap is not installed: apt-get install bubblewrap)"
    probe = [path, *_namespace_flags(root, network=False), "--ro-bind", "/", "/", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"off (bwrap did not run: {exc})"
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return None, f"off (bwrap could not make its namespaces here: {why})"
    return path, "on"


def _namespace_flags(root: bool, network: bool) -> list[str]:
    flags = ["--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc",
             "--unshare-uts", "--unshare-cgroup-try"]
    if not network:
        flags.append("--unshare-net")
    if root:  # no user namespace: the worker drops to a user of its own (see worker_uid)
        flags += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        flags += ["--unshare-user", "--disable-userns"]
    return flags


def worker_uid(settings: Settings) -> tuple[int | None, str]:
    """Under root, a user id of its own for one worker (RLIMIT_NPROC counts threads per user
    and never counts root's), and whether its thread limit is on. None where that user could
    not read what the worker needs: a directory only root may enter lies on the way."""
    workdir = os.path.dirname(settings.call_dir)  # covered by a tmpfs unless made on disk
    on_the_way = workdir if os.path.exists(settings.call_dir) else os.path.dirname(workdir)
    closed = [p for p in settings.readable if not _others_reach(p, settings.readable)]
    closed += [] if _others_reach(on_the_way, settings.readable, read=False) else [workdir]
    if closed:
        return None, (f"off (as root, with {closed[0]} open to root only, the worker stays "
                      "root, whose threads the kernel does not count)")
    return _UID_BASE + ((os.getpid() << 12) + next(_uids)) % (1 << 29), "on"


def _others_reach(path: str, bound: tuple[str, ...], read: bool = True) -> bool:
    """Whether any user may reach (and, with `read`, read) `path` through the directories
    bound from this system; the ones bwrap makes above them are open to all."""
    parts = Path(path).parts
    for depth in range(2, len(parts) + 1):
        step = os.path.join(*parts[:depth])
        if not _inside(step, bound):
            continue
        try:
            mode = os.stat(step).st_mode
        except OSError:
            return True  # not there: nothing to read in it either
        is_dir = stat.S_ISDIR(mode)
        need = 0o001 if depth < len(parts) or not read else 0o005 if is_dir else 0o004
        if mode & need != need:
            return False
    return True


def bwrap_command(bwrap: str, settings: Settings, info_fd: int, root: bool) -> list[str]:
    """bwrap's arguments up to the worker's command line."""
    args = [bwrap, *_namespace_flags(root, settings.network)]
    for path in _SYSTEM_DIRS[1:]:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
    for path in _parents([*settings.readable, settings.call_dir]):  # bwrap would copy 0700
        args += ["--perms", "0755", "--dir", path]
    for path in settings.readable:
        args += ["--ro-bind-try", path, path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    # A workdir inside a directory on sys.path is covered by an empty tmpfs, to hold the
    # call's directory without making it on disk.
    workdir = os.path.dirname(settings.call_dir)
    mask = not os.path.exists(settings.call_dir) and _inside(workdir, settings.readable)
    if mask:
        args += ["--tmpfs", workdir]
    if settings.disk_mb is not None:
        args += ["--size", str(settings.disk_mb * 2**20)]
    args += ["--perms", "0777" if root else "0700", "--tmpfs", settings.call_dir]
    if mask:
        args += ["--remount-ro", workdir]
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", settings.call_dir,
             "--info-fd", str(info_fd), "--"]
    return args


def _inside(path: str, dirs: Collection[str]) -> bool:
    """Whether `path` is one of `dirs` or lies beneath one."""
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def _parents(paths: list[str]) -> list[str]:
    """The directories above `paths` that bwrap must make, outermost first."""
    bound = set(paths)
    parents = {str(parent) for path in paths for parent in Path(path).parents}
    return sorted(p for p in parents - {"/"} if not _inside(p, bound))


def describe(protections: dict[str, str]) -> str | None:
    """One line naming the protections that are off (None when all are on)."""
    off = [f"{name} {why.removeprefix('off ')}" + (_WITHOUT_NAMESPACES if name == "namespaces"
                                                     else "")
           for name, why in protections.items() if not why.startswith("on")]
    if not off:
        return None
    on = [name for name, why in protections.items() if why.startswith("on")]
    return (f"bf.Sandbox: kernel protections off here: {'; '.join(off)}. "
            f"On: {', '.join(on) or 'none'}, plus rlimits and the audit hook "
            "(these stop confused code, not code written to escape); "
            "bf.Sandbox(strict=True) refuses to run without them.")


def say_once(line: str) -> None:
    """Warn with `line` the first time this process meets it."""
    if line not in _said:
        _said.add(line)
        warnings.warn(line, SandboxWarning, stacklevel=2)


__all__ = [
    "BACKFEED_ROOT",
    "PROTECTIONS",
    "SandboxWarning",
    "bubblewrap",
    "bwrap_command",
    "describe",
    "readable_paths",
    "say_once",
    "worker_env",
    "worker_uid",
]
