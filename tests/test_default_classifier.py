"""The default h for user data: MLP or HistGradientBoosting by held-out AUC, saved safely."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from genre.cli import app
from genre.core.estimator import GenRe
from genre.core.task import SklearnClassifier, TorchClassifier
from genre.core.usertask import build_user_task, choose_classifier
from genre.data import Feature, Schema
from genre.data.schema_file import save_schema


def _checkerboard(n: int = 800, seed: int = 0) -> pd.DataFrame:
    """A label no small MLP trained for a few epochs can learn, trees can: a checkerboard."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.random(n), "b": rng.random(n)})
    df["y"] = ((np.floor(df.a * 3) + np.floor(df.b * 3)) % 2).astype(int)
    return df


SCHEMA = Schema((Feature("a", "numeric"), Feature("b", "numeric")), target="y")


def test_gradient_boosting_chosen_when_it_ranks_better_and_saved_without_pickle(tmp_path):
    task = build_user_task(_checkerboard(), SCHEMA, seed=0, h_epochs=5)
    report = task.classifier_report
    assert report["kind"] == "hgb" and isinstance(task.classifier, SklearnClassifier)
    assert report["auc"] == report["auc_hgb"] > report["auc_mlp"]
    assert report["n_holdout"] == 160 and 0.5 <= report["majority"] < 0.6
    assert report["accuracy"] > report["majority"]
    model = GenRe(d_model=8, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=8, max_epochs=1,
                  k=20, progress=False, sampler="autoregressive").fit(task)
    model.save(tmp_path / "m")
    # Its trees as arrays (h_trees.*, loaded without scikit-learn), not a .skops file.
    assert (tmp_path / "m" / "h_trees.safetensors").exists()
    assert not (tmp_path / "m" / "h.skops").exists()
    back = GenRe.load(tmp_path / "m")
    X = task.X_train[:50]
    np.testing.assert_array_equal(back.classifier_.predict_proba(X),
                                  task.classifier.predict_proba(X))


def test_mlp_kept_when_it_is_as_good_and_tiny_data_skips_the_holdout():
    rng = np.random.default_rng(1)
    X = rng.random((400, 3))
    y = (X[:, 0] > 0.5).astype(int)
    clf, report = choose_classifier(X, y, seed=0, h_epochs=40)
    assert report["auc_mlp"] > 0.95 and report["kind"] in ("mlp", "hgb")
    assert isinstance(clf, TorchClassifier if report["kind"] == "mlp" else SklearnClassifier)
    y_few = np.zeros(400, dtype=int)
    y_few[:3] = 1
    clf, report = choose_classifier(X, y_few, seed=0, h_epochs=2)
    assert report["kind"] == "mlp" and report["auc"] is None
    assert isinstance(clf, TorchClassifier)


def test_fit_prints_accuracy_auc_and_the_majority_baseline(tmp_path, private_cache):
    df = _checkerboard(600)
    rng = np.random.default_rng(2)
    # Favourable almost surely when a > 0.3, still more often than not below: always
    # answering "favourable" is the best any h can do, so no h beats the majority.
    df["y"] = (rng.random(len(df)) < np.where(df.a > 0.3, 0.97, 0.6)).astype(int)
    df.to_csv(tmp_path / "d.csv", index=False)
    save_schema(SCHEMA, tmp_path / "s.yaml")
    result = CliRunner().invoke(app, ["fit", "--data", str(tmp_path / "d.csv"), "--schema",
                                      str(tmp_path / "s.yaml"), "--out", str(tmp_path / "m"),
                                      "--fast", "--sampler", "autoregressive"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "held-out accuracy" in out and "majority-class baseline 0.8" in out  # about 0.86
    assert "ROC AUC" in out
    assert "no more accurate than always answering the majority class" in out


def test_unknown_types_in_h_skops_are_refused(tmp_path):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    from genre.classifiers.mlp import load_sklearn_h
    from genre.errors import ModelError

    sio.dump(FunctionTransformer(np.sin), tmp_path / "h.skops")
    with pytest.raises(ModelError):
        load_sklearn_h(tmp_path / "h.skops")
