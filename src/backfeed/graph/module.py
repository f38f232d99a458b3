"""`bf.Module`: a container that finds its parameters, and saves and loads them as JSON."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

from .node import Param
from .op import BoundOp, Op


class Module:
    """Base class for traced programs. Parameters are found in attributes, lists, dicts,
    submodules, trainable `@bf.op` methods and trainable ops stored as attributes (each
    instance owns its own copies of its methods' code).

    Names are qualified by attribute path when an attribute is assigned: a parameter created
    without a name takes its path (`tools.0.k`), a named one keeps its name within its module
    (`retrieve.prompt` for `bf.param(..., name="prompt")` in the submodule `retrieve`), so a
    submodule used twice gives two sets of names. `state_dict()` is keyed by these names.
    Fill a list or dict of parameters before assigning it: later appends are not renamed.

    Subclasses need not call `super().__init__()`.
    """

    def __setattr__(self, attr: str, value: Any) -> None:
        object.__setattr__(self, attr, value)
        if attr.startswith("_"):
            return
        prefix = self.__dict__.get("_bf_prefix", "")  # this module's own path, once attached
        for _, name, p in _found_in(value, prefix + attr, prefix, set()):
            p.name = name
        for path, module in _modules_in(value, prefix + attr, set()):
            object.__setattr__(module, "_bf_prefix", path + ".")

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Param]]:
        """(name, parameter) pairs, each parameter once; a name clash is an error."""
        owners: dict[str, str] = {}
        for path, _, p in self._found(prefix="", seen=set()):
            if p.name in owners:
                raise ValueError(
                    f"two parameters of {type(self).__name__} are named {p.name!r} (at "
                    f"{owners[p.name]!r} and {path!r}); give one another name= or leave name= "
                    "out so the attribute path names it"
                )
            owners[p.name] = path
            yield prefix + p.name, p

    def _found(self, prefix: str, seen: set[int]) -> Iterator[tuple[str, str, Param]]:
        """(attribute path, qualified name, parameter) for every parameter, by structure."""
        for cls in type(self).__mro__:
            for attr, value in vars(cls).items():
                if isinstance(value, Op) and value.trainable:
                    code = value.code_for(self)
                    if code is not None and id(code) not in seen:
                        seen.add(id(code))
                        yield prefix + attr, prefix + attr, code
        for attr, value in vars(self).items():
            if not attr.startswith("_"):
                yield from _found_in(value, prefix + attr, prefix, seen)

    def parameters(self) -> list[Param]:
        """Every trainable parameter, in a stable order, each once."""
        return [p for _, p in self.named_parameters()]

    def state_dict(self) -> dict[str, Any]:
        """{name: value} for every parameter, ready for json.dumps."""
        return {name: _copy(p._value) for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Set parameters from `state`; unknown or (when strict) missing names raise KeyError."""
        params = dict(self.named_parameters())
        unknown = sorted(set(state) - set(params))
        missing = sorted(set(params) - set(state))
        if unknown:
            raise KeyError(f"unknown parameter(s) in state: {unknown}; known: {sorted(params)}")
        if strict and missing:
            raise KeyError(f"state is missing parameter(s): {missing}")
        checked = {name: params[name].validate(_copy(value)) for name, value in state.items()}
        for name, value in checked.items():  # all or nothing: a bad value leaves every param as is
            params[name]._value = value

    @contextlib.contextmanager
    def using(self, values: dict[str, Any]) -> Iterator[Module]:
        """Within the block the parameters named in `values` have those values (checked, all
        or nothing); the values they had come back on leaving it, also when it raises. The
        trainer evaluates and proposes from a candidate this way; the values a candidate is
        made of are never read back from the parameters."""
        before = self.state_dict()
        self.load_state_dict(values, strict=False)
        try:
            yield self
        finally:
            self.load_state_dict(before)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state dict as JSON (never pickle)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.state_dict(), f, indent=2, ensure_ascii=False)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Read a state dict written by `save`, or a folder written by
        `backfeed export RUN --to files -o DIR` (its manifest.json names each value's file)."""
        if os.path.isdir(path):
            self.load_state_dict(read_exported(path))
            return
        with open(path, encoding="utf-8") as f:
            try:
                state = json.load(f)
            except RecursionError:
                raise ValueError(f"{path}: the JSON nests too deeply to be a state dict") from None
        if not isinstance(state, dict):
            raise ValueError(f"{path}: a state dict is a JSON object {{name: value}}, "
                             f"not a {type(state).__name__}")
        self.load_state_dict(state)


def read_exported(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """{name: value} from an exported folder: text and code files read exactly, the rest
    from values.json, as its manifest.json says."""
    manifest_path = os.path.join(folder, "manifest.json")
    if not os.path.isfile(manifest_path):
        raise FileNotFoundError(
            f"{folder} has no manifest.json; write one with `backfeed export RUN --to files -o "
            f"{folder}`, or pass the JSON file written by Module.save"
        )
    with open(manifest_path, encoding="utf-8") as f:
        entries = json.load(f)["parameters"]
    values: dict[str, Any] = {}
    state: dict[str, Any] = {}
    for name, entry in entries.items():
        file = os.path.join(folder, entry["file"])
        if entry["file"] == "values.json":
            if not values:
                with open(file, encoding="utf-8") as f:
                    values = json.load(f)
            state[name] = values[name]
        else:
            with open(file, encoding="utf-8", newline="") as f:
                state[name] = f.read()
    return state


def _found_in(
    value: Any, path: str, prefix: str, seen: set[int]
) -> Iterator[tuple[str, str, Param]]:
    """(attribute path, qualified name, parameter) for the parameters in `value`, held at
    `path` in a module whose own path is `prefix`: a named parameter is `prefix + name`, an
    unnamed one its path."""
    if isinstance(value, Param):
        if id(value) not in seen:
            seen.add(id(value))
            yield path, (path if value.given_name is None else prefix + value.given_name), value
    elif isinstance(value, Module):
        if id(value) not in seen:
            seen.add(id(value))
            yield from value._found(path + ".", seen)
    elif isinstance(value, Op | BoundOp):  # a trainable op stored as an attribute
        code = value.code
        if code is not None and id(code) not in seen:
            seen.add(id(code))
            yield path, path, code
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _found_in(item, f"{path}.{i}", prefix, seen)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _found_in(item, f"{path}.{key}", prefix, seen)


def _modules_in(value: Any, path: str, seen: set[int]) -> Iterator[tuple[str, Module]]:
    """(path, module) for the modules in `value` and in their attributes, at any depth."""
    if isinstance(value, Module):
        if id(value) not in seen:
            seen.add(id(value))
            yield path, value
            for attr, item in vars(value).items():
                if not attr.startswith("_"):
                    yield from _modules_in(item, f"{path}.{attr}", seen)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _modules_in(item, f"{path}.{i}", seen)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _modules_in(item, f"{path}.{key}", seen)


def _copy(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.loads(json.dumps(value))
    return value
