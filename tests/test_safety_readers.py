"""Hostile input to the readers (issue 11): every file is made here, every refusal is exit 2
with one line naming the file, no traceback, and no file created or changed. Plus a
Hypothesis fuzz of the CSV, Parquet and YAML readers: success or a GenreError, never
another exception."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from genre.cli import app
from genre.core.estimator import GenRe
from genre.core.usertask import build_user_task
from genre.data import Encoder
from genre.data.schema import Schema
from genre.data.schema_file import MAX_SCHEMA_BYTES
from genre.errors import GenreError, InputError, SchemaError
from genre.io import MAX_COLUMNS, read_table

runner = CliRunner()

SCHEMA = """\
target: y
favourable: 1
features:
  a: {type: numeric}
  b: {type: categorical}
"""
TINY = dict(gamma=0.5, d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=32, max_epochs=2,
            patience=2, batch_size=256, k=20, progress=False, best_k=4, sampler="autoregressive")


def table(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    a = rng.normal(10, 3, n).round(3)
    b = rng.choice(["red", "blue"], n)
    return pd.DataFrame({"a": a, "b": b, "y": ((a > 10) ^ (b == "red")).astype(int)})


def snapshot(folder) -> dict[str, str]:
    """Every file under `folder` (hidden ones too) with its sha256."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(args: list, folder, names, *expected: str, seconds: float | None = None) -> str:
    """Run the CLI; assert exit 2, one line naming `names` and `expected`, no traceback,
    nothing under `folder` created or changed (and, given `seconds`, that it was quick)."""
    before = snapshot(folder)
    t0 = time.perf_counter()
    result = runner.invoke(app, [str(a) for a in args])
    elapsed = time.perf_counter() - t0
    out = result.output
    assert result.exit_code == 2, out
    assert "Traceback" not in out and isinstance(result.exception, SystemExit)
    assert len(out.strip().splitlines()) == 1, out
    assert str(names) in out, out
    for text in expected:
        assert text in out, out
    assert snapshot(folder) == before
    if seconds is not None:
        assert elapsed < seconds, f"took {elapsed:.2f} s"
    return out


