"""--device: CPU by default, CUDA when asked or on auto; everything here runs on the CPU."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from genre.cli import app
from genre.core.estimator import GenRe
from genre.core.saving import check_config
from genre.errors import InputError, ModelError
from genre.utils.device import resolve_device


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_resolve_device(no_cuda):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")  # no GPU: the CPU
    for name in ("cuda", "cuda:0"):
        with pytest.raises(InputError, match="no CUDA"):
            resolve_device(name)
    with pytest.raises(InputError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_auto_picks_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_genre_device(make_mixed_task, no_cuda):
    task = make_mixed_task()
    with pytest.raises(InputError, match="no CUDA"):
        GenRe(max_epochs=1, k=50, progress=False, device="cuda",
              sampler="autoregressive").fit(task)
    model = GenRe(gamma=0.5, max_epochs=2, k=50, d_model=16, n_heads=2, n_enc_layers=1,
                  n_dec_layers=1, d_ff=32, progress=False, device="auto",
                  sampler="autoregressive").fit(task)
    assert next(model.model_.parameters()).device.type == "cpu"
    X = task.X_train[:20]
    auto = model.sample(X, 3, seed=1)
    assert np.array_equal(auto, model.set_params(device="cpu").sample(X, 3, seed=1))
    with pytest.raises(InputError, match="no CUDA"):
        model.set_params(device="cuda").sample(X, 3, seed=1)


def test_cli_device_errors(no_cuda, tmp_path):
    runner = CliRunner()
    out = tmp_path / "out.csv"
    r = runner.invoke(app, ["recourse", "--model", str(tmp_path / "m"), "--input",
                            str(tmp_path / "people.csv"), "--output", str(out),
                            "--device", "cuda"])
    assert r.exit_code == 2 and "no CUDA" in r.output and not out.exists()
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["evaluate", "--dataset", "compas", "--method", "nnr",
                            "--device", "auto"])
    assert r.exit_code == 2 and "--method genre only" in r.output
    r = runner.invoke(app, ["fit", "--dataset", "moons", "--out", str(tmp_path / "m"),
                            "--device", "cuda"])
    assert r.exit_code == 2 and "no CUDA" in r.output and not (tmp_path / "m").exists()


def test_saved_device_round_trips_and_is_checked(make_mixed_task, no_cuda, tmp_path):
    task = make_mixed_task()
    model = GenRe(gamma=0.5, max_epochs=1, k=50, d_model=16, n_heads=2, n_enc_layers=1,
                  n_dec_layers=1, d_ff=32, progress=False, device="auto",
                  sampler="autoregressive").fit(task)
    back = GenRe.load(model.save(tmp_path / "m"))
    assert back.device == "auto"
    X = task.X_train[:10]
    assert np.array_equal(back.sample(X, 2, seed=3), model.sample(X, 2, seed=3))
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    for device in ("cpu", "cuda", "cuda:1", "auto"):  # a GPU is not needed to load
        check_config(meta | {"params": meta["params"] | {"device": device}}, tmp_path)
    # saved by a genre without --device: the key is absent and the default applies
    check_config(meta | {"params": {k: v for k, v in meta["params"].items()
                                    if k != "device"}}, tmp_path)
    for bad in ("gpu", "cuda:x", "CUDA", None, 1):
        with pytest.raises(ModelError, match="params.device: expected"):
            check_config(meta | {"params": meta["params"] | {"device": bad}}, tmp_path)
