"""Pictures of recourse on the 2-D synthetic datasets (moons, circles).

`plot_recourse_2d` fits each method on the dataset's protocol, answers a few rejected test
points, and draws one panel per method: h's decision regions in original units (its
probability as filled contours, the 0.5 boundary as a line), the favourable training rows,
the rejected points and an arrow from each to its recourse. Titles carry the method's
Score / Val / Cost on those points (the paper's metrics: validity under the gold model, LOF
plausibility, L1 cost in normalised space).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genre.bench.metrics import Report, evaluate
from genre.bench.protocol import Protocol, build_protocol
from genre.errors import InputError
from genre.utils.extras import require

LABELS = {"genre": "GenRe", "nnr": "Nearest neighbour", "wachter": "Wachter",
          "gs": "Growing Spheres", "diffusion": "Guided diffusion", "dice": "DiCE",
          "roar": "ROAR", "probe": "PROBE", "cchvae": "CCHVAE", "revise": "REVISE",
          "cruds": "CRUDS"}


@dataclass
class RecoursePicture:
    """What `plot_recourse_2d` drew: the file, each method's metrics and fit time (for a
    model loaded from the cache, its original training time)."""

    path: Path
    dataset: str
    n_points: int
    reports: dict[str, Report] = field(default_factory=dict)
    fit_seconds: dict[str, float] = field(default_factory=dict)
    cached: dict[str, bool] = field(default_factory=dict)  # model loaded from the cache


def make_2d_method(name: str, dataset: str, seed: int = 0):
    """A method with settings that give sensible recourse on a 2-D dataset."""
    if name == "genre":
        from genre.core.presets import genre_for

        return genre_for(dataset, fast=True, seed=seed, progress=False,
                         sampler="autoregressive")
    from genre.baselines import METHODS, make_method

    if name == "diffusion":
        from genre.baselines.diffusion import diffusion_for

        return diffusion_for(dataset, seed=seed)
    cls = METHODS.get(name)
    if cls is None:
        return make_method(name)  # raises InputError naming the available methods
    accepted = inspect.signature(cls.__init__).parameters
    return make_method(name, **({"seed": seed} if "seed" in accepted else {}))


def _to_original(protocol: Protocol, X: np.ndarray) -> np.ndarray:
    enc = protocol.encoder
    return X * (enc.hi_ - enc.lo_) + enc.lo_


def plot_recourse_2d(dataset: str = "moons",
                     methods: Sequence[str] = ("genre", "nnr", "wachter", "gs", "diffusion"),
                     out: str | Path = "recourse.png", n_points: int = 12, seed: int = 0, *,
                     h_epochs: int = 100, grid_size: int = 200,
                     protocol: Protocol | None = None) -> RecoursePicture:
    """Draw each method's recourse for n_points rejected test points of a 2-D dataset.

    Builds (or loads) the protocol for `dataset` and `seed` (or uses `protocol`), fits every
    method on it, and writes a PNG to `out` with one panel per method. Returns the path and
    each method's Report on the drawn points.
    """
    matplotlib = require("matplotlib", "bench", "drawing pictures")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    methods = list(methods)
    if not methods:
        raise InputError("give at least one method to draw")
    protocol = protocol if protocol is not None else build_protocol(dataset, seed,
                                                                    h_epochs=h_epochs)
    if protocol.n_features != 2:
        raise InputError(f"{protocol.name} has {protocol.n_features} features; pictures need "
                         "a 2-D dataset such as moons or circles")
    X = protocol.individuals(n_points)
    picture = RecoursePicture(Path(out), protocol.name, len(X))
    answers = {}
    task = protocol.task()
    for name in methods:
        method = make_2d_method(name, protocol.name, seed)
        t0 = time.perf_counter()
        method.fit(task)
        picture.fit_seconds[name] = time.perf_counter() - t0
        info = getattr(method, "model_info_", None) or getattr(method, "vae_info_", None)
        picture.cached[name] = bool(getattr(info, "cached", False))
        if picture.cached[name]:  # report the original training time
            picture.fit_seconds[name] = float(info.train_seconds)
        t0 = time.perf_counter()
        X_plus = method.generate(X)
        seconds = time.perf_counter() - t0
        answers[name] = X_plus
        picture.reports[name] = evaluate(X, X_plus, encoder=protocol.encoder,
                                         gold=protocol.gold, h=protocol.h, lof=protocol.lof,
                                         seconds=seconds)

    # ------------------------------------------------------------ the drawing
    train = _to_original(protocol, protocol.X_train)
    fav = train[protocol.y_train == 1]
    lo, hi = train.min(axis=0), train.max(axis=0)
    pad = 0.08 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], grid_size), np.linspace(lo[1], hi[1],
                                                                           grid_size))
    grid = np.column_stack([g1.ravel(), g2.ravel()])
    enc = protocol.encoder
    prob = protocol.h.predict_proba((grid - enc.lo_) / (enc.hi_ - enc.lo_)).reshape(g1.shape)
    facts = _to_original(protocol, X)

    gold = protocol.gold.predict_proba((grid - enc.lo_) / (enc.hi_ - enc.lo_)).reshape(g1.shape)

    n = len(methods)
    ncols = min(3, n)
    nrows = -(-n // ncols)
    spare = nrows * ncols - n  # an empty cell holds the legend
    panel = 4.4
    ratio = (hi[1] - lo[1]) / (hi[0] - lo[0])
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained",
                             figsize=(panel * ncols + 1.0,
                                      nrows * (panel * ratio + 0.85) + (0.4 if spare else 1.0)))
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    levels = np.linspace(0, 1, 11)
    filled = None
    for k, (ax, name) in enumerate(zip(axes.ravel(), methods, strict=False)):
        filled = ax.contourf(g1, g2, prob, levels=levels, cmap="RdBu", alpha=0.35,
                             vmin=0, vmax=1)
        ax.contour(g1, g2, prob, levels=[0.5], colors="k", linewidths=1.4)
        ax.contour(g1, g2, gold, levels=[0.5], colors="#555555", linewidths=1.0,
                   linestyles="--")
        ax.scatter(fav[:, 0], fav[:, 1], s=4, c="#08306b", linewidths=0, alpha=0.25,
                   zorder=2)
        plus = _to_original(protocol, answers[name])
        found = ~np.isnan(plus).any(axis=1)
        for (x0, y0), (x1, y1) in zip(facts[found], plus[found], strict=True):
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=4,
                        arrowprops=dict(arrowstyle="-|>", color="#222222", lw=1.5,
                                        mutation_scale=12, shrinkA=3, shrinkB=2))
        ax.scatter(facts[:, 0], facts[:, 1], s=38, c="#d7301f", edgecolors="k",
                   linewidths=0.7, zorder=5)
        ax.scatter(plus[found, 0], plus[found, 1], s=42, marker="*", c="#1a9641",
                   edgecolors="k", linewidths=0.5, zorder=6)
        if (~found).any():
            ax.scatter(facts[~found, 0], facts[~found, 1], s=90, marker="x", c="k",
                       linewidths=1.5, zorder=6)
        r = picture.reports[name]
        ax.set_title(f"{LABELS.get(name, name)}\nScore {r.score:.2f} · Val {r.val:.2f} · "
                     f"Cost {r.cost:.2f}", fontsize=11)
        ax.set_xlabel("x1 (original units)")
        if k % ncols == 0:
            ax.set_ylabel("x2 (original units)")
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect("equal", adjustable="box")
    handles = [
        Line2D([], [], ls="", marker="o", ms=4, mfc="#08306b", mec="none", alpha=0.4,
               label="favourable training rows (y = 1)"),
        Line2D([], [], ls="", marker="o", ms=7, mfc="#d7301f", mec="k",
               label="rejected test point (h < 0.5)"),
        Line2D([], [], ls="", marker="*", ms=10, mfc="#1a9641", mec="k", label="recourse"),
        Line2D([], [], color="#222222", lw=1.5, marker=">", ms=5, label="move"),
        Line2D([], [], color="k", lw=1.4, label="h = 0.5 (decision boundary)"),
        Line2D([], [], color="#555555", lw=1.0, ls="--", label="gold P(y = 1 | x) = 0.5"),
        Line2D([], [], ls="", marker="x", ms=8, mec="k", label="no recourse found"),
    ]
    fig.colorbar(filled, ax=axes[:, -1].tolist(), label="h(x)", fraction=0.05, pad=0.02,
                 shrink=0.8)
    if spare:
        axes.ravel()[-1].legend(handles=handles, loc="center", frameon=False, fontsize=10)
    else:
        fig.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False,
                   fontsize=9.5)
    fig.suptitle(f"{protocol.name}: recourse for {len(X)} rejected test points "
                 "(background: h's probability of the favourable class)", fontsize=12)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return picture
