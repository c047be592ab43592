"""Hostile model directories and caches (issue 11, items 2 and 4).

A tiny GenRe is fitted and saved once; every case copies it and tampers with one thing.
`genre recourse --model tampered ...` must exit 2 with one line naming the file, no
traceback and no output; `GenRe.load` must raise ModelError. Each case runs three ways:
"stale" (the manifest is left as saved: the digest check catches it), "resigned" (the
manifest is rewritten to match, as a deliberate editor would: the config schema and tensor
checks must still catch it) and "legacy" (no manifest, as a model saved before manifests).
Cache entries (protocol, GenRe, VAE, diffusion) that are damaged are rebuilt with one
message on stderr and give what a clean build gives.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from genre.cli import app
from genre.core.estimator import GenRe
from genre.errors import GenreError, GenreWarning, ModelError
from genre.integrity import MANIFEST, read_safetensors_header

runner = CliRunner()
TINY = dict(d_model=8, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=16, n_bins=10,
            max_epochs=2, patience=2, batch_size=256, k=20, best_k=4, progress=False,
            sampler="autoregressive")


@pytest.fixture(scope="module")
def saved(make_mixed_task, tmp_path_factory):
    """(model directory, people CSV text): a tiny fitted GenRe, saved once."""
    task = make_mixed_task()
    where = tmp_path_factory.mktemp("saved") / "model"
    GenRe(**TINY).fit(task).save(where)
    GenRe.load(where)  # warm up (the first meta-device build pays torch's start-up)
    people = task.encoder.inverse_transform(task.X_train[:5]).to_csv(index=False)
    return where, people


# --------------------------------------------------------------------------- tampering
def config(change):
    def tamper(d: Path) -> None:
        cfg = json.loads((d / "config.json").read_text())
        change(cfg)
        (d / "config.json").write_text(json.dumps(cfg))
    return tamper


def both(key, value):
    """Set a size in params and transformer alike (a consistent edit)."""
    def change(cfg):
        cfg["params"][key] = value
        cfg["transformer"][key] = value
    return change


def tensors(name, change):
    """Load a safetensors file of the directory, change its dict of tensors, save it back."""
    def tamper(d: Path) -> None:
        state = load_file(str(d / name))
        change(state)
        save_file(state, str(d / name))
    return tamper


def truncate(name, keep=0.5):
    def tamper(d: Path) -> None:
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[:int(len(data) * keep)])
    return tamper


def symlink(name):
    def tamper(d: Path) -> None:
        outside = d.parent / f"elsewhere-{name}"
        shutil.copyfile(d / name, outside)
        (d / name).unlink()
        (d / name).symlink_to(outside)
    return tamper


def write(name, content: bytes):
    def tamper(d: Path) -> None:
        (d / name).write_bytes(content)
    return tamper


def delete(name):
    def tamper(d: Path) -> None:
        (d / name).unlink()
    return tamper


def header_lie(d: Path) -> None:
    """model.safetensors whose header claims a 1000 x 1000 tensor in a small byte range."""
    path = d / "model.safetensors"
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    first = next(k for k in header if k != "__metadata__")
    header[first]["shape"] = [1000, 1000]
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n:])


def nan_first(state):
    key = sorted(k for k in state if not k.startswith("genre."))[0]
    state[key] = state[key].clone()
    state[key].view(-1)[0] = float("nan")


def reorder_colour(cfg):
    cfg["schema"]["features"]["colour"]["categories"].reverse()


def drop_feature(cfg):
    del cfg["schema"]["features"]["x2"]


@dataclass
class Case:
    tamper: object
    file: str  # the file the message must name (in the model directory)
    message: str  # what the resigned / legacy error says
    stale: str = "changed after it was saved"  # what it says with the saved manifest
    stale_file: str | None = None  # file named with the saved manifest (default: file)
    resign: bool = True  # False: a consistent edit is undetectable or the case is the manifest


M, H, C = "model.safetensors", "h.safetensors", "config.json"
CASES = {
    "no params": Case(config(lambda c: c.pop("params")), C, "missing keys ['params']"),
    "no transformer": Case(config(lambda c: c.pop("transformer")), C,
                           "missing keys ['transformer']"),
    "no encoder": Case(config(lambda c: c.pop("encoder")), C, "missing keys ['encoder']"),
    "no schema": Case(config(lambda c: c.pop("schema")), C, "missing keys ['schema']"),
    "unknown param": Case(config(lambda c: c["params"].update(evil=1)), C,
                          "unknown keys ['evil']"),
    "unknown top key": Case(config(lambda c: c.update(evil=1)), C, "unknown keys ['evil']"),
    "param missing": Case(config(lambda c: c["params"].pop("seed")), C,
                          "missing keys ['seed']"),
    "n_heads 0": Case(config(both("n_heads", 0)), C, "n_heads: expected an integer in [1"),
    "n_heads 3": Case(config(both("n_heads", 3)), C, "not divisible by n_heads 3"),
    "n_bins -5": Case(config(both("n_bins", -5)), C, "n_bins: expected an integer in [2, 1024]"),
    "n_bins true": Case(config(both("n_bins", True)), C, "n_bins: expected an integer"),
    "n_bins params only": Case(config(lambda c: c["params"].update(n_bins=20)), C,
                               "transformer.n_bins = 10 but params.n_bins = 20"),
    "device gpu": Case(config(lambda c: c["params"].update(device="gpu")), C,
                       "params.device: expected 'cpu', 'cuda', 'cuda:N' or 'auto', got 'gpu'"),
    "device number": Case(config(lambda c: c["params"].update(device=0)), C,
                          "params.device: expected 'cpu', 'cuda', 'cuda:N' or 'auto'"),
    "best_k negative": Case(config(lambda c: c["params"].update(best_k=-3)), C,
                            "best_k: expected an integer in [1, 10000]"),
    "d_model string": Case(config(both("d_model", "32")), C,
                           "d_model: expected an integer in [1, 4096], got '32'"),
    "d_model 4096": Case(config(both("d_model", 4096)), M, "the configuration implies",
                         stale_file=C),
    "d_model 65536": Case(config(both("d_model", 65536)), C,
                          "d_model: expected an integer in [1, 4096], got 65536"),
    "layers 1000": Case(config(both("n_enc_layers", 1000)), C, "n_enc_layers: expected"),
    "dropout 1.5": Case(config(both("dropout", 1.5)), C, "dropout: expected a finite number"),
    "temperature 0": Case(config(lambda c: c["params"].update(temperature=0)), C,
                          "temperature: expected a finite number in (0"),
    "gamma 1": Case(config(lambda c: c["params"].update(gamma=1.0)), C, "gamma: expected"),
    "lambda NaN": Case(config(lambda c: c["params"].update(lambda_=float("nan"))), C,
                       "lambda_: expected a finite number"),
    "bin_value other": Case(config(lambda c: c["params"].update(bin_value="median")), C,
                            "bin_value: expected one of ['data', 'edge']"),
    "encoder lo short": Case(config(lambda c: c["encoder"]["lo"].pop()), C,
                             "encoder.lo must list 4 finite numbers"),
    "encoder hi NaN": Case(config(lambda c: c["encoder"]["hi"].__setitem__(0, float("nan"))),
                           C, "encoder.hi must list 4 finite numbers"),
    "encoder lo > hi": Case(config(lambda c: c["encoder"]["lo"].__setitem__(0, 5.0)), C,
                            "encoder bounds of 'x1' have lo 5.0 > hi"),
    "schema drops a feature": Case(config(drop_feature), C,
                                   "the schema has 3 features but transformer.n_features is 4"),
    "schema bad type": Case(config(lambda c: c["schema"]["features"]["x1"].update(type="x")),
                            C, "feature 'x1'"),
    "schema categories null": Case(config(lambda c: c["schema"]["features"]["colour"].update(
        categories=None)), C, "categorical features ['colour'] list no categories"),
    "train_log string": Case(config(lambda c: c.update(train_log="x")), C, "train_log"),
    "categories reordered": Case(config(reorder_colour), C, "", resign=False),
    "config not JSON": Case(write(C, b"{"), C, "not readable JSON", stale="not readable JSON"),
    "config empty": Case(write(C, b""), C, "not readable JSON", stale="not readable JSON"),
    "config a list": Case(write(C, b"[]"), C, "not a GenRe model of format version",
                          stale="not a GenRe model of format version"),
    "config symlink": Case(symlink(C), C, "symbolic link", stale="symbolic link"),
    "weights truncated": Case(truncate(M), M, "not a valid safetensors file"),
    "weights empty": Case(write(M, b""), M, "shorter than the 8-byte header length"),
    "weights symlink": Case(symlink(M), M, "symbolic link", stale="symbolic link"),
    "weights header too long": Case(write(M, (2**40).to_bytes(8, "little") + b"{}"), M,
                                    "does not fit the file"),
    "weights header lies": Case(header_lie, M, "does not match its byte range"),
    "weights NaN": Case(tensors(M, nan_first), M, "holds NaN or infinite values"),
    "bin values inf": Case(tensors(M, lambda s: s["genre.bin_values"].fill_(float("inf"))), M,
                           "holds NaN or infinite values"),
    "bin values 2": Case(tensors(M, lambda s: s["genre.bin_values"].fill_(2.0)), M,
                         "values in [0, 1]"),
    "reference 1 row": Case(tensors(M, lambda s: s.update(
        {"genre.reference": s["genre.reference"][:1].clone()})), M, "at least 2 rows"),
    "extra tensor": Case(tensors(M, lambda s: s.update(evil=torch.zeros(3))), M,
                         "unexpected ['evil']"),
    "missing tensor": Case(tensors(M, lambda s: s.pop("head.1.bias")), M,
                           "missing ['head.1.bias']"),
    "float64 weights": Case(tensors(M, lambda s: s.update(
        {k: v.double() for k, v in s.items()})), M, "is F64, expected F32"),
    "h truncated": Case(truncate(H), H, "not a valid safetensors file"),
    "h empty": Case(write(H, b""), H, "shorter than the 8-byte header length"),
    "h symlink": Case(symlink(H), H, "symbolic link", stale="symbolic link"),
    "h NaN": Case(tensors(H, nan_first), H, "holds NaN or infinite values"),
    "h wider": Case(write("h.json", b'{"n_features": 4, "hidden": [10, 10, 99]}'), H,
                    "the configuration implies", stale_file="h.json"),
    "h other features": Case(write("h.json", b'{"n_features": 5, "hidden": [10, 10, 10]}'),
                             "h.json", "n_features is 5; expected 4"),
    "h hidden text": Case(write("h.json", b'{"n_features": 4, "hidden": "ten"}'), "h.json",
                          "hidden must list"),
    "h json deleted": Case(delete("h.json"), "", "no classifier", stale="missing",
                           stale_file="h.json"),
    "manifest garbage": Case(write(MANIFEST, b"\x00\xff"), MANIFEST, "",
                             stale="not readable JSON", resign=False),
    "manifest skips config": Case(lambda d: resign(d, ["h.json"]), MANIFEST, "",
                                  stale="does not cover config.json", resign=False),
    "manifest escapes": Case(write(MANIFEST, json.dumps({
        "format": "genre-recourse/manifest", "files": {"../x": {"sha256": "0", "bytes": 0}}
    }).encode()), MANIFEST, "", stale="which is not a file name", resign=False),
}
MODES = ["stale", "resigned", "legacy"]
PARAMS = [(name, mode) for name, case in CASES.items() for mode in MODES
          if mode == "stale" or case.resign]


def resign(where: Path, names, extra: dict | None = None) -> None:
    """Rewrite a manifest to match the files as they are now (what a deliberate editor
    could do: digests are not signatures)."""
    files = {n: {"bytes": (where / n).stat().st_size,
                 "sha256": hashlib.sha256((where / n).read_bytes()).hexdigest()}
             for n in names}
    doc = {"format": "genre-recourse/manifest", "version": 1, "files": files} | (extra or {})
    (where / MANIFEST).write_text(json.dumps(doc))


def make_tampered(saved_dir: Path, where: Path, case: Case, mode: str) -> tuple[Path, Path, str]:
    """Copy the saved model to `where`, tamper with it; (dir, file to be named, message)."""
    shutil.copytree(saved_dir, where)
    listed = list(json.loads((where / MANIFEST).read_text())["files"])
    case.tamper(where)
    if mode == "resigned":
        resign(where, [n for n in listed if (where / n).is_file()])  # links: their target
    elif mode == "legacy":
        (where / MANIFEST).unlink()
    if mode == "stale":
        return where, where / (case.stale_file or case.file), case.stale
    return where, where / case.file, case.message


def snapshot(root: Path) -> dict:
    """Every path under root with the sha256 of its bytes (links as their target)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p)] = "link:" + str(p.readlink())
        elif p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[str(p)] = "dir"
    return out


