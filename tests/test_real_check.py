"""benchmarks/real_check.py on a tiny Panoptic-format fixture made here (not real data).

References are computed independently in this file: the projection by the homogeneous pinhole
``K [R | t] X`` (no distortion) and by OpenCV's documented distortion formula written per point in
plain Python floats (with distortion); the errors of known perturbations by hand. Tolerances:
1e-9 px / 1e-9 mm (float64 throughout) unless stated.
"""
import json
import math

import numpy as np
import pytest

from benchmarks import real_check as rc
from hgn_pyg.errors import DataError
from hgn_pyg.graphs.skeleton import H36M

H = {n: i for i, n in enumerate(H36M.joint_names)}


def _look_at(eye, target=(0.0, -90.0, 0.0)):
    """World->camera rotation of a camera at ``eye`` looking at ``target`` (y down, as Panoptic)."""
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return R, -R @ np.asarray(eye, float)


def _camera(name, eye, f, dist, kind="hd"):
    R, t = _look_at(eye)
    return {"name": name, "type": kind, "resolution": [1920, 1080], "K": [[f, 0, 950.0], [0, f * 0.998, 540.0], [0, 0, 1]],
            "distCoef": list(dist), "R": R.tolist(), "t": [[v] for v in t]}


def _body(rng, shift=(0.0, 0.0, 0.0)):
    """A standing person (cm, y down, feet at y = 0) in Panoptic's coco19 order, confidence 0.8."""
    j = {"Neck": (0, -150, 0), "Nose": (0, -165, 8), "BodyCenter": (0, -95, 0),
         "L_Shoulder": (18, -145, 0), "L_Elbow": (22, -118, 3), "L_Wrist": (24, -92, 8),
         "L_Hip": (12, -95, 0), "L_Knee": (13, -52, 3), "L_Ankle": (13, -8, 0),
         "R_Shoulder": (-18, -145, 0), "R_Elbow": (-23, -118, 2), "R_Wrist": (-25, -93, 6),
         "R_Hip": (-12, -95, 0), "R_Knee": (-13, -52, 2), "R_Ankle": (-13, -8, 0),
         "L_Eye": (3, -168, 7), "L_Ear": (7, -166, 0), "R_Eye": (-3, -168, 7), "R_Ear": (-7, -166, 0)}
    a = np.array([j[n] for n in rc.COCO19], float) + np.asarray(shift) + rng.normal(0, 1.0, (19, 3))
    return np.concatenate([a, np.full((19, 1), 0.8)], 1)


@pytest.fixture
def panoptic(tmp_path):
    rng = np.random.default_rng(0)
    seq = tmp_path / "seqA"
    (seq / "hdPose3d_stage1_coco19").mkdir(parents=True)
    cams = [_camera("00_00", (0, -120, 300), 1400.0, (-0.28, 0.18, -2e-4, 6e-4, -0.05)),
            _camera("00_01", (280, -200, 60), 1600.0, (-0.22, 0.2, 1e-4, -3e-4, 0.02)),
            _camera("00_02", (-250, -60, -150), 1395.0, (0, 0, 0, 0, 0)),
            _camera("01_01", (0, -100, 250), 745.0, (-0.3, 0.1, 0, 0, 0), kind="vga")]
    (seq / "calibration_seqA.json").write_text(json.dumps({"cameras": cams}))
    bodies = [_body(rng), _body(rng, (60, 0, -30))]
    broken = _body(rng, (-50, 0, 40))
    broken[rc.COCO19.index("R_Knee"), 3] = -1  # not reconstructed: this body is not scored
    broken[rc.COCO19.index("R_Knee"), :3] = 0
    for k, frame in enumerate((bodies, [broken])):
        (seq / "hdPose3d_stage1_coco19" / f"body3DScene_{k:08d}.json").write_text(json.dumps(
            {"version": 0.7, "bodies": [{"id": i, "joints19": b.ravel().tolist()} for i, b in enumerate(frame)]}))
    # a second sequence without a calibration of its own (uses seqA's)
    seq2 = tmp_path / "seqB" / "hdPose3d_stage1_coco19"
    seq2.mkdir(parents=True)
    (seq2 / "body3DScene_00000001.json").write_text(json.dumps(
        {"bodies": [{"id": 0, "joints19": _body(rng, (10, 0, 10)).ravel().tolist()}]}))
    return tmp_path, cams, bodies


