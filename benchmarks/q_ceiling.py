"""How good can GenRe get? Score of an ideal sampler of its training distribution Q.

For each test individual, draw best_k partners from Q(x+|x) (exact training targets,
weights exp(-lambda L1) over the K nearest feasible ones, as in pair synthesis) and keep
the one h scores highest: the Score a perfect model of Q would reach.

    python benchmarks/q_ceiling.py --datasets compas adult heloc --gammas 0.5 0.7
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from genre.bench.metrics import evaluate
from genre.bench.protocol import build_protocol
from genre.core.pairs import PairSampler
from genre.io import write_text


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", nargs="+", default=["compas", "adult", "heloc"])
    ap.add_argument("--gammas", nargs="+", type=float, default=[0.5, 0.7])
    ap.add_argument("--lambda", dest="lambda_", type=float, default=5.0)
    ap.add_argument("--best-k", type=int, default=10)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/q_ceiling.md"))
    args = ap.parse_args(argv)
    lines = ["# Score of an ideal sampler of Q (GenRe's training distribution)", "", "```",
             "python " + " ".join(shlex.quote(a) for a in sys.argv), "```", "",
             f"{args.n} rejected test individuals, best of {args.best_k} draws by h, "
             f"lambda {args.lambda_}, K 1000, seed 0.", "",
             "| dataset | gamma | Cost | Val | LOF | Score |", "|---|---|---|---|---|---|"]
    for name in args.datasets:
        p = build_protocol(name)
        X = p.individuals(args.n)
        h_train = p.h.predict_proba(p.X_train)
        for gamma in args.gammas:
            targets = p.X_train[(h_train > gamma) & (p.y_train == 1)]
            q = PairSampler(X, targets, p.encoder.immutable_mask, args.lambda_, 1000)
            rng = np.random.default_rng(0)
            draws = np.stack([targets[q.sample(rng)] for _ in range(args.best_k)], axis=1)
            n, k, d = draws.shape
            best = draws[np.arange(n), p.h.predict_proba(draws.reshape(-1, d)).reshape(n, k)
                         .argmax(axis=1)]
            full = np.full(X.shape, np.nan)
            full[q.source_index_] = best
            r = evaluate(X, full, encoder=p.encoder, gold=p.gold, h=p.h, lof=p.lof)
            lines.append(f"| {name} | {gamma} | {r.cost:.3f} | {r.val:.3f} | {r.lof:.3f} | "
                         f"{r.score:.3f} |")
            print(lines[-1], flush=True)
    write_text(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
