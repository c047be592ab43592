"""Tune the guided-diffusion baseline on validation individuals (never the test set).

    python benchmarks/diffusion_tuning.py --datasets compas adult heloc

For each dataset the DDPM is trained once (cached; its training time is recorded), then:

1. stage 1, a grid over the sampling knobs: strength (SDEdit start; 1 = from noise),
   guidance_scale, margin (guidance target h logit > margin) and select (best-of-n by h,
   or the cheapest candidate h accepts), with lambda_ = 0.1;
2. stage 2, around the stage-1 best: lambda_ (proximity weight) x unguided_steps;
3. stage 3, the stage-2 best on a DDPM trained only on rows with y = 1 and h > 0.5.

Scores are on `protocol.validation_individuals(n)` (rejected rows of the training split).
The configuration with the best worst-case stage-1 validation Score over the datasets is
also reported (the class defaults come from it). Each dataset's chosen configuration and the
common one are then run once on the 200 test individuals, for the record. Writes
benchmarks/results/diffusion_tuning.md (command line at the top).
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from genre.baselines.diffusion import GuidedDiffusion
from genre.bench.evaluation import run_method
from genre.bench.protocol import build_protocol
from genre.io import write_text

STAGE1 = {
    "strength": (0.1, 0.2, 0.35, 0.5, 1.0),
    "guidance_scale": (0.01, 0.03, 0.1, 0.3),
    "margin": (0.0, 2.0),
    "select": ("h", "cost"),
}
STAGE2 = {"lambda_": (0.0, 0.1, 0.3, 1.0), "unguided_steps": (0, 5)}
FIXED = {"lambda_": 0.1, "unguided_steps": 0}


def grid(axes: dict) -> list[dict]:
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def evaluate(model, protocol, X) -> dict:
    r, _, _ = run_method(model, protocol, fitted=True, X=X)
    return {"cost": r.cost, "val": r.val, "val_h": r.val_h, "lof": r.lof, "score": r.score,
            "ms": 1000.0 * r.seconds / max(r.n, 1)}


def fmt_cfg(cfg: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in cfg.items())


def table(rows: list[dict], keys: list[str]) -> list[str]:
    out = ["| " + " | ".join(keys) + " | Cost | Val | Val(h) | LOF | Score | ms/indiv |",
           "|" + "---|" * (len(keys) + 6)]
    for r in rows:
        score = f"**{r['score']:.3f}**" if r.get("best") else f"{r['score']:.3f}"
        out.append("| " + " | ".join(str(r["config"].get(k, "")) for k in keys) +
                   f" | {r['cost']:.3f} | {r['val']:.3f} | {r['val_h']:.3f} | {r['lof']:.3f} |"
                   f" {score} | {r['ms']:.1f} |")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["compas", "adult", "heloc"])
    ap.add_argument("--n", type=int, default=300, help="validation individuals per dataset")
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/diffusion_tuning.md"))
    args = ap.parse_args(argv)

    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    lines = ["# Guided diffusion: tuning on validation individuals", "", "```", command, "```",
             "", f"Validation: {args.n} rejected rows of each training split "
             f"(`protocol.validation_individuals`), protocol seed {args.seed}. Model defaults: "
             "MLP denoiser 3x256, T = 100, cosine schedule, 6000 Adam steps of batch 256 on the "
             "favourable training rows (y = 1), EMA 0.999; n_samples = 10. Stage 1 fixes "
             f"{fmt_cfg(FIXED)}. Timings: 2-core CPU shared with other jobs.", ""]
    stage1: dict[str, list[dict]] = {}
    chosen: dict[str, dict] = {}
    protocols, models = {}, {}
    summary = []
    for ds in args.datasets:
        protocol = build_protocol(ds, args.seed)
        protocols[ds] = protocol
        X_val = protocol.validation_individuals(args.n)
        t0 = time.perf_counter()
        model = GuidedDiffusion(seed=args.seed).fit(protocol.task())
        info = model.model_info_
        models[ds] = model
        print(f"{ds}: DDPM {'loaded' if info.cached else 'trained'} "
              f"({info.train_seconds:.0f} s training, {time.perf_counter() - t0:.0f} s now)",
              flush=True)
        rows = []
        for cfg in grid(STAGE1):
            model.set_params(**FIXED, **cfg)
            rows.append({"config": cfg, **evaluate(model, protocol, X_val)})
            print(ds, "stage1", fmt_cfg(cfg), f"score {rows[-1]['score']:.3f}", flush=True)
        stage1[ds] = rows
        best1 = max(rows, key=lambda r: r["score"])
        best1["best"] = True
        rows2 = []
        for cfg in grid(STAGE2):
            model.set_params(**best1["config"], **cfg)
            rows2.append({"config": cfg, **evaluate(model, protocol, X_val)})
            print(ds, "stage2", fmt_cfg(cfg), f"score {rows2[-1]['score']:.3f}", flush=True)
        best2 = max(rows2, key=lambda r: r["score"])
        best2["best"] = True
        cfg2 = best1["config"] | best2["config"]
        filt = GuidedDiffusion(seed=args.seed, min_h=0.5, **cfg2).fit(protocol.task())
        r3 = {"config": {"min_h": 0.5}, **evaluate(filt, protocol, X_val)}
        final = cfg2 | ({"min_h": 0.5} if r3["score"] > best2["score"] else {})
        chosen[ds] = final
        lines += [f"## {ds}", "",
                  f"DDPM trained on {info.meta.get('n_train', '?')} favourable rows in "
                  f"{info.train_seconds:.0f} s; the h > 0.5 filtered model on "
                  f"{filt.model_info_.meta.get('n_train', '?')} rows in "
                  f"{filt.model_info_.train_seconds:.0f} s.", "",
                  "### Stage 1 (sampling grid)", "",
                  *table(sorted(rows, key=lambda r: -r["score"]), list(STAGE1)), "",
                  f"### Stage 2 (around `{fmt_cfg(best1['config'])}`)", "",
                  *table(rows2, list(STAGE2)), "",
                  f"### Stage 3 (`{fmt_cfg(cfg2)}` on the h > 0.5 model)", "",
                  *table([r3], ["min_h"]), "",
                  f"Chosen for {ds}: `{fmt_cfg(final)}` (validation Score "
                  f"{max(best2['score'], r3['score']):.3f}).", ""]

    # the common configuration: best worst-case stage-1 score over the datasets
    keys = [fmt_cfg(r["config"]) for r in stage1[args.datasets[0]]]
    per = {k: [next(r["score"] for r in stage1[ds] if fmt_cfg(r["config"]) == k)
               for ds in args.datasets] for k in keys}
    ranked = sorted(per, key=lambda k: (-min(per[k]), -float(np.mean(per[k]))))
    common = next(r["config"] for r in stage1[args.datasets[0]]
                  if fmt_cfg(r["config"]) == ranked[0]) | FIXED
    lines += ["## Common configuration (best worst-case stage-1 validation Score)", "",
              "| config | min Score | mean Score | " + " | ".join(args.datasets) + " |",
              "|---|---|---|" + "---|" * len(args.datasets)]
    for k in ranked[:10]:
        lines.append(f"| {k} | {min(per[k]):.3f} | {np.mean(per[k]):.3f} | " +
                     " | ".join(f"{s:.3f}" for s in per[k]) + " |")
    lines += ["", f"Common: `{fmt_cfg(common)}` (the class defaults; per-dataset choices are "
              "`genre.baselines.diffusion.PRESETS`, used by `diffusion_for(dataset)`).", ""]

    # test individuals, for the record (nothing above looked at them)
    lines += [f"## On the {args.n_test} test individuals (for the record)", "",
              "| dataset | config | Cost | Val | LOF | Score | ms/indiv | train s |",
              "|---|---|---|---|---|---|---|---|"]
    for ds in args.datasets:
        protocol = protocols[ds]
        X_test = protocol.individuals(args.n_test)
        for label, cfg in (("chosen", chosen[ds]), ("common", common)):
            model = GuidedDiffusion(seed=args.seed, **cfg).fit(protocol.task())
            r = evaluate(model, protocol, X_test)
            summary.append((ds, label, cfg, r))
            lines.append(f"| {ds} | {label}: `{fmt_cfg(cfg)}` | {r['cost']:.3f} | "
                         f"{r['val']:.3f} | {r['lof']:.3f} | {r['score']:.3f} | "
                         f"{r['ms']:.1f} | {model.model_info_.train_seconds:.0f} |")
            print(ds, label, fmt_cfg(cfg), r, flush=True)
    lines.append("")
    write_text(args.out, "\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
