"""The guided-diffusion baseline: shapes, schema, validity, and the safetensors cache."""

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from genre.baselines.diffusion import (
    CACHE_NAME,
    PRESETS,
    GuidedDiffusion,
    beta_schedule,
    diffusion_for,
)
from genre.core.task import RecourseTask, SklearnClassifier
from genre.errors import InputError, ModelError

TINY = dict(width=64, depth=2, time_dim=16, timesteps=20, train_steps=400, batch_size=128)


# Each test gets an empty model cache (the cache round trips start from nothing).
pytestmark = pytest.mark.usefixtures("private_cache")


@pytest.fixture(scope="module")
def task(make_mixed_task):
    return make_mixed_task()


@pytest.fixture(scope="module")
def individuals(task):
    p = task.classifier.predict_proba(task.X_train)
    return task.X_train[p < 0.5][:40]


def test_schedules():
    for kind in ("cosine", "linear"):
        b = beta_schedule(kind, 100)
        assert b.shape == (100,) and (b > 0).all() and (b < 1).all()
        assert np.cumprod(1 - b)[-1] < 0.05  # the chain ends close to pure noise


def test_presets():
    assert diffusion_for("moons").get_params() == GuidedDiffusion().get_params()
    m = diffusion_for("adult", seed=3)
    assert m.min_h == PRESETS["adult"]["min_h"] and m.seed == 3
    assert GuidedDiffusion.name == "diffusion"


def test_shape_schema_and_validity(task, individuals):
    X = individuals
    method = GuidedDiffusion(guidance_scale=0.3, strength=0.5, **TINY).fit(task)
    Xp = method.generate(X)
    assert Xp.shape == X.shape
    assert not np.isnan(Xp).any()
    enc = task.encoder
    imm = enc.immutable_mask
    assert imm.sum() == 1
    np.testing.assert_array_equal(Xp[:, imm], X[:, imm])  # immutables exactly the factual
    step = enc.grid_step
    grid = step > 0
    k = Xp[:, grid] / step[grid]
    np.testing.assert_allclose(k, np.rint(k), atol=1e-6)
    assert (Xp >= 0).all() and (Xp <= 1).all()
    valid = task.classifier.predict_proba(Xp) > 0.5
    assert valid.mean() >= 0.8, valid.mean()
    # the sampler returns several candidates per individual, every one on the schema
    cands = method.sample(X[:5], n_samples=4, seed=1)
    assert cands.shape == (5, 4, X.shape[1])
    np.testing.assert_array_equal(cands[:, :, imm], np.repeat(X[:5, None, imm], 4, axis=1))


def test_guidance_raises_validity_and_cost_selection(task, individuals):
    method = GuidedDiffusion(guidance_scale=0.0, strength=0.3, n_samples=1, select="h",
                             **TINY).fit(task)
    unguided = task.classifier.predict_proba(method.generate(individuals)) > 0.5
    method.set_params(guidance_scale=0.3)
    guided = task.classifier.predict_proba(method.generate(individuals)) > 0.5
    assert guided.mean() > unguided.mean()
    # select="cost": the cheapest accepted candidate costs no more than the best-by-h one
    method.set_params(n_samples=8)
    by_h = method.generate(individuals, seed=3)
    method.set_params(select="cost")
    by_cost = method.generate(individuals, seed=3)
    ok = task.classifier.predict_proba(by_cost) > 0.5
    cost_h = np.abs(by_h - individuals).sum(1)
    cost_c = np.abs(by_cost - individuals).sum(1)
    assert (cost_c[ok] <= cost_h[ok] + 1e-9).all()


def test_nan_rows_and_errors(task, individuals):
    method = GuidedDiffusion(**TINY).fit(task)
    X = individuals[:4].copy()
    X[1, 0] = np.nan
    Xp = method.generate(X)
    assert np.isnan(Xp[1]).all() and not np.isnan(Xp[[0, 2, 3]]).any()
    with pytest.raises(InputError):
        method.generate(X[:, :2])
    with pytest.raises(ModelError):
        GuidedDiffusion(**TINY).generate(individuals)
    with pytest.raises(ValueError):
        method.set_params(no_such_knob=1)
    lr = LogisticRegression().fit(task.X_train, task.y_train)
    sk_task = RecourseTask(task.encoder, task.X_train, task.y_train, SklearnClassifier(lr),
                           name="tiny-sk")
    with pytest.raises(InputError, match="differentiable"):
        GuidedDiffusion(**TINY).fit(sk_task)


def test_cache_round_trip(task, individuals, private_cache):
    first = GuidedDiffusion(**TINY).fit(task)
    info = first.model_info_
    assert not info.cached and info.path is not None
    assert info.path.parent == private_cache / CACHE_NAME
    assert sorted(p.name for p in info.path.iterdir()) == ["ddpm.json", "ddpm.safetensors",
                                                           "manifest.json"]
    meta = json.loads((info.path / "ddpm.json").read_text())
    assert meta["config"]["train_steps"] == TINY["train_steps"] and meta["task"] == "tiny"
    assert not list(private_cache.rglob("*.pt")) and not list(private_cache.rglob("*.pkl"))

    again = GuidedDiffusion(**TINY).fit(task)
    assert again.model_info_.cached and again.model_info_.path == info.path
    for (k, a), (_, b) in zip(first.model_.denoiser.state_dict().items(),
                              again.model_.denoiser.state_dict().items(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), k
    np.testing.assert_array_equal(first.generate(individuals), again.generate(individuals))

    # another hyper-parameter or another training set is another entry
    other = GuidedDiffusion(**(TINY | {"train_steps": 200})).fit(task)
    assert not other.model_info_.cached and other.model_info_.path != info.path
    filtered = GuidedDiffusion(min_h=0.5, **TINY).fit(task)
    assert filtered.model_info_.path != info.path
    assert filtered.model_info_.meta["n_train"] < info.meta["n_train"]

    # a damaged entry is retrained and replaced, not trusted
    (info.path / "ddpm.safetensors").write_bytes(b"not a tensor file")
    fixed = GuidedDiffusion(**TINY).fit(task)
    assert not fixed.model_info_.cached
    assert GuidedDiffusion(**TINY).fit(task).model_info_.cached