def _reference_projection(X, cam):
    """OpenCV's projection, one point at a time in Python floats."""
    K, R = np.asarray(cam["K"]), np.asarray(cam["R"])
    t = np.asarray(cam["t"]).ravel()
    k1, k2, p1, p2, k3 = cam["distCoef"]
    out = []
    for p in X:
        xc = [sum(R[i][j] * p[j] for j in range(3)) + t[i] for i in range(3)]
        x, y = xc[0] / xc[2], xc[1] / xc[2]
        r2 = x * x + y * y
        rad = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
        xd = x * rad + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * rad + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        out.append((K[0][0] * xd + K[0][2], K[1][1] * yd + K[1][2]))
    return np.array(out)


def test_projection_matches_independent_references(panoptic):
    root, cams, bodies = panoptic
    read = rc.read_calibration(root / "seqA" / "calibration_seqA.json")
    assert [c.name for c in read] == ["00_00", "00_01", "00_02"]  # the VGA camera is not an HD one
    X = bodies[0][:, :3]
    for cam, raw in zip(read, cams):
        np.testing.assert_allclose(rc.project(X, cam), _reference_projection(X, raw), atol=1e-9, rtol=0)
    # no distortion: the homogeneous pinhole K [R | t] X
    cam = read[2]
    P = cam.K @ np.concatenate([cam.R, cam.t[:, None]], 1)
    h = np.concatenate([X, np.ones((19, 1))], 1) @ P.T
    np.testing.assert_allclose(rc.project(X, cam), h[:, :2] / h[:, 2:], atol=1e-9, rtol=0)


class _PerfectLifter:
    """Returns the camera-frame truth of the view whose COCO pixels it is given (looked up from a
    table the test builds with its own projection), translated by an arbitrary offset."""

    def __init__(self, table, error=None):
        self.table, self.error = table, error

    def __call__(self, px, image_size=None, keypoint_format="h36m"):
        assert keypoint_format == "coco" and px.shape[1:] == (17, 2)
        out = []
        for v in px:
            key = tuple(np.round(v[[5, 6, 11, 12]].ravel(), 6))  # shoulders and hips
            pose = self.table[key].copy() + np.array([0.3, -0.2, 4.0])
            if self.error is not None:
                pose = pose + self.error
            out.append(pose)
        return np.stack(out).astype(np.float32)


def _truth_table(cams, bodies):
    table = {}
    for raw in cams[:3]:
        R, t = np.asarray(raw["R"]), np.asarray(raw["t"]).ravel()
        for b in bodies:
            uv = _reference_projection(b[:, :3], raw)
            xc = (b[:, :3] @ R.T + t) / 100.0
            pose = np.zeros((17, 3))
            for name in rc._SHARED_NAMES:
                pose[H[name]] = xc[rc.COCO19.index(name)]
            pose[0] = (pose[H["L_Hip"]] + pose[H["R_Hip"]]) / 2
            key = tuple(np.round(uv[[rc.COCO19.index(n) for n in ("L_Shoulder", "R_Shoulder", "L_Hip", "R_Hip")]]
                                 .ravel(), 6))
            table[key] = pose
    return table


