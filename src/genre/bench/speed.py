"""Speed benchmark: GenRe's sampling against search-based recourse, and how it scales.

    genre benchmark-speed --datasets compas adult heloc --n 200 --out benchmarks/results/speed

In one run, on each dataset's protocol (the same data, classifier h and rejected test
individuals for every method):

- time per individual of GenRe (genre_for(dataset) with its preset's best_k, fitted or
  loaded from the benchmark's GenRe model cache), NNR, Wachter, Growing Spheres, DiCE
  random and DiCE genetic (DiCE on the first `dice_n` individuals only: it answers one at
  a time), with GenRe's fit time and its per-individual time with 1 and 2 torch threads (on
  THREADS_BATCH individuals);
- GenRe's Score under the protocol (genre.bench.evaluation.run_method on the n
  individuals), to be compared with the committed table's (speed may not cost quality);
- GenRe throughput (individuals/s) against the batch size (the individuals tiled);
- cached (KV cache) against uncached decoding, with the samples checked identical;

and once per run:

- GenRe's time per individual as the number of features grows (synthetic data: random
  numeric features, a small MLP h, a GenRe trained for one epoch: only sampling is timed);
- peak resident memory of streaming recourse (genre.tables.streaming.stream_recourse, as
  `genre recourse` runs it) on CSVs of compas test rows tiled to 10k, 100k and 1M rows,
  each in a fresh subprocess that reports its own peak RSS (VmHWM; getrusage's ru_maxrss
  would include the parent's memory, which Linux carries across the child's execve).

Outputs: OUT/speed.md (the command line at the top, the tables, GenRe's speed-up over each
baseline, the per-dataset summary, the acceptance targets), OUT/throughput.png and
OUT/features.png (when the features were timed); the figures as a dict (and, from the
command, as JSON with --json). Each method is run once on one individual before it is
timed; a fast call is repeated and the median kept. Wall-clock times on a shared machine
are noisy: the load average at the start is recorded.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from genre.bench.benchmark import plain
from genre.errors import GenreError, InputError
from genre.io import atomic_path, check_outputs, results_files, write_text
from genre.utils.extras import require

DEFAULT_OUT = Path("benchmarks/results/speed")
# The files a run writes into its output directory (features.png only when the features
# are timed); other files there are never touched.
SPEED_FILES = ("speed.md", "throughput.png", "features.png")
BATCH_SIZES = (1, 10, 100, 1000, 10000)
FEATURE_COUNTS = (10, 20, 50, 100, 200)
STREAM_ROWS = (10_000, 100_000, 1_000_000)
DICE_N = 20
QUICK_BATCH_SIZES = (1, 10, 100, 1000)
QUICK_FEATURE_COUNTS = (10, 20, 50)
QUICK_STREAM_ROWS = (1_000, 10_000)
QUICK_DICE_N = 5
STREAM_DATASET = "compas"
THREADS_BATCH = 2000
# The committed paper table: its GenRe Score per dataset (and seed) is the quality target.
TABLE_CSV = Path("benchmarks/results/table/results.csv")

# (label, registered method, constructor overrides); DiCE runs on dice_n individuals.
BASELINES = (
    ("NNR", "nnr", {}),
    ("Wachter", "wachter", {}),
    ("Growing Spheres", "gs", {}),
    ("DiCE random", "dice", {"mode": "random"}),
    ("DiCE genetic", "dice", {"mode": "genetic"}),
)
GENRE = "GenRe"
STUDENT = "genre-student"  # GenRe answering with its distilled one-pass sampler
DICE = ("DiCE random", "DiCE genetic")

# The issues' acceptance targets.
TARGET_RATIOS = (("DiCE random", 30.0),)  # GenRe at least this many times faster
TARGET_RATIO_DATASETS = ("compas", "adult")
TARGET_THROUGHPUT = {"compas": 10_000.0, "adult": 5_000.0}  # individuals/s at 10k
THROUGHPUT_AT = 10_000
TARGET_NNR = 5.0  # GenRe's ms per individual at most this many times NNR's, every dataset
TARGET_SCORE = 0.01  # |GenRe Score - the committed table's| at most this, every dataset
TARGET_CACHED = 3.0  # cached decoding at least this many times faster, every dataset
TARGET_RSS_ROWS, TARGET_RSS_MB = 1_000_000, 2048.0
# The student sampler (issue 23), on TARGET_RATIO_DATASETS: at least this many times GenRe's
# individuals/s at THROUGHPUT_AT, and its Score at most this far below GenRe's (same run).
TARGET_STUDENT_RATIO, TARGET_STUDENT_SCORE = 20.0, 0.03


def _say(progress: bool) -> Callable[[str], None]:
    start = time.perf_counter()

    def say(msg: str) -> None:
        if progress:
            print(f"[speed {time.perf_counter() - start:6.0f}s] {msg}", file=sys.stderr,
                  flush=True)
    return say


def timed(fn: Callable[[], object], min_seconds: float = 0.5, max_runs: int = 5,
          min_runs: int = 1) -> float:
    """Median wall time of fn() over runs repeated until min_seconds have passed (at least
    min_runs, at most max_runs)."""
    times: list[float] = []
    total = 0.0
    while len(times) < max_runs and (len(times) < min_runs or total < min_seconds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        total += times[-1]
    return float(np.median(times))


# ------------------------------------------------------------------- per dataset
def _genre(dataset: str, protocol, seed: int, quick: bool, use_cache: bool):
    """(GenRe, from the cache?, training seconds, its directory in the cache or None)."""
    from genre.bench.benchmark import GENRE_CACHE, fit_genre_cached, genre_cache_key, make
    from genre.utils.cache import cache_dir

    model = make("genre", dataset, seed, quick)
    where = cache_dir() / GENRE_CACHE / genre_cache_key(model, protocol, False)
    model, cached, train_seconds = fit_genre_cached(model, protocol, use_cache=use_cache)
    saved = where if use_cache and (where / "config.json").exists() else None
    return model, cached, train_seconds, saved


def time_methods(dataset: str, protocol, X: np.ndarray, genre, *, seed: int, quick: bool,
                 dice_n: int, say) -> dict[str, dict]:
    """ms per individual (and fit seconds) of GenRe and each baseline on the same X."""
    from genre.bench.benchmark import make

    rows: dict[str, dict] = {}
    genre.generate(X[:1])  # warm-up
    t = timed(lambda: genre.generate(X), min_runs=3)
    rows[GENRE] = {"ms_per_individual": 1000 * t / len(X), "individuals": len(X)}
    task = protocol.task()
    for label, name, overrides in BASELINES:
        count = min(dice_n, len(X)) if label in DICE else len(X)
        say(f"{dataset}: {label} on {count} individuals")
        try:
            method = make(name, dataset, seed, quick, {name: overrides})
            t0 = time.perf_counter()
            method.fit(task)
            fit_seconds = time.perf_counter() - t0
            method.generate(X[:1])  # warm-up
            t = timed(lambda m=method, c=count: m.generate(X[:c]))
            rows[label] = {"ms_per_individual": 1000 * t / count, "individuals": count,
                           "fit_seconds": fit_seconds}
        except Exception as exc:  # noqa: BLE001 - one failing method must not end the run
            rows[label] = {"ms_per_individual": None, "individuals": count,
                           "error": f"{type(exc).__name__}: {exc}"[:300]}
    g = rows[GENRE]["ms_per_individual"]
    for row in rows.values():
        ms = row["ms_per_individual"]
        row["genre_speedup"] = None if ms is None else ms / g
    return rows


def student_speed(genre, protocol, X: np.ndarray, methods: dict, *, seed: int, quick: bool,
                  use_cache: bool) -> dict:
    """The student sampler distilled from this very GenRe (genre.bench.benchmark
    fit_student_cached, cached beside it): its time per individual on X (added to `methods`
    as the STUDENT row), its Score on X and its throughput at THROUGHPUT_AT individuals."""
    from genre.bench.benchmark import fit_student_cached, student_config
    from genre.bench.evaluation import run_method

    model, cached, seconds = fit_student_cached(genre, protocol, use_cache=use_cache,
                                                config=student_config(None, seed, quick))
    with model.sampling_with("student"):
        model.generate(X[:1])  # warm-up
        t = timed(lambda: model.generate(X), min_runs=3)
        report, _, _ = run_method(model, protocol, len(X), fitted=True, X=X)
        batch = np.resize(X, (THROUGHPUT_AT, X.shape[1]))
        per_s = THROUGHPUT_AT / timed(lambda: model.generate(batch), min_seconds=1.0,
                                      min_runs=2)
    ms = 1000 * t / len(X)
    methods[STUDENT] = {"ms_per_individual": ms, "individuals": len(X),
                        "fit_seconds": seconds,
                        "genre_speedup": ms / methods[GENRE]["ms_per_individual"]}
    return {"student_fit_seconds": seconds, "student_fit_cached": cached,
            "student_score": report.score,
            "student_metrics": {"cost": report.cost, "val": report.val, "lof": report.lof},
            "student_per_s_10k": per_s}


def thread_times(genre, X: np.ndarray, rounds: int = 2) -> dict[str, float]:
    """GenRe ms per individual with 1 and 2 torch threads, measured alternately (1 2 1 2
    ...) and the median kept, so that a change in the machine's load hits both."""
    times: dict[str, list[float]] = {"1": [], "2": []}
    before = genre.threads
    try:
        genre.generate(X[:1])
        for _ in range(rounds):
            for threads in (1, 2):
                genre.threads = threads
                t0 = time.perf_counter()
                genre.generate(X)
                times[str(threads)].append(time.perf_counter() - t0)
    finally:
        genre.threads = before
    return {k: 1000 * float(np.median(v)) / len(X) for k, v in times.items()}


