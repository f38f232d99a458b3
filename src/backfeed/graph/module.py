"""`bf.Module`: a container that finds its parameters, and saves and loads them as JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from .node import Param
from .op import Op


class Module:
    """Base class for traced programs. Parameters are found in attributes, lists, dicts,
    submodules and trainable `@bf.op` methods (each instance owns its own copies).

    Subclasses need not call `super().__init__()`.
    """

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Param]]:
        """(dotted path, parameter) pairs; an unnamed parameter is named by its path."""
        yield from self._walk(prefix, set())

    def _walk(self, prefix: str, seen: set[int]) -> Iterator[tuple[str, Param]]:
        for cls in type(self).__mro__:
            for attr, value in vars(cls).items():
                if isinstance(value, Op) and value.trainable:
                    code = value.code_for(self)
                    if id(code) not in seen:
                        seen.add(id(code))
                        code.name = prefix + attr  # unique across instances and submodules
                        yield prefix + attr, code
        for attr, value in vars(self).items():
            if attr.startswith("_bf_code_"):
                continue
            yield from _walk_value(value, prefix + attr, seen)

    def parameters(self) -> list[Param]:
        """Every trainable parameter, in a stable order, each once."""
        return [p for _, p in self.named_parameters()]

    def state_dict(self) -> dict[str, Any]:
        """{path: value} for every parameter, ready for json.dumps."""
        return {path: _copy(p._value) for path, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Set parameters from `state`; unknown or (when strict) missing paths raise KeyError."""
        params = dict(self.named_parameters())
        unknown = sorted(set(state) - set(params))
        missing = sorted(set(params) - set(state))
        if unknown:
            raise KeyError(f"unknown parameter(s) in state: {unknown}; known: {sorted(params)}")
        if strict and missing:
            raise KeyError(f"state is missing parameter(s): {missing}")
        checked = {path: params[path].validate(_copy(value)) for path, value in state.items()}
        for path, value in checked.items():  # all or nothing: a bad value leaves every param as is
            params[path]._value = value

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state dict as JSON (never pickle)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.state_dict(), f, indent=2, ensure_ascii=False)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Read a state dict written by `save`."""
        with open(path, encoding="utf-8") as f:
            try:
                state = json.load(f)
            except RecursionError:
                raise ValueError(f"{path}: the JSON nests too deeply to be a state dict") from None
        if not isinstance(state, dict):
            raise ValueError(f"{path}: a state dict is a JSON object {{name: value}}, "
                             f"not a {type(state).__name__}")
        self.load_state_dict(state)


def _walk_value(value: Any, path: str, seen: set[int]) -> Iterator[tuple[str, Param]]:
    if isinstance(value, Param):
        if id(value) not in seen:
            seen.add(id(value))
            if value.name.startswith("param") and value.name[5:].isdigit():
                value.name = path  # an auto-named parameter takes its attribute path
            yield path, value
    elif isinstance(value, Module):
        if id(value) not in seen:
            seen.add(id(value))
            yield from value._walk(path + ".", seen)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _walk_value(item, f"{path}.{i}", seen)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk_value(item, f"{path}.{key}", seen)


def _copy(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.loads(json.dumps(value))
    return value
