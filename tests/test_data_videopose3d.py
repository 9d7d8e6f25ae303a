"""VideoPose3D npz loader on generated fixtures: joint mapping, cameras, split, errors."""
import numpy as np
import pytest
import torch

from hgn_pyg.data.actions import parse_action
from hgn_pyg.data.camera import quaternion_to_matrix, world_to_camera_quat
from hgn_pyg.data.h36m_calibration import h36m_cameras
from hgn_pyg.data.videopose3d import H36M32_TO_17, VideoPose3D
from hgn_pyg.engine.build import train_mean_pose
from hgn_pyg.errors import DataError

from test_data_fixtures import _quat_matrix, write_videopose3d


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_videopose3d(tmp_path_factory.mktemp("vp3d"))


def test_camera_constants_are_sane():
    cams = h36m_cameras()
    assert sorted(cams) == ["S1", "S11", "S5", "S6", "S7", "S8", "S9"]
    for s, views in cams.items():
        assert len(views) == 4
        for cam in views:
            q = cam["orientation"]
            assert abs(np.linalg.norm(q) - 1) < 1e-5
            R = quaternion_to_matrix(q)
            np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-6)
            np.testing.assert_allclose(R, _quat_matrix(q / np.linalg.norm(q)), atol=1e-12)
            d = np.linalg.norm(cam["translation"])        # metres from the capture centre
            assert 3.0 < d < 7.0
            # the camera looks towards the capture volume: the origin is in front of it
            assert world_to_camera_quat(np.zeros(3), q, cam["translation"])[2] > 2.0
            assert 1100 < cam["focal_length"][0] < 1200 and cam["res_w"] == 1000


def test_action_names():
    assert parse_action("Walking 1") == 12 and parse_action("Walking") == 12
    assert parse_action("TakingPhoto 1") == 10 and parse_action("WalkingDog") == 13
    assert parse_action("Dancing") is None


def test_targets_inputs_and_split(files):
    p3, p2, pos3d, pos2d = files
    ds = VideoPose3D(p3, p2, split="test", subjects=["S9"], subsample=5)
    cams = h36m_cameras()["S9"]
    frames = np.arange(0, 23, 5)
    exp_in, exp_tgt, exp_act = [], [], []
    for name in pos3d["S9"]:
        X = pos3d["S9"][name][:, list(H36M32_TO_17)].astype(np.float64)
        for c, cam in enumerate(cams):
            R = _quat_matrix(cam["orientation"] / np.linalg.norm(cam["orientation"]))
            Xc = (X[frames] - cam["translation"]) @ R
            exp_tgt.append(Xc - Xc[:, :1])
            uv = pos2d["S9"][name][c][frames].astype(np.float64)
            w, h = cam["res_w"], cam["res_h"]
            exp_in.append(uv / w * 2 - np.array([1, h / w]))
            exp_act.append(np.full(len(frames), parse_action(name)))
            # the fixture's 2D is the pinhole projection of the same camera-frame joints
            proj = Xc[..., :2] / Xc[..., 2:] * cam["focal_length"] + cam["center"]
            np.testing.assert_allclose(proj, uv, atol=1e-3)
    t = ds.tensors()
    np.testing.assert_allclose(t["input_2d"].numpy(), np.concatenate(exp_in), atol=1e-6)
    np.testing.assert_allclose(t["joints_3d"].numpy(), np.concatenate(exp_tgt), atol=1e-6)
    assert t["action"].tolist() == np.concatenate(exp_act).tolist()
    assert set(t["subject"].tolist()) == {9}
    item = ds[0]
    assert set(item) == {"input_2d", "joints_3d", "action", "subject"}
    assert not ds.has_meshes and train_mean_pose(ds).shape == (17, 3)
    # default protocol-2 subjects / subsampling
    tr = VideoPose3D(p3, p2, split="train", subjects=["S1"])
    assert tr.subsample == 5 and set(tr.tensors()["frame_info"][:, 1].tolist()) == {0, 5, 10, 15, 20}
    te = VideoPose3D(p3, p2, split="test", subjects=[9])
    assert te.subsample == 50 and len(te) == len(pos3d["S9"]) * 4
    # skip by sequence name, camera selection
    sk = VideoPose3D(p3, p2, split="test", subjects=["S9"], subsample=1, skip=[("S9", "Greeting 1")],
                     camera_indices=[0, 2])
    assert len(sk) == (len(pos3d["S9"]) - 1) * 2 * 23


