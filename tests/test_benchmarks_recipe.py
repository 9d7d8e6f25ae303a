"""The smallest runs of benchmarks/mesh_levels_cost.py and benchmarks/ablation.py (no timing asserts:
the scripts must run, check agreement and write their tables)."""
import csv
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

pytestmark = pytest.mark.slow


def test_mesh_levels_cost_smallest(tmp_path):
    import mesh_levels_cost

    rel = mesh_levels_cost.main(["--batch", "2", "--rounds", "1", "--threads", "1", "--out", str(tmp_path)])
    assert rel["HGN [8, 7] official (published)"] == pytest.approx(1.0)
    assert {"HGN [8, 7, 6, 5] official", "HGN [8, 7, 6, 5] pool", "dense [8, 7, 6, 5] official"} <= set(rel)
    text = (tmp_path / "mesh_levels_cost_b2.md").read_text()
    assert "equal outputs before timing" in text and "node-layers" in text


def test_mesh_levels_cost_dense_check_catches_a_wrong_copy(monkeypatch, tmp_path):
    """The agreement check is live: a dense non-local with a perturbed weight is refused."""
    import _common as common
    import mesh_levels_cost

    original = mesh_levels_cost.DenseNonLocal.__init__

    def broken(self, ours):
        original(self, ours)
        self.block.W[0].bias.data += 0.5

    monkeypatch.setattr(mesh_levels_cost.DenseNonLocal, "__init__", broken)
    with pytest.raises(common.AgreementError, match=r"\[8, 7, 6, 5\]"):
        mesh_levels_cost.main(["--batch", "2", "--rounds", "1", "--threads", "1", "--out", str(tmp_path)])


def test_node_layers_count():
    import mesh_levels_cost
    from hgn_pyg.graphs import skeleton_graph
    from hgn_pyg.models import HGN

    model = HGN(skeleton_graph("h36m"), None, mesh_levels=(), num_layers=3, hidden_channels=4)
    assert mesh_levels_cost.node_layers(model) == 17 * 3


def test_ablation_smallest(tmp_path):
    import ablation

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
