"""The fitted student: its sampler (one forward pass per individual, the teacher's masks) and
its files beside a GenRe model (see genre.core.student for the design)."""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor

from genre.core.sampling import bin_mask
from genre.core.seeding import row_uniforms
from genre.core.student_net import (
    FORWARD_ROWS,
    STUDENT_FILES,
    STUDENT_FORMAT,
    STUDENT_JSON,
    STUDENT_TENSORS,
    STUDENT_VERSION,
    StudentConfig,
    StudentNet,
)
from genre.data.encoder import CHANGE_TOL
from genre.errors import ModelError
from genre.integrity import load_tensors, module_shapes, read_json
from genre.tables.constraints import row_rules


class Student:
    """A fitted student: the network, its config, its training record and its sharpness.

    Parameters
    ----------
    net : StudentNet
        The network.
    config : StudentConfig
        Its size and budget.
    log : dict, optional
        The distillation record.
    tuning : dict, optional
        The sharpness chosen after distillation (genre.core.student.tune_student):
        "scale" multiplies every logistic's scale and "mix_temperature" divides the
        mixture's log-weights before they are renormalised; None: both 1 (the distribution
        as learnt).
    """

    def __init__(self, net: StudentNet, config: StudentConfig, log: dict | None = None,
                 tuning: dict | None = None):
        self.net, self.config, self.log = net, config, log or {}
        self.tuning = tuning
        self._trial: tuple[float, float] | None = None

    def sharpness(self) -> tuple[float, float]:
        """(scale, mix_temperature) used by sample: a trial's, else the tuned, else (1, 1)."""
        if self._trial is not None:
            return self._trial
        if self.tuning is None:
            return 1.0, 1.0
        return float(self.tuning["scale"]), float(self.tuning["mix_temperature"])

    @contextmanager
    def trying(self, scale: float, mix_temperature: float):
        """Sample with this sharpness inside the block (tuning tries each of its grid)."""
        self._trial = (float(scale), float(mix_temperature))
        try:
            yield self
        finally:
            self._trial = None

    def decoded_values(self, teacher) -> Tensor:
        """(D, n_bins) float64: the value each bin decodes to, the teacher's bin value
        already snapped onto the schema's grid and bounds (Encoder.project)."""
        table = np.asarray(teacher.bin_values_, dtype=np.float64).T  # (n_bins, D)
        return torch.as_tensor(teacher.encoder_.project(table).T.copy())

    @torch.no_grad()
    def sample(self, teacher, X: np.ndarray, n_samples: int, generator: torch.Generator,
               stay_radius: int = 0, keys: np.ndarray | None = None, offset: int = 0,
               constraints=None) -> np.ndarray:
        """(N, n_samples, D) candidates for the rows of X (normalised), obeying the schema
        by construction (see the module docstring).

        Parameters
        ----------
        teacher : genre.core.estimator.GenRe
            The GenRe it was distilled from (its encoder, masks, bin values, stay_in_bin).
        X : ndarray of shape (N, D)
            Individuals (normalised).
        n_samples : int
            Candidates per individual.
        generator : torch.Generator
            The source of every random draw (CPU).
        stay_radius : int
            With stay_in_bin, a bin at most this many bins from x's own keeps x's value.
        keys : ndarray (N,) of uint64, optional
            Per-record streams (genre.core.seeding.row_keys): a record's samples offset ..
            offset + n_samples - 1 depend on its key only (not on the other rows); None:
            `generator` serves the batch.
        offset : int
            The first sample's index in each record's stream.
        constraints : genre.tables.constraints.Constraints, optional
            Per-call freeze and ranges; with the schema's never/allowed category rules they
            mask the bins as the teacher's sampler does (genre.tables.constraints.row_rules)
            and every sample is projected onto what its row allows.

        Returns
        -------
        ndarray of shape (N, n_samples, D)
        """
        enc = teacher.encoder_
        x64 = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float64))
        x32 = x64.float()
        N, D = x64.shape
        n_bins, K = self.net.n_bins, n_samples
        allowed = bin_mask(teacher, x32)  # (N, D, n_bins), an interval of bins per feature
        rules = row_rules(enc, x64.numpy(), constraints)
        if rules is not None:  # the teacher's per-row mask: freeze, ranges, never/allowed
            left = teacher.model_.bins.double().numpy()
            own = np.clip(np.floor(x64.numpy() * n_bins), 0, n_bins - 1).astype(int)
            allowed &= torch.from_numpy(rules.bin_mask(left, left + 1.0 / n_bins,
                                                       teacher.bin_values_, own))
        allowed = allowed | ~allowed.any(dim=-1, keepdim=True)  # the teacher's fallback
        first = allowed.to(torch.uint8).argmax(dim=-1)
        last = n_bins - 1 - allowed.flip(-1).to(torch.uint8).argmax(dim=-1)
        # One forward pass per individual, then per candidate its component's parameters.
        parts = [self.net(x32[i:i + FORWARD_ROWS]) for i in range(0, N, FORWARD_ROWS)]
        log_pi, mu, log_s, stay = (torch.cat(t) for t in zip(*parts, strict=True))
        scale, mix_temperature = self.sharpness()
        if mix_temperature != 1.0:  # sharper (< 1) or flatter mixture weights
            log_pi = torch.log_softmax(log_pi / mix_temperature, dim=-1)
        if scale != 1.0:
            log_s = log_s + math.log(scale)
        if keys is None:
            comp = torch.multinomial(log_pi.exp(), K, replacement=True, generator=generator)
            u_stay = torch.rand(N, K, D, generator=generator)
            u = torch.rand(N, K, D, generator=generator)
        else:  # the record's own stream: D logistic draws, D stay draws, one component draw
            r = torch.from_numpy(row_uniforms(keys, K, 2 * D + 1, offset)).view(2 * D + 1, N, K)
            u, u_stay = r[:D].permute(1, 2, 0).contiguous(), r[D:2 * D].permute(1, 2, 0)
            cum = log_pi.exp().cumsum(dim=-1)
            comp = torch.searchsorted(cum, r[2 * D].contiguous() * cum[:, -1:]).clamp_(
                max=self.net.n_components - 1)
        pick = comp[:, :, None].expand(N, K, D)
        mu = mu.gather(1, pick)
        s = log_s.gather(1, pick).exp_()
        p_stay = stay.gather(1, pick).sigmoid_()
        # Truncated logistic on the allowed bins [first, last] (edge bins open-ended):
        # u moved into [F(lower edge), F(upper edge)], then the logistic's inverse CDF.
        lo_edge = torch.where(first == 0, -math.inf, first.float() / n_bins)[:, None]
        hi_edge = torch.where(last == n_bins - 1, math.inf, (last + 1).float() / n_bins)
        c_lo = ((lo_edge - mu) / s).sigmoid_()
        c_hi = ((hi_edge[:, None] - mu) / s).sigmoid_()
        q = u.mul_(c_hi.sub_(c_lo)).add_(c_lo).clamp_(1e-7, 1 - 1e-7)
        v = q.logit_().mul_(s).add_(mu).mul_(n_bins).floor_()
        b = torch.minimum(torch.maximum(v.long(), first[:, None]), last[:, None])
        if rules is not None:  # allowed bins need not be an interval: the nearest allowed
            b = _nearest_allowed(b, allowed)
        own = self.net.own_bins(x32)[:, None, :]
        stays = u_stay < p_stay
        if teacher.stay_in_bin:  # a stay, or a bin that keeps x's value, is x itself
            keep_x = stays | ((b - own).abs() <= stay_radius)
        else:  # a stay is x's own bin, decoded like any bin
            b = torch.where(stays, own, b)
            keep_x = torch.zeros_like(stays)
        keep_x |= torch.as_tensor(enc.immutable_mask if rules is None else rules.fixed[:, None])
        table = self.decoded_values(teacher)  # (D, n_bins)
        xr = x64[:, None, :].expand(N, K, D)
        value = torch.where(keep_x, xr, table[torch.arange(D), b])
        # Monotone features: bins on the wrong side are masked and x's own bin keeps x;
        # the clamp keeps a value snapped onto the grid from crossing x.
        for j in np.flatnonzero(enc.monotone):
            side = torch.maximum if enc.monotone[j] > 0 else torch.minimum
            value[..., j] = side(value[..., j], xr[..., j])
        if enc.schema_.has_effort:  # a value within CHANGE_TOL of x is x
            value = torch.where((value - xr).abs() <= CHANGE_TOL, xr, value)
        cap = enc.schema_.max_changes
        if cap is not None:
            value = cap_changes(value, xr, p_stay, cap)
        if rules is not None:
            flat = rules.repeat(K).project(value.reshape(N * K, D).numpy(),
                                           xr.reshape(N * K, D).numpy(), enc)
            return flat.reshape(N, K, D)
        return value.numpy()


