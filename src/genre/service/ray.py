"""Batch recourse on a Ray cluster (Ray Data; `pip install genre-recourse[ray]`).

    ds = ray.data.read_parquet("s3://bucket/people/")
    out = recourse_dataset(ds, "models/compas", seed=0, workers=16)
    out.write_parquet("s3://bucket/recourse/")

or from the command line, one file in and one file out:

    genre recourse --ray [--ray-address ADDR] --model DIR --input people.csv --output out.csv

Same answers as the single-process run. Every record draws from its own random stream,
keyed by the seed and its values (genre.core.seeding), so its answer does not depend on
where it is answered; every row is numbered by its position in the dataset and answered by
answer_blocks in blocks of SEED_BLOCK rows (as `genre recourse` does), in a pool of actors
that each load the model once. The output is therefore row for row what `genre recourse`
writes for the same rows and seed, whatever the cluster, its number of workers or the
dataset's block sizes.

Numbering needs the dataset's block order: the input is materialised once (Ray spills to
disk when the object store is full), each block's row count gives its offset, and the rows
are re-cut into Ray blocks that start on seed-block boundaries (seed_aligned), so that no
seed block is split between two actors' calls. No shuffle is needed.

Output: a Ray Dataset with recourse_table's profile columns (person: the 0-based row
position, as `genre recourse` numbers people; labels="line" makes errors name CSV line
numbers), in input order (DataContext.preserve_order is set).
Written with write_parquet/write_csv it is a directory of part files; their rows, read in
dataset order, are the rows of the single-process output. `genre recourse --ray` instead
streams the result through the driver into the one --output file (temp-then-rename), so that
file is byte-identical to what `genre recourse` writes without --ray.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from genre.core.estimator import GenRe
from genre.errors import GenreError, InputError
from genre.io import atomic_path, check_outputs, exit_on_sigterm
from genre.tables.streaming import (
    SEED_BLOCK,
    STATUSES,
    answer_blocks,
    check_columns,
    open_input,
    validate_rows,
)
from genre.tables.writers import PARQUET_SUFFIXES, neutralise_formulas

ROW = "__genre_row"  # the row-position column added (and removed) on the way


def recourse_dataset(ds, model_dir: str | Path, *, options: int = 1, best_k: int | None = None,
                     seed: int = 0, workers: int | None = None, cpus_per_worker: float = 1,
                     labels: str = "row", source: str = "input",
                     min_probability: float | None = None, constraints=None):
    """Recourse for every row of the Ray Dataset `ds` (original units) -> a Ray Dataset of
    recourse_table's profiles, in input order, identical to `genre recourse` on the same
    rows with the same seed (see the module docstring).

    workers: actors, each loading the model once (default: one per CPU of the cluster,
    given cpus_per_worker each). labels: 'row' (person = 0-based position) or 'line'
    (person = CSV line number, the header being line 1, as genre.utils.readers.read_table labels a
    CSV). A bad row raises (wrapped by Ray) the InputError recourse_table gives, naming
    `source`, column and row.
    """
    import ray

    if options < 1:
        raise InputError(f"options must be at least 1, got {options}")
    if labels not in ("row", "line"):
        raise InputError(f"labels must be 'row' or 'line', got {labels!r}")
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    ds = ds.materialize()  # read once; its blocks, in order, number the rows
    if ds.count() == 0:
        raise InputError(f"{source}: has no data rows")
    loaded = GenRe.load(model_dir)
    check_columns(loaded, ds.schema().names, source)
    if constraints is not None:
        constraints.check(loaded.encoder_.schema_)
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_worker))
    aligned = seed_aligned(ds, workers)
    return aligned.map_batches(
        BlockRecourse, batch_format="pandas", batch_size=None,
        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker,
        fn_constructor_kwargs=dict(model_dir=str(model_dir), options=options, best_k=best_k,
                                   seed=seed, labels=labels, source=source,
                                   min_probability=min_probability, constraints=constraints,
                                   threads=max(1, int(cpus_per_worker))))


def seed_aligned(ds, workers: int = 1, max_blocks: int = 10):
    """`ds` re-cut into Ray blocks of whole seed blocks (up to max_blocks * SEED_BLOCK rows,
    starting at multiples of SEED_BLOCK), each row numbered by its position (column ROW).

    The dataset is materialised first (its blocks, in order, give the positions; a no-op
    for a materialised one); the re-cut blocks are computed before returning, so no task
    waits behind the actors.
    """
    import ray

    refs = ds.materialize().to_arrow_refs()  # the blocks, in the dataset's order
    sizes = ray.get([ray.remote(_num_rows).remote(ref) for ref in refs])
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    n = int(starts[-1])
    n_seed_blocks = -(-n // SEED_BLOCK)
    per_chunk = SEED_BLOCK * max(1, min(max_blocks, n_seed_blocks // (2 * workers)))
    cut = ray.remote(_cut)
    chunks = []
    for lo in range(0, n, per_chunk):
        hi = min(lo + per_chunk, n)
        # the blocks holding rows lo..hi-1 (skipping empty ones)
        first = int(np.searchsorted(starts, lo, side="right")) - 1
        parts = [i for i in range(first, int(np.searchsorted(starts, hi, side="left")))
                 if sizes[i]]
        chunks.append(cut.remote(lo, hi, [int(starts[i]) for i in parts],
                                 *[refs[i] for i in parts]))
    ray.wait(chunks, num_returns=len(chunks), fetch_local=False)
    return ray.data.from_arrow_refs(chunks)


def _num_rows(table) -> int:
    return table.num_rows


def _cut(lo: int, hi: int, starts: list[int], *tables):
    """Rows lo..hi-1 of the dataset, from the blocks starting at `starts`, numbered."""
    import pyarrow as pa

    pieces = [t.slice(max(lo - s, 0), min(hi, s + t.num_rows) - max(lo, s))
              for s, t in zip(starts, tables, strict=True)]
    table = pa.concat_tables(pieces, promote_options="permissive")
    return table.append_column(ROW, pa.array(np.arange(lo, hi)))


class BlockRecourse:
    """A Ray actor's work: load the model once; answer each seed block of a batch."""

    def __init__(self, model_dir: str, options: int, best_k: int | None, seed: int,
                 labels: str, source: str, threads: int = 1,
                 min_probability: float | None = None, constraints=None):
        import torch
        from threadpoolctl import threadpool_limits

        # Every thread pool (torch, BLAS, OpenMP in scikit-learn's LOF) to the actor's CPUs:
        # actors sharing a node must not oversubscribe it.
        torch.set_num_threads(threads)
        self._limits = threadpool_limits(limits=threads)
        self.model = GenRe.load(model_dir)
        self.model.plausibility()
        self.options, self.best_k, self.seed = options, best_k, seed
        self.labels, self.source = labels, source
        self.min_probability, self.constraints = min_probability, constraints

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = batch[ROW].to_numpy()
        if rows[0] % SEED_BLOCK or np.any(np.diff(rows) != 1):  # never: seed_aligned cut it
            raise InputError(f"{self.source}: a batch of rows {rows[0]}..{rows[-1]} is not "
                             "aligned on seed blocks")
        people = batch.drop(columns=ROW)
        people.index = (pd.RangeIndex(rows[0] + 2, rows[-1] + 3, name="line")
                        if self.labels == "line" else pd.RangeIndex(rows[0], rows[-1] + 1))
        return pd.concat([profiles for profiles, _, _ in answer_blocks(
            self.model, [people], options=self.options, best_k=self.best_k, seed=self.seed,
            source=self.source, id_column=self.model.encoder_.schema_.id_column,
            start=int(rows[0]), min_probability=self.min_probability,
            constraints=self.constraints)], ignore_index=True)


