"""Hyperparameter and pipeline tuning: a scikit-learn classifier on the breast-cancer dataset.

Parameters: the model (a choice), numbers (C, n_neighbors, max_depth), a flag (scale) and a
feature-engineering function (code). Examples are cross-validation folds of the training part;
the test example fits on the whole training part and scores on the held-out part.
"""

from __future__ import annotations

import warnings
from functools import cache
from typing import Any

import numpy as np

import backfeed as bf

from . import Example, Task, plain, register

MODELS = ["logistic_regression", "svm", "knn", "decision_tree"]


@cache
def load_splits(seed: int, folds: int) -> dict[str, tuple[Any, Any, Any, Any]]:
    """{"fold<i>": (X_fit, y_fit, X_eval, y_eval), ..., "test": (...)} for the seed."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import StratifiedKFold, train_test_split

    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=seed, stratify=y
    )
    splits = {"test": (X_train, y_train, X_test, y_test)}
    kfold = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for i, (fit, held) in enumerate(kfold.split(X_train, y_train)):
        splits[f"fold{i}"] = (X_train[fit], y_train[fit], X_train[held], y_train[held])
    return splits


class SklearnPipeline(bf.Module):
    """features -> (optional scaling) -> classifier, scored by accuracy on the evaluation part."""

    def __init__(self, seed: int, folds: int) -> None:
        self.seed, self.folds = seed, folds
        self.model = bf.param("decision_tree", name="model", choices=MODELS,
                              description="which classifier to fit")
        self.C = bf.param(1.0, name="C", bounds=(1e-4, 1e4),
                          description="inverse regularisation strength (logistic_regression, svm)")
        self.n_neighbors = bf.param(1, name="n_neighbors", bounds=(1, 50),
                                    description="neighbours voting (knn)")
        self.max_depth = bf.param(1, name="max_depth", bounds=(1, 30),
                                  description="tree depth (decision_tree)")
        self.scale = bf.param(False, name="scale",
                              description="standardise features (mean 0, variance 1) before fitting")

    @bf.op(trainable=True)
    def engineer_features(self, X: Any) -> Any:
        """Return the feature matrix (numpy array, one row per sample) built from raw X (30 columns)."""
        return X

    def forward(self, split: Any) -> Any:
        X_fit, y_fit, X_eval, y_eval = load_splits(self.seed, self.folds)[plain(split)]
        features_fit = self.engineer_features(X_fit)
        features_eval = self.engineer_features(X_eval)
        return fit_and_score(features_fit, y_fit, features_eval, y_eval, self.model, self.C,
                             self.n_neighbors, self.max_depth, self.scale)


@bf.op
def fit_and_score(
    X_fit: Any, y_fit: Any, X_eval: Any, y_eval: Any, model: str, C: float,
    n_neighbors: int, max_depth: int, scale: bool,
) -> dict[str, Any]:
    """Fit the chosen classifier on (X_fit, y_fit); accuracy and errors on (X_eval, y_eval)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    X_fit, X_eval = np.asarray(X_fit, dtype=float), np.asarray(X_eval, dtype=float)
    if X_fit.ndim != 2 or X_fit.shape[0] != len(y_fit) or X_eval.shape[0] != len(y_eval):
        raise ValueError(
            f"features must be 2-D with one row per sample; got {X_fit.shape} for "
            f"{len(y_fit)} samples"
        )
    if not (np.isfinite(X_fit).all() and np.isfinite(X_eval).all()):
        raise ValueError("features contain NaN or infinity")
    estimator = {
        "logistic_regression": lambda: LogisticRegression(C=C, max_iter=100),
        "svm": lambda: SVC(C=C),
        "knn": lambda: KNeighborsClassifier(n_neighbors=n_neighbors),
        "decision_tree": lambda: DecisionTreeClassifier(max_depth=max_depth, random_state=0),
    }[model]()
    pipeline = make_pipeline(StandardScaler(), estimator) if scale else estimator
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline.fit(X_fit, y_fit)
    predicted = pipeline.predict(X_eval)
    wrong = predicted != y_eval
    return {
        "accuracy": float(1.0 - wrong.mean()),
        "errors": int(wrong.sum()),
        "false_negatives": int((wrong & (y_eval == 1)).sum()),
        "false_positives": int((wrong & (y_eval == 0)).sum()),
        "n_features": int(X_fit.shape[1]),
        "warnings": sorted({type(w.message).__name__ + ": " + str(w.message).split("\n")[0]
                            for w in caught})[:2],
    }


def sklearn_metric(example: Example, output: Any) -> bf.Feedback:
    """Accuracy on the evaluation part; the text names errors and fitting warnings."""
    result = plain(output)
    if not isinstance(result, dict) or "accuracy" not in result:
        return bf.Feedback(score=0.0, text=f"not a fit result: {result!r}")
    accuracy = result["accuracy"]
    text = (f"accuracy {accuracy:.3f} on {example[0]}: {result['errors']} errors "
            f"({result['false_negatives']} false negatives, {result['false_positives']} false "
            f"positives) with {result['n_features']} features")
    if result["warnings"]:
        text += "; warnings while fitting: " + " | ".join(result["warnings"])
    return bf.Feedback(score=accuracy, text=text, details={"accuracy": accuracy})


@register("sklearn")
def sklearn_task(seed: int, size: str) -> Task:
    folds = 3 if size == "quick" else 5
    names = [f"fold{i}" for i in range(folds)]
    return Task(
        name="sklearn",
        family="sklearn",
        seed=seed,
        size=size,
        description="Choose the classifier, its hyperparameters and the feature engineering "
        "for the breast-cancer dataset (30 numeric features, 2 classes).",
        build=lambda llm=None: SklearnPipeline(seed, folds),
        metric=sklearn_metric,
        trainset=[(name, None) for name in names[:-1]],
        valset=[(names[-1], None)],
        testset=[("test", None)],
    )
