"""The VAE-latent baselines (CCHVAE, REVISE, CRUDS) and their shared, cached VAE."""

import json

import numpy as np
import pytest
import torch

from genre.baselines.cchvae import CCHVAE
from genre.baselines.cruds import CRUDS
from genre.baselines.revise import REVISE
from genre.baselines.vae import CACHE_NAME, LatentVAE, VAEConfig, load_or_train_vae
from genre.core.task import RecourseTask, TorchClassifier
from genre.errors import InputError

VAE_EPOCHS = 12
FAST = {
    "cchvae": lambda **kw: CCHVAE(n_search_samples=100, max_iter=100, vae_epochs=VAE_EPOCHS,
                                  **kw),
    "revise": lambda **kw: REVISE(max_iter=150, vae_epochs=VAE_EPOCHS, **kw),
    "cruds": lambda **kw: CRUDS(max_iter=200, lr=0.05, vae_epochs=VAE_EPOCHS, **kw),
}


# Each test gets an empty model cache (the cache round trips start from nothing).
pytestmark = pytest.mark.usefixtures("private_cache")


@pytest.fixture(scope="module")
def task(make_mixed_task):
    return make_mixed_task(x2_monotone="increase")


@pytest.fixture(scope="module")
def individuals(task):
    p = task.classifier.predict_proba(task.X_train)
    return task.X_train[p < 0.5][:40]


def check_schema(task, X, Xp):
    enc = task.encoder
    ok = ~np.isnan(Xp).any(axis=1)
    assert np.isnan(Xp[~ok]).all()  # a miss is a whole NaN row
    X, Xp = X[ok], Xp[ok]
    np.testing.assert_array_equal(Xp[:, enc.immutable_mask], X[:, enc.immutable_mask])
    step = enc.grid_step
    grid = step > 0
    assert grid.sum() == 3  # x2, colour, group
    k = Xp[:, grid] / step[grid]
    np.testing.assert_allclose(k, np.rint(k), atol=1e-6)
    assert (Xp >= -1e-9).all() and (Xp <= 1 + 1e-9).all()
    assert (Xp[:, 1] >= X[:, 1] - 1e-9).all()  # x2 may only increase
    return ok


@pytest.mark.parametrize("name", sorted(FAST))
def test_method_outputs_respect_schema_and_are_valid(name, task, individuals):
    method = FAST[name]()
    assert method.fit(task) is method
    Xp = method.generate(individuals)
    assert Xp.shape == individuals.shape
    ok = check_schema(task, individuals, Xp)
    assert ok.mean() >= 0.8, f"{name} found recourse for only {ok.mean():.0%}"
    # Every returned point was judged after projection, so h accepts all of them.
    assert (task.classifier.predict_proba(Xp[ok]) > 0.5).all()
    # ... and they actually moved (the factuals are all rejected).
    assert (np.abs(Xp[ok] - individuals[ok]).sum(axis=1) > 0).all()


@pytest.mark.parametrize("name", sorted(FAST))
def test_bad_rows_and_hopeless_classifier_give_nan_not_crash(name, task, individuals):
    X = individuals[:4].copy()
    X[1] = np.nan
    out = FAST[name]().fit(task).generate(X)
    assert np.isnan(out[1]).all()
    # A classifier that rejects everyone: no recourse anywhere, still no exception.
    never = torch.nn.Sequential(torch.nn.Linear(task.n_features, 1))
    with torch.no_grad():
        never[0].weight.zero_()
        never[0].bias.fill_(-5.0)
    hopeless = RecourseTask(task.encoder, task.X_train, task.y_train, TorchClassifier(never),
                            name="tiny", seed=0)
    method = FAST[name]()
    if name == "cruds":  # its CSVAE needs two classes from h; use the data labels
        method.label_source = "data"
    out = method.fit(hopeless).generate(X)
    assert out.shape == X.shape and np.isnan(out).all()


def test_vae_cache_round_trip(task, private_cache, monkeypatch):
    first = CCHVAE(vae_epochs=3).fit(task)
    assert not first.vae_info_.cached
    where = first.vae_info_.path
    assert where.parent == private_cache / CACHE_NAME
    assert where.name.startswith("tiny-seed0-D4-")
    assert sorted(p.name for p in where.iterdir()) == ["manifest.json", "vae.json",
                                                       "vae.safetensors"]
    assert [p.name for p in where.parent.iterdir()] == [where.name]  # no temp dir left
    meta = json.loads((where / "vae.json").read_text())
    assert meta["config"]["epochs"] == 3 and meta["immutable"] == [False, False, False, True]

    def no_training(*args, **kwargs):
        raise AssertionError("the cached VAE should have been loaded, not retrained")

    with monkeypatch.context() as mp:
        mp.setattr(LatentVAE, "fit", no_training)
        second = REVISE(vae_epochs=3).fit(task)  # same VAE configuration: shared cache entry
    assert second.vae_info_.cached and second.vae_info_.path == where
    a, b = first.vae_.state_dict(), second.vae_.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)

    # Another configuration is another entry; a corrupt entry is retrained, not fatal.
    other = CCHVAE(vae_epochs=2).fit(task)
    assert other.vae_info_.path != where and not other.vae_info_.cached
    (where / "vae.safetensors").write_bytes(b"garbage")
    again = CCHVAE(vae_epochs=3).fit(task)
    assert not again.vae_info_.cached and again.vae_info_.path == where
    assert CCHVAE(vae_epochs=3).fit(task).vae_info_.cached


def test_conditional_vae_keeps_immutables_and_csvae_separates_labels(task):
    cfg = VAEConfig(epochs=VAE_EPOCHS, w_dim=2, label_source="data")
    vae, info = load_or_train_vae(task, cfg, use_cache=False)
    assert info.path is None
    X = torch.as_tensor(task.X_train[:300], dtype=torch.float32)
    y = torch.as_tensor(task.y_train[:300])
    rec = vae.reconstruct(X, y)
    torch.testing.assert_close(rec[:, 3], X[:, 3])  # the immutable column is copied
    assert ((rec >= 0) & (rec <= 1)).all()
    with torch.no_grad():
        w = vae.encode_w(X, y)[0]
    # w follows its class prior (-2 for y = 0, +2 for y = 1).
    assert (w[y == 1].mean(0) > 1).all() and (w[y == 0].mean(0) < -1).all()


def test_seeded_and_deterministic(task, individuals):
    a = FAST["cchvae"](seed=3).fit(task).generate(individuals[:10])
    b = FAST["cchvae"](seed=3).fit(task).generate(individuals[:10])
    np.testing.assert_array_equal(a, b)


def test_gradient_methods_need_a_differentiable_classifier(task):
    class Constant:
        def predict_proba(self, X):
            return np.full(len(X), 0.2)

    flat = RecourseTask(task.encoder, task.X_train, task.y_train, Constant(), name="tiny")
    for method in (REVISE(vae_epochs=1), CRUDS(vae_epochs=1)):
        with pytest.raises(InputError, match="differentiable"):
            method.fit(flat)