def recourse_file(model_dir: str | Path, input_path: str | Path, output_path: str | Path, *,
                  options: int = 1, best_k: int | None = None, seed: int = 0,
                  address: str | None = None, workers: int | None = None,
                  overwrite: bool = True, csv_safe: bool = True,
                  min_probability: float | None = None, constraints=None) -> dict:
    """`genre recourse --ray`: read a CSV/Parquet file with Ray Data, answer it on the Ray
    cluster at `address` (default: start a local one) and stream the answers, in order,
    into one CSV at output_path (written beside it, renamed when complete) - byte-identical
    to stream_recourse's output (csv_safe as there). Returns the counts: people, rows and
    one per status.

    Every row is checked against the model's schema here, before Ray starts (one read of
    the file), so a bad cell anywhere is the InputError naming its line and column that
    `genre recourse` gives, never an error from inside Ray. Ray's own error log is silenced
    (the error is raised here once); SIGTERM raises SystemExit(143) in the driver as
    genre.io.exit_on_sigterm does, so the temporary output is removed and Ray shut down.
    """
    import ray

    path = Path(input_path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if Path(output_path).suffix.lower() in PARQUET_SUFFIXES:
        raise InputError(f"{output_path}: --ray writes CSV; give a .csv output (or call "
                         "genre.service.ray.recourse_dataset and write_parquet for a directory)")
    check_outputs([output_path], inputs=[input_path, model_dir], overwrite=overwrite)
    model = GenRe.load(model_dir)
    reader, id_column = open_input(model, path)
    validate_rows(model, reader, 50_000, str(path), id_column)
    del model, reader
    parquet = path.suffix.lower() in PARQUET_SUFFIXES
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, log_to_driver=False, include_dashboard=False,
                 logging_level="error")
        _keep_sigterm()
        _quiet_ray()  # after ray.init and ray.data's import, which both set log levels
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.execution_options.preserve_order = True
        if hasattr(ctx, "raise_original_map_exception"):  # Ray >= 2.4x: our InputError
            ctx.raise_original_map_exception = True
        try:
            ds = ray.data.read_parquet(str(path)) if parquet else ray.data.read_csv(str(path))
            result = recourse_dataset(ds, model_dir, options=options, best_k=best_k,
                                      seed=seed, workers=workers, source=str(path),
                                      min_probability=min_probability,
                                      constraints=constraints,
                                      labels="row" if parquet else "line")
            return _write_csv(result, output_path, overwrite, csv_safe)
        except GenreError:
            raise
        except Exception as exc:  # a Ray error: surface the GenreError it wraps, if any
            cause = _genre_cause(exc)
            if cause is None or cause is exc:
                raise GenreError(f"{path}: Ray failed ({type(exc).__name__}: "
                                 f"{_first_line(exc)})") from None
            raise cause from None
    finally:
        if started:
            ray.shutdown()


