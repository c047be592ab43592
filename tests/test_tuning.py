"""GenRe(tune="auto"): sampling settings chosen on held-out rejected training rows."""

import json

import numpy as np
import pytest

from genre.core import training, tuning
from genre.core.estimator import GenRe
from genre.core.sampling import setting
from genre.core.tuning import BEST_KS, TEMPERATURES, held_out_rows
from genre.errors import GenreWarning, ModelError

TINY = dict(d_model=8, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=16, max_epochs=3,
            patience=3, batch_size=512, k=20, progress=False, sampler="autoregressive")


@pytest.fixture(scope="module")
def tuned(compas):
    return GenRe(**TINY, temperature=3.0, best_k=7).fit(compas.task())


def test_the_choice_is_the_best_of_the_grid(tuned):
    record = tuned.tuning_
    grid = record["grid"]
    assert [(r["temperature"], r["best_k"]) for r in grid] == [
        (t, k) for t in TEMPERATURES for k in BEST_KS]
    best = max(grid, key=lambda r: r["score"])
    assert (record["temperature"], record["best_k"]) == (best["temperature"], best["best_k"])
    for r in grid:
        assert r["score"] == pytest.approx(r["validity"] + r["inlier"] - r["effort"] / 7,
                                           abs=1e-5)
        assert 0 <= r["validity"] <= 1 and 0 <= r["inlier"] <= 1 and r["effort"] >= 0
    assert 20 <= record["n_rows"] <= 200
    # Sampling uses the choice; the parameters are left as the user gave them.
    assert (tuned.temperature, tuned.best_k) == (3.0, 7)
    assert setting(tuned, "temperature") == record["temperature"]
    assert setting(tuned, "best_k") == record["best_k"]


def test_held_out_rows_are_rejected_training_sources(tuned, compas):
    rows = held_out_rows(tuned, compas.task())
    p = compas.h.predict_proba(rows)
    assert len(rows) >= 20 and (p < 0.5).all()
    train = {tuple(r) for r in np.round(compas.X_train, 9)}
    assert all(tuple(r) in train for r in np.round(rows, 9))


def test_held_out_rows_are_the_sources_fit_held_out(compas, monkeypatch):
    """held_out_rows re-draws fit's first random draw (the sources' validation split); if
    training.train drew anything before it, the two would fall out of step: the split
    held_out_rows draws must be the one fit drew."""
    splits = []
    real = training.split_holdout

    def recording(n, frac, rng):
        splits.append(real(n, frac, rng))
        return splits[-1]

    monkeypatch.setattr(training, "split_holdout", recording)
    monkeypatch.setattr(tuning, "split_holdout", recording)
    task = compas.task()
    model = GenRe(**TINY, tune=None).fit(task)
    fit_sources = splits[0]  # fit: sources, then targets
    held_out_rows(model, task)
    assert len(splits) == 3
    np.testing.assert_array_equal(splits[2][0], fit_sources[0])
    np.testing.assert_array_equal(splits[2][1], fit_sources[1])
    assert len(fit_sources[1]) > 0


def test_tuning_is_saved_loaded_and_off_with_none(tuned, compas, tmp_path):
    tuned.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["params"]["tune"] == "auto" and config["tuning"] == tuned.tuning_
    loaded = GenRe.load(tmp_path / "m")
    assert loaded.tuning_ == tuned.tuning_
    X = compas.individuals(5)
    np.testing.assert_array_equal(loaded.generate(X), tuned.generate(X))

    loaded.set_params(tune=None)  # off: the parameters again
    assert (setting(loaded, "temperature"), setting(loaded, "best_k")) == (3.0, 7)
    plain = GenRe(**TINY, tune=None).fit(compas.task())
    assert plain.tuning_ is None

    config["tuning"] = {"temperature": -1, "best_k": 10, "grid": []}
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    (tmp_path / "m" / "manifest.json").unlink()  # the config's own check, not the digest
    with pytest.raises(ModelError, match="tuning must be null or a mapping"), \
            pytest.warns(GenreWarning):
        GenRe.load(tmp_path / "m")
    with pytest.raises(ValueError, match="tune"):
        GenRe().set_params(tune="always")


def test_a_model_saved_without_tuning_samples_with_its_saved_settings():
    """The byte-identical fixture was saved before tuning existed (no `tune`, no `tuning`):
    it loads with tune="auto" but no record, so sampling uses its saved temperature/best_k."""
    from pathlib import Path

    fixture = Path(__file__).parent / "fixtures" / "house" / "model"
    config = json.loads((fixture / "config.json").read_text())
    assert "tune" not in config["params"] and "tuning" not in config
    model = GenRe.load(fixture)
    assert model.tune == "auto" and model.tuning_ is None
    assert setting(model, "temperature") == config["params"]["temperature"] == 2.0
    assert setting(model, "best_k") == config["params"]["best_k"] == 5