def throughput(genre, X: np.ndarray, batch_sizes: Sequence[int]) -> dict[str, float]:
    """Individuals per second of GenRe.generate (its best_k) per batch size; the
    individuals are tiled to fill a batch."""
    out = {}
    for size in batch_sizes:
        batch = np.resize(X, (size, X.shape[1]))
        t = timed(lambda b=batch: genre.generate(b), min_seconds=1.0, min_runs=2)
        out[str(size)] = size / t
    return out


def cached_vs_uncached(genre, X: np.ndarray, seed: int) -> dict:
    """Decoding (GenRe.sample, its best_k) with the fast cached path and with the reference
    (the whole prefix re-run at every step); same seed."""
    k = genre.best_k
    cached = genre.sample(X, k, seed=seed, use_cache=True)
    uncached = genre.sample(X, k, seed=seed, use_cache=False)
    differing = int((cached != uncached).any(axis=-1).sum())
    t_cached = timed(lambda: genre.sample(X, k, seed=seed, use_cache=True), min_runs=3)
    t_uncached = timed(lambda: genre.sample(X, k, seed=seed, use_cache=False), max_runs=3)
    return {"cached_ms_per_individual": 1000 * t_cached / len(X),
            "uncached_ms_per_individual": 1000 * t_uncached / len(X),
            "cached_speedup": t_uncached / t_cached, "cached_identical": differing == 0,
            "cached_differing_samples": differing, "samples": int(cached.shape[0]
                                                                 * cached.shape[1])}


