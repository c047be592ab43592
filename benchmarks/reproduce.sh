#!/usr/bin/env bash
# Issue 19's reproduction check: a fresh clone of this repository's HEAD and an empty cache
# rebuild committed cells of benchmarks/results/table.
#
#   bash benchmarks/reproduce.sh [WORKDIR]
#
# 1. NNR on compas, protocol seed 1, and on adult, protocol seed 0 (`genre benchmark`):
#    their Scores against the committed cells (bar: within 0.005).
# 2. `genre fit --dataset compas` then `genre evaluate --dataset compas --method genre
#    --model M --n 200` (protocol seed 0): against the committed seed-0 GenRe cell (bar:
#    within 0.03).
# Python: $PYTHON, else the repository's .venv/bin/python (`make .venv/.installed`), else
# `python`; the clone's src/ goes first on the path,
# GENRE_CACHE_DIR=WORKDIR/cache (empty), one torch thread. Prints each figure, its committed
# value and the difference; exits 1 if a bar is missed.
set -euo pipefail
repo=$(git rev-parse --show-toplevel)
py=${PYTHON:-$( [ -x "$repo/.venv/bin/python" ] && echo "$repo/.venv/bin/python" || echo python )}
work=${1:-$(mktemp -d)}
mkdir -p "$work"
clone="$work/clone"
[ -e "$clone" ] && { echo "error: $clone exists; give an empty WORKDIR" >&2; exit 2; }
git clone -q "$repo" "$clone"
export GENRE_CACHE_DIR="$work/cache" OMP_NUM_THREADS=1 PYTHONPATH="$clone/src"
out="$work/out"
cd "$clone"
echo "commit $(git log --oneline -1); $(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg)"
run() { /usr/bin/env time -f "  %e s wall, %U+%S s CPU" "$@" > "$work/last.log" 2>&1 ||
          { cat "$work/last.log"; exit 1; }; tail -1 "$work/last.log"; }
echo "NNR, compas seed 1"
run "$py" -m genre benchmark --datasets compas --methods nnr --seeds 1 --n 200 \
  --out "$out/nnr-compas" --no-progress
echo "NNR, adult seed 0"
run "$py" -m genre benchmark --datasets adult --methods nnr --seeds 0 --n 200 \
  --out "$out/nnr-adult" --no-progress
echo "genre fit --dataset compas"
run "$py" -m genre fit --dataset compas --out "$out/M"
echo "genre evaluate --dataset compas --method genre --model M --n 200"
run "$py" -m genre evaluate --dataset compas --method genre --model "$out/M" --n 200 \
  --json "$out/genre.json"
"$py" - "$repo/benchmarks/results/table/cells" "$out" <<'PY'
import json
import sys
from pathlib import Path

cells, out = Path(sys.argv[1]), Path(sys.argv[2])
checks = [("NNR compas seed 1", out / "nnr-compas/cells/compas-seed1-nnr.json",
           "compas-seed1-nnr.json", 0.005),
          ("NNR adult seed 0", out / "nnr-adult/cells/adult-seed0-nnr.json",
           "adult-seed0-nnr.json", 0.005),
          ("genre fit + evaluate, compas seed 0", out / "genre.json",
           "compas-seed0-genre.json", 0.03)]
ok = True
for name, fresh_path, cell, bar in checks:
    doc = json.loads(fresh_path.read_text())
    fresh = doc["row"]["score"] if "row" in doc else doc["score"]
    committed = json.loads((cells / cell).read_text())["row"]["score"]
    good = abs(fresh - committed) <= bar
    ok &= good
    print(f"{name}: fresh {fresh:.4f}, committed {committed:.4f}, "
          f"difference {fresh - committed:+.4f} (bar {bar}): {'ok' if good else 'MISSED'}")
sys.exit(0 if ok else 1)
PY
