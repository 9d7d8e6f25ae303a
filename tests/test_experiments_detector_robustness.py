"""benchmarks/detector_robustness.py: the tables it writes, and (slow) the whole pipeline on a
tiny set."""
import json
import math
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))

import detector_robustness as bench  # noqa: E402


def fake(value):
    return {"MPJPE": value, "PA-MPJPE": value / 2, "num_samples": 10}


def test_tables_put_each_figure_in_its_cell():
    results = {
        "gt": {c: fake(10.0 + i) for i, c in enumerate(bench.conditions_of("gt"))},
        "coco": {"coco": fake(42.0)},
    }
    text = bench.tables(results, {"protocol": "P"})
    lines = text.splitlines()
    assert lines[0] == "Protocol: P"
    assert "| ground-truth 2D | 10.0 | 5.0 | 11.0 | 5.5 |" in lines
    assert "| ground-truth 2D | 10.0 | 12.0 | 13.0 | 14.0 |" in lines
    assert any(line.startswith("| hand mapping") and "| 15.0 | 7.5 |" in line for line in lines)
    assert "| model trained on COCO-17 input (`coco`) | 42.0 | 21.0 |" in lines
    assert not any("keypoint dropout" in line for line in lines)  # runs not done are left out
    results["dropout"] = {"gt": fake(1.0)}
    assert "| GT 2D + keypoint dropout | 1.0 | 0.5 | — | — |" in bench.tables(results, {"protocol": "P"})


def test_conditions():
    assert bench.conditions_of("coco") == ["coco"]
    assert bench.conditions_of("detector") == ["gt", "detected", "missing 1", "missing 2", "missing 3",
                                               "coco mapped"]
    assert set(bench.RUNS) == {"gt", "dropout", "detector", "detector_score", "coco"}


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    out = tmp_path / "bench"
    assert bench.main(["--quick", "--out", str(out), "--runs", "gt", "detector_score", "coco"]) == 0
    data = json.loads((out / "results.json").read_text())
    res = data["results"]
    assert set(res) == {"gt", "detector_score", "coco"}
    for run, conds in res.items():
        assert list(conds) == bench.conditions_of(run)
        for r in conds.values():
            assert math.isfinite(r["MPJPE"]) and math.isfinite(r["PA-MPJPE"]) and r["num_samples"] > 0
    assert "--quick: not a measurement" in (out / "results.md").read_text()
    # a second call reuses the finished trainings
    assert bench.main(["--quick", "--out", str(out), "--runs", "gt", "--eval-only"]) == 0

    # hgn_pyg.test on the detected-like track gives the benchmark's figure; a COCO-input
    # checkpoint brings its input joint set (the input node map) along
    from hgn_pyg.cli.evaluate import main as test_main

    config = str(BENCH_DIR.parent / "configs" / "hgn_synthetic.yaml")
    common = ["--config", config, "--set", f"DATASET.root={out / 'synthetic'}", "--set", "TEST.vis=false",
              "--set", "EXPERIMENT.progress=false", "--set", "SYNTHETIC.frames=6"]  # the --quick set
    for run, sets, cond in (
            ("detector_score", ["DATASET.use_gt_input=false", f"DATASET.npz_2d={bench.DETECTED_FILE}"], "detected"),
            ("coco", [], "coco")):
        ckpt = (out / "runs" / run / "DONE").read_text().strip()
        args = common + ["--checkpoint", ckpt, "--out", str(tmp_path / f"test_{run}")]
        for x in sets:
            args += ["--set", x]
        assert test_main(args) == 0
        got = json.loads((tmp_path / f"test_{run}" / "results.json").read_text())
        assert got["num_samples"] == res[run][cond]["num_samples"]
        assert got["MPJPE"] == pytest.approx(res[run][cond]["MPJPE"], abs=1e-4)  # float32 sums
