"""Landlock, the kernel's unprivileged access control, for the sandbox worker.

`restrict` confines the calling process (and all it starts) to reading the paths it is given
and writing only beneath one directory; from ABI 4 it refuses TCP, from ABI 6 signals to
processes outside the sandbox. The three system calls and the structures are those of
`<linux/landlock.h>`; the constants keep the kernel's names.
"""

from __future__ import annotations

import ctypes
import os

# The same numbers on every architecture (the generic system-call table).
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# LANDLOCK_ACCESS_FS_*
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_ABI1_FS = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3 and 5
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # a rule on a file
READ = EXECUTE | READ_FILE | READ_DIR
# LANDLOCK_ACCESS_NET_BIND_TCP | CONNECT_TCP (ABI 4); LANDLOCK_SCOPE_* (ABI 6)
_NET_TCP = (1 << 0) | (1 << 1)
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in the kernel's header
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class LandlockError(OSError):
    """The kernel refused a Landlock call."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi() -> int:
    """The Landlock ABI version of this kernel; 0 where it has none or refuses it."""
    try:
        version = _libc().syscall(_CREATE_RULESET, None, ctypes.c_size_t(0),
                                  ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except (OSError, AttributeError):
        return 0
    return max(version, 0)


def handled_fs(version: int) -> int:
    """Every file-system right this ABI version knows (all of them are restricted)."""
    rights = _ABI1_FS
    if version >= 2:
        rights |= REFER
    if version >= 3:
        rights |= TRUNCATE
    if version >= 5:
        rights |= IOCTL_DEV
    return rights


def restrict(readable: list[str], writable: list[str], *, network: bool) -> int:
    """Confine this process: read (and run) only beneath `readable`, change files only beneath
    `writable`; without `network`, no TCP; no signals out of the sandbox. Paths that do not
    exist are skipped. Returns the ABI version applied; raises LandlockError if refused."""
    version = abi()
    if version < 1:
        raise LandlockError("this kernel has no Landlock (or it is turned off)")
    libc = _libc()
    fs = handled_fs(version)
    attr = _RulesetAttr(fs, _NET_TCP if version >= 4 and not network else 0,
                        _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if version >= 6 else 0)
    size = 8 if version < 4 else 16 if version < 6 else 24  # the fields this ABI reads
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                           ctypes.c_uint32(0))
    if ruleset < 0:
        raise LandlockError(ctypes.get_errno(), "landlock_create_ruleset refused")
    try:
        for paths, rights in ((readable, READ & fs), (writable, fs)):
            for path in paths:
                _allow(libc, ruleset, path, rights)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise LandlockError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) refused")
        if libc.syscall(_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
            raise LandlockError(ctypes.get_errno(), "landlock_restrict_self refused")
    finally:
        os.close(ruleset)
    return version


def _allow(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # nothing there to allow
    try:
        if not os.path.isdir(path):
            rights &= _FILE_RIGHTS
        rule = _PathBeneathAttr(rights, fd)
        if libc.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule),
                        ctypes.c_uint32(0)) != 0:
            raise LandlockError(ctypes.get_errno(), f"landlock_add_rule refused {path!r}")
    finally:
        os.close(fd)


__all__ = ["LandlockError", "abi", "handled_fs", "restrict"]
