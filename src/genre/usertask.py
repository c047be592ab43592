"""Recourse on a team's own data: a table and its schema -> the `RecourseTask` GenRe fits on."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from genre.classifiers.original_units import (
    OriginalUnitsClassifier,
    load_classifier,
    wrap_estimator,
)
from genre.data.encoder import Encoder, target_labels
from genre.data.schema import Schema
from genre.errors import ModelError
from genre.task import Classifier, RecourseTask


def build_user_task(df: pd.DataFrame, schema: Schema,
                    classifier: Classifier | str | Path | None = None, seed: int = 0,
                    h_epochs: int = 100, source: str = "training data") -> RecourseTask:
    """Validate a user's training table against `schema` and return its RecourseTask.

    Labels are ``target == favourable`` (compared by `category_key`). `classifier` may be a
    `Classifier` on normalised rows, a path to a ``.skops`` / ``.onnx`` model on original
    units (see `load_classifier`), a fitted scikit-learn estimator or pipeline on original
    units (an object with ``classes_`` and ``predict_proba``, see `wrap_estimator`), or None
    to train the protocol's h (the D-10-10-10-1 MLP with balanced class weights, `h_epochs`
    epochs, seeded). An `OriginalUnitsClassifier` is
    re-bound to this task's encoder.

    Raises InputError (naming `source`, column and line) if the target column is missing or
    has missing values, if no row is favourable or none is unfavourable, or if a feature cell
    does not match the schema.
    """
    y = target_labels(df, schema, source)
    encoder = Encoder(schema).fit(df, source=source)
    X = encoder.transform(df, source=source)
    if classifier is None:
        from genre.classifiers.mlp import train_mlp

        classifier = train_mlp(X, y, balanced=True, epochs=h_epochs, seed=seed)
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
    return RecourseTask(encoder, X, y, classifier, name="custom", seed=seed)
