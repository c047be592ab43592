"""GenRe's autoregressive sampler (the teacher) against its distilled one-pass student.

For each dataset and protocol seed, in one process: the protocol, GenRe with the dataset's
preset (genre_for, fitted or loaded from the benchmark's model cache, the very model of
`genre benchmark`'s "genre" row), and the student distilled from it (genre.core.student,
StudentConfig defaults; cached beside it, as the "genre-student" row uses it). Then, for
both samplers on the same fitted model:

* Score, Cost, Val, LOF under the paper's protocol on the first n rejected test individuals
  (best of best_k by h, the preset's best_k for both);
* throughput of generate() on 10,000 individuals (those individuals tiled): wall time and
  this process's CPU time (time.process_time), teacher and student measured alternately
  (rounds), the median kept.

Acceptance (issue 23): on compas and adult, the student's mean Score over the seeds within
0.03 of the teacher's and its throughput at 10,000 individuals at least 20x the teacher's,
by wall and by CPU time.

    OMP_NUM_THREADS=1 python benchmarks/student.py --datasets compas adult heloc --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from genre.bench.evaluation import run_method
from genre.bench.methods import fit_genre_cached, make
from genre.bench.protocol import build_protocol
from genre.bench.student import fit_student_cached, student_config
from genre.io import write_text

OUT = Path("benchmarks/results/student")
SAMPLERS = ("autoregressive", "student")
ACCEPT_DATASETS = ("compas", "adult")
SCORE_TOL, SPEED_RATIO = 0.03, 20.0


def throughput(model, batch: np.ndarray, rounds: int) -> dict[str, dict[str, float]]:
    """Wall and CPU seconds of generate(batch) per sampler, alternating, median of rounds."""
    times: dict[str, dict[str, list[float]]] = {s: {"wall": [], "cpu": []} for s in SAMPLERS}
    for sampler in SAMPLERS:  # warm-up
        with model.sampling_with(sampler):
            model.generate(batch[:5])
    for _ in range(rounds):
        for sampler in SAMPLERS:
            with model.sampling_with(sampler):
                w, c = time.perf_counter(), time.process_time()
                model.generate(batch)
                times[sampler]["wall"].append(time.perf_counter() - w)
                times[sampler]["cpu"].append(time.process_time() - c)
    return {s: {k: float(np.median(v)) for k, v in t.items()} for s, t in times.items()}


def run_one(dataset: str, seed: int, n: int, at: int, rounds: int, use_cache: bool,
            say) -> list[dict]:
    say(f"{dataset} seed {seed}: protocol")
    protocol = build_protocol(dataset, seed)
    say(f"{dataset} seed {seed}: GenRe (teacher)")
    teacher, t_cached, t_seconds = fit_genre_cached(make("genre", dataset, seed, False),
                                                    protocol, use_cache=use_cache)
    say(f"{dataset} seed {seed}: student")
    model, s_cached, s_seconds = fit_student_cached(teacher, protocol, use_cache=use_cache,
                                                    config=student_config(None, seed))
    X = protocol.individuals(n)
    rows = []
    for sampler in SAMPLERS:
        with model.sampling_with(sampler):
            report, _, _ = run_method(model, protocol, len(X), fitted=True, X=X)
        v = report.violations
        rows.append({"dataset": dataset, "seed": seed, "sampler": sampler, "n": report.n,
                     "cost": report.cost, "val": report.val, "lof": report.lof,
                     "score": report.score, "best_k": model.best_k,
                     "violations": v.immutable + v.monotone + v.invalid_category
                     + v.out_of_bounds,
                     "fit_seconds": t_seconds if sampler == SAMPLERS[0] else s_seconds,
                     "fit_cached": t_cached if sampler == SAMPLERS[0] else s_cached})
    say(f"{dataset} seed {seed}: throughput at {at:,} individuals")
    speed = throughput(model, np.resize(X, (at, X.shape[1])), rounds)
    for row in rows:
        t = speed[row["sampler"]]
        row |= {"wall_s": t["wall"], "cpu_s": t["cpu"], "per_s_wall": at / t["wall"],
                "per_s_cpu": at / t["cpu"]}
    say(f"{dataset} seed {seed}: " + "; ".join(
        f"{r['sampler']} Score {r['score']:.3f}, {r['per_s_wall']:,.0f}/s" for r in rows))
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Per dataset: mean Score of each sampler over the seeds, and the throughput ratios
    (mean over seeds of the per-seed ratio, wall and CPU)."""
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        by = {s: [r for r in rows if r["dataset"] == dataset and r["sampler"] == s]
              for s in SAMPLERS}
        teacher, student = by["autoregressive"], by["student"]
        if not student:
            continue
        ratio = {k: float(np.mean([s[f"per_s_{k}"] / t[f"per_s_{k}"]
                                   for t, s in zip(teacher, student, strict=True)]))
                 for k in ("wall", "cpu")}
        t_score = float(np.mean([r["score"] for r in teacher]))
        s_score = float(np.mean([r["score"] for r in student]))
        out.append({"dataset": dataset, "seeds": [r["seed"] for r in teacher],
                    "teacher_score": t_score, "student_score": s_score,
                    "difference": s_score - t_score, "ratio_wall": ratio["wall"],
                    "ratio_cpu": ratio["cpu"],
                    "score_ok": abs(s_score - t_score) <= SCORE_TOL,
                    "speed_ok": min(ratio.values()) >= SPEED_RATIO})
    return out


