"""Forward kinematics helpers: left/right bone symmetrisation checked against a NumPy computation
written out here (tolerance 1e-12 in float64)."""
import numpy as np
import pytest
import torch

from hgn_pyg.data.kinematics import bone_lengths, symmetric_bones
from hgn_pyg.graphs.skeleton import H36M

PARENTS, PAIRS = H36M.parents, H36M.flip_pairs


def _numpy_symmetric(joints):
    """Per pose: walk the tree root-first; each bone keeps its unit direction, paired bones take
    the mean of their two lengths."""
    out = np.empty_like(joints)
    partner = {a: b for a, b in PAIRS} | {b: a for a, b in PAIRS}
    for n, pose in enumerate(joints):
        length = {j: np.linalg.norm(pose[j] - pose[p]) for j, p in enumerate(PARENTS) if p >= 0}
        for j, p in enumerate(PARENTS):
            if p < 0:
                out[n, j] = pose[j]
                continue
            d = (pose[j] - pose[p]) / length[j]
            want = 0.5 * (length[j] + length[partner[j]]) if j in partner else length[j]
            out[n, j] = out[n, p] + want * d
    return out


def test_symmetric_bones_matches_numpy_and_keeps_directions():
    rng = np.random.default_rng(0)
    joints = rng.normal(size=(5, 17, 3))
    got = symmetric_bones(torch.from_numpy(joints), PARENTS, PAIRS).numpy()
    np.testing.assert_allclose(got, _numpy_symmetric(joints), atol=1e-12)
    L = bone_lengths(torch.from_numpy(got), PARENTS).numpy()
    for a, b in PAIRS:
        np.testing.assert_allclose(L[:, a], L[:, b], atol=1e-12)
    # central bones (spine, neck, head) unchanged; the root stays
    L0 = bone_lengths(torch.from_numpy(joints), PARENTS).numpy()
    central = [j for j, p in enumerate(PARENTS) if p >= 0 and all(j not in pr for pr in PAIRS)]
    np.testing.assert_allclose(L[:, central], L0[:, central], atol=1e-12)
    np.testing.assert_array_equal(got[:, 0], joints[:, 0])


def test_symmetric_pose_is_unchanged_and_zero_bones_are_kept():
    rng = np.random.default_rng(1)
    joints = torch.from_numpy(_numpy_symmetric(rng.normal(size=(3, 17, 3))))
    np.testing.assert_allclose(symmetric_bones(joints, PARENTS, PAIRS).numpy(), joints.numpy(), atol=1e-12)
    flat = torch.zeros(2, 17, 3, dtype=torch.float64)
    assert torch.equal(symmetric_bones(flat, PARENTS, PAIRS), flat)


def test_bone_lengths_by_hand():
    j = torch.zeros(1, 17, 3, dtype=torch.float64)
    j[0, 1] = torch.tensor([0.3, 0.4, 0.0])  # R_Hip 0.5 from the pelvis
    L = bone_lengths(j, PARENTS)
    assert L[0, 0] == 0 and L[0, 1] == pytest.approx(0.5) and L[0, 2] == pytest.approx(0.5)
