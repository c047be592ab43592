"""The student sampler's config and network (see genre.core.student for the design)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genre.errors import ModelError

STUDENT_FORMAT = "genre-recourse/student"
STUDENT_VERSION = 1  # the saved format; also keys the benchmark's cached students
STUDENT_JSON = "student.json"
STUDENT_TENSORS = "student.safetensors"
STUDENT_FILES = (STUDENT_JSON, STUDENT_TENSORS)
MIN_SCALE, MAX_LOG_SCALE = 1e-3, 2.0  # the logistic's scale, in [0, 1] units
FORWARD_ROWS = 8192  # individuals per forward pass when sampling
# Upper bounds a saved student config may ask for (so a config cannot ask for gigabytes).
MAX_COMPONENTS, MAX_HIDDEN, MAX_LAYERS = 1024, 8192, 16



@dataclass
class StudentConfig:
    """The student's size and its distillation budget.

    Parameters
    ----------
    n_components : int
        Mixture components M (the discrete latent variable).
    hidden : int
        Width of the MLP.
    n_layers : int
        Hidden layers of the MLP.
    rows : int
        Conditioning rows distilled on: the training sources, then jittered copies of them
        until there are this many (a larger source set is subsampled).
    samples_per_row : int
        Teacher samples per conditioning row.
    jitter : float
        Standard deviation of the Gaussian jitter (normalised units) on mutable features.
    tune : bool
        After distillation, when the teacher's tune is "auto", choose the student's
        sharpness (genre.core.student.tune_student: the logistics' scale and the mixture's
        temperature) by the teacher's criterion on held-out rejected training rows.
    epochs, patience, batch_rows, lr, max_seconds, val_frac, seed :
        Training: at most `epochs` passes, stopping after `patience` without a better
        held-out likelihood (the defaults: about 5 s an epoch on compas with one thread,
        2.5-3 min in all with the teacher's samples); `max_seconds` (None, the default: no
        limit) is an optional wall-clock cap on training, and when it fires the log's
        `stopped_by` says "max_seconds" (else "patience" or "epochs"). Adam with step
        `lr` on batches of `batch_rows` rows (each with its samples), `val_frac` of the
        rows held out.
    """

    n_components: int = 16
    hidden: int = 128
    n_layers: int = 2
    rows: int = 16_000
    samples_per_row: int = 24
    jitter: float = 0.03
    epochs: int = 30
    patience: int = 5
    batch_rows: int = 256
    lr: float = 2e-3
    max_seconds: float | None = None
    val_frac: float = 0.1
    seed: int = 0
    tune: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "student config") -> StudentConfig:
        """A config from its JSON form, every key checked (type and range)."""
        if not isinstance(d, dict):
            raise ModelError(f"{where}: expected a mapping")
        names = {f.name for f in fields(cls)}
        if "tune" not in d and set(d) == names - {"tune"}:  # saved before `tune` existed
            d = d | {"tune": False}
        if set(d) != names:
            raise ModelError(f"{where}: keys {sorted(d)} differ from {sorted(names)}")
        ints = {"n_components": MAX_COMPONENTS, "hidden": MAX_HIDDEN, "n_layers": MAX_LAYERS,
                "rows": None, "samples_per_row": None, "epochs": None, "patience": None,
                "batch_rows": None, "seed": None}
        for key, top in ints.items():
            v = d[key]
            ok = isinstance(v, int) and not isinstance(v, bool) and v >= (
                0 if key in ("patience", "seed") else 1) and (top is None or v <= top)
            if not ok:
                raise ModelError(f"{where}.{key}: expected an integer in range, got {v!r}")
        for key in ("jitter", "lr", "max_seconds", "val_frac"):
            v = d[key]
            if key == "max_seconds" and v is None:
                continue
            if (not isinstance(v, int | float) or isinstance(v, bool) or math.isnan(v)
                    or v < 0 or (key == "val_frac" and v >= 1)):
                raise ModelError(f"{where}.{key}: expected a non-negative number, got {v!r}")
        if not isinstance(d["tune"], bool):
            raise ModelError(f"{where}.tune: expected true or false, got {d['tune']!r}")
        return cls(**d)


class StudentNet(nn.Module):
    """x (B, D) -> mixture log-weights (B, M) and per (component, feature) the logistic's
    location and log-scale and the stay logit, each (B, M, D)."""

    def __init__(self, n_features: int, n_bins: int, n_components: int, hidden: int,
                 n_layers: int):
        super().__init__()
        self.n_features, self.n_bins, self.n_components = n_features, n_bins, n_components
        # The first layer reads x and the one-hot bin of each feature: a linear map of x
        # plus one embedding row per (feature, bin), summed (a linear map of the one-hot).
        self.inp = nn.Linear(n_features, hidden)
        # empty().normal_() is what torch.randn does, and mul_ gives `* 0.02`'s values, bit
        # for bit (the same random stream too); the offsets are arange(D) * n_bins. Written
        # so, building the net on the meta device (loading checks shapes there:
        # genre.integrity.module_shapes) runs no Python reference of randn, arange or mul,
        # which import sympy and torch._dynamo (about 0.6 s of CPU).
        self.bin_embed = nn.Parameter(
            torch.empty(n_features * n_bins, hidden).normal_().mul_(0.02))
        self.register_buffer("offsets", torch.tensor([j * n_bins for j in range(n_features)],
                                                     dtype=torch.int64), persistent=False)
        layers: list[nn.Module] = [nn.ReLU()]
        for _ in range(n_layers - 1):
            layers += [nn.Linear(hidden, hidden), nn.ReLU()]
        self.trunk = nn.Sequential(*layers)
        self.mix = nn.Linear(hidden, n_components)
        self.heads = nn.Linear(hidden, n_components * n_features * 3)

    def own_bins(self, x: Tensor) -> Tensor:
        """(B, D) the bin holding each value (as the teacher computes it, in float32)."""
        return (x.float() * self.n_bins).floor().clamp(0, self.n_bins - 1).long()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        B, D = x.shape
        embedded = F.embedding_bag(self.own_bins(x) + self.offsets, self.bin_embed,
                                   mode="sum")
        h = self.trunk(self.inp(x) + embedded)
        log_pi = F.log_softmax(self.mix(h), dim=-1)
        out = self.heads(h).view(B, self.n_components, D, 3)
        mu = x[:, None, :] + out[..., 0]
        log_s = out[..., 1].clamp(math.log(MIN_SCALE), MAX_LOG_SCALE)
        return log_pi, mu, log_s, out[..., 2]

    def log_likelihood(self, x: Tensor, bins: Tensor, weight: Tensor) -> Tensor:
        """(B, S) log-probability of the candidates' bins (B, S, D) given x (B, D);
        weight (D,) 0 leaves a feature out (immutables: copied, not sampled)."""
        log_pi, mu, log_s, stay = self(x)
        n = self.n_bins
        own = self.own_bins(x)  # (B, D)
        b = bins[:, None].float()  # (B, 1, S, D)
        mu, s = mu[:, :, None], log_s.exp()[:, :, None]  # (B, M, 1, D)
        lo = (b / n - mu) / s
        hi = ((b + 1) / n - mu) / s
        mid = (lo + hi) / 2
        # sigma(hi) - sigma(lo), from the side where it is not a difference of two ~1s.
        delta = torch.where(mid > 0, torch.sigmoid(-lo) - torch.sigmoid(-hi),
                            torch.sigmoid(hi) - torch.sigmoid(lo))
        log_mass = torch.where(b == 0, F.logsigmoid(hi),
                               torch.where(b == n - 1, F.logsigmoid(-lo),
                                           delta.clamp_min(1e-12).log()))
        st = stay[:, :, None]
        log_move = F.logsigmoid(-st) + log_mass
        is_own = (bins == own[:, None])[:, None]  # (B, 1, S, D)
        log_p = torch.where(is_own, torch.logaddexp(F.logsigmoid(st), log_move), log_move)
        joint = (log_p * weight).sum(dim=-1)  # (B, M, S)
        return torch.logsumexp(log_pi[:, :, None] + joint, dim=1)

