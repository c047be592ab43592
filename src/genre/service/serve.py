"""A recourse service: the answers of `genre recourse` over HTTP (FastAPI; `pip install
genre-recourse[serve]`).

    genre serve --model models/compas --port 8000 --workers 2

    POST /recourse  {"records": [{"age": 23, "sex": "Male", ..., "id": "A-17"}], "options": 1,
                     "seed": 0}
    GET  /schema    the model's schema (features, kinds, categories, bounds)
    GET  /health    {"status": "ok", ...}
    GET  /docs      the OpenAPI page: the request schema is generated from the model's schema,
                    so it lists every feature with its type, bounds and categories.

Every record draws from its own random stream, keyed by the seed and its values
(genre.core.seeding), so a record gets exactly the options `genre recourse --seed S` writes for
it in any file, alone or among others; `person`
is the record's 0-based position in the request, `id` is echoed when a record has one.

Bad input is a 422 whose `message` names the record and field (`record 3, field 'age': ...`)
and whose `detail` lists every error with its location; a body over `max_bytes` is a 413;
more than `max_records` records a 422; a seed outside [0, 2**64 - 1] or a number beyond what
the model computes with (an integer beyond +-2**53, a float beyond +-3.4e38, when the schema
sets no tighter bound) a 422.

The model is loaded once per worker process, when the app is created. Concurrent requests
are batched (genre.service.batch): they wait up to `batch_wait` seconds, then are answered
together in one sampler call in a worker thread (the event loop never samples) and split
back. GET /metrics gives Prometheus metrics and every request is logged as one JSON line
(genre.service.http); /docs and /redoc are served with their assets from the app itself.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd

from genre import __version__
from genre.core.estimator import GenRe
from genre.data.schema import Feature
from genre.errors import InputError, ModelError
from genre.service.batch import Batcher, recourse_records
from genre.service.http import (
    DOCS_ASSETS,
    RECORDS_KEY,
    AccessLog,
    Metrics,
    add_offline_docs,
    configure_access_log,
)
from genre.tables.constraints import Constraints

MODEL_ENV = "GENRE_SERVE_MODEL"  # read by app_from_env (uvicorn workers import the app)
MAX_RECORDS_ENV = "GENRE_SERVE_MAX_RECORDS"
MAX_BYTES_ENV = "GENRE_SERVE_MAX_BYTES"
BATCH_WAIT_ENV = "GENRE_SERVE_BATCH_WAIT_MS"
MAX_BATCH_ENV = "GENRE_SERVE_MAX_BATCH"
ACCESS_LOG_ENV = "GENRE_SERVE_ACCESS_LOG"
MAX_RECORDS = 1000  # records per request
MAX_BYTES = 2_000_000  # request body size
MAX_OPTIONS = 20
BATCH_WAIT_MS = 5.0  # how long a request waits for others to share its sampler call
MAX_BATCH = 1000  # records per sampler call
MAX_SEED = 2**64 - 1  # seeds are 64-bit (torch and NumPy generators)
MAX_INTEGER = 2**53  # integers a float64 holds exactly (the encoder computes in float64)
MAX_FLOAT = float(np.finfo(np.float32).max)  # the model computes in float32
ID_FIELD = "id"


def create_app(model_dir: str | Path, *, max_records: int = MAX_RECORDS,
               max_bytes: int = MAX_BYTES, batch_wait_ms: float = BATCH_WAIT_MS,
               max_batch: int = MAX_BATCH):
    """The FastAPI app answering recourse with the GenRe model saved in `model_dir`.

    batch_wait_ms: how long a request may wait for others to be answered with it in one
    sampler call (0: no waiting; requests that arrive while a batch is sampled still share
    the next one); max_batch: the most records per sampler call (a request is never split).
    Raises ModelError if the directory does not hold a model.
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse, Response


    if max_records < 1 or max_bytes < 1 or max_batch < 1:
        raise InputError(f"max_records, max_bytes and max_batch must be positive, got "
                         f"{max_records}, {max_bytes}, {max_batch}")
    if not (math.isfinite(batch_wait_ms) and 0 <= batch_wait_ms <= 10_000):
        raise InputError(f"batch wait must be in [0, 10000] ms, got {batch_wait_ms}")
    model = GenRe.load(model_dir)
    model.plausibility()  # build the plausibility index now, not in the first request
    schema = model.encoder_.schema_
    request_model, record_model = request_models(model, max_records)
    has_id = ID_FIELD in record_model.model_fields

    app = FastAPI(title=f"GenRe recourse: {schema.name}", version=_version(),
                  description="Recourse for rejected people in original units (GenRe). The "
                  "request schema below lists the model's features and their categories.",
                  docs_url=None, redoc_url=None)
    metrics = Metrics({"/recourse", "/schema", "/health", "/metrics", "/docs", "/redoc",
                       "/openapi.json", DOCS_ASSETS})
    batcher = Batcher(model, max_wait=batch_wait_ms / 1000, max_records=max_batch,
                      on_batch=metrics.batch)
    metrics.queue = lambda: batcher.waiting
    app.state.batcher, app.state.metrics, app.state.model = batcher, metrics, model
    app.add_middleware(BodyLimit, max_bytes=max_bytes)
    app.add_middleware(AccessLog, metrics=metrics)  # outermost: sees every answer
    add_offline_docs(app)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                  for e in exc.errors()]  # no `input`: it may hold a NaN, not valid JSON
        return JSONResponse(status_code=422, content={
            "message": "; ".join(_where(e["loc"]) + e["msg"] for e in errors[:5])
            + (f"; and {len(errors) - 5} more" if len(errors) > 5 else ""),
            "detail": errors})

    async def recourse(request: Request, body):
        records = [r.model_dump() for r in body.records]
        ids = [r.pop(ID_FIELD) for r in records] if has_id else None
        request.scope[RECORDS_KEY] = len(records)
        table = pd.DataFrame(records, columns=schema.names)

        def finish(profiles: pd.DataFrame, diff: pd.DataFrame) -> bytes:
            # In the sampler thread: the JSON is built there, not in the event loop.
            return json.dumps({"results": answer(profiles, diff, schema.names, ids)},
                              allow_nan=False).encode()

        try:
            ranges = {k: tuple(v) for k, v in (body.ranges or {}).items()}
            constraints = Constraints.make(body.freeze, ranges, source="request").check(
                schema, source="request")
            # Requests share a sampler call when they ask the same of it.
            key = (body.options, body.seed, body.min_probability, tuple(sorted(body.freeze)),
                   tuple(sorted(ranges.items())))
            content = await batcher.submit(
                table, finish, key, options=body.options, seed=body.seed,
                min_probability=body.min_probability, constraints=constraints)
        except InputError as exc:  # what the request model cannot see (rare)
            return JSONResponse(status_code=422, content={"message": str(exc), "detail": [
                {"loc": ["body", "records"], "msg": str(exc), "type": "value_error"}]})
        return Response(content, media_type="application/json")

    # The body's type exists only now (built from the schema): set it before FastAPI reads it.
    # (and the Request's: annotations are strings here, resolved in this module's globals)
    recourse.__annotations__.update(body=request_model, request=Request)
    app.post("/recourse", responses={
        200: {"description": "per person (in order): person, id (when given), status and "
              "options, each with its profile, h_probability, effort, cost, plausible and "
              "changes (feature, from, to)",
              "content": {"application/json": {"schema": {"type": "object"}}}},
        413: {"description": "request body too large"}})(recourse)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": schema.name, "features": schema.n_features,
                "max_records": max_records, "max_bytes": max_bytes,
                "batch_wait_ms": batch_wait_ms, "max_batch": max_batch}

    @app.get("/schema")
    async def get_schema() -> dict:
        return schema.to_dict()

    @app.get("/metrics", response_class=PlainTextResponse)
    async def get_metrics():
        """Prometheus metrics of this worker process (text format 0.0.4)."""
        return PlainTextResponse(metrics.render(),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    app.router.add_event_handler("shutdown", batcher.close)
    return app


def app_from_env():
    """create_app for the model named by $GENRE_SERVE_MODEL (how `genre serve --workers N`
    gives each uvicorn worker process its app)."""
    model_dir = os.environ.get(MODEL_ENV)
    if not model_dir:
        raise ModelError(f"set {MODEL_ENV} to a fitted GenRe model directory")
    configure_access_log(os.environ.get(ACCESS_LOG_ENV, "1") == "1")
    return create_app(model_dir, max_records=int(os.environ.get(MAX_RECORDS_ENV, MAX_RECORDS)),
                      max_bytes=int(os.environ.get(MAX_BYTES_ENV, MAX_BYTES)),
                      batch_wait_ms=float(os.environ.get(BATCH_WAIT_ENV, BATCH_WAIT_MS)),
                      max_batch=int(os.environ.get(MAX_BATCH_ENV, MAX_BATCH)))


def answer(profiles: pd.DataFrame, diff: pd.DataFrame, names: list[str],
           ids: list | None = None) -> list[dict]:
    """The JSON answer: per person (in order) its status and options, each option with its
    profile (original units), h_probability, cost, plausible and changes (feature/from/to)."""
    if "option" not in profiles.columns:
        profiles = profiles.assign(option=1)
    changes: dict[tuple, list] = {}
    for row in diff.to_dict("records"):
        changes.setdefault((row["person"], row["option"]), []).append(
            {"feature": row["feature"], "from": _plain(row["from"]), "to": _plain(row["to"])})
    people: dict[Any, dict] = {}
    for row in profiles.to_dict("records"):
        person = _plain(row["person"])
        if person not in people:
            people[person] = {"person": person, "status": row["status"], "options": []}
            if ids is not None and ids[len(people) - 1] is not None:
                people[person][ID_FIELD] = ids[len(people) - 1]
        people[person]["options"].append({
            "option": int(row["option"]),
            "h_probability": _plain(row["h_probability"]),
            "effort": _plain(row["effort"]),
            "cost": _plain(row["cost"]),
            "plausible": bool(row["plausible"]),
            "profile": {name: _plain(row[name]) for name in names},
            "changes": changes.get((row["person"], row["option"]), []),
        })
    return list(people.values())


def request_models(model, max_records: int = MAX_RECORDS):
    """(Request, Record): pydantic models generated from the model's schema.

    A record holds every feature (numeric: a finite number within the schema's bounds, an
    integer for integer features; categorical: one of its categories) and optionally an `id`
    (a string or integer echoed in the answer; absent when a feature is called `id`);
    unknown fields are refused. A number must also lie within +-2**53 (integer features)
    or +-3.4e38 (others) where the schema sets no tighter bound. A request holds
    1..max_records records, `options` (1..20), `seed` (0..2**64 - 1, default 0), and
    optionally `min_probability`, `freeze` (feature names) and `ranges` ({numeric feature:
    [lo, hi]}), which apply to every record.
    """
    from pydantic import BeforeValidator, ConfigDict, Field, create_model

    fields: dict[str, Any] = {}
    names = model.encoder_.schema_.names
    numeric = [f.name for f in model.encoder_.schema_.features if not f.is_categorical]
    enc = model.encoder_
    for j, f in enumerate(enc.schema_.features):
        middle = (float(enc.lo_[j]) + float(enc.hi_[j])) / 2  # an example for the docs
        example = None if f.is_categorical else (round(middle) if f.integer
                                                 else float(f"{middle:.4g}"))
        fields[f.name] = (_field_type(f, BeforeValidator, Field, example), ...)
    if ID_FIELD not in fields:
        fields[ID_FIELD] = (str | int | None, Field(None, description="echoed in the answer"))
    record = create_model("Record", __config__=ConfigDict(extra="forbid"), **fields)
    request = create_model(
        "RecourseRequest", __config__=ConfigDict(extra="forbid"),
        records=(list[record], Field(min_length=1, max_length=max_records,
                                     description="people in original units")),
        options=(int, Field(1, ge=1, le=MAX_OPTIONS, description="recourses per person")),
        seed=(int, Field(0, ge=0, le=MAX_SEED,
                         description="sampling seed (as `genre recourse --seed`)")),
        min_probability=(float | None, Field(
            None, ge=0, lt=1, description="a recourse needs at least this probability from h "
            "(besides h accepting it), as `--min-probability`")),
        freeze=(list[Literal[tuple(names)]], Field(
            [], description="features no recourse may change, for every record")),
        ranges=(dict[Literal[tuple(numeric)], tuple[float | None, float | None]] if numeric
                else dict[str, tuple[float, float]], Field(
            {}, description="numeric feature -> [lo, hi]: where a changed value must lie "
            "(original units; null for an open end), for every record")),
    )
    return request, record


def _field_type(f: Feature, BeforeValidator, Field, example=None):
    """The pydantic type of feature f; `example`: the value the docs show."""
    what = "immutable; " if f.immutable else ""
    what += f"may only {f.monotone}; " if f.monotone else ""
    if f.is_categorical:
        cats = tuple(f.categories)
        check = BeforeValidator(_not_bool) if not any(isinstance(c, bool) for c in cats) \
            else BeforeValidator(lambda v: v)
        return Annotated[Literal[cats], check, Field(description=what + "categorical",
                                                     examples=[cats[0]] if cats else None)]
    # Beyond what the encoder's float64 holds exactly (integers) or the model's float32
    # carries (floats): refused, whatever the schema says.
    limit = MAX_INTEGER if f.integer else MAX_FLOAT
    bounds = {"ge": -limit if f.min is None else max(f.min, -limit),
              "le": limit if f.max is None else min(f.max, limit)}
    kind = int if f.integer else float
    what += "numeric, integer" if f.integer else "numeric"
    # Field first: the JSON schema then shows the bounds; the validator still runs first.
    extra = {} if example is None else {"examples": [example]}
    return Annotated[kind, Field(description=what, **bounds, **extra), BeforeValidator(_number)]


def _number(v):
    if isinstance(v, bool | str) or v is None:
        raise ValueError(f"expected a number, got {v!r}")
    if isinstance(v, float) and not math.isfinite(v):  # before the bounds see it
        raise ValueError(f"expected a finite number, got {v!r}")
    return v


def _not_bool(v):
    if isinstance(v, bool):
        raise ValueError(f"expected a category, got {v!r}")
    return v


def _where(loc) -> str:
    """('body', 'records', 3, 'age') -> "record 3, field 'age': "."""
    loc = list(loc)[1:] if loc and loc[0] == "body" else list(loc)
    if len(loc) >= 2 and loc[0] == "records" and isinstance(loc[1], int):
        rest = ".".join(str(x) for x in loc[2:])
        return f"record {loc[1]}" + (f", field '{rest}'" if rest else "") + ": "
    return f"field '{'.'.join(str(x) for x in loc)}': " if loc else ""


def _plain(v):
    """numpy scalar -> Python scalar; NaN -> None (JSON has no NaN)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _version() -> str:
    return __version__


class BodyLimit:
    """ASGI middleware: a 413 for a request body over max_bytes (by Content-Length, or
    counted as it arrives when the body is chunked)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from fastapi import HTTPException
        from fastapi.responses import JSONResponse

        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response = JSONResponse(status_code=413, content=self._detail())
            return await response(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # FastAPI re-raises an HTTPException from the body read
                raise HTTPException(413, detail=self._detail()["detail"])
            return message

        return await self.app(scope, limited, send)

    def _detail(self) -> dict:
        return {"message": f"request body over {self.max_bytes} bytes",
                "detail": f"request body over {self.max_bytes} bytes; send fewer records "
                "per request"}


__all__ = ["app_from_env", "create_app", "recourse_records", "request_models"]
