"""CLI conventions: --version, python -m genre, a light start-up, help texts, Parquet
output, person = 0-based row index, --id, numbers as given, the cache commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import genre
from genre.cli import app
from genre.tables.recourse import float32_decimals

runner = CliRunner()
SRC = Path(__file__).resolve().parents[1] / "src"


def run_genre(*args: str, code: str | None = None, **env) -> subprocess.CompletedProcess:
    """`python -m genre ARGS` (or python -c CODE) in a fresh interpreter on this source tree."""
    environ = os.environ | {"PYTHONPATH": str(SRC)} | env
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "genre", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=environ, timeout=120)


def table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "applicant_id": [f"A{i:04d}" for i in range(n)],
        "age": rng.integers(18, 70, n),
        "income": np.round(rng.uniform(10, 100, n), 2),
        "score": rng.integers(0, 1000, n).astype(float),  # whole numbers, stored as floats
        "job": rng.choice(["none", "part-time", "full-time"], n),
    })
    df["approved"] = (df.income / 100 + 0.4 * (df.job == "full-time")
                      + rng.normal(0, 0.1, n) > 0.8).astype(int)
    return df


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny GenRe (MLP h) on `table`, whose schema has no id column, saved."""
    df = table(400)
    schema = genre.Schema.infer(df.drop(columns="applicant_id"), target="approved")
    model = genre.fit(df.drop(columns="applicant_id"), schema, progress=False, gamma=0.5,
                      max_epochs=3, k=100, d_model=16, n_heads=2, n_enc_layers=1,
                      n_dec_layers=1, d_ff=32, sampler="autoregressive")
    return model.save(tmp_path_factory.mktemp("cli") / "model")


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"genre-recourse {genre.__version__}"
    proc = run_genre("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"genre-recourse {genre.__version__}"


def test_start_up_imports_neither_torch_nor_sklearn(tmp_path):
    df = table(30).drop(columns="applicant_id")
    df.to_csv(tmp_path / "t.csv", index=False)
    schema = genre.Schema.infer(df, target="approved")
    schema.to_yaml(tmp_path / "s.yaml")
    commands = [["--help"], ["--version"], ["fit", "--help"], ["recourse", "--help"],
                ["schema", "check", str(tmp_path / "s.yaml"), "--data", str(tmp_path / "t.csv")]]
    # One interpreter runs them all: if none of the modules they loaded is heavy, none
    # of the commands loaded one.
    code = ("import sys\nfrom genre.cli import app\n"
            f"for args in {commands!r}:\n"
            "    try:\n        app(args, prog_name='genre')\n"
            "    except SystemExit as e:\n        assert not e.code, (args, e.code)\n"
            "print('HEAVY', sorted(m for m in ('torch', 'sklearn') if m in sys.modules))")
    proc = run_genre(code=code)
    assert proc.returncode == 0, proc.stderr
    assert "OK (4 features" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY []", proc.stdout


def test_help_texts():
    from genre.baselines import METHODS
    from genre.utils.methods import METHOD_NAMES

    for cmd in (["--help"], ["fit", "--help"], ["recourse", "--help"], ["cache", "--help"]):
        out = runner.invoke(app, cmd).output
        assert "<bool>" not in out and "--help" in out
    assert "--install-completion" in runner.invoke(app, ["--help"]).output
    assert tuple(METHODS) == METHOD_NAMES
    evaluate = " ".join(runner.invoke(app, ["evaluate", "--help"]).output.split())
    assert ", ".join(METHOD_NAMES) in evaluate
    recourse = " ".join(runner.invoke(app, ["recourse", "--help"]).output.split())
    assert "CSV or Parquet" in recourse and ".parquet" in recourse


def test_recourse_csv_and_parquet_person_id_and_numbers(model_dir, tmp_path):
    people = table(60, seed=1).drop(columns="approved")
    src = tmp_path / "people.csv"
    people.to_csv(src, index=False)
    outs = {}
    for fmt in ("csv", "parquet"):
        out, changes = tmp_path / f"r.{fmt}", tmp_path / f"c.{fmt}"
        result = runner.invoke(app, ["recourse", "--model", str(model_dir), "--input", str(src),
                                     "--output", str(out), "--changes", str(changes),
                                     "--id", "applicant_id", "--seed", "2"])
        assert result.exit_code == 0, result.output
        read = pd.read_csv if fmt == "csv" else pd.read_parquet
        outs[fmt] = (read(out), read(changes))
    got, diff = outs["csv"]
    assert got["person"].tolist() == list(range(60))  # 0-based, first data row = 0
    assert got["applicant_id"].tolist() == people["applicant_id"].tolist()
    assert list(got.columns[:2]) == ["person", "applicant_id"]
    assert list(diff.columns) == ["person", "applicant_id", "option", "feature", "from", "to"]
    assert (diff["applicant_id"] == people["applicant_id"].iloc[diff["person"]].to_numpy()).all()
    # numbers as given: integers without ".0", no float32 noise (changed values have at most
    # the decimals the model resolves: a bin without training targets decodes to its edge),
    # unchanged values verbatim
    enc = genre.GenRe.load(model_dir).encoder_
    decimals = float32_decimals(enc, enc.schema_.names.index("income"))
    assert decimals < 6
    text = (tmp_path / "r.csv").read_text().splitlines()
    header = text[0].split(",")
    for line in text[1:]:
        cells = dict(zip(header, line.split(","), strict=True))
        assert "." not in cells["age"] and "." not in cells["score"]
        assert len(cells["income"].partition(".")[2]) <= decimals, cells["income"]
    unchanged = got["status"] != "recourse"
    assert (got.loc[unchanged, "income"].to_numpy()
            == people.loc[unchanged.to_numpy(), "income"].to_numpy()).all()
    # Parquet: the same table, with the same person numbers
    pq, pq_diff = outs["parquet"]
    pd.testing.assert_frame_equal(pq, got, check_dtype=False)
    keys = ["person", "applicant_id", "option", "feature"]
    pd.testing.assert_frame_equal(pq_diff[keys], diff[keys], check_dtype=False)
    assert (pq_diff["to"] == diff["to"].astype(str)).all()
    # Parquet input: person is the same 0-based row index
    people.to_parquet(tmp_path / "people.parquet", index=False)
    result = runner.invoke(app, ["recourse", "--model", str(model_dir), "--input",
                                 str(tmp_path / "people.parquet"), "--output",
                                 str(tmp_path / "from-pq.csv"), "--id", "applicant_id",
                                 "--seed", "2"])
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "from-pq.csv"), got)


