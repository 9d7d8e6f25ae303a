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


def test_symmetry_term_matches_numpy_bone_lengths():
    """The optional left/right term against bone lengths computed independently in NumPy from the
    H36M tree written out by hand (float64, 1e-12)."""
    import numpy as np
    import pytest

    from hgn_pyg.graphs.skeleton import H36M

    # H36M: 0 pelvis, 1-3 right leg, 4-6 left leg, 7 spine, 8 thorax, 9 nose, 10 head,
    # 11-13 left arm, 14-16 right arm
    bones = {1: 0, 2: 1, 3: 2, 4: 0, 5: 4, 6: 5, 11: 8, 12: 11, 13: 12, 14: 8, 15: 14, 16: 15}
    pairs = [(1, 4), (2, 5), (3, 6), (14, 11), (15, 12), (16, 13)]
    torch.manual_seed(1)
    j = torch.randn(5, 17, 3, dtype=torch.float64)
    jg = torch.randn(5, 17, 3, dtype=torch.float64)
    loss = HGNLoss(joint_weight=2.0, symmetry_weight=7.0, parents=H36M.parents, flip_pairs=H36M.flip_pairs)
    total, parts = loss(j, None, jg)
    x = j.numpy()
    length = {c: np.linalg.norm(x[:, c] - x[:, p], axis=-1) for c, p in bones.items()}
    sym = np.mean([(length[a] - length[b]) ** 2 for a, b in pairs])
    assert abs(float(parts["symmetry"]) - sym) < 1e-12
    assert abs(float(total) - (2.0 * np.mean((x - jg.numpy()) ** 2) + 7.0 * sym)) < 1e-12
    assert "symmetry_weight=7.0" in repr(loss)
    # a symmetric pose pays nothing; the published default has no such term
    mirrored = j.clone()
    for a, b in pairs:
        mirrored[:, a] = mirrored[:, bones[a]] + (mirrored[:, b] - mirrored[:, bones[b]])
    assert float(loss.symmetry(mirrored)) < 1e-24
    assert "symmetry" not in HGNLoss()(j, None, jg)[1]
    with pytest.raises(ValueError, match="parents and flip_pairs"):
        HGNLoss(symmetry_weight=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        HGNLoss(symmetry_weight=-1.0, parents=H36M.parents, flip_pairs=H36M.flip_pairs)
