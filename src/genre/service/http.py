"""What `genre serve` adds around the app: Prometheus metrics, a structured access log
(one JSON line per request) and offline API docs (the read deadline on connections is in
genre.service.h11).

Metrics (GET /metrics, Prometheus text format 0.0.4; per worker process):
    genre_requests_total{path,method,status}     requests answered
    genre_errors_total{path,status}              answers with status >= 400
    genre_records_total                          records answered by POST /recourse
    genre_request_duration_seconds{path}         latency histogram (from the first byte the
                                                 app sees to the last it sends)
    (path: the route; the docs' assets share the label /docs-assets; others are 'other')
    genre_batch_records, genre_batch_requests    histograms: records and requests per
                                                 sampler call (dynamic batching)
    genre_batch_seconds                          histogram: seconds per sampler call
    genre_queue_records                          gauge: records waiting for a batch

Access log: the logger `genre.serve.access` gets one line per request, a JSON object with
id (the X-Request-ID header when it is a short token, else a fresh one; echoed in the
response), method, path, status, records (POST /recourse) and ms.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from pathlib import Path

ACCESS_LOGGER = "genre.serve.access"
DOCS_ASSETS = "/docs-assets"  # where the docs' scripts, styles, icon and licences are served
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)
RECORDS_KEY = "genre.records"  # set in the ASGI scope by POST /recourse
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class Histogram:
    """A Prometheus histogram (cumulative buckets, sum, count)."""

    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        i = next((k for k, b in enumerate(self.buckets) if value <= b), len(self.buckets))
        self.counts[i] += 1
        self.sum += value

    def lines(self, name: str, labels: str = "") -> list[str]:
        out, total = [], 0
        sep = "," if labels else ""
        for b, n in zip((*self.buckets, "+Inf"), self.counts, strict=True):
            total += n
            out.append(f'{name}_bucket{{{labels}{sep}le="{b}"}} {total}')
        brace = f"{{{labels}}}" if labels else ""
        return out + [f"{name}_sum{brace} {self.sum:.6f}", f"{name}_count{brace} {total}"]


class Metrics:
    """The service's counters and histograms (thread-safe: the sampler thread reports
    batches)."""

    def __init__(self, paths: set[str]):
        self.paths = paths
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}
        self.records = 0
        self.latency: dict[str, Histogram] = {}
        self.batch_records = Histogram(BATCH_BUCKETS)
        self.batch_requests = Histogram(BATCH_BUCKETS)
        self.batch_seconds = Histogram(LATENCY_BUCKETS)
        self.queue = lambda: 0

    def path_label(self, path: str) -> str:
        """The route's path, or 'other' (unknown paths do not grow the label set); the
        docs' assets share one label, DOCS_ASSETS, when it is one of the paths."""
        if path in self.paths:
            return path
        if path.startswith(DOCS_ASSETS + "/") and DOCS_ASSETS in self.paths:
            return DOCS_ASSETS
        return "other"

    def request(self, path: str, method: str, status: int, seconds: float,
                records: int) -> None:
        path = self.path_label(path)
        with self._lock:
            key = (path, method if method in ("GET", "POST", "HEAD") else "other", status)
            self.requests[key] = self.requests.get(key, 0) + 1
            self.records += records
            self.latency.setdefault(path, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, requests: int, records: int, seconds: float) -> None:
        with self._lock:
            self.batch_requests.observe(requests)
            self.batch_records.observe(records)
            self.batch_seconds.observe(seconds)

    def render(self) -> str:
        """The Prometheus text exposition."""
        with self._lock:
            lines = ["# HELP genre_requests_total Requests answered.",
                     "# TYPE genre_requests_total counter"]
            for (path, method, status), n in sorted(self.requests.items()):
                lines.append(f'genre_requests_total{{path="{path}",method="{method}",'
                             f'status="{status}"}} {n}')
            lines += ["# HELP genre_errors_total Answers with a status of 400 or more.",
                      "# TYPE genre_errors_total counter"]
            errors: dict[tuple[str, int], int] = {}
            for (path, _, status), n in self.requests.items():
                if status >= 400:
                    errors[(path, status)] = errors.get((path, status), 0) + n
            for (path, status), n in sorted(errors.items()):
                lines.append(f'genre_errors_total{{path="{path}",status="{status}"}} {n}')
            lines += ["# HELP genre_records_total Records answered by POST /recourse.",
                      "# TYPE genre_records_total counter", f"genre_records_total {self.records}",
                      "# HELP genre_request_duration_seconds Request latency.",
                      "# TYPE genre_request_duration_seconds histogram"]
            for path, h in sorted(self.latency.items()):
                lines += h.lines("genre_request_duration_seconds", f'path="{path}"')
            for name, h, what in (
                    ("genre_batch_records", self.batch_records, "Records per sampler call."),
                    ("genre_batch_requests", self.batch_requests, "Requests per sampler call."),
                    ("genre_batch_seconds", self.batch_seconds, "Seconds per sampler call.")):
                lines += [f"# HELP {name} {what}", f"# TYPE {name} histogram",
                          *h.lines(name)]
            lines += ["# HELP genre_queue_records Records waiting for a batch.",
                      "# TYPE genre_queue_records gauge", f"genre_queue_records {self.queue()}"]
        return "\n".join(lines) + "\n"


