"""Hostile input, round two (issue 24): model directories, users' classifiers and Ray.

A tiny GenRe is fitted and saved once; each case copies it and changes one thing, rewriting
the manifest to match (as a deliberate editor could: digests are not signatures). A refused
case exits 2 with one `error:` line naming the file and the problem, no traceback, and
changes nothing under the test's folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import genre
import genre.classifiers.skops as skops_module
import test_safety_writers as writers
from genre.core.estimator import GenRe
from genre.errors import ModelError
from genre.integrity import MANIFEST, write_manifest
from genre.utils.threads import available_cpus, torch_threads
from test_safety_round2 import copy_model, resign
from test_safety_writers import people, refused, snapshot

tiny_model, work = writers.tiny_model, writers.work  # fixtures: a tiny model, a folder


def answer(model: Path) -> list:
    return ["recourse", "--model", model, "--input", "in.csv", "--output", "out.csv"]


def edit_config(model: Path, change) -> None:
    cfg = json.loads((model / "config.json").read_text())
    change(cfg)
    (model / "config.json").write_text(json.dumps(cfg))
    resign(model)


def with_classifier(model: Path, name: str, write) -> Path:
    """The model with its h replaced by `name` (written by write(path)), manifest to match."""
    listed = json.loads((model / MANIFEST).read_text())["files"]
    for old in [n for n in listed if n.startswith(("h.", "classifier."))]:
        (model / old).unlink()
    write(model / name)
    write_manifest(model, ["config.json", "model.safetensors", name])
    return model


# ------------------------------------------------------------------- config.json values
def set_param(key, value):
    return lambda cfg: cfg["params"].__setitem__(key, value)


def set_bounds(lo, hi, feature=0):
    def change(cfg):
        cfg["encoder"]["lo"][feature], cfg["encoder"]["hi"][feature] = lo, hi
    return change


@pytest.mark.parametrize(("change", "expected"), [
    (set_param("threads", 512), "params.threads: expected an integer in [1, 256]"),
    (set_param("threads", 10**12), "params.threads: expected an integer in [1, 256]"),
    (set_param("seed", 2**64), "params.seed: expected an integer in [0, "),
    (set_bounds(-1e308, 1e308), "span more than +-3.4e38"),
    (set_bounds(5.0, 5.0), "have lo 5.0 == hi 5.0"),
    (set_bounds(0.0, 7.0, feature=2), "do not scale 3 categories"),
    (set_bounds(17.5, 70.0), "an integer feature needs a whole lo"),
], ids=["threads 512", "threads 1e12", "seed 2**64", "bounds 1e308", "lo == hi",
        "categorical bounds", "integer lo 17.5"])
def test_config_values_beyond_their_range(work, tiny_model, change, expected):
    model = copy_model(tiny_model, work / "model")
    edit_config(model, change)
    refused(answer("model"), work, "model/config.json", expected)


def test_threads_never_exceed_the_cpus():
    with torch_threads(10**6):
        import torch

        assert torch.get_num_threads() <= available_cpus()


# ------------------------------------------------------------------------------ h.skops
def skops_file(model_factory):
    def write(path: Path) -> None:
        import zipfile

        import skops.io as sio

        sio.dump(model_factory(), path, compression=zipfile.ZIP_DEFLATED)
    return write


def logistic(width: int = 3, classes: int = 2, fitted: bool = True, extra=None):
    from sklearn.linear_model import LogisticRegression

    def make():
        model = LogisticRegression()
        if fitted:
            rng = np.random.default_rng(0)
            model.fit(rng.random((60, width)), np.arange(60) % classes)
        if extra is not None:
            model.bomb_ = extra
        return model
    return make


@pytest.mark.parametrize(("factory", "expected"), [
    (logistic(width=5), "takes 5 features; the model has 3"),
    (logistic(fitted=False), "is not fitted"),
    (logistic(classes=3), "has 3 classes; h is a binary classifier"),
], ids=["wrong width", "unfitted", "3 classes"])
def test_h_skops_that_is_not_the_models_binary_classifier(work, tiny_model, factory, expected):
    with_classifier(copy_model(tiny_model, work / "model"), "h.skops", skops_file(factory))
    refused(answer("model"), work, "model/h.skops", expected)


def test_h_skops_that_fits_loads(work, tiny_model):
    model = with_classifier(copy_model(tiny_model, work / "model"), "h.skops",
                            skops_file(logistic()))
    assert np.isfinite(GenRe.load(model).classifier_.predict_proba(np.full((2, 3), 0.5))).all()


def test_a_deflated_array_in_h_skops_is_refused_before_inflating(work, tiny_model, monkeypatch):
    """A 64 MB array of zeros deflates to about 64 KB; the limit (lowered to 32 MB for the
    test; 512 MB in use) is judged from the zip directory, before anything is inflated."""
    monkeypatch.setattr(skops_module, "MAX_SKOPS_BYTES", 32 << 20)
    model = with_classifier(copy_model(tiny_model, work / "model"), "h.skops",
                            skops_file(logistic(extra=np.zeros(8 << 20))))
    assert (model / "h.skops").stat().st_size < 1 << 20
    refused(answer("model"), work, "model/h.skops", "a classifier file may take at most")


def test_a_users_skops_classifier_is_bounded_at_fit(work, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    monkeypatch.setattr(skops_module, "MAX_SKOPS_BYTES", 32 << 20)
    model = LogisticRegression().fit(np.random.default_rng(0).random((40, 2)), np.arange(40) % 2)
    model.bomb_ = np.zeros(8 << 20)
    skops_file(lambda: model)(work / "big.skops")
    refused(["fit", "--data", "data.csv", "--schema", "schema.yaml", "--classifier",
             "big.skops", "--out", "m"], work, "big.skops", "a classifier file may take at most")


# --------------------------------------------------------------------------------- ONNX
def onnx_classifier(nan_at: float | None = None):
    """An ONNX classifier on the tiny schema's columns (age, income, job): P(ok) =
    sigmoid(0.1 income - 5), or NaN where income equals nan_at."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    inputs = [helper.make_tensor_value_info("age", TensorProto.FLOAT, [None, 1]),
              helper.make_tensor_value_info("income", TensorProto.FLOAT, [None, 1]),
              helper.make_tensor_value_info("job", TensorProto.STRING, [None, 1])]
    init = [numpy_helper.from_array(np.array([v], dtype=np.float32), name) for name, v in
            (("w", 0.1), ("b", -5.0), ("one", 1.0), ("nan", np.nan), ("at", nan_at or 0.0))]
    nodes = [helper.make_node("Mul", ["income", "w"], ["s"]),
             helper.make_node("Add", ["s", "b"], ["z"]),
             helper.make_node("Sigmoid", ["z"], ["p0"])]
    if nan_at is not None:
        nodes += [helper.make_node("Equal", ["income", "at"], ["hit"]),
                  helper.make_node("Where", ["hit", "nan", "p0"], ["p"])]
    else:
        nodes.append(helper.make_node("Identity", ["p0"], ["p"]))
    nodes += [helper.make_node("Sub", ["one", "p"], ["q"]),
              helper.make_node("Concat", ["q", "p"], ["probabilities"], axis=1)]
    out = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])]
    graph = helper.make_graph(nodes, "h", inputs, out, init)
    return onnx, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def save_onnx(external: bool = False, nan_at: float | None = None):
    def write(path: Path) -> None:
        onnx, model = onnx_classifier(nan_at)
        onnx.save_model(model, str(path), save_as_external_data=external,
                        all_tensors_to_one_file=True, location="weights.bin",
                        size_threshold=0)
    return write


