"""`genre serve` under concurrency: dynamic batching (one sampler call for concurrent
requests, split back per request), /metrics and the access log, offline docs, 422s for
out-of-range seeds and numbers, and the read deadline and connection limit of a real
uvicorn process."""

import asyncio
import io
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from genre.classifiers.mlp import train_mlp  # noqa: E402
from genre.cli import app as cli  # noqa: E402
from genre.core.estimator import GenRe  # noqa: E402
from genre.core.task import RecourseTask  # noqa: E402
from genre.data import Encoder, Feature, Schema  # noqa: E402
from genre.service.batch import answer_batch  # noqa: E402
from genre.service.serve import create_app, recourse_records  # noqa: E402
from serve_process import serve_process  # noqa: E402

TINY = dict(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=32, max_epochs=3,
            patience=3, batch_size=256, k=50, progress=False, best_k=4, sampler="autoregressive")


def people(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(18, 80, n), "income": rng.random(n).round(3) * 100,
                         "colour": rng.choice(["red", "green", "blue"], n)})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny GenRe whose numeric features have no schema bounds."""
    df = people(1000, 0)
    df["y"] = ((df.income / 100 + 0.3 * (df.colour == "blue") + df.age / 200) > 0.9).astype(int)
    schema = Schema((Feature("age", "numeric", integer=True), Feature("income", "numeric"),
                     Feature("colour", "categorical")), target="y", name="unbounded")
    enc = Encoder(schema).fit(df)
    X, y = enc.transform(df), df["y"].to_numpy().copy()
    task = RecourseTask(enc, X, y, train_mlp(X, y, balanced=True, epochs=20, seed=0),
                        name="unbounded")
    return GenRe(**TINY).fit(task).save(tmp_path_factory.mktemp("batch") / "model")


@pytest.fixture(scope="module")
def app(model_dir):
    return create_app(model_dir, batch_wait_ms=300, max_batch=200)


def csv_text(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame as `genre recourse` writes it (CSV), whatever the in-memory dtypes."""
    return pd.read_csv(io.StringIO(frame.to_csv(index=False)))


def same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(csv_text(got), csv_text(want))


def submit_together(batcher, jobs) -> list:
    """Submit (table, options, seed) jobs at once; their (profiles, changes)."""
    async def go():
        return await asyncio.gather(*(batcher.submit(t, lambda p, d: (p, d), options=o,
                                                     seed=s) for t, o, s in jobs))
    return asyncio.run(go())


def test_concurrent_requests_share_one_sampler_call_and_are_split_back(app):
    batcher, metrics = app.state.batcher, app.state.metrics
    tables = [people(n, 10 + n) for n in (3, 1, 7, 5)]
    calls = metrics.batch_requests.counts[:]
    answers = submit_together(batcher, [(t, 1, 5) for t in tables])
    assert sum(metrics.batch_requests.counts) - sum(calls) == 1  # one sampler call
    assert metrics.batch_requests.sum >= 4
    # What the batch answers: the CLI's per-block function on the concatenation, split.
    whole, whole_diff = recourse_records(app.state.model, pd.concat(tables, ignore_index=True),
                                         seed=5)
    start = 0
    for t, (profiles, diff) in zip(tables, answers, strict=True):
        assert sorted(set(profiles["person"])) == list(range(len(t)))
        rows = whole[whole.person.between(start, start + len(t) - 1)]
        same(profiles, rows.assign(person=rows.person - start))
        rows = whole_diff[whole_diff.person.between(start, start + len(t) - 1)]
        same(diff, rows.assign(person=rows.person - start))
        start += len(t)


def test_requests_with_other_seeds_or_options_are_answered_apart(app):
    metrics = app.state.metrics
    a, b, c = people(4, 1), people(4, 2), people(4, 3)
    before = sum(metrics.batch_requests.counts)
    got = submit_together(app.state.batcher, [(a, 1, 1), (b, 1, 2), (c, 2, 1)])
    assert sum(metrics.batch_requests.counts) - before == 3
    for (t, options, seed), (profiles, _) in zip([(a, 1, 1), (b, 1, 2), (c, 2, 1)], got,
                                                  strict=True):
        same(profiles, recourse_records(app.state.model, t, options=options, seed=seed)[0])


