"""Property-based tests: GenRe respects the schema by construction.

Hypothesis builds random schemas (numeric/categorical features, integer flags, bounds,
monotone directions, immutables) with training data consistent with them, fits a tiny GenRe
per schema and checks, for random query individuals (including values at the bounds and at
the edges of the category lists), that every sample, every `generate` answer and every
`options` row keeps immutables, moves monotone features only the allowed way, stays inside
the bounds, lands on valid categories / integers and has no `metrics.violations`. The same
guarantees are checked for `Encoder.project` on arbitrary arrays, and feasibility for the
training pairs of `PairSampler`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from genre.bench.metrics import Violations, violations
from genre.core.estimator import GenRe
from genre.core.pairs import TOL as PAIR_TOL
from genre.core.pairs import PairSampler
from genre.core.task import RecourseTask
from genre.data.encoder import Encoder
from genre.data.schema import Feature, Schema
from genre.errors import InputError

EXACT = 1e-12  # "no tolerance": immutables/monotone hold up to float64 noise only
BOUND_TOL = 1e-9
# String category labels, some of them number-like.
LABELS = ("a", "b", "Z", "yes", "no", "low", "high", "0", "1", "1.5", "-2", "N/A", "x_y", "B-")

SLOW = settings(max_examples=40, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FAST = settings(max_examples=100, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------- strategies
@dataclass
class Problem:
    schema: Schema
    train: pd.DataFrame  # features + target "y" (0/1, both classes)
    queries: pd.DataFrame  # individuals to explain, within the schema's bounds
    seed: int


def _numeric_column(draw, rng: np.random.Generator, n: int, integer: bool, immutable: bool):
    """Values of one numeric column: a random centre/scale and a random shape (immutables
    mostly take few values: a continuous immutable leaves no row a feasible partner)."""
    scale = draw(st.sampled_from([1e-3, 0.5, 1.0, 7.0, 100.0, 1e5]))
    centre = draw(st.sampled_from([0.0, 1.0, -3.0, 50.0, 1e4])) * (1 if scale < 1e5 else 10)
    shape = draw(st.sampled_from(["few", "few", "constant", "spread"] if immutable
                                 else ["spread", "spread", "few", "constant"]))
    if shape == "spread":
        values = centre + scale * rng.standard_normal(n)
    elif shape == "few":
        values = rng.choice(centre + scale * rng.standard_normal(3), n)
    else:
        values = np.full(n, centre + scale * rng.standard_normal())
    if integer:
        values = np.rint(values)
    return values


def _bound(draw, rng, edge: float, side: int, integer: bool) -> float:
    """A bound at or beyond the data's extreme `edge` (side -1: min, +1: max)."""
    kind = draw(st.sampled_from(["at", "int", "float"] if integer else ["at", "float"]))
    if kind == "at":
        return float(edge)
    if kind == "int":  # an integral bound beyond the data
        return float(edge + side * rng.integers(1, 20))
    width = draw(st.sampled_from([1e-6, 0.5, 3.7, 1e3]))
    return float(edge + side * width * rng.random())


