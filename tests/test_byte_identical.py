"""`genre recourse` gives byte-identical files for a committed model and input: the outputs in
tests/fixtures/house were written by the code before the house was rearranged (commit
d1bb1db), and regenerated once, at the merge of main and service into `answers`, for issue
21's deliberate output change (the effort column, options sorted by it, per-record random
streams, retries; see tests/fixtures/house/make_fixture.py). Any other change of behaviour in
the path from a file to its answers shows here."""

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genre.cli import app

FIXTURE = Path(__file__).parent / "fixtures" / "house"
RUNS = {
    "one option": (["--seed", "0"], {"--output": "recourse.csv"}),
    "three options with changes": (["--options", "3", "--seed", "1"],
                                   {"--output": "recourse_k3.csv",
                                    "--changes": "changes_k3.csv"}),
}


@pytest.mark.parametrize("run", list(RUNS))
def test_recourse_files_are_byte_identical(run, tmp_path):
    flags, outputs = RUNS[run]
    model = tmp_path / "model"
    shutil.copytree(FIXTURE / "model", model)
    args = ["recourse", "--model", str(model), "--input", str(FIXTURE / "people.csv"), *flags]
    for flag, name in outputs.items():
        args += [flag, str(tmp_path / name)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in outputs.values():
        assert (tmp_path / name).read_bytes() == (FIXTURE / name).read_bytes(), name