def test_onnx_with_external_weights_is_refused_at_fit(work):
    pytest.importorskip("onnxruntime")
    save_onnx(external=True)(work / "h.onnx")
    refused(["fit", "--data", "data.csv", "--schema", "schema.yaml", "--classifier", "h.onnx",
             "--out", "m"], work, "h.onnx", "keeps weights in external data files")


def test_onnx_external_weights_beside_a_saved_model_are_refused(work, tiny_model):
    pytest.importorskip("onnxruntime")
    with_classifier(copy_model(tiny_model, work / "model"), "classifier.onnx",
                    save_onnx(external=True))
    assert (work / "model" / "weights.bin").exists()
    refused(answer("model"), work, "model/classifier.onnx", "external data files")


def test_onnx_with_its_weights_inside_loads(work, tiny_model):
    pytest.importorskip("onnxruntime")
    model = with_classifier(copy_model(tiny_model, work / "model"), "classifier.onnx",
                            save_onnx())
    assert GenRe.load(model).classifier_.predict_proba(np.full((1, 3), 0.5)).shape == (1,)


def test_a_classifier_answering_nan_is_never_recourse(work, tiny_model):
    pytest.importorskip("onnxruntime")
    with_classifier(copy_model(tiny_model, work / "model"), "classifier.onnx",
                    save_onnx(nan_at=42.5))
    (work / "nan.csv").write_text("age,income,job\n30,20.0,a\n31,42.5,b\n")
    refused(["recourse", "--model", "model", "--input", "nan.csv", "--output", "out.csv"],
            work, "nan.csv", "line 3: the model's classifier gives no probability (NaN)")


