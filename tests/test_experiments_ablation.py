"""The smallest run of experiments/ablation.py (no timing asserts: the script must run and write its
tables)."""
import csv

import pytest

from experiments import ablation

pytestmark = pytest.mark.slow


def test_ablation_smallest(tmp_path):
    out = tmp_path / "abl"
    assert ablation.main(["--quick", "--epochs", "1", "--train-samples", "64", "--test-samples", "32",
                          "--frames", "20", "--hidden", "8", "--threads", "1", "--variants", "0,2,6",
                          "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "ablation.csv")))
    assert [r["variant"] for r in rows] == ["skeleton", "17+L8+L7 (published)", "17+L8+L7, no mesh loss"]
    assert rows[0]["mesh_levels"] == "-" and rows[1]["mesh_levels"] == "8 7"
    assert int(rows[1]["parameters"]) == int(rows[2]["parameters"]) > int(rows[0]["parameters"])
    for r in rows:
        assert float(r["last_MPJPE"]) > 0 and float(r["infer_poses_per_s"]) > 0
    md = (out / "ablation.md").read_text()
    assert "seed 0" in md and "64 training / 32 test samples" in md and "1 epochs" in md