def test_recourse_output_errors(model_dir, tmp_path):
    people = table(5, seed=1).drop(columns="approved")
    src = tmp_path / "people.csv"
    people.to_csv(src, index=False)
    result = runner.invoke(app, ["recourse", "--model", str(model_dir), "--input", str(src),
                                 "--output", str(tmp_path / "out.txt")])
    assert result.exit_code == 2 and "unknown output format '.txt'" in result.output
    assert not (tmp_path / "out.txt").exists()
    # without --id the identifier is an unexpected column, with a wrong --id it is named
    result = runner.invoke(app, ["recourse", "--model", str(model_dir), "--input", str(src),
                                 "--output", str(tmp_path / "o.csv")])
    assert result.exit_code == 2 and "unexpected columns ['applicant_id']" in result.output
    result = runner.invoke(app, ["recourse", "--model", str(model_dir), "--input", str(src),
                                 "--output", str(tmp_path / "o.csv"), "--id", "ident"])
    assert result.exit_code == 2 and "id column 'ident' not found" in result.output
    assert not (tmp_path / "o.csv").exists()


def test_schema_infer_id_and_plain_numbers_in_errors(tmp_path):
    df = table(40)
    df.to_csv(tmp_path / "t.csv", index=False)
    result = runner.invoke(app, ["schema", "infer", str(tmp_path / "t.csv"), "--target",
                                 "approved", "--id", "applicant_id", "--out",
                                 str(tmp_path / "s.yaml")])
    assert result.exit_code == 0, result.output
    schema = genre.Schema.from_yaml(tmp_path / "s.yaml")
    assert schema.id_column == "applicant_id" and "applicant_id" not in schema.names
    df["age"] = df["age"].astype(float)
    df.loc[3, "age"] = 30.5
    df.to_csv(tmp_path / "bad.csv", index=False)
    result = runner.invoke(app, ["schema", "check", str(tmp_path / "s.yaml"), "--data",
                                 str(tmp_path / "bad.csv")])
    assert result.exit_code == 2
    assert "line 5: expected an integer, got 30.5" in result.output, result.output
    assert "np." not in result.output


def test_cache_info_and_clear(private_cache):
    for folder, size in (("protocol-v1/a", 1000), ("vae-v1/b", 2048), ("genre-models/c", 10)):
        (private_cache / folder).mkdir(parents=True)
        (private_cache / folder / "weights.safetensors").write_bytes(b"x" * size)
    (private_cache / "not-genre").mkdir()
    (private_cache / "not-genre" / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["cache", "info"])
    assert result.exit_code == 0 and str(private_cache) in result.output.replace("\n", "")
    lines = {ln.split()[0]: ln for ln in result.output.splitlines()[1:]}
    assert "1000 B" in lines["protocol"] and "2.0 KB" in lines["vae"]
    assert "not-genre" in result.output
    result = runner.invoke(app, ["cache", "clear"])  # no terminal to ask: needs --yes
    assert result.exit_code == 2 and "--yes" in result.output
    assert (private_cache / "vae-v1").exists()
    result = runner.invoke(app, ["cache", "clear", "--kind", "vae", "--yes"])
    assert result.exit_code == 0 and not (private_cache / "vae-v1").exists()
    assert (private_cache / "protocol-v1").exists()
    assert runner.invoke(app, ["cache", "clear", "--yes"]).exit_code == 0
    assert sorted(p.name for p in private_cache.iterdir()) == ["not-genre"]
    assert (private_cache / "not-genre" / "keep.txt").read_text() == "mine"