@pytest.mark.filterwarnings("ignore::genre.errors.GenreWarning")  # legacy mode warns
@pytest.mark.parametrize(("name", "mode"), PARAMS)
def test_tampered_model_fails_cleanly(saved, tmp_path, name, mode):
    saved_dir, people = saved
    case = CASES[name]
    model_dir, named, message = make_tampered(saved_dir, tmp_path / "tampered", case, mode)
    src, out = tmp_path / "people.csv", tmp_path / "out.csv"
    src.write_text(people)
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["recourse", "--model", str(model_dir), "--input", str(src),
                                 "--output", str(out)])
    assert result.exit_code == 2, result.output
    assert str(named) in result.output and message in result.output, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not out.exists()
    assert snapshot(tmp_path) == before  # nothing written, nothing changed

    with pytest.raises(ModelError) as info:
        GenRe.load(model_dir)
    assert str(named) in str(info.value) and message in str(info.value)


@pytest.mark.filterwarnings("ignore::genre.errors.GenreWarning")
@pytest.mark.parametrize("name", ["d_model 4096", "d_model 65536", "layers 1000"])
@pytest.mark.parametrize("mode", ["stale", "resigned"])
def test_huge_sizes_fail_before_allocating(saved, tmp_path, name, mode):
    model_dir, _, _ = make_tampered(saved[0], tmp_path / "t", CASES[name], mode)
    t0 = time.perf_counter()
    with pytest.raises(ModelError):
        GenRe.load(model_dir)
    assert time.perf_counter() - t0 < 2.0


