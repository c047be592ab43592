"""The speed run's measurements (genre.bench.speed): timing helpers, per-dataset timings,
the number of features, streaming memory; and the run's constants."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from genre.errors import GenreError

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


def sayer(progress: bool) -> Callable[[str], None]:
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
def genre_model(dataset: str, protocol, seed: int, quick: bool, use_cache: bool):
    """(GenRe, from the cache?, training seconds, its directory in the cache or None)."""
    from genre.bench.methods import GENRE_CACHE, fit_genre_cached, genre_cache_key, make
    from genre.utils.cache import cache_dir

    model = make("genre", dataset, seed, quick)
    where = cache_dir() / GENRE_CACHE / genre_cache_key(model, protocol, False)
    model, cached, train_seconds = fit_genre_cached(model, protocol, use_cache=use_cache)
    saved = where if use_cache and (where / "config.json").exists() else None
    return model, cached, train_seconds, saved


def time_methods(dataset: str, protocol, X: np.ndarray, genre, *, seed: int, quick: bool,
                 dice_n: int, say) -> dict[str, dict]:
    """ms per individual (and fit seconds) of GenRe and each baseline on the same X."""
    from genre.bench.methods import make

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
                      progress=False, sampler="autoregressive").fit(task)
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