def _first_line(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    return (lines[-1] if lines else "")[:300]


def _quiet_ray() -> None:
    """Ray Data logs a task's whole traceback (about 200 lines) before raising, and Ray
    its progress and shutdown noise; the error is raised here once, as one line, instead."""
    import ray.data  # noqa: F401 - its import configures the loggers silenced here

    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _keep_sigterm() -> None:
    """ray.init installs its own SIGTERM handler; put genre's back (SystemExit(143), so
    the temporary output is removed and Ray shut down in `finally` blocks)."""
    if threading.current_thread() is threading.main_thread():
        exit_on_sigterm()


def _write_csv(result, output_path, overwrite: bool = True, csv_safe: bool = True) -> dict:
    counts = dict.fromkeys(("people", "rows", *STATUSES), 0)
    last = None
    with atomic_path(output_path, overwrite) as tmp, tmp.open("w", newline="") as out:
        for batch in result.iter_batches(batch_format="pandas", batch_size=None):
            if not len(batch):
                continue
            person = batch["person"].to_numpy()
            if last is not None and person[0] < last or np.any(np.diff(person) < 0):
                raise GenreError("Ray returned rows out of order")  # preserve_order is set
            (neutralise_formulas(batch) if csv_safe else batch).to_csv(
                out, header=last is None, index=False)
            new = batch.drop_duplicates("person")
            if last is not None:  # a person's options may span two batches
                new = new[new["person"] != last]
            counts["people"] += len(new)
            counts["rows"] += len(batch)
            for status, n in new["status"].value_counts().items():
                counts[status] += int(n)
            last = person[-1]
    return counts


def _genre_cause(exc: BaseException) -> GenreError | None:
    """The GenreError behind `exc`, unwrapped from Ray's exceptions (a RayTaskError keeps
    the task's exception in .cause; it may itself subclass the original's type)."""
    for _ in range(10):
        inner = getattr(exc, "cause", None)
        if isinstance(inner, BaseException):
            exc = inner
        elif isinstance(exc, GenreError):
            return exc
        elif exc.__cause__ is not None:
            exc = exc.__cause__
        else:
            return None
    return None


__all__ = ["BlockRecourse", "recourse_dataset", "recourse_file", "seed_aligned"]
