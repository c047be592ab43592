"""Hostile and careless output paths (issue 11, writers): no command destroys what it did not
make. Each refused case exits 2 with one line naming the path, no traceback, and leaves every
file as it was (listing and sha256 before and after)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import genre
from genre.cli import app
from genre.core.estimator import GenRe
from genre.errors import OutputError
from genre.io import atomic_dir, atomic_path, check_model_dir, check_outputs
from genre.tables.streaming import stream_recourse

runner = CliRunner()

SCHEMA = """\
target: ok
favourable: 1
features:
  age:    {type: numeric, integer: true}
  income: {type: numeric}
  job:    {type: categorical}
"""
TINY = {"d_model": 8, "n_heads": 2, "n_enc_layers": 1, "n_dec_layers": 1, "d_ff": 16,
        "max_epochs": 2, "k": 20, "n_bins": 10, "best_k": 2, "progress": False,
        "sampler": "autoregressive"}


def people(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"age": rng.integers(18, 70, n), "income": rng.normal(50, 15, n).round(2),
                       "job": rng.choice(["a", "b", "c"], n)})
    df["ok"] = ((df.income - 50) * 0.08 + (df.job == "a") + rng.normal(0, 0.3, n) > 0)
    df["ok"] = df["ok"].astype(int)
    return df


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny GenRe on a 400-row table, fitted once (a few seconds) and saved."""
    from genre.core.usertask import build_user_task
    from genre.data.schema import Schema

    root = tmp_path_factory.mktemp("tiny")
    (root / "schema.yaml").write_text(SCHEMA)
    task = build_user_task(people(), Schema.from_yaml(root / "schema.yaml"), seed=0, h_epochs=40)
    return GenRe(**TINY).fit(task).save(root / "model")


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """The current directory for one test: data.csv, schema.yaml, in.csv (people to answer)
    and a subfolder with a file."""
    monkeypatch.chdir(tmp_path)
    people().to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    people(6, seed=1).drop(columns="ok").to_csv(tmp_path / "in.csv", index=False)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "keep.txt").write_text("keep me\n")
    return tmp_path


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under root (not following links): a file's sha256, a link's target, or
    its kind."""
    out = {}
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(here) / name
            mode = os.lstat(path).st_mode
            key = str(path.relative_to(root))
            if stat.S_ISLNK(mode):
                out[key] = "link -> " + os.readlink(path)
            elif stat.S_ISREG(mode):
                out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISDIR(mode):
                out[key] = "dir"
            else:
                out[key] = "special"
    return out


def flat(text: str) -> str:
    return " ".join(text.split())


def refused(args: list[str], root: Path, named: str | Path, why: str | None = None) -> str:
    """Run the command; it must exit 2 with one error line naming `named`, no traceback, and
    change nothing under root."""
    before = snapshot(root)
    result = runner.invoke(app, [str(a) for a in args])
    out = result.output
    assert result.exit_code == 2, out
    assert "Traceback" not in out and isinstance(result.exception, SystemExit), out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    assert str(named) in errors[0], out
    if why:
        assert why in flat(out), out
    assert snapshot(root) == before
    return out


def recourse_args(model: Path, *extra) -> list:
    return ["recourse", "--model", model, "--input", "in.csv", *extra]


# ------------------------------------------------------------------------------ fit --out
def test_fit_out_dot_keeps_every_file(work):
    refused(["fit", "--data", "data.csv", "--schema", "schema.yaml", "--fast", "--out", "."],
            work, ".", "is the current directory")


def test_fit_out_parent_of_cwd_is_refused(work, monkeypatch):
    monkeypatch.chdir(work / "sub")
    refused(["fit", "--data", "../data.csv", "--schema", "../schema.yaml", "--out", ".."],
            work, "..", "is a parent of the current directory")


def test_fit_out_home_is_refused(work, monkeypatch):
    monkeypatch.setenv("HOME", str(work / "sub"))
    refused(["fit", "--data", "data.csv", "--schema", "schema.yaml", "--out",
             work / "sub"], work, work / "sub", "is your home directory")


def test_fit_out_root_is_refused(work):
    refused(["fit", "--data", "data.csv", "--schema", "schema.yaml", "--out", "/"], work, "/",
            "is the root directory")


def test_fit_out_existing_folder_with_notes(work):
    (work / "important").mkdir()
    (work / "important" / "notes.txt").write_text("my notes\n")
    refused(["fit", "--data", "data.csv", "--schema", "schema.yaml", "--out", "important"],
            work, "important", "not a model directory genre wrote")


def test_fit_out_an_input_file_is_refused(work):
    refused(["fit", "--data", "data.csv", "--schema", "schema.yaml", "--out", "data.csv"],
            work, "data.csv", "is the input")


def test_fit_out_an_existing_file_is_refused(work):
    (work / "model.txt").write_text("not a model\n")
    refused(["fit", "--data", "data.csv", "--schema", "schema.yaml", "--out", "model.txt"],
            work, "model.txt", "is a file")


def test_fit_out_existing_model_needs_overwrite(work, tiny_model):
    shutil.copytree(tiny_model, work / "model")
    refused(["fit", "--data", "data.csv", "--schema", "schema.yaml", "--out", "model"],
            work, "model", "add --overwrite")


def test_fit_out_model_holding_other_files_is_refused_even_with_overwrite(work, tiny_model):
    shutil.copytree(tiny_model, work / "model")
    (work / "model" / "notes.txt").write_text("mine\n")
    refused(["fit", "--data", "data.csv", "--schema", "schema.yaml", "--out", "model",
             "--overwrite"], work, "model", "holds notes.txt, which genre did not write")


def test_fit_out_symlink_to_a_model_is_refused(work, tiny_model):
    shutil.copytree(tiny_model, work / "model")
    (work / "link").symlink_to(work / "model")
    refused(["fit", "--data", "data.csv", "--schema", "schema.yaml", "--out", "link",
             "--overwrite"], work, "link", "symbolic link")


def test_fit_out_model_holding_an_input_is_refused(work, tiny_model):
    shutil.copytree(tiny_model, work / "model")
    shutil.copy(work / "schema.yaml", work / "model" / "schema.json")  # an allowed name
    refused(["fit", "--data", "data.csv", "--schema", "model/schema.json", "--out", "model",
             "--overwrite"], work, "model", "holds the input")


def test_fit_overwrite_replaces_a_model_genre_wrote(work, tiny_model, monkeypatch):
    import genre.core.presets
    import genre.core.usertask

    # The CLI's own fit, made tiny: the classifier h and GenRe train in about a second.
    monkeypatch.setattr(genre.core.presets, "genre_for", lambda *a, **k: GenRe(**TINY | {
        "max_epochs": 1, "seed": 7}))
    monkeypatch.setattr(genre.core.usertask, "build_user_task",
                        functools.partial(genre.core.usertask.build_user_task, h_epochs=40))
    shutil.copytree(tiny_model, work / "model")
    old = json.loads((work / "model" / "config.json").read_text())
    before = snapshot(work)
    result = runner.invoke(app, ["fit", "--data", "data.csv", "--schema", "schema.yaml",
                                 "--out", "model", "--overwrite"])
    assert result.exit_code == 0, result.output
    new = json.loads((work / "model" / "config.json").read_text())
    assert new["params"]["seed"] == 7 and old["params"]["seed"] == 0
    after = snapshot(work)
    assert {k: v for k, v in after.items() if not k.startswith("model")} == \
        {k: v for k, v in before.items() if not k.startswith("model")}
    assert not [p for p in os.listdir(work) if p.startswith(".model.")]  # no temp, no old
    GenRe.load(work / "model")


# ------------------------------------------------------------------------ recourse outputs
def test_recourse_output_onto_its_input(work, tiny_model):
    refused(recourse_args(tiny_model, "--output", "in.csv"), work, "in.csv", "is the input")


def test_recourse_changes_onto_its_input(work, tiny_model):
    refused(recourse_args(tiny_model, "--output", "out.csv", "--changes", "in.csv"), work,
            "in.csv", "is the input")


def test_recourse_output_onto_input_spelled_otherwise(work, tiny_model):
    refused(recourse_args(tiny_model, "--output", "sub/../in.csv", "--overwrite"), work,
            "sub/../in.csv", "is the input")


def test_recourse_output_hard_link_to_input(work, tiny_model):
    os.link(work / "in.csv", work / "hard.csv")
    refused(recourse_args(tiny_model, "--output", "hard.csv", "--overwrite"), work,
            "hard.csv", "is the input")


@pytest.mark.parametrize("exists", [False, True])
def test_recourse_output_and_changes_the_same_file(work, tiny_model, exists):
    if exists:  # --overwrite does not make it right
        (work / "same.csv").write_text("earlier\n")
    refused(recourse_args(tiny_model, "--output", "same.csv", "--changes", "./same.csv",
                          *(["--overwrite"] if exists else [])), work, "same.csv",
            "given twice")


@pytest.mark.parametrize("files, links, args, named, why", [
    ({"target.csv": "precious\n"}, {"link.csv": "target.csv"},
     ("--output", "link.csv", "--overwrite"), "link.csv", "symbolic link"),
    ({}, {"dangling.csv": "nowhere.csv"}, ("--output", "dangling.csv"), "dangling.csv",
     "symbolic link"),
    ({}, {}, ("--output", "sub"), "sub", "is a directory"),
    ({}, {}, ("--output", "out.csv", "--changes", "sub"), "sub", "is a directory"),
    ({}, {}, ("--output", "data.csv/out.csv"), "data.csv/out.csv", "is not a directory"),
    ({"out.csv": "earlier results\n"}, {}, ("--output", "out.csv"), "out.csv",
     "add --overwrite"),
    ({"changes.csv": "earlier changes\n"}, {},
     ("--output", "out.csv", "--changes", "changes.csv"), "changes.csv", "add --overwrite"),
], ids=["output-symlink", "output-dangling-symlink", "output-a-directory",
        "changes-a-directory", "output-under-a-file", "existing-output-needs-overwrite",
        "existing-changes-needs-overwrite"])
def test_recourse_refuses_the_output(work, tiny_model, files, links, args, named, why):
    for name, text in files.items():
        (work / name).write_text(text)
    for name, target in links.items():
        (work / name).symlink_to(target)
    refused(recourse_args(tiny_model, *args), work, named, why)


def test_recourse_output_a_fifo(work, tiny_model):
    os.mkfifo(work / "pipe.csv")
    refused(recourse_args(tiny_model, "--output", "pipe.csv", "--overwrite"), work,
            "pipe.csv", "FIFO")


@pytest.mark.parametrize("device", ["/dev/full", "/dev/null"])
def test_recourse_output_a_device(work, tiny_model, device):
    if not os.path.exists(device):
        pytest.skip(f"no {device} here")
    rdev = os.stat(device).st_rdev
    refused(recourse_args(tiny_model, "--output", device, "--overwrite"), work, device,
            "device")
    assert stat.S_ISCHR(os.stat(device).st_mode) and os.stat(device).st_rdev == rdev


def test_recourse_output_inside_the_model_directory(work, tiny_model):
    shutil.copytree(tiny_model, work / "model")
    refused(recourse_args(work / "model", "--output", "model/out.csv"), work, "model/out.csv",
            "inside the input directory")


def test_recourse_overwrite_replaces_only_the_outputs(work, tiny_model):
    (work / "out.csv").write_text("earlier results\n")
    (work / "changes.csv").write_text("earlier changes\n")
    before = snapshot(work)
    result = runner.invoke(app, [str(a) for a in recourse_args(
        tiny_model, "--output", "out.csv", "--changes", "changes.csv", "--overwrite")])
    assert result.exit_code == 0, result.output
    after = snapshot(work)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed == {"out.csv", "changes.csv"}
    assert len(pd.read_csv(work / "out.csv")) == 6


def test_recourse_new_folder_is_removed_when_the_run_fails(work, tiny_model):
    (work / "bad.csv").write_text("age,income,job\n30,abc,a\n")
    before = snapshot(work)
    result = runner.invoke(app, ["recourse", "--model", str(tiny_model), "--input", "bad.csv",
                                 "--output", "new/deeper/out.csv"])
    assert result.exit_code == 2 and "bad.csv" in result.output, result.output
    assert snapshot(work) == before  # no new/, no new/deeper/, no temp file


def test_stream_recourse_refuses_output_onto_input(work, tiny_model):
    model = GenRe.load(tiny_model)
    before = snapshot(work)
    with pytest.raises(OutputError, match="in.csv: is the input"):
        stream_recourse(model, "in.csv", "in.csv", progress=False)
    with pytest.raises(OutputError, match="given twice"):
        stream_recourse(model, "in.csv", "o.csv", changes_path="./o.csv", progress=False)
    assert snapshot(work) == before


# --------------------------------------------------------------- schema infer, evaluate --json
def test_schema_infer_onto_its_input(work):
    refused(["schema", "infer", "data.csv", "--target", "ok", "--out", "data.csv"], work,
            "data.csv", "is the input")


def test_schema_infer_existing_out_needs_overwrite(work):
    refused(["schema", "infer", "data.csv", "--target", "ok", "--out", "schema.yaml"], work,
            "schema.yaml", "add --overwrite")
    result = runner.invoke(app, ["schema", "infer", "data.csv", "--target", "ok", "--out",
                                 "schema.yaml", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert "job:" in (work / "schema.yaml").read_text()


def test_evaluate_json_onto_an_existing_file(work):
    (work / "figures.json").write_text('{"mine": 1}\n')
    refused(["evaluate", "--dataset", "compas", "--method", "nnr", "--json", "figures.json"],
            work, "figures.json", "add --overwrite")


def test_evaluate_json_onto_a_directory(work):
    refused(["evaluate", "--dataset", "compas", "--json", "sub"], work, "sub", "is a directory")


def test_evaluate_json_inside_the_model_directory(work, tiny_model):
    shutil.copytree(tiny_model, work / "model")
    refused(["evaluate", "--dataset", "compas", "--method", "genre", "--model", "model",
             "--json", "model/config.json", "--overwrite"], work, "model/config.json",
            "inside the input directory")


# ------------------------------------------------------------------------ benchmark outputs
def test_benchmark_existing_results_need_overwrite(work):
    (work / "table").mkdir()
    (work / "table" / "results.csv").write_text("someone else's table\n")
    (work / "table" / "notes.md").write_text("mine\n")
    refused(["benchmark", "--datasets", "compas", "--methods", "nnr", "--n", "3", "--quick",
             "--no-progress", "--out", "table"], work, "table/results.csv", "add --overwrite")


def test_benchmark_out_a_file(work):
    refused(["benchmark", "--datasets", "compas", "--methods", "nnr", "--n", "3",
             "--no-progress", "--out", "data.csv"], work, "data.csv", "is not a directory")


def test_benchmark_experiment_existing_picture_needs_overwrite(work):
    (work / "sw").mkdir()
    (work / "sw" / "lambda_sweep.png").write_bytes(b"\x89PNG not really")
    refused(["benchmark", "--sweep-lambda", "1", "--datasets", "compas", "--methods",
             "wachter", "--n", "3", "--quick", "--no-progress", "--out", "sw"], work,
            "sw/lambda_sweep.png", "add --overwrite")


def test_benchmark_speed_json_onto_its_own_markdown(work):
    refused(["benchmark-speed", "--datasets", "compas", "--quick", "--out", "speed", "--json",
             "speed/speed.md"], work, "speed/speed.md", "given twice")


def test_benchmark_speed_existing_json_needs_overwrite(work):
    (work / "speed.json").write_text("{}\n")
    refused(["benchmark-speed", "--datasets", "compas", "--quick", "--out", "speed", "--json",
             "speed.json"], work, "speed.json", "add --overwrite")


# ----------------------------------------------------------------------------- the helpers
def test_check_outputs_allows_new_files_and_overwrite_of_regular_files(work):
    check_outputs(["new.csv", None, "deep/new.csv"], inputs=["in.csv", None])
    check_outputs(["data.csv"], inputs=["in.csv"], overwrite=True)
    with pytest.raises(OutputError, match="already exists"):
        check_outputs(["data.csv"])


def test_check_model_dir_accepts_new_and_empty_directories(work):
    check_model_dir("fresh")
    (work / "empty").mkdir()
    check_model_dir("empty")
    with atomic_dir("empty") as tmp:
        (tmp / "config.json").write_text('{"format": "genre-recourse/genre"}')
    assert (work / "empty" / "config.json").exists()


def test_atomic_dir_failure_leaves_the_old_model_and_no_temp(work, tiny_model):
    shutil.copytree(tiny_model, work / "model")
    before = snapshot(work)
    with pytest.raises(RuntimeError), atomic_dir("model", overwrite=True) as tmp:
        (tmp / "config.json").write_text("{}")
        raise RuntimeError("crash while saving")
    assert snapshot(work) == before


def test_atomic_path_refuses_a_link_that_appears_during_the_write(work):
    with pytest.raises(OutputError, match="symbolic link"), atomic_path("late.csv") as tmp:
        tmp.write_text("new\n")
        (work / "late.csv").symlink_to("data.csv")
    assert (work / "late.csv").is_symlink() and not list(work.glob(".late.csv.*"))


# ------------------------------------------------------------------------------- SIGTERM
def test_sigterm_mid_write_leaves_no_temp_file(work, tiny_model):
    """A real `genre recourse` process, sent SIGTERM while it writes: it exits 143 and
    leaves neither the output nor its temporary file."""
    pd.concat([people(400, seed=2).drop(columns="ok")] * 150).to_csv(work / "big.csv",
                                                                      index=False)
    before = snapshot(work)
    src = str(Path(genre.__file__).resolve().parents[1])
    env = os.environ | {"PYTHONPATH": os.pathsep.join(
        [src, *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from genre.cli import main; main()", "recourse", "--model",
         str(tiny_model), "--input", "big.csv", "--output", "out.csv", "--changes",
         "changes.csv", "--chunk-size", "1000"],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(work.glob(".changes.csv.*.tmp")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no temporary file appeared"
            time.sleep(0.05)
        time.sleep(0.3)  # well inside the write: rows are being answered and appended
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, (out, err)
    assert "Traceback" not in err
    assert snapshot(work) == before  # no out.csv, no changes.csv, no .tmp
