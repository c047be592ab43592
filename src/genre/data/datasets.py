"""Bundled datasets: adult, compas, heloc (CARLA's preprocessed split) and 2-D synthetic sets."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

from genre.data.schema import Feature, Schema, python_scalar
from genre.errors import InputError


@dataclass(frozen=True)
class Dataset:
    """Train/test tables in original units (target column included) and their schema."""

    name: str
    schema: Schema
    train: pd.DataFrame
    test: pd.DataFrame

    @property
    def X_train(self) -> pd.DataFrame:
        return self.train[self.schema.names]

    @property
    def X_test(self) -> pd.DataFrame:
        return self.test[self.schema.names]

    def labels(self, df: pd.DataFrame) -> np.ndarray:
        """1 where the target equals the favourable value, else 0."""
        return (df[self.schema.target] == self.schema.favourable).to_numpy(dtype=int)


# name -> (target, categorical, immutable, {feature: monotone direction})
_REAL = {
    "adult": ("income",
              ["workclass", "marital-status", "occupation", "relationship", "race", "sex",
               "native-country"],
              ["race", "sex"],
              {"age": "increase", "education-num": "increase"}),
    "compas": ("score", ["two_year_recid", "c_charge_degree", "race", "sex"], ["race", "sex"],
               {"age": "increase", "two_year_recid": "increase", "priors_count": "increase"}),
    "heloc": ("RiskPerformance", [], [], {}),
}
_SYNTHETIC = ("moons", "circles")
DATASETS = tuple(_REAL) + _SYNTHETIC


def _read_bundled(filename: str) -> pd.DataFrame:
    path = resources.files("genre.data") / "bundled" / filename
    with resources.as_file(path) as p:
        return pd.read_csv(p, compression="gzip")


def _real(name: str) -> Dataset:
    target, categorical, immutable, monotone = _REAL[name]
    train, test = _read_bundled(f"{name}_train.csv.gz"), _read_bundled(f"{name}_test.csv.gz")
    feats = []
    for col in train.columns:
        if col == target:
            continue
        if col in categorical:
            cats = sorted(set(train[col]) | set(test[col]), key=str)
            feats.append(Feature(col, "categorical",
                                 categories=tuple(python_scalar(c) for c in cats),
                                 immutable=col in immutable, monotone=monotone.get(col)))
        else:
            both = np.concatenate([train[col].to_numpy(float), test[col].to_numpy(float)])
            feats.append(Feature(col, "numeric", immutable=col in immutable,
                                 monotone=monotone.get(col),
                                 integer=bool(np.all(both == np.rint(both)))))
            if feats[-1].integer:
                train[col] = train[col].astype("int64")
                test[col] = test[col].astype("int64")
    train[target] = train[target].astype("int64")
    test[target] = test[target].astype("int64")
    return Dataset(name, Schema(tuple(feats), target, 1, name), train, test)


def _synthetic(name: str, n: int = 2000, seed: int = 0) -> Dataset:
    from sklearn.datasets import make_circles, make_moons

    if name == "moons":
        X, y = make_moons(n_samples=n, noise=0.2, random_state=seed)
    else:
        X, y = make_circles(n_samples=n, noise=0.08, factor=0.5, random_state=seed)
        y = 1 - y  # favourable = outer ring, so rejected points sit inside it
    df = pd.DataFrame({"x1": X[:, 0], "x2": X[:, 1], "y": y.astype("int64")})
    cut = int(0.75 * n)
    schema = Schema((Feature("x1", "numeric"), Feature("x2", "numeric")), "y", 1, name)
    return Dataset(name, schema, df.iloc[:cut].reset_index(drop=True),
                   df.iloc[cut:].reset_index(drop=True))


def load(name: str) -> Dataset:
    """Load a bundled dataset by name: one of adult, compas, heloc, moons, circles."""
    if name in _REAL:
        return _real(name)
    if name in _SYNTHETIC:
        return _synthetic(name)
    raise InputError(f"unknown dataset {name!r}; bundled datasets are {list(DATASETS)}")