def per_record_streams(model) -> bool:
    """Whether a record's answer depends only on the record and the seed (the answers
    issue's per-record random streams), tried on rows answered alone and among others."""
    t = people(12, 99)
    whole = recourse_records(model, t, seed=3)[0]
    alone = recourse_records(model, t.iloc[7:].reset_index(drop=True), seed=3)[0]
    tail = whole[whole.person >= 7]
    return csv_text(tail.assign(person=tail.person - 7)).equals(csv_text(alone))


def test_batched_equals_unbatched_equals_genre_recourse(app, model_dir, tmp_path):
    model = app.state.model
    assert per_record_streams(model)  # genre.core.seeding: a record's own random stream
    tables = [people(n, 20 + n) for n in (2, 6, 3)]
    batched = submit_together(app.state.batcher, [(t, 1, 8) for t in tables])
    for i, (t, (profiles, diff)) in enumerate(zip(tables, batched, strict=True)):
        alone, alone_diff = answer_batch(model, [t], seed=8)[0]
        same(profiles, alone)
        same(diff, alone_diff)
        src, out = tmp_path / f"in{i}.csv", tmp_path / f"out{i}.csv"
        t.to_csv(src, index=False)
        result = CliRunner().invoke(cli, ["recourse", "--model", str(model_dir), "--input",
                                          str(src), "--output", str(out), "--seed", "8"])
        assert result.exit_code == 0, result.output
        same(profiles, pd.read_csv(out))


def test_concurrent_http_requests_batch_and_are_counted(app, caplog):
    with TestClient(app) as client:  # one event loop for every request, as in a server
        concurrent_requests(app, client, caplog)


