"""DiCE (Mothilal, Sharma & Tan, FAT* 2020) through the `dice-ml` library.

DiCE works in original units here: fit hands it the training table decoded by the encoder
(categoricals as their labels, integers as integers), declaring numeric features continuous
and the rest categorical, so its samplers draw real categories and whole numbers. The model
DiCE sees wraps h: it encodes DiCE's DataFrames back to the normalised space and returns
[1 - h, h]. Queries go one individual at a time (the library has no batch mode) with
desired_class=1 and features_to_vary = the mutable features; monotone features, when the
task enforces them, get a permitted range on their allowed side. Of the `total_cfs`
counterfactuals DiCE returns (its post-hoc sparsified ones), the cheapest (L1, normalised)
that h accepts after projection is kept, else the cheapest. With effort keys in the schema,
"cheapest" is by the schema's effort, and max_changes is applied post hoc: counterfactuals
changing more features are dropped (DiCE itself cannot cap the number of changes). A DiCE
failure or an empty answer for one individual gives that individual a NaN row; `n_failed_`
counts them.

Modes: "random" (DiCE's random sampling, seeded through `random_seed`) and "genetic" (its
genetic algorithm; it takes no seed argument, so numpy's and Python's global generators are
seeded for the call and restored afterwards). `lambda_` is DiCE's proximity_weight, used by
the genetic mode (random sampling has no cost weight; its levers are total_cfs and
stopping_threshold, which the table's "dice-tuned" row chooses on validation individuals).
DiCE's printing and progress bars are silenced.
"""

from __future__ import annotations

import contextlib
import io
import random
import warnings

import numpy as np
import pandas as pd

from genre.core.method import RecourseMethod
from genre.core.task import RecourseTask
from genre.data.encoder import category_key
from genre.errors import InputError
from genre.utils.extras import require

MODES = ("random", "genetic")


def to_normalised(encoder, df: pd.DataFrame) -> np.ndarray:
    """Original units -> normalised array, leniently (unknown labels become NaN, no raise)."""
    out = np.empty((len(df), encoder.n_features))
    for j, f in enumerate(encoder.schema_.features):
        col = df[f.name]
        if f.is_categorical:
            keys = {category_key(c): float(i) for i, c in enumerate(f.categories)}
            values = col.map(lambda v, keys=keys: keys.get(category_key(v), np.nan))
            values = values.to_numpy(dtype=float)
        else:
            values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
        out[:, j] = (values - encoder.lo_[j]) / (encoder.hi_[j] - encoder.lo_[j])
    return out


class _DiceModel:
    """What dice_ml's sklearn backend calls: predict_proba / predict on DataFrames."""

    def __init__(self, encoder, classifier):
        self.encoder = encoder
        self.classifier = classifier

    def predict_proba(self, df) -> np.ndarray:
        if not isinstance(df, pd.DataFrame):
            df = pd.DataFrame(np.asarray(df), columns=self.encoder.schema_.names)
        X = to_normalised(self.encoder, df[self.encoder.schema_.names])
        p = np.full(len(X), np.nan)
        ok = np.isfinite(X).all(axis=1)
        if ok.any():
            p[ok] = self.classifier.predict_proba(X[ok])
        p = np.nan_to_num(p, nan=0.0)  # an unreadable candidate counts as rejected
        return np.stack([1.0 - p, p], axis=1)

    def predict(self, df) -> np.ndarray:
        return (self.predict_proba(df)[:, 1] > 0.5).astype(int)


@contextlib.contextmanager
def _quiet_and_seeded(seed: int | None):
    """Silence DiCE (prints, tqdm, warnings); optionally seed the global RNGs, then restore."""
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        if seed is not None:
            np.random.seed(seed)  # noqa: NPY002 - DiCE draws from the global generator
            random.seed(seed)
        sink = io.StringIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), \
                contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)


