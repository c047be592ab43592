"""Per-record random streams: one person, one answer.

A record's options depend only on the record and the seed, never on its row position, its
block, the batch it came in or the machine that answered it. Each record gets a 64-bit key,

    key = first 8 bytes of sha256(b"genre-row", seed, the record's normalised values)

(the normalised float64 row: 12, 12.0 and '12' in a file encode alike, and a record carries
the same key in a CSV, a Parquet file, a service request or a Ray block), and every random
number the sampler uses for that record is a counter-based draw from the key:

    uniform(key, sample s, feature j) = splitmix64(key, s, j, stream) -> [0, 1)

so sample s of a record is the same whether 10 or 30 samples are drawn, and drawing more
(`offset`) continues the record's stream instead of repeating it.
"""

from __future__ import annotations

import hashlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
UNIFORM, NOISE_A, NOISE_B = 0, 1, 2  # the streams of one (record, sample, feature)


def row_keys(X: np.ndarray, seed: int) -> np.ndarray:
    """(N,) uint64: each row's key, from the seed and the row's normalised values only.

    Parameters
    ----------
    X : ndarray (N, D)
        Records in normalised units (an Encoder's transform).
    seed : int
        The sampling seed (>= 0).

    Returns
    -------
    ndarray (N,) of uint64
    """
    X = np.ascontiguousarray(np.asarray(X, dtype=np.float64) + 0.0)  # -0.0 -> 0.0
    prefix = hashlib.sha256(b"genre-row" + int(seed).to_bytes(16, "little", signed=False))
    keys = np.empty(len(X), dtype=np.uint64)
    for i, row in enumerate(X):
        h = prefix.copy()
        h.update(row.tobytes())
        keys[i] = int.from_bytes(h.digest()[:8], "little")
    return keys


def _mix(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (uint64, wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _bits(keys: np.ndarray, n_samples: int, n_features: int, offset: int,
          stream: int) -> np.ndarray:
    """(D, N * n_samples) uint64 draws: column i*n_samples + s is sample offset + s of
    record i (the layout of GenRe.sample's repeated rows), row j its feature j."""
    s = np.arange(offset, offset + n_samples, dtype=np.uint64)
    j = np.arange(n_features, dtype=np.uint64)
    counter = ((s[None, :] * np.uint64(n_features) + j[:, None]) * np.uint64(3)
               + np.uint64(stream))  # (D, S)
    with np.errstate(over="ignore"):
        c = _mix(counter * _GOLDEN + _GOLDEN)
        z = _mix(keys.astype(np.uint64)[None, :, None] + c[:, None, :])  # (D, N, S)
    return z.reshape(n_features, -1)


def row_uniforms(keys: np.ndarray, n_samples: int, n_features: int,
                 offset: int = 0) -> np.ndarray:
    """(D, N * n_samples) float32 uniforms in [0, 1) from the records' keys.

    Parameters
    ----------
    keys : ndarray (N,) of uint64
        From `row_keys`.
    n_samples : int
        Samples per record.
    n_features : int
        Features (decoding steps) per sample.
    offset : int
        Index of the first sample (later draws continue a record's stream).

    Returns
    -------
    ndarray (D, N * n_samples), float32
    """
    z = _bits(keys, n_samples, n_features, offset, UNIFORM)
    return ((z >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24))


def row_normals(keys: np.ndarray, n_samples: int, n_features: int,
                offset: int = 0) -> np.ndarray:
    """(D, N * n_samples) float64 standard normal draws (Box-Muller) from the records' keys
    (streams independent of `row_uniforms`'s); parameters as there."""
    a = _bits(keys, n_samples, n_features, offset, NOISE_A)
    b = _bits(keys, n_samples, n_features, offset, NOISE_B)
    u1 = ((a >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0 ** -53  # (0, 1]
    u2 = (b >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


__all__ = ["row_keys", "row_normals", "row_uniforms"]
