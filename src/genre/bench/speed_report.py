"""The speed run's report (genre.bench.speed): summary, acceptance targets, speed.md, the
plots and the JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

from genre.bench.common import plain
from genre.bench.speed_measures import (
    DICE,
    GENRE,
    STREAM_DATASET,
    TABLE_CSV,
    TARGET_CACHED,
    TARGET_NNR,
    TARGET_RATIO_DATASETS,
    TARGET_RATIOS,
    TARGET_RSS_MB,
    TARGET_RSS_ROWS,
    TARGET_SCORE,
    TARGET_THROUGHPUT,
    THREADS_BATCH,
    THROUGHPUT_AT,
)
from genre.bench.student import STUDENT, TARGET_STUDENT_RATIO, TARGET_STUDENT_SCORE
from genre.io import atomic_path, write_text
from genre.utils.extras import require


def table_scores(table: Path | str | None, seed: int) -> dict[str, float]:
    """GenRe's Score per dataset in the committed table (its rows for this seed when it
    has a seed column); empty when there is no table."""
    import pandas as pd

    if table is None or not Path(table).is_file():
        return {}
    df = pd.read_csv(table)
    rows = df[df["method"] == "genre"]
    if "seed" in rows:
        rows = rows[rows["seed"] == seed]
    return {str(d): float(v) for d, v in zip(rows["dataset"], rows["score"], strict=True)}


def summary(doc: dict, seed: int, table: Path | str | None = TABLE_CSV) -> dict[str, dict]:
    """Per dataset, the figures the issue asks for, all from this run."""
    committed = table_scores(table, seed)
    out = {}
    for dataset, e in doc["datasets"].items():
        out[dataset] = {
            "genre_ms_per_individual": e["methods"][GENRE]["ms_per_individual"],
            "nnr_ms_per_individual": e["methods"].get("NNR", {}).get("ms_per_individual"),
            "genre_per_s_10k": e["throughput"].get(str(THROUGHPUT_AT)),
            "genre_score": e["genre_score"], "table_score": committed.get(dataset),
            "best_k": e["best_k"], "student_score": e.get("student_score"),
            "student_per_s_10k": e.get("student_per_s_10k")}
    return out


def targets(doc: dict) -> list[dict]:
    """The issue's acceptance targets, for the datasets/sizes this run measured."""
    rows = []

    def add(target: str, value, unit: str, met: bool) -> None:
        rows.append({"target": target, "value": value, "unit": unit, "met": bool(met)})

    data, summ = doc["datasets"], doc["summary"]
    for dataset, rate in TARGET_THROUGHPUT.items():
        got = summ.get(dataset, {}).get("genre_per_s_10k")
        if dataset in summ and got is not None:
            add(f"GenRe throughput >= {rate:,g} individuals/s on {dataset} at "
                f"{THROUGHPUT_AT:,} individuals (best_k {summ[dataset]['best_k']})", got,
                "individuals/s", got >= rate)
    for dataset, s in summ.items():
        g, nnr = s["genre_ms_per_individual"], s["nnr_ms_per_individual"]
        if nnr is not None:
            add(f"GenRe ms per individual within {TARGET_NNR:g}x of NNR's on {dataset}",
                g / nnr, "x NNR", g <= TARGET_NNR * nnr)
        if s["table_score"] is not None:
            diff = s["genre_score"] - s["table_score"]
            add(f"GenRe Score within {TARGET_SCORE:g} of the committed table's "
                f"({s['table_score']:.3f}) on {dataset}", diff, "difference",
                abs(diff) <= TARGET_SCORE)
    for dataset in TARGET_RATIO_DATASETS:
        if dataset not in data:
            continue
        s = summ[dataset]
        if s.get("student_per_s_10k") and s["genre_per_s_10k"]:
            got = s["student_per_s_10k"] / s["genre_per_s_10k"]
            add(f"student individuals/s >= {TARGET_STUDENT_RATIO:g}x GenRe's on {dataset} at "
                f"{THROUGHPUT_AT:,} individuals", got, "x", got >= TARGET_STUDENT_RATIO)
        if s.get("student_score") is not None:
            diff = s["student_score"] - s["genre_score"]
            add(f"student Score at most {TARGET_STUDENT_SCORE:g} below GenRe's on {dataset}",
                diff, "difference", diff >= -TARGET_STUDENT_SCORE)
        for label, ratio in TARGET_RATIOS:
            got = data[dataset]["methods"].get(label, {}).get("genre_speedup")
            add(f"GenRe per-individual time >= {ratio:g}x lower than {label} on {dataset}",
                got, "x", got is not None and got >= ratio)
    for dataset, e in data.items():
        got = e["cached_speedup"]
        add(f"cached decoding >= {TARGET_CACHED:g}x faster than uncached on {dataset}", got,
            "x", got >= TARGET_CACHED)
    for row in doc["streaming"]:
        if row["rows"] == TARGET_RSS_ROWS:
            got = row["peak_rss_mb"]
            add(f"streaming {TARGET_RSS_ROWS:,} rows: peak RSS < {TARGET_RSS_MB:g} MB", got,
                "MB", got < TARGET_RSS_MB)
    return rows