# ------------------------------------------------------------ number of features
def synthetic_task(n_features: int, n_rows: int, seed: int, h_epochs: int = 20):
    """A RecourseTask on random numeric features: a noisy linear rule labels the rows, a
    small MLP h learns it. Returns (task, fresh rows from the same distribution)."""
    import pandas as pd

    from genre.classifiers.mlp import train_mlp
    from genre.core.task import RecourseTask
    from genre.data import Encoder
    from genre.data.schema import Feature, Schema

    rng = np.random.default_rng([seed, n_features])
    names = [f"x{i}" for i in range(n_features)]
    schema = Schema(tuple(Feature(n, "numeric") for n in names), "y", 1,
                    f"synthetic-{n_features}")
    w = rng.normal(size=n_features) / math.sqrt(n_features)

    def draw(n: int) -> tuple[pd.DataFrame, np.ndarray]:
        X = rng.uniform(size=(n, n_features))
        score = (X - 0.5) @ w + 0.05 * rng.normal(size=n)
        return pd.DataFrame(X, columns=names), (score > 0).astype(np.int64)

    train, y = draw(n_rows)
    encoder = Encoder(schema).fit(train)
    X_train = encoder.transform(train, source="synthetic")
    h = train_mlp(X_train, y, epochs=h_epochs, seed=seed)
    fresh, _ = draw(n_rows)
    task = RecourseTask(encoder, X_train, y, h, schema.name, seed)
    return task, encoder.transform(fresh, source="synthetic")


def feature_scaling(counts: Sequence[int], n: int, seed: int, quick: bool, say) -> list[dict]:
    """GenRe ms per individual (the class default best_k) against the number of features."""
    from genre.core.estimator import GenRe

    rows = []
    for d in counts:
        say(f"features: {d}")
        task, fresh = synthetic_task(d, 1000 if quick else 2000, seed, 10 if quick else 20)
        rejected = fresh[task.classifier.predict_proba(fresh) < 0.5]
        X = np.resize(rejected if len(rejected) else fresh, (n, d))
        t0 = time.perf_counter()
        model = GenRe(gamma=0.5, max_epochs=1, patience=1, k=100, seed=seed,
                      progress=False).fit(task)
        fit_seconds = time.perf_counter() - t0
        model.generate(X[:1])
        t = timed(lambda m=model, x=X: m.generate(x), min_runs=2)
        rows.append({"n_features": d, "best_k": model.best_k, "ms_per_individual": 1000 * t / n,
                     "individuals": n, "fit_seconds_one_epoch": fit_seconds})
    return rows


# -------------------------------------------------------------------- streaming
_CHILD = r"""
import json, resource, sys, time
from genre.core.estimator import GenRe
from genre.tables.streaming import stream_recourse
model_dir, src, out, changes, best_k = sys.argv[1:6]
model = GenRe.load(model_dir)
t0 = time.perf_counter()
counts = stream_recourse(model, src, out, best_k=int(best_k), seed=0, changes_path=changes,
                         progress=False)
seconds = time.perf_counter() - t0
counts.pop("preview")
# VmHWM: this process's own peak. ru_maxrss would also count the parent's memory: Linux
# carries the high-water mark of the (v)forked parent's address space across execve.
hwm = None
try:
    with open("/proc/self/status") as fh:
        hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    pass
print(json.dumps({"seconds": seconds, "counts": counts, "vmhwm_kb": hwm,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def write_tiled_csv(table, rows: int, path: Path) -> None:
    """`rows` data rows: the table's rows repeated (in blocks, so memory stays small)."""
    lines = table.to_csv(index=False).splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    with path.open("w", newline="") as fh:
        fh.write(header)
        written = 0
        block = "".join(body)
        while written + len(body) <= rows:
            fh.write(block)
            written += len(body)
        fh.write("".join(body[:rows - written]))