def markdown(rows: list[dict], command: str, args) -> str:
    lines = ["# Teacher (autoregressive GenRe) against its distilled student", "", "```",
             command, "```", "",
             f"Protocol seeds {' '.join(map(str, args.seeds))}; {args.n} rejected test "
             "individuals per dataset and seed (the paper's protocol); throughput: generate() "
             f"on {args.at:,} individuals (tiled), one process, 1 torch thread, teacher and "
             f"student alternately, median of {args.rounds} rounds; wall time and this "
             "process's CPU time. Both samplers: the same fitted GenRe, its preset's best_k, "
             "best of best_k by h. Fit s: the teacher's training time (from the cache: the "
             "original one) and the student's distillation time.", "",
             "| dataset | seed | sampler | Cost | Val | LOF | Score | violations | fit s | "
             "wall s | CPU s | individuals/s (wall) | individuals/s (CPU) |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['seed']} | {r['sampler']} | {r['cost']:.3f} | "
                     f"{r['val']:.3f} | {r['lof']:.3f} | {r['score']:.3f} | "
                     f"{r['violations']} | {r['fit_seconds']:.0f} | {r['wall_s']:.3f} | "
                     f"{r['cpu_s']:.3f} | {r['per_s_wall']:,.0f} | {r['per_s_cpu']:,.0f} |")
    lines += ["", "## Summary (mean over seeds)", "",
              f"Acceptance on {' and '.join(ACCEPT_DATASETS)}: |student - teacher| mean Score "
              f"<= {SCORE_TOL} and throughput >= {SPEED_RATIO:g}x by wall and by CPU time.", "",
              "| dataset | teacher Score | student Score | difference | speed-up (wall) | "
              "speed-up (CPU) | Score ok | speed ok |", "|---|---:|---:|---:|---:|---:|---|---|"]
    for s in summary(rows):
        lines.append(f"| {s['dataset']} | {s['teacher_score']:.3f} | {s['student_score']:.3f} "
                     f"| {s['difference']:+.3f} | {s['ratio_wall']:.1f}x | "
                     f"{s['ratio_cpu']:.1f}x | {'yes' if s['score_ok'] else 'no'} | "
                     f"{'yes' if s['speed_ok'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["compas", "adult", "heloc"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--at", type=int, default=10_000, help="individuals for the throughput")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-cache", action="store_true", help="fit everything afresh")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    command = "OMP_NUM_THREADS=1 python " + shlex.join(
        ["benchmarks/student.py", *(sys.argv[1:] if argv is None else argv)])
    start = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[student {time.perf_counter() - start:6.0f}s] {msg}", file=sys.stderr,
              flush=True)

    rows: list[dict] = []
    for dataset in args.datasets:
        for seed in args.seeds:
            rows += run_one(dataset, seed, args.n, args.at, args.rounds, not args.no_cache,
                            say)
            write_text(args.out / "results.md", markdown(rows, command, args))
            write_text(args.out / "results.json", json.dumps(
                {"command": command, "rows": rows, "summary": summary(rows)}, indent=2) + "\n")
    print(markdown(rows, command, args))


if __name__ == "__main__":
    main()
