"""Load test of `genre serve`: requests/s and p50/p99 latency by concurrent clients and
people per request.

Starts `genre serve --model DIR --workers W` on a free port, then for each (people per
request, concurrent clients) cell runs that many httpx async clients for --duration
seconds, each posting requests back to back (records: people of the bundled dataset that
the model's classifier rejects, cycled). Writes a Markdown table.

    genre fit --dataset compas --fast --out /tmp/m
    python benchmarks/load_test.py --model /tmp/m --dataset compas --workers 1 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from genre.core.estimator import GenRe
from genre.data.datasets import load
from genre.io import write_text


def rejected_records(model_dir: Path, dataset: str) -> list[dict]:
    model = GenRe.load(model_dir)
    people = load(dataset).X_test
    p = model.classifier_.predict_proba(model.encoder_.transform(people))
    return people[p <= 0.5].to_dict("records")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: Path, workers: int, max_records: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from genre.cli import app; app()", "serve",
                             "--model", str(model_dir), "--port", str(port), "--workers",
                             str(workers), "--max-records", str(max_records)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("genre serve did not start")


async def cell(url: str, records: list[dict], people: int, clients: int,
               duration: float) -> dict:
    """`clients` loops posting `people` records each for `duration` seconds."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(i: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        k = i * people
        while time.perf_counter() < stop:
            batch = [records[(k + j) % len(records)] for j in range(people)]
            k += people * clients
            t0 = time.perf_counter()
            response = await http.post("/recourse", json={"records": batch})
            if response.status_code == 200:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1

    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        await http.post("/recourse", json={"records": records[:people]})  # warm-up
        start = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        elapsed = time.perf_counter() - start
    lat = np.asarray(latencies) * 1000
    return {"requests": len(lat), "errors": errors, "rps": len(lat) / elapsed,
            "people_s": len(lat) * people / elapsed, "elapsed": elapsed,
            "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
            "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan")}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--dataset", default="compas", help="bundled dataset to draw people from")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--people", type=int, nargs="+", default=[1, 100])
    ap.add_argument("--duration", type=float, default=6.0, help="seconds per cell")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/serve/results.md"))
    ap.add_argument("--note", default="", help="a line about the machine's state")
    args = ap.parse_args(argv)
    records = rejected_records(args.model, args.dataset)
    lines = ["# `genre serve` under load", "", "```",
             "python " + " ".join(shlex.quote(a) for a in sys.argv), "```", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python "
             f"{platform.python_version()}, {platform.system()}. {args.note}".rstrip(), "",
             f"Model: GenRe fitted on {args.dataset} (`{args.model}`). Each request carries "
             f"people the model's classifier rejects ({len(records)} distinct test rows of "
             f"{args.dataset}, cycled), options 1, seed 0. Each cell: the clients post back "
             f"to back for {args.duration:g} s (after one warm-up request); latency is "
             "measured at the client, from sending the request to reading the answer; "
             "requests/s counts answered requests (HTTP 200) over the cell's wall time.", ""]
    for workers in args.workers:
        proc, url = start_server(args.model, workers, max(args.people))
        try:
            lines += [f"## {workers} uvicorn worker{'s' if workers > 1 else ''}", "",
                      "| people / request | clients | requests/s | people/s | p50 ms | p99 ms "
                      "| requests | errors |", "|---|---|---|---|---|---|---|---|"]
            for people in args.people:
                for clients in args.clients:
                    r = asyncio.run(cell(url, records, people, clients, args.duration))
                    row = (f"| {people} | {clients} | {r['rps']:.1f} | {r['people_s']:.0f} | "
                           f"{r['p50']:.0f} | {r['p99']:.0f} | {r['requests']} | "
                           f"{r['errors']} |")
                    print(f"workers {workers} {row}", flush=True)
                    lines.append(row)
            lines.append("")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