def streaming_memory(genre, table, sizes: Sequence[int], say,
                     model_dir: Path | None = None) -> list[dict]:
    """Peak RSS of stream_recourse in a fresh subprocess per file size; the subprocess
    loads the model from model_dir (default: genre saved to a temporary directory)."""
    import genre as package

    src_dir = str(Path(package.__file__).resolve().parents[1])
    env = dict(os.environ)  # the child imports this very copy of the package
    env["PYTHONPATH"] = os.pathsep.join([src_dir] + [p for p in
                                                     env.get("PYTHONPATH", "").split(os.pathsep)
                                                     if p])
    rows = []
    with tempfile.TemporaryDirectory(prefix="genre-speed-") as tmp:
        tmp = Path(tmp)
        if model_dir is None:
            model_dir = genre.save(tmp / "model")
        for size in sizes:
            say(f"streaming: {size:,} rows in a subprocess")
            src = tmp / f"people_{size}.csv"
            write_tiled_csv(table, size, src)
            out, changes = tmp / "out.csv", tmp / "changes.csv"
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", _CHILD, str(model_dir), str(src),
                                   str(out), str(changes), str(genre.best_k)],
                                  capture_output=True, text=True, env=env, check=False)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                raise GenreError(f"streaming {size} rows failed: {proc.stderr[-2000:]}")
            report = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append({"rows": size, "best_k": genre.best_k, "seconds": report["seconds"],
                         "process_seconds": wall, "rows_per_s": size / report["seconds"],
                         "peak_rss_mb": (report["vmhwm_kb"] or report["maxrss_kb"]) / 1024,
                         "ru_maxrss_mb": report["maxrss_kb"] / 1024,
                         "input_mb": src.stat().st_size / 2**20,
                         "output_mb": out.stat().st_size / 2**20,
                         "counts": report["counts"]})
            for f in (src, out, changes):
                f.unlink(missing_ok=True)
    return rows


# ------------------------------------------------------------------------ the run
def run_speed(datasets: Sequence[str] | str, out: Path | str = DEFAULT_OUT, n: int = 200,
              seed: int = 0, quick: bool = False, *, batch_sizes: Sequence[int] | None = None,
              feature_counts: Sequence[int] | None = None,
              stream_rows: Sequence[int] | None = None, dice_n: int | None = None,
              use_cache: bool = True, progress: bool = True,
              command: str | None = None, table: Path | str | None = TABLE_CSV) -> dict:
    """Run the speed benchmark; write out/speed.md, out/throughput.png, out/features.png.

    datasets: bundled dataset names (list or comma/space-separated string).
    n: rejected test individuals per dataset (the same for every method; DiCE gets the
        first dice_n of them). quick: GenRe's quick benchmark preset (genre.bench.benchmark
        QUICK, fast) and the baselines' QUICK caps, smaller sweeps (QUICK_* constants).
    batch_sizes, feature_counts, stream_rows, dice_n: override the sweeps (an empty
        sequence skips that part).
    use_cache: load/save fitted GenRe models in the benchmark's cache.
    command: the command line shown at the top of speed.md.
    table: the committed paper table (results.csv) whose GenRe Score each dataset's is
        compared with; None or a missing file: no such target.

    Returns the figures: {"command", "date", "machine", "versions", "n", "seed", "quick",
    "dice_n", "datasets": {name: {"best_k", "methods": {label: {"ms_per_individual",
    "individuals", "genre_speedup", ...}}, "genre_fit_seconds", "genre_fit_cached",
    "genre_score", "genre_individuals_per_s" (peak over batch sizes), "throughput":
    {batch: ind/s}, "threads": {"1": ms, "2": ms}, "cached_speedup", "cached_identical",
    ...}}, "summary": {name: {"genre_ms_per_individual", "nnr_ms_per_individual",
    "genre_per_s_10k" (None unless the batch sizes include 10,000), "genre_score",
    "table_score"}}, "features": [...], "streaming": [...], "targets": [...],
    "cached_identical": whether cached and uncached decoding gave identical samples on
    every dataset (speed_command fails when they did not)}.
    """
    from genre.bench.benchmark import machine, resolve_datasets, versions
    from genre.bench.evaluation import run_method
    from genre.bench.protocol import build_protocol

    names = resolve_datasets(datasets)
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    out = Path(out)
    batch_sizes = tuple(batch_sizes if batch_sizes is not None else
                        (QUICK_BATCH_SIZES if quick else BATCH_SIZES))
    feature_counts = tuple(feature_counts if feature_counts is not None else
                           (QUICK_FEATURE_COUNTS if quick else FEATURE_COUNTS))
    stream_rows = tuple(stream_rows if stream_rows is not None else
                        (QUICK_STREAM_ROWS if quick else STREAM_ROWS))
    dice_n = dice_n if dice_n is not None else (QUICK_DICE_N if quick else DICE_N)
    if command is None:
        command = (f"run_speed(datasets={names!r}, out={str(out)!r}, n={n}, seed={seed}, "
                   f"quick={quick})")
    say = _say(progress)
    started = _dt.datetime.now().astimezone()
    doc: dict = {"command": command, "date": started.isoformat(timespec="seconds"),
                 "machine": machine() | {"load_average": list(os.getloadavg())},
                 "versions": versions(), "n": n, "seed": seed, "quick": quick,
                 "dice_n": dice_n, "datasets": {}}
    models = {}
    for dataset in names:
        say(f"{dataset}: protocol and GenRe")
        protocol = build_protocol(dataset, seed)
        X = protocol.individuals(n)
        if len(X) == 0:
            raise InputError(f"{dataset}: h rejects no test individual")
        genre, cached, train_seconds, saved = _genre(dataset, protocol, seed, quick, use_cache)
        models[dataset] = (genre, protocol, saved)
        entry: dict = {"individuals": len(X), "n_features": protocol.n_features,
                       "best_k": genre.best_k,
                       "genre_fit_seconds": train_seconds, "genre_fit_cached": cached,
                       "genre_params": {k: v for k, v in genre.get_params().items()
                                        if k != "progress"}}
        say(f"{dataset}: GenRe and the baselines, time per individual")
        entry["methods"] = time_methods(dataset, protocol, X, genre, seed=seed, quick=quick,
                                        dice_n=dice_n, say=say)
        say(f"{dataset}: the student sampler distilled from GenRe")
        entry |= student_speed(genre, protocol, X, entry["methods"], seed=seed, quick=quick,
                               use_cache=use_cache)
        say(f"{dataset}: GenRe's Score")
        report, _, _ = run_method(genre, protocol, len(X), fitted=True, X=X)
        entry["genre_score"] = report.score
        entry["genre_metrics"] = {"cost": report.cost, "val": report.val, "lof": report.lof}
        say(f"{dataset}: GenRe with 1 and 2 threads")
        entry["threads"] = thread_times(genre, np.resize(X, (THREADS_BATCH, X.shape[1])))
        say(f"{dataset}: throughput against batch size")
        entry["throughput"] = throughput(genre, X, batch_sizes)
        entry["genre_individuals_per_s"] = max(entry["throughput"].values(), default=None)
        say(f"{dataset}: cached and uncached decoding")
        entry |= cached_vs_uncached(genre, X, seed)
        doc["datasets"][dataset] = entry
    doc["features"] = feature_scaling(feature_counts, n, seed, quick, say)
    doc["streaming"] = []
    if stream_rows:
        if STREAM_DATASET in models:
            genre, protocol, saved = models[STREAM_DATASET]
        else:
            protocol = build_protocol(STREAM_DATASET, seed)
            genre, _, _, saved = _genre(STREAM_DATASET, protocol, seed, quick, use_cache)
        doc["streaming"] = streaming_memory(genre, protocol.dataset.test, stream_rows, say,
                                            saved)
    doc["summary"] = summary(doc, seed, table)
    doc["targets"] = targets(doc)
    doc["seconds"] = (_dt.datetime.now().astimezone() - started).total_seconds()
    doc["cached_identical"] = all(e["cached_identical"] for e in doc["datasets"].values())
    write_outputs(doc, out)
    say(f"wrote {out / 'speed.md'}, {out / 'throughput.png'}"
        + (f", {out / 'features.png'}" if doc["features"] else ""))
    return doc


