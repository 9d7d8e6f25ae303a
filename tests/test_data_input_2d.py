"""Other 2D inputs of the Human3.6M-layout data: the synthetic COCO-17 keypoints and detected-like
track, 2D tracks in VideoPose3D's layout aligned to Pose2Mesh frames (hgn_pyg.data.input_2d)."""
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hgn_pyg.data import synthetic as syn
from hgn_pyg.data.body_model import default_body_model_path, load_body_model
from hgn_pyg.data.human36m import Human36M
from hgn_pyg.data.input_2d import _sequence_names, read_track_2d, with_input_2d
from hgn_pyg.data.keypoints import DEFAULT_MIN_SCORE
from hgn_pyg.errors import DataError
from hgn_pyg.graphs.skeleton import H36M

FRAMES = 6
ACTIONS = [2, 3]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn2d")
    syn.generate(out, frames=FRAMES, seed=5, subjects=[1, 9], actions=ACTIONS)
    return out


def _json(root, s, kind):
    return json.loads((Path(root) / "annotations" / f"Human36M_subject{s}_{kind}.json").read_text())


def _track(path):
    with np.load(path, allow_pickle=True) as f:  # our own test file
        return f["positions_2d"].item(), f["metadata"].item()


def _test_set(root, tmp_path, **kw):
    return Human36M(root, "test", subjects=[9], subsample=1, cache_dir=tmp_path / "cache", **kw)


def _pixels(world_mm, cam):
    R, t, f, c = (np.asarray(cam[k], dtype=np.float64) for k in ("R", "t", "f", "c"))
    X = world_mm @ R.T + t
    return X[..., :2] / X[..., 2:3] * f + c


def test_coco_keypoints_match_the_body_model_forward(root):
    """The fast path of the generator vs a plain SMPL forward pass + the COCO regressor."""
    model = load_body_model(default_body_model_path())
    reg = syn.coco_regressor(model)
    assert reg.shape == (17, 6890) and np.allclose(reg.sum(1), 1.0)
    coco = _json(root, 9, "joint_3d_coco")
    smpl = _json(root, 9, "smpl_param")
    frames = [("2", "1", "0"), ("3", "2", str(FRAMES - 1))]
    pose = np.array([smpl[a][b][f]["pose"] for a, b, f in frames])
    shape = np.array([smpl[a][b][f]["shape"] for a, b, f in frames])
    trans = np.array([smpl[a][b][f]["trans"] for a, b, f in frames])
    verts, _ = model.forward(torch.as_tensor(pose, dtype=torch.float64),
                             torch.as_tensor(shape, dtype=torch.float64), None)
    ref = (np.einsum("jv,nvc->njc", reg, verts.double().numpy()) + trans[:, None]) * 1000.0
    got = np.array([coco[a][b][f] for a, b, f in frames])
    np.testing.assert_allclose(got, ref, atol=0.05)  # mm; float32 forward vs float64 fast path
    # the COCO limb keypoints are the same body joints as the Human3.6M limbs of the open body
    h36m = np.array([_json(root, 9, "joint_3d")[a][b][f] for a, b, f in frames])
    limbs = {5: 11, 6: 14, 7: 12, 8: 15, 9: 13, 10: 16, 11: 4, 12: 1, 13: 5, 14: 2, 15: 6, 16: 3}
    for c, h in limbs.items():
        np.testing.assert_allclose(got[:, c], h36m[:, h], atol=1e-3)


def test_face_points_lie_on_the_head():
    model = load_body_model(default_body_model_path())
    idx = syn.face_vertices(model)
    v = model.smpl.v_template.double().numpy()
    head = (model.joint_regressor @ v)[15]
    nose, leye, reye, lear, rear = v[idx]
    assert len(set(idx.tolist())) == 5
    assert nose[2] > head[2] + 0.05 and leye[2] > head[2] + 0.05  # in front of the head joint
    assert leye[0] > 0 > reye[0] and lear[0] > leye[0] and rear[0] < reye[0]  # person's left = +x
    assert abs(nose[0]) < 0.01 and leye[1] > nose[1]
    assert (np.asarray(model.skinning_weights)[idx][:, [12, 15]].sum(1) > 0.999).all()