class DiCE(RecourseMethod):
    """DiCE via dice-ml, one individual at a time.

    Hyper-parameters: mode = "random" | "genetic"; total_cfs = 1 (counterfactuals asked for);
    lambda_ = 0.2 (DiCE's proximity_weight, genetic only; the library default);
    sample_size = 1000 (random mode, library default); posthoc_sparsity_param = 0.1 (library
    default); stopping_threshold = 0.5 (the probability of the desired class a
    counterfactual must reach; library default); seed.
    """

    name = "dice"

    def __init__(self, mode: str = "random", total_cfs: int = 1, lambda_: float = 0.2,
                 sample_size: int = 1000, posthoc_sparsity_param: float = 0.1,
                 stopping_threshold: float = 0.5, seed: int = 0):
        self.mode = mode
        self.total_cfs = total_cfs
        self.lambda_ = lambda_
        self.sample_size = sample_size
        self.posthoc_sparsity_param = posthoc_sparsity_param
        self.stopping_threshold = stopping_threshold
        self.seed = seed

    def fit(self, task: RecourseTask) -> DiCE:
        if self.mode not in MODES:
            raise InputError(f"DiCE: mode must be one of {MODES}, got {self.mode!r}")
        if not 0.5 <= self.stopping_threshold < 1:
            raise InputError("DiCE: stopping_threshold must be in [0.5, 1), "
                             f"got {self.stopping_threshold!r}")
        dice_ml = require("dice_ml", "bench", "the DiCE baseline")
        self.task_ = task
        enc = task.encoder
        df = enc.inverse_transform(task.X_train)
        target = enc.schema_.target
        df[target] = np.asarray(task.y_train).astype(int)
        continuous = [f.name for f in enc.schema_.features if not f.is_categorical]
        with _quiet_and_seeded(None):
            data = dice_ml.Data(dataframe=df, continuous_features=continuous,
                                outcome_name=target)
            model = dice_ml.Model(model=_DiceModel(enc, task.classifier), backend="sklearn")
            self.explainer_ = dice_ml.Dice(data, model, method=self.mode)
        self.features_to_vary_ = [f.name for f in enc.schema_.features if not f.immutable]
        self.data_range_ = {c: (df[c].min(), df[c].max()) for c in continuous}
        return self

    def _permitted_range(self, query: pd.DataFrame) -> dict | None:
        """Ranges on the allowed side of each monotone feature (None when there are none)."""
        rng = {}
        for f in self.task_.encoder.schema_.features:
            if f.monotone is None or f.immutable:
                continue
            v = query[f.name].iat[0]
            if f.is_categorical:
                codes = {category_key(c): i for i, c in enumerate(f.categories)}
                k = codes.get(category_key(v))
                if k is None:
                    continue
                # DiCE names categories its own way (strings): filter its list.
                dice_cats = self.explainer_.data_interface.permitted_range[f.name]
                rng[f.name] = [c for c in dice_cats
                               if (codes.get(category_key(c), -1) >= k if f.monotone == "increase"
                                   else -1 < codes.get(category_key(c), -1) <= k)]
            else:
                lo, hi = self.data_range_[f.name]
                if not lo <= v <= hi:
                    continue
                rng[f.name] = [v, hi] if f.monotone == "increase" else [lo, v]
        return rng or None

    def _one(self, query: pd.DataFrame) -> pd.DataFrame | None:
        kwargs = dict(total_CFs=self.total_cfs, desired_class=1,
                      features_to_vary=self.features_to_vary_,
                      posthoc_sparsity_param=self.posthoc_sparsity_param,
                      stopping_threshold=self.stopping_threshold)
        permitted = self._permitted_range(query)
        if permitted is not None:
            kwargs["permitted_range"] = permitted
        if self.mode == "random":
            kwargs.update(random_seed=self.seed, sample_size=self.sample_size)
        else:
            kwargs.update(proximity_weight=self.lambda_)
        with _quiet_and_seeded(self.seed):
            res = self.explainer_.generate_counterfactuals(query, **kwargs)
        ex = res.cf_examples_list[0]
        cfs = ex.final_cfs_df_sparse if ex.final_cfs_df_sparse is not None else ex.final_cfs_df
        if cfs is None or len(cfs) == 0:
            return None
        return cfs

    def generate(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        enc = self.task_.encoder
        names = enc.schema_.names
        out = np.full(X.shape, np.nan)
        self.n_failed_ = 0
        if len(X) == 0:
            return out
        queries = enc.inverse_transform(X)
        for i in range(len(X)):
            try:
                cfs = self._one(queries.iloc[[i]].reset_index(drop=True))
            except Exception:  # DiCE raises many types: one failure, one NaN row
                cfs = None
            if cfs is None:
                self.n_failed_ += 1
                continue
            C = to_normalised(enc, cfs[names].reset_index(drop=True))
            C = C[np.isfinite(C).all(axis=1)]
            if len(C) == 0:
                self.n_failed_ += 1
                continue
            C = enc.project(C, factual=np.repeat(X[i:i + 1], len(C), axis=0))
            if enc.schema_.max_changes is not None:
                C = C[enc.n_changes(X[i], C) <= enc.schema_.max_changes]
                if len(C) == 0:
                    self.n_failed_ += 1
                    continue
            cost = enc.effort(X[i], C)
            valid = self.task_.classifier.predict_proba(C) > 0.5
            pick = np.where(valid, cost, cost + 1e9).argmin()
            out[i] = C[pick]
        return out
