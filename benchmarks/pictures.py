"""Draw recourse on the 2-D synthetic datasets, one panel per method.

    python benchmarks/pictures.py --datasets moons circles --out benchmarks/results/pictures

Writes recourse_<dataset>.png for each dataset and a README.md (command line at the top)
with each method's metrics on the drawn points.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from genre.bench.pictures import LABELS, plot_recourse_2d
from genre.io import write_text

METHODS = ("genre", "nnr", "wachter", "gs", "diffusion")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["moons", "circles"])
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/pictures"))
    ap.add_argument("--n-points", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    lines = ["# Recourse on 2-D data", "", "```",
             "python " + " ".join(shlex.quote(a) for a in sys.argv), "```", "",
             f"Protocol seed {args.seed}: gold model, re-drawn labels and h (MLP 2-10-10-10-1) "
             f"as in the paper's protocol; {args.n_points} rejected test points per dataset "
             "(the first of the protocol's seeded order). Background: h's probability of the "
             "favourable class, black line h = 0.5; light points: favourable training rows; "
             "red: rejected points; arrows to green stars: each method's recourse. Metrics "
             "below are on the drawn points only (Val: gold model; LOF: inlier fraction; "
             "Cost: L1 in normalised units; Score = Val + LOF - Cost / 2). GenRe uses its "
             "fast preset (`genre_for(dataset, fast=True)`), the others their defaults.", ""]
    for ds in args.datasets:
        path = args.out / f"recourse_{ds}.png"
        pic = plot_recourse_2d(ds, methods=args.methods, out=path, n_points=args.n_points,
                               seed=args.seed)
        print(f"wrote {path}", flush=True)
        lines += [f"## {ds}", "", f"![recourse on {ds}]({path.name})", "",
                  "| method | Cost | Val | Val(h) | LOF | Score | found | fit s |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, r in pic.reports.items():
            lines.append(f"| {LABELS.get(name, name)} | {r.cost:.3f} | {r.val:.2f} | "
                         f"{r.val_h:.2f} | {r.lof:.2f} | {r.score:.3f} | {r.found}/{r.n} | "
                         f"{pic.fit_seconds[name]:.1f}"
                         f"{' (cached)' if pic.cached.get(name) else ''} |")
        lines.append("")
    write_text(args.out / "README.md", "\n".join(lines))
    print(f"wrote {args.out / 'README.md'}")


if __name__ == "__main__":
    main()
