"""Batch recourse on Ray: `genre recourse --ray` on a local Ray instance writes the file the
single-process run writes, byte for byte; recourse_dataset answers any block layout the same
way; a bad row names its line and leaves no output."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

ray = pytest.importorskip("ray")

from genre.cli import app  # noqa: E402
from genre.core.estimator import GenRe  # noqa: E402
from genre.service.ray import recourse_dataset  # noqa: E402
from genre.service.serve import recourse_records  # noqa: E402
from genre.tables.streaming import SEED_BLOCK  # noqa: E402

TINY = dict(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=32, max_epochs=3,
            patience=3, batch_size=256, k=50, progress=False, best_k=4, sampler="autoregressive")
N_ROWS = 2 * SEED_BLOCK + 345  # three seed blocks, the last one short
runner = CliRunner()


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="error")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model_dir(make_mixed_task, tmp_path_factory):
    task = make_mixed_task()
    return GenRe(**TINY).fit(task).save(tmp_path_factory.mktemp("ray") / "model")


@pytest.fixture(scope="module")
def people():
    rng = np.random.default_rng(1)
    return pd.DataFrame({"x1": rng.random(N_ROWS).round(4), "x2": rng.integers(0, 11, N_ROWS),
                         "colour": rng.choice(["red", "green", "blue"], N_ROWS),
                         "group": rng.choice(["a", "b"], N_ROWS)})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_ray_cli_output_is_identical_to_the_single_process_run(local_ray, model_dir, people,
                                                               tmp_path, suffix):
    src = tmp_path / f"people{suffix}"
    if suffix == ".csv":
        people.to_csv(src, index=False)
    else:
        people.to_parquet(src, index=False)
    single, on_ray = tmp_path / "single.csv", tmp_path / "ray.csv"
    common = ["recourse", "--model", str(model_dir), "--input", str(src), "--seed", "3",
              "--options", "2"]
    result = runner.invoke(app, [*common, "--output", str(single)])
    assert result.exit_code == 0, result.output
    workers = "2" if suffix == ".csv" else "1"
    result = runner.invoke(app, [*common, "--output", str(on_ray), "--ray", "--ray-workers",
                                 workers])
    assert result.exit_code == 0, result.output
    assert f"{N_ROWS} people" in result.output
    assert on_ray.read_bytes() == single.read_bytes()
    assert pd.read_csv(on_ray)["person"].nunique() == N_ROWS


def test_recourse_dataset_does_not_depend_on_block_layout(local_ray, model_dir, people):
    model = GenRe.load(model_dir)
    want, _ = recourse_records(model, people, seed=5)
    # Uneven Ray blocks that straddle the seed blocks, one actor.
    cuts = [0, 7, SEED_BLOCK + 3, SEED_BLOCK + 4, N_ROWS]
    ds = ray.data.from_pandas([people.iloc[a:b] for a, b in zip(cuts, cuts[1:], strict=False)])
    got = recourse_dataset(ds, model_dir, seed=5, workers=1).to_pandas()
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert got["person"].tolist() == list(range(N_ROWS))


def test_bad_row_names_its_line_and_leaves_no_output(local_ray, model_dir, people, tmp_path):
    bad = people.copy()
    bad.loc[SEED_BLOCK + 10, "colour"] = "purple"  # line SEED_BLOCK + 12 of the file
    src, out = tmp_path / "bad.csv", tmp_path / "out.csv"
    bad.to_csv(src, index=False)
    result = runner.invoke(app, ["recourse", "--model", str(model_dir), "--input", str(src),
                                 "--output", str(out), "--ray", "--ray-workers", "1"])
    assert result.exit_code == 2
    assert f"column 'colour', line {SEED_BLOCK + 12}: unknown category 'purple'" in \
        " ".join(result.output.split())
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))
    people.drop(columns="group").to_csv(src, index=False)
    result = runner.invoke(app, ["recourse", "--model", str(model_dir), "--input", str(src),
                                 "--output", str(out), "--ray"])
    assert result.exit_code == 2 and "missing columns ['group']" in result.output
    assert not out.exists()
