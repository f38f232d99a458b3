"""`backfeed eval`: re-score saved or exported values of a program on a dataset."""

from __future__ import annotations

import importlib
import json
import os
import runpy
import sys
from pathlib import Path
from typing import Any

from ..train.executors import Threads
from ..train.scoring import EvalReport, evaluate

_files: dict[Path, dict[str, Any]] = {}


def load_object(spec: str) -> Any:
    """The object named by `path/to/file.py:name` or `package.module:name`."""
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise ValueError(f"{spec!r}: name an object as FILE.py:NAME or MODULE:NAME")
    if where.endswith(".py"):
        path = Path(where).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {where}")
        if path not in _files:
            sys.path.insert(0, str(path.parent))  # the file's own imports (e.g. a _helpers.py)
            _files[path] = runpy.run_path(str(path), run_name=f"backfeed_eval_{path.stem}")
        namespace = _files[path]
    else:
        namespace = vars(importlib.import_module(where))
    if name not in namespace:
        raise AttributeError(f"{where} defines no {name!r}")
    return namespace[name]


def load_program(spec: str) -> Any:
    """A module instance from a spec naming an instance, a class, or a function making one."""
    obj = load_object(spec)
    if callable(obj) and not hasattr(obj, "load_state_dict"):
        obj = obj()
    elif isinstance(obj, type):
        obj = obj()
    if not hasattr(obj, "load_state_dict"):
        raise TypeError(f"{spec} is not a bf.Module (nor a class or function returning one)")
    return obj


def load_data(spec: str) -> list[Any]:
    """Examples from a .json file (a list), a .jsonl file (one example a line) or FILE.py:NAME."""
    path = Path(spec)
    if path.suffix in (".json", ".jsonl") and path.is_file():
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            data = json.loads(text)
            if not isinstance(data, list):
                raise ValueError(f"{spec}: expected a JSON list of examples")
            return data
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return list(load_object(spec))


def rescore(program: Any, values: str | os.PathLike[str], data: list[Any], metric: Any,
            threads: int = 1, inputs: list[str] | None = None) -> EvalReport:
    """Load `values` (an exported folder or a Module.save file) and score every example with
    `bf.evaluate` (each in a copy of the caller's context, so `bf.llm.using` reaches threads;
    `inputs`: the fields of dict examples the program takes)."""
    program.load(values)
    return evaluate(program, data, metric, executor=Threads(threads), progress=False,
                    inputs=inputs)


def exported_score(values: str | os.PathLike[str]) -> float | None:
    """The score an exported folder's manifest records (None for a plain JSON file)."""
    manifest = Path(values) / "manifest.json"
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text(encoding="utf-8")).get("score")
