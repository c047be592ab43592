"""Load test of `genre serve`: requests/s, p50/p99 latency and errors by concurrent clients
and people per request, with the machine's load average before and after every cell.

Starts `genre serve --model DIR --workers W` (dynamic batching: --batch-wait-ms,
--max-batch) on a free port, then for each (people per request, concurrent clients) cell
runs that many httpx async clients for --duration seconds, each posting requests back to
back (records: people of the bundled dataset that the model's classifier rejects, cycled).
A cell whose 1-minute load average was above --loaded (1.5) when it started is marked
"loaded": its figures are a lower bound. After each cell, --check answers received during
it are compared with `genre recourse`'s answer for the same records and seed
(recourse_records in this process, the function the CLI runs per block): equal JSON.
Writes a Markdown table.

    genre fit --dataset compas --out /tmp/m
    python benchmarks/load_test.py --model /tmp/m --dataset compas --workers 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from genre.bench.common import script_header
from genre.bench.serving import genre_serve
from genre.core.estimator import GenRe
from genre.data.datasets import load
from genre.io import write_text
from genre.service.serve import answer, recourse_records


def rejected_records(model: GenRe, dataset: str) -> list[dict]:
    people = load(dataset).X_test
    p = model.classifier_.predict_proba(model.encoder_.transform(people))
    return json.loads(people[p <= 0.5].to_json(orient="records"))  # plain JSON values


async def cell(url: str, records: list[dict], people: int, clients: int,
               duration: float, keep: int) -> dict:
    """`clients` loops posting `people` records each for `duration` seconds; the first
    `keep` answered requests are kept (records, answer) for checking."""
    latencies: list[float] = []
    errors = 0
    kept: list[tuple[list[dict], list]] = []
    stop = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(i: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        k = i * people
        while time.perf_counter() < stop:
            batch = [records[(k + j) % len(records)] for j in range(people)]
            k += people * clients
            t0 = time.perf_counter()
            try:
                response = await http.post("/recourse", json={"records": batch})
            except httpx.HTTPError:
                errors += 1
                continue
            if response.status_code == 200:
                latencies.append(time.perf_counter() - t0)
                if len(kept) < keep:
                    kept.append((batch, response.json()["results"]))
            else:
                errors += 1

    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        await http.post("/recourse", json={"records": records[:people]})  # warm-up
        start = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        elapsed = time.perf_counter() - start
    lat = np.asarray(latencies) * 1000
    return {"requests": len(lat), "errors": errors, "rps": len(lat) / elapsed,
            "people_s": len(lat) * people / elapsed, "elapsed": elapsed, "kept": kept,
            "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
            "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan")}


def check(model: GenRe, kept: list[tuple[list[dict], list]]) -> int:
    """How many kept answers equal recourse_records' answer for the same records (seed 0,
    options 1), compared as JSON."""
    names = model.encoder_.schema_.names
    equal = 0
    for batch, got in kept:
        want = answer(*recourse_records(model, pd.DataFrame(batch, columns=names)), names)
        equal += json.loads(json.dumps(want)) == got
    return equal


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--dataset", default="compas", help="bundled dataset to draw people from")
    ap.add_argument("--workers", type=int, nargs="+", default=[1])
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--people", type=int, nargs="+", default=[1, 100])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per cell")
    ap.add_argument("--batch-wait-ms", type=float, default=5.0)
    ap.add_argument("--max-batch", type=int, default=1000)
    ap.add_argument("--check", type=int, default=20,
                    help="answers per cell compared with genre recourse's")
    ap.add_argument("--loaded", type=float, default=1.5,
                    help="a cell starting above this 1-minute load average is marked loaded")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/serve/results.md"))
    ap.add_argument("--note", default="", help="a line about the machine's state")
    args = ap.parse_args(argv)
    model = GenRe.load(args.model)
    records = rejected_records(model, args.dataset)
    lines = script_header("`genre serve` under load", platform.system(), args.note) + [
             f"Model: GenRe fitted on {args.dataset} (`{args.model}`). Each request carries "
             f"people the model's classifier rejects ({len(records)} distinct test rows of "
             f"{args.dataset}, cycled), options 1, seed 0. Server: dynamic batching with "
             f"--batch-wait-ms {args.batch_wait_ms:g} and --max-batch {args.max_batch}. "
             f"Each cell: the clients post back to back for {args.duration:g} s (after one "
             "warm-up request); latency is measured at the client (which runs on the same "
             "machine), from sending the request to reading the answer; requests/s counts "
             "answered requests (HTTP 200) over the cell's wall time; errors counts other "
             "answers and failed connections. load before/after: the 1-minute load average; "
             f"a cell that started above {args.loaded:g} is marked loaded (other jobs were "
             "running: a lower bound). checked: answers received during the cell that equal "
             "`genre recourse`'s answer for the same records (recourse_records, the CLI's "
             "per-block function, in this process).", ""]
    for workers in args.workers:
        with genre_serve("--model", str(args.model), "--workers", str(workers),
                         "--max-records", str(max(args.people)), "--batch-wait-ms",
                         str(args.batch_wait_ms), "--max-batch", str(args.max_batch),
                         "--no-access-log") as server:
            url = server.url
            lines += [f"## {workers} uvicorn worker{'s' if workers > 1 else ''}", "",
                      "| people / request | clients | requests/s | people/s | p50 ms | p99 ms "
                      "| requests | errors | load before | load after | checked |",
                      "|---|---|---|---|---|---|---|---|---|---|---|"]
            for people in args.people:
                for clients in args.clients:
                    before = os.getloadavg()[0]
                    r = asyncio.run(cell(url, records, people, clients, args.duration,
                                         args.check))
                    after = os.getloadavg()[0]
                    equal = check(model, r["kept"])
                    mark = " (loaded)" if before > args.loaded else ""
                    row = (f"| {people} | {clients} | {r['rps']:.1f} | {r['people_s']:.0f} | "
                           f"{r['p50']:.0f} | {r['p99']:.0f} | {r['requests']} | "
                           f"{r['errors']} | {before:.2f}{mark} | {after:.2f} | "
                           f"{equal}/{len(r['kept'])} |")
                    print(f"workers {workers} {row}", flush=True)
                    lines.append(row)
            lines.append("")
    write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