def test_manifest_lists_every_saved_file(saved):
    saved_dir, _ = saved
    manifest = json.loads((saved_dir / MANIFEST).read_text())
    assert sorted(manifest["files"]) == ["config.json", "h.json", "h.safetensors",
                                         "model.safetensors"]
    for name, entry in manifest["files"].items():
        data = (saved_dir / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
    shapes = {k: list(v.shape) for k, v in read_safetensors_header(saved_dir / M).items()}
    assert manifest["files"][M]["tensors"] == shapes


def test_legacy_directory_loads_with_a_warning(saved, tmp_path):
    saved_dir, people = saved
    legacy = tmp_path / "legacy"
    shutil.copytree(saved_dir, legacy)
    (legacy / MANIFEST).unlink()
    with pytest.warns(GenreWarning, match="without an integrity manifest"):
        old = GenRe.load(legacy)
    X = old.encoder_.transform(pd.read_csv(io.StringIO(people)))
    np.testing.assert_array_equal(old.generate(X, seed=1), GenRe.load(saved_dir).generate(
        X, seed=1))
    with pytest.raises(ModelError, match="manifest.json: missing"):
        GenRe.load(legacy, require_manifest=True)


def test_legacy_directory_warns_on_one_line_in_the_cli(saved, tmp_path, monkeypatch):
    from genre.cli import common

    saved_dir, people = saved
    legacy = tmp_path / "legacy"
    shutil.copytree(saved_dir, legacy)
    (legacy / MANIFEST).unlink()
    (tmp_path / "people.csv").write_text(people)
    monkeypatch.setattr(warnings, "showwarning", common.show_warning)  # pytest replaces it
    with warnings.catch_warnings():
        warnings.simplefilter("always", GenreWarning)
        result = runner.invoke(app, ["recourse", "--model", str(legacy), "--input",
                                     str(tmp_path / "people.csv"), "--output",
                                     str(tmp_path / "out.csv")])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if "integrity manifest" in ln]
    assert len(lines) == 1 and lines[0].startswith(f"warning: {legacy}: saved without")
    assert len(pd.read_csv(tmp_path / "out.csv")) == 5


