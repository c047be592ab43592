"""Hostile input, round two (issue 24): writers, readers, reserved names, spreadsheet
formulas, numbers from users, YAML scalars, names and leftovers, --validate-first.

Every refused case goes through the `genre` command and must exit 2 with exactly one
`error:` line naming the file (or option) and the problem, no traceback, and leave every
file under the test's folder as it was (sha256 before and after: nothing lost, no partial
output). Model directories, classifiers and Ray: test_safety_round2_models.py.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import test_safety_writers as writers
from genre.cli import app
from genre.core.estimator import GenRe
from genre.data.schema import RESERVED_COLUMNS, RESERVED_ID_COLUMNS
from genre.errors import InputError, OutputError
from genre.integrity import MANIFEST, write_manifest
from genre.io import atomic_dir, clean_leftovers
from genre.tables.recourse import CHANGE_COLUMNS, META_COLUMNS
from genre.tables.streaming import stream_recourse
from genre.tables.writers import FORMULA_PREFIXES
from genre.utils.csvrows import CHUNK_BYTES, scan_csv
from genre.utils.limits import check_request
from test_safety_writers import SCHEMA, TINY, people, recourse_args, refused

runner = CliRunner()
# The writers' suite's fixtures: a tiny fitted model (saved once per module), and a
# working folder with data.csv, schema.yaml, in.csv and sub/keep.txt.
tiny_model, work = writers.tiny_model, writers.work


def ok(args: list) -> str:
    """Run the command; it must succeed."""
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def dead_pid() -> int:
    """The id of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def copy_model(src: Path, where: Path) -> Path:
    shutil.copytree(src, where)
    return where


def resign(directory: Path) -> None:
    """Rewrite the manifest over the files it lists, as they are now."""
    names = list(json.loads((directory / MANIFEST).read_text())["files"])
    write_manifest(directory, names)


# ------------------------------------------------------------ 1. --overwrite and manifests
@pytest.mark.parametrize("foreign", ["my_notes.json", "experiment.onnx", "backup.safetensors"])
def test_overwrite_keeps_files_the_manifest_does_not_list(work, tiny_model, foreign):
    copy_model(tiny_model, work / "model")
    (work / "model" / foreign).write_text("the user's own file\n")
    refused(["fit", "--data", "data.csv", "--schema", "schema.yaml", "--out", "model",
             "--overwrite"], work, "model", f"holds {foreign}, which genre did not write")


def test_overwrite_of_a_legacy_model_keeps_a_json_genre_never_writes(work, tiny_model):
    copy_model(tiny_model, work / "model")
    (work / "model" / MANIFEST).unlink()
    (work / "model" / "notes.json").write_text("{}\n")
    refused(["fit", "--data", "data.csv", "--schema", "schema.yaml", "--out", "model",
             "--overwrite"], work, "model", "holds notes.json, which genre did not write")


def test_overwrite_refuses_a_model_whose_manifest_is_garbage(work, tiny_model):
    copy_model(tiny_model, work / "model")
    (work / "model" / MANIFEST).write_text("not json")
    refused(["fit", "--data", "data.csv", "--schema", "schema.yaml", "--out", "model",
             "--overwrite"], work, "model", "manifest.json genre cannot read")


# ------------------------------------------------------------------ 2. bounded rows
def sparse_hole(folder: Path, size: int = 2 << 30) -> Path:
    """A valid header, then `size` bytes of NUL (a hole: no disk used)."""
    path = folder / "hole.csv"
    path.write_text("age,income,job,ok\n")
    with path.open("r+b") as fh:
        fh.truncate(size)
    return path


@pytest.mark.parametrize("command", ["recourse", "schema check", "fit"])
def test_sparse_hole_fails_fast_on_the_row_limit(work, tiny_model, tmp_path_factory, command):
    hole = sparse_hole(tmp_path_factory.mktemp("hole"))
    args = {"recourse": ["recourse", "--model", tiny_model, "--input", hole, "--output",
                         "out.csv"],
            "schema check": ["schema", "check", "schema.yaml", "--data", hole],
            "fit": ["fit", "--data", hole, "--schema", "schema.yaml", "--out", "m"]}[command]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    refused(args, work, hole, "line 2: a row longer than 1,048,576 bytes")
    assert time.perf_counter() - start < 20
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert grown_mb < 300, f"peak memory grew by {grown_mb:.0f} MB"
    assert hole.stat().st_size == 2 << 30