@st.composite
def problems(draw) -> Problem:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_features = draw(st.integers(2, 8))
    n_rows = draw(st.integers(20, 200))
    n_queries = draw(st.integers(1, 30))
    feats, train, queries = [], {}, {}
    for j in range(n_features):
        name = f"x{j}"
        immutable = draw(st.sampled_from([False, False, True]))
        monotone = None if immutable else draw(st.sampled_from([None, "increase", "decrease"]))
        if draw(st.booleans()):  # categorical
            n_cat = draw(st.integers(2, 6))
            if draw(st.booleans()):
                cats = draw(st.lists(st.integers(-50, 1000), min_size=n_cat, max_size=n_cat,
                                     unique=True))
            else:
                cats = list(draw(st.permutations(LABELS))[:n_cat])
            used = draw(st.sampled_from(["all", "some"]))
            pool = np.arange(n_cat) if used == "all" else rng.choice(
                n_cat, size=rng.integers(1, n_cat + 1), replace=False)
            codes = rng.choice(pool, n_rows)
            train[name] = [cats[c] for c in codes]
            # Queries: any category, the first and last ones often.
            q = rng.integers(0, n_cat, n_queries)
            edge = rng.random(n_queries) < 0.4
            q[edge] = rng.choice([0, n_cat - 1], edge.sum())
            queries[name] = [cats[c] for c in q]
            feats.append(Feature(name, "categorical", tuple(cats), immutable, monotone))
            continue
        integer = draw(st.booleans())
        values = _numeric_column(draw, rng, n_rows, integer, immutable)
        lo_d, hi_d = float(values.min()), float(values.max())
        fmin = _bound(draw, rng, lo_d, -1, integer) if draw(st.booleans()) else None
        fmax = _bound(draw, rng, hi_d, +1, integer) if draw(st.booleans()) else None
        if fmin is not None and fmax is not None and fmin >= fmax:
            fmax = fmin + 1.0
        train[name] = values.astype(int) if integer else values
        # Queries inside the bounds (beyond the training range where there is no bound),
        # at the bounds and at the data's extremes.
        span = max(hi_d - lo_d, 1.0)
        qlo = fmin if fmin is not None else lo_d - 0.5 * span
        qhi = fmax if fmax is not None else hi_d + 0.5 * span
        q = rng.uniform(qlo, qhi, n_queries)
        pick = rng.random(n_queries)
        q[pick < 0.15] = qlo
        q[(pick >= 0.15) & (pick < 0.3)] = qhi
        q[(pick >= 0.3) & (pick < 0.4)] = lo_d
        q[(pick >= 0.4) & (pick < 0.5)] = hi_d
        if integer:
            q = np.rint(q)
            q = np.clip(q, math.ceil(qlo), math.floor(qhi))
            q = q.astype(int)
        queries[name] = q
        feats.append(Feature(name, "numeric", None, immutable, monotone, fmin, fmax, integer))
    y = (rng.random(n_rows) < draw(st.sampled_from([0.2, 0.5, 0.8]))).astype(int)
    y[:2], y[2:4] = 0, 1  # both classes, at least two rows each
    train["y"] = y
    schema = Schema(tuple(feats), target="y", favourable=1)
    return Problem(schema, pd.DataFrame(train), pd.DataFrame(queries), seed)


class LinearClassifier:
    """A fixed random logistic model on the normalised space: cheap and deterministic."""

    def __init__(self, w: np.ndarray, b: float):
        self.w, self.b = w, b

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = np.clip(np.asarray(X, dtype=float) @ self.w + self.b, -50, 50)
        return 1.0 / (1.0 + np.exp(-z))


def _gamma(p: np.ndarray, y: np.ndarray) -> float | None:
    """A threshold leaving >= 2 sources (p <= gamma) and >= 2 targets (p > gamma, y = 1)."""
    pos = np.sort(p[y == 1])[::-1]
    if len(pos) < 2 or (p < pos[1]).sum() < 2:
        return None
    return float(p[p < pos[1]].max())  # sources: p < pos[1]; targets: the top positives


def _task(problem: Problem) -> tuple[RecourseTask, float]:
    enc = Encoder(problem.schema).fit(problem.train)
    X = enc.transform(problem.train, source="training data")
    y = problem.train["y"].to_numpy()
    rng = np.random.default_rng(problem.seed)
    clf = LinearClassifier(rng.standard_normal(X.shape[1]), float(rng.standard_normal()))
    gamma = _gamma(clf.predict_proba(X), y)
    assume(gamma is not None)  # rows all alike: no threshold splits them
    return RecourseTask(enc, X, y, clf, name="random"), gamma