@pytest.fixture
def schema_file(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text(SCHEMA)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny GenRe on `table()` (schema SCHEMA), saved."""
    path = tmp_path_factory.mktemp("model") / "model"
    schema = Schema.from_yaml(_write(tmp_path_factory.mktemp("s") / "schema.yaml", SCHEMA))
    task = build_user_task(table(300), schema, h_epochs=60)
    GenRe(**TINY).fit(task).save(path)
    return path


def _write(path, text):
    path.write_text(text)
    return path


def parquet(path, **columns) -> None:
    pq.write_table(pa.table(columns), path)


# ================================================================= YAML schema files
def billion_laughs(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\ntarget: y\nfeatures: {a: {type: numeric}}\n"


def test_billion_laughs_fails_fast(tmp_path):
    bad = _write(tmp_path / "laughs.yaml", billion_laughs(9))
    refused(["schema", "check", bad], tmp_path, bad, "line 2, column", "aliases (*l0)",
            seconds=1.0)


def test_merge_keys_need_aliases_and_are_refused(tmp_path):
    bad = _write(tmp_path / "merge.yaml", "base: &base {type: numeric}\ntarget: y\n"
                 "features:\n  a: {<<: *base, min: 0}\n")
    refused(["schema", "check", bad], tmp_path, bad, "line 4", "aliases (*base)")


@pytest.mark.parametrize("opening, closing", [("[", "]"), ("{a: ", "}")])
def test_deep_nesting_is_refused_without_recursion_error(tmp_path, opening, closing):
    bad = _write(tmp_path / "deep.yaml",
                 "target: y\nfeatures: " + opening * 10_000 + closing * 10_000 + "\n")
    out = refused(["schema", "check", bad], tmp_path, bad, "line 2", "nested more than 20",
                  seconds=2.0)
    assert "RecursionError" not in out


def test_oversized_schema_file_is_refused_unread(tmp_path):
    bad = _write(tmp_path / "big.yaml", "target: y\nfeatures:\n" + "".join(
        f"  f{i}: {{type: numeric}}\n" for i in range(100_000)))
    assert bad.stat().st_size > 2 * MAX_SCHEMA_BYTES * 0.95
    refused(["schema", "check", bad], tmp_path, bad, "larger than 1,048,576 bytes", seconds=1.0)


@pytest.mark.parametrize("bounds, key", [("min: .nan, max: .inf", "'min'"),
                                         ("min: 0, max: .inf", "'max'"),
                                         ("min: -.inf", "'min'"),
                                         ("max: 1e300", "'max'"),
                                         ("min: -1" + "0" * 400, "'min'")])
def test_bounds_must_be_finite_float32(tmp_path, bounds, key):
    bad = _write(tmp_path / "bounds.yaml",
                 f"target: y\nfeatures:\n  income: {{type: numeric, {bounds}}}\n")
    refused(["schema", "check", bad], tmp_path, bad, "feature 'income'", key, "finite")


def test_nan_bounds_refused_by_fit_too(tmp_path):
    data = tmp_path / "d.csv"
    table().to_csv(data, index=False)
    bad = _write(tmp_path / "s.yaml", SCHEMA.replace("{type: numeric}",
                                                     "{type: numeric, min: .nan}"))
    refused(["fit", "--data", data, "--schema", bad, "--out", tmp_path / "m"], tmp_path, bad,
            "feature 'a'")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("categories, shown", [("[salaried, 'salaried ']", "'salaried '"),
                                               ("[0, 0.0]", "0.0"),
                                               ("[1, '1']", "'1'"),
                                               ("[true, 'True']", "'True'")])
def test_categories_colliding_after_normalisation(tmp_path, categories, shown):
    bad = _write(tmp_path / "s.yaml", SCHEMA.replace("{type: categorical}",
                                                     f"{{type: categorical, categories: "
                                                     f"{categories}}}"))
    refused(["schema", "check", bad], tmp_path, bad, "feature 'b'", shown, "same value")
    data = tmp_path / "d.csv"
    table().to_csv(data, index=False)
    refused(["fit", "--data", data, "--schema", bad, "--out", tmp_path / "m"], tmp_path, bad)


def test_dates_in_yaml_stay_labels(tmp_path):
    """`2020-13-45` used to be a ValueError inside the YAML timestamp constructor."""
    path = _write(tmp_path / "s.yaml", "target: y\nfavourable: 2020-13-45\nfeatures:\n"
                  "  d: {type: categorical, categories: [2020-01-01, 2021-01-01]}\n")
    schema = Schema.from_yaml(path)
    assert schema.favourable == "2020-13-45"
    assert schema["d"].categories == ("2020-01-01", "2021-01-01")


# ======================================================================== CSV tables
def wide_header(path, n: int = 1_000_000) -> None:
    path.write_text(",".join(f"c{i}" for i in range(n)) + "\n" + ",".join(["1"] * n) + "\n")


def test_million_column_header_fails_fast(tmp_path, schema_file):
    wide = tmp_path / "wide.csv"
    wide_header(wide)
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="more than"):
        read_table(wide)
    assert time.perf_counter() - t0 < 2.0
    refused(["schema", "check", schema_file, "--data", wide], tmp_path, wide,
            f"at most {MAX_COLUMNS:,}", seconds=3.0)


def test_million_column_header_to_recourse(tmp_path, model_dir):
    wide = tmp_path / "wide.csv"
    wide_header(wide)
    out = tmp_path / "out.csv"
    refused(["recourse", "--model", model_dir, "--input", wide, "--output", out], tmp_path,
            wide, "columns")
    assert not out.exists()


def test_long_header_row_is_refused(tmp_path, schema_file):
    bad = tmp_path / "long.csv"
    bad.write_text("a" * (2 << 20) + ",b,y\n1,red,0\n")
    refused(["schema", "check", schema_file, "--data", bad], tmp_path, bad,
            "longer than 1,048,576 bytes")


def test_just_under_the_column_limit_is_read(tmp_path):
    path = tmp_path / "ok.csv"
    wide_header(path, MAX_COLUMNS)
    assert read_table(path).shape == (1, MAX_COLUMNS)
    wide_header(path, MAX_COLUMNS + 1)
    with pytest.raises(InputError, match="10,001 columns"):
        read_table(path)


@pytest.mark.parametrize("header", ["a,b,a,y", "a,b, a,y"])
def test_duplicate_columns(tmp_path, schema_file, model_dir, header):
    bad = tmp_path / "dup.csv"
    bad.write_text(header + "\n1,red,2,0\n")
    refused(["schema", "check", schema_file, "--data", bad], tmp_path, bad,
            "duplicate columns ['a']")
    out = tmp_path / "out.csv"
    refused(["recourse", "--model", model_dir, "--input", bad, "--output", out], tmp_path, bad,
            "duplicate columns ['a']")


@pytest.mark.parametrize("cell", ["1e300", "-4e38"])
def test_numbers_beyond_float32_are_refused(tmp_path, schema_file, model_dir, cell):
    bad = tmp_path / "huge.csv"
    bad.write_text(table(6).to_csv(index=False).replace("\n", f"\n{cell},red,1\n", 1))
    where = "column 'a', line 2"
    refused(["schema", "check", schema_file, "--data", bad], tmp_path, bad, where, "float32")
    refused(["fit", "--data", bad, "--schema", schema_file, "--out", tmp_path / "m"], tmp_path,
            bad, where, "float32")
    out = tmp_path / "out.csv"
    refused(["recourse", "--model", model_dir, "--input", bad, "--output", out], tmp_path, bad,
            where, "float32")


@pytest.mark.parametrize("target, expected", [([0, 0, 2], "no row of target 'y' is favourable"),
                                              ([1, 1, 1], "is unfavourable")])
def test_schema_check_data_needs_favourable_in_target(tmp_path, schema_file, target, expected):
    bad = tmp_path / "d.csv"
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["red"] * 3, "y": target}).to_csv(bad, index=False)
    refused(["schema", "check", schema_file, "--data", bad], tmp_path, bad, expected)


def test_schema_check_data_accepts_a_good_table(tmp_path, schema_file):
    data = tmp_path / "d.csv"
    table().to_csv(data, index=False)
    result = runner.invoke(app, ["schema", "check", str(schema_file), "--data", str(data)])
    assert result.exit_code == 0 and "OK" in result.output
    without_target = tmp_path / "people.csv"
    table().drop(columns="y").to_csv(without_target, index=False)
    result = runner.invoke(app, ["schema", "check", str(schema_file), "--data",
                                 str(without_target)])
    assert result.exit_code == 0, result.output


# ===================================================================== Parquet tables
N = 6
ODD_COLUMNS = {
    "datetime": (lambda: pa.array([dt.datetime(2020, 1, 1 + i) for i in range(N)]),
                 "timestamp"),
    "timedelta": (lambda: pa.array([dt.timedelta(days=i) for i in range(N)]), "duration"),
    "list": (lambda: pa.array([[i, i] for i in range(N)]), "list"),
    "struct": (lambda: pa.array([{"x": i} for i in range(N)]), "struct"),
    "binary": (lambda: pa.array([b"\x00\x01"] * N), "binary"),
    "date": (lambda: pa.array([dt.date(2020, 1, 1 + i) for i in range(N)]), "date32"),
}


def _people(a) -> dict:
    return {"a": a, "b": pa.array(["red", "blue"] * (N // 2)), "y": pa.array([0, 1] * (N // 2))}


@pytest.mark.parametrize("kind", sorted(ODD_COLUMNS))
def test_parquet_column_types_no_feature_holds(tmp_path, schema_file, kind):
    make, arrow_name = ODD_COLUMNS[kind]
    bad = tmp_path / f"{kind}.parquet"
    parquet(bad, **_people(make()))
    refused(["schema", "check", schema_file, "--data", bad], tmp_path, bad, "column 'a'",
            arrow_name)
    refused(["fit", "--data", bad, "--schema", schema_file, "--out", tmp_path / "m"], tmp_path,
            bad, "column 'a'")


def test_parquet_datetime_refused_by_recourse_before_any_row(tmp_path, model_dir):
    bad = tmp_path / "income.parquet"
    parquet(bad, **_people(ODD_COLUMNS["datetime"][0]()))
    out = tmp_path / "out.csv"
    refused(["recourse", "--model", model_dir, "--input", bad, "--output", out], tmp_path, bad,
            "column 'a'", "timestamp")
    assert not out.exists()


def test_parquet_bool_as_number_is_refused(tmp_path, schema_file, model_dir):
    bad = tmp_path / "bool.parquet"
    parquet(bad, **_people(pa.array([True, False] * (N // 2))))
    refused(["schema", "check", schema_file, "--data", bad], tmp_path, bad, "column 'a'",
            "booleans")
    refused(["fit", "--data", bad, "--schema", schema_file, "--out", tmp_path / "m"], tmp_path,
            bad, "column 'a'", "booleans")
    refused(["recourse", "--model", model_dir, "--input", bad, "--output", tmp_path / "o.csv"],
            tmp_path, bad, "column 'a'", "booleans")


def test_parquet_bool_and_int_categories_are_fine(tmp_path):
    schema = _write(tmp_path / "s.yaml", "target: y\nfeatures:\n  a: {type: numeric}\n"
                    "  b: {type: categorical, categories: [false, true]}\n"
                    "  c: {type: categorical, categories: [1, 2]}\n")
    good = tmp_path / "ok.parquet"
    pq.write_table(pa.table({"a": pa.array([1.5, 2, 3, 4], pa.float32()),
                             "b": pa.array([True, False, True, False]),
                             "c": pa.array([1, 2, 2, 1], pa.int8()).dictionary_encode(),
                             "y": pa.array([0, 1, 0, 1])}), good)
    result = runner.invoke(app, ["schema", "check", str(schema), "--data", str(good)])
    assert result.exit_code == 0, result.output


def test_parquet_duplicate_columns(tmp_path, schema_file, model_dir):
    bad = tmp_path / "dup.parquet"
    pq.write_table(pa.table([pa.array([1.0] * N), pa.array([2.0] * N),
                             pa.array(["red"] * N), pa.array([0, 1] * (N // 2))],
                            names=["a", "a", "b", "y"]), bad)
    refused(["schema", "check", schema_file, "--data", bad], tmp_path, bad,
            "duplicate columns ['a']")
    refused(["recourse", "--model", model_dir, "--input", bad, "--output", tmp_path / "o.csv"],
            tmp_path, bad, "duplicate columns ['a']")


def test_csv_that_is_not_utf8(tmp_path, schema_file):
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("a,b,y\n1,caf\xe9,0\n".encode("latin-1"))
    refused(["schema", "check", schema_file, "--data", bad], tmp_path, bad, "UTF-8")


def test_corrupt_parquet_is_an_input_error(tmp_path, schema_file, model_dir):
    bad = tmp_path / "corrupt.parquet"
    parquet(bad, **_people(pa.array([1.0] * N)))
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    refused(["schema", "check", schema_file, "--data", bad], tmp_path, bad, "Parquet")
    refused(["recourse", "--model", model_dir, "--input", bad, "--output", tmp_path / "o.csv"],
            tmp_path, bad, "Parquet")


def test_encoder_refuses_dates_given_as_a_dataframe(schema_file):
    """The check also holds where a table does not come from a file (the Python API)."""
    df = table(6)
    df["a"] = pd.date_range("2020-01-01", periods=6)
    with pytest.raises(InputError, match="column 'a' holds dates"):
        Encoder(Schema.from_yaml(schema_file)).fit(df)
    df = table(6).astype({"b": object})
    df.loc[2, "b"] = ["red"]
    with pytest.raises(InputError, match="column 'b' holds values of type list"):
        Encoder(Schema.from_yaml(schema_file)).fit(df)


# ================================================================ fuzz: never a crash
# FUZZ_N=5000 for a longer hunt; no example database, so the tests write nothing outside tmp.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_N", 60)), deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
CSV_TEXT = st.text(alphabet=st.sampled_from(list('ab y,"\n\r 0123456789.e-+naifINF\x00é;\t')),
                   max_size=200)
CSV_TEXT = st.one_of(CSV_TEXT, CSV_TEXT.map(lambda body: "a,b,y\n" + body))  # past the header


@FUZZ
@given(text=CSV_TEXT)
def test_fuzz_csv_reader(tmp_path, schema_file, text):
    path = tmp_path / "fuzz.csv"
    path.write_text(text, encoding="utf-8")
    try:
        df = read_table(path)
        Encoder(Schema.from_yaml(schema_file)).fit(df, source=str(path)).transform(df)
    except GenreError:
        pass


@FUZZ
@given(data=st.binary(max_size=200))
def test_fuzz_csv_reader_bytes(tmp_path, data):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    try:
        read_table(path)
    except InputError:
        pass


ARROW_COLUMNS = st.sampled_from([
    lambda n: pa.array(np.arange(n, dtype=float)),
    lambda n: pa.array(np.full(n, 1e300)),
    lambda n: pa.array(np.full(n, np.nan)),
    lambda n: pa.array(range(n), pa.int64()),
    lambda n: pa.array([True] * n),
    lambda n: pa.array(["red", "blue", None][:1] * n),
    lambda n: pa.array(["x"] * n).dictionary_encode(),
    lambda n: pa.array([None] * n, pa.null()),
    lambda n: pa.array([dt.datetime(2020, 1, 1)] * n),
    lambda n: pa.array([dt.timedelta(1)] * n),
    lambda n: pa.array([[1]] * n),
    lambda n: pa.array([{"x": 1}] * n),
    lambda n: pa.array([b"x"] * n),
])


@FUZZ
@given(cols=st.lists(ARROW_COLUMNS, min_size=1, max_size=4), n=st.integers(0, 4),
       names=st.lists(st.sampled_from(["a", "b", "y", "z"]), min_size=4, max_size=4),
       cut=st.integers(0, 400))
def test_fuzz_parquet_reader(tmp_path, schema_file, cols, n, names, cut):
    path = tmp_path / "fuzz.parquet"
    pq.write_table(pa.table([make(n) for make in cols], names=names[:len(cols)]), path)
    if cut:  # and a damaged copy: the file cut short by `cut` bytes
        path.write_bytes(path.read_bytes()[:-cut])
    try:
        df = read_table(path)
        Encoder(Schema.from_yaml(schema_file)).fit(df, source=str(path)).transform(df)
    except GenreError:
        pass


YAML_TEXT = st.lists(st.sampled_from(
    list("abcty :{}[],-&*!<>|'\"\n#.0123456789") + ["target: ", "features:", "type: ",
                                                   "numeric", "categorical", "categories: ",
                                                   "min: ", "max: ", "  ", "\n  ", ".nan",
                                                   ".inf", "&a ", "*a", "!!python/object ",
                                                   "2020-13-01", "<<: "]),
    max_size=40).map("".join)


@FUZZ
@given(text=YAML_TEXT)
def test_fuzz_yaml_schema_reader(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        Schema.from_yaml(path)
    except SchemaError:
        pass


@FUZZ
@given(extra=st.dictionaries(
    st.sampled_from(["min", "max", "categories", "integer", "monotone", "immutable", "type"]),
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
              st.lists(st.one_of(st.integers(), st.floats(), st.text(max_size=3),
                                 st.booleans()), max_size=4))))
def test_fuzz_yaml_feature_specs(tmp_path, extra):
    """Well-formed YAML with any feature spec: a Schema or a SchemaError."""
    import yaml

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"target": "y", "features": {"a": {"type": "numeric",
                                                                      **extra}}}))
    try:
        Schema.from_yaml(path)
    except SchemaError:
        pass
