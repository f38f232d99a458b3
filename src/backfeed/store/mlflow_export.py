"""Export a stored run to MLflow (`pip install 'backfeed[mlflow]'`); mlflow is imported lazily."""

from __future__ import annotations

from typing import Any

from .runstore import RunStore


def export_mlflow(store: RunStore, run_id: str, *, experiment: str | None = None,
                  tracking_uri: str | None = None) -> str:
    """Log a run's config as params, best score and spend per step as metrics, and the best
    values and decisions as JSON artifacts. Returns the MLflow run id."""
    try:
        import mlflow
    except ImportError as e:
        raise ImportError("export_mlflow needs mlflow: pip install 'backfeed[mlflow]'") from e
    run = store.get_run(run_id)
    if tracking_uri is not None:
        mlflow.set_tracking_uri(tracking_uri)
    if experiment is not None:
        mlflow.set_experiment(experiment)
    params = _flatten(run.config)
    with mlflow.start_run(run_name=run.name or run.id) as active:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.set_tags({"backfeed.run_id": run.id, "backfeed.status": run.status,
                         "backfeed.stop_reason": run.stop_reason or ""})
        for step in store.steps(run_id):
            metrics = {"spend_calls": float(step.spend.get("calls", 0)),
                       "spend_usd": float(step.spend.get("usd", 0.0)),
                       "spend_tokens": float(step.spend.get("tokens", 0))}
            if step.best_score is not None:
                metrics["best_score"] = step.best_score
            mlflow.log_metrics(metrics, step=step.step + 1)
        best = next((c for c in store.candidates(run_id) if c.id == run.best_candidate), None)
        if best is not None:
            mlflow.log_dict(best.values, "best_values.json")
        mlflow.log_dict([d.__dict__ for d in store.decisions(run_id)], "decisions.json")
        return str(active.info.run_id)


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