def table_scores(table: Path | str | None, seed: int) -> dict[str, float]:
    """GenRe's Score per dataset in the committed table (its rows for this seed when it
    has a seed column); empty when there is no table."""
    import pandas as pd

    if table is None or not Path(table).is_file():
        return {}
    df = pd.read_csv(table)
    rows = df[df["method"] == "genre"]
    if "seed" in rows:
        rows = rows[rows["seed"] == seed]
    return {str(d): float(v) for d, v in zip(rows["dataset"], rows["score"], strict=True)}


def summary(doc: dict, seed: int, table: Path | str | None = TABLE_CSV) -> dict[str, dict]:
    """Per dataset, the figures the issue asks for, all from this run."""
    committed = table_scores(table, seed)
    out = {}
    for dataset, e in doc["datasets"].items():
        out[dataset] = {
            "genre_ms_per_individual": e["methods"][GENRE]["ms_per_individual"],
            "nnr_ms_per_individual": e["methods"].get("NNR", {}).get("ms_per_individual"),
            "genre_per_s_10k": e["throughput"].get(str(THROUGHPUT_AT)),
            "genre_score": e["genre_score"], "table_score": committed.get(dataset),
            "best_k": e["best_k"], "student_score": e.get("student_score"),
            "student_per_s_10k": e.get("student_per_s_10k")}
    return out