def concurrent_requests(app, client, caplog):
    tables = [people(3, 40 + i) for i in range(6)]
    answers: dict[int, httpx.Response] = {}

    def post(i: int) -> None:
        records = [{**r, "id": f"r{i}-{k}"} for k, r in enumerate(tables[i].to_dict("records"))]
        answers[i] = client.post("/recourse", json={"records": records, "seed": 1},
                                 headers={"X-Request-ID": f"req-{i}"})

    before = sum(app.state.metrics.batch_requests.counts)
    with caplog.at_level(logging.INFO, logger="genre.serve.access"):
        threads = [threading.Thread(target=post, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bad = client.post("/recourse", json={"records": [{"age": 30}]})
    assert bad.status_code == 422
    for i, response in answers.items():
        assert response.status_code == 200, response.text
        assert response.headers["x-request-id"] == f"req-{i}"
        results = response.json()["results"]
        assert [r["id"] for r in results] == [f"r{i}-{k}" for k in range(3)]
        assert [r["person"] for r in results] == [0, 1, 2]
    assert sum(app.state.metrics.batch_requests.counts) - before < 6  # batched
    lines = [json.loads(r.getMessage()) for r in caplog.records
             if r.name == "genre.serve.access"]
    assert {line["id"] for line in lines} >= {f"req-{i}" for i in range(6)}
    ok = [line for line in lines if line["id"] == "req-0"][0]
    assert ok["records"] == 3 and ok["status"] == 200 and ok["path"] == "/recourse"
    assert ok["ms"] >= 0 and ok["method"] == "POST"
    assert [line for line in lines if line["status"] == 422]
    text = client.get("/metrics").text
    assert "# TYPE genre_request_duration_seconds histogram" in text
    n = int(re.search(r'genre_requests_total\{path="/recourse",method="POST",status="200"\} '
                      r"(\d+)", text).group(1))
    assert n >= 6
    assert re.search(r'genre_errors_total\{path="/recourse",status="422"\} [1-9]', text)
    assert int(re.search(r"^genre_records_total (\d+)$", text, re.M).group(1)) >= 18
    assert re.search(r'genre_request_duration_seconds_bucket\{path="/recourse",le="\+Inf"\} '
                     r"(\d+)", text)
    assert re.search(r"^genre_batch_records_count [1-9]", text, re.M)
    assert "genre_queue_records 0" in text


def test_docs_work_without_fastapi_offline_and_assets_share_one_metrics_label(model_dir):
    """The docs' assets are genre's package data: with fastapi_offline unimportable, a
    fresh process builds the app and serves /docs, /redoc and their assets; the assets are
    counted under the one path label /docs-assets."""
    script = f"""
import sys
sys.modules["fastapi_offline"] = None  # any import of it now raises ImportError
from fastapi.testclient import TestClient
from genre.service.serve import create_app
client = TestClient(create_app({str(model_dir)!r}))
for url in ("/docs", "/redoc", "/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css",
            "/docs-assets/redoc.standalone.js", "/docs-assets/favicon-32x32.png"):
    assert client.get(url).status_code == 200, url
assert client.get("/docs-assets/nope.js").status_code == 404
print(client.get("/metrics").text)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    text = done.stdout
    assert 'genre_requests_total{path="/docs-assets",method="GET",status="200"} 4' in text
    assert 'genre_requests_total{path="/docs-assets",method="GET",status="404"} 1' in text
    assert 'genre_requests_total{path="/docs",method="GET",status="200"} 1' in text
    assert "docs-assets/" not in text  # no label per file


def test_out_of_range_seeds_and_numbers_are_422(app):
    client = TestClient(app)
    good = people(2, 5).to_dict("records")

    def post(**body):
        return client.post("/recourse", json={"records": good} | body)

    for seed in (2**64, -1, 10**30):
        response = post(seed=seed)
        assert response.status_code == 422 and "field 'seed'" in response.json()["message"]
    assert post(seed=2**64 - 1).status_code == 200
    for field, value in (("age", 10**30), ("age", -(2**53) - 1), ("income", 1e39),
                         ("income", -1e300)):
        records = [dict(r) for r in good]
        records[1][field] = value
        response = client.post("/recourse", json={"records": records})
        assert response.status_code == 422, (field, value)
        assert f"record 1, field '{field}'" in response.json()["message"]


@pytest.fixture(scope="module")
def slow_server(model_dir):
    """`genre serve` with a 1 s read deadline and at most 3 connections at once."""
    with serve_process("--model", str(model_dir), "--read-timeout", "1",
                       "--limit-concurrency", "3", "--no-access-log") as (port, _):
        yield port


def test_a_slow_client_is_closed_after_the_read_deadline(slow_server):
    with socket.create_connection(("127.0.0.1", slow_server), timeout=5) as s:
        t0 = time.monotonic()
        head = b"POST /recourse HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
        closed = False
        for byte in head:  # a byte every 0.1 s: never a whole request within 1 s
            try:
                s.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
        if not closed:
            s.settimeout(3)
            closed = s.recv(100) == b""
        assert closed and time.monotonic() - t0 < 4.5
    assert httpx.get(f"http://127.0.0.1:{slow_server}/health").status_code == 200


def test_connections_beyond_the_limit_get_503(slow_server):
    idle = [socket.create_connection(("127.0.0.1", slow_server)) for _ in range(3)]
    try:
        time.sleep(0.2)
        response = httpx.get(f"http://127.0.0.1:{slow_server}/health")
        assert response.status_code == 503
    finally:
        for s in idle:
            s.close()
    time.sleep(0.3)
    assert httpx.get(f"http://127.0.0.1:{slow_server}/health").status_code == 200


@pytest.mark.parametrize("flag", [["--read-timeout", "0"], ["--limit-concurrency", "0"],
                                  ["--timeout-keep-alive", "-1"], ["--workers", "0"]])
def test_serve_refuses_out_of_range_connection_settings(model_dir, flag):
    result = CliRunner().invoke(cli, ["serve", "--model", str(model_dir), *flag])
    assert result.exit_code == 2 and f"{flag[0]} {float(flag[1]):g} is out of range" in \
        result.output