def _nearest_allowed(b: Tensor, allowed: Tensor) -> Tensor:
    """b (N, K, D) with each bin its row does not allow (allowed (N, D, n_bins)) replaced by
    the nearest allowed one."""
    N, K, D = b.shape
    ok = allowed[:, None].expand(N, K, D, allowed.shape[-1]).gather(-1, b[..., None])[..., 0]
    if bool(ok.all()):
        return b
    i, k, j = (~ok).nonzero(as_tuple=True)
    rows = allowed[i, j]  # (bad, n_bins)
    dist = (torch.arange(rows.shape[-1])[None] - b[i, k, j][:, None]).abs().float()
    b = b.clone()
    b[i, k, j] = dist.masked_fill(~rows, float("inf")).argmin(dim=-1)
    return b


def cap_changes(value: Tensor, xr: Tensor, p_stay: Tensor, cap: int) -> Tensor:
    """At most `cap` changed features per candidate: beyond that, the changes the student
    is most confident of (lowest stay probability) are kept, the others reset to x."""
    changed = (value - xr).abs() > CHANGE_TOL
    over = changed.sum(dim=-1) > cap
    if not bool(over.any()):
        return value
    score = torch.where(changed, 1 - p_stay, -1.0)
    if cap == 0:
        keep = torch.zeros_like(changed)
    else:
        top = score.topk(cap, dim=-1).indices
        keep = torch.zeros_like(changed).scatter_(-1, top, True) & changed
    return torch.where(over[..., None] & ~keep, xr, value)


