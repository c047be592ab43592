"""Guided diffusion: a tabular DDPM of favourable profiles, steered towards recourse by h.

The paper (section "comparison with a pre-trained diffusion model") contrasts GenRe with a
generative model that knows nothing about recourse, steered at sampling time: this one.

Model (fit):
* A DDPM over the normalised features, rescaled to [-1, 1], trained on the *favourable*
  training rows (y = 1; with ``min_h`` set, also h(x) > min_h). Categorical and integer
  features are modelled as continuous codes; the schema projection snaps them at the end.
* Denoiser: an MLP predicting the noise eps from [x_t, time embedding]; the embedding is a
  sinusoidal code of t passed through Linear-SiLU; then ``depth`` hidden layers of ``width``
  units with SiLU. ``timesteps`` T (100) with a cosine (Nichol & Dhariwal) or linear beta
  schedule; loss: MSE on eps with t uniform in 1..T; Adam, an exponential moving average of
  the weights is what samples. Training length is ``train_steps`` gradient steps (or
  ``epochs`` passes over the favourable rows when given).
* Cached (safetensors + JSON, no pickle) under cache_dir()/"diffusion-v1"/<key>, keyed by a
  digest of the hyper-parameters, training rows and code (genre.utils.cache.cache_entry).

Recourse (generate), batched over individuals x n_samples:
* SDEdit start: the factual noised to step t0 = round(strength * T), then the chain t0 .. 1.
* At each step the denoiser's x0_hat (clipped to [-1, 1]) is moved, in normalised [0, 1]
  units, by  guidance_scale * grad[ log sigmoid(h_logit(x0_hat)) - lambda_ ||x0_hat - x||_1 ]
  (no gradient through the denoiser); the DDPM posterior mean is formed from the moved
  x0_hat, i.e. the shift is added to the predicted mean with its x0 coefficient, and the
  usual posterior noise is added.
* Immutable features are inpainted: before each step their coordinates are replaced by the
  factual noised to the current level, and the final sample carries exactly the factual.
* The end points are projected onto the schema (Encoder.project with the factual), and of
  the n_samples candidates the one h scores highest is returned (``select="h"``, GenRe's
  rule) or the cheapest one h accepts (``select="cost"``, falling back to the highest h).
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

from genre.baselines.vae import finite_rows, require_logits
from genre.core.method import RecourseMethod
from genre.core.task import RecourseTask
from genre.errors import InputError, ModelError
from genre.integrity import load_tensors, read_json, verify_manifest, write_manifest
from genre.utils.cache import cache_dir, cache_entry, code_digest, key_digest, report_rebuild
from genre.utils.threads import torch_threads

CACHE_NAME = "diffusion-v1"
FORMAT = "genre-tabular-ddpm"


# ------------------------------------------------------------------------ the model
@dataclass(frozen=True)
class DDPMConfig:
    """Architecture, schedule and training hyper-parameters (all part of the cache key)."""

    n_features: int
    width: int = 256
    depth: int = 3
    time_dim: int = 64
    timesteps: int = 100
    schedule: str = "cosine"
    train_steps: int = 6000
    batch_size: int = 256
    lr: float = 1e-3
    ema: float = 0.999
    seed: int = 0

    def __post_init__(self):
        if self.n_features < 1 or self.width < 1 or self.depth < 1 or self.time_dim < 2:
            raise ValueError("n_features, width, depth must be >= 1 and time_dim >= 2")
        if self.timesteps < 2 or self.train_steps < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("need timesteps >= 2, train_steps >= 0, batch_size >= 1, lr > 0")
        if self.schedule not in ("cosine", "linear"):
            raise ValueError(f"schedule must be 'cosine' or 'linear', got {self.schedule!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError("ema must be in [0, 1)")


def beta_schedule(kind: str, T: int) -> np.ndarray:
    """betas[0..T-1] (float64): cosine (Nichol & Dhariwal 2021, s = 0.008) or linear."""
    if kind == "linear":  # DDPM's 1e-4 .. 0.02 for T = 1000, rescaled to T steps
        scale = 1000.0 / T
        return np.linspace(scale * 1e-4, min(scale * 0.02, 0.999), T)
    s = 0.008
    t = np.linspace(0, T, T + 1) / T
    f = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    return np.clip(1 - abar[1:] / abar[:-1], 1e-5, 0.999)


class Denoiser(nn.Module):
    """eps_theta(x_t, t): MLP on [x_t, embed(t)]; t is an integer in 1..T."""

    def __init__(self, config: DDPMConfig):
        super().__init__()
        self.config = config
        half = config.time_dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(1000.0) * torch.arange(half) / half),
                             persistent=False)
        self.time = nn.Sequential(nn.Linear(2 * half, config.time_dim), nn.SiLU())
        layers: list[nn.Module] = []
        width = config.n_features + config.time_dim
        for _ in range(config.depth):
            layers += [nn.Linear(width, config.width), nn.SiLU()]
            width = config.width
        layers.append(nn.Linear(width, config.n_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        # t scaled to 0..1000 as in DDPM, whatever T is
        angle = (t.float() * (1000.0 / self.config.timesteps))[:, None] * self.freqs[None]
        emb = self.time(torch.cat([angle.sin(), angle.cos()], dim=1))
        return self.net(torch.cat([x, emb], dim=1))


class TabularDDPM(nn.Module):
    """The denoiser and its schedule. Data live in [-1, 1] (normalised x mapped 2 x - 1)."""

    def __init__(self, config: DDPMConfig):
        super().__init__()
        self.config = config
        self.denoiser = Denoiser(config)
        betas = beta_schedule(config.schedule, config.timesteps)
        abar = np.cumprod(1 - betas)
        abar_prev = np.concatenate([[1.0], abar[:-1]])
        # index t-1 holds the quantity for step t (t = 1..T)
        f32 = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        self.betas = f32(betas)
        self.abar = f32(abar)
        self.coef_x0 = f32(betas * np.sqrt(abar_prev) / (1 - abar))
        self.coef_xt = f32((1 - abar_prev) * np.sqrt(1 - betas) / (1 - abar))
        self.post_std = f32(np.sqrt(np.maximum(betas * (1 - abar_prev) / (1 - abar), 1e-20)))

    def noised(self, x0: Tensor, t: int | Tensor, noise: Tensor) -> Tensor:
        """q(x_t | x0) sample with the given noise."""
        a = self.abar[torch.as_tensor(t) - 1]
        if a.ndim:
            a = a[:, None]
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def x0_hat(self, xt: Tensor, t: int) -> Tensor:
        tt = torch.full((len(xt),), t, dtype=torch.long)
        a = self.abar[t - 1]
        eps = self.denoiser(xt, tt)
        return ((xt - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1.0, 1.0)

    def fit(self, X: np.ndarray, progress=None) -> dict:
        """Train on rows of normalised X; returns a small log."""
        cfg = self.config
        gen = torch.Generator().manual_seed(cfg.seed)
        data = torch.as_tensor(2.0 * np.asarray(X, dtype=np.float32) - 1.0)
        n = len(data)
        ema = copy.deepcopy(self.denoiser).requires_grad_(False)
        opt = torch.optim.Adam(self.denoiser.parameters(), lr=cfg.lr)
        # cosine decay of the learning rate to 10% over the run
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, cfg.train_steps)
                                                            / max(cfg.train_steps, 1))))
        ema_params = list(ema.parameters())
        params = list(self.denoiser.parameters())
        running, log = 0.0, []
        self.denoiser.train()
        perm, pos = torch.randperm(n, generator=gen), 0
        for step in range(cfg.train_steps):
            if pos + cfg.batch_size > n:
                perm, pos = torch.randperm(n, generator=gen), 0
            idx = perm[pos:pos + cfg.batch_size]
            pos += cfg.batch_size
            x0 = data[idx]
            t = torch.randint(1, cfg.timesteps + 1, (len(x0),), generator=gen)
            noise = torch.randn(x0.shape, generator=gen)
            loss = F.mse_loss(self.denoiser(self.noised(x0, t, noise), t), noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                decay = min(cfg.ema, (1 + step) / (10 + step))  # short warm-up of the average
                torch._foreach_lerp_(ema_params, params, 1 - decay)
            running += float(loss.detach())
            if (step + 1) % 1000 == 0 or step + 1 == cfg.train_steps:
                k = (step % 1000) + 1
                log.append((step + 1, running / k))
                if progress:
                    progress(f"DDPM step {step + 1}/{cfg.train_steps}: loss {running / k:.4f}")
                running = 0.0
        self.denoiser.load_state_dict(ema.state_dict())
        self.eval()
        return {"loss": log}


# -------------------------------------------------------------------- caching
@dataclass
class DDPMInfo:
    """Where the model came from: cache path, whether it was loaded, training seconds."""

    path: Path | None
    cached: bool
    train_seconds: float
    meta: dict = field(default_factory=dict)


def cache_key(task: RecourseTask, config: DDPMConfig, X_fit: np.ndarray) -> str:
    """Readable prefix (task name, seed, D) + hash of the config, the training rows and the
    source of the code that trains the model (genre.utils.cache.code_digest)."""
    digest = key_digest({"config": asdict(config), "format": FORMAT},
                        code_digest("genre.baselines.diffusion"),
                        arrays=(np.asarray(X_fit, dtype=np.float64),))
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(task.name))[:60] or "task"
    return f"{name}-seed{task.seed}-D{config.n_features}-{digest[:16]}"


def _load(where: Path, config: DDPMConfig) -> tuple[TabularDDPM, dict]:
    """The cached model and its record; ModelError when the entry is unusable (damaged, or
    made for another configuration): the caller then retrains it."""
    verify_manifest(where, required=True, what="diffusion cache entry")
    meta = read_json(where / "ddpm.json")
    try:
        same = meta.get("format") == FORMAT and DDPMConfig(**meta["config"]) == config
    except (AttributeError, KeyError, TypeError, ValueError):
        same = False
    if not same:
        raise ModelError(f"{where / 'ddpm.json'}: made for another configuration")
    model = TabularDDPM(config)
    expected = {k: tuple(v.shape) for k, v in model.denoiser.state_dict().items()}
    model.denoiser.load_state_dict(load_tensors(where / "ddpm.safetensors", expected))
    return model.eval(), meta


def load_or_train_ddpm(task: RecourseTask, config: DDPMConfig, X_fit: np.ndarray, *,
                       use_cache: bool = True, threads: int = 1,
                       progress=None) -> tuple[TabularDDPM, DDPMInfo]:
    """The task's DDPM from the cache, or trained on X_fit (and cached)."""
    key = cache_key(task, config, X_fit)
    where = cache_dir() / CACHE_NAME / key
    if use_cache and (where.exists() or where.is_symlink()):
        try:
            model, meta = _load(where, config)
        except ModelError as exc:
            report_rebuild(where, exc)
        else:
            seconds = meta.get("train_seconds", math.nan)
            return model, DDPMInfo(where, True, float(seconds) if isinstance(
                seconds, int | float) else math.nan, meta)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = TabularDDPM(config)
        t0 = time.perf_counter()
        with torch_threads(threads):
            log = model.fit(X_fit, progress=progress)
        seconds = time.perf_counter() - t0
    meta = {"format": FORMAT, "version": 1, "config": asdict(config), "task": str(task.name),
            "task_seed": int(task.seed), "n_train": len(X_fit), "train_seconds": seconds,
            "loss": log["loss"]}
    if not use_cache:
        return model, DDPMInfo(None, False, seconds, meta)
    with cache_entry(where) as tmp:  # stale or unreadable: replaced
        save_file({k: v.detach().contiguous() for k, v in model.denoiser.state_dict().items()},
                  str(tmp / "ddpm.safetensors"))
        (tmp / "ddpm.json").write_text(json.dumps(meta, indent=1))
        write_manifest(tmp, ["ddpm.json", "ddpm.safetensors"])
    return model, DDPMInfo(where, False, seconds, meta)