def test_detected_track_layout_seeded_and_detector_like(root, tmp_path):
    tracks, meta = _track(root / syn.DETECTED_FILE)
    assert list(tracks) == ["S9"] and meta["num_joints"] == 17 and meta["layout_name"] == "h36m"
    assert sorted(tracks["S9"]) == ["Directions 1", "Directions 2", "Discussion 1", "Discussion 2"]
    views = tracks["S9"]["Discussion 2"]
    assert len(views) == 4 and views[2].shape == (FRAMES, 17, 3) and views[2].dtype == np.float32
    manifest = json.loads((root / "SYNTHETIC.json").read_text())
    assert manifest["detected_track"] == {"file": syn.DETECTED_FILE, "subjects": [9]}
    # the same track on every run; another seed gives another
    again = tmp_path / "again"
    syn.generate(again, frames=FRAMES, seed=5, subjects=[9], actions=ACTIONS)
    other = tmp_path / "other"
    syn.generate(other, frames=FRAMES, seed=6, subjects=[9], actions=ACTIONS)
    a = _track(again / syn.DETECTED_FILE)[0]["S9"]["Discussion 2"][2]
    b = _track(other / syn.DETECTED_FILE)[0]["S9"]["Discussion 2"][2]
    np.testing.assert_array_equal(a, views[2])
    assert not np.array_equal(np.nan_to_num(a), np.nan_to_num(b))
    # close to the ground-truth projection: the noise is a few per cent of the person's size
    cam = _json(root, 9, "camera")["3"]
    j3d = _json(root, 9, "joint_3d")["3"]["2"]
    gt = _pixels(np.array([j3d[str(f)] for f in range(FRAMES)]), cam)
    err = np.linalg.norm(views[2][..., :2] - gt, axis=-1)
    size = (gt.max(1) - gt.min(1)).max(-1)
    rel = np.nanmedian(err / size[:, None])
    assert 0.003 < rel < 0.05


def test_track_input_aligned_to_the_frames(root, tmp_path):
    base = _test_set(root, tmp_path)
    ds = with_input_2d(base, root, "human36", root / syn.DETECTED_FILE)
    tracks, _ = _track(root / syn.DETECTED_FILE)
    t = ds.tensors()
    info = t["frame_info"].numpy()
    assert len(ds) == len(base) == 4 * 4 * FRAMES
    assert torch.equal(t["joints_3d"], base.tensors()["joints_3d"])
    name = {(2, 1): "Directions 1", (2, 2): "Directions 2", (3, 1): "Discussion 1", (3, 2): "Discussion 2"}
    seen_missing = False
    for n in range(0, len(ds), 7):
        s, a, sub, f, c = info[n].tolist()
        row = tracks["S9"][name[(a, sub)]][c - 1][f].astype(np.float64)
        w, h = t["image_size"][n].tolist()
        ref = row[:, :2] / w * 2 - [1, h / w]
        present = np.isfinite(row[:, 0]) & (row[:, 2] >= DEFAULT_MIN_SCORE)
        np.testing.assert_allclose(t["input_2d"][n].numpy()[present], ref[present], atol=1e-6)
        np.testing.assert_allclose(t["score_2d"][n].numpy(), np.where(present, row[:, 2], 0), atol=1e-6)
        for j in np.flatnonzero(~present):  # filled from the nearest present ancestor
            seen_missing = True
            a_ = j
            while not present[a_] and a_ != 0:
                a_ = H36M.parents[a_]
            if present[a_]:
                np.testing.assert_allclose(t["input_2d"][n, j].numpy(), ref[a_], atol=1e-6)
    assert torch.isfinite(t["input_2d"]).all()
    item = ds[0]
    assert item["score_2d"].shape == (17,) and ds.batch([0, 1])["score_2d"].shape == (2, 17)
    assert seen_missing or (t["score_2d"] == 0).sum() == 0


