"""Speed benchmark smoke test: tiny settings on compas; figures present, no timing claims."""

import json

from genre.bench.speed import run_speed, to_json


def test_run_speed_smoke(compas, tmp_path):
    out = tmp_path / "speed"
    doc = run_speed(["compas"], out, n=12, quick=True, batch_sizes=(1, 10), feature_counts=(8,),
                    stream_rows=(300,), dice_n=1, progress=False, command="genre smoke-test",
                    table=None)
    parsed = json.loads(to_json(doc))
    entry = parsed["datasets"]["compas"]
    methods = entry["methods"]
    assert set(methods) == {"GenRe", "NNR", "Wachter", "Growing Spheres", "DiCE random",
                            "DiCE genetic", "genre-student"}
    # The student distilled from the same GenRe: its Score and throughput at 10,000.
    assert 0 < entry["student_score"] <= 2 and entry["student_per_s_10k"] > 0
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
    assert entry["samples"] == 12 * entry["best_k"]
    assert parsed["cached_identical"]
    [feat] = parsed["features"]
    assert feat["n_features"] == 8 and feat["ms_per_individual"] > 0
    [stream] = parsed["streaming"]
    assert stream["rows"] == 300 and stream["counts"]["people"] == 300
    assert 0 < stream["peak_rss_mb"] < 4096
    assert parsed["targets"] and all("compas" in t["target"] for t in parsed["targets"])
    # The summary: one run's figures per dataset; the Score is compared with the table's.
    summ = parsed["summary"]["compas"]
    assert summ["genre_ms_per_individual"] == methods["GenRe"]["ms_per_individual"]
    assert summ["nnr_ms_per_individual"] == methods["NNR"]["ms_per_individual"]
    assert summ["genre_per_s_10k"] is None  # no batch of 10,000 in this smoke run
    assert 0 < summ["genre_score"] == entry["genre_score"]
    assert summ["table_score"] is None  # the smoke run is given no table
    kinds = {t["target"].split(" on ")[0] for t in parsed["targets"]}
    assert "GenRe ms per individual within 5x of NNR's" in kinds
    assert all(isinstance(t["met"], bool) for t in parsed["targets"])
    md = (out / "speed.md").read_text()
    assert md.startswith("# Speed benchmark\n\n```\ngenre smoke-test\n```")
    for section in ("Summary", "Time per individual", "throughput against batch size",
                    "Cached against uncached", "number of features", "peak memory",
                    "Acceptance targets", "The student sampler (genre-student)"):
        assert section in md
    for png in ("throughput.png", "features.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_targets_from_summary(tmp_path):
    from genre.bench.speed import summary, table_scores, targets

    table = tmp_path / "results.csv"
    table.write_text("method,dataset,seed,score\ngenre,compas,0,1.80\ngenre,compas,1,1.50\n"
                     "nnr,compas,0,1.70\ngenre,adult,0,1.75\n")
    assert table_scores(table, 0) == {"compas": 1.80, "adult": 1.75}
    assert table_scores(tmp_path / "missing.csv", 0) == {}

    def entry(genre_ms, nnr_ms, per_s, score, student_score=None, student_per_s=None):
        return {"best_k": 30, "genre_score": score, "cached_speedup": 4.0,
                "student_score": student_score, "student_per_s_10k": student_per_s,
                "throughput": {"10000": per_s},
                "methods": {"GenRe": {"ms_per_individual": genre_ms},
                            "NNR": {"ms_per_individual": nnr_ms},
                            "DiCE random": {"genre_speedup": 100.0}}}

    doc = {"datasets": {"compas": entry(0.1, 0.05, 12_000.0, 1.795, 1.77, 300_000.0),
                        "adult": entry(1.0, 0.1, 4_000.0, 1.70)}, "streaming": []}
    doc["summary"] = summary(doc, 0, table)
    assert doc["summary"]["compas"] == {"genre_ms_per_individual": 0.1,
                                        "nnr_ms_per_individual": 0.05,
                                        "genre_per_s_10k": 12_000.0, "genre_score": 1.795,
                                        "table_score": 1.80, "best_k": 30,
                                        "student_score": 1.77, "student_per_s_10k": 300_000.0}
    met = {t["target"]: t["met"] for t in targets(doc)}
    assert met["GenRe throughput >= 10,000 individuals/s on compas at 10,000 individuals "
               "(best_k 30)"]
    assert not met["GenRe throughput >= 5,000 individuals/s on adult at 10,000 individuals "
                   "(best_k 30)"]
    assert met["GenRe ms per individual within 5x of NNR's on compas"]
    assert not met["GenRe ms per individual within 5x of NNR's on adult"]
    assert met["GenRe Score within 0.01 of the committed table's (1.800) on compas"]
    assert not met["GenRe Score within 0.01 of the committed table's (1.750) on adult"]
    assert met["cached decoding >= 3x faster than uncached on adult"]
    assert met["student individuals/s >= 20x GenRe's on compas at 10,000 individuals"]
    assert met["student Score at most 0.03 below GenRe's on compas"]
    assert not any("student" in t and "adult" in t for t in met)  # adult has no student