def targets(doc: dict) -> list[dict]:
    """The issue's acceptance targets, for the datasets/sizes this run measured."""
    rows = []

    def add(target: str, value, unit: str, met: bool) -> None:
        rows.append({"target": target, "value": value, "unit": unit, "met": bool(met)})

    data, summ = doc["datasets"], doc["summary"]
    for dataset, rate in TARGET_THROUGHPUT.items():
        got = summ.get(dataset, {}).get("genre_per_s_10k")
        if dataset in summ and got is not None:
            add(f"GenRe throughput >= {rate:,g} individuals/s on {dataset} at "
                f"{THROUGHPUT_AT:,} individuals (best_k {summ[dataset]['best_k']})", got,
                "individuals/s", got >= rate)
    for dataset, s in summ.items():
        g, nnr = s["genre_ms_per_individual"], s["nnr_ms_per_individual"]
        if nnr is not None:
            add(f"GenRe ms per individual within {TARGET_NNR:g}x of NNR's on {dataset}",
                g / nnr, "x NNR", g <= TARGET_NNR * nnr)
        if s["table_score"] is not None:
            diff = s["genre_score"] - s["table_score"]
            add(f"GenRe Score within {TARGET_SCORE:g} of the committed table's "
                f"({s['table_score']:.3f}) on {dataset}", diff, "difference",
                abs(diff) <= TARGET_SCORE)
    for dataset in TARGET_RATIO_DATASETS:
        if dataset not in data:
            continue
        s = summ[dataset]
        if s.get("student_per_s_10k") and s["genre_per_s_10k"]:
            got = s["student_per_s_10k"] / s["genre_per_s_10k"]
            add(f"student individuals/s >= {TARGET_STUDENT_RATIO:g}x GenRe's on {dataset} at "
                f"{THROUGHPUT_AT:,} individuals", got, "x", got >= TARGET_STUDENT_RATIO)
        if s.get("student_score") is not None:
            diff = s["student_score"] - s["genre_score"]
            add(f"student Score at most {TARGET_STUDENT_SCORE:g} below GenRe's on {dataset}",
                diff, "difference", diff >= -TARGET_STUDENT_SCORE)
        for label, ratio in TARGET_RATIOS:
            got = data[dataset]["methods"].get(label, {}).get("genre_speedup")
            add(f"GenRe per-individual time >= {ratio:g}x lower than {label} on {dataset}",
                got, "x", got is not None and got >= ratio)
    for dataset, e in data.items():
        got = e["cached_speedup"]
        add(f"cached decoding >= {TARGET_CACHED:g}x faster than uncached on {dataset}", got,
            "x", got >= TARGET_CACHED)
    for row in doc["streaming"]:
        if row["rows"] == TARGET_RSS_ROWS:
            got = row["peak_rss_mb"]
            add(f"streaming {TARGET_RSS_ROWS:,} rows: peak RSS < {TARGET_RSS_MB:g} MB", got,
                "MB", got < TARGET_RSS_MB)
    return rows


# ----------------------------------------------------------------------- output
def _best_k(doc: dict) -> str:
    return ", ".join(f"{d} {e['best_k']}" for d, e in doc["datasets"].items()) or "-"


def _f(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:,.{digits}f}"


