"""The sandbox room: run model-written code in pooled worker processes under limits.

graph/ calls a sandbox through `graph.execute.SandboxLike` (an object with `.call`) and keeps
the process-wide default (`set_default_sandbox`), re-exported here.
"""

from ..graph.execute import SandboxLike, get_default_sandbox, set_default_sandbox
from .isolation import SandboxWarning
from .pool import ERROR_TYPES, Sandbox, SandboxError

__all__ = [
    "ERROR_TYPES",
    "Sandbox",
    "SandboxError",
    "SandboxLike",
    "SandboxWarning",
    "get_default_sandbox",
    "set_default_sandbox",
]
