"""The default classifier h for user data: which one `genre fit` chooses, and how good it is.

For each table (the bundled datasets' training splits with their original labels, and the
synthetic credit-like table of benchmarks/plausibility.py), `genre.core.usertask.choose_classifier`
holds out a stratified 20%, trains the protocol's MLP (balanced class weights, 100 epochs)
and a HistGradientBoostingClassifier on the rest and keeps the one with the higher held-out
ROC AUC. Reported: both AUCs, the winner's held-out accuracy and the majority-class
baseline (what `genre fit` prints), and the winner's accuracy and AUC on the dataset's own
test split against that split's majority baseline. The winner is not refitted on all rows
here (`refit=False`), so the test figures are those of the model the held-out figures
describe.

    python benchmarks/default_classifier.py
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from genre.core.usertask import choose_classifier
from genre.data import Encoder, load
from genre.io import write_text

OUT = Path("benchmarks/results/default_classifier")


def tables(names: list[str], seed: int):
    for name in names:
        ds = load(name)
        enc = Encoder(ds.schema).fit(ds.X_train)
        yield (name, enc.transform(ds.X_train), ds.labels(ds.train), enc.transform(ds.X_test),
               ds.labels(ds.test))
    sys.path.insert(0, str(Path(__file__).parent))
    from plausibility import credit_like

    _, X_tr, y_tr, X_te, y_te = credit_like(seed)
    yield "synthetic credit", X_tr, y_tr, X_te, y_te


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["adult", "compas", "heloc"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    command = "python " + shlex.join(["benchmarks/default_classifier.py", *sys.argv[1:]])
    rows = []
    for name, X_tr, y_tr, X_te, y_te in tables(args.datasets, args.seed):
        clf, rep = choose_classifier(X_tr, np.asarray(y_tr, dtype=np.int64), seed=args.seed,
                                     refit=False)
        p = clf.predict_proba(X_te)
        rows.append({"dataset": name, **rep,
                     "test_accuracy": float(np.mean((p > 0.5) == y_te)),
                     "test_auc": float(roc_auc_score(y_te, p)),
                     "test_majority": float(max(np.mean(y_te), 1 - np.mean(y_te)))})
        print(rows[-1], flush=True)
    lines = ["# The default classifier h for user data", "", "```", command, "```", "",
             "Held-out: a stratified 20% of the training rows (what `genre fit` prints); test: "
             "the dataset's own test split. MLP: the protocol's D-10-10-10-1 with balanced "
             "class weights, 100 epochs; HGB: HistGradientBoostingClassifier (defaults, "
             f"seed {args.seed}). Majority: accuracy of always answering the majority class.",
             "",
             "| dataset | AUC MLP | AUC HGB | chosen | held-out accuracy | held-out majority "
             "| test accuracy | test AUC | test majority |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['auc_mlp']:.3f} | {r['auc_hgb']:.3f} | "
                     f"{r['kind']} | {r['accuracy']:.3f} | {r['majority']:.3f} | "
                     f"{r['test_accuracy']:.3f} | {r['test_auc']:.3f} | "
                     f"{r['test_majority']:.3f} |")
    write_text(args.out / "results.md", "\n".join(lines) + "\n")
    write_text(args.out / "results.json",
               json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
