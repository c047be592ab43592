"""The command line: datasets, evaluate, fit, recourse; bad input exits non-zero, no file."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from genre.bench.protocol import build_protocol
from genre.cli import app

runner = CliRunner()


def test_datasets_lists_bundled_sets():
    result = runner.invoke(app, ["datasets"])
    assert result.exit_code == 0
    for name in ("adult", "compas", "heloc", "moons", "circles"):
        assert name in result.output
    assert "36,624" in result.output


def test_evaluate_nnr_writes_json(compas, tmp_path):
    out = tmp_path / "nnr.json"
    result = runner.invoke(app, ["evaluate", "--dataset", "compas", "--method", "nnr",
                                 "--n", "40", "--json", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    for key in ("cost", "val", "val_h", "lof", "score", "violations", "seconds", "n"):
        assert key in figures
    assert figures["n"] == 40 and figures["violations"]["immutable"] == 0
    assert 0 <= figures["val"] <= 1 and figures["score"] <= 2


def test_unknown_dataset_or_method_fails_without_output(tmp_path):
    out = tmp_path / "x.json"
    result = runner.invoke(app, ["evaluate", "--dataset", "nope", "--json", str(out)])
    assert result.exit_code != 0 and "unknown dataset 'nope'" in result.output
    result = runner.invoke(app, ["evaluate", "--dataset", "compas", "--method", "magic",
                                 "--json", str(out)])
    assert result.exit_code != 0 and "unknown method 'magic'" in result.output
    assert not out.exists()


def test_fit_then_recourse_in_original_units(compas, tmp_path):
    model_dir = tmp_path / "model"
    result = runner.invoke(app, ["fit", "--dataset", "compas", "--out", str(model_dir),
                                 "--fast", "--sampler", "autoregressive"])
    assert result.exit_code == 0, result.output
    assert "sampling settings tuned on " in result.output and "best_k " in result.output
    people = compas.dataset.X_test.iloc[compas.rejected_test[:6]]
    accepted = int(np.flatnonzero(compas.h.predict_proba(compas.X_test) > 0.5)[0])
    people = pd.concat([people, compas.dataset.X_test.iloc[[accepted]]])
    src = tmp_path / "rejected.csv"
    people.to_csv(src, index=False)
    out = tmp_path / "recourse.csv"
    result = runner.invoke(app, ["recourse", "--model", str(model_dir), "--input", str(src),
                                 "--output", str(out)])
    assert result.exit_code == 0, result.output
    got = pd.read_csv(out)
    assert list(got.columns) == (["person"] + list(people.columns)
                                 + ["h_probability", "effort", "cost", "plausible",
                                    "status"])
    assert got["person"].tolist() == list(range(7))  # the input's 0-based row index
    assert (got["race"].to_numpy() == people["race"].to_numpy()).all()
    assert (got["sex"].to_numpy() == people["sex"].to_numpy()).all()
    assert set(got["status"]) <= {"recourse", "none found", "already accepted"}
    assert (got["status"].iloc[:6] != "already accepted").all()
    assert got["status"].iloc[6] == "already accepted" and got["cost"].iloc[6] == 0
    recoursed = got["status"] == "recourse"
    assert (got.loc[recoursed, "h_probability"] > 0.5).all()
    assert "features changed per recourse:" in result.output


def test_recourse_options_and_changes_view(compas, tmp_path):
    model_dir = tmp_path / "model"
    fit = ["fit", "--dataset", "compas", "--out", str(model_dir), "--fast", "--monotone",
           "--sampler", "autoregressive"]
    assert runner.invoke(app, fit).exit_code == 0
    people = compas.dataset.X_test.iloc[compas.rejected_test[:5]]
    src = tmp_path / "rejected.csv"
    people.to_csv(src, index=False)
    out, diff = tmp_path / "options.csv", tmp_path / "changes.csv"
    result = runner.invoke(app, ["recourse", "--model", str(model_dir), "--input", str(src),
                                 "--output", str(out), "--options", "3", "--changes",
                                 str(diff)])
    assert result.exit_code == 0, result.output
    got = pd.read_csv(out)
    assert got.groupby("person")["option"].max().max() <= 3
    people.index = range(5)  # person: the input's 0-based row index
    for _, group in got[got["status"] == "recourse"].groupby("person"):
        feats = group[list(people.columns)].astype(str).agg("|".join, axis=1)
        assert feats.is_unique  # genuinely different options
        # Sorted by the effort they are ranked by, cheapest first.
        assert group["effort"].is_monotonic_increasing
    assert got["plausible"].dtype == bool
    changes = pd.read_csv(diff)
    assert list(changes.columns) == ["person", "option", "feature", "from", "to"]
    assert not changes["feature"].isin(["race", "sex"]).any()
    ages = changes[changes["feature"] == "age"]
    assert (ages["to"].astype(int) >= ages["from"].astype(int)).all()  # monotone: age up


def test_recourse_bad_input_names_the_problem(compas, tmp_path):
    model_dir = tmp_path / "model"
    assert runner.invoke(app, ["fit", "--dataset", "compas", "--out", str(model_dir),
                               "--fast", "--sampler", "autoregressive"]).exit_code == 0
    people = compas.dataset.X_test.iloc[:3].copy()
    people.loc[people.index[1], "race"] = "Martian"
    src = tmp_path / "bad.csv"
    people.to_csv(src, index=False)
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["recourse", "--model", str(model_dir), "--input", str(src),
                                 "--output", str(out)])
    assert result.exit_code != 0
    assert "column 'race', line 3: unknown category 'Martian'" in result.output
    assert not out.exists()
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = runner.invoke(app, ["recourse", "--model", str(model_dir), "--input", str(empty),
                                 "--output", str(out)])
    assert result.exit_code != 0 and "empty" in result.output and not out.exists()


@pytest.fixture(scope="module")
def fast_model(compas, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("m") / "model"
    assert runner.invoke(app, ["fit", "--dataset", "compas", "--out", str(model_dir),
                               "--fast", "--sampler", "autoregressive"]).exit_code == 0
    return model_dir


def _csv_variants(compas):
    good = compas.dataset.X_test.iloc[:4].copy()
    text = good.to_csv(index=False)
    header, *rows = text.strip().split("\n")
    return {
        "missing column": (good.drop(columns="age").to_csv(index=False),
                           "missing columns ['age']"),
        "extra column": (good.assign(zip="x").to_csv(index=False),
                         "unexpected columns ['zip']"),
        "duplicate column": (header + ",age\n" + "\n".join(r + ",30" for r in rows) + "\n",
                             "duplicate columns ['age']"),
        "NaN": (good.assign(priors_count=[1, None, 2, 3]).to_csv(index=False),
                "column 'priors_count', line 3: missing value"),
        "wrong type": (good.assign(age=["30", "old", "40", "50"]).to_csv(index=False),
                       "column 'age', line 3: expected a number, got 'old'"),
        "header only": (header + "\n", "no data rows"),
        "another schema": (build_protocol("heloc").dataset.X_test.iloc[:3].to_csv(index=False),
                           "missing columns"),
    }


@pytest.mark.parametrize("case", ["missing column", "extra column", "duplicate column", "NaN",
                                  "wrong type", "header only", "another schema"])
def test_recourse_bad_files_exit_non_zero_without_output(compas, fast_model, tmp_path, case):
    content, message = _csv_variants(compas)[case]
    src = tmp_path / "people.csv"
    src.write_text(content)
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["recourse", "--model", str(fast_model), "--input", str(src),
                                 "--output", str(out)])
    assert result.exit_code != 0
    assert message in result.output and str(src) in result.output
    assert not out.exists() and not list(tmp_path.glob(".out.csv*"))


def test_fit_with_a_malformed_schema_fails_clearly(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("a,b,y\n1,2,0\n3,4,1\n")
    schema = tmp_path / "s.yaml"
    schema.write_text("target: y\nfeatures:\n  a: {type: numeric\n  b: {type: numeric}\n")
    result = runner.invoke(app, ["fit", "--data", str(data), "--schema", str(schema), "--out",
                                 str(tmp_path / "m")])
    assert result.exit_code != 0 and str(schema) in result.output and "line" in result.output
    assert not (tmp_path / "m").exists()
