"""Cold start: a saved model loads without scikit-learn, skops or torch._dynamo; the default
HistGradientBoosting h is stored as tree arrays whose NumPy evaluation equals scikit-learn's
predict_proba bit for bit; those arrays are checked like every saved file; the exhaustive
neighbour search of the plausibility flag gives scikit-learn's distances; models saved with
h.skops by an older genre still load."""

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.neighbors import NearestNeighbors

from genre.classifiers.mlp import save_sklearn
from genre.classifiers.trees import TreeEnsemble, export, exportable, load_trees, save_trees
from genre.core.estimator import GenRe
from genre.core.plausibility import nearest_distances
from genre.core.student import StudentConfig
from genre.core.task import RecourseTask, SklearnClassifier
from genre.data import Encoder, Feature, Schema
from genre.errors import ModelError
from genre.integrity import write_manifest

TINY_STUDENT = StudentConfig(n_components=3, hidden=16, n_layers=1, rows=200,
                             samples_per_row=4, epochs=2, patience=2, batch_rows=64)
TINY = dict(d_model=8, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=8, max_epochs=1, k=20,
            progress=False, best_k=4, sampler="autoregressive")


def _hgb(n: int = 600, seed: int = 0, nan: bool = True):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 3))
    y = ((X[:, 0] + 0.5 * X[:, 1] > 0.8) ^ (rng.random(n) < 0.1)).astype(int)
    if nan:  # missing values in training: splits send them left or right
        X[rng.random((n, 3)) < 0.1] = np.nan
    return HistGradientBoostingClassifier(max_iter=30, random_state=seed).fit(X, y), X


def test_tree_arrays_equal_sklearn_bit_for_bit():
    model, X = _hgb()
    arrays = export(model)
    assert exportable(model) and arrays["missing_left"].any() and not arrays["missing_left"].all()
    trees = TreeEnsemble(arrays, 3)
    rng = np.random.default_rng(1)
    Q = np.vstack([X, rng.random((500, 3)) * 1.4 - 0.2,
                   # rows sitting exactly on split thresholds, and all-missing rows
                   np.tile(arrays["threshold"][arrays["is_leaf"] == 0][:200, None], (1, 3)),
                   np.full((3, 3), np.nan)])
    np.testing.assert_array_equal(trees.predict_proba(Q), model.predict_proba(Q)[:, 1])


def test_tree_arrays_saved_and_checked_before_use(tmp_path):
    model, _ = _hgb(nan=False)
    names = save_trees(export(model), 3, tmp_path)
    assert names == ["h_trees.json", "h_trees.safetensors"]
    back = load_trees(tmp_path, 3)
    Q = np.random.default_rng(2).random((100, 3))
    np.testing.assert_array_equal(back.predict_proba(Q), model.predict_proba(Q)[:, 1])
    with pytest.raises(ModelError, match="n_features is 3; the model has 4"):
        load_trees(tmp_path, 4)
    # A child pointing back to its parent would loop for ever: refused.
    bad = export(model)
    split = int(np.flatnonzero(bad["is_leaf"] == 0)[0])
    bad["left"][split] = split
    save_trees(bad, 3, tmp_path)
    with pytest.raises(ModelError, match=f"node {split} has an index out of range"):
        load_trees(tmp_path, 3)
    # Sizes in the JSON bound what the header may claim, before anything is allocated.
    meta = json.loads((tmp_path / "h_trees.json").read_text())
    (tmp_path / "h_trees.json").write_text(json.dumps(meta | {"n_nodes": meta["n_nodes"] + 1}))
    with pytest.raises(ModelError, match="configuration implies"):
        load_trees(tmp_path, 3)
    (tmp_path / "h_trees.json").write_text(json.dumps(meta | {"n_nodes": 10**12}))
    with pytest.raises(ModelError, match="n_nodes must be an integer"):
        load_trees(tmp_path, 3)


@pytest.fixture(scope="module")
def hgb_task():
    rng = np.random.default_rng(3)
    import pandas as pd

    df = pd.DataFrame({"a": rng.random(500), "b": rng.random(500)})
    df["y"] = (df.a + df.b > 1).astype(int)
    schema = Schema((Feature("a", "numeric"), Feature("b", "numeric")), target="y")
    enc = Encoder(schema).fit(df)
    X, y = enc.transform(df), df["y"].to_numpy().copy()
    h = SklearnClassifier(HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y))
    return RecourseTask(enc, X, y, h, name="hgb")


