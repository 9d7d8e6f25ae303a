"""The smallest runs of benchmarks/mesh_levels_cost.py (no timing asserts: the script must run, check
agreement and write its tables)."""
import pytest

from benchmarks import _common as common
from benchmarks import mesh_levels_cost

pytestmark = pytest.mark.slow


def test_mesh_levels_cost_smallest(tmp_path):
    rel = mesh_levels_cost.main(["--batch", "2", "--rounds", "1", "--threads", "1", "--out", str(tmp_path)])
    assert rel["HGN [8, 7] official (published)"] == pytest.approx(1.0)
    assert {"HGN [8, 7, 6, 5] official", "HGN [8, 7, 6, 5] pool", "dense [8, 7, 6, 5] official"} <= set(rel)
    text = (tmp_path / "mesh_levels_cost_b2.md").read_text()
    assert "equal outputs before timing" in text and "node-layers" in text


def test_mesh_levels_cost_dense_check_catches_a_wrong_copy(monkeypatch, tmp_path):
    """The agreement check is live: a dense non-local with a perturbed weight is refused."""
    original = mesh_levels_cost.DenseNonLocal.__init__

    def broken(self, ours):
        original(self, ours)
        self.block.W[0].bias.data += 0.5

    monkeypatch.setattr(mesh_levels_cost.DenseNonLocal, "__init__", broken)
    with pytest.raises(common.AgreementError, match=r"\[8, 7, 6, 5\]"):
        mesh_levels_cost.main(["--batch", "2", "--rounds", "1", "--threads", "1", "--out", str(tmp_path)])


def test_node_layers_count():
    from hgn_pyg.graphs import skeleton_graph
    from hgn_pyg.models import HGN

    model = HGN(skeleton_graph("h36m"), None, mesh_levels=(), num_layers=3, hidden_channels=4)
    assert mesh_levels_cost.node_layers(model) == 17 * 3
