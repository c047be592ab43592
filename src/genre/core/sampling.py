"""GenRe's answers in normalised arrays: samples on the schema's grid, the one chosen per
person, several options per person, and `answer`, which gives for a block of people their
profiles, h's probability, the effort and the plausibility flag together (h scores each
candidate once; the chosen profiles are not scored again).

The network's own sampler (one feature at a time, the fused decoder) is genre.core.decoder.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from genre.core.decoder import sample as decode
from genre.core.network import RecourseTransformer
from genre.core.seeding import row_keys, row_normals, row_uniforms
from genre.data.encoder import CHANGE_TOL
from genre.errors import ModelError
from genre.tables.constraints import row_rules
from genre.tables.decision import RETRY_ROUNDS, accepts
from genre.utils.device import resolve_device
from genre.utils.threads import torch_threads

# With effort keys, a sampled bin this close to the factual's own keeps the factual value (with
# stay_in_bin): the soft-bin loss spreads "unchanged" over about a bin either side, and a
# sub-bin move is noise that would count as a change.
EFFORT_STAY_RADIUS = 1
NO_STUDENT = ("this GenRe model has no student sampler: fit it with sampler='student' (`genre "
              "fit --sampler student`) or call distill(X_train) first")


@dataclass
class Options:
    """Several recourses per person: (N, k, D) profiles, h's probability, cost (the schema's
    effort: the L1 cost when the schema has no effort keys), plausibility flag."""

    X_plus: np.ndarray
    probability: np.ndarray
    cost: np.ndarray
    plausible: np.ndarray


@dataclass
class Answers:
    """A block of people answered: accepted (N,) whether h already accepts the factual;
    X_plus (N, K, D) the profiles (the factual for accepted people, NaN where none was
    found), probability (N, K) h's, effort (N, K) the schema's, plausible (N, K)."""

    accepted: np.ndarray
    X_plus: np.ndarray
    probability: np.ndarray
    effort: np.ndarray
    plausible: np.ndarray


def bin_mask(est, X: torch.Tensor) -> torch.Tensor:
    """(N, D, n_bins): bins a feature may take for each individual.

    A monotone feature keeps the bin holding its factual value and those on its allowed
    side; bins wholly outside the schema's bounds are forbidden.
    """
    enc, n_bins = est.encoder_, est.n_bins
    width = 1.0 / n_bins
    left = est.model_.bins.to(X.dtype)  # (n_bins,)
    right = left + width
    mask = torch.ones(X.shape[0], X.shape[1], n_bins, dtype=torch.bool)
    lower = torch.as_tensor(enc.lower, dtype=X.dtype)
    upper = torch.as_tensor(enc.upper, dtype=X.dtype)
    mask &= (right > lower[:, None] - 1e-9) & (left < upper[:, None] + 1e-9)
    mono = torch.as_tensor(enc.monotone)
    x = X[..., None]
    up = (right > x) | (torch.arange(n_bins) == n_bins - 1)
    down = (left <= x) | (torch.arange(n_bins) == 0)
    mask = torch.where((mono > 0)[None, :, None], mask & up, mask)
    mask = torch.where((mono < 0)[None, :, None], mask & down, mask)
    return mask


def model_on(est, device: torch.device) -> RecourseTransformer:
    """The fitted transformer on device (model_ itself on the CPU; a copy elsewhere, made
    once and kept on the estimator)."""
    if device.type == "cpu":
        return est.model_
    cached = getattr(est, "_on_device", None)
    if cached is None or cached[0] is not est.model_ or cached[1] != device:
        cached = (est.model_, device, copy.deepcopy(est.model_).to(device))
        est._on_device = cached
    return cached[2]


def setting(est, name: str):
    """The temperature or best_k sampling uses: with tune="auto", the choice recorded in
    `tuning_` (genre.core.tuning); else, or when there is no record (a model fitted with
    tune=None, or saved before tuning existed), the parameter itself.

    Parameters
    ----------
    est : GenRe
        A fitted (or loaded) model.
    name : str
        "temperature" or "best_k".

    Returns
    -------
    float or int
    """
    chosen = getattr(est, "tuning_", None) if est.tune == "auto" else None
    return chosen[name] if chosen else getattr(est, name)


def sample(est, X: np.ndarray, n_samples: int, seed: int | None, use_cache: bool = True,
           keys: np.ndarray | None = None, offset: int = 0, constraints=None,
           temperature: float | None = None) -> np.ndarray:
    """n_samples candidates per row of X: (N, n_samples, D), on the schema's grid.

    keys (N,), from genre.core.seeding.row_keys: each row draws from its own stream
    (samples offset .. offset + n_samples - 1 of it), so a row's samples do not depend on
    the other rows; without keys one generator seeded `seed` serves the batch (the lab).
    The schema's never/allowed rules and `constraints` (per-call freeze and ranges) hold
    by construction: masked bins, frozen features decoded as fixed, and
    genre.tables.constraints projects every sample onto what its row allows.
    temperature None: `setting(est, "temperature")` (the tuned choice, if any)."""
    temperature = setting(est, "temperature") if temperature is None else temperature
    device = resolve_device(est.device)
    enc = est.encoder_
    X = np.asarray(X, dtype=np.float64)
    gen = torch.Generator().manual_seed(est.seed if seed is None else seed)
    if est.sampler == "student":  # the one-pass student (genre.core.student), on the CPU
        if getattr(est, "student_", None) is None:
            raise ModelError(NO_STUDENT)
        with torch_threads(est.threads):  # the same streams and per-row masks as below
            return est.student_.sample(est, X, n_samples, gen,
                                       EFFORT_STAY_RADIUS if enc.schema_.has_effort else 0,
                                       keys=keys, offset=offset, constraints=constraints)
    draws = {}
    if keys is not None:
        D = X.shape[1]
        draws["uniform"] = torch.from_numpy(row_uniforms(keys, n_samples, D, offset))
        if est.sigma > 0:
            draws["noise"] = torch.from_numpy(row_normals(keys, n_samples, D, offset))
    Xr = np.repeat(X, n_samples, axis=0)  # rows i*n .. i*n+n-1 belong to individual i
    xt = torch.as_tensor(Xr, dtype=torch.float32, device=device)
    fixed = torch.as_tensor(enc.immutable_mask)
    rules = row_rules(enc, X, constraints)
    with torch_threads(est.threads):
        # The mask depends on the individual only: build it once per individual.
        mask = bin_mask(est, torch.as_tensor(X, dtype=torch.float32))
        if rules is not None:
            left = est.model_.bins.double().numpy()
            own = np.clip(np.floor(X * est.n_bins), 0, est.n_bins - 1).astype(int)
            mask &= torch.from_numpy(rules.bin_mask(left, left + 1.0 / est.n_bins,
                                                    est.bin_values_, own))
            fixed = torch.from_numpy(rules.fixed).repeat_interleave(n_samples, dim=0)
        mask = mask.to(device)
        effort = enc.schema_.has_effort
        out = decode(
            model_on(est, device), xt, temperature=temperature, sigma=est.sigma,
            bin_mask=mask.repeat_interleave(n_samples, dim=0), fixed=fixed, generator=gen,
            use_cache=use_cache, bin_values=torch.as_tensor(est.bin_values_),
            stay_in_bin=est.stay_in_bin, group=n_samples, max_changes=enc.schema_.max_changes,
            stay_radius=EFFORT_STAY_RADIUS if effort else 0, **draws).cpu().double().numpy()
    if effort:  # a value the sampler kept (the factual in float32) is the factual exactly
        out = np.where(out == Xr.astype(np.float32), Xr, out)
    # Immutables copy the factual exactly (float32 round-off aside); the rest is snapped
    # to categories / integers / bounds, and a monotone feature that stayed inside its
    # factual's bin keeps the factual value.
    out = enc.project(out, factual=Xr)
    if effort:  # and a value rounded back onto the factual's grid point is unchanged
        out = np.where(np.abs(out - Xr) <= CHANGE_TOL, Xr, out)
    if rules is not None:
        out = rules.repeat(n_samples).project(out, Xr, enc)
    return out.reshape(len(X), n_samples, -1)


def choose(est, X: np.ndarray, best_k: int, seed: int | None, min_probability=None,
           **draw) -> tuple[np.ndarray, np.ndarray]:
    """One recourse per row and h's probability of it: of best_k samples, the one h scores
    highest (select="h"), or the cheapest h accepts (select="effort"; the highest-scored when
    h accepts none). h scores each sample once. draw: sample's keys, offset, constraints;
    min_probability: what "accepts" means (genre.tables.decision.accepts)."""
    cands = sample(est, X, best_k, seed, **draw)
    N, K, D = cands.shape
    p = est.classifier_.predict_proba(cands.reshape(N * K, D)).reshape(N, K)
    pick = np.where(np.isnan(p), -np.inf, p).argmax(axis=1)  # a NaN sample is picked last
    if est.select == "effort":
        effort = est.encoder_.effort(np.asarray(X, dtype=float)[:, None, :], cands)
        ok = accepts(p, min_probability)
        cheapest = np.where(ok, effort, np.inf).argmin(axis=1)
        pick = np.where(ok.any(axis=1), cheapest, pick)
    rows = np.arange(N)
    return cands[rows, pick], p[rows, pick]


def options(est, X: np.ndarray, k: int, n_samples: int, seed: int | None,
            min_probability=None, **draw) -> Options:
    """Up to k distinct accepted recourses per row, cheapest first, distinct sets of changed
    features first, then sorted by effort (see GenRe.options). draw: sample's keys, offset,
    constraints; min_probability: what "accepts" means."""
    cands = sample(est, X, n_samples, seed, **draw)
    N, S, D = cands.shape
    prob = est.classifier_.predict_proba(cands.reshape(N * S, D)).reshape(N, S)
    X = np.asarray(X, dtype=float)
    cost = est.encoder_.effort(X[:, None, :], cands)
    moved = np.abs(cands - X[:, None, :]) > CHANGE_TOL
    out = np.full((N, k, D), np.nan)
    out_prob = np.full((N, k), np.nan)
    out_cost = np.full((N, k), np.nan)
    for i in range(N):  # per person: dedupe a few dozen rows, cheap
        ok = np.flatnonzero(accepts(prob[i], min_probability))
        if ok.size == 0:
            continue
        _, first = np.unique(np.round(cands[i, ok], 9), axis=0, return_index=True)
        keep = ok[first]
        keep = keep[np.argsort(cost[i, keep], kind="stable")]
        # The first (cheapest) profile of each set of changed features leads.
        _, lead = np.unique(moved[i, keep], axis=0, return_index=True)
        leads = np.zeros(len(keep), dtype=bool)
        leads[lead] = True
        keep = np.concatenate([keep[leads], keep[~leads]])[:k]
        keep = keep[np.argsort(cost[i, keep], kind="stable")]  # shown cheapest first
        out[i, :len(keep)] = cands[i, keep]
        out_prob[i, :len(keep)] = prob[i, keep]
        out_cost[i, :len(keep)] = cost[i, keep]
    found = ~np.isnan(out_prob)
    plausible = np.zeros((N, k), dtype=bool)
    if found.any():
        plausible[found] = est.plausibility().predict(out[found]) == 1
    return Options(out, out_prob, out_cost, plausible)


class UnscoredRows(ModelError):
    """The classifier gave no probability (NaN) for the factual rows `rows` of a block."""

    def __init__(self, rows: np.ndarray):
        super().__init__(f"the model's classifier gives no probability (NaN) for {rows.size} "
                         "rows")
        self.rows = rows


def answer(est, X: np.ndarray, options_k: int = 1, best_k: int | None = None,
           seed: int | None = None, min_probability: float | None = None,
           constraints=None) -> Answers:
    """Answer a block of people (normalised rows X): see Answers. People h accepts keep their
    factual (option 1); the others get the chosen sample (options_k == 1) or up to options_k
    options that h accepts (genre.tables.decision.accepts with min_probability), NaN where
    none. Each person draws from their own stream (keyed by the seed and their values), and
    one whose draw gives nothing h accepts draws as many samples again, continuing the
    stream, up to RETRY_ROUNDS times. constraints: per-call freeze and ranges."""
    X = np.asarray(X, dtype=np.float64)
    p_before = est.classifier_.predict_proba(X)
    unknown = np.flatnonzero(~np.isfinite(p_before))
    if unknown.size:  # never answered as a recourse: the caller names the row
        raise UnscoredRows(unknown)
    accepted = accepts(p_before)
    N, D = X.shape
    X_plus = np.full((N, options_k, D), np.nan)
    prob = np.full((N, options_k), np.nan)
    plausible = np.zeros((N, options_k), dtype=bool)
    X_plus[accepted, 0], prob[accepted, 0] = X[accepted], p_before[accepted]
    plausible[accepted, 0] = True
    rejected = np.flatnonzero(~accepted)
    keys = row_keys(X, est.seed if seed is None else seed)
    if options_k == 1:
        per_draw = setting(est, "best_k") if best_k is None else best_k
    else:
        per_draw = max(setting(est, "best_k"), 10 * options_k) if best_k is None else best_k
    todo = rejected
    for attempt in range(RETRY_ROUNDS + 1):
        if todo.size == 0:
            break
        draw = dict(keys=keys[todo], offset=attempt * per_draw, constraints=constraints)
        if options_k == 1:
            best, p = choose(est, X[todo], per_draw, seed, min_probability, **draw)
            ok = accepts(p, min_probability)
            X_plus[todo[ok], 0], prob[todo[ok], 0] = best[ok], p[ok]
        else:
            opts = options(est, X[todo], options_k, per_draw, seed, min_probability, **draw)
            ok = ~np.isnan(opts.probability[:, 0])
            X_plus[todo[ok]], prob[todo[ok]] = opts.X_plus[ok], opts.probability[ok]
        todo = todo[~ok]
    new = ~np.isnan(prob) & ~accepted[:, None]
    if new.any():
        plausible[new] = est.plausibility().predict(X_plus[new]) == 1
    # A profile h gives no probability for is never answered as a recourse.
    X_plus[np.isnan(prob)] = np.nan
    found = ~np.isnan(X_plus).any(axis=2)
    effort = est.encoder_.effort(X[:, None, :], np.where(found[..., None], X_plus, X[:, None]))
    effort = np.where(found, effort, np.nan)
    return Answers(accepted, X_plus, prob, effort, plausible)