def test_coco_input_is_the_projected_coco_keypoints(root, tmp_path):
    base = _test_set(root, tmp_path)
    ds = with_input_2d(base, root, "coco")
    t = ds.tensors()
    cams = _json(root, 9, "camera")
    coco = _json(root, 9, "joint_3d_coco")
    for n in (0, 5, len(ds) - 1):
        s, a, sub, f, c = t["frame_info"][n].tolist()
        uv = _pixels(np.asarray(coco[str(a)][str(sub)][str(f)]), cams[str(c)])
        w, h = t["image_size"][n].tolist()
        np.testing.assert_allclose(t["input_2d"][n].numpy(), uv / w * 2 - [1, h / w], atol=1e-6)
    assert torch.equal(t["score_2d"], torch.ones(len(ds), 17))
    assert torch.equal(t["joints_3d"], base.tensors()["joints_3d"])
    assert with_input_2d(base, root, "human36") is base
    with pytest.raises(DataError, match="input joint set"):
        with_input_2d(base, root, "mpii")
    with pytest.raises(DataError, match="Human3.6M-17"):
        with_input_2d(base, root, "coco", root / syn.DETECTED_FILE)


def test_subaction_order_of_sequence_names():
    names = _sequence_names({"Directions 1": 0, "Directions": 0, "Walking 2": 0, "Walking 1": 0,
                             "WalkingDog": 0, "_ALL": 0, "Unknown": 0})
    assert names[(2, 1)] == "Directions" and names[(2, 2)] == "Directions 1"
    assert names[(14, 1)] == "Walking 1" and names[(14, 2)] == "Walking 2"
    assert names[(15, 1)] == "WalkingDog" and len(names) == 5


def _write(path, positions, meta=None):
    buf = io.BytesIO()
    arrays = {"positions_2d": np.array(positions, dtype=object)}
    if meta is not None:
        arrays["metadata"] = np.array(meta, dtype=object)
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())
    return path


def test_two_channel_tracks_get_score_one(tmp_path):
    arr = np.random.default_rng(0).uniform(0, 900, (4, 17, 2))
    path = _write(tmp_path / "cpn.npz", {"S9": {"Walking": [arr] * 4, "Walking 1": [arr + 1] * 4}})
    uv, score = read_track_2d(path, [[9, 14, 2, 3, 4], [9, 14, 1, 0, 1]])
    np.testing.assert_array_equal(uv[0], arr[3] + 1)
    np.testing.assert_array_equal(uv[1], arr[0])
    assert (score == 1).all()


@pytest.mark.parametrize("positions, info, match", [
    ({"S11": {}}, [9, 2, 1, 0, 1], r'\["positions_2d"\]\["S9"\]: missing subject'),
    ({"S9": {"Walking 1": []}}, [9, 2, 1, 0, 1], "no sequence for action Directions sub-action 1"),
    ({"S9": {"Directions 1": [np.zeros((3, 17, 2))]}}, [9, 2, 1, 0, 2], "one array per camera"),
    ({"S9": {"Directions 1": [np.zeros((3, 16, 2))]}}, [9, 2, 1, 0, 1], "T×17×C"),
    ({"S9": {"Directions 1": [np.zeros((3, 17, 2))]}}, [9, 2, 1, 3, 1], "frame 3 requested but the track has 3"),
    ({"S9": {"Directions 1": ["text"]}}, [9, 2, 1, 0, 1], "not numbers"),
])
def test_malformed_tracks_name_file_and_key(tmp_path, positions, info, match):
    path = _write(tmp_path / "bad.npz", positions)
    with pytest.raises(DataError, match=match) as err:
        read_track_2d(path, [info])
    assert str(path) in str(err.value)


def test_unreadable_track_file(tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="broken.npz"):
        read_track_2d(bad, [[9, 2, 1, 0, 1]])
    with pytest.raises(DataError, match="file not found"):
        read_track_2d(tmp_path / "none.npz", [[9, 2, 1, 0, 1]])


def test_generate_rejects_detected_subjects_not_generated(tmp_path):
    with pytest.raises(DataError, match="detected_subjects"):
        syn.generate(tmp_path / "x", frames=2, subjects=[1], actions=[2], detected_subjects=[9])
