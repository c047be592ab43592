"""Dynamic batching for `genre serve`: concurrent requests answered together in one sampler
call, then split back.

A request's records wait in a queue for at most `max_wait` seconds (counted from the
oldest waiting request) or until `max_records` records wait; then every waiting request
that fits (at least one) is answered by one call of `answer_batch` per (options, seed)
group, in a single worker thread, so the event loop never runs the sampler and the model
(which is not thread-safe) is used by one thread only. While a batch is being answered,
new requests queue for the next one.

`answer_batch` is `recourse_records` (the per-block function `genre recourse` uses:
genre.streaming.answer_blocks) on the concatenation of the requests' tables, split back by
row: request r gets the rows of its records, `person` renumbered from 0. Where a record's
answer depends only on the record and the seed (per-record random streams), a batched
answer equals the request answered alone and `genre recourse` on a file of those records.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from genre.errors import InputError
from genre.tables.streaming import answer_blocks


def recourse_records(model, table: pd.DataFrame, *, options: int = 1,
                     best_k: int | None = None, seed: int = 0,
                     source: str = "request", min_probability: float | None = None,
                     constraints=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """recourse_table over a whole table in genre.tables.streaming's blocks (answer_blocks; each
    record with its own random stream from `seed`, person = 0-based position).
    Returns (profiles, changes)."""
    id_column = model.encoder_.schema_.id_column
    parts = list(answer_blocks(model, [table], options=options, best_k=best_k, seed=seed,
                               source=source, min_probability=min_probability,
                               constraints=constraints,
                               id_column=id_column if id_column in table.columns else None))
    return (pd.concat([p for p, _, _ in parts], ignore_index=True),
            pd.concat([d for _, d, _ in parts], ignore_index=True))


def answer_batch(model, tables: list[pd.DataFrame], **params
                 ) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """(profiles, changes) per table, answered with one recourse_records(model, ...,
    **params) call on their concatenation (person renumbered from 0 within each table);
    params: options, seed, best_k, min_probability, constraints."""
    whole = pd.concat(tables, ignore_index=True) if len(tables) > 1 else \
        tables[0].reset_index(drop=True)
    profiles, diff = recourse_records(model, whole, **params)
    bounds = np.cumsum([0] + [len(t) for t in tables])
    return [(_rows_of(profiles, lo, hi), _rows_of(diff, lo, hi))
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def _rows_of(frame: pd.DataFrame, lo: int, hi: int) -> pd.DataFrame:
    """The rows of people lo..hi-1 (frame is sorted by person), person renumbered from 0."""
    person = frame["person"].to_numpy()
    a, b = np.searchsorted(person, [lo, hi])
    part = frame.iloc[a:b].reset_index(drop=True)
    part["person"] = person[a:b] - lo
    return part


@dataclass
class Job:
    """One request waiting for its answer."""

    table: pd.DataFrame
    key: Any  # jobs with equal keys (and so equal params) may share a sampler call
    params: dict  # recourse_records' keyword arguments
    finish: Callable[[pd.DataFrame, pd.DataFrame], Any]  # (profiles, changes) -> the answer
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


class _Queue:
    """The jobs waiting in one event loop (a server has one; tests may start several)."""

    def __init__(self):
        self.pending: deque[Job] = deque()
        self.records = 0
        self.full = asyncio.Event()
        self.task: asyncio.Task | None = None


class Batcher:
    """Queues jobs and answers them in batches in one worker thread (see the module
    docstring). `on_batch(requests, records, seconds)` is told about every sampler call."""

    def __init__(self, model, *, max_wait: float = 0.005, max_records: int = 1000,
                 on_batch: Callable[[int, int, float], None] | None = None):
        if max_wait < 0 or max_records < 1:
            raise InputError(f"batch wait must be >= 0 and max batch >= 1, got {max_wait}, "
                             f"{max_records}")
        self.model, self.max_wait, self.max_records = model, max_wait, max_records
        self.on_batch = on_batch
        self._queues: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._executor: ThreadPoolExecutor | None = None

    @property
    def waiting(self) -> int:
        """Records waiting for a batch."""
        return sum(q.records for q in list(self._queues.values()))

    async def submit(self, table: pd.DataFrame,
                     finish: Callable[[pd.DataFrame, pd.DataFrame], Any], key=None, **params):
        """The answer to one request: finish(profiles, changes) for recourse_records(table,
        **params), computed in the worker thread; an InputError from answering is raised
        here. Jobs share a sampler call only when their keys are equal (default: the
        params, when they are hashable)."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        if key is None:
            key = tuple(sorted(params.items()))
        job = Job(table, key, params, finish, loop.create_future())
        queue.pending.append(job)
        queue.records += len(table)
        if queue.records >= self.max_records:
            queue.full.set()
        if queue.task is None or queue.task.done():
            queue.task = loop.create_task(self._run(queue))
        return await job.future

    async def _run(self, queue: _Queue) -> None:
        loop = asyncio.get_running_loop()
        while queue.pending:
            wait = queue.pending[0].arrived + self.max_wait - time.monotonic()
            if wait > 0 and queue.records < self.max_records:
                queue.full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.full.wait(), wait)
            jobs = self._take(queue)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1,
                                                    thread_name_prefix="genre-sampler")
            results = await loop.run_in_executor(self._executor, self._answer, jobs)
            for job, (ok, value) in zip(jobs, results, strict=True):
                if job.future.done():  # the client went away
                    continue
                if ok:
                    job.future.set_result(value)
                else:
                    job.future.set_exception(value)

    def _take(self, queue: _Queue) -> list[Job]:
        """The oldest waiting jobs whose records fit in max_records (at least one)."""
        jobs, records = [], 0
        while queue.pending and (not jobs or records + len(queue.pending[0].table)
                                 <= self.max_records):
            job = queue.pending.popleft()
            jobs.append(job)
            records += len(job.table)
        queue.records -= records
        return jobs

    def _answer(self, jobs: list[Job]) -> list[tuple[bool, Any]]:
        """In the worker thread: one answer_batch call per group of equal keys. When a
        group fails (a record the request model could not check), its jobs are answered
        one by one, so that the error reaches only the request it belongs to."""
        out: dict[int, tuple[bool, Any]] = {}
        groups: dict[Any, list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(job.key, []).append(i)
        for members in groups.values():
            t0 = time.perf_counter()
            try:
                answers = answer_batch(self.model, [jobs[i].table for i in members],
                                       **jobs[members[0]].params)
            except Exception as exc:  # noqa: BLE001 - InputError: a 422; others: a 500
                for i in members:
                    out[i] = (self._answer_one(jobs[i]) if len(members) > 1
                              and isinstance(exc, InputError) else (False, exc))
                continue
            finally:
                if self.on_batch is not None:
                    self.on_batch(len(members), sum(len(jobs[i].table) for i in members),
                                  time.perf_counter() - t0)
            for i, (profiles, diff) in zip(members, answers, strict=True):
                out[i] = self._finish(jobs[i], profiles, diff)
        return [out[i] for i in range(len(jobs))]

    def _answer_one(self, job: Job) -> tuple[bool, Any]:
        try:
            ((profiles, diff),) = answer_batch(self.model, [job.table], **job.params)
        except Exception as exc:  # noqa: BLE001 - InputError: a 422; others: a 500
            return False, exc
        return self._finish(job, profiles, diff)

    @staticmethod
    def _finish(job: Job, profiles: pd.DataFrame, diff: pd.DataFrame) -> tuple[bool, Any]:
        try:
            return True, job.finish(profiles, diff)
        except Exception as exc:  # noqa: BLE001
            return False, exc

    def close(self) -> None:
        """Stop the worker thread (a later batch starts a new one)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


__all__ = ["Batcher", "answer_batch", "recourse_records"]
