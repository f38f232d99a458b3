"""Limits around model-written code: `Sandbox` and the process-wide default."""

from __future__ import annotations

from typing import Any

_default: Any = None


def set_default_sandbox(sandbox: Any) -> None:
    """Run every trainable op without its own `sandbox=` under `sandbox` (None turns it off)."""
    global _default
    _default = sandbox


def get_default_sandbox() -> Any:
    """The sandbox set by `set_default_sandbox`, or None."""
    return _default
