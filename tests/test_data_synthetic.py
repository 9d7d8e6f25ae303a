"""The synthetic Human3.6M-format data set: layout, geometry, determinism, SMPL consistency."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hgn_pyg.data import synthetic as syn
from hgn_pyg.data.body_model import load_body_model
from hgn_pyg.data.camera import normalize_screen_coordinates, project, world_to_camera

FRAMES = 12
SUBJECTS = [1, 9]
BONES = [(0, 7), (7, 8), (8, 9), (9, 10), (8, 11), (11, 12), (12, 13), (8, 14), (14, 15),
         (15, 16), (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6)]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    syn.generate(out, frames=FRAMES, seed=3, subjects=SUBJECTS)
    return out


def _load(root, s, kind):
    return json.loads((Path(root) / "annotations" / f"Human36M_subject{s}_{kind}.json").read_text())


def _joints(root, s):
    j3d = _load(root, s, "joint_3d")
    return {(int(a), int(b), int(f)): np.asarray(x) for a, subs in j3d.items()
            for b, frames in subs.items() for f, x in frames.items()}


def test_layout_and_key_types(root):
    manifest = json.loads((root / "SYNTHETIC.json").read_text())
    assert manifest["seed"] == 3 and manifest["frames"] == FRAMES
    assert manifest["version"] == syn.SYNTHETIC_VERSION and manifest["subjects"] == SUBJECTS
    for s in SUBJECTS:
        data = _load(root, s, "data")
        assert set(data) >= {"images", "annotations"}
        n = len(syn.ACTION_NAMES) * 2 * FRAMES * 4
        assert len(data["images"]) == len(data["annotations"]) == n
        img = data["images"][0]
        for key, typ in (("id", int), ("file_name", str), ("width", int), ("height", int),
                         ("subject", int), ("action_idx", int), ("subaction_idx", int),
                         ("frame_idx", int), ("cam_idx", int)):
            assert isinstance(img[key], typ), key
        assert img["subject"] == s
        assert img["file_name"].startswith(f"s_{s:02d}_act_02_subact_01_ca_01/")
        ids = [i["id"] for i in data["images"]]
        assert len(set(ids)) == len(ids)
        assert {a["image_id"] for a in data["annotations"]} == set(ids)
        assert {i["action_idx"] for i in data["images"]} == set(range(2, 17))
        assert {i["subaction_idx"] for i in data["images"]} == {1, 2}
        assert {i["cam_idx"] for i in data["images"]} == {1, 2, 3, 4}
        ann = data["annotations"][0]
        assert len(ann["bbox"]) == 4 and all(isinstance(x, float) for x in ann["bbox"])
        cams = _load(root, s, "camera")
        assert sorted(cams) == ["1", "2", "3", "4"]
        for c in cams.values():
            assert np.shape(c["R"]) == (3, 3) and np.shape(c["t"]) == (3,)
            assert np.shape(c["f"]) == (2,) and np.shape(c["c"]) == (2,)
            R = np.asarray(c["R"])
            assert np.allclose(R @ R.T, np.eye(3), atol=1e-9) and np.linalg.det(R) > 0
            assert 1130 < c["f"][0] < 1160
            centre = -R.T @ np.asarray(c["t"]) / 1000.0
            assert 4.0 < np.linalg.norm(centre[:2]) < 6.0 and 1.0 < centre[2] < 2.5
        j3d = _load(root, s, "joint_3d")
        assert sorted(j3d, key=int) == [str(a) for a in range(2, 17)]
        assert sorted(j3d["2"]) == ["1", "2"]
        assert sorted(j3d["2"]["1"], key=int) == [str(f) for f in range(FRAMES)]
        assert np.shape(j3d["2"]["1"]["0"]) == (17, 3)
        smpl = _load(root, s, "smpl_param")
        p = smpl["14"]["2"]["5"]
        assert len(p["pose"]) == 72 and len(p["shape"]) == 10 and len(p["trans"]) == 3


def test_projection_inside_image_and_bbox(root):
    for s in SUBJECTS:
        data, cams, joints = _load(root, s, "data"), _load(root, s, "camera"), _joints(root, s)
        boxes = {a["image_id"]: a["bbox"] for a in data["annotations"]}
        for img in data["images"]:
            c = cams[str(img["cam_idx"])]
            X = joints[(img["action_idx"], img["subaction_idx"], img["frame_idx"])]
            Xc = world_to_camera(X, np.asarray(c["R"]), np.asarray(c["t"]))
            assert (Xc[:, 2] > 2000).all()  # metres in front of the camera
            uv = project(Xc, np.asarray(c["f"]), np.asarray(c["c"]))
            W, H = img["width"], img["height"]
            assert (uv >= 0).all() and (uv[:, 0] < W).all() and (uv[:, 1] < H).all()
            x, y, w, h = boxes[img["id"]]
            assert w > 0 and h > 0
            assert (uv[:, 0] >= x - 1e-6).all() and (uv[:, 0] <= x + w + 1e-6).all()
            assert (uv[:, 1] >= y - 1e-6).all() and (uv[:, 1] <= y + h + 1e-6).all()
            n = normalize_screen_coordinates(uv, W, H)
            assert np.abs(n).max() <= 1.01


def _bone_lengths(joints):
    X = np.stack(list(joints.values()))
    return np.stack([np.linalg.norm(X[:, a] - X[:, b], axis=1) for a, b in BONES], axis=1)


def test_bone_lengths_constant_per_subject_and_differ_between(root):
    per_subject = {}
    for s in SUBJECTS:
        L = _bone_lengths(_joints(root, s))
        dev = np.abs(L - L.mean(axis=0)).max()
        assert dev < 1e-3, dev  # mm
        assert (np.abs(L - L.mean(axis=0)) / L.mean(axis=0)).max() < 1e-5
        assert 50 < L.min() and L.max() < 600
        per_subject[s] = L.mean(axis=0)
    assert np.abs(per_subject[1] - per_subject[9]).max() > 5.0


def test_smpl_params_reproduce_joints(root):
    model = load_body_model(None)
    H = torch.as_tensor(model.h36m_regressor, dtype=torch.float32)
    for s in SUBJECTS:
        smpl, joints = _load(root, s, "smpl_param"), _joints(root, s)
        keys = sorted(joints)[::7]
        pose = torch.tensor([smpl[str(a)][str(b)][str(f)]["pose"] for a, b, f in keys])
        shape = torch.tensor([smpl[str(a)][str(b)][str(f)]["shape"] for a, b, f in keys])
        trans = torch.tensor([smpl[str(a)][str(b)][str(f)]["trans"] for a, b, f in keys])
        v, _ = model.forward(pose, shape, trans)
        got = torch.einsum("jv,bvc->bjc", H, v).numpy() * 1000.0
        want = np.stack([joints[k] for k in keys])
        assert np.abs(got - want).max() < 1.0  # mm
        # the body touches the floor (world z up); only SittingDown (action 10) lies down, in
        # the other actions the head stays above the pelvis but for deep bends (40 cm)
        zmin = v[..., 2].min(dim=1).values.numpy()
        assert np.abs(zmin).max() < 0.02
        upright = np.array([a != 10 for a, _, _ in keys])
        assert (want[upright, 10, 2] > want[upright, 0, 2] - 400.0).all()
        # static joints (spine2, spine3, collars, head) are not rotated
        for j in (6, 9, 13, 14, 15):
            assert torch.abs(pose[:, 3 * j: 3 * j + 3]).max() < 1e-6


def test_actions_differ_and_walking_moves(root):
    joints = _joints(root, 1)
    walk = np.stack([joints[(14, 1, f)] for f in range(FRAMES)])
    assert np.linalg.norm(walk[-1, 0, :2] - walk[0, 0, :2]) > 100  # mm of root travel
    sit = np.stack([joints[(9, 1, f)] for f in range(FRAMES)])
    assert sit[:, 0, 2].mean() < walk[:, 0, 2].mean() - 250  # the pelvis is lower when seated
    first = {a: joints[(a, 1, 0)] - joints[(a, 1, 0)][0] for a in range(2, 17)}
    for a in range(2, 17):
        for b in range(a + 1, 17):
            assert np.abs(first[a] - first[b]).max() > 1.0, (a, b)


def test_deterministic_given_seed(tmp_path, root):
    syn.generate(tmp_path / "a", frames=FRAMES, seed=3, subjects=[9])
    for kind in ("data", "camera", "joint_3d", "smpl_param"):
        name = f"annotations/Human36M_subject9_{kind}.json"
        assert (tmp_path / "a" / name).read_bytes() == (root / name).read_bytes(), kind
    syn.generate(tmp_path / "b", frames=FRAMES, seed=4, subjects=[9], actions=[2])
    name = "annotations/Human36M_subject9_joint_3d.json"
    other = json.loads((tmp_path / "b" / name).read_text())
    assert other["2"]["1"]["0"] != _load(root, 9, "joint_3d")["2"]["1"]["0"]


def test_cli(tmp_path, capsys):
    assert syn.main(["--out", str(tmp_path / "c"), "--frames", "3", "--subjects", "5",
                     "--actions", "2", "14"]) == 0
    data = _load(tmp_path / "c", 5, "data")
    assert len(data["images"]) == 2 * 2 * 3 * 4
    assert syn.main(["--out", str(tmp_path / "d"), "--frames", "0"]) == 2
    assert "frames" in capsys.readouterr().err
    assert syn.main(["--out", str(tmp_path / "d"), "--actions", "1"]) == 2


# --- Human3.6M's skeleton and cameras (issue 17) ---------------------------------------------
# The Human3.6M reference skeleton, mm: bone lengths of the skeleton offsets published with the
# motion-prediction code of Martinez et al. 2017 (written here independently of the library).
REFERENCE_MM = {(0, 1): 132.95, (0, 4): 132.95, (1, 2): 442.89, (4, 5): 442.89, (2, 3): 454.21,
                (5, 6): 454.21, (0, 7): 233.38, (7, 8): 257.08, (8, 9): 121.13, (9, 10): 115.00,
                (8, 11): 151.03, (8, 14): 151.03, (11, 12): 278.88, (14, 15): 278.88,
                (12, 13): 251.73, (15, 16): 251.73}


@pytest.fixture(scope="module")
def all_subjects(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic_all")
    syn.generate(out, frames=6, seed=0, actions=[2, 9, 10, 14])
    return out


def test_mean_bone_lengths_match_the_human36m_reference(all_subjects):
    assert sorted(REFERENCE_MM) == sorted(tuple(sorted(b)) for b in BONES)
    means = []
    for s in syn.SUBJECTS:
        X = np.stack(list(_joints(all_subjects, s).values()))
        L = np.stack([np.linalg.norm(X[:, a] - X[:, b], axis=1) for a, b in REFERENCE_MM], 1)
        # constant over every frame of the subject (tolerance 1e-3 mm: the files' rounding)
        assert np.abs(L - L.mean(axis=0)).max() < 1e-3
        means.append(L.mean(axis=0))
    means = np.array(means)
    ref = np.array(list(REFERENCE_MM.values()))
    rel = np.abs(means.mean(axis=0) / ref - 1.0)
    assert rel.max() < 0.03, dict(zip(REFERENCE_MM, rel.round(4)))
    # the subjects differ (body shapes), within human ranges (+-25 % of the reference)
    assert (means.std(axis=0) / ref > 0.01).all()
    assert (np.abs(means / ref - 1.0) < 0.25).all()


# Published Human3.6M calibration (VideoPose3D common/h36m_dataset.py), a few values written
# independently: (subject, camera) -> orientation quaternion (w, x, y, z), position (mm).
PUBLISHED_EXTRINSICS = {
    (9, 1): ((0.15540587902069092, -0.15548215806484222, -0.7532095313072205, 0.6199594736099243),
             (2044.45849609375, 4935.1171875, 1481.2275390625)),
    (1, 4): ((0.5834008455276489, -0.7853162288665771, 0.14548823237419128, -0.14749594032764435),
             (-1794.7896728515625, -3722.698974609375, 1574.8927001953125)),
    (11, 3): ((0.14943228662014008, -0.15650227665901184, 0.7681233882904053, -0.6026304364204407),
              (-1609.8153076171875, 5177.3359375, 1537.896728515625)),
}
PUBLISHED_INTRINSICS = {  # camera -> focal (px), centre (px), (width, height)
    1: ((1145.0494384765625, 1143.7811279296875), (512.54150390625, 515.4514770507812), (1000, 1002)),
    2: ((1149.6756591796875, 1147.5916748046875), (508.8486328125, 508.0649108886719), (1000, 1000)),
    3: ((1149.1407470703125, 1148.7989501953125), (519.8158569335938, 501.40264892578125), (1000, 1000)),
    4: ((1145.5113525390625, 1144.77392578125), (514.9682006835938, 501.88201904296875), (1000, 1002)),
}


def test_cameras_are_the_published_human36m_calibration(all_subjects):
    from scipy.spatial.transform import Rotation

    for (s, k), (quat, pos) in PUBLISHED_EXTRINSICS.items():
        cam = _load(all_subjects, s, "camera")[str(k)]
        R, t = np.asarray(cam["R"]), np.asarray(cam["t"])
        w, x, y, z = quat
        R_c2w = Rotation.from_quat([x, y, z, w]).as_matrix()  # scipy: scalar last
        assert np.abs(R - R_c2w.T).max() < 1e-9
        assert np.abs(-R.T @ t - np.asarray(pos)).max() < 1e-6  # camera centre, mm
    for s in syn.SUBJECTS:
        cams = _load(all_subjects, s, "camera")
        for k, (f, c, size) in PUBLISHED_INTRINSICS.items():
            assert np.allclose(cams[str(k)]["f"], f, rtol=0, atol=1e-9)
            assert np.allclose(cams[str(k)]["c"], c, rtol=0, atol=1e-9)
        data = _load(all_subjects, s, "data")
        sizes = {(i["cam_idx"], i["width"], i["height"]) for i in data["images"]}
        assert sizes == {(k, *v[2]) for k, v in PUBLISHED_INTRINSICS.items()}


def test_subjects_stand_in_the_capture_area_in_every_view(all_subjects):
    for s in syn.SUBJECTS:
        cams, data, joints = (_load(all_subjects, s, "camera"), _load(all_subjects, s, "data"),
                              _joints(all_subjects, s))
        X = np.stack(list(joints.values()))
        # pelvis within 1.5 m of the middle of the four cameras, feet on the floor
        centres = np.stack([-np.asarray(c["R"]).T @ np.asarray(c["t"]) for c in cams.values()])
        middle = centres[:, :2].mean(axis=0)
        assert (np.linalg.norm(X[:, 0, :2] - middle, axis=1) < 1500).all()
        for c in cams.values():
            Xc = world_to_camera(X, np.asarray(c["R"]), np.asarray(c["t"]))
            assert (Xc[..., 2] > 2500).all() and (Xc[..., 2] < 7500).all()


# --- the range of poses and joint limits (issue 17) ------------------------------------------
@pytest.fixture(scope="module")
def long_subject(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic_long")
    syn.generate(out, frames=150, seed=0, subjects=[9], detected_subjects=[])
    return out


def _seg_dist(a0, a1, b0, b1, n=21):
    """Closest distance between segments (sampled densely; [N, 3] each -> [N])."""
    s = np.linspace(0, 1, n)[None, :, None]
    pa, pb = a0[:, None] + s * (a1 - a0)[:, None], b0[:, None] + s * (b1 - b0)[:, None]
    return np.linalg.norm(pa[:, :, None] - pb[:, None], axis=-1).min(axis=(1, 2))


def test_joint_limits_hold_on_every_frame(long_subject):
    from scipy.spatial.transform import Rotation

    smpl = _load(long_subject, 9, "smpl_param")
    pose = np.array([f["pose"] for a in smpl.values() for b in a.values() for f in b.values()])
    rv = pose.reshape(-1, 24, 3)
    deg = np.degrees
    # knees (SMPL 4, 5) bend about their own x axis only, forwards, at most 150 degrees
    for k in (4, 5):
        assert np.abs(rv[:, k, 1:]).max() < 1e-6
        assert deg(rv[:, k, 0]).min() > -1e-4 and deg(rv[:, k, 0]).max() < 150.0 + 1e-3
    # elbows (left 18: -y, right 19: +y) bend one way only, at most 150 degrees
    assert np.abs(rv[:, [18, 19]][..., [0, 2]]).max() < 1e-6
    assert deg(-rv[:, 18, 1]).min() > -1e-4 and deg(-rv[:, 18, 1]).max() < 150.0 + 1e-3
    assert deg(rv[:, 19, 1]).min() > -1e-4 and deg(rv[:, 19, 1]).max() < 150.0 + 1e-3
    # no other joint turns further than anatomy allows (< 180 degrees in any case)
    angle = deg(np.linalg.norm(rv[:, 1:], axis=-1))
    assert angle.max() < 179.0
    # limbs stay out of the trunk: forearms and knees >= 8 cm from the pelvis-thorax axis, the
    # thighs >= 8 cm apart (the generator keeps 10 cm on the reference skeleton; subjects'
    # shapes scale it by up to ~15 %)
    X = np.stack(list(_joints(long_subject, 9).values())) / 1000.0
    trunk = (X[:, 0], X[:, 8])
    for el, wr in ((12, 13), (15, 16)):
        assert _seg_dist(X[:, el], X[:, wr], *trunk).min() > 0.08
    for knee in (2, 5):
        assert _seg_dist(X[:, knee], X[:, knee], *trunk).min() > 0.08
    assert _seg_dist(X[:, 1], X[:, 2], X[:, 4], X[:, 5]).min() > 0.08
    # and no rotation is assembled outside SO(3)
    R = Rotation.from_rotvec(rv.reshape(-1, 3)).as_matrix()
    assert np.allclose(np.linalg.det(R), 1.0)


def test_named_poses_present(long_subject):
    X = np.stack(list(_joints(long_subject, 9).values()))  # mm, world z up
    z = X[..., 2]
    pelvis, thorax, head = X[:, 0], X[:, 8], X[:, 10]
    trunk = thorax - pelvis
    tilt = np.degrees(np.arccos(np.clip(trunk[:, 2] / np.linalg.norm(trunk, axis=1), -1, 1)))
    found = {
        "lying": (tilt > 60) & (z[:, 0] < 350),
        "sitting on a chair": (z[:, 0] > 380) & (z[:, 0] < 650) & (tilt < 40)
        & (np.abs(z[:, [2, 5]] - z[:, [0]]).max(axis=1) < 150),
        "sitting on the floor": (z[:, 0] < 350) & (tilt < 45),
        "kneeling": (z[:, [2, 5]].min(axis=1) < 150) & (z[:, 0] > 300),
        "crouching": (z[:, 0] < 650) & (z[:, [3, 6]].max(axis=1) < 200)
        & (z[:, [2, 5]].min(axis=1) > 250),
        "bending forward": (tilt > 45) & (z[:, 0] > 700),
        "arms overhead": (z[:, [13, 16]].min(axis=1) > z[:, 10]),
        "one arm overhead": (z[:, [13, 16]].max(axis=1) > z[:, 10] + 100),
    }
    lr = X[:, 4] - X[:, 1]  # the person's right -> left
    found["arm across the body"] = (((X[:, 13] - pelvis) * lr).sum(1) < 0) | (
        ((X[:, 16] - pelvis) * lr).sum(1) > 0)
    counts = {k: int(v.sum()) for k, v in found.items()}
    assert all(c > 0 for c in counts.values()), counts
    # and the manifest names the key poses of every sequence
    manifest = json.loads((long_subject / "SYNTHETIC.json").read_text())
    names = {n.split("+")[0] for seq in manifest["key_poses"]["9"].values() for n in seq}
    assert {"sit_chair", "crouch", "bend_forward"} <= names
