"""Streaming recourse: chunked output equals recourse_table block by block, whatever the
chunk size; a bad row late in the file names its line and leaves no output; Parquet."""

import io
import re

import numpy as np
import pandas as pd
import pytest

from genre.core.estimator import GenRe
from genre.errors import InputError
from genre.io import read_table
from genre.tables.recourse import recourse_table
from genre.tables.streaming import SEED_BLOCK, stream_recourse

TINY = dict(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=32, max_epochs=4,
            patience=4, batch_size=256, k=50, progress=False, best_k=4, sampler="autoregressive")
N_ROWS = 2 * SEED_BLOCK + 345  # three seed blocks, the last one short


@pytest.fixture(scope="module")
def model(compas):
    return GenRe(**TINY).fit(compas.task())


@pytest.fixture(scope="module")
def people(compas):
    """Test rows of compas (rejected and accepted ones), tiled to N_ROWS, with the target."""
    rows = compas.dataset.test
    return pd.concat([rows] * (N_ROWS // len(rows) + 1), ignore_index=True).iloc[:N_ROWS]


@pytest.fixture(scope="module")
def people_csv(people, tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "people.csv"
    people.to_csv(path, index=False)
    return path


def expected(model, table: pd.DataFrame, seed: int, **kwargs):
    """recourse_table on each SEED_BLOCK block of the table (every record with its own
    random stream from the seed)."""
    profiles, diffs = [], []
    for start in range(0, len(table), SEED_BLOCK):
        p, d = recourse_table(model, table.iloc[start:start + SEED_BLOCK],
                              seed=seed, start=start, **kwargs)
        profiles.append(p)
        diffs.append(d)
    return pd.concat(profiles, ignore_index=True), pd.concat(diffs, ignore_index=True)


@pytest.mark.parametrize("chunk_size", [700, 50_000])
def test_chunked_equals_recourse_table_per_block(model, people_csv, tmp_path, chunk_size):
    out, changes = tmp_path / "out.csv", tmp_path / "changes.csv"
    counts = stream_recourse(model, people_csv, out, seed=3, chunk_size=chunk_size,
                             changes_path=changes, progress=False)
    want, want_diff = expected(model, read_table(people_csv), seed=3, source=str(people_csv))
    got = pd.read_csv(out)
    pd.testing.assert_frame_equal(got, pd.read_csv(io.StringIO(
        want.to_csv(index=False))))
    pd.testing.assert_frame_equal(pd.read_csv(changes), pd.read_csv(io.StringIO(
        want_diff.to_csv(index=False))))
    # person = 0-based row index of the input file (the first data row is person 0)
    np.testing.assert_array_equal(got["person"], np.arange(N_ROWS))
    assert counts["people"] == counts["rows"] == N_ROWS
    assert counts["changes"] == len(want_diff)
    assert sum(counts[s] for s in ("recourse", "none found", "already accepted")) == N_ROWS
    assert counts["recourse"] > 0 and counts["already accepted"] > 0
    assert set(counts["preview"]["person"]) <= set(want_diff["person"])
    assert counts["preview"]["person"].nunique() == min(10, want_diff["person"].nunique())


def test_result_does_not_depend_on_chunk_size(model, people_csv, tmp_path):
    texts = set()
    for chunk_size in (333, SEED_BLOCK, 10**6):
        out = tmp_path / f"out{chunk_size}.csv"
        stream_recourse(model, people_csv, out, seed=1, chunk_size=chunk_size,
                        progress=False)
        texts.add(out.read_text())
    assert len(texts) == 1
    # One row at a time (on a prefix of the file: it is slow) gives the same as 17 rows.
    small, out = tmp_path / "small.csv", tmp_path / "out.csv"
    read_table(people_csv).iloc[:40].to_csv(small, index=False)
    stream_recourse(model, small, out, seed=1, chunk_size=1, progress=False)
    one_by_one = out.read_text()
    stream_recourse(model, small, out, seed=1, chunk_size=17, progress=False)
    assert out.read_text() == one_by_one


def test_small_file_matches_one_recourse_table_call(model, people, tmp_path):
    src, out = tmp_path / "few.csv", tmp_path / "out.csv"
    people.iloc[:50].to_csv(src, index=False)
    stream_recourse(model, src, out, options=2, seed=5, chunk_size=7, progress=False)
    want, _ = recourse_table(model, read_table(src), options=2, seed=5)
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(io.StringIO(
        want.to_csv(index=False))))


def test_bad_row_late_in_the_file_names_its_line_and_leaves_no_output(model, people,
                                                                        tmp_path):
    bad = people.copy()
    bad.loc[2 * SEED_BLOCK + 100, "race"] = "Martian"  # file line 2 * SEED_BLOCK + 102
    src = tmp_path / "bad.csv"
    bad.to_csv(src, index=False)
    out, changes = tmp_path / "out.csv", tmp_path / "changes.csv"
    with pytest.raises(InputError) as err:
        stream_recourse(model, src, out, chunk_size=300, changes_path=changes,
                        progress=False)
    assert f"column 'race', line {2 * SEED_BLOCK + 102}: unknown category 'Martian'" \
        in str(err.value)
    assert str(src) in str(err.value)
    assert not out.exists() and not changes.exists()
    assert list(tmp_path.glob(".*.tmp")) == []  # no temporary file left either
    bad = people.copy()
    bad["age"] = bad["age"].astype(object)
    bad.loc[N_ROWS - 1, "age"] = "old"
    bad.to_csv(src, index=False)
    with pytest.raises(InputError, match=f"column 'age', line {N_ROWS + 1}: expected a number"):
        stream_recourse(model, src, out, chunk_size=500, progress=False)
    assert not out.exists()


def test_header_is_checked_before_any_row(model, people, tmp_path):
    out = tmp_path / "out.csv"
    src = tmp_path / "in.csv"
    cases = [
        (people.drop(columns="race"), "missing columns ['race']"),
        (people.assign(shoe_size=42), "unexpected columns ['shoe_size']"),
    ]
    for table, message in cases:
        table.to_csv(src, index=False)
        with pytest.raises(InputError, match=re.escape(f"{src}: {message}")):
            stream_recourse(model, src, out, progress=False)
    text = people.iloc[:3].to_csv(index=False).splitlines()
    src.write_text("\n".join(["age," + text[0]] + ["1," + line for line in text[1:]]) + "\n")
    with pytest.raises(InputError, match="duplicate columns \\['age'\\]"):
        stream_recourse(model, src, out, progress=False)
    src.write_text("")
    with pytest.raises(InputError, match="the file is empty"):
        stream_recourse(model, src, out, progress=False)
    src.write_text(text[0] + "\n")
    with pytest.raises(InputError, match="has a header but no data rows"):
        stream_recourse(model, src, out, progress=False)
    with pytest.raises(InputError, match="no such file"):
        stream_recourse(model, tmp_path / "nope.csv", out, progress=False)
    assert not out.exists()


def test_parquet_input(model, people, tmp_path):
    pytest.importorskip("pyarrow")
    src, out, ref = tmp_path / "people.parquet", tmp_path / "out.csv", tmp_path / "ref.csv"
    table = people.iloc[:SEED_BLOCK + 200]
    table.to_parquet(src)  # with a stored (RangeIndex) pandas index
    counts = stream_recourse(model, src, out, seed=2, chunk_size=256, progress=False)
    want, _ = expected(model, read_table(src), seed=2)
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(io.StringIO(
        want.to_csv(index=False))))
    assert counts["people"] == len(table)
    np.testing.assert_array_equal(pd.read_csv(out)["person"], np.arange(len(table)))
    # The same rows from a CSV give the same profiles, persons numbered the same way.
    table.to_csv(tmp_path / "people.csv", index=False)
    stream_recourse(model, tmp_path / "people.csv", ref, seed=2, chunk_size=999,
                    progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(ref))
    bad = table.copy()
    bad.iloc[SEED_BLOCK + 5, bad.columns.get_loc("sex")] = "Martian"
    bad.to_parquet(src, index=False)
    with pytest.raises(InputError, match=f"column 'sex', row {SEED_BLOCK + 5}: unknown"):
        stream_recourse(model, src, out, chunk_size=256, progress=False)
    table.drop(columns="sex").to_parquet(src)
    with pytest.raises(InputError, match="missing columns \\['sex'\\]"):
        stream_recourse(model, src, out, progress=False)
