"""Helpers the lab's runners share (the table, the sweeps, the speed run): names, JSON-safe
values, versions and the machine. Imports nothing of genre.bench, so every runner can."""

from __future__ import annotations

import math
import os
import platform
import shlex
import sys
from importlib import metadata

import numpy as np
import pandas as pd


def split_names(names) -> list[str]:
    """Comma- and/or space-separated names (a string or an iterable of strings), deduplicated.

    Parameters
    ----------
    names : str, iterable of str or None

    Returns
    -------
    list of str
    """
    if names is None:
        return []
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for item in names:
        for name in str(item).replace(",", " ").split():
            if name not in out:
                out.append(name)
    return out


def plain(v):
    """JSON-safe value: NaN/NA -> None, numpy scalars -> Python, dicts and lists item by
    item.

    Parameters
    ----------
    v : object

    Returns
    -------
    object
    """
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [plain(x) for x in v]
    if v is None or v is pd.NA:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def error_text(exc: BaseException) -> str:
    """One line (at most 500 characters) naming an exception and its message."""
    return f"{type(exc).__name__}: {exc}".strip().replace("\n", " ")[:500]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Versions of genre and the libraries its figures depend on (None: not installed)."""
    return {"genre": _version("genre-recourse"), "torch": _version("torch"),
            "numpy": _version("numpy"), "sklearn": _version("scikit-learn"),
            "dice-ml": _version("dice-ml")}


def machine() -> dict:
    """The platform, CPU count, Python version and torch's thread count."""
    import torch

    return {"platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or None, "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "torch_threads": torch.get_num_threads()}


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def progress_bar(enabled: bool):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(SpinnerColumn(), TextColumn("{task.description:<24}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), disable=not enabled)


def fmt(v, digits: int = 2) -> str:
    return "-" if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) \
        else f"{v:.{digits}f}"


__all__ = ["error_text", "fmt", "load_average", "machine", "plain", "progress_bar", "split_names",
           "versions"]


def script_header(title: str, runtime: str, note: str) -> list[str]:
    """The top of a benchmark script's markdown: its title, the command line as run (from
    sys.argv) and the machine.

    Parameters
    ----------
    title : str
        The page's title (without the leading '# ').
    runtime : str
        What the machine line names after the Python version (the OS, Ray's version, ...).
    note : str
        A line about the machine's state ('' for none).

    Returns
    -------
    list of str
        Markdown lines, ending with a blank line.
    """
    return [f"# {title}", "", "```", "python " + " ".join(shlex.quote(a) for a in sys.argv),
            "```", "", f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python "
            f"{platform.python_version()}, {runtime}. {note}".rstrip(), ""]
