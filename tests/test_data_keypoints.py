"""Keypoint formats, the COCO-17 -> H36M-17 mapping and the missing-keypoint policy (exact, atol 1e-12
in float64 unless stated)."""
import numpy as np
import pytest
import torch

from hgn_pyg.data.keypoints import (
    COCO_TO_H36M,
    DEFAULT_MIN_SCORE,
    HEAD_EXTENSION,
    apply_missing_policy,
    coco_to_h36m,
    fill_missing,
    missing_mask,
    to_h36m,
)
from hgn_pyg.errors import DataError
from hgn_pyg.graphs import COCO17, H36M, skeleton_graph

# COCO indices, written out independently of the joint-set tables
NOSE, LEYE, REYE, LEAR, REAR, LSH, RSH, LEL, REL, LWR, RWR, LHIP, RHIP, LKN, RKN, LAN, RAN = range(17)


def _by_hand(c):
    """The documented mapping written formula by formula, [17, 2] COCO -> [17, 2] H36M."""
    pelvis = (c[LHIP] + c[RHIP]) / 2
    thorax = (c[LSH] + c[RSH]) / 2
    ear = (c[LEAR] + c[REAR]) / 2
    return np.stack([
        pelvis, c[RHIP], c[RKN], c[RAN], c[LHIP], c[LKN], c[LAN], (pelvis + thorax) / 2, thorax,
        c[NOSE], ear + HEAD_EXTENSION * (ear - thorax), c[LSH], c[LEL], c[LWR], c[RSH], c[REL], c[RWR],
    ])


def test_coco17_joint_set():
    g = skeleton_graph("coco17")
    assert g.num_nodes == 17 and g.edge_index.shape == (2, 38) and g.root == LHIP
    assert COCO17.joint_names[LEAR] == "L_Ear" and COCO17.joint_names[RAN] == "R_Ankle"
    assert (g.parents >= -1).all() and int((g.parents == -1).sum()) == 1


def test_mapping_matches_formulas():
    rng = np.random.default_rng(0)
    c = rng.normal(size=(5, 17, 2))
    out, s = coco_to_h36m(c)
    assert s is None and isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (5, 17, 2)
    for t in range(5):
        np.testing.assert_allclose(out[t], _by_hand(c[t]), atol=1e-12)
    np.testing.assert_allclose(COCO_TO_H36M.sum(1), 1.0, atol=1e-12)  # affine: commutes with normalisation
    a, b = 2.7, np.array([0.3, -1.1])
    np.testing.assert_allclose(coco_to_h36m(c * a + b)[0], out * a + b, atol=1e-12)


def test_mapping_missing_and_scores():
    rng = np.random.default_rng(1)
    c = rng.normal(size=(17, 2))
    c[NOSE, 0] = np.nan
    c[LHIP] = np.inf
    scores = np.linspace(0.05, 0.9, 17)
    out, s = coco_to_h36m(c, scores)
    bad = ~np.isfinite(out).all(-1)
    # nose -> H36M Nose (9); left hip -> Pelvis (0), L_Hip (4), Torso (7)
    assert np.flatnonzero(bad).tolist() == [0, 4, 7, 9]
    np.testing.assert_allclose(out[~bad], _by_hand(np.nan_to_num(c, posinf=0))[~bad], atol=1e-12)
    assert s[0] == min(scores[LHIP], scores[RHIP]) and s[8] == min(scores[LSH], scores[RSH])
    assert s[10] == min(scores[LEAR], scores[REAR], scores[LSH], scores[RSH]) and s[13] == scores[LWR]


