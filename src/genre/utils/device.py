"""Which torch device GenRe fits and samples on: "cpu" (the default), "cuda" or "auto"."""

from __future__ import annotations

import torch

from genre.errors import InputError

DEVICES = ("cpu", "cuda", "auto")


def resolve_device(device: str) -> torch.device:
    """"cpu", "cuda" (or "cuda:N"), or "auto" (CUDA when torch sees a GPU, else the CPU) ->
    a torch.device; InputError (one line) for an unknown name or CUDA without a GPU."""
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r} requested, but this torch build sees no CUDA "
                             "GPU (torch.cuda.is_available() is False); use --device cpu "
                             "or auto")
        return torch.device(name)
    raise InputError(f"unknown device {device!r}: expected one of {', '.join(DEVICES)} "
                     "(or cuda:N)")