# ----------------------------------------------------------------------- output
def _best_k(doc: dict) -> str:
    return ", ".join(f"{d} {e['best_k']}" for d, e in doc["datasets"].items()) or "-"


def _f(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:,.{digits}f}"


def markdown(doc: dict) -> str:
    m, data = doc["machine"], doc["datasets"]
    names = list(data)
    la = ", ".join(f"{x:.1f}" for x in m.get("load_average", []))
    lines = [
        "# Speed benchmark", "", "```", doc["command"], "```", "",
        f"- date: {doc['date']}; wall time of the run {doc.get('seconds', 0) / 60:.1f} min",
        f"- machine: {m['platform']}, {m['cpu_count']} CPUs, Python {m['python']}; load "
        f"average at the start: {la} (a shared machine: wall-clock times are noisy)",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items() if v),
        f"- protocol seed {doc['seed']}; {doc['n']} rejected test individuals per dataset, "
        f"the same for every method (DiCE: the first {doc['dice_n']} of them, marked *); "
        f"quick: {'yes' if doc['quick'] else 'no'}",
        f"- GenRe: genre_for(dataset){' with the quick benchmark preset' if doc['quick'] else ''}"
        f", fitted or loaded from the benchmark's model cache; best_k as in the preset "
        f"({_best_k(doc)}) everywhere here; 1 torch thread unless stated. Times are wall "
        "clock, per individual, of generate() on the whole batch (median of repeats for "
        "fast calls), after one warm-up call.", "",
    ]
    if names:
        lines += ["## Time per individual", "",
                  "ms per individual; in brackets: how many times slower than GenRe.", ""]
        header = ["Method"] + [f"{d} ms/indiv" for d in names]
        lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(names)]
        labels = list(next(iter(data.values()))["methods"])
        for label in labels:
            row = [label + (" *" if label in DICE else "")]
            for d in names:
                r = data[d]["methods"].get(label, {})
                if r.get("ms_per_individual") is None:
                    row.append("error")
                    continue
                cell = _f(r["ms_per_individual"], 3 if r["ms_per_individual"] < 1 else 2)
                if label != GENRE:
                    cell += f" ({_f(r['genre_speedup'], 1)}x)"
                row.append(cell)
            lines.append("| " + " | ".join(row) + " |")
        errors = [f"- {label} on {d}: {r['error']}" for d in names
                  for label, r in data[d]["methods"].items() if r.get("error")]
        lines += ["", *(["Errors:", "", *errors, ""] if errors else [])]
        lines += ["## Summary", "",
                  "Measured in this run. Score: GenRe's under the protocol on the individuals "
                  "above; table: the committed table's GenRe Score (benchmarks/results/table).",
                  "", "| dataset | GenRe ms/indiv | NNR ms/indiv | GenRe individuals/s at "
                  f"{THROUGHPUT_AT:,} | GenRe Score | table Score |",
                  "|---|---:|---:|---:|---:|---:|"]
        for d, r in doc["summary"].items():
            lines.append(f"| {d} | {_f(r['genre_ms_per_individual'], 3)} | "
                         f"{_f(r['nnr_ms_per_individual'], 3)} | {_f(r['genre_per_s_10k'], 0)}"
                         f" | {_f(r['genre_score'], 3)} | {_f(r['table_score'], 3)} |")
        lines += ["", f"## The student sampler ({STUDENT})", "",
                  "A one-pass sampler distilled from the same fitted GenRe "
                  "(genre.core.student), the same best_k and selection by h; individuals/s at "
                  f"{THROUGHPUT_AT:,} individuals, Score on the individuals above.", "",
                  "| dataset | GenRe Score | student Score | GenRe individuals/s | student "
                  "individuals/s | speed-up |", "|---|---:|---:|---:|---:|---:|"]
        for d, r in doc["summary"].items():
            g, st = r["genre_per_s_10k"], r.get("student_per_s_10k")
            ratio = st / g if g and st else None
            lines.append(f"| {d} | {_f(r['genre_score'], 3)} | {_f(r.get('student_score'), 3)}"
                         f" | {_f(g, 0)} | {_f(st, 0)} | {_f(ratio, 1)}x |")
        lines += ["", "## GenRe fit time and threads", "",
                  f"Threads: generate() on {THREADS_BATCH:,} individuals, 1 and 2 torch "
                  "threads alternately, median.", "",
                  "| dataset | features | GenRe fit s | from cache | 1 thread ms/indiv | "
                  "2 threads ms/indiv |", "|---|---:|---:|---|---:|---:|"]
        for d in names:
            e = data[d]
            lines.append(f"| {d} | {e['n_features']} | {_f(e['genre_fit_seconds'], 1)} | "
                         f"{'yes (original training time)' if e['genre_fit_cached'] else 'no'}"
                         f" | {_f(e['threads'].get('1'), 3)} | {_f(e['threads'].get('2'), 3)} |")
        sizes = list(next(iter(data.values()))["throughput"])
        lines += ["", "## GenRe throughput against batch size", "",
                  f"Individuals per second (best_k {_best_k(doc)}); a batch is one generate() "
                  "call, the individuals tiled to fill it.", "",
                  "| batch size | " + " | ".join(names) + " |",
                  "|---:|" + "---:|" * len(names)]
        for size in sizes:
            lines.append(f"| {int(size):,} | " + " | ".join(
                _f(data[d]["throughput"].get(size), 0) for d in names) + " |")
        lines += ["", "![throughput](throughput.png)", "",
                  "## Cached against uncached decoding", "",
                  "GenRe.sample(best_k) on the same individuals and seed: the fast path (KV "
                  "cache, fused steps, decided steps not sampled) and the reference "
                  "(re-running the whole prefix at every step).", "",
                  "| dataset | features | cached ms/indiv | uncached ms/indiv | speed-up | "
                  "identical samples |", "|---|---:|---:|---:|---:|---|"]
        for d in names:
            e = data[d]
            same = "yes" if e["cached_identical"] else \
                f"**no**: {e['cached_differing_samples']} of {e['samples']} differ"
            lines.append(f"| {d} | {e['n_features']} | {_f(e['cached_ms_per_individual'], 3)} "
                         f"| {_f(e['uncached_ms_per_individual'], 3)} | "
                         f"{_f(e['cached_speedup'], 1)}x | {same} |")
        lines.append("")
    if doc["features"]:
        lines += ["## GenRe against the number of features", "",
                  "Synthetic data (random numeric features, a noisy linear rule, a small MLP "
                  "h); GenRe with the default architecture trained for one epoch (only "
                  "sampling is timed), the class default best_k "
                  f"({', '.join(sorted({str(r['best_k']) for r in doc['features']}))}), "
                  f"{doc['n']} individuals.", "",
                  "| features | ms/indiv | fit s (1 epoch) |", "|---:|---:|---:|"]
        for r in doc["features"]:
            lines.append(f"| {r['n_features']} | {_f(r['ms_per_individual'], 3)} | "
                         f"{_f(r['fit_seconds_one_epoch'], 1)} |")
        lines += ["", "![features](features.png)", ""]
    if doc["streaming"]:
        lines += ["## Streaming recourse: peak memory", "",
                  f"stream_recourse (as `genre recourse` runs it) on {STREAM_DATASET} test rows "
                  f"tiled to each size, best_k {doc['streaming'][0]['best_k']}, profiles and "
                  "changes written; "
                  "each run in a fresh Python process, which reports its own peak RSS "
                  "(VmHWM from /proc/self/status: imports and model included; getrusage's "
                  "ru_maxrss is not used because on Linux it also counts the parent's memory "
                  "at the fork).", "",
                  "| rows | input MB | seconds | rows/s | peak RSS MB |",
                  "|---:|---:|---:|---:|---:|"]
        for r in doc["streaming"]:
            lines.append(f"| {r['rows']:,} | {_f(r['input_mb'], 1)} | {_f(r['seconds'], 1)} | "
                         f"{_f(r['rows_per_s'], 0)} | {_f(r['peak_rss_mb'], 0)} |")
        lines.append("")
    if doc["targets"]:
        lines += ["## Acceptance targets", "", "| target | measured | met |", "|---|---:|---|"]
        for t in doc["targets"]:
            digits = 3 if t["unit"] == "difference" else 1
            lines.append(f"| {t['target']} | {_f(t['value'], digits)} {t['unit']} | "
                         f"{'yes' if t['met'] else '**no**'} |")
        lines.append("")
    return "\n".join(lines)