def test_mapping_torch_float32_and_wrong_count():
    c = torch.randn(3, 17, 2)
    out, s = coco_to_h36m(c, torch.rand(3, 17))
    assert out.dtype == torch.float32 and s.shape == (3, 17)
    np.testing.assert_allclose(out.numpy(), coco_to_h36m(c.double().numpy())[0], atol=1e-5)
    with pytest.raises(DataError, match="K = 17"):
        coco_to_h36m(np.zeros((4, 18, 2)))
    with pytest.raises(DataError, match="scores"):
        coco_to_h36m(np.zeros((17, 2)), np.zeros(16))
    with pytest.raises(DataError, match="keypoint format"):
        to_h36m(np.zeros((17, 2)), keypoint_format="openpose")
    x = np.zeros((17, 2))
    assert to_h36m(x)[0] is x


def test_missing_mask():
    x = np.zeros((2, 17, 2))
    x[0, 3, 1] = np.nan
    x[1, 5, 0] = -np.inf
    s = np.full((2, 17), 0.9)
    s[0, 7] = DEFAULT_MIN_SCORE / 2
    s[1, 8] = np.nan
    s[1, 9] = DEFAULT_MIN_SCORE  # at the threshold: present
    m = missing_mask(x, s)
    assert m.dtype == bool and sorted(zip(*np.nonzero(m))) == [(0, 3), (0, 7), (1, 5), (1, 8)]
    assert missing_mask(x).sum() == 2
    assert missing_mask(x, s, min_score=0.95).all()
    assert missing_mask(torch.from_numpy(x), torch.from_numpy(s)).dtype == torch.bool


def test_fill_missing_policy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 17, 2))
    m = np.zeros((4, 17), dtype=bool)
    m[0, 13] = True  # L_Wrist -> L_Elbow
    m[1, [12, 13]] = True  # L_Elbow and L_Wrist -> L_Shoulder
    m[2, 0] = True  # root -> mean of the 16 present
    m[2, 1] = True  # R_Hip -> the filled root
    m[3] = True  # nothing present -> zeros
    x[m] = np.nan
    f = fill_missing(x, m)
    assert np.isfinite(f).all()
    np.testing.assert_array_equal(f[~m], x[~m])  # present joints bit-equal
    np.testing.assert_array_equal(f[0, 13], x[0, 12])
    np.testing.assert_array_equal(f[1, 12], x[1, 11])
    np.testing.assert_array_equal(f[1, 13], x[1, 11])
    np.testing.assert_allclose(f[2, 0], x[2, 2:].mean(0), atol=1e-12)
    np.testing.assert_array_equal(f[2, 1], f[2, 0])
    np.testing.assert_array_equal(f[3], 0.0)
    # a Head missing sits on the Nose, a Nose missing on the Neck
    m2 = np.zeros(17, dtype=bool)
    m2[[9, 10]] = True
    f2 = fill_missing(x[0], m2)
    np.testing.assert_array_equal(f2[9], x[0, 8])
    np.testing.assert_array_equal(f2[10], x[0, 8])


def test_policy_numpy_torch_dtypes_and_joint_sets():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 17, 2))
    s = rng.uniform(size=(6, 17))
    x[1, 4] = np.nan
    fn, mn = apply_missing_policy(x, s)
    assert isinstance(fn, np.ndarray) and fn.dtype == np.float64 and np.isfinite(fn).all()
    ft, mt = apply_missing_policy(torch.from_numpy(x).float(), torch.from_numpy(s).float())
    assert ft.dtype == torch.float32 and torch.equal(mt, torch.from_numpy(mn))
    np.testing.assert_allclose(ft.numpy(), fn, atol=1e-6)
    assert np.isfinite(fill_missing(x[0], mn[1], joint_set="coco")).all()  # COCO-17 tree
    xi = np.arange(34).reshape(17, 2)  # integer pixels become float64
    assert apply_missing_policy(xi)[0].dtype == np.float64
    with pytest.raises(DataError, match="K = 17"):
        fill_missing(np.zeros((16, 2)), np.zeros(16, dtype=bool))
    with pytest.raises(DataError, match="unknown joint set"):
        fill_missing(x, mn, joint_set="nope")
    assert H36M.parents[13] == 12  # the tree the fill walks (wrist -> elbow)