@pytest.mark.parametrize("sampler", ["autoregressive", "student"])
def test_model_with_hgb_h_loads_in_a_fresh_process_without_sklearn(hgb_task, tmp_path,
                                                                    sampler):
    """Neither h's trees nor the sampler's network (built on the meta device to check the
    saved shapes) import scikit-learn, scipy, skops, sympy or torch._dynamo."""
    model = GenRe(**TINY).fit(hgb_task)
    if sampler == "student":
        model.distill(hgb_task.X_train, TINY_STUDENT).set_params(sampler="student")
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "h_trees.safetensors").exists()
    want = model.recourse(hgb_task.encoder.inverse_transform(hgb_task.X_train[:20]), seed=3)
    code = (
        "import sys, pandas as pd\n"
        "from genre.core.estimator import GenRe\n"
        f"m = GenRe.load({str(tmp_path / 'm')!r})\n"
        f"r = m.recourse(pd.read_csv({str(tmp_path / 'p.csv')!r}), seed=3)\n"
        f"r.to_csv({str(tmp_path / 'r.csv')!r}, index=False)\n"
        "print(sorted(k for k in ('sklearn', 'skops', 'scipy', 'torch._dynamo', 'sympy')\n"
        "             if k in sys.modules))\n")
    hgb_task.encoder.inverse_transform(hgb_task.X_train[:20]).to_csv(tmp_path / "p.csv",
                                                                     index=False)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    import pandas as pd

    got = pd.read_csv(tmp_path / "r.csv")
    pd.testing.assert_frame_equal(got, pd.read_csv(__import__("io").StringIO(
        want.to_csv(index=False))))


def test_a_model_saved_with_h_skops_still_loads(hgb_task, tmp_path):
    model = GenRe(**TINY).fit(hgb_task)
    d = model.save(tmp_path / "m")
    for name in ("h_trees.json", "h_trees.safetensors"):
        (d / name).unlink()
    save_sklearn(hgb_task.classifier.model, d / "h.skops")  # what genre wrote before
    write_manifest(d, ["config.json", "model.safetensors", "h.skops"])
    back = GenRe.load(d)
    X = hgb_task.X_train[:30]
    np.testing.assert_array_equal(back.classifier_.predict_proba(X),
                                  hgb_task.classifier.predict_proba(X))
    # Saved again, it is stored as tree arrays.
    again = back.save(tmp_path / "again")
    assert (again / "h_trees.json").exists() and not (again / "h.skops").exists()


def test_nearest_distances_equal_sklearns():
    rng = np.random.default_rng(4)
    for n, D in ((2000, 7), (300, 23), (12, 2)):
        R, X = rng.random((n, D)), rng.random((150, D))
        got = nearest_distances(R, X, 5)
        want = NearestNeighbors(n_neighbors=5).fit(R).kneighbors(X)[0]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        assert np.all(np.diff(got, axis=1) >= 0)


def test_a_command_freezes_its_objects_and_still_writes_and_exits_cleanly(hgb_task, tmp_path):
    """`genre` ends with gc.freeze (the shutdown then skips its cycle searches): the output
    is whole, exit handlers run after it, and what they print still reaches stdout."""
    model = GenRe(**TINY).fit(hgb_task)
    model.save(tmp_path / "m")
    people = hgb_task.encoder.inverse_transform(hgb_task.X_train[:15])
    people.to_csv(tmp_path / "p.csv", index=False)
    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"
            "from genre.cli import main\n"
            f"sys.argv = ['genre', 'recourse', '--model', {str(tmp_path / 'm')!r}, '--input', "
            f"{str(tmp_path / 'p.csv')!r}, '--output', {str(tmp_path / 'r.csv')!r}, "
            "'--seed', '3']\n"
            "main()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip().endswith("frozen at exit: True"), out.stdout
    import pandas as pd

    from genre.tables.recourse import recourse_table

    got = pd.read_csv(tmp_path / "r.csv")
    want, _ = recourse_table(model, people, seed=3)
    pd.testing.assert_frame_equal(got, pd.read_csv(__import__("io").StringIO(
        want.to_csv(index=False))))


def test_main_freezes_the_objects_alive_only_at_exit(monkeypatch):
    """main registers the freeze with atexit: the process that called it is unaffected
    until it exits (the subprocess test above sees it run at exit)."""
    import atexit
    import gc

    import genre.cli

    registered = []
    monkeypatch.setattr(genre.cli, "exit_on_sigterm", lambda: None)
    monkeypatch.setattr(atexit, "register", lambda f, *a, **k: registered.append(f))
    monkeypatch.setattr(sys, "argv", ["genre", "--version"])
    with pytest.raises(SystemExit) as stop:
        genre.cli.main()
    assert stop.value.code in (0, None)
    assert registered == [genre.cli.skip_final_collections]
    assert gc.get_freeze_count() == 0
