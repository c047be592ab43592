"""Schema-driven encoder between original units and the normalised [0, 1] space of the paper.

Categorical -> integer code (position in the category list) -> min-max over the codes;
numeric -> min-max with training statistics (or the schema's bounds when given).
`inverse_transform` is the exact inverse: labels come back as labels, integers as integers.
The encoder also exposes, in normalised space, what recourse methods need to respect the
schema: immutable/monotone masks, the valid grid of each feature, and `project`.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import replace
from decimal import Decimal

import numpy as np
import pandas as pd

from genre.data.feature import FLOAT32_MAX, Feature, category_key, python_scalar, sort_key
from genre.data.schema import Schema
from genre.errors import GenreWarning, InputError, value_repr
from genre.utils.hints import id_hint, near_match, renamed_hint
from genre.utils.limits import INTEGER_MAX

CHANGE_TOL = 1e-6  # normalised-space tolerance for "unchanged" / "moved the wrong way"


def is_number(v) -> bool:
    """A real number (Python or numpy), not a bool."""
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool | np.bool_)


def row_label(index, pos: int) -> str:
    """'row 3' for a DataFrame index label, 'line 5' for tables read by
    genre.utils.readers.read_table."""
    return f"{index.name if index.name == 'line' else 'row'} {index[pos]}"


class Encoder:
    """Fit on training data; `transform` DataFrame -> float array, `inverse_transform` back."""

    def __init__(self, schema: Schema):
        self.schema = schema

    # ------------------------------------------------------------------ fitting
    def fit(self, df: pd.DataFrame, source: str = "training data") -> Encoder:
        """Learn categories left out of the schema and the scaling of numeric features;
        errors name `source`, the column and the row."""
        self._check_columns(df, allow_target=True, source=source)
        if len(df) == 0:
            raise InputError(f"{source}: no rows")
        feats: list[Feature] = []
        lo, hi = [], []
        for f in self.schema.features:
            col = df[f.name]
            _check_dtype(col, f, source)
            if f.is_categorical:
                cats = f.categories
                if cats is not None:
                    _warn_absent(col, f, source)
                if cats is None:
                    self._check_no_nan(col, f.name, source)
                    uniq = {category_key(v): v for v in col.tolist()}
                    cats = tuple(python_scalar(uniq[k]) for k in sorted(uniq, key=sort_key))
                f = replace(f, categories=tuple(cats))
                lo.append(0.0)
                hi.append(float(max(len(cats) - 1, 1)))
            else:
                values = self._numeric(col, f, source, check_bounds=False)
                low = float(f.min) if f.min is not None else float(values.min())
                if f.integer:  # the grid lo + k holds integers only if lo is one
                    low = float(np.floor(low))
                lo.append(low)
                top = float(f.max) if f.max is not None else float(values.max())
                hi.append(top if top > lo[-1] else lo[-1] + 1.0)
                if not hi[-1] - lo[-1] <= FLOAT32_MAX:
                    raise InputError(f"{source}: column '{f.name}': values span "
                                     f"{lo[-1]:g} to {hi[-1]:g}, wider than float32's range "
                                     "(3.4e38) that the model computes in")
            feats.append(f)
        self.schema_ = replace(self.schema, features=tuple(feats), extra={})
        self.lo_ = np.asarray(lo)
        self.hi_ = np.asarray(hi)
        self._keys = [
            {category_key(c): i for i, c in enumerate(f.categories)} if f.is_categorical else None
            for f in feats
        ]
        return self

    @classmethod
    def from_state(cls, schema: Schema, lo, hi) -> Encoder:
        """Rebuild a fitted encoder from a complete schema and its scaling statistics."""
        enc = cls(schema)
        enc.schema_ = schema
        enc.lo_, enc.hi_ = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        enc._keys = [
            {category_key(c): i for i, c in enumerate(f.categories)} if f.is_categorical else None
            for f in schema.features
        ]
        return enc

    # ---------------------------------------------------------------- transform
    def transform(self, df: pd.DataFrame, source: str = "input") -> np.ndarray:
        """Original units -> normalised float64 array (n, D). Raises InputError on bad cells."""
        self._check_columns(df, allow_target=True, source=source)
        if len(df) == 0:
            raise InputError(f"{source}: no rows")
        out = np.empty((len(df), self.n_features))
        for j, f in enumerate(self.schema_.features):
            col = df[f.name]
            _check_dtype(col, f, source)
            if f.is_categorical:
                self._check_no_nan(col, f.name, source)
                keys = self._keys[j]
                codes = col.map(lambda v, keys=keys: keys.get(category_key(v), -1)).to_numpy()
                bad = np.flatnonzero(codes < 0)
                if bad.size:
                    p = bad[0]
                    raise InputError(
                        f"{source}: column '{f.name}', {row_label(df.index, p)}: unknown category "
                        f"{value_repr(col.iloc[p])}; expected one of "
                        f"{value_repr(list(f.categories))}"
                    )
                values = codes.astype(float)
            else:
                values = self._numeric(col, f, source, check_bounds=True)
            out[:, j] = (values - self.lo_[j]) / (self.hi_[j] - self.lo_[j])
        return out

    def inverse_transform(self, X: np.ndarray) -> pd.DataFrame:
        """Normalised array -> DataFrame in original units (categoricals snapped to labels)."""
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise InputError(f"expected an array of shape (n, {self.n_features}), got {X.shape}")
        cols = {}
        for j, f in enumerate(self.schema_.features):
            raw = X[:, j] * (self.hi_[j] - self.lo_[j]) + self.lo_[j]
            if f.is_categorical:
                codes = np.clip(np.rint(raw), 0, len(f.categories) - 1).astype(int)
                cats = np.asarray(f.categories, dtype=object)
                series = pd.Series(cats[codes])
                if all(isinstance(c, int) for c in f.categories):
                    series = series.astype("int64")
                cols[f.name] = series
            elif f.integer:
                cols[f.name] = pd.Series(np.rint(raw).astype("int64"))
            else:
                magnitude = max(abs(self.lo_[j]), abs(self.hi_[j]))
                cols[f.name] = pd.Series(_significant(raw, magnitude))
        return pd.DataFrame(cols)

    # ----------------------------------------------- the schema in normalised space
    @property
    def n_features(self) -> int:
        return self.schema_.n_features

    @property
    def immutable_mask(self) -> np.ndarray:
        return np.array([f.immutable for f in self.schema_.features])

    @property
    def categorical_mask(self) -> np.ndarray:
        return np.array([f.is_categorical for f in self.schema_.features])

    @property
    def monotone(self) -> np.ndarray:
        """+1: may only increase, -1: may only decrease, 0: free (per feature)."""
        sign = {"increase": 1, "decrease": -1, None: 0}
        return np.array([sign[f.monotone] for f in self.schema_.features])

    @property
    def grid_step(self) -> np.ndarray:
        """Spacing of valid normalised values per feature (0 = continuous)."""
        return np.array([
            1.0 / (self.hi_[j] - self.lo_[j]) if (f.is_categorical or f.integer) else 0.0
            for j, f in enumerate(self.schema_.features)
        ])

    @property
    def lower(self) -> np.ndarray:
        """Smallest allowed normalised value per feature (schema min, else training min;
        an integer feature's min rounded up to an integer, so the bound is on its grid)."""
        return np.array([0.0 if f.min is None else
                         ((np.ceil(f.min) if f.integer else f.min) - self.lo_[j]) /
                         (self.hi_[j] - self.lo_[j]) for j, f in enumerate(self.schema_.features)])

    @property
    def upper(self) -> np.ndarray:
        """Largest allowed normalised value per feature (schema max, else training max;
        an integer feature's max rounded down to an integer, so the bound is on its grid)."""
        return np.array([1.0 if f.max is None else
                         ((np.floor(f.max) if f.integer else f.max) - self.lo_[j]) /
                         (self.hi_[j] - self.lo_[j]) for j, f in enumerate(self.schema_.features)])

    def effort_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """(per_unit, per_change), each (D,): effort = sum_j per_unit_j * |x+_j - x_j| +
        sum_j per_change_j * [x_j changed], in normalised units.

        Without effort keys in the schema this is the paper's L1 cost (per_unit 1, per_change
        0). With them: a numeric or `ordered` categorical feature costs its weight per unit
        of its normalised range, any change of an unordered categorical costs its weight
        (never a code distance), and every changed feature adds the schema's `sparsity`.
        """
        D = self.n_features
        if not self.schema_.has_effort:
            return np.ones(D), np.zeros(D)
        w = np.array([f.weight for f in self.schema_.features])
        unordered = np.array([f.is_categorical and not f.ordered for f in self.schema_.features])
        per_change = np.where(unordered, w, 0.0) + (self.schema_.sparsity or 0.0)
        return np.where(unordered, 0.0, w), per_change

    def effort(self, X: np.ndarray, X_plus: np.ndarray) -> np.ndarray:
        """The schema's effort of moving from X to X_plus (broadcast over leading axes; see
        `effort_terms`). Equals the L1 cost when the schema has no effort keys."""
        per_unit, per_change = self.effort_terms()
        d = np.abs(np.asarray(X_plus, dtype=float) - np.asarray(X, dtype=float))
        return d @ per_unit + (d > CHANGE_TOL) @ per_change

    @staticmethod
    def n_changes(X: np.ndarray, X_plus: np.ndarray) -> np.ndarray:
        """Number of features X_plus changes from X (broadcast over leading axes)."""
        d = np.abs(np.asarray(X_plus, dtype=float) - np.asarray(X, dtype=float))
        return (d > CHANGE_TOL).sum(axis=-1)

    def project(self, X: np.ndarray, factual: np.ndarray | None = None) -> np.ndarray:
        """Snap normalised points onto what the schema allows.

        Clip to bounds, round categoricals/integers to their grid, and, given the factual
        rows, copy immutables and forbid moves against a monotone direction. Rows
        with a NaN (a method found no recourse) become all-NaN.
        """
        X = np.array(X, dtype=float, copy=True)
        none_found = np.isnan(X).any(axis=1)
        if factual is not None:
            factual = np.asarray(factual, dtype=float)
            mono = self.monotone
            X = np.where(mono > 0, np.maximum(X, factual), X)
            X = np.where(mono < 0, np.minimum(X, factual), X)
        lower = self.lower if factual is None else np.minimum(self.lower, factual)
        upper = self.upper if factual is None else np.maximum(self.upper, factual)
        X = np.clip(X, lower, upper)
        step = self.grid_step
        gridded = step > 0
        if gridded.any():
            # Integers live on the grid lo + k; in normalised units that is offset 0, step s.
            s = step[gridded]
            X[:, gridded] = np.rint(X[:, gridded] / s) * s
        if factual is not None:
            imm = self.immutable_mask
            X[:, imm] = factual[:, imm]
            # Rounding may have undone a monotone move by a hair: re-impose it exactly.
            X = np.where(self.monotone > 0, np.maximum(X, factual), X)
            X = np.where(self.monotone < 0, np.minimum(X, factual), X)
        X[none_found] = np.nan
        return X

    # ------------------------------------------------------------------ checks
    def _check_columns(self, df, allow_target: bool, source: str) -> None:
        if not isinstance(df, pd.DataFrame):
            raise InputError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
        cols = [str(c) for c in df.columns]
        dup = sorted(c for c, n in Counter(cols).items() if n > 1)
        if dup:
            raise InputError(f"{source}: duplicate columns {dup}")
        names = self.schema.names
        present = set(cols)
        missing = [n for n in names if n not in present]
        if missing:
            extra = [c for c in cols if c not in set(names)]
            raise InputError(f"{source}: missing columns {missing}; the schema expects {names}"
                             + renamed_hint(missing, extra))
        allowed = set(names) | ({self.schema.target} if allow_target else set())
        if self.schema.id_column is not None:  # carried through, never a feature
            allowed.add(self.schema.id_column)
        extra = [c for c in cols if c not in allowed]
        if extra:
            raise InputError(f"{source}: unexpected columns {extra}; the schema expects {names}"
                             + (f" (and optionally the target '{self.schema.target}')"
                                if allow_target else "") + id_hint(extra, df))

    @staticmethod
    def _check_no_nan(col: pd.Series, name: str, source: str) -> None:
        na = np.flatnonzero(col.isna().to_numpy())
        if na.size:
            raise InputError(f"{source}: column '{name}', {row_label(col.index, na[0])}: "
                             "missing value (NaN); fill or drop it")

    def _numeric(self, col: pd.Series, f: Feature, source: str, check_bounds: bool) -> np.ndarray:
        self._check_no_nan(col, f.name, source)
        if col.dtype == bool or (col.dtype == object and col.map(type).eq(bool).any()):
            raise InputError(f"{source}: column '{f.name}': expected numbers, got booleans "
                             "(true/false); make the feature categorical or write 0/1")
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            p = bad[0]
            raise InputError(f"{source}: column '{f.name}', {row_label(col.index, p)}: expected a "
                             f"number, got {value_repr(col.iloc[p])}")
        huge = np.flatnonzero(np.abs(values) > FLOAT32_MAX)
        if huge.size:
            p = huge[0]
            raise InputError(f"{source}: column '{f.name}', {row_label(col.index, p)}: value "
                             f"{values[p]:g} is beyond +-3.4e38, the float32 range the model "
                             "computes in")
        if f.integer:
            big = np.flatnonzero(np.abs(values) > INTEGER_MAX)
            if big.size:
                p = big[0]
                raise InputError(f"{source}: column '{f.name}', {row_label(col.index, p)}: "
                                 f"value {values[p]:g} is beyond +-2**53, the range in which "
                                 "an integer feature stays exact")
            frac = np.flatnonzero(values != np.rint(values))
            if frac.size:
                p = frac[0]
                raise InputError(f"{source}: column '{f.name}', {row_label(col.index, p)}: "
                                 f"expected an integer, got {value_repr(col.iloc[p])}")
        if check_bounds:
            for bound, bad_mask, word in ((f.min, values < (f.min or 0), "below the minimum"),
                                          (f.max, values > (f.max or 0), "above the maximum")):
                if bound is not None and bad_mask.any():
                    p = int(np.flatnonzero(bad_mask)[0])
                    raise InputError(f"{source}: column '{f.name}', {row_label(col.index, p)}: "
                                     f"value {values[p]:g} is {word} {bound:g} of the schema")
        return values


def _warn_absent(col: pd.Series, f: Feature, source: str) -> None:
    """A GenreWarning naming the schema's categories of `f` that no training row has: h has
    never seen them and GenRe cannot learn to propose them (often a typo in the schema).
    A warning, not an error: a category may be real but rare, and cells holding it are
    still read."""
    seen = set(col.dropna().map(category_key))
    absent = [c for c in f.categories if category_key(c) not in seen]
    if absent:
        warnings.warn(f"{source}: column '{f.name}': the schema's categories "
                      f"{value_repr(absent)} never occur in the data; h has never seen them "
                      "and recourse cannot propose them (check the schema for a typo)",
                      GenreWarning, stacklevel=4)


_CELL = (str, int, float, bool, np.number, np.bool_, Decimal)


def _check_dtype(col: pd.Series, f: Feature, source: str) -> None:
    """Refuse columns whose type no feature kind can hold (dates, durations, nested
    values, bytes): read as numbers they would be silently wrong (a date as nanoseconds)."""
    what = None
    if pd.api.types.is_datetime64_any_dtype(col):
        what = "dates"
    elif pd.api.types.is_timedelta64_dtype(col):
        what = "durations"
    elif col.dtype == object:
        odd = col.map(lambda v: not (isinstance(v, _CELL) or v is None or v is pd.NA))
        if odd.any():
            v = col[odd].iloc[0]
            what = f"values of type {type(v).__name__} such as {v!r}"[:200]
    if what is not None:
        raise InputError(f"{source}: column '{f.name}' holds {what}; expected "
                         + ("numbers" if not f.is_categorical else "labels or numbers")
                         + " (convert it, e.g. a date to days since an event, or drop it)")


def _significant(x: np.ndarray, magnitude: float, digits: int = 15) -> np.ndarray:
    """Round to `digits` significant digits of the feature's magnitude: undoes the last-bit
    noise of the min-max arithmetic, so values read from a file come back as written."""
    decimals = digits - 1 - int(np.floor(np.log10(magnitude))) if magnitude > 0 else digits
    return np.round(x, decimals)


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
                         f"are {list(df.columns)}{near_match(target, df.columns)}")
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
