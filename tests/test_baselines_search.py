"""Search baselines (Wachter, Growing Spheres, ROAR, PROBE, DiCE) on a tiny synthetic task."""

import numpy as np
import pandas as pd
import pytest
import torch

from genre.baselines.dice import DiCE, to_normalised
from genre.baselines.growing_spheres import GrowingSpheres
from genre.baselines.probe import PROBE
from genre.baselines.roar import ROAR
from genre.baselines.wachter import Wachter, finalise
from genre.classifiers.mlp import train_mlp
from genre.core.task import RecourseTask
from genre.data import Encoder, Feature, Schema
from genre.errors import InputError

CAT, IMM = 2, 3  # column of the mutable 3-level categorical and of the immutable binary one


def _schema(monotone_income: bool = False) -> Schema:
    return Schema((
        Feature("income", "numeric", monotone="increase" if monotone_income else None),
        Feature("savings", "numeric"),
        Feature("job", "categorical", categories=("none", "part", "full")),
        Feature("group", "categorical", categories=("a", "b"), immutable=True),
    ), target="y")


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    n = 800
    df = pd.DataFrame({
        "income": rng.uniform(0, 100, n),
        "savings": rng.uniform(0, 50, n),
        "job": rng.choice(["none", "part", "full"], n),
        "group": rng.choice(["a", "b"], n),
    })
    enc = Encoder(_schema()).fit(df)
    X = enc.transform(df)
    score = X[:, 0] + X[:, 1] + 0.4 * X[:, CAT] - 0.2 * X[:, IMM]
    y = (score > 1.0).astype(int)
    h = train_mlp(X, y, epochs=40, seed=0)
    task = RecourseTask(enc, X, y, h, name="tiny", seed=0)
    rejected = X[h.predict_proba(X) < 0.5][:40]
    assert len(rejected) >= 20
    return task, rejected


def _check_schema(task, X, Xp):
    enc = task.encoder
    assert Xp.shape == X.shape
    found = ~np.isnan(Xp).any(axis=1)
    assert (np.isnan(Xp[~found]).all(axis=1)).all()  # a missing answer is a whole NaN row
    np.testing.assert_array_equal(Xp[found][:, IMM], X[found][:, IMM])
    codes = Xp[found][:, CAT] * 2  # 3 categories -> normalised grid 0, .5, 1
    np.testing.assert_allclose(codes, np.rint(codes), atol=1e-9)
    assert (Xp[found] >= enc.lower - 1e-9).all() and (Xp[found] <= enc.upper + 1e-9).all()
    return found


def _h_validity(task, Xp):
    found = ~np.isnan(Xp).any(axis=1)
    ok = np.zeros(len(Xp), dtype=bool)
    ok[found] = task.classifier.predict_proba(Xp[found]) > 0.5
    return ok.mean()


@pytest.mark.parametrize("method", [
    Wachter(), ROAR(), PROBE(), GrowingSpheres(n_samples=300),
], ids=["wachter", "roar", "probe", "gs"])
def test_search_methods_valid_and_schema_respecting(tiny, method):
    task, X = tiny
    Xp = method.fit(task).generate(X)
    found = _check_schema(task, X, Xp)
    assert found.all()
    assert _h_validity(task, Xp) >= 0.9
    # Recourse actually moves the rejected individuals, and not absurdly far.
    cost = np.abs(Xp - X).sum(axis=1)
    assert (cost > 0).mean() >= 0.9 and cost.mean() < 2.0


@pytest.mark.parametrize("make", [Wachter, ROAR, PROBE, lambda: GrowingSpheres(n_samples=300)],
                         ids=["wachter", "roar", "probe", "gs"])
def test_monotone_feature_only_moves_its_way(tiny, make):
    task, X = tiny
    enc = Encoder.from_state(_schema(monotone_income=True), task.encoder.lo_, task.encoder.hi_)
    mono_task = RecourseTask(enc, task.X_train, task.y_train, task.classifier, name="tiny-mono")
    Xp = make().fit(mono_task).generate(X)
    found = _check_schema(mono_task, X, Xp)
    assert (Xp[found][:, 0] >= X[found][:, 0] - 1e-9).all()


