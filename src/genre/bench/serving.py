"""A real `genre serve` process for the lab's scripts and the service tests: started on a free
port, waited for until /health answers, stopped when the block ends."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass


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


@dataclass(frozen=True)
class Server:
    """A running `genre serve`: its process, port, base url and how long it took to answer."""

    proc: subprocess.Popen
    port: int
    url: str
    ready_seconds: float


@contextlib.contextmanager
def genre_serve(*options: str, timeout: float = 120.0) -> Iterator[Server]:
    """`python -m genre serve --port P OPTIONS` in a subprocess, up and answering /health.

    The server's output goes to a temporary file (never a pipe that could fill up); it is
    stopped with SIGTERM when the block ends (killed if it has not stopped 30 s later).

    Parameters
    ----------
    *options : str
        Command-line options of `genre serve` (the model, workers, limits, ...).
    timeout : float
        Seconds it may take to answer /health.

    Returns
    -------
    Iterator[Server]
        A context manager yielding the running server; ready_seconds is the wall time from
        launching the process to its first answer.

    Raises
    ------
    RuntimeError
        If the process exits or does not answer within `timeout` (with its output).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "genre", "serve", "--port", str(port),
                                 *options], stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            ready = _wait_for_health(proc, url, t0, timeout)
            if ready is None:
                proc.kill()
                proc.wait()
                log.seek(0)
                raise RuntimeError(f"genre serve did not start (exit code {proc.returncode}):"
                                   f"\n{log.read()[-4000:]}")
            yield Server(proc, port, url, ready)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for_health(proc: subprocess.Popen, url: str, t0: float,
                     timeout: float) -> float | None:
    """Seconds since t0 at the first answer to GET /health; None if proc exits first or
    `timeout` passes."""
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            return None
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return time.perf_counter() - t0
        except OSError:
            time.sleep(0.02)
    return None
