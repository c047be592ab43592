"""`genre serve`: a real uvicorn process answers POST /recourse with what recourse_table
(and `genre recourse`) give for those rows; bad records are a 422 naming record and field;
request size and batch length are limited; /schema, /health and the generated OpenAPI;
/docs and /redoc with every asset they reference served by the app itself (genre's package
data, with the licences), never a CDN."""

import hashlib
import io
import json
import re
import socket
from html.parser import HTMLParser
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from genre.classifiers.mlp import train_mlp  # noqa: E402
from genre.cli import app  # noqa: E402
from genre.core.estimator import GenRe  # noqa: E402
from genre.core.task import RecourseTask  # noqa: E402
from genre.data import Encoder, Feature, Schema  # noqa: E402
from genre.io import read_table  # noqa: E402
from genre.service.http import ASSETS, DOCS_ASSETS, STATIC  # noqa: E402
from genre.service.serve import recourse_records  # noqa: E402
from genre.tables.recourse import recourse_table  # noqa: E402
from genre.tables.streaming import SEED_BLOCK, stream_recourse  # noqa: E402
from serve_process import serve_process  # noqa: E402

TINY = dict(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=32, max_epochs=3,
            patience=3, batch_size=256, k=50, progress=False, best_k=4, sampler="autoregressive")
MAX_RECORDS, MAX_BYTES = 60, 20_000
FEATURES = ["x1", "x2", "colour", "group"]


def people(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x1": rng.random(n).round(3), "x2": rng.integers(0, 11, n),
                         "colour": rng.choice(["red", "green", "blue"], n),
                         "group": rng.choice([1, 2], n)})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny GenRe on a task with bounds, an integer, a string and an integer category."""
    df = people(1200, 0)
    score = df.x1 + 0.05 * df.x2 + 0.4 * (df.colour == "blue") + 0.1 * (df.group == 1)
    df["y"] = (score > 0.95).astype(int)
    schema = Schema((Feature("x1", "numeric", min=0.0, max=1.0),
                     Feature("x2", "numeric", integer=True, min=0, max=10),
                     Feature("colour", "categorical"),
                     Feature("group", "categorical", immutable=True)), target="y", name="tiny")
    enc = Encoder(schema).fit(df)
    X, y = enc.transform(df), df["y"].to_numpy().copy()
    task = RecourseTask(enc, X, y, train_mlp(X, y, balanced=True, epochs=30, seed=0), name="tiny")
    return GenRe(**TINY).fit(task).save(tmp_path_factory.mktemp("serve") / "model")


@pytest.fixture(scope="module")
def model(model_dir):
    return GenRe.load(model_dir)


@pytest.fixture(scope="module")
def server(model_dir):
    """`genre serve` with two uvicorn workers (each loads the model) on a free port."""
    with serve_process("--model", str(model_dir), "--workers", "2", "--max-records",
                       str(MAX_RECORDS), "--max-bytes", str(MAX_BYTES)) as (_, url):
        with httpx.Client(base_url=url, timeout=30) as client:
            yield client


def flatten(results: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The JSON answer as recourse_table's (profiles, changes) frames."""
    rows, diff = [], []
    for person in results:
        for opt in person["options"]:
            rows.append({"person": person["person"], "option": opt["option"],
                         **opt["profile"], "h_probability": opt["h_probability"],
                         "effort": opt["effort"], "cost": opt["cost"],
                         "plausible": opt["plausible"],
                         "status": person["status"]})
            diff += [{"person": person["person"], "option": opt["option"], **c}
                     for c in opt["changes"]]
    return (pd.DataFrame(rows).astype({"h_probability": float, "effort": float,
                                                 "cost": float}),
            pd.DataFrame(diff, columns=["person", "option", "feature", "from", "to"]))