def test_an_added_classifier_file_is_not_used(saved, tmp_path):
    """A file dropped next to a saved model (not in its manifest) is never loaded."""
    d = tmp_path / "m"
    shutil.copytree(saved[0], d)
    (d / "h.json").unlink()
    (d / "classifier.onnx").write_bytes(b"not even onnx")
    with pytest.raises(ModelError, match="changed after it was saved: .*h.json|h.json: missing"):
        GenRe.load(d)


# ------------------------------------------------------------------------------ ONNX
def _graph(with_input: bool, with_output: bool, path: Path) -> Path:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    value = helper.make_tensor("v", TensorProto.FLOAT, [1, 2], [0.3, 0.7])
    nodes = [helper.make_node("Constant", [], ["probabilities"], value=value)]
    inputs = [helper.make_tensor_value_info("x1", TensorProto.FLOAT, [None, 1])] \
        if with_input else []
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 2])] \
        if with_output else []
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize(("with_input", "with_output", "message"), [
    (False, True, "no inputs"), (True, False, "no outputs|not a readable ONNX model"),
    (False, False, "no inputs|no outputs|not a readable ONNX model")])
def test_onnx_graph_without_inputs_or_outputs(make_mixed_task, tmp_path, with_input,
                                              with_output, message):
    from genre.classifiers.original_units import load_classifier

    path = _graph(with_input, with_output, tmp_path / "g.onnx")
    with pytest.raises(ModelError, match=message) as info:
        load_classifier(path, make_mixed_task().encoder)
    assert str(path) in str(info.value)


