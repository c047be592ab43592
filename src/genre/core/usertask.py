"""Recourse on a team's own data: a table and its schema -> the `RecourseTask` GenRe fits on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from genre.classifiers.mlp import train_mlp
from genre.classifiers.original_units import (
    OriginalUnitsClassifier,
    load_classifier,
    wrap_estimator,
)
from genre.core.estimator import GenRe
from genre.core.task import Classifier, RecourseTask, SklearnClassifier
from genre.data.encoder import Encoder, target_labels
from genre.data.schema import Schema
from genre.errors import ModelError


def build_user_task(df: pd.DataFrame, schema: Schema,
                    classifier: Classifier | str | Path | None = None, seed: int = 0,
                    h_epochs: int = 100, source: str = "training data") -> RecourseTask:
    """Validate a user's training table against `schema` and return its RecourseTask.

    Labels are ``target == favourable`` (compared by `category_key`). `classifier` may be a
    `Classifier` on normalised rows, a path to a ``.skops`` / ``.onnx`` model on original
    units (see `load_classifier`), a fitted scikit-learn estimator or pipeline on original
    units (an object with ``classes_`` and ``predict_proba``, see `wrap_estimator`), or None
    to choose one (see `choose_classifier`: the protocol's MLP or a
    HistGradientBoostingClassifier, by held-out ROC AUC; its held-out figures are in the
    task's `classifier_report`). An `OriginalUnitsClassifier` is
    re-bound to this task's encoder.

    Raises InputError (naming `source`, column and line) if the target column is missing or
    has missing values, if no row is favourable or none is unfavourable, or if a feature cell
    does not match the schema.
    """
    y = target_labels(df, schema, source)
    encoder = Encoder(schema).fit(df, source=source)
    X = encoder.transform(df, source=source)
    report = None
    if classifier is None:
        classifier, report = choose_classifier(X, y, seed=seed, h_epochs=h_epochs)
    elif isinstance(classifier, str | Path):
        classifier = load_classifier(classifier, encoder)
    elif isinstance(classifier, OriginalUnitsClassifier):
        bound = OriginalUnitsClassifier(classifier.model, encoder)
        if hasattr(classifier, "path"):
            bound.path = classifier.path
        classifier = bound
    elif hasattr(classifier, "classes_") and hasattr(classifier, "predict_proba"):
        classifier = wrap_estimator(classifier, encoder)
    elif not isinstance(classifier, Classifier):
        raise ModelError(f"classifier: expected an object with predict_proba, got "
                         f"{type(classifier).__name__}")
    return RecourseTask(encoder, X, y, classifier, name="custom", seed=seed,
                        classifier_report=report)


HOLDOUT = 0.2  # share of rows held out (stratified) to choose and judge the default h
MIN_PER_CLASS = 5  # fewer rows of a class: no held-out choice, the MLP is trained on all


def choose_classifier(X: np.ndarray, y: np.ndarray, *, seed: int = 0, h_epochs: int = 100,
                      refit: bool = True) -> tuple[Classifier, dict]:
    """The default h for a user's data: the better of two by held-out ROC AUC.

    A stratified 20% of the rows is held out; the protocol's MLP (D-10-10-10-1, balanced
    class weights, `h_epochs` epochs) and scikit-learn's HistGradientBoostingClassifier
    (seeded) are trained on the rest; the one with the higher AUC on the held-out rows
    wins (the MLP on a tie) and is refitted on all rows (unless refit is False: then the
    winner trained on 80% is returned). Returns it and a report: kind
    ("mlp" or "hgb"), auc and accuracy (of the winner trained on 80%, on the held-out
    rows), majority (the accuracy of always answering the majority class there), auc_mlp,
    auc_hgb, n_holdout. With fewer than 5 rows in a class there is nothing to hold out:
    the MLP is trained on all rows and the figures are None.
    """
    def fit(kind: str, rows: np.ndarray, labels: np.ndarray) -> Classifier:
        if kind == "mlp":
            return train_mlp(rows, labels, balanced=True, epochs=h_epochs, seed=seed)
        return SklearnClassifier(HistGradientBoostingClassifier(random_state=seed)
                                 .fit(rows, labels))

    report = dict.fromkeys(("auc", "accuracy", "majority", "auc_mlp", "auc_hgb",
                            "n_holdout"))
    if np.bincount(y, minlength=2).min() < MIN_PER_CLASS:
        return fit("mlp", X, y), report | {"kind": "mlp"}
    X_tr, X_ho, y_tr, y_ho = train_test_split(X, y, test_size=HOLDOUT, stratify=y,
                                              random_state=seed)
    fitted = {kind: fit(kind, X_tr, y_tr) for kind in ("mlp", "hgb")}
    p = {kind: clf.predict_proba(X_ho) for kind, clf in fitted.items()}
    auc = {kind: float(roc_auc_score(y_ho, q)) for kind, q in p.items()}
    kind = "hgb" if auc["hgb"] > auc["mlp"] else "mlp"
    report |= {"kind": kind, "auc": auc[kind],
               "accuracy": float(np.mean((p[kind] > 0.5) == y_ho)),
               "majority": float(max(y_ho.mean(), 1 - y_ho.mean())),
               "auc_mlp": auc["mlp"], "auc_hgb": auc["hgb"], "n_holdout": len(y_ho)}
    return (fit(kind, X, y) if refit else fitted[kind]), report


def fit_user_table(model: GenRe, df: pd.DataFrame, schema: Schema,
                   classifier: Classifier | str | Path | Any = None, *, seed: int = 0,
                   h_epochs: int = 100, source: str = "training data",
                   on_task: Callable[[RecourseTask], None] | None = None) -> GenRe:
    """Fit `model` on a user's table: the one way both genre.fit and `genre fit --data` do it.

    Parameters
    ----------
    model : GenRe
        Unfitted, with its hyper-parameters set.
    df : DataFrame
        The training table, original units, target included.
    schema : Schema
        Its schema.
    classifier : Classifier, path, scikit-learn estimator or None
        See build_user_task.
    seed : int
        Seeds the default h.
    h_epochs : int
        Epochs of the default MLP h.
    source : str
        Names the table in error messages.
    on_task : callable, optional
        Called with the task before GenRe is fitted (the CLI reports the chosen h there).

    Returns
    -------
    GenRe
        `model`, fitted; a classifier read from a .skops/.onnx file is remembered
        (classifier_path_) so that save stores it beside the model.
    """
    task = build_user_task(df, schema, classifier, seed=seed, h_epochs=h_epochs, source=source)
    if on_task is not None:
        on_task(task)
    model.fit(task)
    path = getattr(task.classifier, "path", None)  # read from a .skops/.onnx file
    if path is not None:
        model.classifier_path_ = Path(path)
    return model