def markdown(doc: dict) -> str:
    m, data = doc["machine"], doc["datasets"]
    names = list(data)
    la = ", ".join(f"{x:.1f}" for x in m.get("load_average", []))
    lines = [
        "# Speed benchmark", "", "```", doc["command"], "```", "",
        f"- date: {doc['date']}; wall time of the run {doc.get('seconds', 0) / 60:.1f} min",
        f"- machine: {m['platform']}, {m['cpu_count']} CPUs, Python {m['python']}; load "
        f"average at the start: {la} (a shared machine: wall-clock times are noisy)",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items() if v),
        f"- protocol seed {doc['seed']}; {doc['n']} rejected test individuals per dataset, "
        f"the same for every method (DiCE: the first {doc['dice_n']} of them, marked *); "
        f"quick: {'yes' if doc['quick'] else 'no'}",
        f"- GenRe: genre_for(dataset){' with the quick benchmark preset' if doc['quick'] else ''}"
        f", fitted or loaded from the benchmark's model cache; best_k as in the preset "
        f"({_best_k(doc)}) everywhere here; 1 torch thread unless stated. Times are wall "
        "clock, per individual, of generate() on the whole batch (median of repeats for "
        "fast calls), after one warm-up call.", "",
    ]
    if names:
        lines += ["## Time per individual", "",
                  "ms per individual; in brackets: how many times slower than GenRe.", ""]
        header = ["Method"] + [f"{d} ms/indiv" for d in names]
        lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(names)]
        labels = list(next(iter(data.values()))["methods"])
        for label in labels:
            row = [label + (" *" if label in DICE else "")]
            for d in names:
                r = data[d]["methods"].get(label, {})
                if r.get("ms_per_individual") is None:
                    row.append("error")
                    continue
                cell = _f(r["ms_per_individual"], 3 if r["ms_per_individual"] < 1 else 2)
                if label != GENRE:
                    cell += f" ({_f(r['genre_speedup'], 1)}x)"
                row.append(cell)
            lines.append("| " + " | ".join(row) + " |")
        errors = [f"- {label} on {d}: {r['error']}" for d in names
                  for label, r in data[d]["methods"].items() if r.get("error")]
        lines += ["", *(["Errors:", "", *errors, ""] if errors else [])]
        lines += ["## Summary", "",
                  "Measured in this run. Score: GenRe's under the protocol on the individuals "
                  "above; table: the committed table's GenRe Score (benchmarks/results/table).",
                  "", "| dataset | GenRe ms/indiv | NNR ms/indiv | GenRe individuals/s at "
                  f"{THROUGHPUT_AT:,} | GenRe Score | table Score |",
                  "|---|---:|---:|---:|---:|---:|"]
        for d, r in doc["summary"].items():
            lines.append(f"| {d} | {_f(r['genre_ms_per_individual'], 3)} | "
                         f"{_f(r['nnr_ms_per_individual'], 3)} | {_f(r['genre_per_s_10k'], 0)}"
                         f" | {_f(r['genre_score'], 3)} | {_f(r['table_score'], 3)} |")
        lines += ["", "## The student sampler (genre-student)", "",
                  "A one-pass sampler distilled from the same fitted GenRe "
                  "(genre.core.student), the same best_k and selection by h; individuals/s at "
                  f"{THROUGHPUT_AT:,} individuals, Score on the individuals above.", "",
                  "| dataset | GenRe Score | student Score | GenRe individuals/s | student "
                  "individuals/s | speed-up |", "|---|---:|---:|---:|---:|---:|"]
        for d, r in doc["summary"].items():
            g, st = r["genre_per_s_10k"], r.get("student_per_s_10k")
            ratio = st / g if g and st else None
            lines.append(f"| {d} | {_f(r['genre_score'], 3)} | {_f(r.get('student_score'), 3)}"
                         f" | {_f(g, 0)} | {_f(st, 0)} | {_f(ratio, 1)}x |")
        lines += ["", "## GenRe fit time and threads", "",
                  f"Threads: generate() on {THREADS_BATCH:,} individuals, 1 and 2 torch "
                  "threads alternately, median.", "",
                  "| dataset | features | GenRe fit s | from cache | 1 thread ms/indiv | "
                  "2 threads ms/indiv |", "|---|---:|---:|---|---:|---:|"]
        for d in names:
            e = data[d]
            lines.append(f"| {d} | {e['n_features']} | {_f(e['genre_fit_seconds'], 1)} | "
                         f"{'yes (original training time)' if e['genre_fit_cached'] else 'no'}"
                         f" | {_f(e['threads'].get('1'), 3)} | {_f(e['threads'].get('2'), 3)} |")
        sizes = list(next(iter(data.values()))["throughput"])
        lines += ["", "## GenRe throughput against batch size", "",
                  f"Individuals per second (best_k {_best_k(doc)}); a batch is one generate() "
                  "call, the individuals tiled to fill it.", "",
                  "| batch size | " + " | ".join(names) + " |",
                  "|---:|" + "---:|" * len(names)]
        for size in sizes:
            lines.append(f"| {int(size):,} | " + " | ".join(
                _f(data[d]["throughput"].get(size), 0) for d in names) + " |")
        lines += ["", "![throughput](throughput.png)", "",
                  "## Cached against uncached decoding", "",
                  "GenRe.sample(best_k) on the same individuals and seed: the fast path (KV "
                  "cache, fused steps, decided steps not sampled) and the reference "
                  "(re-running the whole prefix at every step).", "",
                  "| dataset | features | cached ms/indiv | uncached ms/indiv | speed-up | "
                  "identical samples |", "|---|---:|---:|---:|---:|---|"]
        for d in names:
            e = data[d]
            same = "yes" if e["cached_identical"] else \
                f"**no**: {e['cached_differing_samples']} of {e['samples']} differ"
            lines.append(f"| {d} | {e['n_features']} | {_f(e['cached_ms_per_individual'], 3)} "
                         f"| {_f(e['uncached_ms_per_individual'], 3)} | "
                         f"{_f(e['cached_speedup'], 1)}x | {same} |")
        lines.append("")
    if doc["features"]:
        lines += ["## GenRe against the number of features", "",
                  "Synthetic data (random numeric features, a noisy linear rule, a small MLP "
                  "h); GenRe with the default architecture trained for one epoch (only "
                  "sampling is timed), the class default best_k "
                  f"({', '.join(sorted({str(r['best_k']) for r in doc['features']}))}), "
                  f"{doc['n']} individuals.", "",
                  "| features | ms/indiv | fit s (1 epoch) |", "|---:|---:|---:|"]
        for r in doc["features"]:
            lines.append(f"| {r['n_features']} | {_f(r['ms_per_individual'], 3)} | "
                         f"{_f(r['fit_seconds_one_epoch'], 1)} |")
        lines += ["", "![features](features.png)", ""]
    if doc["streaming"]:
        lines += ["## Streaming recourse: peak memory", "",
                  f"stream_recourse (as `genre recourse` runs it) on {STREAM_DATASET} test rows "
                  f"tiled to each size, best_k {doc['streaming'][0]['best_k']}, profiles and "
                  "changes written; "
                  "each run in a fresh Python process, which reports its own peak RSS "
                  "(VmHWM from /proc/self/status: imports and model included; getrusage's "
                  "ru_maxrss is not used because on Linux it also counts the parent's memory "
                  "at the fork).", "",
                  "| rows | input MB | seconds | rows/s | peak RSS MB |",
                  "|---:|---:|---:|---:|---:|"]
        for r in doc["streaming"]:
            lines.append(f"| {r['rows']:,} | {_f(r['input_mb'], 1)} | {_f(r['seconds'], 1)} | "
                         f"{_f(r['rows_per_s'], 0)} | {_f(r['peak_rss_mb'], 0)} |")
        lines.append("")
    if doc["targets"]:
        lines += ["## Acceptance targets", "", "| target | measured | met |", "|---|---:|---|"]
        for t in doc["targets"]:
            digits = 3 if t["unit"] == "difference" else 1
            lines.append(f"| {t['target']} | {_f(t['value'], digits)} {t['unit']} | "
                         f"{'yes' if t['met'] else '**no**'} |")
        lines.append("")
    return "\n".join(lines)


