"""Ranges of the numbers a user gives: checked before any of them is used.

The command line, the service and the Python API take seeds, sample counts and option
counts from users; each is checked here, so a `--seed 2**64` or `best_k = 10**9` is a
one-line error naming the value and its range instead of a traceback or a request for
52 GiB. `check_request` checks all of them at once (what the service needs for a request);
`check_cell` checks one value against the range the model's arithmetic can carry.
"""

from __future__ import annotations

import math
import numbers

from genre.errors import InputError

SEED_MAX = 2**63 - 1  # seeds go to numpy, torch and the block seeds: a signed 64-bit int
BEST_K_MAX = 10_000  # samples per person (a saved config allows the same at most)
OPTIONS_MAX = 100  # distinct recourses per person (each needs 10 samples)
CHUNK_MAX = 10_000_000  # rows read at a time
WORKERS_MAX = 4096  # Ray actors
THREADS_MAX = 256  # torch threads a model may ask for
FLOAT32_MAX = 3.4028234663852886e38  # what the model's float32 arithmetic carries
INTEGER_MAX = 2**53  # integers beyond this are not exact as float64 (the encoder's numbers)


def _whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(value, name: str, lo: int, hi: int, where: str = "") -> int:
    """`value` as an int when it is a whole number (not a bool) in [lo, hi]; else an
    InputError naming `name`, the value (shortened) and the range. `where` (a file, a
    request) prefixes the message."""
    if not _whole(value) or not lo <= value <= hi:
        shown = repr(value) if not _whole(value) or abs(value) < 10**30 else \
            f"a {len(str(abs(value)))}-digit number"
        raise InputError(f"{where + ': ' if where else ''}{name} must be a whole number from "
                         f"{lo:,} to {hi:,}, got {shown}"[:300])
    return int(value)


def check_seed(seed, name: str = "seed", where: str = "") -> int:
    """A seed: a whole number from 0 to 2**63 - 1."""
    return check_int(seed, name, 0, SEED_MAX, where)


def check_best_k(best_k, name: str = "best_k", where: str = "") -> int | None:
    """Samples per person (None: the model's own)."""
    return None if best_k is None else check_int(best_k, name, 1, BEST_K_MAX, where)


def check_options(options, name: str = "options", where: str = "") -> int:
    """Distinct recourses per person."""
    return check_int(options, name, 1, OPTIONS_MAX, where)


def check_request(*, seed=0, best_k=None, options=1, where: str = "",
                  names: dict[str, str] | None = None) -> tuple[int, int | None, int]:
    """Check seed, best_k and options together (what one recourse request carries); return
    them as ints. `names` renames them in messages (e.g. {"best_k": "--best-k"})."""
    names = names or {}
    return (check_seed(seed, names.get("seed", "seed"), where),
            check_best_k(best_k, names.get("best_k", "best_k"), where),
            check_options(options, names.get("options", "options"), where))


def check_cell(value, name: str, *, integer: bool = False, where: str = "") -> float:
    """A number a feature may take: finite, within float32's range (what the model computes
    in) and, for an integer feature, within +-2**53 (so it stays exact). Returns it as a
    float; InputError otherwise."""
    prefix = f"{where + ': ' if where else ''}{name}: "
    try:
        x = float(value)
    except OverflowError:  # an int too big for a float
        raise InputError(f"{prefix}{len(str(abs(int(value))))}-digit number is beyond "
                         "+-3.4e38, the float32 range the model computes in") from None
    except (TypeError, ValueError):
        raise InputError(f"{prefix}expected a number, got {value!r}"[:300]) from None
    if not math.isfinite(x):
        raise InputError(f"{prefix}expected a finite number, got {value!r}")
    if abs(x) > FLOAT32_MAX:
        raise InputError(f"{prefix}value {x:g} is beyond +-3.4e38, the float32 range the "
                         "model computes in")
    if integer and abs(x) > INTEGER_MAX:
        raise InputError(f"{prefix}value {x:g} is beyond +-2**53, the range in which "
                         "integers are exact")
    return x


__all__ = ["BEST_K_MAX", "OPTIONS_MAX", "SEED_MAX", "check_best_k", "check_cell", "check_int",
           "check_options", "check_request", "check_seed"]
