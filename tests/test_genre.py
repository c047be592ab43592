"""GenRe estimator: training, constrained sampling, persistence (tiny configs)."""

import json

import numpy as np
import pytest

from genre.bench.protocol import build_protocol
from genre.core.estimator import GenRe
from genre.core.training import bin_representatives
from genre.errors import InputError, ModelError

TINY = dict(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=32, max_epochs=12,
            patience=12, batch_size=128, k=50, progress=False, sampler="autoregressive")


@pytest.fixture(scope="module")
def fitted(compas):
    task = compas.task(monotone=True)
    return GenRe(**TINY).fit(task), task


def test_training_loss_falls(fitted):
    model, _ = fitted
    history = model.log_.history
    assert history[-1][1] < 0.8 * history[0][1]  # train loss
    assert model.log_.best_val_loss < history[0][2]  # validation loss improved
    assert 1 <= model.log_.best_epoch <= model.log_.epochs


def test_samples_respect_the_schema(fitted, compas):
    model, task = fitted
    enc = task.encoder
    X = compas.individuals(40)
    S = model.sample(X, 5)
    assert S.shape == (40, 5, X.shape[1])
    flat = S.reshape(-1, X.shape[1])
    Xr = np.repeat(X, 5, axis=0)
    assert flat.min() >= 0.0 and flat.max() <= 1.0
    np.testing.assert_array_equal(flat[:, enc.immutable_mask], Xr[:, enc.immutable_mask])
    delta = flat - Xr
    assert (delta[:, enc.monotone > 0] >= -1e-9).all()  # age, recid, priors never decrease
    for j, f in enumerate(enc.schema_.features):
        if f.is_categorical or f.integer:
            grid = flat[:, j] / enc.grid_step[j]
            np.testing.assert_allclose(grid, np.rint(grid), atol=1e-6)
    back = enc.inverse_transform(flat)
    for f in enc.schema_.features:
        if f.is_categorical:
            assert set(back[f.name]) <= set(f.categories)


def test_generate_picks_the_best_by_h(fitted, compas):
    model, task = fitted
    X = compas.individuals(30)
    S = model.sample(X, 8, seed=3)
    best = model.generate(X, best_k=8, seed=3)
    p = task.classifier.predict_proba(S.reshape(-1, X.shape[1])).reshape(30, 8)
    np.testing.assert_allclose(task.classifier.predict_proba(best), p.max(axis=1), rtol=1e-6)


def test_same_seed_same_samples_and_cache_matches(fitted, compas):
    model, _ = fitted
    X = compas.individuals(20)
    a = model.sample(X, 4, seed=7)
    np.testing.assert_array_equal(a, model.sample(X, 4, seed=7))
    np.testing.assert_array_equal(a, model.sample(X, 4, seed=7, use_cache=False))
    assert not np.array_equal(a, model.sample(X, 4, seed=8))


def test_save_load_round_trip(fitted, compas, tmp_path):
    model, _ = fitted
    model.save(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["config.json", "h.json", "h.safetensors", "manifest.json",
                     "model.safetensors"]
    loaded = GenRe.load(tmp_path / "m")
    X = compas.individuals(25)
    np.testing.assert_array_equal(model.generate(X, seed=1), loaded.generate(X, seed=1))


def test_mismatched_schema_is_refused(fitted, compas, tmp_path):
    model, _ = fitted
    model.save(tmp_path / "m")
    loaded = GenRe.load(tmp_path / "m")
    other = build_protocol("moons", h_epochs=2)
    with pytest.raises(InputError, match=r"missing columns .*the schema expects"):
        loaded.encoder_.transform(other.dataset.X_test)
    with pytest.raises(InputError, match=r"shape \(n, 7\)"):
        loaded.generate(other.X_test)


def test_corrupt_model_directory_fails_clearly(fitted, tmp_path):
    model, _ = fitted
    model.save(tmp_path / "m")
    with pytest.raises(ModelError, match="not a GenRe model directory"):
        GenRe.load(tmp_path / "nothing-here")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["version"] = 99
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="format version"):
        GenRe.load(tmp_path / "m")


def test_bin_representatives_are_data_values():
    rng = np.random.default_rng(0)
    targets = np.round(rng.random((500, 3)) ** 3, 3)
    table = bin_representatives(targets, 10, "data")
    for j in range(3):
        occupied = np.unique(np.clip(np.floor(targets[:, j] * 10), 0, 9)).astype(int)
        assert np.isin(table[j, occupied], targets[:, j].astype(np.float32)).all()
    np.testing.assert_allclose(bin_representatives(targets, 10, "edge")[0], np.arange(10) / 10)


def test_unfitted_model_says_so():
    with pytest.raises(ModelError, match="not fitted"):
        GenRe().generate(np.zeros((1, 3)))
