"""Constraints per category (schema `never` / `allowed`) and per person (`freeze`,
`ranges`): enforced by construction, 0 violations over 1,000 random people through the
API, the CLI and the service; clear errors; pair synthesis obeys the category rules."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import genre
from genre.cli import app
from genre.core.pairs import PairSampler
from genre.errors import InputError, SchemaError
from genre.tables.constraints import Constraints, violations

TINY = dict(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=32, max_epochs=4,
            patience=4, batch_size=256, k=50, progress=False, best_k=6, sampler="autoregressive")
SCHEMA = """\
target: approved
features:
  age: {type: numeric, integer: true, min: 18, max: 80}
  income: {type: numeric, min: 0, max: 150}
  debts: {type: numeric, integer: true, min: 0, max: 10}
  job: {type: categorical, categories: [none, part-time, full-time], never: [none]}
  housing: {type: categorical, categories: [rent, own, free],
            allowed: {rent: [own], free: [rent]}}
"""
FREEZE, RANGES = ["debts"], {"income": (20.0, 90.0)}
runner = CliRunner()


def table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(18, 80, n),
                         "income": np.round(rng.uniform(0, 150, n), 1),
                         "debts": rng.integers(0, 11, n),
                         "job": rng.choice(["none", "part-time", "full-time"], n),
                         "housing": rng.choice(["rent", "own", "free"], n)})


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    path.write_text(SCHEMA)
    return genre.Schema.from_yaml(path)


@pytest.fixture(scope="module")
def model_dir(schema, tmp_path_factory):
    df = table(1500, 0)
    score = (df.income / 150 + 0.3 * (df.job == "full-time") + 0.2 * (df.housing == "own")
             - 0.03 * df.debts)
    df["approved"] = (score > 0.6).astype(int)
    model = genre.fit(df, schema, h_epochs=20, **TINY)
    return model.save(tmp_path_factory.mktemp("m") / "model")


@pytest.fixture(scope="module")
def people():
    return table(1000, 1)


def check(schema, people, result, constraints=None, at_least=100):
    assert violations(people, result, schema, constraints) == []
    assert (result["status"] == "recourse").sum() >= at_least  # the test has teeth


def test_schema_rules_hold_by_construction_api(schema, model_dir, people):
    model = genre.load(model_dir)
    result = model.recourse(people, options=2)
    check(schema, people, result)
    rec = result[result.status == "recourse"]
    moved = people.iloc[rec.person.to_numpy()].reset_index(drop=True)
    # somebody moves housing (the rules restrict, they do not freeze)
    assert (moved.housing.to_numpy() != rec.housing.to_numpy()).any()


def test_person_constraints_api(schema, model_dir, people):
    model = genre.load(model_dir)
    result = model.recourse(people, options=2, freeze=FREEZE, ranges=RANGES, seed=1)
    check(schema, people, result, Constraints.make(FREEZE, RANGES))
    rec = result[result.status == "recourse"]
    before = people.iloc[rec.person.to_numpy()].reset_index(drop=True)
    changed = before.income.to_numpy() != rec.income.to_numpy()
    assert changed.any()  # ranges bound the moves, they do not forbid them
    # an open end, and a range nothing fits in (the feature cannot change at all)
    r2 = model.recourse(people.head(200), ranges={"income": (None, 10.0), "age": (30.2, 30.8)})
    assert violations(people.head(200), r2, schema,
                      Constraints.make(ranges={"income": (None, 10.0),
                                               "age": (30.2, 30.8)})) == []
    same = people.head(200).iloc[r2.person.to_numpy()]
    assert (same.age.to_numpy() == r2.age.to_numpy()).all()


def test_person_constraints_cli(schema, model_dir, people, tmp_path):
    src, out = tmp_path / "people.csv", tmp_path / "out.csv"
    people.to_csv(src, index=False)
    res = runner.invoke(app, ["recourse", "--model", str(model_dir), "--input", str(src),
                              "--output", str(out), "--options", "2", "--freeze", "debts",
                              "--range", "income=20:90"])
    assert res.exit_code == 0, res.output
    check(schema, people, pd.read_csv(out), Constraints.make(FREEZE, RANGES))
    for args, msg in ((["--freeze", "incme"], "did you mean 'income'"),
                      (["--range", "income=20"], "FEATURE=LO:HI"),
                      (["--range", "income=a:b"], "numbers"),
                      (["--range", "income=9:3"], "lo 9 > hi 3"),
                      (["--range", "job=1:2"], "numeric features")):
        res = runner.invoke(app, ["recourse", "--model", str(model_dir), "--input", str(src),
                                  "--output", str(tmp_path / "x.csv"), *args])
        assert res.exit_code == 2 and msg in " ".join(res.output.split()), res.output
        assert not (tmp_path / "x.csv").exists()


def test_person_constraints_service(schema, model_dir, people):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from genre.service.serve import create_app

    client = TestClient(create_app(model_dir))
    body = {"records": people.to_dict(orient="records"), "options": 2, "freeze": FREEZE,
            "ranges": {"income": [20, 90]}}
    res = client.post("/recourse", json=body)
    assert res.status_code == 200, res.text
    rows = [{"person": p["person"], **o["profile"], "status": p["status"]}
            for p in res.json()["results"] for o in p["options"]]
    check(schema, people, pd.DataFrame(rows), Constraints.make(FREEZE, RANGES))
    bad = client.post("/recourse", json=body | {"freeze": ["incme"]})
    assert bad.status_code == 422 and "freeze" in bad.text
    bad = client.post("/recourse", json=body | {"ranges": {"job": [0, 1]}})
    assert bad.status_code == 422


def test_schema_rule_errors_name_the_value(tmp_path):
    for spec, msg in (("{type: categorical, categories: [a, b], never: [c]}",
                       "'never' names 'c', which is not one of its categories"),
                      ("{type: categorical, categories: [a, b], allowed: {a: [z]}}",
                       "'allowed' names 'z'"),
                      ("{type: categorical, categories: [a, b], allowed: {q: [a]}}",
                       "'allowed' names 'q'"),
                      ("{type: numeric, never: [1]}", "categorical features only"),
                      ("{type: categorical, never: a}", "must be a list"),
                      ("{type: categorical, never: [a], forbid: [b]}", "not both")):
        path = tmp_path / "s.yaml"
        path.write_text(f"target: y\nfeatures:\n  f: {spec}\n")
        with pytest.raises(SchemaError, match=msg):
            genre.Schema.from_yaml(path)
    # categories taken from the data: checked when the encoder learns them
    path.write_text("target: y\nfeatures:\n  f: {type: categorical, forbid: [c]}\n"
                    "  x: {type: numeric}\n")
    schema = genre.Schema.from_yaml(path)
    assert schema["f"].never == ("c",)
    df = pd.DataFrame({"f": ["a", "b"] * 20, "x": np.arange(40.0), "y": [0, 1] * 20})
    with pytest.raises(SchemaError, match="'never' names 'c'"):
        genre.fit(df, schema, **TINY)
    with pytest.raises(InputError, match="not a feature"):
        Constraints.make(["nope"]).check(schema)


def test_schema_rules_round_trip(schema):
    again = genre.Schema.from_dict(schema.to_dict())
    assert again["housing"].allowed == schema["housing"].allowed
    table_ = schema["housing"].move_table()
    # rent -> own only; own -> anywhere; free -> rent only; staying always allowed
    assert table_.tolist() == [[True, True, False], [True, True, True], [True, False, True]]
    assert schema["job"].move_table()[:, 0].tolist() == [True, False, False]


def test_pairs_obey_category_rules(schema):
    table_ = schema["housing"].move_table()
    codes = np.array([0.0, 0.5, 1.0])  # rent, own, free normalised
    src = codes[:, None]
    tgt = codes[:, None]
    pairs = PairSampler(src, tgt, np.array([False]), k=3, moves=[(0, table_)])
    for i, s in zip(pairs.source_index_, pairs.neighbours_, strict=True):
        a = int(round(src[i, 0] * 2))
        for t in s[s >= 0]:
            assert table_[a, int(round(tgt[t, 0] * 2))]