def test_one_long_row_in_the_middle_is_named(work, tiny_model):
    rows = ["age,income,job", "30,50.0,a", "31,51.0,b", "32,52.0,c", "1," * 600_000, "33,1,a"]
    (work / "long.csv").write_text("\n".join(rows) + "\n")
    refused(["recourse", "--model", tiny_model, "--input", "long.csv", "--output", "out.csv"],
            work, "long.csv", "line 5: a row longer than")


def test_a_quote_left_open_over_megabytes_is_named(work, tiny_model):
    text = "age,income,job\n30,50.0,a\n31,51.0,\"" + "b\n" * 700_000 + "\"\n"
    (work / "open.csv").write_text(text)
    refused(["recourse", "--model", tiny_model, "--input", "open.csv", "--output", "out.csv"],
            work, "open.csv", "line 3: a row longer than")


def test_parquet_rows_that_inflate_past_the_row_limit(work, tiny_model):
    pytest.importorskip("pyarrow")
    table = pd.DataFrame({"age": [30, 31], "income": [50.0, 51.0], "job": ["a" * 3_000_000] * 2})
    table.to_parquet(work / "wide.parquet", compression="zstd")
    assert (work / "wide.parquet").stat().st_size < 100_000
    refused(["recourse", "--model", tiny_model, "--input", "wide.parquet", "--output",
             "out.csv"], work, "wide.parquet", "row group 0 (rows 0 on) holds rows of")


