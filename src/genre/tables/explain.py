"""Recourse in plain words: which features change, from what to what, in original units."""

from __future__ import annotations

import numpy as np
import pandas as pd

from genre.data.encoder import CHANGE_TOL as TOL
from genre.data.encoder import Encoder


def changes(encoder: Encoder, X: np.ndarray, X_plus: np.ndarray, ids: list | None = None,
            options: np.ndarray | None = None) -> pd.DataFrame:
    """Long table: one row per (person, changed feature) with `from` and `to` values.

    People with no recourse (NaN row) get a single row with feature '(none found)'. With
    `options` (the option number of each row) the table gains an `option` column.
    """
    ids = list(range(len(X))) if ids is None else list(ids)
    before = encoder.inverse_transform(X)
    found = ~np.isnan(X_plus).any(axis=1)
    after = encoder.inverse_transform(np.where(found[:, None], X_plus, X))
    rows = []
    names = encoder.schema_.names
    for i, pid in enumerate(ids):
        if not found[i]:
            rows.append({"person": pid, "row": i, "feature": "(none found)", "from": "",
                         "to": ""})
            continue
        moved = np.flatnonzero(np.abs(X_plus[i] - X[i]) > TOL)
        for j in moved:
            b, a = before.iat[i, j], after.iat[i, j]
            if b != a:
                rows.append({"person": pid, "row": i, "feature": names[j], "from": b, "to": a})
    table = pd.DataFrame(rows, columns=["person", "row", "feature", "from", "to"])
    if options is not None:
        table.insert(1, "option", np.asarray(options)[table["row"].to_numpy(dtype=int)])
    return table.drop(columns="row")


def format_value(v) -> str:
    """A value as a person reads it: 52,242 not 5.224e+04; 0.37 not 0.3700000001."""
    if isinstance(v, float | np.floating):
        if float(v).is_integer() or abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.3g}"
    return str(v)
