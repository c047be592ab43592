"""Scaling of batch recourse on Ray: rows/s with 1 and 2 actors on one machine, against the
single-process `genre recourse` (stream_recourse) on the same rows, and each actor's peak
memory.

    genre fit --dataset compas --fast --out /tmp/m
    python benchmarks/ray_scaling.py --model /tmp/m --dataset compas --rows 100000

The rows are the bundled dataset's test rows tiled to --rows (a Parquet file in a temporary
directory). Each Ray run is timed from recourse_dataset to the last answered row
(materialised in the object store), actor start-up and the model loads included; Ray itself
is started once beforehand (ray.init(num_cpus=C)). Peak memory: the largest resident set
of any actor process, sampled every 0.2 s; actors' CPU: the CPU seconds the actor processes
used (start-up included), which, unlike wall time, does not depend on what else the machine
runs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

from genre.bench.common import script_header
from genre.core.estimator import GenRe
from genre.data.datasets import load
from genre.io import write_text
from genre.tables.streaming import stream_recourse


class ActorUsage:
    """Largest RSS of a Ray actor process running BlockRecourse, and the CPU seconds those
    processes used (user + system, at their last sample), while active."""

    def __init__(self):
        import psutil

        self.psutil, self.peak, self._stop = psutil, 0, threading.Event()
        self._cpu: dict[int, float] = {}
        self._thread = threading.Thread(target=self._poll, daemon=True)

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu.values())

    def _poll(self) -> None:
        while not self._stop.is_set():
            for proc in self.psutil.process_iter(["cmdline"]):
                try:
                    if "BlockRecourse" in " ".join(proc.info["cmdline"] or []):
                        self.peak = max(self.peak, proc.memory_info().rss)
                        times = proc.cpu_times()
                        self._cpu[proc.pid] = times.user + times.system
                except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
                    pass
            time.sleep(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--dataset", default="compas")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cpus", type=int, default=2, help="CPUs given to the local Ray")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/ray/results.md"))
    ap.add_argument("--note", default="", help="a line about the machine's state")
    ap.add_argument("--loaded", type=float, default=1.5,
                    help="a run starting above this 1-minute load average is marked loaded")
    args = ap.parse_args(argv)

    import ray

    from genre.service.ray import recourse_dataset

    test = load(args.dataset).test
    table = pd.concat([test] * (args.rows // len(test) + 1), ignore_index=True)
    table = table.iloc[:args.rows]
    model = GenRe.load(args.model)
    p = model.classifier_.predict_proba(model.encoder_.transform(table))
    rejected = float((p <= 0.5).mean())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "people.parquet"
        table.to_parquet(src, index=False)
        load_single = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        stream_recourse(model, src, Path(tmp) / "single.csv", seed=0, progress=False)
        single, single_cpu = time.perf_counter() - t0, time.process_time() - c0
        load_single = (load_single, os.getloadavg()[0])
        print(f"single process: {single:.1f} s", flush=True)
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                 logging_level="error")
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            for workers in args.workers:
                before = os.getloadavg()[0]
                with ActorUsage() as mem:
                    t0 = time.perf_counter()
                    out = recourse_dataset(ray.data.read_parquet(str(src)), args.model,
                                           seed=0, workers=workers).materialize()
                    seconds = time.perf_counter() - t0
                assert out.count() == args.rows
                rows.append((workers, seconds, mem.peak, mem.cpu_seconds,
                             (before, os.getloadavg()[0])))
                print(f"{workers} actor(s): {seconds:.1f} s, peak actor RSS "
                      f"{mem.peak / 2**20:.0f} MiB, actors' CPU {mem.cpu_seconds:.0f} s",
                      flush=True)
        finally:
            ray.shutdown()

    lines = script_header("Batch recourse on Ray: 1 vs 2 actors on one machine",
                          f"Ray {ray.__version__}", args.note) + [
             f"Data: {args.rows:,} rows (the {args.dataset} test split tiled; "
             f"{rejected:.0%} rejected by h, so answered by sampling; the rest come back "
             f"unchanged), one Parquet file. Model: `{args.model}` (GenRe on "
             f"{args.dataset}; its sampler: {model.sampler}), options 1, seed 0. Ray: a local "
             "instance with "
             f"{args.cpus} CPUs, one CPU per actor; times include reading, numbering the rows, "
             "actor start-up and model loads. CPU ms per row: the CPU the run's processes used "
             "(the single process's own; the actors' for Ray) per answered row, which unlike "
             "wall time does not depend on what else the machine runs. load before/after: "
             f"the 1-minute load average; a run that started above {args.loaded:g} is "
             "marked loaded (its wall-time figures are a lower bound).", "",
             "| run | seconds | rows/s | speed-up vs 1 actor | peak RSS per actor | CPU s "
             "| CPU ms per row | load before | load after |",
             "|---|---|---|---|---|---|---|---|---|",
             f"| single process (`genre recourse`) | {single:.1f} | {args.rows / single:,.0f} "
             f"| | | {single_cpu:.1f} | {1000 * single_cpu / args.rows:.2f} | "
             f"{_load(load_single[0], args.loaded)} | {load_single[1]:.2f} |"]
    one = {w: s for w, s, _, _, _ in rows}.get(1)
    for workers, seconds, peak, cpu, (before, after) in rows:
        lines.append(f"| Ray, {workers} actor{'s' if workers > 1 else ''} | {seconds:.1f} | "
                     f"{args.rows / seconds:,.0f} | "
                     f"{f'{one / seconds:.2f}' if one else ''} | {peak / 2**20:,.0f} MiB | "
                     f"{cpu:.1f} | {1000 * cpu / args.rows:.2f} | "
                     f"{_load(before, args.loaded)} | {after:.2f} |")
    write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


def _load(value: float, loaded: float) -> str:
    return f"{value:.2f}" + (" (loaded)" if value > loaded else "")


if __name__ == "__main__":
    main()
