"""Recourse on a team's own data: a table and its schema -> the `RecourseTask` GenRe fits on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from genre.classifiers.original_units import (
    OriginalUnitsClassifier,
    load_classifier,
    wrap_estimator,
)
from genre.data.encoder import Encoder, category_key, row_label, sort_key
from genre.data.schema import Schema
from genre.errors import InputError, ModelError, value_repr
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


def target_labels(df: pd.DataFrame, schema: Schema, source: str = "training data") -> np.ndarray:
    """The labels ``target == favourable`` (compared by `category_key`) of a training table.

    Raises InputError (naming `source`, column and line) if the target column is missing or
    has missing values, or if no row is favourable or none is unfavourable.
    """
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    target = schema.target
    if target not in df.columns:
        raise InputError(f"{source}: target column '{target}' not found; the columns "
                         f"are {list(df.columns)}")
    col = df[target]
    na = np.flatnonzero(col.isna().to_numpy())
    if na.size:
        raise InputError(f"{source}: column '{target}', {row_label(df.index, na[0])}: missing "
                         f"target value (NaN); fill or drop {na.size} such rows")
    fav = category_key(schema.favourable)
    keys = col.map(category_key)
    y = (keys == fav).to_numpy().astype(np.int64)
    if y.sum() == 0 or y.sum() == len(y):
        seen = sorted(set(keys.tolist()), key=sort_key)[:20]
        which = "favourable" if y.sum() == 0 else "unfavourable"
        raise InputError(f"{source}: no row of target '{target}' is {which} (favourable "
                         f"value {value_repr(schema.favourable)}; values present: {seen}); "
                         "recourse needs both outcomes")
    return y
