"""Torch thread settings for small models on a 2-core machine."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with n intra-op threads (None: leave the setting as it is), then restore
    the previous setting.

    Tiny models (h, small transformers) spend their time in per-op overhead, where extra
    threads only add synchronisation; after scikit-learn's OpenMP pools have run in the
    same process they can slow training down by an order of magnitude.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