def same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Equal as `genre recourse` writes them (CSV text), whatever the in-memory dtypes."""
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(got.to_csv(index=False))),
                                  pd.read_csv(io.StringIO(want.to_csv(index=False))))


@pytest.mark.parametrize("options", [1, 3])
def test_post_equals_recourse_table(server, model, options):
    table = people(40, 1)
    records = [{**r, "id": f"A-{i}"} for i, r in enumerate(table.to_dict("records"))]
    response = server.post("/recourse", json={"records": records, "options": options,
                                              "seed": 7})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["id"] for r in results] == [f"A-{i}" for i in range(40)]
    got, got_diff = flatten(results)
    want, want_diff = recourse_table(model, table, options=options, seed=7)
    if options == 1:
        got = got.drop(columns="option")
    same(got, want)
    same(got_diff, want_diff)
    statuses = {r["status"] for r in results}
    assert "recourse" in statuses and "already accepted" in statuses


def test_post_equals_genre_recourse_file(server, model_dir, tmp_path):
    table = people(25, 2)
    src, out, changes = tmp_path / "in.csv", tmp_path / "out.csv", tmp_path / "changes.csv"
    table.to_csv(src, index=False)
    result = CliRunner().invoke(app, ["recourse", "--model", str(model_dir), "--input", str(src),
                                      "--output", str(out), "--changes", str(changes),
                                      "--options", "2", "--seed", "11"])
    assert result.exit_code == 0, result.output
    response = server.post("/recourse", json={"records": table.to_dict("records"),
                                              "options": 2, "seed": 11})
    got, got_diff = flatten(response.json()["results"])
    # `person` labels rows differently in a file; everything else is the same.
    same(got.drop(columns="person"), pd.read_csv(out).drop(columns="person"))
    same(got_diff.drop(columns="person"), pd.read_csv(changes).drop(columns="person"))


def test_more_records_than_a_seed_block_follow_the_file_seed_scheme(model, tmp_path):
    table = people(SEED_BLOCK + 30, 3)
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    table.to_csv(src, index=False)
    stream_recourse(model, src, out, seed=4, progress=False)
    got, _ = recourse_records(model, table, seed=4)
    same(got.drop(columns="person"), pd.read_csv(out).drop(columns="person"))
    assert len(read_table(src)) == len(got)


def error(response) -> str:
    assert response.status_code == 422, response.text
    return response.json()["message"]


def test_bad_records_are_422_naming_record_and_field(server):
    good = people(3, 4).to_dict("records")

    def post(i, **change):
        records = [dict(r) for r in good]
        records[i].update(change)
        return server.post("/recourse", json={"records": records})

    assert "record 1, field 'colour': Input should be 'blue', 'green' or 'red'" in error(
        post(1, colour="purple"))
    records = [dict(r) for r in good]
    del records[2]["x2"]
    msg = error(server.post("/recourse", json={"records": records}))
    assert "record 2, field 'x2': Field required" in msg
    assert "record 0, field 'x1'" in error(post(0, x1="0.5"))  # a string is not a number
    assert "record 0, field 'x2'" in error(post(0, x2=True))
    assert "record 2, field 'x2'" in error(post(2, x2=2.5))  # integer feature
    assert "record 1, field 'x2'" in error(post(1, x2=11))  # above the schema's max
    assert "record 1, field 'group'" in error(post(1, group=3))
    assert "record 0, field 'shoe_size': Extra inputs" in error(post(0, shoe_size=42))
    body = json.dumps({"records": good}).replace('"x1": ' + json.dumps(good[1]["x1"]),
                                                 '"x1": NaN', 1)
    assert "NaN" in body
    msg = error(server.post("/recourse", content=body,
                            headers={"content-type": "application/json"}))
    assert msg == "record 1, field 'x1': Value error, expected a finite number, got nan"
    assert "field 'options'" in error(server.post("/recourse", json={"records": good,
                                                                     "options": 0}))
    assert "field 'records'" in error(server.post("/recourse", json={"records": []}))
    response = server.post("/recourse", content="{not json",
                           headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_request_size_and_batch_length_are_limited(server):
    records = people(MAX_RECORDS + 1, 5).to_dict("records")
    assert f"at most {MAX_RECORDS} items" in error(server.post("/recourse",
                                                               json={"records": records}))
    big = json.dumps({"records": records * 10}).encode()
    assert len(big) > MAX_BYTES
    response = server.post("/recourse", content=big,
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    # Without a Content-Length (chunked), the body is counted as it arrives.
    response = server.post("/recourse", content=iter([big[:10_000], big[10_000:]]),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    ok = server.post("/recourse", json={"records": records[:MAX_RECORDS]})
    assert ok.status_code == 200 and len(ok.json()["results"]) == MAX_RECORDS


def test_schema_health_and_generated_openapi(server, model):
    schema = model.encoder_.schema_.to_dict()
    assert server.get("/schema").json() == schema
    health = server.get("/health").json()
    assert health["status"] == "ok" and health["max_records"] == MAX_RECORDS
    record = server.get("/openapi.json").json()["components"]["schemas"]["Record"]
    props = record["properties"]
    assert set(props) == set(FEATURES) | {"id"}
    assert set(record["required"]) == set(FEATURES)
    assert props["colour"]["enum"] == schema["features"]["colour"]["categories"]
    assert props["group"]["enum"] == [1, 2]
    assert props["x2"]["type"] == "integer" and props["x2"]["maximum"] == 10
    assert props["x1"]["type"] == "number" and props["x1"]["minimum"] == 0


def test_serve_refuses_a_bad_model_dir(tmp_path):
    result = CliRunner().invoke(app, ["serve", "--model", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not a GenRe model directory" in result.output


class AssetLinks(HTMLParser):
    """The src/href URLs of a page's script, link and img tags."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "link", "img"):
            self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def raw_get(base_url: str, target: str) -> tuple[int, bytes]:
    """GET `target` sent byte for byte (no client-side normalisation of ../): status, body."""
    host, port = urlsplit(base_url).hostname, urlsplit(base_url).port
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                     .encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png",
                 ".txt": "text/plain", ".md": "text/markdown"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_and_every_asset_they_reference_are_served_by_the_app(server, page):
    html = server.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    # no CDN, no web fonts, no absolute URL of any host: everything comes from this app
    assert not re.search(r"https?:|//[\w.-]+\.\w|cdn|fonts\.", html.text, re.I), html.text
    parser = AssetLinks()
    parser.feed(html.text)
    spec = re.findall(r"""(?:\burl:\s*|spec-url=)["']([^"']+)["']""", html.text)
    assert spec == ["/openapi.json"]
    bundle = "swagger-ui-bundle.js" if page == "/docs" else "redoc.standalone.js"
    assert f"{DOCS_ASSETS}/{bundle}" in parser.urls and len(parser.urls) >= 2, parser.urls
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith(DOCS_ASSETS + "/"), url
        asset = server.get(url)
        name = url.rsplit("/", 1)[1]
        assert asset.status_code == 200 and asset.content == (STATIC / name).read_bytes(), url
        kind = CONTENT_TYPES[name[name.rindex("."):]]
        assert asset.headers["content-type"].startswith(kind), (url, asset.headers)
        if name.endswith(".js"):  # the bundle's licence comment names a file served beside it
            first = asset.text.split("\n", 1)[0]
            assert first == f"/*! For license information please see {name}.LICENSE.txt */"
            licence = server.get(f"{url}.LICENSE.txt")
            assert licence.status_code == 200 and licence.text.strip(), url
            assert licence.headers["content-type"].startswith("text/plain")
    assert server.get("/openapi.json").json()["components"]["schemas"]["Record"]


