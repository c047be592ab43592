"""How to keep a user model's default classifier (a HistGradientBoostingClassifier h) so that
a fresh `genre recourse` process loads it cheaply: the options the service issue named,
measured side by side.

    python benchmarks/h_formats.py --repeat 7

The h is what `benchmarks/cold_start.py --build` fits: HistGradientBoostingClassifier
(random_state=0) on the bundled compas training table, encoded by the schema inferred from
it. It is written in each format, then every round starts one fresh process per format,
in turn, that imports torch (a GenRe model needs it anyway, for its sampler), loads h and
computes predict_proba for 10 compas test people; a reference process imports torch and
reads the 10 rows only. Reported: process CPU (user + system, median over rounds) and the
same less the reference's (what the format adds to a cold start), the modules it imports,
and the largest difference from scikit-learn's predict_proba over the whole test split.

- tree arrays: genre's format (h_trees.json + h_trees.safetensors, evaluated in NumPy;
  genre.classifiers.trees), what `genre fit --data` writes;
- skops: the fitted estimator as a .skops file, read with genre's allow-list
  (genre.classifiers.skops), which imports scikit-learn;
- ONNX: converted with skl2onnx (the `dev` extra), run with onnxruntime (the `onnx` extra);
  float32 inside, as skl2onnx's tree ensembles are.
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

import numpy as np

PREDICT = {
    "reference (import torch, read the rows)": "",
    "tree arrays (genre)": (
        "from genre.classifiers.trees import load_trees\n"
        "p = load_trees(d, X.shape[1]).predict_proba(X)\n"),
    "skops": (
        "from genre.classifiers.mlp import load_sklearn\n"
        "p = load_sklearn(d / 'h.skops').predict_proba(X)\n"),
    "ONNX (onnxruntime)": (
        "import onnxruntime as ort\n"
        "s = ort.InferenceSession(str(d / 'h.onnx'), providers=['CPUExecutionProvider'])\n"
        "p = s.run(None, {s.get_inputs()[0].name: X.astype(np.float32)})\n"),
}


def child_code(directory: Path, body: str) -> str:
    return ("import sys\nfrom pathlib import Path\nimport numpy as np\nimport torch\n"
            f"d = Path({str(directory)!r})\nX = np.load(d / 'people10.npy')\n" + body
            + "print(len(sys.modules), 'sklearn' in sys.modules)\n")


def run_once(code: str) -> tuple[float, float, str]:
    """(wall s, CPU s, stdout) of one fresh Python process running code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), out


def _ints_for_bools() -> None:
    """skl2onnx 1.20 passes lists of Python bools for integer attributes of the tree
    ensemble's node, which onnx 1.23 refuses ("Expected an int, got a boolean"); here (the
    benchmark only) they are given as the 0/1 integers the ONNX operator defines."""
    import skl2onnx.common._container as container

    make_node = container.make_node

    def patched(*args, **attrs):
        for key, value in attrs.items():
            if isinstance(value, list) and any(isinstance(v, (bool, np.bool_)) for v in value):
                attrs[key] = [int(v) for v in value]
        return make_node(*args, **attrs)

    container.make_node = patched


def write_formats(directory: Path) -> dict[str, float]:
    """Fit h, write it in every format and the 10 people; the largest |p - sklearn's p| of
    each format over the compas test split."""
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from sklearn.ensemble import HistGradientBoostingClassifier

    from genre.classifiers.mlp import load_sklearn, save_sklearn
    from genre.classifiers.trees import export, load_trees, save_trees
    from genre.data.datasets import load
    from genre.data.encoder import Encoder, target_labels
    from genre.data.schema import Schema

    data = load("compas")
    schema = Schema.infer(data.train, target=data.schema.target)
    enc = Encoder(schema).fit(data.train)
    X = enc.transform(data.train)
    h = HistGradientBoostingClassifier(random_state=0).fit(
        X, target_labels(data.train, schema, "x"))
    save_trees(export(h), X.shape[1], directory)
    save_sklearn(h, directory / "h.skops")
    _ints_for_bools()
    (directory / "h.onnx").write_bytes(to_onnx(h, X[:1].astype(np.float32)).SerializeToString())
    test = enc.transform(data.test.drop(columns=[schema.target]))
    np.save(directory / "people10.npy", test[:10])
    want = h.predict_proba(test)[:, 1]
    session = ort.InferenceSession(str(directory / "h.onnx"), providers=["CPUExecutionProvider"])
    onnx_p = session.run(None, {session.get_inputs()[0].name: test.astype(np.float32)})[1]
    onnx_p = np.array([row[1] for row in onnx_p]) if isinstance(onnx_p, list) else onnx_p[:, 1]
    return {"tree arrays (genre)": float(np.max(np.abs(
                load_trees(directory, X.shape[1]).predict_proba(test) - want))),
            "skops": float(np.max(np.abs(
                load_sklearn(directory / "h.skops").predict_proba(test)[:, 1] - want))),
            "ONNX (onnxruntime)": float(np.max(np.abs(onnx_p - want)))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        error = write_formats(directory)
        codes = {name: child_code(directory, body) for name, body in PREDICT.items()}
        load_before = os.getloadavg()[0]
        runs: dict[str, list[tuple[float, float, str]]] = {name: [] for name in codes}
        for _ in range(args.repeat):
            for name, code in codes.items():
                runs[name].append(run_once(code))
        load_after = os.getloadavg()[0]
    cpu = {name: statistics.median(r[1] for r in rs) for name, rs in runs.items()}
    base = cpu[next(iter(PREDICT))]
    print(f"{args.repeat} rounds; load average {load_before:.2f} before, {load_after:.2f} after\n")
    print("| h stored as | CPU s (median) | over the reference | wall s (median) | modules | "
          "imports scikit-learn | max abs difference from scikit-learn |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for name, rs in runs.items():
        modules, sklearn = rs[-1][2].split()
        diff = f"{error[name]:.1e}" if name in error else ""
        print(f"| {name} | {cpu[name]:.2f} | {cpu[name] - base:+.2f} | "
              f"{statistics.median(r[0] for r in rs):.2f} | {modules} | {sklearn} | {diff} |")


if __name__ == "__main__":
    main()