def test_samples_the_classifier_cannot_score_are_none_found(tiny_model):
    class FirstCallOnly:
        """0.2 for the people themselves, NaN for every sample drawn for them."""

        calls = 0

        def predict_proba(self, X):
            self.calls += 1
            return np.full(len(X), 0.2 if self.calls == 1 else np.nan)

    model = GenRe.load(tiny_model, classifier=FirstCallOnly())
    result = model.recourse(people(5, seed=6).drop(columns="ok"))
    assert set(result["status"]) == {"none found"} and result["h_probability"].isna().all()


def test_load_classifier_refuses_a_one_class_model(work, tiny_model):
    from sklearn.linear_model import LogisticRegression

    from genre.classifiers.skops import load_skops

    model = LogisticRegression().fit(np.random.default_rng(0).random((20, 3)), np.arange(20) % 2)
    model.classes_ = np.array([1])
    skops_file(lambda: model)(work / "one.skops")
    with pytest.raises(ModelError, match="knows 1 class"):
        load_skops(work / "one.skops")


# ---------------------------------------------------------------------------------- Ray
def big_people(path: Path, n: int) -> pd.DataFrame:
    table = pd.concat([people(400, seed=2).drop(columns="ok")] * (n // 400 + 1))[:n]
    table.to_csv(path, index=False)
    return table


def test_ray_bad_value_past_the_first_megabyte_names_line_and_column(work, tiny_model):
    pytest.importorskip("ray")
    big_people(work / "big.csv", 120_000)
    assert (work / "big.csv").stat().st_size > 1 << 20
    lines = (work / "big.csv").read_text().splitlines()
    lines[-1] = lines[-1].split(",")[0] + ",lots," + lines[-1].split(",")[2]
    (work / "big.csv").write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    refused(["recourse", "--ray", "--model", tiny_model, "--input", "big.csv", "--output",
             "out.csv"], work, "big.csv", "column 'income', line 120001: expected a number")
    assert time.perf_counter() - start < 30


def test_ray_worker_errors_are_one_line(work, tiny_model, monkeypatch):
    ray = pytest.importorskip("ray")
    import genre.service.ray

    def failing(*args, **kwargs):  # a real error inside a Ray worker
        def divide():
            return 1 / 0
        return ray.get(ray.remote(divide).remote())

    monkeypatch.setattr(genre.service.ray, "recourse_dataset", failing)
    out = refused(["recourse", "--ray", "--model", tiny_model, "--input", "in.csv",
                   "--output", "out.csv"], work, "in.csv", "Ray failed")
    assert len(out.strip().splitlines()) == 1 and "ZeroDivisionError" in out
    assert not ray.is_initialized()


def test_ray_driver_sigterm_exits_143_and_leaves_nothing(work, tiny_model):
    pytest.importorskip("ray")
    big_people(work / "big.csv", 4000)
    before = snapshot(work)
    src = str(Path(genre.__file__).resolve().parents[1])
    env = os.environ | {"PYTHONPATH": os.pathsep.join(
        [src, *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from genre.cli import main; main()", "recourse", "--ray",
         "--ray-workers", "1", "--model", str(tiny_model), "--input", "big.csv", "--output",
         "out.csv"], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 240
        while not list(work.glob(".out.csv.*.tmp")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no temporary file appeared"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, (out, err)
    assert "Traceback" not in err and "Aborted" not in err, err
    assert snapshot(work) == before  # no out.csv, no temporary file
