"""The VAE shared by the latent-search baselines (CCHVAE, REVISE, CRUDS), trained once and cached.

Design (one model class serves all three):

* The VAE models the *mutable* features only and is *conditioned* on the immutable ones:
  encoder q(z | x_mut, x_imm), decoder p(x_mut | z, x_imm) with a sigmoid output in [0, 1].
  Immutables are never generated: decoding always copies them from the factual. This is
  CARLA's REVISE/CCHVAE arrangement (immutables passed through, decoder conditioned on
  them), with the immutables also fed to the encoder (a standard conditional VAE), so a
  latent search can move z freely without ever touching a protected attribute. With no
  immutables it is a plain VAE.
* Layers D-512-256-8: encoder (D_mut + D_imm) -> 512 -> 256 -> (mu, logvar) of 8; decoder
  (8 [+ w] + D_imm) -> 256 -> 512 -> D_mut. Loss: Bernoulli cross-entropy summed over
  features + beta * KL(q(z|x) || N(0, I)), beta warmed up linearly from 0 to `kl_weight`
  (0.3, CARLA's value); Adam with a small weight decay (1e-6, CARLA's `lambda_reg`).
* CRUDS's CSVAE is the same model with `w_dim > 0`: an extra label-specific latent
  w ~ q(w | x_mut, x_imm, y) with a fixed class prior p(w | y) = N(+-w_prior_mean * 1, I)
  (y = 1 positive), the decoder reading [z, w, x_imm], and an adversary that predicts y
  from z alone, trained by cross-entropy on its own optimiser while the encoder maximises
  the adversary's entropy, so z carries no label information (the CSVAE's
  "mutual-information minimisation" term). CSVAE labels are h's decisions
  (`label_source="classifier"`) or the task's training labels (`"data"`, as CARLA does).

Caching: `load_or_train_vae` keys the model by task name, seed, D and a digest of the
configuration, data, labels and code, under cache_dir()/"vae-v1"/<key> (`vae.safetensors` +
`vae.json`, no pickle, written by genre.utils.cache.cache_entry). The module also holds
`latent_gradient_search`, the latent-space descent REVISE and CRUDS share.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

from genre.core.method import RecourseMethod
from genre.core.task import RecourseTask
from genre.errors import InputError, ModelError
from genre.integrity import load_tensors, read_json, verify_manifest, write_manifest
from genre.utils.cache import cache_dir, cache_entry, code_digest, key_digest, report_rebuild
from genre.utils.threads import torch_threads

CACHE_NAME = "vae-v1"
FORMAT = "genre-latent-vae"


@dataclass(frozen=True)
class VAEConfig:
    """Architecture and training hyper-parameters of the shared VAE (all part of the key)."""

    latent_dim: int = 8
    hidden: tuple[int, ...] = (512, 256)
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-6
    kl_weight: float = 0.3
    seed: int = 0
    # CSVAE part (CRUDS); w_dim = 0 is the plain conditional VAE.
    w_dim: int = 0
    label_source: str = "classifier"
    w_prior_mean: float = 2.0
    w_kl_weight: float = 1.0
    adversary_weight: float = 5.0
    adversary_hidden: int = 64

    def __post_init__(self):
        if self.latent_dim < 1 or not self.hidden or min(self.hidden) < 1:
            raise ValueError("latent_dim and every hidden width must be >= 1")
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("need epochs >= 0, batch_size >= 1 and lr > 0")
        if self.w_dim < 0:
            raise ValueError("w_dim must be >= 0")
        if self.label_source not in ("data", "classifier"):
            raise ValueError(f"label_source must be 'data' or 'classifier', got "
                             f"{self.label_source!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        return cls(**{**d, "hidden": tuple(d["hidden"])})


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class LatentVAE(nn.Module):
    """VAE over the mutable features, conditioned on the immutable ones (see module doc).

    Every public method takes and returns *full* (n, D) normalised tensors: the split into
    mutable and immutable columns is internal, and decoded points carry the factual's
    immutables.
    """

    def __init__(self, n_features: int, immutable_mask: np.ndarray, config: VAEConfig):
        super().__init__()
        imm = np.asarray(immutable_mask, dtype=bool)
        if imm.shape != (n_features,):
            raise ValueError(f"immutable mask of shape {imm.shape}, expected ({n_features},)")
        self.config = config
        self.n_features = n_features
        self.register_buffer("mutable_idx", torch.as_tensor(np.flatnonzero(~imm)),
                             persistent=False)
        self.register_buffer("immutable_idx", torch.as_tensor(np.flatnonzero(imm)),
                             persistent=False)
        n_mut, n_imm = int((~imm).sum()), int(imm.sum())
        self.n_mutable, self.n_immutable = n_mut, n_imm
        L, W, hid = config.latent_dim, config.w_dim, list(config.hidden)
        self.enc_z = _mlp([n_mut + n_imm, *hid, 2 * L])
        self.dec = _mlp([L + W + n_imm, *hid[::-1], n_mut])
        if W:
            self.enc_w = _mlp([n_mut + n_imm + 1, *hid, 2 * W])
            a = config.adversary_hidden
            self.adversary = _mlp([L, a, a, 1])

    # ------------------------------------------------------------------ pieces
    def split(self, X: Tensor) -> tuple[Tensor, Tensor]:
        return X[:, self.mutable_idx], X[:, self.immutable_idx]

    def merge(self, x_mut: Tensor, X: Tensor) -> Tensor:
        """X with its mutable columns replaced by x_mut (differentiable in x_mut)."""
        out = X.clone()
        out[:, self.mutable_idx] = x_mut
        return out

    def encode(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior q(z | x): (mu, logvar), each (n, latent_dim)."""
        mu, logvar = self.enc_z(X[:, torch.cat([self.mutable_idx, self.immutable_idx])]).chunk(
            2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def encode_w(self, X: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """CSVAE posterior q(w | x, y): (mu, logvar), each (n, w_dim)."""
        if not self.config.w_dim:
            raise ValueError("this VAE has no label-specific latent (w_dim = 0)")
        x_mut, c = self.split(X)
        inp = torch.cat([x_mut, c, y.reshape(-1, 1).to(X.dtype)], dim=1)
        mu, logvar = self.enc_w(inp).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def w_prior_mean(self, y: Tensor) -> Tensor:
        """Mean of the fixed prior p(w | y): +m for y = 1, -m for y = 0 (unit variance)."""
        sign = 2.0 * y.reshape(-1, 1).float() - 1.0
        return sign * self.config.w_prior_mean * torch.ones(1, self.config.w_dim)

    def decode_logits(self, z: Tensor, X: Tensor, w: Tensor | None = None) -> Tensor:
        parts = [z] + ([w] if self.config.w_dim else []) + [X[:, self.immutable_idx]]
        return self.dec(torch.cat(parts, dim=1))

    def decode(self, z: Tensor, X: Tensor, w: Tensor | None = None) -> Tensor:
        """Full (n, D) points: decoded mutables in [0, 1], immutables copied from X."""
        if self.config.w_dim and w is None:
            raise ValueError("this CSVAE decodes from (z, w): pass w")
        return self.merge(torch.sigmoid(self.decode_logits(z, X, w)), X)

    @torch.no_grad()
    def reconstruct(self, X: Tensor, y: Tensor | None = None) -> Tensor:
        """Decode the posterior means (y is needed for a CSVAE)."""
        z = self.encode(X)[0]
        w = self.encode_w(X, y)[0] if self.config.w_dim else None
        return self.decode(z, X, w)

    # ---------------------------------------------------------------- training
    def fit(self, X: np.ndarray, y: np.ndarray | None = None,
            progress: Callable[[str], None] | None = None) -> LatentVAE:
        cfg = self.config
        if cfg.w_dim and y is None:
            raise ValueError("a CSVAE (w_dim > 0) needs labels")
        gen = torch.Generator().manual_seed(cfg.seed)
        Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
        target = Xt[:, self.mutable_idx].clamp(0.0, 1.0)
        yt = torch.as_tensor(np.asarray(y), dtype=torch.float32) if y is not None else None
        adv_params = list(self.adversary.parameters()) if cfg.w_dim else []
        adv_ids = {id(p) for p in adv_params}
        main_params = [p for p in self.parameters() if id(p) not in adv_ids]
        # fused: one kernel per step instead of a dozen per parameter (about 1.6x faster here)
        opt = torch.optim.Adam(main_params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        opt_adv = torch.optim.Adam(adv_params, lr=cfg.lr, fused=True) if adv_params else None
        n = len(Xt)
        steps_per_epoch = max(1, -(-n // cfg.batch_size))
        total = max(1, cfg.epochs * steps_per_epoch)
        step = 0
        self.train()
        for epoch in range(cfg.epochs):
            perm = torch.randperm(n, generator=gen)
            running = 0.0
            for start in range(0, n, cfg.batch_size):
                idx = perm[start:start + cfg.batch_size]
                beta = cfg.kl_weight * min(1.0, step / (0.5 * total))  # warm-up, half the run
                loss, z = self._loss(Xt[idx], target[idx], None if yt is None else yt[idx],
                                     beta, gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if opt_adv is not None:
                    adv = F.binary_cross_entropy_with_logits(
                        self.adversary(z.detach()).squeeze(1), yt[idx])
                    opt_adv.zero_grad(set_to_none=True)
                    adv.backward()
                    opt_adv.step()
                running += float(loss.detach())
                step += 1
            if progress:
                progress(f"VAE epoch {epoch + 1}/{cfg.epochs}: loss "
                         f"{running / steps_per_epoch:.4f}")
        return self.eval()

    def _loss(self, X: Tensor, target: Tensor, y: Tensor | None, beta: float,
              gen: torch.Generator) -> tuple[Tensor, Tensor]:
        cfg = self.config
        mu, logvar = self.encode(X)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
        kl_z = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1).mean()
        w, extra = None, 0.0
        if cfg.w_dim:
            mu_w, lv_w = self.encode_w(X, y)
            w = mu_w + torch.exp(0.5 * lv_w) * torch.randn(mu_w.shape, generator=gen)
            prior = self.w_prior_mean(y)
            kl_w = 0.5 * ((mu_w - prior).pow(2) + lv_w.exp() - 1.0 - lv_w).sum(1).mean()
            p = torch.sigmoid(self.adversary(z).squeeze(1)).clamp(1e-6, 1 - 1e-6)
            negentropy = (p * p.log() + (1 - p) * (1 - p).log()).mean()
            extra = cfg.w_kl_weight * kl_w + cfg.adversary_weight * negentropy
        logits = self.decode_logits(z, X, w)
        recon = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(1)
        return recon.mean() + beta * kl_z + extra, z


# -------------------------------------------------------------------- caching
@dataclass
class VAEInfo:
    """Where the VAE came from: the cache path, whether it was loaded, training seconds."""

    path: Path | None
    cached: bool
    train_seconds: float
    meta: dict = field(default_factory=dict)


def _labels(task: RecourseTask, config: VAEConfig) -> np.ndarray | None:
    if not config.w_dim:
        return None
    if config.label_source == "classifier":
        return (task.classifier.predict_proba(task.X_train) > 0.5).astype(np.int64)
    return np.asarray(task.y_train).astype(np.int64).reshape(-1)


def cache_key(task: RecourseTask, config: VAEConfig, labels: np.ndarray | None = None) -> str:
    """Readable prefix (task name, seed, D) + hash of config, immutables, data, labels and the
    source of the code that trains the VAE (genre.utils.cache.code_digest)."""
    D = task.n_features
    arrays = (np.asarray(task.X_train, dtype=np.float64),) + (
        () if labels is None else (np.asarray(labels, dtype=np.int64),))
    digest = key_digest({"config": config.to_dict(), "D": D,
                         "immutable": task.encoder.immutable_mask.tolist()},
                        code_digest("genre.baselines.vae"), arrays=arrays)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(task.name))[:60] or "task"
    return f"{name}-seed{task.seed}-D{D}-{digest[:16]}"


def _load(where: Path, task: RecourseTask, config: VAEConfig) -> tuple[LatentVAE, dict]:
    """The cached VAE and its record; ModelError when the entry is unusable (damaged, or
    made for another configuration or task): the caller then retrains it."""
    verify_manifest(where, required=True, what="VAE cache entry")
    meta = read_json(where / "vae.json")
    try:
        same = (meta.get("format") == FORMAT and VAEConfig.from_dict(meta["config"]) == config
                and meta["n_features"] == task.n_features
                and meta["immutable"] == task.encoder.immutable_mask.tolist())
    except (AttributeError, KeyError, TypeError, ValueError):
        same = False
    if not same:
        raise ModelError(f"{where / 'vae.json'}: made for another configuration or task")
    vae = LatentVAE(task.n_features, task.encoder.immutable_mask, config)
    expected = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    vae.load_state_dict(load_tensors(where / "vae.safetensors", expected))
    return vae.eval(), meta


def load_or_train_vae(task: RecourseTask, config: VAEConfig, *, use_cache: bool = True,
                      num_threads: int | None = 1,
                      progress: Callable[[str], None] | None = None
                      ) -> tuple[LatentVAE, VAEInfo]:
    """Load the task's VAE from the cache, or train it (and cache it)."""
    if task.n_features - int(task.encoder.immutable_mask.sum()) < 1:
        raise InputError("every feature is immutable: a latent search has nothing to change")
    labels = _labels(task, config)
    if labels is not None and len(np.unique(labels)) < 2:
        raise InputError("the CSVAE needs training labels of both classes")
    key = cache_key(task, config, labels)
    where = cache_dir() / CACHE_NAME / key
    if use_cache and (where.exists() or where.is_symlink()):
        try:
            vae, meta = _load(where, task, config)
        except ModelError as exc:
            report_rebuild(where, exc)
        else:
            seconds = meta.get("train_seconds", float("nan"))
            return vae, VAEInfo(where, True, float(seconds) if isinstance(
                seconds, int | float) else float("nan"), meta)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        vae = LatentVAE(task.n_features, task.encoder.immutable_mask, config)
    t0 = time.perf_counter()
    with torch_threads(num_threads):
        vae.fit(task.X_train, labels, progress=progress)
    seconds = time.perf_counter() - t0
    meta = {"format": FORMAT, "version": 1, "config": config.to_dict(),
            "n_features": task.n_features, "immutable": task.encoder.immutable_mask.tolist(),
            "task": str(task.name), "task_seed": int(task.seed), "n_train": len(task.X_train),
            "train_seconds": seconds}
    if not use_cache:
        return vae, VAEInfo(None, False, seconds, meta)

    with cache_entry(where) as tmp:  # stale or incomplete (it did not load): replaced
        save_file({k: v.detach().contiguous() for k, v in vae.state_dict().items()},
                  str(tmp / "vae.safetensors"))
        (tmp / "vae.json").write_text(json.dumps(meta, indent=1))
        write_manifest(tmp, ["vae.json", "vae.safetensors"])
    return vae, VAEInfo(where, False, seconds, meta)


# ---------------------------------------------------------- shared search helpers
def finite_rows(X: np.ndarray) -> np.ndarray:
    """Rows a method can work on (no NaN/inf); the others get a NaN answer."""
    return np.isfinite(X).all(axis=1)


def require_logits(task: RecourseTask, method: str) -> Callable[[Tensor], Tensor]:
    """The classifier's differentiable logit function, or a clear error."""
    logits = getattr(task.classifier, "logits", None)
    if not callable(logits):
        raise InputError(f"{method} needs a differentiable classifier (a TorchClassifier with "
                         f".logits); got {type(task.classifier).__name__}")
    return logits


def latent_gradient_search(X: Tensor, latent0: Tensor, decode: Callable[[Tensor], Tensor],
                           logits: Callable[[Tensor], Tensor], project: Callable, *,
                           lambda_: float, distance: str = "l1", optimizer: str = "adam",
                           lr: float = 0.1, max_iter: int = 1000) -> np.ndarray:
    """Gradient descent on a latent code, batched over individuals (REVISE, CRUDS).

    Minimises, per row, BCE(h(decode(latent)), 1) + lambda_ * dist(decode(latent), x), with
    dist the L1 norm ("l1") or the squared L2 norm ("l2sq"). After every step the decoded
    point is projected onto the schema; whenever the *projected* point is accepted by h
    (logit > 0), it is a candidate, and the candidate with the lowest loss (evaluated at
    the projected point) is kept, as CARLA's implementations do. Rows that never produce
    a candidate come back NaN.
    """
    n = len(X)
    X_np = X.detach().numpy().astype(np.float64)
    best = np.full(X_np.shape, np.nan)
    best_loss = np.full(n, np.inf)
    z = latent0.detach().clone().requires_grad_(True)
    if optimizer == "adam":
        opt = torch.optim.Adam([z], lr=lr)
    elif optimizer == "rmsprop":
        opt = torch.optim.RMSprop([z], lr=lr)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {optimizer!r}")

    def dist(a: Tensor) -> Tensor:
        d = a - X
        return d.abs().sum(1) if distance == "l1" else d.pow(2).sum(1)

    for it in range(max_iter + 1):
        x_plus = decode(z)
        with torch.no_grad():
            proj = project(x_plus.detach().double().numpy(), factual=X_np)
            proj_t = torch.as_tensor(proj, dtype=X.dtype)
            logit_p = logits(proj_t)
            loss_p = (F.softplus(-logit_p) + lambda_ * dist(proj_t)).double().numpy()
            better = (logit_p.numpy() > 0) & np.isfinite(loss_p) & (loss_p < best_loss)
            best[better] = proj[better]
            best_loss[better] = loss_p[better]
        # The last pass only scores the final point.
        if it == max_iter:
            break
        loss = (F.softplus(-logits(x_plus)) + lambda_ * dist(x_plus)).sum()
        (grad,) = torch.autograd.grad(loss, [z])  # no gradient lands on h's parameters
        opt.zero_grad(set_to_none=True)
        z.grad = torch.nan_to_num(grad)
        opt.step()
    return best


class VAESearchMethod(RecourseMethod):
    """What CCHVAE, REVISE and CRUDS share: fit trains (or loads the cached) VAE once.
    Subclasses set latent_dim, vae_epochs, seed, use_cache and num_threads in __init__;
    needs_logits says whether the search differentiates through h."""

    needs_logits = True

    def vae_config(self) -> VAEConfig:
        return VAEConfig(latent_dim=self.latent_dim, epochs=self.vae_epochs, seed=self.seed)

    def fit(self, task: RecourseTask) -> VAESearchMethod:
        self.task_ = task
        if self.needs_logits:
            self.logits_ = require_logits(task, type(self).__name__)
        self.vae_, self.vae_info_ = load_or_train_vae(task, self.vae_config(),
                                                      use_cache=self.use_cache,
                                                      num_threads=self.num_threads)
        return self

    def search_in_blocks(self, X: np.ndarray, start: Callable, *, distance: str,
                         optimizer: str) -> np.ndarray:
        """`latent_gradient_search` over X in blocks of block_size (REVISE, CRUDS).

        start(Xt) -> (initial latent per row, decode: latent -> point); rows with a
        non-finite value come back as NaN rows. Uses lambda_, lr and max_iter.
        """
        X = np.asarray(X, dtype=float)
        out = np.full(X.shape, np.nan)
        ok = np.flatnonzero(finite_rows(X))
        enc = self.task_.encoder
        for param in self.vae_.parameters():  # the search differentiates the latent only
            param.requires_grad_(False)
        with torch_threads(self.num_threads):
            for begin in range(0, len(ok), self.block_size):
                rows = ok[begin:begin + self.block_size]
                Xt = torch.as_tensor(X[rows], dtype=torch.float32)
                with torch.no_grad():
                    latent0, decode = start(Xt)
                out[rows] = latent_gradient_search(
                    Xt, latent0, decode, self.logits_, enc.project, lambda_=self.lambda_,
                    distance=distance, optimizer=optimizer, lr=self.lr, max_iter=self.max_iter)
        return enc.project(out, factual=X)
