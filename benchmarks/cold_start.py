"""Cold start of `genre recourse`: process CPU seconds (user + system) and wall seconds of
a fresh `genre recourse` process on a small file, median of --repeat runs.

    python benchmarks/cold_start.py --build DIR        # DIR/user_hgb*, DIR/people10.csv
    genre fit --dataset compas --out DIR/compas
    python benchmarks/cold_start.py --model DIR/compas DIR/user_hgb --input DIR/people10.csv

--build makes user models on the bundled compas training table (schema inferred) whose h
is a HistGradientBoostingClassifier (as `genre fit --data` saves when it wins the held-out
AUC; forced here): DIR/user_hgb with the default sampler (the student) and
DIR/user_hgb_autoregressive with GenRe's transformer; and a 10-row input of compas test
people.

Each run is a new Python process; CPU is the child's rusage, which unlike wall time does not
depend much on what else the machine runs. For each model the runs alternate, --repeat
times, between
  - `genre`: `python -m genre recourse ... --overwrite`, the product (and the same through
    the `genre` console script, when it is installed beside this Python);
  - `no freeze`: the same command through `genre.cli.app`, without the `gc.freeze()` at exit
    that the entry point registers (what `genre` did before it: the interpreter's shutdown
    then searches every object torch and pandas made for reference cycles);
and, once per round, the reference processes `python -c pass`, `import torch` and
`import torch, pandas`, so that every figure of a table comes from the same minutes.

--serve also starts `genre serve --model M` --repeat times per model and reports the wall
seconds from launch to its first answer to GET /health.
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

from genre.bench.serving import genre_serve

NO_FREEZE = ("import sys\n"
             "from genre.cli import app\n"
             "sys.argv[0] = 'genre'\n"
             "app(prog_name='genre')\n")


def run_once(argv: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of one fresh process running argv."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def serve_ready(model: Path) -> float:
    """Wall seconds from launching `genre serve --model model` to its first /health answer."""
    with genre_serve("--model", str(model)) as server:
        return server.ready_seconds


def variants(models: list[Path], input_path: Path, output: Path) -> dict[str, list[str]]:
    """name -> argv of every process one round runs."""
    script = Path(sys.executable).parent / "genre"  # the console script beside this Python
    out = {"python -c pass": [sys.executable, "-c", "pass"],
           "import torch": [sys.executable, "-c", "import torch"],
           "import torch, pandas": [sys.executable, "-c", "import torch, pandas"]}
    for model in models:
        args = ["recourse", "--model", str(model), "--input", str(input_path), "--output",
                str(output), "--overwrite"]
        out[f"{model.name}: genre"] = [sys.executable, "-m", "genre", *args]
        if script.exists():
            out[f"{model.name}: genre (console script)"] = [str(script), *args]
        out[f"{model.name}: no freeze"] = [sys.executable, "-c", NO_FREEZE, *args]
    return out


def build(directory: Path) -> None:
    """DIR/user_hgb and DIR/user_hgb_autoregressive (GenRe models whose h is
    HistGradientBoosting, with the student and with the transformer) and DIR/people10.csv."""
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
    for sampler, name in (("student", "user_hgb"), ("autoregressive", "user_hgb_autoregressive")):
        GenRe(max_epochs=20, progress=False, sampler=sampler).fit(task).save(directory / name)
    data.test.drop(columns=[data.schema.target]).head(10).to_csv(directory / "people10.csv",
                                                                 index=False)
    print(f"wrote {directory / 'user_hgb'}, {directory / 'user_hgb_autoregressive'} and "
          f"{directory / 'people10.csv'}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", type=Path, help="make the user models and input in this folder")
    ap.add_argument("--model", type=Path, nargs="+", help="saved GenRe model directories")
    ap.add_argument("--input", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--serve", action="store_true",
                    help="also time `genre serve` from launch to its first /health answer")
    args = ap.parse_args(argv)
    if args.build is not None:
        build(args.build)
        return
    if args.model is None or args.input is None:
        ap.error("give --model and --input (or --build DIR)")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        todo = variants(args.model, args.input, Path(tmp) / "out.csv")
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in todo}
        for _ in range(args.repeat):
            for name, cmd in todo.items():
                runs[name].append(run_once(cmd))
    ready = {model: [serve_ready(model) for _ in range(args.repeat)]
             for model in (args.model if args.serve else [])}
    load_after = os.getloadavg()
    print(f"{args.repeat} rounds; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after\n")
    print("| process | CPU s (median) | wall s (median) | CPU s, each run |")
    print("|---|---:|---:|---|")
    for name, r in runs.items():
        walls, cpus = zip(*r, strict=True)
        print(f"| {name} | {statistics.median(cpus):.2f} | {statistics.median(walls):.2f} | "
              f"{', '.join(f'{c:.2f}' for c in cpus)} |")
    for model in args.model:
        cpu = {v: statistics.median(c for _, c in runs[f"{model.name}: {v}"])
               for v in ("genre", "no freeze")}
        print(f"\n{model.name}: genre uses {cpu['genre'] / cpu['no freeze']:.2f}x the CPU of "
              f"the command without the final freeze ({cpu['no freeze'] - cpu['genre']:.2f} s "
              "less)")
    for model, seconds in ready.items():
        print(f"\n{model.name}: `genre serve` answered /health {statistics.median(seconds):.2f} s "
              f"after launch (median; {', '.join(f'{t:.2f}' for t in seconds)} s wall)")


if __name__ == "__main__":
    main()