# ------------------------------------------------------------------------ the method
class GuidedDiffusion(RecourseMethod):
    """Recourse by classifier-guided reverse diffusion from the (noised) factual.

    Model: width, depth, time_dim, timesteps (T), schedule, train_steps (or epochs: passes
    over the favourable rows, overriding train_steps), batch_size, lr, ema, min_h (also
    require h > min_h of the training rows; None: y = 1 only), use_cache.
    Sampling: strength (fraction of the chain run from the noised factual; 1 = from noise),
    guidance_scale, lambda_ (L1 proximity weight inside the guidance), margin (the guidance
    pulls towards h logit > margin), unguided_steps (the last steps run without guidance),
    n_samples (candidates per individual), select ("h": highest h, as GenRe; "cost":
    cheapest that h accepts), seed, threads, batch_rows (rows per denoiser call).
    The sampling defaults: the best worst-case validation Score over adult, compas and heloc;
    `diffusion_for(dataset)` applies the per-dataset choice (benchmarks/diffusion_tuning.py,
    benchmarks/results/diffusion_tuning.md)."""

    name = "diffusion"

    def __init__(self, guidance_scale: float = 0.01, lambda_: float = 0.1,
                 strength: float = 0.5, n_samples: int = 10, select: str = "cost",
                 unguided_steps: int = 0, margin: float = 2.0,
                 timesteps: int = 100, schedule: str = "cosine", width: int = 256,
                 depth: int = 3, time_dim: int = 64, train_steps: int = 6000,
                 epochs: int | None = None, batch_size: int = 256, lr: float = 1e-3,
                 ema: float = 0.999, min_h: float | None = None, seed: int = 0,
                 threads: int = 1, batch_rows: int = 8192, use_cache: bool = True,
                 progress: bool = False):
        self.guidance_scale, self.lambda_, self.strength = guidance_scale, lambda_, strength
        self.n_samples, self.select, self.unguided_steps = n_samples, select, unguided_steps
        self.margin = margin
        self.timesteps, self.schedule = timesteps, schedule
        self.width, self.depth, self.time_dim = width, depth, time_dim
        self.train_steps, self.epochs, self.batch_size = train_steps, epochs, batch_size
        self.lr, self.ema, self.min_h = lr, ema, min_h
        self.seed, self.threads, self.batch_rows = seed, threads, batch_rows
        self.use_cache, self.progress = use_cache, progress

    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params) -> GuidedDiffusion:
        """Change hyper-parameters; sampling ones take effect without refitting."""
        unknown = set(params) - set(self._param_names())
        if unknown:
            raise ValueError(f"unknown GuidedDiffusion parameters {sorted(unknown)}")
        for key, value in params.items():
            setattr(self, key, value)
        return self

    # ------------------------------------------------------------------ fitting
    def fit(self, task: RecourseTask) -> GuidedDiffusion:
        self.task_ = task
        self.logits_ = require_logits(task, "diffusion")
        X = np.asarray(task.X_train, dtype=np.float64)
        keep = np.asarray(task.y_train).reshape(-1) == 1
        if self.min_h is not None:
            keep &= task.classifier.predict_proba(X) > self.min_h
        X_fit = X[keep & finite_rows(X)]
        if len(X_fit) < 2:
            raise InputError(f"{task.name}: too few favourable training rows ({len(X_fit)}) "
                             "to train a diffusion model")
        n_batches = max(1, -(-len(X_fit) // self.batch_size))
        steps = self.train_steps if self.epochs is None else int(self.epochs) * n_batches
        self.config_ = DDPMConfig(task.n_features, self.width, self.depth, self.time_dim,
                                  self.timesteps, self.schedule, steps, self.batch_size,
                                  self.lr, self.ema, self.seed)
        say = print if self.progress else None
        self.model_, self.model_info_ = load_or_train_ddpm(
            task, self.config_, X_fit, use_cache=self.use_cache, threads=self.threads,
            progress=say)
        self.encoder_ = task.encoder
        return self

    # ---------------------------------------------------------------- sampling
    def sample(self, X: np.ndarray, n_samples: int | None = None, *,
               seed: int | None = None) -> np.ndarray:
        """(N, n_samples, D) candidates, projected onto the schema (NaN for NaN rows)."""
        if not hasattr(self, "model_"):
            raise ModelError("GuidedDiffusion is not fitted: call fit(task) first")
        X = np.asarray(X, dtype=np.float64)
        D = self.encoder_.n_features
        if X.ndim != 2 or X.shape[1] != D:
            raise InputError(f"expected an array of shape (n, {D}), got {X.shape}")
        S = self.n_samples if n_samples is None else int(n_samples)
        if self.select not in ("h", "cost"):
            raise ValueError(f"select must be 'h' or 'cost', got {self.select!r}")
        out = np.full((len(X), S, D), np.nan)
        ok = finite_rows(X)
        if not ok.any() or S < 1:
            return out
        Xr = np.repeat(X[ok], S, axis=0)  # rows i*S .. i*S+S-1 belong to individual i
        gen = torch.Generator().manual_seed(self.seed if seed is None else seed)
        chunks = []
        with torch_threads(self.threads):
            for start in range(0, len(Xr), self.batch_rows):
                part = torch.as_tensor(Xr[start:start + self.batch_rows], dtype=torch.float32)
                chunks.append(self._reverse(part, gen).double().numpy())
        cand = self.encoder_.project(np.concatenate(chunks), factual=Xr)
        out[ok] = cand.reshape(-1, S, D)
        return out

    def _reverse(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """Guided, inpainted reverse chain for factual rows x (normalised); returns [0, 1]."""
        model = self.model_
        T = model.config.timesteps
        t0 = int(min(T, max(1, round(float(self.strength) * T))))
        imm = torch.as_tensor(self.encoder_.immutable_mask)
        free = (~imm).float()
        x_scaled = 2.0 * x - 1.0
        xt = model.noised(x_scaled, t0, torch.randn(x.shape, generator=gen))
        for t in range(t0, 0, -1):
            if imm.any():  # inpainting: the immutables follow the factual's forward process
                known = model.noised(x_scaled, t, torch.randn(x.shape, generator=gen))
                xt = torch.where(imm, known, xt)
            with torch.no_grad():
                x0 = model.x0_hat(xt, t)
            if self.guidance_scale and t > self.unguided_steps:
                x0 = x0 + 2.0 * self.guidance_scale * free * self._guidance(x0, x)
            x0 = x0.clamp(-1.0, 1.0)
            mean = model.coef_x0[t - 1] * x0 + model.coef_xt[t - 1] * xt
            if t > 1:
                xt = mean + model.post_std[t - 1] * torch.randn(x.shape, generator=gen)
            else:
                xt = mean
        out = ((xt + 1.0) / 2.0).clamp(0.0, 1.0)
        return torch.where(imm, x, out)

    def _guidance(self, x0_scaled: Tensor, x: Tensor) -> Tensor:
        """grad in [0, 1] units of log sigmoid(h(u)) - lambda_ ||u - x||_1 at u = x0_hat."""
        u = ((x0_scaled + 1.0) / 2.0).detach().requires_grad_(True)
        with torch.enable_grad():
            obj = F.logsigmoid(self.logits_(u) - self.margin).sum()
            if self.lambda_:
                obj = obj - self.lambda_ * (u - x).abs().sum()
            (grad,) = torch.autograd.grad(obj, [u])
        return torch.nan_to_num(grad)

    def generate(self, X: np.ndarray, n_samples: int | None = None, *,
                 seed: int | None = None) -> np.ndarray:
        """One recourse per row (NaN rows stay NaN): the best of n_samples candidates."""
        cands = self.sample(X, n_samples, seed=seed)
        N, S, D = cands.shape
        out = np.full((N, D), np.nan)
        ok = ~np.isnan(cands).any(axis=(1, 2))
        if not ok.any():
            return out
        c = cands[ok]
        p = self.task_.classifier.predict_proba(c.reshape(-1, D)).reshape(len(c), S)
        pick = p.argmax(axis=1)
        if self.select == "cost":
            cost = np.abs(c - np.asarray(X, dtype=float)[ok][:, None, :]).sum(axis=2)
            cost = np.where(p > 0.5, cost, np.inf)
            has = np.isfinite(cost).any(axis=1)
            pick = np.where(has, cost.argmin(axis=1), pick)
        out[ok] = c[np.arange(len(c)), pick]
        return out


# Per-dataset choices on validation individuals (benchmarks/results/diffusion_tuning.md);
# other datasets, and users' own data, get the class defaults.
PRESETS: dict[str, dict] = {
    "compas": {"strength": 0.35, "guidance_scale": 0.03, "margin": 2.0, "select": "cost"},
    "adult": {"strength": 0.5, "guidance_scale": 0.03, "margin": 0.0, "select": "cost",
              "min_h": 0.5},
    "heloc": {"strength": 0.5, "guidance_scale": 0.3, "margin": 0.0, "select": "cost"},
}


def diffusion_for(dataset: str, **overrides) -> GuidedDiffusion:
    """GuidedDiffusion with the measured settings for a bundled dataset (defaults otherwise)."""
    return GuidedDiffusion(**(PRESETS.get(dataset, {}) | overrides))
