"""Pose and view augmentation (hgn_pyg.data.augment.PoseViewAugmentation) against NumPy references.

References: bone lengths and directions, rotations written out as explicit matrices, the pinhole
``x = f X / Z + c`` evaluated in NumPy float64. Tolerances: 1e-5 (float32 tensors, values ~1),
1e-9 for float64 inputs.
"""
import math

import numpy as np
import pytest
import torch

from hgn_pyg.config import ConfigError, config_from_dict
from hgn_pyg.data.augment import PoseViewAugmentation
from hgn_pyg.data.kinematics import follow_bones, rotation_matrix, scale_bones
from hgn_pyg.graphs.skeleton import H36M

PARENTS = H36M.parents
BONES = [(p, j) for j, p in enumerate(PARENTS) if p >= 0]


def _poses(B=8, seed=0, dtype=torch.float64):
    """Plausible-sized random skeletons: bones of 0.1-0.45 m in random directions, pelvis at 0."""
    rng = np.random.default_rng(seed)
    J = np.zeros((B, 17, 3))
    for p, j in BONES:
        d = rng.normal(size=(B, 3))
        J[:, j] = J[:, p] + d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(0.1, 0.45, (B, 1))
    return torch.tensor(J, dtype=dtype)


def _project(P, f, c):
    P = np.asarray(P, dtype=np.float64)
    return f * P[..., :2] / P[..., 2:3] + c


def _camera_input(rel, f=(2.3, 2.31), c=(0.02, -0.01), root=(0.2, -0.1, 5.0)):
    P = rel.numpy() + np.asarray(root)
    return torch.tensor(_project(P, np.asarray(f), np.asarray(c)), dtype=rel.dtype)


def test_scale_bones_lengths_and_directions():
    rel = _poses()
    fac = torch.tensor(np.random.default_rng(1).uniform(0.7, 1.3, (8, 17)))
    out = scale_bones(rel, PARENTS, fac).numpy()
    r, f = rel.numpy(), fac.numpy()
    for p, j in BONES:
        old, new = r[:, j] - r[:, p], out[:, j] - out[:, p]
        np.testing.assert_allclose(np.linalg.norm(new, axis=1), f[:, j] * np.linalg.norm(old, axis=1), rtol=1e-12)
        np.testing.assert_allclose(new / np.linalg.norm(new, axis=1, keepdims=True),
                                   old / np.linalg.norm(old, axis=1, keepdims=True), atol=1e-12)
    np.testing.assert_array_equal(out[:, 0], r[:, 0])


def test_bone_factors_symmetric_pairs_and_ranges():
    aug = PoseViewAugmentation(pose_prob=1.0, body_scale=(0.9, 1.1), bone_scale=0.05)
    f = aug.bone_factors(4000, 17, torch.Generator().manual_seed(0), torch.float64).numpy()
    for a, b in H36M.flip_pairs:  # the bone into the left joint and into the right joint: one factor
        np.testing.assert_array_equal(f[:, a], f[:, b])
    lo, hi = 0.9 * (1 - 2.5 * 0.05), 1.1 * (1 + 2.5 * 0.05)
    assert f[:, 1:].min() >= lo - 1e-12 and f[:, 1:].max() <= hi + 1e-12
    assert abs(np.median(f[:, 1:]) - 1.0) < 0.02
    side = PoseViewAugmentation(pose_prob=1.0, bone_scale_side=0.03).bone_factors(
        100, 17, torch.Generator().manual_seed(0), torch.float64).numpy()
    assert not np.allclose(side[:, 1], side[:, 4])  # per-bone draws break the symmetry when asked


def test_pose_only_reprojects_through_the_samples_own_camera():
    rel = _poses()
    x = _camera_input(rel)
    aug = PoseViewAugmentation(pose_prob=1.0, view_prob=0.0, body_scale=(0.8, 1.2), bone_scale=0.1)
    x2, j2, _ = aug(x, rel, None, torch.Generator().manual_seed(3))
    # the 2D input is the new skeleton seen by the very camera of the input (known here)
    expect = _project(j2.numpy() + np.array([0.2, -0.1, 5.0]), np.array([2.3, 2.31]), np.array([0.02, -0.01]))
    np.testing.assert_allclose(x2.numpy(), expect, atol=1e-9)
    # the bones changed by the factors drawn (same draws as bone_factors with the same generator)
    g = torch.Generator().manual_seed(3)
    torch.rand(8, generator=g, dtype=torch.float64)  # the pose mask comes first
    fac = aug.bone_factors(8, 17, g, torch.float64).numpy()
    for p, j in BONES:
        np.testing.assert_allclose(np.linalg.norm(j2[:, j] - j2[:, p], axis=1),
                                   fac[:, j] * np.linalg.norm(rel[:, j] - rel[:, p], axis=1), rtol=1e-9)