def _plots(doc: dict, out: Path) -> None:
    require("matplotlib", "bench", "drawing the speed figures")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def save(fig, name: str) -> None:
        FigureCanvasAgg(fig)
        with atomic_path(out / name) as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for d, e in doc["datasets"].items():
        sizes = [int(s) for s in e["throughput"]]
        ax.plot(sizes, list(e["throughput"].values()), marker="o",
                label=f"{d} ({e['n_features']} features)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size (individuals per generate() call)")
    ax.set_ylabel("throughput (individuals/s)")
    ax.set_title(f"GenRe throughput, best_k {_best_k(doc)}, 1 thread")
    ax.grid(True, which="both", alpha=0.3)
    if doc["datasets"]:
        ax.legend()
    save(fig, "throughput.png")

    feats = doc["features"]
    if not feats:  # not measured in this run (--no-features)
        return
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.plot([r["n_features"] for r in feats], [r["ms_per_individual"] for r in feats],
            marker="o", label="GenRe (synthetic data)")
    for d, e in doc["datasets"].items():
        ax.plot([e["n_features"]], [e["methods"][GENRE]["ms_per_individual"]], marker="s",
                linestyle="none", label=f"GenRe on {d}")
    ax.set_xlabel("number of features")
    ax.set_ylabel("time per individual (ms)")
    ax.set_title("GenRe sampling time against the number of features")
    ax.grid(True, alpha=0.3)
    ax.legend()
    save(fig, "features.png")


def write_outputs(doc: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "speed.md", markdown(doc))
    _plots(doc, out)


def to_json(doc: dict) -> str:
    return json.dumps(plain(doc), indent=2, allow_nan=False) + "\n"


