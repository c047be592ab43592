"""What genre saves is checked before it is used: sha256 manifests and safetensors headers.

A model directory or cache entry carries `manifest.json`: the size and sha256 of every file
written with it (config and tensors), checked when it is loaded, so an edited, truncated or
swapped file is refused ("... changed after it was saved: FILE"). A safetensors file's
header (8-byte little-endian length, then JSON naming each tensor's dtype, shape and byte
range) is read and checked against the shapes the configuration implies before any tensor
is allocated; the tensors are then loaded (safetensors: no code runs) and must be finite.
Every failure is a ModelError naming the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genre.errors import ModelError

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "genre-recourse/manifest"
MAX_HEADER_BYTES = 16 * 2**20  # a safetensors header (JSON) larger than this is refused
MAX_JSON_BYTES = 64 * 2**20  # config / manifest files
_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
             "U8": 1, "BOOL": 1}
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as a safetensors header describes it (offsets into the data section)."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def regular_file(path: Path) -> Path:
    """`path` when it is a regular file; a symlink, a missing file or anything else is refused."""
    path = Path(path)
    try:
        st = path.lstat()
    except FileNotFoundError:
        raise ModelError(f"{path}: missing") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISLNK(st.st_mode):
        raise ModelError(f"{path}: is a symbolic link; saved models and cache entries hold "
                         "regular files only")
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"{path}: not a regular file")
    return path


def read_json(path: Path, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """A JSON file (a regular file of bounded size) or a ModelError naming it."""
    path = regular_file(path)
    try:
        if path.stat().st_size > max_bytes:
            raise ModelError(f"{path}: larger than {max_bytes:,} bytes")
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"{path}: not readable JSON ({type(exc).__name__}: {exc})") from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------- manifests
def write_manifest(directory: Path, names: Iterable[str], extra: dict | None = None) -> Path:
    """Record size and sha256 of `names` (files in `directory`) in directory/manifest.json.

    Safetensors files also get their tensors' shapes; `extra` is stored as is (e.g. array
    shapes a loader compares with the data it expects).
    """
    directory = Path(directory)
    files = {}
    for name in names:
        path = regular_file(directory / name)
        entry: dict[str, Any] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
        if name.endswith(".safetensors"):
            entry["tensors"] = {k: list(v.shape)
                                for k, v in read_safetensors_header(path).items()}
        files[name] = entry
    doc = {"format": MANIFEST_FORMAT, "version": 1, "files": files} | (extra or {})
    out = directory / MANIFEST
    out.write_text(json.dumps(doc, indent=1))
    return out


def verify_manifest(directory: Path, *, required: bool,
                    what: str = "model directory") -> dict | None:
    """Check every file directory/manifest.json lists against its size and sha256.

    Returns the manifest (its "files" maps each listed name to its record), or None when
    there is none and `required` is false. Raises ModelError naming the file at fault.
    """
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.exists() and not path.is_symlink():
        if required:
            raise ModelError(f"{path}: missing (the {what} has no integrity manifest)")
        return None
    doc = read_json(path)
    files = doc.get("files") if isinstance(doc, dict) else None
    if (not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT
            or not isinstance(files, dict) or not files):
        raise ModelError(f"{path}: not a genre manifest")
    for name, entry in files.items():
        if (not isinstance(name, str) or name in ("", ".", "..", MANIFEST)
                or Path(name).name != name or "\\" in name):
            raise ModelError(f"{path}: lists {name!r}, which is not a file name")
        if (not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str)
                or not isinstance(entry.get("bytes"), int)):
            raise ModelError(f"{path}: malformed entry for {name!r}")
        target = regular_file(directory / name)
        try:
            same = (target.stat().st_size == entry["bytes"]
                    and sha256_file(target) == entry["sha256"])
        except OSError as exc:
            raise ModelError(f"{target}: cannot be read ({exc.strerror or exc})") from None
        if not same:
            raise ModelError(f"{what} changed after it was saved: {target}")
    return doc


# ---------------------------------------------------------------------------- safetensors
def read_safetensors_header(path: Path) -> dict[str, TensorInfo]:
    """The tensors a safetensors file holds, from its header alone (nothing is allocated).

    The header length must fit the file and MAX_HEADER_BYTES; every entry needs a known
    dtype, a shape of non-negative integers and a byte range of exactly the size they imply;
    the ranges must tile the data section with no gap, overlap or trailing byte.
    """
    path = regular_file(path)
    size = path.stat().st_size

    def bad(why: str) -> ModelError:
        return ModelError(f"{path}: not a valid safetensors file ({why})")

    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little")
            raw = fh.read(n) if len(head) == 8 and n <= min(MAX_HEADER_BYTES, size - 8) else b""
    except OSError as exc:
        raise ModelError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(head) < 8:
        raise bad(f"{size} bytes, shorter than the 8-byte header length")
    if n > min(MAX_HEADER_BYTES, size - 8):
        raise bad(f"header length {n:,} does not fit the file's {size:,} bytes")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad("header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    data_size = size - 8 - n
    out: dict[str, TensorInfo] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            if not isinstance(spec, dict) or not all(isinstance(v, str) for v in spec.values()):
                raise bad("__metadata__ must map strings to strings")
            continue
        if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"tensor '{name}' needs exactly dtype, shape and data_offsets")
        dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
        if dtype not in _ITEMSIZE:
            raise bad(f"tensor '{name}' has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise bad(f"tensor '{name}' has shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(_is_int(o) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_size):
            raise bad(f"tensor '{name}' has byte range {offsets!r} outside the "
                      f"{data_size:,}-byte data section")
        if offsets[1] - offsets[0] != math.prod(shape) * _ITEMSIZE[dtype]:
            raise bad(f"tensor '{name}' of shape {shape} and dtype {dtype} does not match its "
                      f"byte range {offsets}")
        out[name] = TensorInfo(dtype, tuple(shape), offsets[0], offsets[1])
    position = 0
    for info in sorted(out.values(), key=lambda i: (i.begin, i.end)):
        if info.begin != position:
            raise bad("tensors overlap or leave gaps in the data section")
        position = info.end
    if position != data_size:
        raise bad(f"data section of {data_size:,} bytes, tensors cover {position:,}")
    return out


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def module_shapes(build: Callable[[], Any]) -> dict[str, tuple[int, ...]]:
    """State-dict shapes of the module `build()` makes, built on the meta device (no memory)."""
    import torch

    with torch.device("meta"), _SkipInit():
        module = build()
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _skip_init_mode():
    """A TorchFunctionMode (thread-local) for building a module on the meta device without
    the decompositions torch runs there for two calls: nn.init.normal_ (imports
    torch._dynamo, about 0.9 s of CPU) and linspace (imports sympy, about 0.5 s). Meta
    tensors hold no values, so normal_ is skipped and linspace becomes an empty tensor of
    its length."""
    import torch
    from torch.overrides import TorchFunctionMode

    skipped = {torch.nn.init.normal_, torch.Tensor.normal_}

    class SkipInit(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            tensor = args[0] if args else kwargs.get("tensor")
            if func in skipped and getattr(tensor, "is_meta", False):
                return tensor
            if func is torch.linspace:
                steps = args[2] if len(args) > 2 else kwargs["steps"]
                return torch.empty(steps, dtype=kwargs.get("dtype"), device="meta")
            return func(*args, **kwargs)

    return SkipInit


def _SkipInit():  # noqa: N802 - used like a class
    return _skip_init_mode()()


def load_tensors(path: Path, expected: dict[str, tuple[int | None, ...]],
                 dtype: str | dict[str, str] = "F32", infinite: Iterable[str] = ()) -> dict:
    """Load a safetensors file whose tensors must be exactly `expected` (name -> shape; a
    None dimension may take any size), all of `dtype` (or of dtype[name]) and finite (those
    named in `infinite` may hold +-inf, never NaN). The header is checked first, so a file
    that does not match allocates nothing."""
    from safetensors.torch import load_file

    path = Path(path)
    header = read_safetensors_header(path)
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    if missing or unexpected:
        raise ModelError(f"{path}: tensors do not match the configuration"
                         + (f"; missing {missing[:5]}" if missing else "")
                         + (f"; unexpected {unexpected[:5]}" if unexpected else ""))
    for name, shape in expected.items():
        info = header[name]
        if len(info.shape) != len(shape) or any(
                want is not None and got != want
                for got, want in zip(info.shape, shape, strict=True)):
            want_text = tuple("n" if d is None else d for d in shape)
            raise ModelError(f"{path}: tensor '{name}' has shape {info.shape}; the "
                             f"configuration implies {want_text}")
        want = dtype[name] if isinstance(dtype, dict) else dtype
        if info.dtype != want:
            raise ModelError(f"{path}: tensor '{name}' is {info.dtype}, expected {want}")
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error type; the header was fine
        raise ModelError(f"{path}: cannot load tensors ({exc})") from None
    infinite = set(infinite)
    for name, t in tensors.items():
        if header[name].dtype not in _FLOAT_DTYPES:
            continue
        if not bool((~t.isnan() if name in infinite else t.isfinite()).all()):
            raise ModelError(f"{path}: tensor '{name}' holds NaN"
                             + ("" if name in infinite else " or infinite") + " values")
    return tensors
