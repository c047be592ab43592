"""One person, one answer: a record's options depend on the record and the seed only. The
same 20 records answered alone, inside a 10,000-row file, through the service and through
Ray give identical options."""

import numpy as np
import pandas as pd
import pytest

from genre.core.estimator import GenRe
from genre.core.seeding import row_keys, row_normals, row_uniforms
from genre.tables.streaming import stream_recourse

TINY = dict(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=32, max_epochs=3,
            patience=3, batch_size=256, k=50, progress=False, best_k=4, sampler="autoregressive")
N_FILE = 10_000
OPTIONS = 2
FEATURES = ["x1", "x2", "colour", "group"]


@pytest.fixture(scope="module")
def model_dir(make_mixed_task, tmp_path_factory):
    return GenRe(**TINY).fit(make_mixed_task()).save(tmp_path_factory.mktemp("one") / "m")


@pytest.fixture(scope="module")
def model(model_dir):
    return GenRe.load(model_dir)


def table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x1": rng.random(n).round(4), "x2": rng.integers(0, 11, n),
                         "colour": rng.choice(["red", "green", "blue"], n),
                         "group": rng.choice(["a", "b"], n)})


@pytest.fixture(scope="module")
def records():
    return table(20, 7)


def options_of(profiles: pd.DataFrame) -> list[tuple]:
    """Per person, in order: (status, [(profile..., h_probability) per option])."""
    cols = [*FEATURES, "h_probability"]
    out = []
    for _, rows in profiles.groupby("person", sort=True):
        out.append((rows["status"].iloc[0],
                    [tuple(str(v) for v in r) for r in rows[cols].itertuples(index=False)]))
    return out


def test_row_streams_depend_on_content_and_seed_only():
    X = np.random.default_rng(0).random((5, 3))
    keys = row_keys(X, 0)
    assert len(set(keys.tolist())) == 5
    np.testing.assert_array_equal(row_keys(X[::-1], 0), keys[::-1])  # position-free
    assert not np.any(row_keys(X, 1) == keys)
    u = row_uniforms(keys, 4, 3)
    assert u.shape == (3, 20) and u.dtype == np.float32 and 0 <= u.min() and u.max() < 1
    # sample s of a record is the same however many are drawn; offset continues the stream
    np.testing.assert_array_equal(row_uniforms(keys, 2, 3).reshape(3, 5, 2),
                                  u.reshape(3, 5, 4)[:, :, :2])
    np.testing.assert_array_equal(row_uniforms(keys, 2, 3, offset=2).reshape(3, 5, 2),
                                  u.reshape(3, 5, 4)[:, :, 2:])
    z = row_normals(row_keys(np.random.default_rng(1).random((2000, 1)), 0), 10, 1)
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05


def test_same_record_same_options_anywhere(model, model_dir, records, tmp_path):
    alone = []
    for i in range(len(records)):
        alone += options_of(model.recourse(records.iloc[[i]], options=OPTIONS, seed=3))
    assert sum(status == "recourse" for status, _ in alone) >= 5  # the test has teeth

    # (b) scattered through a big file, across several blocks, read in odd chunks
    big = table(N_FILE, 8)
    where = np.random.default_rng(2).choice(N_FILE, len(records), replace=False)
    big.iloc[where] = records.to_numpy()
    src, out = tmp_path / "big.csv", tmp_path / "out.csv"
    big.to_csv(src, index=False)
    stream_recourse(model, src, out, options=OPTIONS, seed=3, chunk_size=777, progress=False)
    got = pd.read_csv(out)
    in_file = got[got["person"].isin(where)].copy()
    in_file["person"] = in_file["person"].map({p: i for i, p in enumerate(where)})
    assert options_of(in_file) == alone

    # a block answered together equals its rows answered alone
    assert options_of(model.recourse(records, options=OPTIONS, seed=3)) == alone

    # (c) the service
    fastapi = pytest.importorskip("fastapi")  # noqa: F841
    from fastapi.testclient import TestClient

    from genre.service.serve import create_app
    client = TestClient(create_app(model_dir))
    body = {"records": records.iloc[::-1].to_dict(orient="records"), "options": OPTIONS,
            "seed": 3}
    res = client.post("/recourse", json=body)
    assert res.status_code == 200, res.text
    rows = []
    for person in res.json()["results"]:
        for opt in person["options"]:
            rows.append({"person": len(records) - 1 - person["person"], **opt["profile"],
                         "h_probability": opt["h_probability"], "status": person["status"]})
    served = pd.read_csv(pd.io.common.StringIO(pd.DataFrame(rows).to_csv(index=False)))
    assert options_of(served) == alone


def test_same_options_on_ray(model, model_dir, records):
    ray = pytest.importorskip("ray")
    from genre.service.ray import recourse_dataset

    alone = []
    for i in range(len(records)):
        alone += options_of(model.recourse(records.iloc[[i]], options=OPTIONS, seed=3))
    mixed = pd.concat([table(30, 9), records], ignore_index=True)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="error")
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        got = recourse_dataset(ray.data.from_pandas(mixed), model_dir, options=OPTIONS,
                               seed=3, workers=1).to_pandas()
    finally:
        ray.shutdown()
    got = got[got["person"] >= 30].copy()
    got["person"] -= 30
    got = pd.read_csv(pd.io.common.StringIO(got.to_csv(index=False)))
    assert options_of(got) == alone
