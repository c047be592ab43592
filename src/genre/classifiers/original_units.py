"""A user's classifier on original units (.skops or .onnx) as a `Classifier` on normalised rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from genre.classifiers.onnx import OnnxModel
from genre.classifiers.skops import load_skops, skops_bytes
from genre.data.encoder import Encoder, category_key, is_number
from genre.errors import GenreError, InputError, ModelError, value_repr


class OriginalUnitsClassifier:
    """A user's model on original units, seen as a `Classifier` on normalised arrays.

    `predict_proba(X)` maps X back with `encoder.inverse_transform` to a DataFrame in
    original units (categoricals as labels, integers as integers), asks `model` (anything with
    ``predict_proba(DataFrame) -> (n, C)`` and ``classes_``: a scikit-learn pipeline or an
    `OnnxModel`) and returns P(favourable), where the favourable column is the entry of
    ``model.classes_`` equal to the schema's favourable value (compared by `category_key`, so
    1, 1.0 and '1' match). Rows containing NaN give NaN.
    """

    batch_size = 65536

    def __init__(self, model, encoder: Encoder):
        self.model = model
        self.encoder = encoder
        schema = encoder.schema_
        classes = getattr(model, "classes_", None)
        if classes is None:
            raise ModelError(f"{type(model).__name__} has no classes_; is it fitted?")
        keys = [category_key(c) for c in classes]
        fav = category_key(schema.favourable)
        if fav not in keys:
            raise ModelError(f"the model's classes {value_repr(list(classes))} do not include the "
                             f"schema's favourable value {value_repr(schema.favourable)}")
        self.favourable_index = keys.index(fav)
        names = getattr(model, "feature_names_in_", None)
        if names is not None:
            names = [str(n) for n in names]
            missing = [n for n in names if n not in schema.names]
            if missing:
                raise ModelError(f"the model was fitted on columns {missing} that the schema "
                                 f"does not have (schema features: {schema.names})")
            self.columns: list[str] | None = names
        else:
            n_in = getattr(model, "n_features_in_", None)
            if n_in is not None and n_in != len(schema.names):
                raise ModelError(f"the model takes {n_in} features; the schema has "
                                 f"{len(schema.names)}")
            self.columns = None
        self._as_array = names is None and not isinstance(model, OnnxModel)

    def save_skops(self, path: str | Path) -> None:
        """Store the scikit-learn model as a .skops file (what `load_classifier` reads)."""
        if isinstance(self.model, OnnxModel):
            raise ModelError("an ONNX classifier is stored from its file, not re-saved")
        Path(path).write_bytes(skops_bytes(self.model))

    def frame(self, X: np.ndarray) -> pd.DataFrame:
        """Normalised rows -> the DataFrame the model is given (original units and dtypes)."""
        df = original_frame(self.encoder, X)
        return df[self.columns] if self.columns is not None else df

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2:
            raise InputError(f"expected a 2-d array, got shape {X.shape}")
        out = np.full(len(X), np.nan)
        ok = np.flatnonzero(np.isfinite(X).all(axis=1))
        for start in range(0, ok.size, self.batch_size):
            idx = ok[start:start + self.batch_size]
            df = self.frame(X[idx])
            probs = np.asarray(self.model.predict_proba(df.to_numpy() if self._as_array
                                                        else df))
            out[idx] = probs[:, self.favourable_index]
        return out


def original_frame(encoder: Encoder, X: np.ndarray) -> pd.DataFrame:
    """encoder.inverse_transform, with boolean categories as bool and numeric ones as numbers."""
    df = encoder.inverse_transform(X)
    for f in encoder.schema_.features:
        if not f.is_categorical or df[f.name].dtype != object:
            continue
        if all(isinstance(c, bool | np.bool_) for c in f.categories):
            df[f.name] = df[f.name].astype(bool)
        elif all(is_number(c) for c in f.categories):
            df[f.name] = df[f.name].astype(float)
    return df


def _probe_rows(encoder: Encoder, n: int = 64, seed: int = 0) -> np.ndarray:
    """Valid normalised rows spread over the feature space (corners, middle, random)."""
    D = encoder.n_features
    rng = np.random.default_rng(seed)
    X = np.vstack([np.zeros((1, D)), np.ones((1, D)), np.full((1, D), 0.5),
                   rng.uniform(size=(n, D))])
    X = np.clip(X, encoder.lower, encoder.upper)
    return encoder.project(X)


def load_classifier(path: str | Path, encoder: Encoder) -> OriginalUnitsClassifier:
    """A user's classifier on original units (``.skops`` or ``.onnx``) as a `Classifier`.

    `encoder` must be fitted (it maps normalised rows back to original units and carries the
    schema, whose favourable value picks the probability column). The model is tried on a few
    rows in the schema's format before it is returned, so a model made for other columns or
    labels fails here, with a ModelError naming the file.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in (".skops", ".onnx"):
        raise ModelError(f"{path}: unknown model format '{path.suffix}'; give a scikit-learn "
                         "model saved with skops.io.dump (.skops) or an ONNX model (.onnx). "
                         "Pickle/joblib files are never loaded: they can run arbitrary code")
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    if not hasattr(encoder, "schema_"):
        raise ModelError(f"{path}: the encoder must be fitted before loading a classifier")
    if path.name.lower() == "h.skops" and (path.parent / "config.json").is_file():
        raise ModelError(f"{path}: this is the classifier h genre saved with the model in "
                         f"{path.parent}; it takes genre's normalised units, while --classifier "
                         "takes a model on original units. To answer with that model use "
                         f"`genre recourse --model {path.parent}`; to refit, leave --classifier "
                         "out (genre chooses h again) or give your own pipeline on original "
                         "units")
    probe = _probe_rows(encoder)
    try:
        if ext == ".skops":
            model = load_skops(path)
        else:
            model = OnnxModel(path, encoder.schema_)
            try:
                model.resolve_classes(original_frame(encoder, probe))
            except GenreError:
                raise
            except Exception as exc:
                raise ModelError(f"{path}: the model fails on rows in the schema's format "
                                 f"({type(exc).__name__}: {exc})") from exc
        clf = OriginalUnitsClassifier(model, encoder)
    except ModelError as exc:
        msg = str(exc)
        if msg.startswith(str(path)):
            raise
        raise ModelError(f"{path}: {msg}") from exc
    check_on_probe_rows(clf, probe, str(path))
    clf.path = path
    return clf


