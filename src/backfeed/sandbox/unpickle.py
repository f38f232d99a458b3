"""What the caller unpickles from a worker, which the code it runs may have written.

A pickle can call any function it names (`__reduce__` returning `(os.system, ("...",))`), so
the caller never unpickles a worker's bytes with plain `pickle.loads`. Messages may hold only
the wire's dataclasses; results only data: the builtin types, a few standard value types
(dates, decimals, fractions, paths, UUIDs, ordered and default dicts, deques, counters), numpy
arrays, enums, and classes defined in the caller's own code (a module outside Python's and the
installed packages' directories, or `__main__`) that it has already imported. Anything else is
refused without being imported.
"""

from __future__ import annotations

import enum
import io
import os
import pickle
import site
import sys
from typing import Any

_WIRE = {
    ("backfeed.sandbox.wire", name) for name in ("Ready", "Started", "Done", "SetupFailed")
} | {("backfeed.graph.node", "ErrorInfo")}
_VALUES = {
    "builtins": {"int", "float", "complex", "str", "bytes", "bytearray", "bool", "list", "tuple",
                 "dict", "set", "frozenset", "range", "slice", "object"},
    "collections": {"OrderedDict", "defaultdict", "deque", "Counter"},
    "copyreg": {"_reconstructor"},  # object.__new__ plus the state, for protocol 0-1 classes
    "datetime": {"date", "time", "datetime", "timedelta", "timezone"},
    "decimal": {"Decimal"},
    "fractions": {"Fraction"},
    "uuid": {"UUID"},
    "pathlib": {"PurePath", "PurePosixPath", "PureWindowsPath", "Path", "PosixPath"},
    "numpy": {"ndarray", "dtype"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
}


class RefusedPickle(pickle.UnpicklingError):
    """The bytes named something the caller does not unpickle from a worker."""


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, allow: Any) -> None:
        super().__init__(io.BytesIO(data))
        self.allow = allow

    def find_class(self, module: str, name: str) -> Any:
        if not self.allow(module, name):
            raise RefusedPickle(f"{module}.{name} is not unpickled from a sandbox worker "
                                "(results are plain data or classes of your own code)")
        return super().find_class(module, name)


def loads_message(data: bytes) -> Any:
    """A message from a worker: one of the wire's dataclasses."""
    return _Unpickler(data, lambda module, name: (module, name) in _WIRE).load()


def loads_result(data: bytes) -> Any:
    """A result from a worker: data only (see the module's docstring)."""
    return _Unpickler(data, _is_value).load()


def _is_value(module: str, name: str) -> bool:
    if name in _VALUES.get(module, ()):
        return not module.startswith("numpy") or module in sys.modules
    loaded = sys.modules.get(module)  # never import on a worker's say-so
    if loaded is None:
        return False
    target: Any = loaded
    for part in name.split("."):
        target = getattr(target, part, None)
    if not isinstance(target, type):
        return False
    return issubclass(target, enum.Enum) or _own_code(loaded)


def _own_code(module: Any) -> bool:
    """A module of the caller's own code: `__main__`, or a file outside Python's prefixes
    (the standard library and installed packages) and outside backfeed."""
    if module.__name__ == "__main__":
        return True
    file = getattr(module, "__file__", None)
    if not isinstance(file, str):
        return False
    here = os.path.realpath(file)
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.dirname(__file__)), site.USER_SITE or sys.prefix}
    return not any(here.startswith(os.path.realpath(root) + os.sep) for root in roots)


__all__ = ["RefusedPickle", "loads_message", "loads_result"]
