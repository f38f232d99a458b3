"""Hyperparameter and pipeline tuning: numbers, a choice and a feature function as parameters.

    python examples/sklearn_pipeline.py [local | gpt-4o-mini]      (needs backfeed[bench])
"""

import numpy as np
from _model import model_from_args
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import backfeed as bf

llm, args = model_from_args(__doc__)
X, y = load_breast_cancer(return_X_y=True)


class Pipeline(bf.Module):
    def __init__(self):
        self.model = bf.param("tree", name="model", choices=["tree", "logistic"])
        self.C = bf.param(1.0, name="C", bounds=(1e-3, 1e3), description="logistic regularisation")
        self.depth = bf.param(1, name="depth", bounds=(1, 20), description="tree depth")
        self.scale = bf.param(False, name="scale", description="standardise features")

    @bf.op(trainable=True)
    def features(self, X):
        """Return a new feature matrix (rows = samples) built from X (30 columns)."""
        return X

    def forward(self, folds):
        return cv_accuracy(self.features(X), self.model, self.C, self.depth, self.scale, folds)


@bf.op
def cv_accuracy(features, model, C, depth, scale, folds):
    """Mean cross-validated accuracy of the chosen classifier on the features."""
    clf = LogisticRegression(C=C, max_iter=500) if model == "logistic" else \
        DecisionTreeClassifier(max_depth=depth, random_state=0)
    if scale:
        clf = make_pipeline(StandardScaler(), clf)
    return float(np.mean(cross_val_score(clf, features, y, cv=folds)))


def metric(example, output):
    # the trainer passes the output's plain value
    return bf.Feedback(score=output, text=f"cross-validated accuracy {output:.3f}")


program = Pipeline()
bf.train(program, [(3, None)], valset=[(5, None)], metric=metric,
         optimizer=bf.optim.Prime(program.parameters(), llm=llm),
         budget=bf.Budget(llm_calls=args.calls))
print(program.state_dict(), "->", program(5).value)
