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
    batch_wait_ms: Annotated[float, typer.Option(
        help="how long a request waits for others to share its sampler call, ms")] = 5.0,
    max_batch: Annotated[int, typer.Option(
        help="most records answered in one sampler call (a request is never split)")] = 1000,
    read_timeout: Annotated[float, typer.Option(
        help="seconds a request's head and body may take to arrive; slower connections "
        "are closed")] = 10.0,
    timeout_keep_alive: Annotated[int, typer.Option(
        help="seconds an idle kept-alive connection stays open")] = 5,
    limit_concurrency: Annotated[int, typer.Option(
        help="most connections and requests at once per worker; more get a 503")] = 256,
    access_log: Annotated[bool, typer.Option(
        help="one JSON line per request on stderr (id, method, path, status, records, ms)")]
    = True,
) -> None:
    """Serve recourse over HTTP: POST /recourse, GET /schema, /health, /metrics
    (Prometheus), docs at /docs and /redoc (served offline, by the app itself).

    POST /recourse takes {"records": [{feature: value, ..., "id": optional}, ...],
    "options": K, "seed": S} in original units and answers per person its status and
    options (profile, h_probability, cost, plausible, changes), as `genre recourse` would
    for those rows. Concurrent requests are answered together in one sampler call (dynamic
    batching: --batch-wait-ms, --max-batch), in a thread beside the event loop.
    """
    try:
        import uvicorn

        from genre.service import h11 as serve_h11
        from genre.service import serve as service
        from genre.service.http import configure_access_log
    except ImportError as exc:
        fail(f"genre serve needs the [serve] extra: pip install 'genre-recourse[serve]' ({exc})")
    for name, value, ok in (("--workers", workers, workers >= 1),
                            ("--read-timeout", read_timeout, 0 < read_timeout <= 3600),
                            ("--timeout-keep-alive", timeout_keep_alive,
                             0 < timeout_keep_alive <= 3600),
                            ("--limit-concurrency", limit_concurrency,
                             1 <= limit_concurrency <= 1_000_000)):
        if not ok:
            fail(f"{name} {value:g} is out of range")
    os.environ[serve_h11.READ_TIMEOUT_ENV] = str(read_timeout)
    serve_h11.read_timeout = read_timeout
    configure_access_log(access_log)
    try:  # loads the model: a bad directory fails here, before any worker starts
        app = service.create_app(model, max_records=max_records, max_bytes=max_bytes,
                                 batch_wait_ms=batch_wait_ms, max_batch=max_batch)
    except GenreError as exc:
        fail(exc)
    console.print(f"serving {model} on http://{host}:{port} ({workers} worker"
                  f"{'s' if workers > 1 else ''}); docs at /docs")
    server = dict(host=host, port=port, log_level="warning", access_log=False,
                  http=serve_h11.TimedH11Protocol, timeout_keep_alive=timeout_keep_alive,
                  limit_concurrency=limit_concurrency, timeout_graceful_shutdown=10)
    if workers == 1:
        uvicorn.run(app, **server)
        return
    # Several processes: each imports the app factory and loads the model itself.
    os.environ[service.MODEL_ENV] = str(Path(model).resolve())
    os.environ[service.MAX_RECORDS_ENV] = str(max_records)
    os.environ[service.MAX_BYTES_ENV] = str(max_bytes)
    os.environ[service.BATCH_WAIT_ENV] = str(batch_wait_ms)
    os.environ[service.MAX_BATCH_ENV] = str(max_batch)
    os.environ[service.ACCESS_LOG_ENV] = "1" if access_log else "0"
    del app
    uvicorn.run("genre.service.serve:app_from_env", factory=True, workers=workers, **server)
