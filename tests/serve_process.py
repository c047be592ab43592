"""A real `genre serve` process for the service tests: started on a free port, waited for
until /health answers, and stopped (terminate, then kill) when the block ends."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Returns
    -------
    int
        The port number.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from genre.cli import app; app()", "serve", "--port",
         str(port), *options],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"genre serve did not start: {proc.communicate()[0]}")
            time.sleep(0.2)
        yield port, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
