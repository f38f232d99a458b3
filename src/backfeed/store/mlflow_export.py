"""Export a stored run to MLflow (`pip install 'backfeed[mlflow]'`); mlflow is imported lazily.

The one exporter: `backfeed export RUN --to mlflow` calls it too.
"""

from __future__ import annotations

import json
from typing import Any

from .runstore import RunStore


def export_mlflow(store: RunStore, run_id: str, *, experiment: str | None = None,
                  tracking_uri: str | None = None, document: dict[str, Any] | None = None) -> str:
    """Log a run to MLflow: its config and best values as params (`param.<name>`), its status,
    strategy and stop reason as tags, per step the best score, the step's candidate's score
    and what the step spent (calls, tokens, dollars), and the best values and decisions as
    JSON artifacts (with `document`, the whole run as `backfeed_run.json` too). Returns the
    MLflow run id."""
    try:
        import mlflow
    except ImportError as e:
        raise ImportError("export_mlflow needs mlflow: pip install 'backfeed[mlflow]'") from e
    run = store.get_run(run_id)
    if tracking_uri is not None:
        mlflow.set_tracking_uri(tracking_uri)
    if experiment is not None:
        mlflow.set_experiment(experiment)
    candidates = {c.id: c for c in store.candidates(run_id)}
    best = candidates.get(run.best_candidate) if run.best_candidate is not None else None
    params = {k: str(v)[:500] for k, v in _flatten(run.config or {}).items()}
    params |= {f"param.{k}": _text(v)[:500] for k, v in (best.values if best else {}).items()}
    strategy = (run.config or {}).get("strategy")
    with mlflow.start_run(run_name=run.name or run.id) as active:
        mlflow.set_tags({"backfeed.run_id": run.id, "backfeed.status": run.status,
                         "backfeed.stop_reason": run.stop_reason or "",
                         "backfeed.strategy": str((strategy or {}).get("name", "")
                                                  if isinstance(strategy, dict) else strategy or "")})
        mlflow.log_params(params)
        last: dict[str, Any] = {}
        for step in store.steps(run_id):  # spend is a running total: each step logs its own
            spend = step.spend or {}
            cand = candidates.get(step.candidate) if step.candidate is not None else None
            metrics = {"best_score": step.best_score,
                       "candidate_score": cand.val_score if cand else None,
                       **{k: (spend.get(k) or 0) - (last.get(k) or 0)
                          for k in ("calls", "tokens", "usd")}}
            last = spend
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None},
                               step=step.step)
        if best is not None:
            mlflow.log_dict(best.values, "best_values.json")
        mlflow.log_dict([d.__dict__ for d in store.decisions(run_id)], "decisions.json")
        if document is not None:
            mlflow.log_dict(document, "backfeed_run.json")
        return str(active.info.run_id)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=repr)


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
