"""Recourse for a table of people in original units: profiles, options, plain changes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from genre.data.encoder import Encoder, category_key, row_label
from genre.data.schema import RESERVED_COLUMNS
from genre.errors import InputError, ModelError
from genre.tables.decision import accepts, check_min_probability
from genre.tables.explain import TOL
from genre.tables.protocol import Answerer

# The columns of a profiles table that are not the person's features (or id), in their order:
# the schema's reserved names, defined once there.
META_COLUMNS = RESERVED_COLUMNS
CHANGE_COLUMNS = ("person", "option", "feature", "from", "to")


def recourse_table(model: Answerer, people: pd.DataFrame, *, options: int = 1,
                   best_k: int | None = None, seed: int = 0, source: str = "input",
                   start: int = 0, id_column: str | None = None,
                   min_probability: float | None = None, constraints=None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recourse for every row of `people` (original units; validated against the model's
    schema, errors naming `source`, column and row).

    Returns (profiles, changes). profiles: one row per person and option with the columns
    person (`start` + the row's position in `people`: the 0-based row index of the file
    when `people` is a block starting at row `start`), the id column (`id_column`, else the
    schema's, when set: carried through unchanged), option (only when options > 1), the
    features, h_probability (h's probability of the profile as written), effort (the
    schema's effort of the change, what options are ranked by; the L1 cost without effort
    keys), cost (the paper's L1, normalised units), plausible (near the training
    data's favourable rows, by a calibrated threshold: see genre.core.plausibility) and status
    ('recourse', 'none found', 'already accepted': returned unchanged). changes:
    `profile_changes` of the profiles.
    Features a profile leaves unchanged keep the input's value exactly; changed numbers
    are rounded to what the model's float32 arithmetic resolves (no 12.9999996 for 13), and
    a numeric column given as integers stays integer where every value is whole.
    With options == 1 each person gets the sample h scores highest (GenRe's rule; with
    the model's select="effort", the cheapest sample h accepts); with K, up to K distinct
    accepted profiles chosen with distinct sets of changes first, sorted by effort.
    Status is 'recourse' only for a profile h accepts as written (genre.tables.decision:
    above h's threshold and at least `min_probability`, on the probability as printed);
    'none found' otherwise (the person unchanged, h_probability and effort empty). Each
    record draws from its own random stream, keyed by `seed` and its values
    (genre.core.seeding). `constraints` (per-call freeze and ranges,
    genre.tables.constraints) and the schema's never/allowed rules hold on every profile.
    """
    min_probability = check_min_probability(min_probability)
    enc = model.encoder_
    id_column = id_column if id_column is not None else enc.schema_.id_column
    ids = None
    if id_column is not None:
        if id_column not in people.columns:
            raise InputError(f"{source}: id column '{id_column}' not found; the columns are "
                             f"{[str(c) for c in people.columns]}")
        ids = people[id_column].to_numpy()
        people = people.drop(columns=id_column)
    X = enc.transform(people, source=source)
    # The model answers the block at once: profiles, h's probability and the flag.
    try:
        answers = model.answer(X, options, best_k, seed, min_probability, constraints)
    except ModelError as exc:  # rows the classifier gives no probability for (NaN)
        rows = getattr(exc, "rows", None)
        if rows is None or not len(rows):
            raise
        raise ModelError(f"{source}: {row_label(people.index, rows[0])}: the model's "
                         f"classifier gives no probability (NaN) for this row ({len(rows)} "
                         "such rows); recourse needs a classifier that answers every valid "
                         "row") from None
    accepted, X_plus = answers.accepted, answers.X_plus
    flat_prob = answers.probability.reshape(-1).copy()
    plausible = answers.plausible.reshape(-1).copy()
    N, D = X.shape
    # One row per (person, option); options beyond those found are dropped, but every
    # person keeps option 1 (unchanged where nothing was found, with its status).
    row = np.repeat(np.arange(N), options)
    option = np.tile(np.arange(1, options + 1), N)
    was_accepted = np.repeat(accepted, options)
    flat = X_plus.reshape(N * options, D)
    # A profile the classifier gives no probability for is never answered as a recourse.
    found = ~np.isnan(flat).any(axis=1) & ~np.isnan(flat_prob)
    base = X[row]
    chosen = np.where(found[:, None], flat, base)
    result = in_input_units(enc, chosen, base, people, row)
    # h judges the profile as written (rounded to what the model resolves), and its
    # probability as printed (4 decimals) must pass: no 'recourse' reads 0.5000.
    new = found & ~was_accepted
    if new.any():
        written = np.round(model.classifier_.predict_proba(
            enc.transform(result.loc[new, enc.schema_.names], source=source)), 4)
        flat_prob[new] = written
        lost = np.flatnonzero(new)[~accepts(written, min_probability)]
        if lost.size:
            found[lost] = False
            flat_prob[lost] = np.nan
            plausible[lost] = False
            chosen = np.where(found[:, None], flat, base)
            result = in_input_units(enc, chosen, base, people, row)
    result.insert(0, "option", option)
    if ids is not None:
        result.insert(0, id_column, ids[row])
    result.insert(0, "person", start + row)
    result["h_probability"] = np.round(flat_prob, 4)
    result["effort"] = np.round(np.where(found, enc.effort(base, chosen), np.nan), 4)
    result["cost"] = np.round(np.where(found, np.abs(flat - base).sum(axis=1), np.nan), 4)
    result["plausible"] = plausible
    result["status"] = np.where(was_accepted, "already accepted",
                                np.where(found, "recourse", "none found"))
    result = result[found | (option == 1)].reset_index(drop=True)
    if options == 1:
        result = result.drop(columns="option")
    diff = profile_changes(people, result, enc.schema_.names, start=start, id_column=id_column)
    return result, diff


