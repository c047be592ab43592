"""A recourse service: the answers of `genre recourse` over HTTP (FastAPI; `pip install
genre-recourse[serve]`).

    genre serve --model models/compas --port 8000 --workers 2

    POST /recourse  {"records": [{"age": 23, "sex": "Male", ..., "id": "A-17"}], "options": 1,
                     "seed": 0}
    GET  /schema    the model's schema (features, kinds, categories, bounds)
    GET  /health    {"status": "ok", ...}
    GET  /docs      the OpenAPI page: the request schema is generated from the model's schema,
                    so it lists every feature with its type, bounds and categories.

The records of one request are answered as one table with the seed scheme of
`genre.tables.streaming` (block b of SEED_BLOCK records gets block_seed(seed, b)), so a request gets
exactly the rows `genre recourse --seed S` writes for a file holding those records; `person`
is the record's 0-based position in the request, `id` is echoed when a record has one.

Bad input is a 422 whose `message` names the record and field (`record 3, field 'age': ...`)
and whose `detail` lists every error with its location; a body over `max_bytes` is a 413;
more than `max_records` records a 422. The model is loaded once per worker process, when the
app is created; requests are answered one at a time per worker (the model is not
thread-safe, and a CPU worker gains nothing from interleaving them).
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd

from genre import __version__
from genre.core.estimator import GenRe
from genre.data.schema import Feature
from genre.errors import InputError, ModelError
from genre.tables.streaming import answer_blocks

MODEL_ENV = "GENRE_SERVE_MODEL"  # read by app_from_env (uvicorn workers import the app)
MAX_RECORDS_ENV = "GENRE_SERVE_MAX_RECORDS"
MAX_BYTES_ENV = "GENRE_SERVE_MAX_BYTES"
MAX_RECORDS = 1000  # records per request
MAX_BYTES = 2_000_000  # request body size
MAX_OPTIONS = 20
ID_FIELD = "id"


def create_app(model_dir: str | Path, *, max_records: int = MAX_RECORDS,
               max_bytes: int = MAX_BYTES):
    """The FastAPI app answering recourse with the GenRe model saved in `model_dir`.

    Raises ModelError if the directory does not hold a model.
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    if max_records < 1 or max_bytes < 1:
        raise InputError(f"max_records and max_bytes must be positive, got {max_records}, "
                         f"{max_bytes}")
    model = GenRe.load(model_dir)
    model.plausibility()  # build the LOF now, not in the first request
    schema = model.encoder_.schema_
    request_model, record_model = request_models(model, max_records)
    lock = threading.Lock()

    app = FastAPI(title=f"GenRe recourse: {schema.name}", version=_version(),
                  description="Recourse for rejected people in original units (GenRe). The "
                  "request schema below lists the model's features and their categories.")
    app.add_middleware(BodyLimit, max_bytes=max_bytes)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                  for e in exc.errors()]  # no `input`: it may hold a NaN, not valid JSON
        return JSONResponse(status_code=422, content={
            "message": "; ".join(_where(e["loc"]) + e["msg"] for e in errors[:5])
            + (f"; and {len(errors) - 5} more" if len(errors) > 5 else ""),
            "detail": errors})

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": schema.name, "features": schema.n_features,
                "max_records": max_records, "max_bytes": max_bytes}

    @app.get("/schema")
    def get_schema() -> dict:
        return schema.to_dict()

    def recourse(body) -> dict:
        records = [r.model_dump() for r in body.records]
        ids = [r.pop(ID_FIELD) for r in records] if ID_FIELD in record_model.model_fields \
            else [None] * len(records)
        table = pd.DataFrame(records, columns=schema.names)
        try:
            with lock:
                profiles, diff = recourse_records(model, table, options=body.options,
                                                  seed=body.seed)
        except InputError as exc:  # what the request model cannot see (rare)
            return JSONResponse(status_code=422, content={"message": str(exc), "detail": [
                {"loc": ["body", "records"], "msg": str(exc), "type": "value_error"}]})
        return {"results": answer(profiles, diff, schema.names, ids)}

    # The body's type exists only now (built from the schema): set it before FastAPI reads it.
    recourse.__annotations__["body"] = request_model
    app.post("/recourse", responses={413: {"description": "request body too large"}})(recourse)
    return app


def app_from_env():
    """create_app for the model named by $GENRE_SERVE_MODEL (how `genre serve --workers N`
    gives each uvicorn worker process its app)."""
    model_dir = os.environ.get(MODEL_ENV)
    if not model_dir:
        raise ModelError(f"set {MODEL_ENV} to a fitted GenRe model directory")
    return create_app(model_dir, max_records=int(os.environ.get(MAX_RECORDS_ENV, MAX_RECORDS)),
                      max_bytes=int(os.environ.get(MAX_BYTES_ENV, MAX_BYTES)))


def recourse_records(model, table: pd.DataFrame, *, options: int = 1,
                     best_k: int | None = None, seed: int = 0,
                     source: str = "request") -> tuple[pd.DataFrame, pd.DataFrame]:
    """recourse_table over a whole table with genre.tables.streaming's seed scheme (answer_blocks:
    block b of SEED_BLOCK rows with block_seed(seed, b), person = 0-based position).
    Returns (profiles, changes)."""
    id_column = model.encoder_.schema_.id_column
    parts = list(answer_blocks(model, [table], options=options, best_k=best_k, seed=seed,
                               source=source,
                               id_column=id_column if id_column in table.columns else None))
    return (pd.concat([p for p, _, _ in parts], ignore_index=True),
            pd.concat([d for _, d, _ in parts], ignore_index=True))


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
    unknown fields are refused. A request holds 1..max_records records, `options` (1..20)
    and `seed` (default 0).
    """
    from pydantic import BeforeValidator, ConfigDict, Field, create_model

    fields: dict[str, Any] = {}
    for f in model.encoder_.schema_.features:
        fields[f.name] = (_field_type(f, BeforeValidator, Field), ...)
    if ID_FIELD not in fields:
        fields[ID_FIELD] = (str | int | None, Field(None, description="echoed in the answer"))
    record = create_model("Record", __config__=ConfigDict(extra="forbid"), **fields)
    request = create_model(
        "RecourseRequest", __config__=ConfigDict(extra="forbid"),
        records=(list[record], Field(min_length=1, max_length=max_records,
                                     description="people in original units")),
        options=(int, Field(1, ge=1, le=MAX_OPTIONS, description="recourses per person")),
        seed=(int, Field(0, ge=0, description="sampling seed (as `genre recourse --seed`)")),
    )
    return request, record


def _field_type(f: Feature, BeforeValidator, Field):
    what = "immutable; " if f.immutable else ""
    what += f"may only {f.monotone}; " if f.monotone else ""
    if f.is_categorical:
        cats = tuple(f.categories)
        check = BeforeValidator(_not_bool) if not any(isinstance(c, bool) for c in cats) \
            else BeforeValidator(lambda v: v)
        return Annotated[Literal[cats], check, Field(description=what + "categorical")]
    bounds = {k: v for k, v in (("ge", f.min), ("le", f.max)) if v is not None}
    kind = int if f.integer else float
    what += "numeric, integer" if f.integer else "numeric"
    # Field first: the JSON schema then shows the bounds; the validator still runs first.
    return Annotated[kind, Field(description=what, **bounds), BeforeValidator(_number)]


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
