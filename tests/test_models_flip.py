"""hgn_pyg.models.flip: the mirror of inputs and outputs, checked against hand-written NumPy."""
import numpy as np
import pytest
import torch

from hgn_pyg.graphs.skeleton import COCO17, H36M
from hgn_pyg.models.flip import merge_mirrored, mirror, with_mirror


def _swap_by_name(names):
    twin = {n: (("R_" + n[2:]) if n.startswith("L_") else ("L_" + n[2:]) if n.startswith("R_") else n) for n in names}
    return [list(names).index(twin[n]) for n in names]


@pytest.mark.parametrize("joint_set", [H36M, COCO17])
def test_mirror_negates_x_and_swaps_sides(joint_set):
    x = torch.randn(4, len(joint_set.joint_names), 3, dtype=torch.float64)
    want = x.numpy()[:, _swap_by_name(joint_set.joint_names)].copy()
    want[..., 0] *= -1
    np.testing.assert_array_equal(mirror(x, joint_set.flip_pairs).numpy(), want)
    np.testing.assert_array_equal(mirror(mirror(x, joint_set.flip_pairs), joint_set.flip_pairs).numpy(), x.numpy())


def test_merge_of_a_mirror_equivariant_model_is_its_output():
    """A model that commutes with the mirror gives the same answer with or without flip averaging;
    a model that does not gives the hand-computed mean (exact in float64)."""
    x = torch.randn(5, 17, 2, dtype=torch.float64)
    lift = torch.randn(2, 3, dtype=torch.float64)

    def equivariant(inp):  # per joint (u, v) -> (u, v, u² + v²): commutes with the mirror
        u, v = inp[..., 0], inp[..., 1]
        return torch.stack([u, v, v * v + u * u], -1)

    np.testing.assert_allclose(merge_mirrored(equivariant(with_mirror(x, H36M.flip_pairs)), H36M.flip_pairs).numpy(),
                               equivariant(x).numpy(), atol=1e-12)

    def skewed(inp):
        return inp @ lift

    got = merge_mirrored(skewed(with_mirror(x, H36M.flip_pairs)), H36M.flip_pairs).numpy()
    s = _swap_by_name(H36M.joint_names)
    xm = x.numpy()[:, s].copy()
    xm[..., 0] *= -1
    back = (xm @ lift.numpy())[:, s]
    back[..., 0] *= -1
    np.testing.assert_allclose(got, ((x.numpy() @ lift.numpy()) + back) / 2, atol=1e-12)
    with pytest.raises(ValueError, match="even batch"):
        merge_mirrored(torch.zeros(3, 17, 3), H36M.flip_pairs)