# ---------------------------------------------------------------------------- checks
def assert_respects_schema(enc: Encoder, X: np.ndarray, X_plus: np.ndarray,
                           strict: bool = True) -> None:
    """Every non-NaN row of X_plus is a schema-valid recourse for the matching row of X.

    A factual may lie outside the training range of a feature without schema bounds.
    strict: its recourse value is then inside [lower, upper] or exactly the factual's
    (GenRe, up to float noise); otherwise it may lie anywhere between the two (as
    `project` and `violations` allow).
    """
    found = ~np.isnan(X_plus).any(axis=1)
    assert (found | np.isnan(X_plus).all(axis=1)).all(), "partly-NaN row"
    X, Xp = np.asarray(X, dtype=float)[found], X_plus[found]
    if len(Xp) == 0:
        return
    delta = Xp - X
    imm, mono = enc.immutable_mask, enc.monotone
    np.testing.assert_array_equal(Xp[:, imm], X[:, imm], err_msg="immutable changed")
    assert (delta[:, mono > 0] >= -EXACT).all(), "an increase-only feature decreased"
    assert (delta[:, mono < 0] <= EXACT).all(), "a decrease-only feature increased"
    # Inside [lower, upper], or (a factual outside them) exactly the factual's value.
    lower, upper = (enc.lower, enc.upper) if strict else (
        np.minimum(enc.lower, X), np.maximum(enc.upper, X))
    inside = (Xp >= lower - BOUND_TOL) & (Xp <= upper + BOUND_TOL)
    # (A gridded value snapped back onto its factual may differ from it by an ulp.)
    bad = np.argwhere(~(inside | (np.abs(Xp - X) <= EXACT)))
    assert not bad.size, ("value outside the schema's bounds", _where(enc, X, Xp, bad))
    raw = Xp * (enc.hi_ - enc.lo_) + enc.lo_  # original units, before any rounding
    for j, f in enumerate(enc.schema_.features):
        if f.is_categorical:
            np.testing.assert_allclose(raw[:, j], np.rint(raw[:, j]), atol=1e-9,
                                       err_msg=f"{f.name}: not a category code")
            assert ((np.rint(raw[:, j]) >= 0) & (np.rint(raw[:, j]) < len(f.categories))).all()
        elif f.integer:
            off = np.abs(raw[:, j] - np.rint(raw[:, j])) > 1e-9 * np.maximum(1, np.abs(raw[:, j]))
            assert not off.any(), ("not an integer", _where(
                enc, X, Xp, np.argwhere(off[:, None]) * [1, 0] + [0, j]))
        if f.min is not None:
            assert (raw[:, j] >= f.min - 1e-9 * max(1, abs(f.min))).all(), f"{f.name} < min"
        if f.max is not None:
            assert (raw[:, j] <= f.max + 1e-9 * max(1, abs(f.max))).all(), f"{f.name} > max"
    back = enc.inverse_transform(Xp)
    for f in enc.schema_.features:
        if f.is_categorical:
            assert set(back[f.name]) <= set(f.categories)
        elif f.integer:
            assert back[f.name].dtype.kind == "i"
    assert violations(enc, X, Xp) == Violations(0, 0, 0, 0), violations(enc, X, Xp)


def _where(enc: Encoder, X: np.ndarray, Xp: np.ndarray, cells: np.ndarray) -> str:
    """Readable description of the first offending (row, feature) cells."""
    out = []
    for i, j in cells[:3]:
        f = enc.schema_.features[j]
        out.append(f"{f}: lo={enc.lo_[j]!r} hi={enc.hi_[j]!r} lower={enc.lower[j]!r} "
                   f"upper={enc.upper[j]!r} factual={X[i, j]!r} value={Xp[i, j]!r}")
    return "\n".join(out)


