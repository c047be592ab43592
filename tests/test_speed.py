"""Speed benchmark smoke test: tiny settings on compas; figures present, no timing claims."""

import json

from genre.bench.speed import BEST_K, run_speed, to_json


def test_run_speed_smoke(compas, tmp_path):
    out = tmp_path / "speed"
    doc = run_speed(["compas"], out, n=12, quick=True, batch_sizes=(1, 10), feature_counts=(8,),
                    stream_rows=(300,), dice_n=1, progress=False, command="genre smoke-test")
    parsed = json.loads(to_json(doc))
    entry = parsed["datasets"]["compas"]
    methods = entry["methods"]
    assert set(methods) == {"GenRe", "NNR", "Wachter", "Growing Spheres", "DiCE random",
                            "DiCE genetic"}
    for name, row in methods.items():
        assert row["ms_per_individual"] > 0, (name, row)
        assert row["genre_speedup"] > 0
    assert methods["GenRe"]["individuals"] == 12 and methods["DiCE random"]["individuals"] == 1
    assert entry["genre_individuals_per_s"] > 0
    assert set(entry["throughput"]) == {"1", "10"}
    assert set(entry["threads"]) == {"1", "2"}
    assert entry["cached_speedup"] > 0
    # Cached (KV cache) and uncached decoding draw exactly the same samples.
    assert entry["cached_identical"] and entry["cached_differing_samples"] == 0
    assert entry["samples"] == 12 * BEST_K
    assert parsed["cached_identical"]
    [feat] = parsed["features"]
    assert feat["n_features"] == 8 and feat["ms_per_individual"] > 0
    [stream] = parsed["streaming"]
    assert stream["rows"] == 300 and stream["counts"]["people"] == 300
    assert 0 < stream["peak_rss_mb"] < 4096
    assert parsed["targets"] and all("compas" in t["target"] for t in parsed["targets"])
    md = (out / "speed.md").read_text()
    assert md.startswith("# Speed benchmark\n\n```\ngenre smoke-test\n```")
    for section in ("Time per individual", "throughput against batch size",
                    "Cached against uncached", "number of features", "peak memory",
                    "Acceptance targets"):
        assert section in md
    for png in ("throughput.png", "features.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