def check_on_probe_rows(clf: OriginalUnitsClassifier, probe: np.ndarray, source: str) -> None:
    """Ask `clf` about `probe` rows; a ModelError naming `source` if it fails or does not
    return probabilities."""
    try:
        p = clf.predict_proba(probe)
    except GenreError:
        raise
    except Exception as exc:
        hint = ""
        model = getattr(clf, "model", None)
        if model is not None and hasattr(model, "n_features_in_") and getattr(
                model, "feature_names_in_", None) is None:
            hint = ("; it was trained on arrays without column names: a model saved by genre "
                    "(h.skops, on genre's normalised units) cannot take rows in original "
                    "units")
        raise ModelError(f"{source}: the model fails on rows in the schema's format "
                         f"({type(exc).__name__}: {exc}){hint}") from exc
    if p.shape != (len(probe),) or not np.all((p >= -1e-6) & (p <= 1 + 1e-6)):
        raise ModelError(f"{source}: the model's predict_proba does not return probabilities")


def wrap_estimator(model, encoder: Encoder) -> OriginalUnitsClassifier:
    """A fitted scikit-learn estimator or pipeline on original-unit DataFrames (given in
    Python) as a `Classifier`: checked on a few rows in the schema's format and for being
    storable as .skops (so the GenRe model holding it can be saved)."""
    name = type(model).__name__
    try:
        clf = OriginalUnitsClassifier(model, encoder)
    except ModelError as exc:
        raise ModelError(f"classifier {name}: {exc}") from exc
    check_on_probe_rows(clf, _probe_rows(encoder), f"classifier {name}")
    skops_bytes(model)
    return clf
