"""The Python API in original units: a DataFrame and a schema in, recourse DataFrames out.

    schema = genre.Schema.infer(df, target="approved")
    model = genre.fit(df, schema, classifier=pipeline, max_epochs=50)
    result = model.recourse(people)              # GenRe.recourse: the CLI's recourse.csv
    diff = genre.changes(people, result)         # person, option, feature, from, to
    model.save("model"); genre.load("model")

These are thin: the work is done by genre.core.usertask.build_user_task, GenRe and genre.tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from genre.core.estimator import GenRe
from genre.core.report import announce, classifier_lines, training_lines
from genre.core.usertask import fit_user_table
from genre.data.schema import Schema
from genre.errors import InputError
from genre.tables.recourse import META_COLUMNS, profile_changes


def fit(df: pd.DataFrame, schema: Schema | str | Path, classifier: Any = None, *,
        seed: int = 0, h_epochs: int = 100, **params):
    """Fit GenRe on your table `df` (original units, target column included).

    schema: a `genre.Schema` or the path of a schema YAML file. classifier: None (genre
    chooses h: the protocol's MLP, `h_epochs` epochs, or scikit-learn's
    HistGradientBoostingClassifier, whichever has the higher ROC AUC on a held-out 20%;
    see genre.core.usertask.choose_classifier), a fitted scikit-learn estimator or
    pipeline that takes DataFrames in original units (stored as .skops when the model is
    saved), or the path of a .skops/.onnx file. params: GenRe hyper-parameters (e.g.
    max_epochs=50); seed seeds h and GenRe. Returns the fitted `genre.GenRe`.

    What it reports: the chosen h's held-out AUC, accuracy and majority-class baseline
    (INFO on the `genre.fit` logger, or printed to stderr when logging is not configured
    and progress is on; kept as `model.classifier_report_` and saved in config.json; a
    GenreWarning when h is no better than the majority class), and GenRe's training
    summary (`model.training_summary()`; a GenreWarning when its best epoch is its last or
    fewer than 50 validation pairs judged it). `genre info DIR` shows both.
    """
    if isinstance(schema, str | Path):
        schema = Schema.from_yaml(schema)
    elif not isinstance(schema, Schema):
        raise InputError(f"schema: expected a genre.Schema or a YAML path, got "
                         f"{type(schema).__name__}")
    model = GenRe().set_params(**(params | {"seed": seed}))  # names and values checked
    echo = bool(params.get("progress", True))  # printed where no logging is set up
    model = fit_user_table(model, df, schema, classifier, seed=seed, h_epochs=h_epochs,
                           on_task=lambda task: announce(
                               *classifier_lines(task.classifier_report), echo=echo))
    announce(*training_lines(model.training_summary(), model.max_epochs), echo=echo)
    return model


def load(path: str | Path) -> GenRe:
    """A GenRe model saved by `model.save(path)` or `genre fit --out path`.

    Parameters
    ----------
    path : str or Path
        The model directory.

    Returns
    -------
    GenRe
    """
    return GenRe.load(path)


def changes(df: pd.DataFrame, result: pd.DataFrame, id_column: str | None = None
            ) -> pd.DataFrame:
    """The long view of `result = model.recourse(df, ...)`: one row per changed feature of
    each profile with status 'recourse', with the columns person, the id column (when the
    result carries one), option, feature, from (df's value) and to (the profile's value)."""
    if not isinstance(df, pd.DataFrame) or not isinstance(result, pd.DataFrame):
        raise InputError("changes(df, result): expected two pandas DataFrames")
    id_column = id_column if id_column is not None else result.attrs.get("id_column")
    missing = [c for c in ("person", "status") if c not in result.columns]
    if missing:
        raise InputError(f"result: missing columns {missing}; pass what model.recourse returns")
    features = [c for c in result.columns
                if c in df.columns and c not in META_COLUMNS and c != id_column]
    return profile_changes(df, result, features, id_column=id_column)
