"""The error gaps closed: an undeclared ID column suggests --id; a renamed column shows its
near match; schema categories absent from the data warn; genre's own h.skops passed as
--classifier says what it is."""

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

import genre
from credit_table import user_table
from genre.cli import app
from genre.errors import GenreWarning, InputError, ModelError
from genre.utils.hints import looks_like_id, near_match

TINY = dict(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=32, max_epochs=1,
            patience=1, batch_size=256, k=50, progress=False, best_k=4, sampler="autoregressive")
runner = CliRunner()




def one_line(res) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    return " ".join(res.output.split())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("gaps")
    df = user_table(400)
    schema = genre.Schema.infer(df, target="approved")
    schema.to_yaml(d / "s.yaml")
    df.to_csv(d / "d.csv", index=False)
    with pytest.warns(GenreWarning):
        model = genre.fit(df, schema, h_epochs=3, **TINY)
    model.save(d / "m")
    return d, df, schema


def test_undeclared_id_column_suggests_id(files, tmp_path):
    d, df, schema = files
    with_id = df.assign(applicant_id=[f"A{i:04d}" for i in range(len(df))])
    with_id.to_csv(tmp_path / "d.csv", index=False)
    text = one_line(runner.invoke(app, ["fit", "--data", str(tmp_path / "d.csv"), "--schema",
                                        str(d / "s.yaml"), "--out", str(tmp_path / "m")]))
    assert "unexpected columns ['applicant_id']" in text and "--id applicant_id" in text
    # the recourse file too (header only: the name tells)
    with_id.drop(columns="approved").head(5).to_csv(tmp_path / "p.csv", index=False)
    text = one_line(runner.invoke(app, ["recourse", "--model", str(d / "m"), "--input",
                                        str(tmp_path / "p.csv"), "--output",
                                        str(tmp_path / "o.csv")]))
    assert "--id applicant_id" in text and not (tmp_path / "o.csv").exists()
    # a column of distinct labels is an identifier whatever its name; a feature-like one not
    acct = df.assign(acct=[f"x{i}" for i in range(len(df))])
    with pytest.raises(InputError, match="--id acct"):
        genre.fit(acct, schema, **TINY)
    notes = df.assign(notes=np.where(np.arange(len(df)) % 2, "a", "b"))
    with pytest.raises(InputError, match="unexpected columns") as exc:
        genre.fit(notes, schema, **TINY)
    assert "--id" not in str(exc.value)
    assert looks_like_id("CustomerID") and looks_like_id("id") and looks_like_id("loan_ref")
    assert not looks_like_id("idle_days") and not looks_like_id("income")


def test_renamed_column_shows_the_near_match(files, tmp_path):
    d, df, schema = files
    df.rename(columns={"income": "Income"}).drop(columns="approved").head(5).to_csv(
        tmp_path / "p.csv", index=False)
    text = one_line(runner.invoke(app, ["recourse", "--model", str(d / "m"), "--input",
                                        str(tmp_path / "p.csv"), "--output",
                                        str(tmp_path / "o.csv")]))
    assert "missing columns ['income']" in text and "'income' may be the column 'Income'" in text
    with pytest.raises(InputError, match="'income' may be the column 'incme'"):
        genre.fit(df.rename(columns={"income": "incme"}), schema, **TINY)
    with pytest.raises(InputError, match="did you mean 'Approved'"):
        genre.fit(df.rename(columns={"approved": "Approved"}), schema, **TINY)
    assert near_match("age", ["salary", "job"]) == ""


def test_schema_categories_absent_from_the_data_warn(files):
    _, df, schema = files
    path_text = schema.to_yaml().replace("[full-time, none, part-time]",
                                         "[full-time, none, part-time, retired]")
    assert "retired" in path_text
    import yaml

    wider = genre.Schema.from_dict(yaml.safe_load(path_text))
    with pytest.warns(GenreWarning, match=r"column 'job': the schema's categories \['retired'\] "
                                          "never occur in the data"):
        genre.fit(df, wider, h_epochs=3, **TINY)


def test_genre_h_skops_as_classifier_is_named(files, tmp_path):
    d, df, schema = files
    h = d / "m" / "h.skops"
    if not h.exists():  # the MLP won: save an h.skops the way genre saves one
        from sklearn.ensemble import HistGradientBoostingClassifier

        from genre.classifiers.mlp import save_sklearn
        from genre.data import Encoder

        enc = Encoder(schema).fit(df)
        shutil.copytree(d / "m", tmp_path / "m")
        h = tmp_path / "m" / "h.skops"
        save_sklearn(HistGradientBoostingClassifier(max_iter=5).fit(
            enc.transform(df), df.approved), h)
    text = one_line(runner.invoke(app, ["fit", "--data", str(d / "d.csv"), "--schema",
                                        str(d / "s.yaml"), "--classifier", str(h), "--out",
                                        str(tmp_path / "new")]))
    assert "classifier h genre saved with the model" in text and "normalised units" in text
    assert "genre recourse --model" in text
    # copied away from its model, the failure still says what it is
    shutil.copy(h, tmp_path / "mine.skops")
    with pytest.raises(ModelError, match="normalised units"):
        genre.fit(df, schema, classifier=str(tmp_path / "mine.skops"), **TINY)