def test_fit_with_an_input_less_onnx_exits_2(make_mixed_task, tmp_path):
    task = make_mixed_task()
    path = _graph(False, True, tmp_path / "g.onnx")
    data = task.encoder.inverse_transform(task.X_train[:200]).assign(y=task.y_train[:200])
    data.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "s.yaml").write_text(
        "target: y\nfeatures:\n  x1: {type: numeric}\n  x2: {type: numeric, integer: true}\n"
        "  colour: {type: categorical}\n  group: {type: categorical, immutable: true}\n")
    result = runner.invoke(app, ["fit", "--data", str(tmp_path / "d.csv"), "--schema",
                                 str(tmp_path / "s.yaml"), "--classifier", str(path),
                                 "--out", str(tmp_path / "m")])
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and "no inputs" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "m").exists()


# ---------------------------------------------------------------------- cache directory
def test_cache_dir_that_is_a_file_is_a_clear_error(tmp_path, monkeypatch):
    from genre.utils.cache import cache_dir

    afile = tmp_path / "afile"
    afile.write_text("x")
    monkeypatch.setenv("GENRE_CACHE_DIR", str(afile))
    with pytest.raises(GenreError, match=f"GENRE_CACHE_DIR={afile}: not a directory"):
        cache_dir()
    monkeypatch.setenv("GENRE_CACHE_DIR", str(afile / "below"))
    with pytest.raises(GenreError, match="cannot be created"):
        cache_dir()
    result = runner.invoke(app, ["evaluate", "--dataset", "moons", "--method", "nnr",
                                 "--n", "5"])
    assert result.exit_code == 2 and f"GENRE_CACHE_DIR={afile / 'below'}" in result.output
    assert "Traceback" not in result.output
    assert afile.read_text() == "x"


