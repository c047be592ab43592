"""Cold start of `genre recourse`: process CPU seconds (user + system) and wall seconds of
a fresh `genre recourse` process on a small file, median of --repeat runs.

    python benchmarks/cold_start.py --build DIR        # DIR/user_hgb and DIR/people10.csv
    genre fit --dataset compas --out DIR/compas
    python benchmarks/cold_start.py --model DIR/compas --input DIR/people10.csv
    python benchmarks/cold_start.py --model DIR/user_hgb --input DIR/people10.csv

--build makes a user model on the bundled compas training table (schema inferred) whose h
is a HistGradientBoostingClassifier (as `genre fit --data` saves when it wins the held-out
AUC; forced here), and a 10-row input of compas test people.

Each run is a new Python process (`python -m genre recourse ... --overwrite`); CPU is the
child's rusage, which unlike wall time does not depend on what else the machine runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(model: Path, input_path: Path, output: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one fresh `genre recourse` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "genre", "recourse", "--model", str(model),
                    "--input", str(input_path), "--output", str(output), "--overwrite"],
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def build(directory: Path) -> None:
    """DIR/user_hgb (a GenRe model whose h is HistGradientBoosting) and DIR/people10.csv."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from genre.core.estimator import GenRe
    from genre.core.task import SklearnClassifier
    from genre.core.usertask import build_user_task
    from genre.data.datasets import load
    from genre.data.encoder import Encoder, target_labels
    from genre.data.schema import Schema

    data = load("compas")
    df = data.train
    schema = Schema.infer(df, target=data.schema.target)
    X = Encoder(schema).fit(df).transform(df)
    h = HistGradientBoostingClassifier(random_state=0).fit(X, target_labels(df, schema, "x"))
    task = build_user_task(df, schema, SklearnClassifier(h))
    GenRe(max_epochs=20, progress=False, sampler="autoregressive").fit(task).save(
        directory / "user_hgb")  # as the committed figures were measured: no student
    data.test.drop(columns=[data.schema.target]).head(10).to_csv(directory / "people10.csv",
                                                                 index=False)
    print(f"wrote {directory / 'user_hgb'} and {directory / 'people10.csv'}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", type=Path, help="make the user model and input in this folder")
    ap.add_argument("--model", type=Path)
    ap.add_argument("--input", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    if args.build is not None:
        build(args.build)
        return
    if args.model is None or args.input is None:
        ap.error("give --model and --input (or --build DIR)")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_once(args.model, args.input, Path(tmp) / "out.csv")
                for _ in range(args.repeat)]
    walls, cpus = zip(*runs, strict=True)
    load = os.getloadavg()[0]
    print(f"{args.model}: median CPU {statistics.median(cpus):.2f} s, median wall "
          f"{statistics.median(walls):.2f} s over {args.repeat} runs (CPU "
          f"{', '.join(f'{c:.2f}' for c in cpus)}; load average {load:.1f})")


if __name__ == "__main__":
    main()