def save_student(student: Student, directory: Path) -> list[str]:
    """Write student.json and student.safetensors into directory; return their names."""
    directory = Path(directory)
    net = student.net
    meta = {"format": STUDENT_FORMAT, "version": STUDENT_VERSION,
            "n_features": net.n_features, "n_bins": net.n_bins,
            "config": student.config.to_dict(), "log": student.log,
            "tuning": student.tuning}
    tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(tensors, str(directory / STUDENT_TENSORS))
    (directory / STUDENT_JSON).write_text(json.dumps(meta, indent=2))
    return list(STUDENT_FILES)


def load_student(directory: Path, n_features: int, n_bins: int) -> Student:
    """Read a student saved beside a GenRe model: its JSON is checked (format, sizes that
    must match the teacher's, every config value), then the safetensors header against the
    shapes the config implies before any tensor is allocated. Raises ModelError."""
    directory = Path(directory)
    path = directory / STUDENT_JSON
    meta = read_json(path)
    if (not isinstance(meta, dict) or meta.get("format") != STUDENT_FORMAT
            or meta.get("version") != STUDENT_VERSION):
        raise ModelError(f"{path}: not a student of format version {STUDENT_VERSION}")
    required = {"format", "version", "n_features", "n_bins", "config", "log"}
    if not required <= set(meta) <= required | {"tuning"}:
        raise ModelError(f"{path}: unexpected keys {sorted(meta)}")
    check_student_tuning(meta.get("tuning"), f"{path}: tuning")
    if meta["n_features"] != n_features or meta["n_bins"] != n_bins:
        raise ModelError(f"{path}: a student for {meta['n_features']!r} features and "
                         f"{meta['n_bins']!r} bins, but the model has {n_features} and "
                         f"{n_bins}")
    if not isinstance(meta["log"], dict):
        raise ModelError(f"{path}: log must be a mapping")
    config = StudentConfig.from_dict(meta["config"], f"{path}: config")

    def build() -> StudentNet:
        return StudentNet(n_features, n_bins, config.n_components, config.hidden,
                          config.n_layers)

    tensors = load_tensors(directory / STUDENT_TENSORS, module_shapes(build))
    net = build()
    net.load_state_dict(tensors)
    return Student(net.eval(), config, meta["log"], meta.get("tuning"))


MAX_SHARPNESS = 10.0


def check_student_tuning(record, where: str) -> None:
    """Validate a saved sharpness record: None, or a mapping with a scale and a
    mix_temperature, each a finite number in (0, MAX_SHARPNESS], and a grid list.

    Parameters
    ----------
    record : object
        The "tuning" value read from student.json (what tune_student returned, or null).
    where : str
        The file and key, named by the ModelError raised when the record is not that.
    """
    if record is None:
        return

    def number(v) -> bool:
        return (isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                and 0 < v <= MAX_SHARPNESS)

    if not (isinstance(record, dict) and number(record.get("scale"))
            and number(record.get("mix_temperature"))
            and isinstance(record.get("grid", []), list)):
        raise ModelError(f"{where}: expected null or a mapping with scale and "
                         f"mix_temperature in (0, {MAX_SHARPNESS:g}] and a grid list")