# ---------------------------------------------------------------------- GenRe samples
@pytest.mark.filterwarnings("ignore:n_neighbors")  # LOF on a handful of favourable rows
@SLOW
@given(problem=problems(), data=st.data())
def test_genre_outputs_respect_the_schema(problem, data):
    task, gamma = _task(problem)
    enc = task.encoder
    params = dict(
        d_model=8, n_heads=data.draw(st.sampled_from([1, 2]), label="n_heads"),
        n_enc_layers=1, n_dec_layers=1, d_ff=8, batch_size=64, patience=5,
        max_epochs=data.draw(st.integers(1, 2), label="max_epochs"),
        k=data.draw(st.integers(1, 20), label="k"),
        n_bins=data.draw(st.sampled_from([2, 7, 50]), label="n_bins"),
        bin_value=data.draw(st.sampled_from(["data", "edge"]), label="bin_value"),
        stay_in_bin=data.draw(st.booleans(), label="stay_in_bin"),
        temperature=data.draw(st.sampled_from([0.05, 1.0, 10.0]), label="temperature"),
        sigma=data.draw(st.sampled_from([0.0, 0.0, 0.3]), label="sigma"),
        best_k=3, gamma=gamma, seed=problem.seed % 1000, progress=False,
        sampler="autoregressive",  # the student's masks: tests/test_student.py
    )
    try:
        model = GenRe(**params).fit(task)
    except InputError as exc:  # immutables/monotone leave no source a feasible target
        assert "feasible favourable target" in str(exc)
        assume(False)
    X = enc.transform(problem.queries)
    n = data.draw(st.integers(1, 6), label="n_samples")
    S = model.sample(X, n, seed=1, use_cache=data.draw(st.booleans(), label="use_cache"))
    assert S.shape == (len(X), n, enc.n_features)
    assert not np.isnan(S).any()
    assert_respects_schema(enc, np.repeat(X, n, axis=0), S.reshape(-1, enc.n_features))
    G = model.generate(X, seed=2)
    assert_respects_schema(enc, X, G)
    opts = model.options(X, k=2, n_samples=6, seed=3)
    for i in range(2):
        assert_respects_schema(enc, X, opts.X_plus[:, i])
    # The training rows themselves as queries (the model saw their neighbourhoods).
    Xt = task.X_train[:40]
    assert_respects_schema(enc, np.repeat(Xt, 2, axis=0),
                           model.sample(Xt, 2, seed=4).reshape(-1, enc.n_features))


# ---------------------------------------------------------------------- Encoder.project
@FAST
@given(problem=problems(), data=st.data())
def test_project_makes_any_array_respect_the_schema(problem, data):
    enc = Encoder(problem.schema).fit(problem.train)
    X = enc.transform(problem.queries)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="array seed"))
    # Arbitrary points: far outside [0, 1], near it, exactly at grid points and bounds.
    Y = rng.uniform(-2, 3, X.shape)
    pick = rng.random(X.shape)
    Y = np.where(pick < 0.2, X, Y)
    Y = np.where((pick >= 0.2) & (pick < 0.3), enc.lower, Y)
    Y = np.where((pick >= 0.3) & (pick < 0.4), enc.upper, Y)
    Y = np.where((pick >= 0.4) & (pick < 0.5), X + rng.normal(0, 1e-7, X.shape), Y)
    Y = np.where((pick >= 0.5) & (pick < 0.55), rng.choice([-1e6, 1e6], X.shape), Y)
    P = enc.project(Y, factual=X)
    assert P.shape == X.shape and not np.isnan(P).any()
    assert_respects_schema(enc, X, P, strict=False)
    np.testing.assert_array_equal(enc.project(P, factual=X), P)  # idempotent
    # Without a factual: bounds and grid only.
    Q = enc.project(Y)
    assert ((Q >= enc.lower - BOUND_TOL) & (Q <= enc.upper + BOUND_TOL)).all()
    assert violations(enc, Q, Q) == Violations(0, 0, 0, 0)
    # NaN rows stay NaN (no recourse found), the others are untouched by them.
    Y[0, 0] = np.nan
    P2 = enc.project(Y, factual=X)
    assert np.isnan(P2[0]).all()
    np.testing.assert_array_equal(P2[1:], P[1:])


