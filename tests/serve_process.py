"""A real `genre serve` process for the service tests (genre.bench.serving.genre_serve),
failing the test with the server's output if it does not come up."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from genre.bench.serving import genre_serve


@contextlib.contextmanager
def serve_process(*options: str) -> Iterator[tuple[int, str]]:
    """`genre serve --port P OPTIONS` in a subprocess, up and answering /health.

    Fails the test (with the server's output) if it exits or does not answer within 60 s.

    Parameters
    ----------
    *options : str
        Command-line options of `genre serve` (the model, workers, limits, ...).

    Returns
    -------
    Iterator[tuple[int, str]]
        A context manager yielding (port, base url); the process is stopped when it ends.
    """
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(genre_serve(*options, timeout=60))
        except RuntimeError as exc:
            pytest.fail(str(exc))
        yield server.port, server.url
