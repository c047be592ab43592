"""Pictures of recourse on 2-D data."""

import pytest

from genre.bench.pictures import plot_recourse_2d
from genre.errors import InputError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_recourse_2d_writes_png(moons, tmp_path):
    out = tmp_path / "pics" / "moons.png"
    pic = plot_recourse_2d("moons", methods=("nnr", "wachter"), out=out, n_points=6,
                           protocol=moons, grid_size=80)
    assert pic.path == out and out.exists()
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    assert set(pic.reports) == {"nnr", "wachter"} and pic.n_points == 6
    assert all(r.n == 6 and r.found == 6 for r in pic.reports.values())
    assert pic.reports["nnr"].val_h == 1.0  # the nearest accepted training point


def test_plot_recourse_2d_rejects_bad_requests(moons, tmp_path):
    with pytest.raises(InputError):
        plot_recourse_2d("moons", methods=(), out=tmp_path / "x.png", protocol=moons)
    with pytest.raises(InputError, match="unknown method"):
        plot_recourse_2d("moons", methods=("nope",), out=tmp_path / "x.png", protocol=moons)
    assert not (tmp_path / "x.png").exists()
