"""Does the `plausible` flag discriminate? Held-out real favourable rows versus random profiles.

For each bundled dataset (the protocol's re-drawn labels, seed 0) the flag is built as GenRe
builds it, from the favourable training rows; it is then asked about
  * held-out real favourable rows: the test split's favourable rows (never seen by the flag);
  * uniformly random profiles: each feature drawn uniformly over its range (numeric, then
    snapped to integers where the schema says so) or its categories.
The synthetic check is a credit-like table (1,000 applicants, 20 attributes of which 13
categorical, driven by three latent factors; 80% train / 20% test), the shape of data the
flag failed on. Two flags are compared: LOF's own threshold (n_neighbors 5, contamination
"auto": the flag before) and genre.core.plausibility.PlausibilityFlag (mean distance to the 5
nearest favourable training rows, the threshold at the 95% quantile of held-out training
favourable rows: the flag now).
The aim: at most 10% of held-out real favourable rows and at least 90% of random profiles
flagged implausible.

    python benchmarks/plausibility.py --n-random 2000
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from genre.bench.protocol import build_protocol
from genre.core.plausibility import PlausibilityFlag
from genre.data import Encoder
from genre.data.schema import Schema
from genre.io import write_text

OUT = Path("benchmarks/results/plausibility")


def uniform_profiles(encoder: Encoder, n: int, rng: np.random.Generator) -> np.ndarray:
    """n profiles, each feature uniform over its range / categories, normalised."""
    X = rng.uniform(encoder.lower, encoder.upper, size=(n, encoder.n_features))
    for j, f in enumerate(encoder.schema_.features):
        if f.is_categorical:
            X[:, j] = rng.integers(0, len(f.categories), n) / max(len(f.categories) - 1, 1)
    return encoder.project(X)


def credit_like(seed: int = 0) -> tuple[Encoder, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic credit table: 1,000 rows, 7 numeric and 13 categorical attributes."""
    rng = np.random.default_rng(seed)
    n = 1000
    z = rng.standard_normal((n, 3))
    cols = {}
    for j in range(7):
        w = rng.standard_normal(3)
        cols[f"num{j}"] = np.round(np.exp(0.5 * (z @ w) + 0.3 * rng.standard_normal(n)) * 1000)
    for j in range(13):
        k = int(rng.integers(2, 6))
        w = rng.standard_normal(3)
        s = z @ w + 0.5 * rng.standard_normal(n)
        cuts = np.quantile(s, np.linspace(0, 1, k + 1)[1:-1])
        cols[f"cat{j}"] = np.array([f"c{c}" for c in np.searchsorted(cuts, s)])
    df = pd.DataFrame(cols)
    df["good"] = (rng.random(n) < 1 / (1 + np.exp(-(z[:, 0] - 0.5 * z[:, 1] + 0.8)))).astype(int)
    schema = Schema.infer(df, "good")
    train, test = df.iloc[:800], df.iloc[800:]
    enc = Encoder(schema).fit(train)
    return (enc, enc.transform(train), train["good"].to_numpy(), enc.transform(test),
            test["good"].to_numpy())


def measure(name, enc, X_train, y_train, X_test, y_test, n_random, seed) -> list[dict]:
    from sklearn.neighbors import LocalOutlierFactor

    reference = X_train[y_train == 1]
    real = X_test[y_test == 1]
    random = uniform_profiles(enc, n_random, np.random.default_rng(seed))
    flags = {"LOF threshold (before)": LocalOutlierFactor(n_neighbors=5, novelty=True)
             .fit(reference),
             "calibrated (now)": PlausibilityFlag(seed=seed).fit(reference)}
    rows = []
    for label, flag in flags.items():
        rows.append({"dataset": name, "flag": label, "n_reference": len(reference),
                     "n_real": len(real), "n_random": len(random),
                     "real_flagged": float(np.mean(flag.predict(real) != 1)),
                     "random_flagged": float(np.mean(flag.predict(random) != 1))})
        print(rows[-1], flush=True)
    return rows


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    flags = list(dict.fromkeys(r["flag"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    width = 0.38
    x = np.arange(len(datasets))
    for ax, key, title, goal in ((axes[0], "real_flagged", "held-out real favourable rows",
                                  0.10),
                                 (axes[1], "random_flagged", "uniformly random profiles", 0.90)):
        for i, flag in enumerate(flags):
            vals = [next(r[key] for r in rows if r["dataset"] == d and r["flag"] == flag)
                    for d in datasets]
            ax.bar(x + (i - 0.5) * width, vals, width, label=flag)
        ax.axhline(goal, color="black", lw=0.8, ls="--")
        ax.set_xticks(x, datasets)
        ax.set_title(f"flagged implausible: {title}", fontsize=10)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("fraction flagged")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["adult", "compas", "heloc"])
    ap.add_argument("--n-random", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    command = "python " + shlex.join(["benchmarks/plausibility.py", *sys.argv[1:]])
    rows: list[dict] = []
    for name in args.datasets:
        p = build_protocol(name, args.seed)
        rows += measure(name, p.encoder, p.X_train, p.y_train, p.X_test, p.y_test,
                        args.n_random, args.seed)
    rows += measure("synthetic credit", *credit_like(args.seed), args.n_random, args.seed)
    lines = ["# The plausible flag: real favourable rows versus random profiles", "", "```",
             command, "```", "",
             "Share flagged implausible (lower is better for real rows, higher for random "
             "ones). Reference: the favourable training rows (protocol labels, seed "
             f"{args.seed}); real: the test split's favourable rows; random: {args.n_random} "
             "profiles uniform over each feature's range or categories. Goal: real <= 0.10, "
             "random >= 0.90. Synthetic credit: 1,000 rows (800 train), 20 attributes, 13 "
             "categorical. Before: LocalOutlierFactor(n_neighbors=5, novelty=True) with its own "
             "threshold, as GenRe's flag was. Now: genre.core.plausibility.PlausibilityFlag (mean "
             "distance to the 5 nearest favourable training rows; threshold calibrated on a "
             "held-out 20% of them to flag 5%).", "",
             "| dataset | flag | reference rows | real rows | real flagged | random flagged |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['flag']} | {r['n_reference']} | {r['n_real']} | "
                     f"{r['real_flagged']:.3f} | {r['random_flagged']:.3f} |")
    lines += ["", "On these tables LOF's own threshold already flagged most random profiles; "
              "what it lacked is calibration: it flagged 2% to 17% of real favourable rows "
              "depending on the data, a share nobody chose. The credit data on which the "
              "issue measured 91% of random profiles passing is not available here, and the "
              "synthetic credit-like table does not reproduce that failure. The calibrated "
              "flag holds its chosen share of real rows (about 5%) on every table.", "",
              "![flagged shares](plausibility.png)", ""]
    write_text(args.out / "results.md", "\n".join(lines))
    write_text(args.out / "results.json",
               json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    figure(rows, args.out / "plausibility.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
