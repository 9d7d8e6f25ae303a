"""Motions of the synthetic set: pose conventions, limits, clearance, coverage; and the body
model's point skinning they are posed with."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hgn_pyg.data import motions as mo
from hgn_pyg.data.body_model import PointSkinning, load_body_model


@pytest.fixture(scope="module")
def model():
    return load_body_model(None, dtype=torch.float64)


def _zero(**channels):
    """A pose with every channel 0 (T-pose) except ``channels``."""
    v = np.zeros(len(mo.CHANNELS))
    for c, x in channels.items():
        v[mo.CHANNELS.index(c)] = x
    return v


def _joints(pose):
    """SMPL joints [24, 3] of one pose vector on the reference skeleton (y up, z forward)."""
    return mo.joint_positions(mo.pose_rotations(pose[None]))[0]


def test_channels_mean_what_they_say():
    rest = _joints(_zero())
    # right knee 90 degrees: the shin turns backwards (-z), never forwards
    J = _joints(_zero(R_knee=90))
    shin = J[8] - J[5]
    assert shin[2] < -0.4 and abs(shin[1]) < 0.05
    # hip flexion 90: the thigh points forward (+z)
    J = _joints(_zero(L_hip_flex=90))
    assert (J[4] - J[1])[2] > 0.4
    # left elbow 90 with the arm hanging: the forearm points forward
    J = _joints(_zero(L_shoulder_down=90, L_elbow=90))
    assert (J[20] - J[18])[2] > 0.2 and (J[18] - J[16])[1] < -0.25
    # arms overhead: the wrists above the head
    J = _joints(mo.KEY_POSES["arms_overhead"])
    assert J[20, 1] > J[15, 1] + 0.2 and J[21, 1] > J[15, 1] + 0.2
    # the static joints are never rotated: bone lengths equal the rest skeleton's
    R = mo.pose_rotations(np.stack(list(mo.KEY_POSES.values())))
    assert np.allclose(R[:, list(mo.STATIC_JOINTS)], np.eye(3))
    J = mo.joint_positions(R)
    from hgn_pyg.data.smpl_format import SMPL_PARENTS
    lens = np.linalg.norm(J[:, 1:] - J[:, SMPL_PARENTS[1:]], axis=-1)
    rest_lens = np.linalg.norm(rest[1:] - rest[SMPL_PARENTS[1:]], axis=-1)
    assert np.allclose(lens, rest_lens, atol=1e-12)


def test_mirror_reflects_the_body():
    v = mo.KEY_POSES["reach_across"] + 0.0
    J, Jm = _joints(v), _joints(mo._mirror(v))
    from hgn_pyg.data.smpl_format import SMPL_JOINT_NAMES as N
    swap = [N.index(n.replace("left", "@").replace("right", "left").replace("@", "right"))
            for n in N]
    reflected = J[swap] * [-1, 1, 1]
    rest = _joints(mo.KEY_POSES["stand"])  # the rest skeleton is symmetric to 1e-9 m
    assert np.abs(rest[swap] * [-1, 1, 1] - rest).max() < 1e-9
    assert np.abs(Jm - reflected).max() < 1e-9


def test_clearance_catches_a_limb_through_the_body():
    ok = mo.KEY_POSES["arms_crossed"]
    assert mo.body_clearance(ok[None])[0] > 0
    # the same forearm rotated further across: through the belly
    bad = mo.pose_vector(R_shoulder_down=80, R_shoulder_forward=0, R_shoulder_horiz=110,
                         R_elbow=100)
    assert mo.body_clearance(bad[None])[0] < 0
    # legs crossing through each other
    bad = mo.pose_vector(L_hip_abduct=-25, R_hip_abduct=-25)
    assert mo.body_clearance(bad[None])[0] < 0


def test_random_poses_and_every_key_pose_respect_limits_and_clearance():
    rng = np.random.default_rng(0)
    P = np.stack([mo.random_pose(rng, spread=1.0) for _ in range(40)])
    lo = np.array([mo.LIMITS[c][0] for c in mo.CHANNELS])
    hi = np.array([mo.LIMITS[c][1] for c in mo.CHANNELS])
    assert ((P >= lo) & (P <= hi)).all()
    assert (mo.body_clearance(P) >= 0).all()
    K = np.stack(list(mo.KEY_POSES.values()))
    assert ((K >= lo) & (K <= hi)).all()
    assert (mo.body_clearance(K) >= 0).all(), dict(zip(mo.KEY_POSES, mo.body_clearance(K)))


def test_sequences_are_deterministic_smooth_and_within_limits():
    lo = np.array([mo.LIMITS[c][0] for c in mo.CHANNELS])
    hi = np.array([mo.LIMITS[c][1] for c in mo.CHANNELS])
    for action in range(2, 17):
        p, yaw, path, names = mo.action_motion(action, 1, 9, 120, seed=1)
        p2, yaw2, path2, _ = mo.action_motion(action, 1, 9, 120, seed=1)
        assert np.array_equal(p, p2) and np.array_equal(path, path2)
        assert p.shape == (120, len(mo.CHANNELS)) and path.shape == (120, 2)
        assert ((p >= lo - 1e-9) & (p <= hi + 1e-9)).all()
        assert (mo.body_clearance(p) >= 0).all()
        # smooth: at 50 fps no channel jumps more than 15 degrees between frames
        assert np.abs(np.diff(p, axis=0)).max() < 15.0, action
        assert names
    walk = mo.action_motion(14, 1, 9, 200)[2]
    assert np.linalg.norm(np.diff(walk, axis=0), axis=1).sum() > 2.0  # metres walked


def test_coverage_counts_named_poses_and_ranges():
    a, b = mo.KEY_POSES["crouch"], mo.KEY_POSES["lie_back"]
    P = np.stack([a, a + 5.0, b, mo._mirror(mo.KEY_POSES["reach_up"]), b + 60.0])
    cov = mo.coverage(P)
    assert cov["named"]["crouch"] == 2 and cov["named"]["lie_back"] == 1
    assert cov["named"]["reach_up"] == 1 and sum(cov["named"].values()) == 4
    k = mo.CHANNELS.index("R_knee")
    assert cov["ranges"]["R_knee"] == (P[:, k].min(), P[:, k].max())


def test_point_skinning_equals_the_body_model(model):
    gen = np.random.default_rng(0)
    betas = gen.normal(0, 1, 10)
    pose = mo.pose_rotations(np.stack([mo.KEY_POSES[n] for n in ("crouch", "lie_side", "wave")]))
    pose[:, 0] = mo.root_rotation(np.stack([mo.KEY_POSES[n] for n in ("crouch", "lie_side",
                                                                       "wave")]), np.ones(3))
    body = PointSkinning(model, betas, floor_stride=1)
    rv = torch.tensor(Rotation.from_matrix(pose.reshape(-1, 3, 3)).as_rotvec().reshape(3, 72))
    v, j = model.forward(rv, torch.tensor(betas)[None])
    want = model.h36m_joints(v).numpy()
    # metres; 1e-7 m: smplx's float64 path still goes through float32 model arrays in places
    assert np.abs(body.points(pose) - want).max() < 1e-7
    assert np.abs(body.lowest(pose) - v[..., 2].min(dim=1).values.numpy()).max() < 1e-7
    assert np.abs(mo.joint_positions(pose, rest=body.joints) - j.numpy()).max() < 1e-7
