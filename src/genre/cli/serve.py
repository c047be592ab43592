"""`genre serve`: the recourse service (FastAPI + uvicorn; the [serve] extra)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from genre.cli.common import console, fail
from genre.errors import GenreError


def serve(
    model: Annotated[Path, typer.Option(help="a fitted GenRe model directory")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(help="worker processes (each loads the model once)")]
    = 1,
    max_records: Annotated[int, typer.Option(help="most records per request")] = 1000,
    max_bytes: Annotated[int, typer.Option(help="largest request body, bytes")] = 2_000_000,
) -> None:
    """Serve recourse over HTTP: POST /recourse, GET /schema, GET /health, docs at /docs.

    POST /recourse takes {"records": [{feature: value, ..., "id": optional}, ...],
    "options": K, "seed": S} in original units and answers per person its status and
    options (profile, h_probability, cost, plausible, changes), as `genre recourse` would
    for those rows.
    """
    try:
        import uvicorn

        from genre.service import serve as service
    except ImportError as exc:
        fail(f"genre serve needs the [serve] extra: pip install 'genre-recourse[serve]' ({exc})")
    if workers < 1:
        fail("--workers must be at least 1")
    try:  # loads the model: a bad directory fails here, before any worker starts
        app = service.create_app(model, max_records=max_records, max_bytes=max_bytes)
    except GenreError as exc:
        fail(exc)
    console.print(f"serving {model} on http://{host}:{port} ({workers} worker"
                  f"{'s' if workers > 1 else ''}); docs at /docs")
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level="warning")
        return
    # Several processes: each imports the app factory and loads the model itself.
    os.environ[service.MODEL_ENV] = str(Path(model).resolve())
    os.environ[service.MAX_RECORDS_ENV] = str(max_records)
    os.environ[service.MAX_BYTES_ENV] = str(max_bytes)
    del app
    uvicorn.run("genre.service.serve:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level="warning")