# ------------------------------------------------------------------------ PairSampler
@st.composite
def pair_problems(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    D = draw(st.integers(1, 6))
    n_src, n_tgt = draw(st.integers(1, 40)), draw(st.integers(1, 60))
    levels = draw(st.sampled_from([2, 3, 5, 0]))  # 0: continuous values
    X_src, X_tgt = rng.random((n_src, D)), rng.random((n_tgt, D))
    if levels:  # coarse grids make equal immutables (hence feasible pairs) common
        X_src = np.rint(X_src * (levels - 1)) / (levels - 1)
        X_tgt = np.rint(X_tgt * (levels - 1)) / (levels - 1)
    immutable = rng.random(D) < 0.4
    monotone = np.where(immutable, 0, rng.integers(-1, 2, D))
    k = draw(st.integers(1, 70))
    lambda_ = draw(st.sampled_from([0.0, 1.0, 5.0, 50.0]))
    block = draw(st.integers(1, 50))
    return X_src, X_tgt, immutable, monotone, k, lambda_, block


def _feasible(src, tgt, immutable, monotone):
    ok = np.ones(len(src), dtype=bool)
    for j in range(src.shape[1]):
        if immutable[j]:
            ok &= np.abs(tgt[:, j] - src[:, j]) <= PAIR_TOL
        elif monotone[j] > 0:
            ok &= tgt[:, j] >= src[:, j] - PAIR_TOL
        elif monotone[j] < 0:
            ok &= tgt[:, j] <= src[:, j] + PAIR_TOL
    return ok


@FAST
@given(pair_problems(), st.integers(0, 1000))
def test_pair_sampler_neighbours_are_feasible(problem, seed):
    X_src, X_tgt, immutable, monotone, k, lambda_, block = problem
    ps = PairSampler(X_src, X_tgt, immutable, lambda_, k, monotone, block_size=block)
    k_eff = min(k, len(X_tgt))
    assert ps.neighbours_.shape == ps.probs_.shape == (len(ps.source_index_), k_eff)
    n_feasible = np.array([
        _feasible(np.repeat(X_src[i:i + 1], len(X_tgt), 0), X_tgt, immutable, monotone).sum()
        for i in range(len(X_src))])
    # Exactly the sources with a feasible target are kept, each with min(k, #feasible).
    np.testing.assert_array_equal(ps.source_index_, np.flatnonzero(n_feasible > 0))
    listed = ps.neighbours_ >= 0
    np.testing.assert_array_equal(listed.sum(axis=1), np.minimum(n_feasible[ps.source_index_],
                                                                 k_eff))
    rows = np.broadcast_to(ps.source_index_[:, None], listed.shape)[listed]
    assert _feasible(X_src[rows], X_tgt[ps.neighbours_[listed]], immutable, monotone).all()
    assert (ps.probs_[~listed] == 0).all()
    if len(ps.source_index_):
        np.testing.assert_allclose(ps.probs_.sum(axis=1), 1.0, rtol=1e-5)
        drawn = ps.sample(np.random.default_rng(seed))
        assert (drawn >= 0).all()
        assert _feasible(X_src[ps.source_index_], X_tgt[drawn], immutable, monotone).all()


# ------------------------------------------------------- regressions found by the above
def test_integer_feature_with_fractional_bounds_stays_integral_and_inside():
    """An integer feature whose schema bounds are not integers (min 0.5, max 10.7): the
    grid must still hold integers, and the bounds are its integers 1 .. 10."""
    schema = Schema((Feature("n", "numeric", min=0.5, max=10.7, integer=True),
                     Feature("m", "numeric", min=-3.2, integer=True, monotone="increase")),
                    target="y")
    train = pd.DataFrame({"n": [1, 4, 10, 7], "m": [-3, 0, 5, 2], "y": [0, 1, 0, 1]})
    enc = Encoder(schema).fit(train)
    X = enc.transform(train)
    Y = np.array([[-1.0, -1.0], [2.0, 2.0], [0.5, 0.51], [0.97, 0.3]])
    P = enc.project(Y, factual=X)
    assert_respects_schema(enc, X, P, strict=False)
    back = enc.inverse_transform(P)
    assert back["n"].tolist() == [1, 10, 5, 10]
    assert back["m"].tolist() == [-3, 5, 5, 2]  # never below the factual (monotone)
    np.testing.assert_array_equal(enc.inverse_transform(X), train[["n", "m"]])


def test_genre_refuses_data_with_no_feasible_pair():
    """Every unfavourable row differs from every favourable one in an immutable: a clear
    InputError, not a ZeroDivisionError from an empty training set."""
    schema = Schema((Feature("g", "categorical", ("a", "b"), immutable=True),
                     Feature("v", "numeric")), target="y")
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"g": ["a"] * 10 + ["b"] * 10, "v": rng.random(20),
                          "y": [0] * 10 + [1] * 10})
    enc = Encoder(schema).fit(train)
    X = enc.transform(train)
    task = RecourseTask(enc, X, train["y"].to_numpy(), LinearClassifier(np.array([9.0, 0]), -4.5))
    with pytest.raises(InputError, match="feasible favourable target"):
        GenRe(d_model=8, n_heads=1, n_enc_layers=1, n_dec_layers=1, d_ff=8, max_epochs=1,
              k=5, gamma=0.5, progress=False, sampler="autoregressive").fit(task)


