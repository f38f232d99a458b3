"""The kernel's limits a sandbox worker puts on itself once, before it runs any code.

In order: its own user id (where the caller is root), rlimits whose hard values the code cannot
raise, Landlock (files, TCP, signals) and a seccomp filter built with libseccomp. Each step the
kernel refuses is reported, not skipped silently: `confine` returns what is on and why the rest
is off, and the caller says it (or, with `strict=True`, refuses to run).
"""

from __future__ import annotations

import errno
import os
import resource
from typing import Any

from . import landlock
from .wire import Settings

_EPERM = errno.EPERM
# System calls refused outright: other processes' memory, the kernel, mounts and namespaces,
# starting programs, and the interfaces that bypass a filter (io_uring) or keep state (keys).
REFUSED_CALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_open", "pidfd_getfd",
    "pidfd_send_signal", "tkill",
    "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "unshare", "setns", "open_by_handle_at",
    "name_to_handle_at",
    "execve", "execveat", "fork", "vfork",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "syslog", "iopl", "ioperm", "uselib", "vhangup",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname",
    "setdomainname", "lookup_dcookie", "fanotify_init",
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "mbind", "migrate_pages", "move_pages", "set_mempolicy",
)
_CLONE_THREAD = 0x00010000
_CLONE_NEW = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
              0x40000000, 0x00000080)  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C
_AF_UNIX = 1


def confine(settings: Settings) -> dict[str, str]:
    """Apply every layer `settings` asks for; return {layer: "on" or why it is off}."""
    if settings.uid is not None:  # root started us: become a user of our own
        os.setgroups([])
        os.setresgid(settings.uid, settings.uid, settings.uid)
        os.setresuid(settings.uid, settings.uid, settings.uid)
    report: dict[str, str] = {}
    if not settings.kernel:  # the sandbox of before: soft limits per call only
        return report
    set_hard_limits(settings)
    try:
        version = landlock.restrict(
            [*settings.readable, f"/proc/{os.getpid()}"], [settings.call_dir, os.devnull],
            network=settings.network,
        )
        report["landlock"] = "on" if version >= 6 else (
            f"on (ABI {version}: no signal scoping before Linux 6.12)")
    except OSError as exc:
        report["landlock"] = f"off ({exc})"
    report["seccomp"] = _load_filter(settings.network)
    return report


def set_hard_limits(settings: Settings) -> None:
    """Limits the code cannot raise: open files, file size and (in namespaces) threads, plus a
    ceiling on address space at twice the per-call limit above the idle worker."""
    _hard(resource.RLIMIT_NOFILE, settings.open_files)
    if settings.disk_mb is not None:
        _hard(resource.RLIMIT_FSIZE, settings.disk_mb * 2**20)
    if settings.threads is not None:  # counted per user: only where the worker has its own
        _hard(resource.RLIMIT_NPROC, settings.threads)
    if settings.memory_mb is not None:
        with open("/proc/self/statm") as f:
            in_use = int(f.read().split()[0]) * resource.getpagesize()
        _hard(resource.RLIMIT_AS, in_use + 2 * settings.memory_mb * 2**20)


def _hard(which: int, value: int) -> None:
    soft, hard = resource.getrlimit(which)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(which, (min(soft, value) if soft != resource.RLIM_INFINITY else value,
                               value))


def seccomp_module() -> Any:
    """libseccomp's Python bindings: Debian's `seccomp`, else PyPI's `pyseccomp` (same API)."""
    try:
        import seccomp  # type: ignore[import-not-found]
    except ImportError:
        import pyseccomp as seccomp  # type: ignore[import-not-found]
    return seccomp


def _load_filter(network: bool) -> str:
    try:
        sc = seccomp_module()
    except (ImportError, OSError) as exc:  # no bindings, or no libseccomp.so under them
        return f"off (libseccomp's Python bindings: {exc}; pip install 'backfeed[sandbox]')"
    try:
        syscall_filter(sc, network, os.getpid()).load()
    except Exception as exc:  # the bindings raise RuntimeError/OSError/ValueError
        return f"off ({type(exc).__name__}: {exc})"
    return "on"


def syscall_filter(sc: Any, network: bool, pid: int) -> Any:
    """The filter: everything allowed but REFUSED_CALLS, new processes and namespaces, signals
    to any process but this one and, without `network`, sockets other than Unix ones."""
    refuse = sc.ERRNO(_EPERM)
    rules = sc.SyscallFilter(sc.ALLOW)
    for name in REFUSED_CALLS:
        try:
            rules.add_rule(refuse, name)
        except (RuntimeError, ValueError, OSError):  # not a system call on this architecture
            continue
    rules.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # its flags are out of reach: use clone
    rules.add_rule(refuse, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))  # a process
    for flag in _CLONE_NEW:
        rules.add_rule(refuse, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    for name in ("kill", "rt_sigqueueinfo"):
        rules.add_rule(refuse, name, sc.Arg(0, sc.NE, pid))
    for name in ("tgkill", "rt_tgsigqueueinfo"):
        rules.add_rule(refuse, name, sc.Arg(0, sc.NE, pid))
    for request in (_TIOCSTI, _TIOCLINUX):  # typing into the caller's terminal
        rules.add_rule(refuse, "ioctl", sc.Arg(1, sc.EQ, request))
    if not network:
        rules.add_rule(refuse, "socket", sc.Arg(0, sc.NE, _AF_UNIX))
    return rules


__all__ = ["REFUSED_CALLS", "confine", "seccomp_module", "set_hard_limits", "syscall_filter"]