# ------------------------------------------------------------------------------- caches
@pytest.fixture(scope="module")
def tiny_dataset():
    from genre.data import Feature, Schema
    from genre.data.datasets import Dataset

    rng = np.random.default_rng(1)
    n = 500
    df = pd.DataFrame({"a": rng.random(n), "b": rng.random(n),
                       "c": rng.choice(["u", "v"], n)})
    df["y"] = ((df.a + df.b + 0.3 * (df.c == "v") + 0.2 * rng.standard_normal(n)) > 1.1
               ).astype(int)
    schema = Schema((Feature("a", "numeric"), Feature("b", "numeric"),
                     Feature("c", "categorical", immutable=True)), target="y", name="tinyp")
    return Dataset("tinyp", schema, df.iloc[:400].reset_index(drop=True),
                   df.iloc[400:].reset_index(drop=True))


@pytest.fixture(scope="module")
def clean_protocol(tiny_dataset, tmp_path_factory):
    """The tiny protocol built once into a module cache: (protocol, its cache entry)."""
    from genre.bench.protocol import build_protocol

    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("protocol-cache")
    mp.setenv("GENRE_CACHE_DIR", str(root))
    protocol = build_protocol(tiny_dataset, h_epochs=H_EPOCHS)
    mp.undo()
    (entry,) = (root / "protocol-v1").iterdir()
    return protocol, entry


ENTRY_FILES = ["gold.skops", "h.json", "h.safetensors", "labels.npz", "done.json"]


H_EPOCHS = 40  # enough for h to accept some rows of the tiny dataset