def _plots(doc: dict, out: Path) -> None:
    require("matplotlib", "bench", "drawing the speed figures")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def save(fig, name: str) -> None:
        FigureCanvasAgg(fig)
        with atomic_path(out / name) as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for d, e in doc["datasets"].items():
        sizes = [int(s) for s in e["throughput"]]
        ax.plot(sizes, list(e["throughput"].values()), marker="o",
                label=f"{d} ({e['n_features']} features)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size (individuals per generate() call)")
    ax.set_ylabel("throughput (individuals/s)")
    ax.set_title(f"GenRe throughput, best_k {_best_k(doc)}, 1 thread")
    ax.grid(True, which="both", alpha=0.3)
    if doc["datasets"]:
        ax.legend()
    save(fig, "throughput.png")

    feats = doc["features"]
    if not feats:  # not measured in this run (--no-features)
        return
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.plot([r["n_features"] for r in feats], [r["ms_per_individual"] for r in feats],
            marker="o", label="GenRe (synthetic data)")
    for d, e in doc["datasets"].items():
        ax.plot([e["n_features"]], [e["methods"][GENRE]["ms_per_individual"]], marker="s",
                linestyle="none", label=f"GenRe on {d}")
    ax.set_xlabel("number of features")
    ax.set_ylabel("time per individual (ms)")
    ax.set_title("GenRe sampling time against the number of features")
    ax.grid(True, alpha=0.3)
    ax.legend()
    save(fig, "features.png")


def write_outputs(doc: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "speed.md", markdown(doc))
    _plots(doc, out)


def to_json(doc: dict) -> str:
    return json.dumps(plain(doc), indent=2, allow_nan=False) + "\n"


# --------------------------------------------------------------------------- CLI
def speed_command(
    names: Annotated[list[str] | None, typer.Argument(
        help="more dataset names, as in `--datasets compas adult heloc`",
        show_default=False)] = None,
    datasets: Annotated[list[str] | None, typer.Option(
        help="datasets, space- or comma-separated (default: compas adult heloc)",
        show_default=False)] = None,
    n: Annotated[int, typer.Option(help="rejected test individuals per dataset")] = 200,
    seed: Annotated[int, typer.Option(help="protocol seed")] = 0,
    out: Annotated[Path, typer.Option(help="output directory")] = DEFAULT_OUT,
    json_path: Annotated[Path | None, typer.Option(
        "--json", help="also write the figures as JSON to this file")] = None,
    quick: Annotated[bool, typer.Option(
        help="small models and sweeps (a smoke run, not the figures to report)")] = False,
    overwrite: Annotated[bool, typer.Option(
        help="replace output files that already exist (other files in --out are never "
             "touched)")] = False,
    features: Annotated[bool, typer.Option(
        help="time GenRe against the number of features (synthetic data)")] = True,
    streaming: Annotated[bool, typer.Option(
        help="measure streaming recourse's peak memory up to 1M rows")] = True,
) -> None:
    """Time GenRe against the search baselines, its throughput, feature scaling, cached
    decoding and streaming memory; write OUT/speed.md, throughput.png, features.png.

    Replacing those (or the --json file) needs --overwrite."""
    from genre.bench.benchmark import split_names

    try:
        ds = split_names(datasets or []) + [d for d in split_names(names or [])
                                       if d not in split_names(datasets or [])]
        ds = ds or ["compas", "adult", "heloc"]
        written = [f for f in SPEED_FILES if features or f != "features.png"]
        check_outputs([*results_files(out, written), json_path], overwrite=overwrite)
        command = shlex.join(["genre", "benchmark-speed", "--datasets", *ds, "--n", str(n),
                              "--seed", str(seed), "--out", str(out)]
                             + (["--json", str(json_path)] if json_path else [])
                             + (["--quick"] if quick else [])
                             + ([] if features else ["--no-features"])
                             + ([] if streaming else ["--no-streaming"]))
        doc = run_speed(ds, out, n=n, seed=seed, quick=quick, command=command,
                        feature_counts=None if features else (),
                        stream_rows=None if streaming else ())
        if json_path is not None:
            write_text(json_path, to_json(doc), overwrite=overwrite)
    except GenreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(code=2) from None
    print(markdown(doc))
    if not doc["cached_identical"]:
        bad = {d: e["cached_differing_samples"] for d, e in doc["datasets"].items()
               if not e["cached_identical"]}
        print(f"error: cached and uncached decoding gave different samples {bad}",
              file=sys.stderr)
        raise typer.Exit(code=1)


__all__ = ["SPEED_FILES", "run_speed", "speed_command", "to_json"]

if __name__ == "__main__":  # pragma: no cover - `python -m genre.bench.speed ...`
    _app = typer.Typer(add_completion=False)
    _app.command()(speed_command)
    sys.exit(_app())
