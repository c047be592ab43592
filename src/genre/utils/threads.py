"""Torch thread settings for small models on a 2-core machine."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with n intra-op threads (at most the CPUs this process may use; None:
    leave the setting as it is), then restore the previous setting.

    Tiny models (h, small transformers) spend their time in per-op overhead, where extra
    threads only add synchronisation; after scikit-learn's OpenMP pools have run in the
    same process they can slow training down by an order of magnitude.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(int(n), available_cpus())))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)