def test_perfect_lifter_scores_zero_and_known_errors(panoptic):
    root, cams, bodies = panoptic
    seqs = rc.load_panoptic(root)
    assert [s for s, _, _ in seqs] == ["seqA", "seqB"]
    px, sizes, truth, info = rc.panoptic_views(seqs[:1], num_cameras=3)
    assert info["bodies"] == 3 and info["bodies_scored"] == 2
    assert info["views"] + info["views_outside"] == 2 * 3 and info["views"] >= 4
    assert np.all(sizes == [1920, 1080])
    table = _truth_table(cams, bodies)
    pred = rc.lift_coco_pixels(_PerfectLifter(table), px, sizes)
    res = rc.score_panoptic(pred, truth)
    assert res["MPJPE"] == pytest.approx(0.0, abs=1e-3) and res["PA-MPJPE"] == pytest.approx(0.0, abs=1e-3)
    # the lifted poses' asymmetry equals the truth's when the lift is perfect
    assert res["asymmetry"]["median_pct"] == pytest.approx(res["truth_asymmetry"]["median_pct"], abs=1e-3)
    # a wrist 12 cm off: 120 mm / 12 shared joints = 10 mm (the mid-hip does not move)
    err = np.zeros((17, 3))
    err[H["L_Wrist"], 0] = 0.12
    res = rc.score_panoptic(rc.lift_coco_pixels(_PerfectLifter(table, err), px, sizes), truth)
    assert res["MPJPE"] == pytest.approx(10.0, abs=1e-3)
    # a whole-pose scale of 1.1 about the mid-hip: PA-MPJPE 0, MPJPE = 0.1 * mean distance to the mid-hip
    idx = [H[n] for n in rc._SHARED_NAMES]
    mid = (truth[:, H["L_Hip"]] + truth[:, H["R_Hip"]]) / 2
    scaled = np.nan_to_num(truth).copy()
    scaled[:, idx] = mid[:, None] + 1.1 * (truth[:, idx] - mid[:, None])
    res = rc.score_panoptic(scaled, truth)
    expect = 0.1 * np.linalg.norm(truth[:, idx] - mid[:, None], axis=-1).mean() * 1000
    assert res["MPJPE"] == pytest.approx(expect, rel=1e-9) and res["PA-MPJPE"] == pytest.approx(0.0, abs=1e-6)


def test_cameras_limit_and_missing_joints(panoptic):
    root, cams, bodies = panoptic
    seqs = rc.load_panoptic(root)
    one = rc.panoptic_views(seqs[:1], num_cameras=1)[3]
    assert one["views"] + one["views_outside"] == 2
    # a low-confidence face joint is given to the lifter as missing (NaN), the body still scored
    name, b, c = seqs[0]
    b = b.copy()
    b[:, rc.COCO19.index("L_Ear"), 3] = 0.05
    px = rc.panoptic_views([(name, b, c)], num_cameras=3)[0]
    assert np.isnan(px[:, 3]).all() and np.isfinite(px[:, [0, 1, 2, 4]]).all()


def test_bone_asymmetry_by_hand():
    pose = np.zeros((1, 17, 3))
    pose[0, H["L_Shoulder"]] = [0.2, 0, 0]
    pose[0, H["L_Elbow"]] = [0.2, 0.30, 0]
    pose[0, H["R_Shoulder"]] = [-0.2, 0, 0]
    pose[0, H["R_Elbow"]] = [-0.2, 0.25, 0]
    a = rc.bone_asymmetry(pose)
    assert a["upper arm"][0] == pytest.approx(0.05 / 0.275, rel=1e-12)
    valid = np.ones((1, 17), bool)
    valid[0, H["R_Elbow"]] = False
    assert math.isnan(rc.bone_asymmetry(pose, valid)["upper arm"][0])
    s = rc.asymmetry_summary({"a": np.array([0.1, np.nan, 0.3]), "b": np.array([0.2])})
    assert s["median_pct"] == pytest.approx(20.0) and s["num_pairs"] == 3


def test_bad_files_are_named(tmp_path):
    (tmp_path / "s" / "hdPose3d_stage1_coco19").mkdir(parents=True)
    f = tmp_path / "s" / "hdPose3d_stage1_coco19" / "body3DScene_1.json"
    f.write_text(json.dumps({"bodies": [{"joints19": [1, 2, 3]}]}))
    with pytest.raises(DataError, match="body3DScene_1.json.*76 numbers"):
        rc.read_bodies(f)
    with pytest.raises(DataError, match="no calibration"):
        rc.load_panoptic(tmp_path)
    with pytest.raises(DataError, match="no <sequence>"):
        rc.load_panoptic(tmp_path / "s")