def test_the_licences_are_served_and_nothing_else_is(server):
    for name in ("LICENSE-swagger-ui-dist.txt", "LICENSE-redoc.txt",
                 "NOTICE-swagger-ui-dist.txt", "README.md"):
        got = server.get(f"{DOCS_ASSETS}/{name}")
        assert got.status_code == 200 and got.content == (STATIC / name).read_bytes(), name
    assert "Apache License" in server.get(f"{DOCS_ASSETS}/LICENSE-swagger-ui-dist.txt").text
    assert "MIT License" in server.get(f"{DOCS_ASSETS}/LICENSE-redoc.txt").text
    base = str(server.base_url)
    for target in ("../http.py", "%2e%2e/http.py", "%2e%2e%2fhttp.py", "..%2fhttp.py",
                   "..%5chttp.py", "README.md/../../http.py", "http.py", "__init__.py",
                   "%2e%2e%2f%2e%2e%2fcli%2fserve.py", "favicon.png", ".", "", "%00"):
        status, body = raw_get(base, f"{DOCS_ASSETS}/{target}")
        assert status == 404 and b"import" not in body, (target, status, body[:200])


def test_static_holds_the_listed_files_each_named_with_its_digest_in_its_readme():
    """static/ is exactly the served allow-list; its README names every file with its
    package, version and sha256 (the unmodified npm bytes), and both licences are there."""
    files = {p.name for p in STATIC.iterdir()}
    assert files == set(ASSETS)
    assert {"LICENSE-swagger-ui-dist.txt", "LICENSE-redoc.txt"} <= files
    readme = (STATIC / "README.md").read_text()
    assert "swagger-ui-dist` 5.36.0" in readme and "redoc` 2.5.4" in readme
    assert "unmodified" in readme and "Apache-2.0" in readme and "MIT" in readme
    for name in files - {"README.md"}:
        digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{name}` |")),
                   None)
        assert row is not None and f"`{digest}`" in row, name


def test_a_server_that_cannot_start_is_reported_with_its_output(tmp_path):
    from genre.bench.serving import genre_serve

    with pytest.raises(RuntimeError, match=r"(?s)did not start \(exit code 2\).*error:"):
        with genre_serve("--model", str(tmp_path / "no-such-model"), timeout=60):
            pass
