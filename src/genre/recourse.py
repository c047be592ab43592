"""Recourse for a table of people in original units: profiles, options, plain changes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from genre.estimator import GenRe
from genre.explain import changes


def recourse_table(model: GenRe, people: pd.DataFrame, *, options: int = 1,
                   best_k: int | None = None, seed: int = 0,
                   source: str = "input") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recourse for every row of `people` (original units; validated against the model's
    schema, errors naming `source`, column and row).

    Returns (profiles, changes). profiles: one row per person and option with the columns
    person (the row label: a line number for files read by genre.io.read_table), option
    (only when options > 1), the features, h_probability, cost (L1, normalised units),
    plausible (near the training data's favourable rows, by a calibrated threshold: see
    genre.plausibility) and status ('recourse', 'none found', 'already accepted': returned
    unchanged). changes: the long view person, option, feature, from, to, listing only
    changed features.
    With options == 1 each person gets the sample h scores highest (GenRe's rule; with
    effort keys in the schema, the cheapest sample h accepts); with K, up to K distinct
    accepted profiles ranked by the schema's effort, distinct sets of changes first.
    """
    enc = model.encoder_
    X = enc.transform(people, source=source)
    p_before = model.classifier_.predict_proba(X)
    accepted = p_before > 0.5
    N, D = X.shape
    X_plus = np.full((N, options, D), np.nan)
    prob = np.full((N, options), np.nan)
    plausible = np.zeros((N, options), dtype=bool)
    X_plus[accepted, 0], prob[accepted, 0] = X[accepted], p_before[accepted]
    plausible[accepted, 0] = True
    rejected = np.flatnonzero(~accepted)
    if rejected.size and options == 1:
        best = model.generate(X[rejected], best_k, seed=seed)
        X_plus[rejected, 0] = best
        prob[rejected, 0] = model.classifier_.predict_proba(best)
        plausible[rejected, 0] = model.plausibility().predict(best) == 1
    elif rejected.size:
        opts = model.options(X[rejected], options, best_k, seed=seed)
        X_plus[rejected], prob[rejected] = opts.X_plus, opts.probability
        plausible[rejected] = opts.plausible
    # One row per (person, option); options beyond those found are dropped, but every
    # person keeps option 1 (unchanged where nothing was found, with its status).
    person = np.repeat(people.index.to_numpy(), options)
    option = np.tile(np.arange(1, options + 1), N)
    was_accepted = np.repeat(accepted, options)
    flat = X_plus.reshape(N * options, D)
    found = ~np.isnan(flat).any(axis=1)
    base = np.repeat(X, options, axis=0)
    result = enc.inverse_transform(np.where(found[:, None], flat, base))
    result.insert(0, "option", option)
    result.insert(0, "person", person)
    result["h_probability"] = np.round(prob.reshape(-1), 4)
    result["cost"] = np.round(np.where(found, np.abs(flat - base).sum(axis=1), np.nan), 4)
    result["plausible"] = plausible.reshape(-1)
    result["status"] = np.where(was_accepted, "already accepted",
                                np.where(found, "recourse", "none found"))
    result = result[found | (option == 1)].reset_index(drop=True)
    if options == 1:
        result = result.drop(columns="option")
    with_recourse = found & ~was_accepted
    diff = changes(enc, base[with_recourse], flat[with_recourse],
                   ids=person[with_recourse].tolist(), options=option[with_recourse])
    return result, diff