def _checkpoint(tmp_path):
    """A tiny self-describing checkpoint with random weights (as tests/test_lift.py builds one)."""
    import torch

    from hgn_pyg.graphs import mesh_hierarchy
    from hgn_pyg.models.checkpoint import CHECKPOINT_VERSION, inference_record
    from hgn_pyg.models import build_hgn
    from test_models_hgn import icosphere, randomize_

    section = {"hidden_channels": 16, "num_layers": 4, "mesh_levels": [5, 4], "fusion": "official"}
    verts, faces = icosphere(3)
    h = mesh_hierarchy(faces, len(verts), levels=6)
    model = randomize_(build_hgn(section, h), seed=3).eval()
    path = tmp_path / "model.pt"
    torch.save({"format": "hgn_pyg", "version": CHECKPOINT_VERSION, "model": model.state_dict(),
                "config": {"MODEL": section}, **inference_record(section, h, faces=faces)}, path)
    return path


def test_cli_end_to_end(panoptic, tmp_path, capsys):
    """The whole script on a random-weight checkpoint (figures finite, JSON written, exit 0); a missing
    checkpoint is one line and exit status 2."""
    root, _, _ = panoptic
    ck = _checkpoint(tmp_path)
    coco = tmp_path / "coco.json"
    kp = np.array([[450, 200], [455, 195], [445, 195], [462, 198], [438, 198], [475, 240], [425, 240],
                   [485, 290], [415, 292], [490, 335], [410, 330], [465, 340], [435, 340], [467, 420],
                   [433, 425], [468, 500], [432, 505]], float)
    coco.write_text(json.dumps({"images": [{"id": 1, "width": 900, "height": 600}],
                                "annotations": [{"image_id": 1, "keypoints": np.concatenate(
                                    [kp, np.full((17, 1), 2.0)], 1).ravel().tolist()}]}))
    out = tmp_path / "res.json"
    assert rc.main(["--checkpoint", str(ck), "--panoptic", str(root), "--coco", str(coco), "--cameras", "3",
                    "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert np.isfinite(res["panoptic"]["MPJPE"]) and res["coco"]["num_people"] == 1
    assert res["coco"]["num_pairs"] == 4
    assert rc.main(["--checkpoint", str(tmp_path / "nope.pt"), "--coco", str(coco)]) == 2
    assert "nope.pt" in capsys.readouterr().err


# ----------------------------------------------------------------------------- Human3.6M frames
def _quat_matrix(q):
    """Rotation of a unit quaternion (w, x, y, z), written out by hand."""
    w, x, y, z = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def _h36m_view(world_m, cam):
    """Camera-frame joints (m) and pixels of world joints through a VideoPose3D-layout camera
    (orientation = camera -> world, translation = camera position, m), pinhole."""
    xc = (world_m - cam["translation"]) @ _quat_matrix(cam["orientation"])
    return xc, xc[:, :2] / xc[:, 2:] * cam["focal_length"] + cam["center"]


@pytest.fixture
def h36m_file(tmp_path):
    """Two made-up poses (not Human3.6M data) of S9 and S11 seen by cameras 55011271 and 60457274,
    written as MMPose's COCO-style Human3.6M file; the second pose's own pixels 2 px off at one joint."""
    from hgn_pyg.data.h36m_calibration import h36m_cameras

    rng = np.random.default_rng(5)
    template = np.array([[0, 0, .9], [-.13, 0, .9], [-.13, .02, .48], [-.13, .05, .05], [.13, 0, .9],
                         [.13, .02, .48], [.13, .05, .05], [0, 0, 1.13], [0, 0, 1.39], [0, -.08, 1.5],
                         [0, 0, 1.62], [.15, 0, 1.36], [.2, 0, 1.08], [.22, -.1, .85], [-.15, 0, 1.36],
                         [-.2, 0, 1.08], [-.22, -.1, .85]])
    cams = h36m_cameras()
    poses, images, anns, truth = [], [], [], {}
    for i, (subject, slot, serial) in enumerate(((9, 1, "55011271"), (11, 3, "60457274"))):
        world = template + rng.normal(0, 0.03, template.shape) + np.array([0.4 * i, -0.3, 0])
        for k, cam in enumerate(cams[f"S{subject}"]):
            xc, uv = _h36m_view(world, cam)
            if k == slot:
                own = uv.copy()
                if i == 1:
                    own[13, 1] += 2.0
                uv = own
            truth[tuple(np.round(uv, 3).ravel())] = xc
        images.append({"id": i + 1, "file_name": f"S{subject}_Walking_1.{serial}_00{i}.jpg",
                       "width": 1000, "height": 1000})
        anns.append({"id": i + 1, "image_id": i + 1,
                     "keypoints": np.concatenate([own, np.ones((17, 1))], 1).ravel().tolist(),
                     "keypoints_3d": np.concatenate([world, np.ones((17, 1))], 1).ravel().tolist()})
    path = tmp_path / "h36m_coco.json"
    path.write_text(json.dumps({"images": images, "annotations": anns}))
    return path, truth


class _PerfectH36MLifter:
    def __init__(self, table, error=None):
        self.table, self.error = table, error

    def __call__(self, px, image_size=None, keypoint_format="coco"):
        assert keypoint_format == "h36m" and px.shape[1:] == (17, 2)
        out = [self.table[tuple(np.round(v, 3).ravel())] + np.array([0.1, 0.2, 5.0]) for v in px]
        return np.stack(out) + (0 if self.error is None else self.error)


def test_h36m_frames_perfect_lifter_and_known_errors(h36m_file):
    path, table = h36m_file
    res = rc.check_h36m(_PerfectH36MLifter(table), path)
    assert res["poses"] == 2 and res["views"] == 8
    for part in ("own_view", "all_cameras"):
        assert res[part]["MPJPE"] == pytest.approx(0.0, abs=1e-6)
        assert res[part]["PA-MPJPE"] == pytest.approx(0.0, abs=1e-6)
    assert res["reprojection_px_max"] == pytest.approx(2.0, abs=1e-6)
    err = np.zeros((17, 3))
    err[H["R_Wrist"], 2] = 0.17  # 170 mm at one of 17 joints: 10 mm MPJPE
    res = rc.check_h36m(_PerfectH36MLifter(table, err), path)
    assert res["all_cameras"]["MPJPE"] == pytest.approx(10.0, abs=1e-6)


@pytest.mark.parametrize("edit, match", [
    (lambda d: d["images"][0].update(file_name="walking.jpg"), r"annotations\[0\]: image file name"),
    (lambda d: d["images"][1].update(file_name="S2_Walking.60457274_001.jpg"), r"annotations\[1\].*S2"),
    (lambda d: d["images"][0].update(file_name="S9_Walking.12345678_001.jpg"), r"camera 12345678"),
    (lambda d: d["annotations"][1].update(keypoints_3d=[1, 2, 3]), r"annotations\[1\]: needs 'keypoints'"),
    (lambda d: d["annotations"][0].update(image_id=7), r"annotations\[0\]: needs an 'image_id'"),
    (lambda d: d.pop("images"), "COCO-style"),
    (lambda d: d["images"][0].update(id=[1]), r"images\[0\]: needs an 'id'"),
    (lambda d: d["annotations"][0].update(image_id={"a": 1}), r"annotations\[0\]: needs an 'image_id'"),
])
def test_h36m_bad_files_are_named(h36m_file, edit, match):
    path, _ = h36m_file
    d = json.loads(path.read_text())
    edit(d)
    path.write_text(json.dumps(d))
    with pytest.raises(DataError, match=match):
        rc.read_h36m_frames(path)


def test_cli_h36m_and_flip_test(h36m_file, tmp_path):
    """``--h36m`` on a random-weight checkpoint: finite figures in the JSON; ``--flip-test`` is
    recorded and changes the lift."""
    path, _ = h36m_file
    ck = _checkpoint(tmp_path)
    runs = {}
    for flag in ("--no-flip-test", "--flip-test"):
        out = tmp_path / f"{flag}.json"
        assert rc.main(["--checkpoint", str(ck), "--h36m", str(path), flag, "--json", str(out)]) == 0
        runs[flag] = json.loads(out.read_text())
    assert runs["--flip-test"]["flip_test"] is True and runs["--no-flip-test"]["flip_test"] is False
    a, b = runs["--no-flip-test"]["h36m"], runs["--flip-test"]["h36m"]
    assert np.isfinite(a["all_cameras"]["MPJPE"]) and a["views"] == 8
    assert a["all_cameras"]["MPJPE"] != b["all_cameras"]["MPJPE"]