def _rx(deg):
    a = math.radians(deg)
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def test_fixed_virtual_camera_matches_numpy():
    rel = _poses()
    x = _camera_input(rel)
    aug = PoseViewAugmentation(view_prob=1.0, yaw=0.0, tilt=0.0, elevation=(30.0, 30.0), distance=(4.0, 4.0),
                               focal=(2.0, 2.0), offset=0.0)
    x2, j2, _ = aug(x, rel, None, torch.Generator().manual_seed(0))
    rot = rel.numpy() @ _rx(30).T
    np.testing.assert_allclose(j2.numpy(), rot, atol=1e-9)
    np.testing.assert_allclose(x2.numpy(), _project(rot + [0, 0, 4.0], 2.0, 0.0), atol=1e-9)
    # the virtual camera above the subject (positive elevation) sees the head nearer than the feet
    head, foot = H36M.joint_names.index("Head"), H36M.joint_names.index("R_Ankle")
    up = torch.zeros(1, 17, 3, dtype=torch.float64)
    up[0, head, 1], up[0, foot, 1] = -0.8, 0.9  # y points down
    _, ju, _ = aug(_camera_input(up), up, None, torch.Generator().manual_seed(0))
    assert ju[0, head, 2] < 0 < ju[0, foot, 2]


def test_random_views_are_rigid_and_consistent():
    rel = _poses(B=64, dtype=torch.float32)
    x = _camera_input(rel)
    meshes = (rel[:, [1, 2, 5, 11, 13]] + 0.05, rel[:, :9] * 0.7)
    aug = PoseViewAugmentation(view_prob=1.0)
    x2, j2, m2 = aug(x, rel, meshes, torch.Generator().manual_seed(1))
    # rigid: pairwise distances of joints and mesh points preserved
    def dists(*parts):
        a = torch.cat(parts, 1).double().numpy()
        return np.linalg.norm(a[:, :, None] - a[:, None], axis=-1)

    np.testing.assert_allclose(dists(j2, *m2), dists(rel, *meshes), atol=2e-5)
    # a pinhole with one focal length for both axes and the principal point at 0 explains x2:
    f, c, z = PoseViewAugmentation.fit_camera(x2, j2)
    np.testing.assert_allclose(f[:, 0].numpy(), f[:, 1].numpy(), rtol=1e-4)
    np.testing.assert_allclose(c.numpy(), 0.0, atol=1e-4)
    assert (f >= 1.2 - 1e-4).all() and (f <= 2.6 + 1e-4).all() and (z >= 2.5 - 1e-3).all() and (z <= 7.0 + 1e-3).all()
    # and reprojects it (NumPy): root at (x_root / f) Z
    root = np.stack([x2[:, 0, 0] * z / f[:, 0], x2[:, 0, 1] * z / f[:, 1], z], -1)
    np.testing.assert_allclose(_project(j2.numpy() + root[:, None], f.numpy()[:, None], 0.0), x2.numpy(), atol=1e-4)
    # the pelvis's image lies within the offset disc
    assert (x2[:, 0].norm(dim=-1) <= 0.5 + 1e-5).all()


def test_yaw_only_keeps_heights():
    rel = _poses(B=16)
    aug = PoseViewAugmentation(view_prob=1.0, yaw=180.0, tilt=0.0, elevation=(0.0, 0.0))
    _, j2, _ = aug(_camera_input(rel), rel, None, torch.Generator().manual_seed(2))
    np.testing.assert_allclose(j2[..., 1].numpy(), rel[..., 1].numpy(), atol=1e-12)  # about the vertical axis
    assert not np.allclose(j2[..., 0].numpy(), rel[..., 0].numpy())


