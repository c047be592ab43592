"""Cold start of `genre recourse`: process CPU seconds (user + system) and wall seconds of
a fresh `genre recourse` process on a small file, median of --repeat runs.

    python benchmarks/cold_start.py --model DIR --input people.csv [--repeat 5]

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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--input", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
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
