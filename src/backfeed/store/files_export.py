"""Export a run's best values as plain files (text .txt, code .py, the rest in values.json).

The folder holds `manifest.json`: the run, its score, the models, the date and, for each
parameter, its file and the step (and candidate) where its value first appeared (step -1: the
seed, the value the run started from).
`bf.Module.load(folder)` reads such a folder back.
"""

from __future__ import annotations

import ast
import json
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .runstore import CandidateRecord, RunStore

MANIFEST = "manifest.json"
VALUES = "values.json"


def export_files(store: RunStore, run_id: str, directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Write run `run_id`'s best values into `directory` (created if needed); return the manifest.

    Text parameters become `<name>.txt`, code parameters `<name>.py` (each file holds the value
    exactly), and numbers, booleans, lists and dicts go together in `values.json`.
    """
    run = store.get_run(run_id)
    if run.best_candidate is None:
        raise ValueError(f"run {run_id} has no best candidate yet (nothing was evaluated)")
    best = store.get_candidate(run_id, run.best_candidate)
    kinds: dict[str, str] = run.config.get("param_kinds") or {}
    by_id = {c.id: c for c in store.lineage(run_id, best.id)}
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {}
    params: dict[str, dict[str, Any]] = {}
    used: set[str] = {MANIFEST, VALUES}
    for name, value in best.values.items():
        origin = _origin(by_id, best, name)
        entry: dict[str, Any] = {"step": origin.step, "candidate": origin.id}
        kind = kinds.get(name) or _kind_of(value)
        if isinstance(value, str):
            file = _file_name(name, ".py" if kind == "code" else ".txt", used)
            (out / file).write_text(value, encoding="utf-8", newline="")
            entry.update(kind="code" if kind == "code" else "text", file=file)
        else:
            values[name] = value
            entry.update(kind=kind, file=VALUES)
        params[name] = entry
    if values:
        (out / VALUES).write_text(json.dumps(values, indent=2, ensure_ascii=False) + "\n",
                                  encoding="utf-8")
    manifest = {
        "run": run.id,
        "run_name": run.name,
        "score": run.best_score,
        "candidate": best.id,
        "model": _model(store, run_id, "optimizer"),
        "program_model": _model(store, run_id, "program"),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.updated_at)),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "parameters": params,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                encoding="utf-8")
    return manifest


def _origin(by_id: dict[int, CandidateRecord], best: CandidateRecord, name: str
            ) -> CandidateRecord:
    """The oldest ancestor of `best` from which `name` kept its value unchanged."""
    value, current = best.values[name], best
    while True:
        parent = next((by_id[p] for p in current.parents
                       if p in by_id and by_id[p].values.get(name) == value), None)
        if parent is None:
            return current
        current = parent


def _kind_of(value: Any) -> str:
    """A value's kind when the run did not record it (runs older than param_kinds)."""
    if isinstance(value, str):
        try:
            tree = ast.parse(value)
        except SyntaxError:
            return "str"
        defines = any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                      for n in tree.body)
        return "code" if defines else "str"
    return type(value).__name__


def _file_name(name: str, suffix: str, used: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip(".") or "param"
    file, n = stem + suffix, 2
    while file in used:
        file, n = f"{stem}_{n}{suffix}", n + 1
    used.add(file)
    return file


def _model(store: RunStore, run_id: str, role: str) -> str | None:
    """The model called most in this run by `role` (None if it made no call)."""
    models = Counter(c.model for c in store.llm_calls(run_id, role=role) if c.model)
    return models.most_common(1)[0][0] if models else None
