"""The Python API in original units: the README example, schemas, genre.fit with a
scikit-learn pipeline, save/load, recourse and changes; `import genre` stays light."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

import genre
from genre.errors import InputError, ModelError

README = Path(__file__).resolve().parents[1] / "README.md"
SRC = Path(__file__).resolve().parents[1] / "src"
TINY = {"max_epochs": 4, "k": 100, "d_model": 16, "n_heads": 2, "n_enc_layers": 1,
        "n_dec_layers": 1, "d_ff": 32, "sampler": "autoregressive"}


def loans(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "applicant_id": [f"A{i:04d}" for i in range(n)],
        "age": rng.integers(18, 70, n),
        "income": np.round(rng.uniform(10, 100, n), 1),
        "job": rng.choice(["none", "part-time", "full-time"], n),
    })
    df["approved"] = (df.income / 100 + 0.4 * (df.job == "full-time")
                      + rng.normal(0, 0.1, n) > 0.8).astype(int)
    return df


def pipeline(df: pd.DataFrame):
    X = df[["age", "income", "job"]]
    return make_pipeline(ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                                            ("cat", OneHotEncoder(), ["job"])]),
                         LogisticRegression()).fit(X, df.approved)


@pytest.fixture(scope="module")
def fitted():
    df = loans()
    schema = genre.Schema.infer(df, target="approved", id_column="applicant_id")
    model = genre.fit(df, schema, classifier=pipeline(df), progress=False, **TINY)
    return df, schema, model


def test_readme_example_runs(tmp_path, monkeypatch):
    text = README.read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "import genre\n" in b]
    assert len(blocks) == 1, "the README has one original-units Python example"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], str(README), "exec"), {"__name__": "readme"})
    assert (tmp_path / "loan-model" / "classifier.skops").is_file()
    assert genre.Schema.from_yaml(tmp_path / "schema.yaml").id_column == "applicant_id"


def test_schema_infer_yaml_round_trip(tmp_path):
    df = loans(50)
    schema = genre.Schema.infer(df, target="approved", id_column="applicant_id")
    assert schema.names == ["age", "income", "job"] and schema.id_column == "applicant_id"
    assert schema.favourable == 1 and schema["age"].integer
    path = tmp_path / "schema.yaml"
    text = schema.to_yaml(path)
    assert path.read_text() == text and "id: applicant_id" in text
    again = genre.Schema.from_yaml(path)
    assert again == schema
    assert again.to_dict() == schema.to_dict()
    with pytest.raises(InputError, match="id column 'nope' not found"):
        genre.Schema.infer(df, target="approved", id_column="nope")


def test_fit_pipeline_save_load_recourse_identical(fitted, tmp_path):
    df, schema, model = fitted
    people = df.drop(columns="approved").iloc[:40]
    result = model.recourse(people, seed=3)
    assert list(result.columns) == ["person", "applicant_id", "age", "income", "job",
                                    "h_probability", "effort", "cost", "plausible",
                                    "status"]
    assert result["person"].tolist() == list(range(40))
    assert (result["applicant_id"] == people["applicant_id"].to_numpy()).all()
    assert set(result["status"]) <= {"recourse", "none found", "already accepted"}
    assert (result["status"] == "recourse").any()
    # integers stay integers; changed decimals carry no float32 noise (inputs have 1 decimal,
    # GenRe's bins decode to training values); unchanged values are exactly the input's.
    assert result["age"].dtype == np.int64
    assert np.allclose(result["income"] * 10, np.rint(result["income"] * 10), atol=1e-9)
    kept = result["status"] != "recourse"
    assert (result.loc[kept, "income"].to_numpy() == people.loc[kept.to_numpy(),
                                                                "income"].to_numpy()).all()
    model.save(tmp_path / "model")
    assert (tmp_path / "model" / "classifier.skops").is_file()
    assert json.loads((tmp_path / "model" / "config.json").read_text())["schema"]["id"] \
        == "applicant_id"
    loaded = genre.load(tmp_path / "model")
    pd.testing.assert_frame_equal(loaded.recourse(people, seed=3), result)
    loaded.save(tmp_path / "again")  # a loaded model (classifier from its file) saves too
    assert (tmp_path / "again" / "classifier.skops").is_file()


def test_changes_lists_exactly_what_differs(fitted):
    df, _, model = fitted
    people = df.drop(columns="approved").iloc[:30]
    result = model.recourse(people, options=2, seed=1)
    diff = genre.changes(people, result)
    assert list(diff.columns) == ["person", "applicant_id", "option", "feature", "from", "to"]
    recoursed = result[result["status"] == "recourse"]
    assert len(diff) and set(diff["person"]) <= set(recoursed["person"])
    for row in diff.itertuples(index=False):
        profile = recoursed[(recoursed["person"] == row.person)
                            & (recoursed["option"] == row.option)].iloc[0]
        assert row.applicant_id == people["applicant_id"].iloc[row.person]
        assert getattr(people.iloc[row.person], row.feature) == row[4]  # from
        assert profile[row.feature] == row.to != row[4]
    # every changed cell of every profile is listed
    n_changed = sum(int((profile[["age", "income", "job"]].to_numpy()
                         != people.iloc[profile["person"]][["age", "income", "job"]]
                         .to_numpy()).sum()) for _, profile in recoursed.iterrows())
    assert n_changed == len(diff)


def test_fit_checks_its_arguments():
    df = loans(80)
    schema = genre.Schema.infer(df, target="approved", id_column="applicant_id")
    with pytest.raises(InputError, match="unknown GenRe parameters \\['max_epoch'\\]"):
        genre.fit(df, schema, max_epoch=3)
    custom = make_pipeline(
        ColumnTransformer([("num", FunctionTransformer(lambda x: x * 2), ["age", "income"]),
                           ("cat", OneHotEncoder(), ["job"])]),
        LogisticRegression()).fit(df[["age", "income", "job"]], df.approved)
    with pytest.raises(ModelError, match="outside the .skops allow-list"):
        genre.fit(df, schema, classifier=custom, progress=False, **TINY)


def test_fit_logs_epochs_without_a_terminal(caplog):
    df = loans(300)
    schema = genre.Schema.infer(df, target="approved", id_column="applicant_id")
    with caplog.at_level(logging.INFO, logger="genre"):
        genre.fit(df, schema, classifier=pipeline(df), **(TINY | {"max_epochs": 10}))
    lines = [r.getMessage() for r in caplog.records if r.name == "genre.core.estimator"]
    assert lines and all(re.match(r"GenRe epoch \d+/10: train loss \d", m) for m in lines)


def test_import_genre_is_light():
    code = ("import sys, genre; genre.__version__; genre.Schema; genre.GenreError; "
            "print(sorted(m for m in ('torch', 'sklearn', 'matplotlib', 'dice_ml') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    with pytest.raises(AttributeError):
        genre.no_such_name  # noqa: B018


def test_fit_with_a_skops_file_keeps_it(tmp_path):
    import skops.io as sio

    df = loans(300)
    schema = genre.Schema.infer(df, target="approved", id_column="applicant_id")
    sio.dump(pipeline(df), tmp_path / "h.skops")
    model = genre.fit(df, schema, classifier=str(tmp_path / "h.skops"), progress=False, **TINY)
    model.save(tmp_path / "model")
    assert (tmp_path / "model" / "classifier.skops").read_bytes() == \
        (tmp_path / "h.skops").read_bytes()