# ------------------------------------------------------------ effort keys and max_changes
@pytest.mark.filterwarnings("ignore:n_neighbors")
@settings(max_examples=20, deadline=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(problem=problems(), data=st.data())
def test_max_changes_and_effort_keys_hold_for_any_schema(problem, data):
    """Any schema with random costs, ordered flags, sparsity and max_changes: every sample,
    answer and option respects the schema and changes at most max_changes features."""
    from dataclasses import replace

    cap = data.draw(st.integers(1, 3), label="max_changes")
    feats = tuple(replace(f, cost=data.draw(st.sampled_from([None, 0.0, 0.1, 1.0, 10.0]),
                                            label=f"cost {f.name}"),
                          ordered=f.is_categorical and data.draw(st.booleans(),
                                                                 label=f"ordered {f.name}"))
                  for f in problem.schema.features)
    schema = replace(problem.schema, features=feats, max_changes=cap,
                     sparsity=data.draw(st.sampled_from([None, 0.0, 0.5]), label="sparsity"))
    task, gamma = _task(Problem(schema, problem.train, problem.queries, problem.seed))
    enc = task.encoder
    params = dict(d_model=8, n_heads=1, n_enc_layers=1, n_dec_layers=1, d_ff=8, batch_size=64,
                  max_epochs=1, k=data.draw(st.integers(1, 20), label="k"),
                  n_bins=data.draw(st.sampled_from([2, 7, 50]), label="n_bins"),
                  stay_in_bin=data.draw(st.booleans(), label="stay_in_bin"),
                  sigma=data.draw(st.sampled_from([0.0, 0.3]), label="sigma"),
                  best_k=3, gamma=gamma, seed=problem.seed % 1000, progress=False,
                  sampler="autoregressive")
    try:
        model = GenRe(**params).fit(task)
    except InputError as exc:
        assert "feasible favourable target" in str(exc)
        assume(False)
    X = enc.transform(problem.queries)
    S = model.sample(X, 4, seed=1, use_cache=data.draw(st.booleans(), label="use_cache"))
    flat = S.reshape(-1, enc.n_features)
    Xr = np.repeat(X, 4, axis=0)
    assert_respects_schema(enc, Xr, flat)
    assert (Encoder.n_changes(Xr, flat) <= cap).all()
    G = model.generate(X, seed=2)
    assert_respects_schema(enc, X, G)
    assert (Encoder.n_changes(X, G) <= cap).all()
    opts = model.options(X, k=2, n_samples=6, seed=3)
    for i in range(2):
        found = ~np.isnan(opts.X_plus[:, i]).any(axis=1)
        assert_respects_schema(enc, X, opts.X_plus[:, i])
        assert (Encoder.n_changes(X[found], opts.X_plus[found, i]) <= cap).all()
