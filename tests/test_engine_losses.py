"""The docs/published_model.md §4 loss: weights, real-slot reading, missing meshes."""
import torch
import torch.nn.functional as F

from hgn_pyg.engine.losses import HGNLoss


class FakeHierarchy:
    def real_slots(self, level):
        return {8: torch.tensor([0, 2, 3, 5]), 7: torch.tensor([1, 0, 4])}[level]


def test_loss_value_reads_real_slots():
    torch.manual_seed(0)
    loss = HGNLoss.from_hierarchy(FakeHierarchy(), [8, 7])
    j, jg = torch.randn(2, 17, 3), torch.randn(2, 17, 3)
    m8, m7 = torch.randn(2, 6, 3), torch.randn(2, 5, 3)
    g8, g7 = torch.randn(2, 4, 3), torch.randn(2, 3, 3)
    total, parts = loss(j, (m8, m7), jg, (g8, g7))
    ref = (100 * ((j - jg) ** 2).mean() + ((m8[:, [0, 2, 3, 5]] - g8) ** 2).mean()
           + ((m7[:, [1, 0, 4]] - g7) ** 2).mean())
    assert torch.allclose(total, ref)
    assert set(parts) == {"joints", "mesh0", "mesh1"}
    # fake slots get no gradient
    m8.requires_grad_(True)
    total, _ = loss(j, (m8, m7), jg, (g8, g7))
    total.backward()
    assert (m8.grad[:, [1, 4]] == 0).all() and (m8.grad[:, [0, 2]] != 0).any()


def test_loss_without_meshes_and_weights():
    loss = HGNLoss.from_hierarchy(FakeHierarchy(), [8, 7], joint_weight=10.0, mesh_weights=[0.5, 2.0])
    j, jg = torch.randn(3, 17, 3), torch.randn(3, 17, 3)
    total, parts = loss(j, (torch.randn(3, 6, 3), torch.randn(3, 5, 3)), jg, None)
    assert torch.allclose(total, 10 * F.mse_loss(j, jg)) and set(parts) == {"joints"}
    assert "joint_weight=10.0" in repr(loss)


def test_loss_shape_errors():
    loss = HGNLoss.from_hierarchy(FakeHierarchy(), [8, 7])
    import pytest
    with pytest.raises(ValueError, match="mesh level 0"):
        loss(torch.zeros(1, 17, 3), (torch.zeros(1, 6, 3), torch.zeros(1, 5, 3)), torch.zeros(1, 17, 3),
             (torch.zeros(1, 5, 3), torch.zeros(1, 3, 3)))