def test_follow_bones_keeps_points_on_their_bone():
    rel = _poses(B=4)
    fac = torch.full((4, 17), 1.25, dtype=torch.float64)
    new = scale_bones(rel, PARENTS, fac)
    p, j = 12, 13  # L_Elbow -> L_Wrist
    on = rel[:, p] + 0.3 * (rel[:, j] - rel[:, p])
    moved = follow_bones(on[:, None], rel, new, PARENTS)[:, 0].numpy()
    r, n = rel.numpy(), new.numpy()
    np.testing.assert_allclose(moved, n[:, p] + 0.3 * (n[:, j] - n[:, p]), atol=1e-9)
    # unchanged skeleton: the points do not move; a translated skeleton carries them along
    pts = rel[:, [3, 6, 13]] + 0.02
    np.testing.assert_allclose(follow_bones(pts, rel, rel, PARENTS).numpy(), pts.numpy(), atol=1e-12)
    shift = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    np.testing.assert_allclose(follow_bones(pts, rel, rel + shift, PARENTS).numpy(), (pts + shift).numpy(), atol=1e-12)


def test_meshes_follow_scaled_bones_in_the_call():
    rel = _poses(B=4)
    p, j = 1, 2  # R_Hip -> R_Knee
    mesh = (rel[:, p] + 0.5 * (rel[:, j] - rel[:, p]))[:, None]
    aug = PoseViewAugmentation(pose_prob=1.0, bone_scale=0.1)
    _, j2, m2 = aug(_camera_input(rel), rel, (mesh,), torch.Generator().manual_seed(0))
    np.testing.assert_allclose(m2[0][:, 0].numpy(), (0.5 * (j2[:, p] + j2[:, j])).numpy(), atol=1e-9)


def test_off_and_probabilities():
    rel = _poses()
    x = _camera_input(rel)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    out = PoseViewAugmentation()(x, rel, None, g)
    assert out[0] is x and out[1] is rel and torch.equal(g.get_state(), state)  # off: nothing drawn
    aug = PoseViewAugmentation(view_prob=0.5)
    x2, j2, _ = aug(_camera_input(_poses(B=400)), _poses(B=400), None, torch.Generator().manual_seed(0))
    changed = (x2 - _camera_input(_poses(B=400))).abs().amax((1, 2)) > 1e-9
    assert 150 < int(changed.sum()) < 250
    # non-pelvis-relative targets keep their own pelvis
    j_abs = rel + torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64)
    _, j3, _ = PoseViewAugmentation(view_prob=1.0)(x, j_abs + 1.0, None, torch.Generator().manual_seed(0))
    np.testing.assert_allclose(j3[:, 0].numpy(), (j_abs + 1.0)[:, 0].numpy(), atol=1e-12)


def test_rotation_matrix_axes():
    a = torch.tensor([0.3], dtype=torch.float64)
    np.testing.assert_allclose(rotation_matrix(0, a)[0].numpy(), _rx(math.degrees(0.3)), atol=1e-15)
    for axis in (0, 1, 2):
        R = rotation_matrix(axis, a)[0].numpy()
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-15)
        assert np.linalg.det(R) == pytest.approx(1.0)


@pytest.mark.parametrize("aug,msg", [
    ({"pose_prob": 1.5}, "AUG.pose_prob"),
    ({"view_prob": -0.1}, "AUG.view_prob"),
    ({"body_scale": [1.1, 0.9]}, "AUG.body_scale"),
    ({"distance": [0.0, 3.0]}, "AUG.distance"),
    ({"focal": [2.0]}, "AUG.focal"),
    ({"elevation": [-95.0, 10.0]}, "AUG.elevation"),
    ({"bone_scale": -0.1}, "AUG.bone_scale"),
])
def test_config_validation(aug, msg):
    with pytest.raises(ConfigError, match=msg):
        config_from_dict({"AUG": aug}, "x.yaml")


def test_config_builds_the_augmentation():
    cfg = config_from_dict({"AUG": {"pose_prob": 0.5, "view_prob": 0.7, "focal": [1.5, 2.5], "yaw": 90}}, "x.yaml")
    aug = PoseViewAugmentation.from_config(cfg.AUG)
    assert aug.active and aug.pose_prob == 0.5 and aug.view_prob == 0.7 and aug.focal == (1.5, 2.5)
    assert aug.yaw == 90.0 and tuple(aug.parents) == tuple(PARENTS)
    assert not PoseViewAugmentation.from_config(config_from_dict({}, "x.yaml").AUG).active


def test_input_that_is_no_view_gets_a_virtual_camera():
    rel = _poses(B=6)
    x = torch.zeros(6, 17, 2, dtype=torch.float64)  # no pinhole view of anything
    x2, j2, _ = PoseViewAugmentation(pose_prob=1.0)(x, rel, None, torch.Generator().manual_seed(0))
    assert torch.isfinite(x2).all()
    f, c, z = PoseViewAugmentation.fit_camera(x2, j2)
    assert (f > 1.0).all() and (z > 2.0).all()