class AccessLog:
    """ASGI middleware: times each HTTP request, records it in `metrics` and logs one JSON
    line to the `genre.serve.access` logger; sets the X-Request-ID response header."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics
        self.log = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        status = 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = dict(message)
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - t0
            records = int(scope.get(RECORDS_KEY, 0))
            self.metrics.request(scope["path"], scope["method"], status, seconds, records)
            if self.log.isEnabledFor(logging.INFO):
                self.log.info(json.dumps({
                    "id": request_id, "method": scope["method"],
                    "path": self.metrics.path_label(scope["path"]), "status": status,
                    "records": records, "ms": round(seconds * 1000, 1)}))


def configure_access_log(enabled: bool = True) -> None:
    """Access lines to stderr, one JSON object per line (enabled), or none."""
    log = logging.getLogger(ACCESS_LOGGER)
    log.propagate = False
    if not enabled:
        log.setLevel(logging.WARNING)
        return
    log.setLevel(logging.INFO)
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)


# ---------------------------------------------------------------- offline docs
STATIC = Path(__file__).resolve().parent / "static"
_TEXT = "text/plain; charset=utf-8"
# Every file of static/ (the unmodified swagger-ui-dist and redoc npm files, their licences;
# README.md names each) and its content type. GET {DOCS_ASSETS}/{name} serves these only.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "swagger-ui-bundle.js.LICENSE.txt": _TEXT,  # the bundles' first lines point here
    "redoc.standalone.js.LICENSE.txt": _TEXT,
    "LICENSE-swagger-ui-dist.txt": _TEXT,
    "NOTICE-swagger-ui-dist.txt": _TEXT,
    "LICENSE-redoc.txt": _TEXT,
    "README.md": "text/markdown; charset=utf-8",
}


def add_offline_docs(app) -> None:
    """GET /docs (Swagger UI) and /redoc (ReDoc), their scripts, styles and icon served by
    the app itself under /docs-assets/ from genre's own package data (static/: the
    unmodified npm files with their licences), so the pages work on a network without
    internet; no CDN, no web fonts.

    Parameters
    ----------
    app : fastapi.FastAPI
        An app created with ``docs_url=None, redoc_url=None``.
    """
    from fastapi import HTTPException
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import FileResponse

    @app.get(DOCS_ASSETS + "/{name}", include_in_schema=False)
    async def asset(name: str):
        if name not in ASSETS:  # an allow-list: no other file, no path traversal
            raise HTTPException(status_code=404)
        return FileResponse(STATIC / name, media_type=ASSETS[name],
                            headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/docs", include_in_schema=False)
    async def swagger():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            # validatorUrl: Swagger UI would ask a public validator for a badge image.
            swagger_ui_parameters={"validatorUrl": None, "defaultModelsExpandDepth": 3,
                                   "defaultModelExpandDepth": 3})

    @app.get("/redoc", include_in_schema=False)
    async def redoc():
        return get_redoc_html(openapi_url=app.openapi_url, title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
                              with_google_fonts=False)


__all__ = ["ASSETS", "DOCS_ASSETS", "STATIC", "AccessLog", "Metrics", "add_offline_docs",
           "configure_access_log"]