def test_growing_spheres_seeded_and_sparse(tiny):
    task, X = tiny
    a = GrowingSpheres(n_samples=200, seed=3).fit(task).generate(X[:10])
    b = GrowingSpheres(n_samples=200, seed=3).fit(task).generate(X[:10])
    np.testing.assert_array_equal(a, b)
    # Feature selection: reverting any single moved coordinate would lose acceptance.
    for i in range(len(a)):
        for j in np.flatnonzero(np.abs(a[i] - X[i][None]).ravel() > 0):
            trial = a[i].copy()
            trial[j] = X[i, j]
            assert task.classifier.predict_proba(trial[None])[0] <= 0.5


def test_roar_lime_surrogate_and_l2_ball_run(tiny):
    task, X = tiny
    for m in (ROAR(surrogate="lime", lime_samples=500), ROAR(delta_norm="l2")):
        Xp = m.fit(task).generate(X[:10])
        assert _check_schema(task, X[:10], Xp).all()


def test_robust_methods_sit_deeper_than_wachter(tiny):
    task, X = tiny
    p = {name: task.classifier.predict_proba(m.fit(task).generate(X)).mean()
         for name, m in (("wachter", Wachter()), ("roar", ROAR()), ("probe", PROBE()))}
    assert p["roar"] > p["wachter"] and p["probe"] > p["wachter"]


def test_non_finite_search_result_becomes_nan_row(tiny):
    task, X = tiny
    last = torch.as_tensor(X[:3], dtype=torch.float32)
    keep = last.clone()
    last[1, 0] = float("inf")  # row 1 is not done: its last iterate counts
    keep[2, 0] = float("nan")  # row 2 is done: its kept point counts
    out = finalise(task, X[:3], last, keep, torch.tensor([False, False, True]))
    assert np.isnan(out[[1, 2]]).all() and np.isfinite(out[0]).all()


def test_empty_batch(tiny):
    task, X = tiny
    for m in (Wachter(), ROAR(), PROBE(), GrowingSpheres()):
        assert m.fit(task).generate(X[:0]).shape == (0, X.shape[1])


@pytest.mark.parametrize("mode,n", [("random", 10), ("genetic", 3)])
def test_dice(tiny, mode, n):
    pytest.importorskip("dice_ml")
    task, X = tiny
    m = DiCE(mode=mode, seed=0).fit(task)
    Xp = m.generate(X[:n])
    found = _check_schema(task, X[:n], Xp)
    assert m.n_failed_ == int((~found).sum())
    assert found.mean() >= 0.7
    assert _h_validity(task, Xp) >= 0.7
    if mode == "random":  # seeded through random_seed: the same answers again
        np.testing.assert_array_equal(DiCE(mode=mode, seed=0).fit(task).generate(X[:3]), Xp[:3])


def test_dice_failure_gives_nan_row(tiny, monkeypatch):
    pytest.importorskip("dice_ml")
    task, X = tiny
    m = DiCE().fit(task)
    calls = {"n": 0}
    real = m._one

    def flaky(query):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return real(query)

    monkeypatch.setattr(m, "_one", flaky)
    Xp = m.generate(X[:3])
    assert np.isnan(Xp[1]).all() and m.n_failed_ >= 1


def test_dice_stopping_threshold(tiny):
    """The threshold reaches DiCE: every answer found at 0.8 has h's probability >= 0.8
    (before projection to the schema may move it, so checked on the raw counterfactuals),
    and a threshold outside [0.5, 1) is refused at fit."""
    pytest.importorskip("dice_ml")
    task, X = tiny
    m = DiCE(seed=0, stopping_threshold=0.8).fit(task)
    queries = task.encoder.inverse_transform(X[:5])
    seen = 0
    for i in range(5):
        cfs = m._one(queries.iloc[[i]].reset_index(drop=True))
        if cfs is None:
            continue
        C = to_normalised(task.encoder, cfs[task.encoder.schema_.names])
        assert (task.classifier.predict_proba(C) >= 0.8 - 1e-9).all()
        seen += 1
    assert seen >= 3
    for bad in (0.4, 1.0):
        with pytest.raises(InputError, match="stopping_threshold"):
            DiCE(stopping_threshold=bad).fit(task)
