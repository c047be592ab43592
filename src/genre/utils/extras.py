"""Optional dependencies: a missing extra is one line naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from genre.errors import GenreError


class MissingExtraError(GenreError, ImportError):
    """An optional dependency of genre-recourse is not installed."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import `module`, or raise MissingExtraError: "<purpose> needs the '<extra>' extra: pip
    install 'genre-recourse[<extra>]'"."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(f"{purpose} needs the '{extra}' extra: pip install "
                                f"'genre-recourse[{extra}]' ({module} is not installed)") from exc