def test_longer_2d_is_cut_shorter_is_an_error(tmp_path, files):
    _, _, pos3d, pos2d = files
    d2 = {s: {k: [np.concatenate([v, v[:4]]) for v in views] for k, views in a.items()}
          for s, a in pos2d.items()}
    np.savez(tmp_path / "det.npz", positions_2d=d2, metadata={"num_joints": 17})
    p3 = tmp_path / "3d.npz"
    np.savez(p3, positions_3d=pos3d)
    ds = VideoPose3D(p3, tmp_path / "det.npz", split="test", subjects=["S9"], subsample=1)
    assert len(ds) == len(pos3d["S9"]) * 4 * 23
    d2["S9"]["Directions"][1] = d2["S9"]["Directions"][1][:5]
    np.savez(tmp_path / "det.npz", positions_2d=d2, metadata={"num_joints": 17})
    with pytest.raises(DataError, match=r'det.npz: \["positions_2d"\]\["S9"\]\["Directions"\]\[1\]: 5 frames'):
        VideoPose3D(p3, tmp_path / "det.npz", split="test", subjects=["S9"])


def test_errors(tmp_path, files):
    p3, p2, pos3d, pos2d = files
    with pytest.raises(DataError, match="missing.npz: file not found"):
        VideoPose3D(tmp_path / "missing.npz", p2)
    with pytest.raises(DataError, match=r'\["positions_3d"\]\["S11"\]: missing subject'):
        VideoPose3D(p3, p2, split="test")                        # S11 not in the fixture
    bad = tmp_path / "bad.npz"
    bad.write_bytes(p3.read_bytes()[:100])
    with pytest.raises(DataError, match="bad.npz: not a readable .npz"):
        VideoPose3D(bad, p2, split="test", subjects=["S9"])
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(DataError, match=r'bad.npz: \["positions_3d"\]: missing key'):
        VideoPose3D(bad, p2, split="test", subjects=["S9"])
    d3 = {"S9": dict(pos3d["S9"])}
    d3["S9"]["Directions"] = d3["S9"]["Directions"][:, :20]
    np.savez(bad, positions_3d=d3)
    with pytest.raises(DataError, match=r'\["S9"\]\["Directions"\]: expected 32 \(or 17\) joints, got 20'):
        VideoPose3D(bad, p2, split="test", subjects=["S9"])
    d2 = {"S9": {k: list(v) for k, v in pos2d["S9"].items()}}
    x = d2["S9"]["Greeting 1"][3].copy()
    x[2, 5, 1] = np.inf
    d2["S9"]["Greeting 1"][3] = x
    np.savez(tmp_path / "bad2d.npz", positions_2d=d2)
    with pytest.raises(DataError, match=r'\["Greeting 1"\]\[3\]: 2D joints contains NaN or Inf'):
        VideoPose3D(p3, tmp_path / "bad2d.npz", split="test", subjects=["S9"])
    np.savez(tmp_path / "meta.npz", positions_2d=pos2d, metadata={"num_joints": 16})
    with pytest.raises(DataError, match=r'\["num_joints"\]: expected 17'):
        VideoPose3D(p3, tmp_path / "meta.npz", split="test", subjects=["S9"])
    d3 = {"S9": dict(pos3d["S9"])}
    d3["S9"]["Dancing"] = d3["S9"]["Directions"]
    np.savez(bad, positions_3d=d3)
    with pytest.raises(DataError, match=r'\["Dancing"\]: unknown action name'):
        VideoPose3D(bad, p2, split="test", subjects=["S9"])
    with pytest.raises(DataError, match="no camera calibration for subject S9"):
        VideoPose3D(p3, p2, split="test", subjects=["S9"], cameras={"S1": []})