def test_chunks_hold_bounded_bytes_whatever_the_rows(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("a\n" + ("x" * 500_000 + "\n") * 3)
    layout = scan_csv(path)
    assert layout.rows == 3 and layout.longest == 500_000
    assert layout.chunk_rows(50_000) * layout.longest <= CHUNK_BYTES


# ---------------------------------------------------------------- 3. reserved names
def renamed_schema(folder: Path, name: str) -> Path:
    path = folder / f"schema-{name}.yaml"
    path.write_text(SCHEMA.replace("  job:   ", f"  {name}:"))
    return path


@pytest.mark.parametrize("name", RESERVED_COLUMNS)
def test_schema_check_refuses_a_feature_named_like_an_output_column(work, name):
    path = renamed_schema(work, name)
    refused(["schema", "check", path.name], work, path.name,
            f"feature '{name}' is named like a column genre writes")


@pytest.mark.parametrize("name", ["status", "h_probability"])
def test_fit_refuses_a_feature_named_like_an_output_column(work, name):
    pd.read_csv(work / "data.csv").rename(columns={"job": name}).to_csv(work / "d.csv",
                                                                        index=False)
    path = renamed_schema(work, name)
    refused(["fit", "--data", "d.csv", "--schema", path.name, "--out", "m"], work, path.name,
            f"feature '{name}' is named like a column")


def test_model_load_refuses_a_feature_named_person(work, tiny_model):
    model = copy_model(tiny_model, work / "model")
    cfg = json.loads((model / "config.json").read_text())
    feats = cfg["schema"]["features"]
    cfg["schema"]["features"] = {("person" if k == "job" else k): v for k, v in feats.items()}
    (model / "config.json").write_text(json.dumps(cfg))
    resign(model)
    (work / "p.csv").write_text("age,income,person\n30,50.0,a\n")
    refused(["recourse", "--model", "model", "--input", "p.csv", "--output", "out.csv"], work,
            "model/config.json", "feature 'person' is named like a column")


def test_recourse_refuses_an_id_named_like_an_output_column(work, tiny_model):
    refused(recourse_args(tiny_model, "--output", "out.csv", "--id", "status"), work, "in.csv",
            "id column 'status' is named like a column genre writes")


def test_schema_refuses_an_id_named_like_a_changes_column(work):
    (work / "s.yaml").write_text("id: feature\n" + SCHEMA)
    refused(["schema", "check", "s.yaml"], work, "s.yaml", "id column 'feature' is named like")


def test_schema_infer_refuses_a_column_named_cost(work):
    pd.read_csv(work / "data.csv").rename(columns={"income": "cost"}).to_csv(
        work / "d.csv", index=False)
    refused(["schema", "infer", "d.csv", "--target", "ok", "--out", "s.yaml"], work, "d.csv",
            "feature 'cost' is named like a column")


def test_the_reserved_set_covers_every_output_column():
    assert set(META_COLUMNS) <= set(RESERVED_COLUMNS)
    assert set(CHANGE_COLUMNS) <= set(RESERVED_ID_COLUMNS)


# ------------------------------------------------------------- 5. spreadsheet formulas
RISKY_IDS = ['=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "@SUM(1+1)",
             "-2+3", "\tTAB"]
FORMULAS = {"job": {"a": "=1+2", "b": "+A1", "c": "@SUM(A1)"}}


def cells(path: Path, column: str) -> list[str]:
    with path.open(newline="") as fh:
        return [row[column] for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def formula_model(tmp_path_factory) -> Path:
    """A tiny GenRe whose categories (from the training data) look like formulas."""
    from genre.core.usertask import build_user_task
    from genre.data.schema import Schema

    root = tmp_path_factory.mktemp("formula")
    data = people().replace(FORMULAS)
    (root / "schema.yaml").write_text(SCHEMA)
    task = build_user_task(data, Schema.from_yaml(root / "schema.yaml"), seed=0, h_epochs=40)
    return GenRe(**TINY).fit(task).save(root / "model")


def test_ids_that_are_formulas_are_neutralised(work, tiny_model):
    table = people(len(RISKY_IDS), seed=3).drop(columns="ok")
    table.insert(0, "ref", RISKY_IDS)
    table.to_csv(work / "ids.csv", index=False)
    ok(["recourse", "--model", tiny_model, "--input", "ids.csv", "--output", "out.csv",
        "--changes", "changes.csv", "--id", "ref"])
    written = cells(work / "out.csv", "ref")
    assert written == ["'" + v for v in RISKY_IDS]
    assert all(not v.startswith(FORMULA_PREFIXES) for v in cells(work / "changes.csv", "ref"))


def test_categories_that_are_formulas_are_neutralised(work, formula_model):
    people(40, seed=4).drop(columns="ok").replace(FORMULAS).to_csv(work / "f.csv", index=False)
    ok(["recourse", "--model", formula_model, "--input", "f.csv", "--output", "out.csv",
        "--changes", "changes.csv"])
    assert set(cells(work / "out.csv", "job")) <= {"'=1+2", "'+A1", "'@SUM(A1)"}
    moved = cells(work / "changes.csv", "from") + cells(work / "changes.csv", "to")
    assert moved and not any(v.startswith(FORMULA_PREFIXES) for v in moved)


def test_raw_csv_writes_text_as_it_is(work, formula_model):
    people(10, seed=4).drop(columns="ok").replace(FORMULAS).to_csv(work / "f.csv", index=False)
    ok(["recourse", "--model", formula_model, "--input", "f.csv", "--output", "out.csv",
        "--raw-csv"])
    assert "=1+2" in cells(work / "out.csv", "job")


def test_parquet_outputs_keep_the_values(work, formula_model):
    pytest.importorskip("pyarrow")
    people(10, seed=4).drop(columns="ok").replace(FORMULAS).to_csv(work / "f.csv", index=False)
    ok(["recourse", "--model", formula_model, "--input", "f.csv", "--output", "out.parquet"])
    assert "=1+2" in set(pd.read_parquet(work / "out.parquet")["job"])


# ------------------------------------------------------------- 6. numbers from users
@pytest.mark.parametrize(("option", "value"), [
    ("--best-k", "0"), ("--best-k", "-1"), ("--best-k", "1000000000"),
    ("--seed", str(2**64)), ("--seed", "-1"), ("--options", "0"), ("--options", "1000000"),
    ("--chunk-size", "0"), ("--ray-workers", "0")])
def test_recourse_numbers_out_of_range(work, tiny_model, option, value):
    refused(recourse_args(tiny_model, "--output", "out.csv", option, value), work, option,
            "must be a whole number from")


def test_fit_seed_out_of_range(work):
    refused(["fit", "--data", "data.csv", "--schema", "schema.yaml", "--out", "m", "--seed",
             str(2**64)], work, "--seed", "must be a whole number from 0")


@pytest.mark.parametrize("cell", ["1e30", "99999999999999999999999"])
def test_an_integer_cell_beyond_what_integers_hold(work, tiny_model, cell):
    (work / "big.csv").write_text(f"age,income,job\n30,50.0,a\n{cell},50.0,b\n")
    refused(["recourse", "--model", tiny_model, "--input", "big.csv", "--output", "out.csv"],
            work, "big.csv", "column 'age', line 3: value 1e+")


def test_stream_recourse_checks_the_seed(work, tiny_model):
    with pytest.raises(InputError, match="seed must be a whole number"):
        stream_recourse(GenRe.load(tiny_model), work / "in.csv", work / "out.csv", seed=2**64)
    assert not (work / "out.csv").exists()


@pytest.mark.parametrize("request_numbers", [{"seed": 2**64}, {"best_k": 0}, {"options": 101},
                                             {"seed": 1.5}, {"best_k": True}])
def test_the_request_check_the_service_shares(request_numbers):
    with pytest.raises(InputError, match="must be a whole number"):
        check_request(**request_numbers)
    assert check_request(seed=2**63 - 1, best_k=10_000, options=100) == (2**63 - 1, 10_000, 100)


def test_evaluate_seed_out_of_range(work):
    refused(["evaluate", "--dataset", "compas", "--method", "nnr", "--seed", str(2**64)], work,
            "--seed", "must be a whole number from 0")


@pytest.mark.parametrize(("value", "integer", "expected"), [
    (10**30, True, "beyond +-2**53"), (10**400, False, "401-digit number is beyond"),
    (float("nan"), False, "expected a finite number"), (1e39, False, "beyond +-3.4e38"),
    ("abc", False, "expected a number")])
def test_check_cell_for_request_values(value, integer, expected):
    from genre.utils.limits import check_cell

    with pytest.raises(InputError, match=expected.replace("+", r"\+").replace("*", r"\*")):
        check_cell(value, "age", integer=integer, where="request")
    assert check_cell(2**53, "age", integer=True) == 2.0**53


@pytest.mark.parametrize(("line", "expected"), [
    ("  age: {type: categorical, categories: [1, !!float .nan]}",
     "labels or numbers (finite ones)"),
    ("  age: {type: numeric, min: " + "9" * 5000 + "}", "line 4, column 29"),
    ("  age: {type: numeric, min: !!int 'abc'}", "line 4, column 29"),
    ("  age: {type: categorical, categories: [!!timestamp 2020-13-01]}", "line 4, column 41"),
    ("  age: {type: numeric, cost: " + "9" * 400 + "}", "cost must be a finite number"),
    ("max_changes: " + "9" * 30, "max_changes must be at most")])
def test_yaml_numbers_beyond_their_types(work, line, expected):
    text = (line + "\n" + SCHEMA if line.startswith("max_changes") else
            SCHEMA.replace("  age:    {type: numeric, integer: true}", line))
    (work / "s.yaml").write_text(text)
    refused(["schema", "check", "s.yaml"], work, "s.yaml", expected)


# ------------------------------------------------ 9. lines, names, temp files, leftovers
def test_lines_are_counted_across_quoted_line_breaks(work, tiny_model):
    text = ('note,age,income,job\n"first\nsecond",30,50.0,a\n"x",31,51.0,b\n'
            '"a\n\nb",32,52.0,c\nplain,abc,53.0,a\n')
    (work / "q.csv").write_text(text)
    refused(["recourse", "--model", tiny_model, "--input", "q.csv", "--output", "out.csv",
             "--id", "note"], work, "q.csv", "column 'age', line 8: expected a number")


def test_lines_are_counted_across_blank_lines(work, tiny_model):
    (work / "b.csv").write_text("age,income,job\n\n30,50.0,a\n   \n\n31,x,b\n")
    refused(["recourse", "--model", tiny_model, "--input", "b.csv", "--output", "out.csv"],
            work, "b.csv", "column 'income', line 6: expected a number")


def test_read_table_counts_blank_lines_too(work):
    table = pd.read_csv(work / "data.csv")
    text = (work / "data.csv").read_text().splitlines()
    text[5] = text[5].replace(str(table.income[4]), "oops", 1)
    (work / "d.csv").write_text("\n\n".join(text[:3]) + "\n" + "\n".join(text[3:]) + "\n")
    refused(["schema", "check", "schema.yaml", "--data", "d.csv"], work, "d.csv",
            "column 'income', line 8: expected a number")


def test_a_line_break_in_a_file_name_cannot_forge_an_error_line(work, tiny_model):
    name = "in\nerror: all is fine.csv"
    (work / name).write_text("age,income,job\n30,abc,a\n")
    out = refused(["recourse", "--model", tiny_model, "--input", name, "--output", "out.csv"],
                  work, "in\\nerror: all is fine.csv", "expected a number")
    assert len(out.strip().splitlines()) == 1


def test_output_names_up_to_255_bytes_work(work, tiny_model):
    name = "o" * 251 + ".csv"
    ok(recourse_args(tiny_model, "--output", name))
    assert (work / name).is_file() and not list(work.glob(".o*"))


def test_a_model_directory_named_with_255_bytes_is_saved(work, tiny_model):
    name = "m" * 255
    with atomic_dir(name) as tmp:
        shutil.copytree(tiny_model, tmp, dirs_exist_ok=True)
    GenRe.load(work / name)


def test_an_output_name_over_255_bytes_is_refused_first(work, tiny_model):
    refused(recourse_args(tiny_model, "--output", "o" * 300 + ".csv"), work, "ooo",
            "a file name may take at most 255")


def test_a_path_over_path_max_leaves_no_directories(work, tiny_model):
    deep = "/".join(["d" * 200] * 22) + "/out.csv"
    refused(recourse_args(tiny_model, "--output", deep), work, "ddd",
            "at most 4,095 are allowed")


def test_fit_checks_the_out_name_before_training(work, monkeypatch):
    import genre.core.estimator

    monkeypatch.setattr(genre.core.estimator.GenRe, "fit", lambda *a, **k: pytest.fail("trained"))
    refused(["fit", "--data", "data.csv", "--schema", "schema.yaml", "--out", "m" * 300], work,
            "mmm", "a file name may take at most 255")


def test_leftovers_of_a_killed_run_are_cleaned_by_the_next(work, tiny_model):
    dead = work / f".out.csv.genre-{dead_pid()}-abcd_123.tmp"
    live = work / f".out.csv.genre-{os.getpid()}-abcd_123.tmp"
    other = work / ".out.csv.mine.tmp"  # not a name genre makes: left alone
    for path in (dead, live, other):
        path.write_text("half a file\n")
    ok(recourse_args(tiny_model, "--output", "out.csv"))
    assert not dead.exists() and live.exists() and other.exists()


def test_a_model_set_aside_by_a_killed_run_is_put_back(work, tiny_model):
    aside = work / f".model.genre-{dead_pid()}-abcdefgh.old"
    shutil.copytree(tiny_model, aside)
    assert clean_leftovers(work / "model") == [aside]
    assert not aside.exists()
    GenRe.load(work / "model")


def test_a_full_disk_while_saving_is_one_line(work, monkeypatch):
    from safetensors import SafetensorError

    import genre.core.presets
    import genre.core.saving
    import genre.core.usertask

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(genre.core.presets, "genre_for", lambda *a, **k: GenRe(**TINY))
    monkeypatch.setattr(genre.core.usertask, "build_user_task",
                        functools.partial(genre.core.usertask.build_user_task, h_epochs=20))
    monkeypatch.setattr(genre.core.saving, "save_file", full)
    refused(["fit", "--data", "data.csv", "--schema", "schema.yaml", "--out", "m"], work, "m",
            "No space left on device")


def test_formula_cells_are_neutralised_numbers_are_not():
    from genre.tables.writers import neutralise_formulas

    df = pd.DataFrame({"t": ["\rCR", "=1", "plain", None, 5], "n": [-1, 2, 3, 4, 5]})
    out = neutralise_formulas(df)
    assert out["t"].tolist()[:3] == ["'\rCR", "'=1", "plain"] and out["n"].tolist()[0] == -1
    numbers = df[["n"]]
    assert neutralise_formulas(numbers) is numbers  # nothing to change: no copy


def test_check_outputs_refuses_long_names_with_output_error(work):
    from genre.io import check_outputs

    with pytest.raises(OutputError, match="at most 255"):
        check_outputs(["x" * 256])


# ------------------------------------------------------------------ 10. --validate-first
def with_bad_last_row(work: Path, n: int = 1100) -> Path:
    table = people(n, seed=5).drop(columns="ok").astype({"income": object})
    table.loc[n - 1, "income"] = "n/a"
    table.to_csv(work / "long.csv", index=False)
    return work / "long.csv"


def test_validate_first_finds_a_bad_last_row_before_answering(work, tiny_model, monkeypatch):
    with_bad_last_row(work)
    monkeypatch.setattr(GenRe, "generate", lambda *a, **k: pytest.fail("answered a row"))
    monkeypatch.setattr(GenRe, "options", lambda *a, **k: pytest.fail("answered a row"))
    refused(["recourse", "--model", tiny_model, "--input", "long.csv", "--output", "out.csv",
             "--validate-first"], work, "long.csv", "column 'income', line 1101")


def test_validate_first_gives_the_same_answers(work, tiny_model):
    ok(recourse_args(tiny_model, "--output", "a.csv"))
    ok(recourse_args(tiny_model, "--output", "b.csv", "--validate-first"))
    assert (work / "a.csv").read_bytes() == (work / "b.csv").read_bytes()
    assert np.isfinite(pd.read_csv(work / "a.csv")["h_probability"]).all()