def float32_decimals(encoder: Encoder, j: int) -> int:
    """Decimals of feature j that survive GenRe's float32 arithmetic (6 significant digits of
    the feature's range, at least 0)."""
    span = float(encoder.hi_[j] - encoder.lo_[j])
    return max(6 - math.ceil(math.log10(span)), 0) if span > 0 else 6


def in_input_units(encoder: Encoder, chosen: np.ndarray, base: np.ndarray,
                   people: pd.DataFrame, row: np.ndarray) -> pd.DataFrame:
    """encoder.inverse_transform(chosen), written like the input `people` (row[i]: the
    person of chosen[i], base[i] their normalised factual): numbers left unchanged keep the
    input's value, changed ones are rounded to `float32_decimals`, and numeric columns given
    as integers stay integers where every value is whole."""
    out = encoder.inverse_transform(chosen)
    same = np.abs(chosen - base) <= TOL
    for j, f in enumerate(encoder.schema_.features):
        if f.is_categorical:
            continue
        given = pd.to_numeric(people[f.name]).to_numpy()
        values = out[f.name].to_numpy(dtype=float)
        if not f.integer:
            values = np.round(values, float32_decimals(encoder, j))
        values = np.where(same[:, j], given[row].astype(float), values)
        whole = bool(np.all(values == np.rint(values)))
        if whole and (f.integer or given.dtype.kind in "iu"):
            out[f.name] = values.astype(np.int64)
        else:
            out[f.name] = values
    return out


def profile_changes(people: pd.DataFrame, profiles: pd.DataFrame, features: list[str], *,
                    start: int = 0, id_column: str | None = None) -> pd.DataFrame:
    """The long view of `profiles` (a recourse_table result for `people`): one row per
    (person, option, changed feature) with the input's value (`from`) and the profile's
    (`to`), for the rows with status 'recourse'. Columns: person, the id column (when given),
    option, feature, from, to. A profile's person p is row p - start of `people`; numbers are
    compared as numbers, labels as category keys (1, 1.0 and '1' are the same label)."""
    rows = profiles[profiles["status"] == "recourse"]
    pos = rows["person"].to_numpy(dtype=np.int64) - start
    option = (rows["option"].to_numpy() if "option" in rows.columns
              else np.ones(len(rows), dtype=np.int64))
    hits_row, hits_feature = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    before, after = [], []
    for j, name in enumerate(features):
        b = people[name].iloc[pos].reset_index(drop=True)
        a = rows[name].reset_index(drop=True)
        b_num, a_num = pd.to_numeric(b, errors="coerce"), pd.to_numeric(a, errors="coerce")
        # fillna: a table with nullable dtypes (e.g. from Ray or Arrow) compares to NA
        same = ((b_num == a_num).fillna(False).to_numpy(dtype=bool)
                | (b.map(category_key) == a.map(category_key)).fillna(False)
                .to_numpy(dtype=bool))
        moved = np.flatnonzero(~same)
        hits_row.append(moved)
        hits_feature.append(np.full(moved.size, j))
        before.extend(b.iloc[moved].tolist())
        after.extend(a.iloc[moved].tolist())
    r, k = np.concatenate(hits_row), np.concatenate(hits_feature)
    order = np.lexsort((k, r))  # by profile, then in the schema's feature order
    columns = {"person": rows["person"].to_numpy()[r[order]]}
    if id_column is not None:
        columns[id_column] = rows[id_column].to_numpy()[r[order]]
    columns |= {"option": option[r[order]],
                "feature": np.asarray(features, dtype=object)[k[order]],
                "from": np.asarray(before, dtype=object)[order],
                "to": np.asarray(after, dtype=object)[order]}
    return pd.DataFrame(columns)