def labels(change, resigned: bool = True):
    """Edit labels.npz of a protocol cache entry; resigned: rewrite its manifest to match."""
    def tamper(entry: Path) -> None:
        with np.load(entry / "labels.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        change(arrays)
        np.savez(entry / "labels.npz", **arrays)
        if resigned:
            resign(entry, ENTRY_FILES,
                   {"arrays": {k: list(np.shape(v)) for k, v in arrays.items()}})
    return tamper


def flip_some(arrays):
    arrays["y_train"] = arrays["y_train"].copy()
    arrays["y_train"][:20] = 1 - arrays["y_train"][:20]


PROTOCOL_DAMAGE = {
    "gold garbage": write("gold.skops", b"garbage"),
    "h truncated": truncate("h.safetensors"),
    "h json edited": write("h.json", b'{"n_features": 3, "hidden": [10, 10]}'),
    "labels garbage": write("labels.npz", b"PK\x03\x04 not a zip"),
    "labels edited": labels(flip_some, resigned=False),
    "labels shortened, resigned": labels(lambda a: a.update(y_train=a["y_train"][:-10])),
    "labels object array, resigned": labels(lambda a: a.update(
        y_train=a["y_train"].astype(object))),
    "labels not 0/1, resigned": labels(lambda a: a.update(y_train=a["y_train"] * 7)),
    "rejected out of range, resigned": labels(lambda a: a.update(
        rejected_test=a["rejected_test"] + 1000)),
    "manifest missing": delete(MANIFEST),
}


@pytest.mark.parametrize("damage", list(PROTOCOL_DAMAGE))
def test_damaged_protocol_cache_entry_is_refused(clean_protocol, tmp_path, damage):
    from genre.bench.protocol import load_cached

    clean, entry = clean_protocol
    where = tmp_path / entry.name
    shutil.copytree(entry, where)
    n_train, n_test = len(clean.X_train), len(clean.X_test)
    if damage == "manifest missing":  # once: the intact entry loads
        assert load_cached(where, clean.encoder, n_train, n_test)[0] is not None
    PROTOCOL_DAMAGE[damage](where)
    with pytest.raises(ModelError, match=str(where)):
        load_cached(where, clean.encoder, n_train, n_test)


# Each rebuild refits the protocol's forest (seconds): two kinds go the whole way.
@pytest.mark.parametrize("damage", ["labels edited", "labels shortened, resigned"])
def test_damaged_protocol_cache_is_rebuilt(clean_protocol, tiny_dataset, private_cache,
                                           capsys, damage):
    from genre.bench.protocol import build_protocol

    clean, entry = clean_protocol
    where = private_cache / "protocol-v1" / entry.name
    shutil.copytree(entry, where)
    assert build_protocol(tiny_dataset, h_epochs=H_EPOCHS).y_train is not None  # loads
    assert capsys.readouterr().err == ""
    PROTOCOL_DAMAGE[damage](where)
    again = build_protocol(tiny_dataset, h_epochs=H_EPOCHS)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"cache entry {where}" in err
    assert "rebuilding" in err and "Traceback" not in err
    np.testing.assert_array_equal(again.y_train, clean.y_train)
    np.testing.assert_array_equal(again.y_test, clean.y_test)
    np.testing.assert_array_equal(again.rejected_test, clean.rejected_test)
    np.testing.assert_allclose(again.h.predict_proba(clean.X_test),
                               clean.h.predict_proba(clean.X_test))
    np.testing.assert_allclose(again.gold.predict_proba(clean.X_test),
                               clean.gold.predict_proba(clean.X_test))
    build_protocol(tiny_dataset, h_epochs=H_EPOCHS)  # the rebuilt entry is used, silently
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("damage", ["weights garbage", "config edited", "manifest missing"])
def test_damaged_genre_cache_is_refitted(clean_protocol, private_cache, capsys, damage):
    from genre.bench.benchmark import fit_genre_cached

    protocol = clean_protocol[0]
    first, cached, _ = fit_genre_cached(GenRe(**TINY, gamma=0.5), protocol)
    assert not cached
    (where,) = (private_cache / "genre-models").iterdir()
    if damage == "weights garbage":
        (where / M).write_bytes(b"garbage")
    elif damage == "config edited":
        config(lambda c: c["params"].update(best_k=3))(where)
    else:
        (where / MANIFEST).unlink()
    again, cached, _ = fit_genre_cached(GenRe(**TINY, gamma=0.5), protocol)
    err = capsys.readouterr().err
    assert not cached and f"cache entry {where}" in err and len(err.strip().splitlines()) == 1
    X = protocol.individuals(10)
    np.testing.assert_array_equal(again.generate(X, seed=2), first.generate(X, seed=2))
    assert fit_genre_cached(GenRe(**TINY, gamma=0.5), protocol)[1]  # now loaded from the cache


@pytest.mark.parametrize("kind", ["vae", "ddpm"])
@pytest.mark.parametrize("damage", ["weights garbage", "weights NaN, resigned", "json garbage",
                                    "manifest missing"])
def test_damaged_vae_and_diffusion_caches_are_retrained(clean_protocol, private_cache, capsys,
                                                         kind, damage):
    task = clean_protocol[0].task()
    if kind == "vae":
        from genre.baselines.vae import VAEConfig, load_or_train_vae

        cfg = VAEConfig(epochs=1, hidden=(8,), latent_dim=2)

        def train():
            model, info = load_or_train_vae(task, cfg)
            return model.state_dict(), info
        stem = "vae"
    else:
        from genre.baselines.diffusion import DDPMConfig, load_or_train_ddpm

        cfg = DDPMConfig(n_features=task.n_features, width=8, depth=1, time_dim=4,
                         timesteps=5, train_steps=5)

        def train():
            model, info = load_or_train_ddpm(task, cfg, task.X_train)
            return model.denoiser.state_dict(), info
        stem = "ddpm"
    clean, info = train()
    where = info.path
    weights = where / f"{stem}.safetensors"
    if damage == "weights garbage":
        weights.write_bytes(b"garbage")
    elif damage == "weights NaN, resigned":
        tensors(weights.name, nan_first)(where)
        resign(where, [f"{stem}.json", weights.name])
    elif damage == "json garbage":
        (where / f"{stem}.json").write_text("{")
    else:
        (where / MANIFEST).unlink()
    again, info = train()
    err = capsys.readouterr().err
    assert not info.cached and f"cache entry {where}" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for k in clean:
        torch.testing.assert_close(again[k], clean[k], rtol=0, atol=0)
    assert train()[1].cached
