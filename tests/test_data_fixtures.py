"""Small generated fixtures of both Human3.6M layouts, shared by the tests/test_data_*.py files.

Nothing here is a test; the module is importable as ``test_data_fixtures`` (tests/ is on
sys.path under pytest). Everything is computed with plain NumPy, independently of hgn_pyg.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import torch

SUBJECTS = (1, 9)
ACTION_IDS = (2, 5, 10, 13)          # Directions, Greeting, SittingDown, Waiting
SUBACTIONS = (1, 2)
FRAMES = 12                           # frame_idx 0..11
WIDTH, HEIGHT = 1000, 1002


def rodrigues(r: np.ndarray) -> np.ndarray:
    """Axis-angle [..., 3] -> rotation matrix [..., 3, 3] (independent implementation)."""
    r = np.asarray(r, dtype=np.float64)
    theta = np.linalg.norm(r, axis=-1, keepdims=True)
    k = r / np.maximum(theta, 1e-12)
    K = np.zeros(r.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2] = -k[..., 2], k[..., 1]
    K[..., 1, 0], K[..., 1, 2] = k[..., 2], -k[..., 0]
    K[..., 2, 0], K[..., 2, 1] = -k[..., 1], k[..., 0]
    th = theta[..., None]
    return np.eye(3) + np.sin(th) * K + (1 - np.cos(th)) * (K @ K)


def look_at(position_mm: np.ndarray, target_mm: np.ndarray) -> tuple:
    """World->camera (R, t mm) of a camera at ``position`` looking at ``target`` (world z up)."""
    z = target_mm - position_mm
    z = z / np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return R, -R @ position_mm


def cameras_for(subject: int) -> dict:
    cams = {}
    for k in range(4):
        ang = np.deg2rad(45 + 90 * k + 3 * subject)
        pos = np.array([4500 * np.cos(ang), 4500 * np.sin(ang), 1500.0 + 20 * k])
        R, t = look_at(pos, np.array([0.0, 0.0, 900.0]))
        cams[str(k + 1)] = {"R": R.tolist(), "t": t.tolist(),
                            "f": [1145.0 + k, 1143.0 - k], "c": [512.0 + k, 505.0 - k]}
    return cams


def write_h36m(root, subjects=SUBJECTS, frames=FRAMES, seed=0, with_smpl=True):
    """Write annotations/Human36M_subject{S}_{data,camera,joint_3d,smpl_param}.json under root.

    Per subject: actions ACTION_IDS × sub-actions 1, 2 × frames × 4 cameras. Frame 3 of
    (action 2, sub 1) has an empty box; frame 10 of (action 2, sub 2) has no SMPL entry;
    (action 5, sub 1) frame 0 has |β| > 3.
    """
    rng = np.random.default_rng(seed)
    ann_dir = Path(root) / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    for s in subjects:
        images, anns, joints, smpl = [], [], {}, {}
        img_id = 0
        for a in ACTION_IDS:
            joints[str(a)], smpl[str(a)] = {}, {}
            for sa in SUBACTIONS:
                joints[str(a)][str(sa)], smpl[str(a)][str(sa)] = {}, {}
                for f in range(frames):
                    pelvis = np.array([rng.uniform(-800, 800), rng.uniform(-800, 800), 950.0])
                    j = pelvis + rng.normal(0, 350, size=(17, 3))
                    j[0] = pelvis
                    joints[str(a)][str(sa)][str(f)] = j.tolist()
                    if not (a == 2 and sa == 2 and f == 10):
                        shape = rng.uniform(-1, 1, size=10)
                        if a == 5 and sa == 1 and f == 0:
                            shape[3] = 4.0
                        pose = rng.normal(0, 0.2, size=72)
                        pose[:3] = rng.normal(0, 1.0, size=3)
                        trans = rng.uniform(-1, 1, size=3)
                        smpl[str(a)][str(sa)][str(f)] = {"pose": pose.tolist(),
                                                         "shape": shape.tolist(),
                                                         "trans": trans.tolist()}
                    for cam in range(1, 5):
                        images.append({"id": img_id, "file_name": f"s_{s}_{a}_{sa}_{cam}_{f}.jpg",
                                       "width": WIDTH, "height": HEIGHT, "subject": s,
                                       "action_name": "", "action_idx": a, "subaction_idx": sa,
                                       "frame_idx": f, "cam_idx": cam})
                        empty = a == 2 and sa == 1 and f == 3
                        anns.append({"id": img_id, "image_id": img_id,
                                     "bbox": [0, 0, 0, 0] if empty else [300.0, 200.0, 400.0, 600.0]})
                        img_id += 1
        (ann_dir / f"Human36M_subject{s}_data.json").write_text(
            json.dumps({"images": images, "annotations": anns}))
        (ann_dir / f"Human36M_subject{s}_camera.json").write_text(json.dumps(cameras_for(s)))
        (ann_dir / f"Human36M_subject{s}_joint_3d.json").write_text(json.dumps(joints))
        if with_smpl:
            (ann_dir / f"Human36M_subject{s}_smpl_param.json").write_text(json.dumps(smpl))
    return Path(root)


def expected_samples(root, subjects, subsample, skip, require_smpl=True):
    """Independent NumPy computation of (input_2d, joints_3d, action, subject, frame_info)."""
    ann_dir = Path(root) / "annotations"
    rows = []
    for s in subjects:
        data = json.loads((ann_dir / f"Human36M_subject{s}_data.json").read_text())
        cams = json.loads((ann_dir / f"Human36M_subject{s}_camera.json").read_text())
        j3d = json.loads((ann_dir / f"Human36M_subject{s}_joint_3d.json").read_text())
        sp = ann_dir / f"Human36M_subject{s}_smpl_param.json"
        smpl = json.loads(sp.read_text()) if require_smpl else None
        imgs = {im["id"]: im for im in data["images"]}
        for ann in data["annotations"]:
            im = imgs[ann["image_id"]]
            a, sa, f, c = im["action_idx"], im["subaction_idx"], im["frame_idx"], im["cam_idx"]
            if f % subsample or (s, a, sa) in skip:
                continue
            if ann["bbox"][2] <= 0 or ann["bbox"][3] <= 0:
                continue
            if smpl is not None and str(f) not in smpl[str(a)][str(sa)]:
                continue
            cam = cams[str(c)]
            R, t = np.array(cam["R"]), np.array(cam["t"])
            X = np.array(j3d[str(a)][str(sa)][str(f)]) @ R.T + t
            u = X[:, 0] / X[:, 2] * cam["f"][0] + cam["c"][0]
            v = X[:, 1] / X[:, 2] * cam["f"][1] + cam["c"][1]
            w, h = im["width"], im["height"]
            inp = np.stack([u / w * 2 - 1, v / w * 2 - h / w], axis=1)
            rows.append((inp, (X - X[0]) / 1000.0, a - 2, s, (s, a, sa, f, c)))
    return rows


# ---------------------------------------------------------------------------------------------
# a small stand-in body model with SMPL's structure (root rotation about the root joint J0)
# ---------------------------------------------------------------------------------------------
class TinyBody:
    """v(θ, β) = Rot(θ_root)·(T(β) + D·θ_body − J0(β)) + J0(β) (+ trans), joints24[:, 0] = J0."""

    def __init__(self, num_vertices: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.num_vertices = num_vertices
        self.template = rng.normal(0, 0.3, size=(num_vertices, 3))
        self.template[:, 1] += 0.2
        self.shapedirs = rng.normal(0, 0.01, size=(num_vertices, 3, 10))
        self.posedirs = rng.normal(0, 0.02, size=(num_vertices, 3, 69))
        reg = rng.uniform(size=(24, num_vertices))
        self.regressor = reg / reg.sum(1, keepdims=True)

    def _forward_np(self, pose, shape, trans=None):
        pose, shape = np.asarray(pose, np.float64), np.asarray(shape, np.float64)
        T = self.template[None] + np.einsum("vdk,nk->nvd", self.shapedirs, shape)
        J = np.einsum("jv,nvd->njd", self.regressor, T)
        J0 = J[:, :1]
        L = T + np.einsum("vdk,nk->nvd", self.posedirs, pose[:, 3:])
        Rr = rodrigues(pose[:, :3])
        verts = np.einsum("nij,nvj->nvi", Rr, L - J0) + J0
        joints = np.einsum("nij,nvj->nvi", Rr, J - J0) + J0
        if trans is not None:
            verts = verts + np.asarray(trans)[:, None]
            joints = joints + np.asarray(trans)[:, None]
        return verts, joints

    def forward(self, pose, shape, trans=None):
        v, j = self._forward_np(torch.as_tensor(pose).double().numpy(),
                                torch.as_tensor(shape).double().numpy(),
                                None if trans is None else torch.as_tensor(trans).double().numpy())
        return torch.from_numpy(v).float(), torch.from_numpy(j).float()


def grid_mesh(n: int = 8):
    """Faces of an n×n vertex grid (2 triangles per cell)."""
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            faces += [(a, b, c), (b, d, c)]
    return np.array(faces, dtype=np.int64), n * n


# ---------------------------------------------------------------------------------------------
# VideoPose3D layout
# ---------------------------------------------------------------------------------------------
VP_ACTIONS = ("Directions", "Directions 1", "Greeting 1", "TakingPhoto", "WalkDog 1")


def write_videopose3d(root, subjects=("S1", "S9"), frames=23, seed=0):
    """data_3d_h36m.npz (32 joints, world metres) and data_2d_h36m_gt.npz (17 joints, px),
    the 2D computed by an independent pinhole projection with the given cameras."""
    from hgn_pyg.data.h36m_calibration import h36m_cameras

    rng = np.random.default_rng(seed)
    cams = h36m_cameras()
    pos3d, pos2d = {}, {}
    keep = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]
    for s in subjects:
        pos3d[s], pos2d[s] = {}, {}
        for name in VP_ACTIONS:
            pelvis = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), 0.9])
            X = pelvis + rng.normal(0, 0.35, size=(frames, 32, 3))
            X[:, 0] = pelvis
            pos3d[s][name] = X.astype(np.float32)
            views = []
            for cam in cams[s]:
                q = cam["orientation"] / np.linalg.norm(cam["orientation"])
                Rq = _quat_matrix(q)
                Xc = (X[:, keep].astype(np.float64) - cam["translation"]) @ Rq
                uv = Xc[..., :2] / Xc[..., 2:] * cam["focal_length"] + cam["center"]
                views.append(uv.astype(np.float32))
            pos2d[s][name] = views
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(root / "data_3d_h36m.npz", positions_3d=pos3d)
    meta = {"layout_name": "h36m", "num_joints": 17,
            "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    np.savez_compressed(root / "data_2d_h36m_gt.npz", positions_2d=pos2d, metadata=meta)
    return root / "data_3d_h36m.npz", root / "data_2d_h36m_gt.npz", pos3d, pos2d


def _quat_matrix(q):
    """Independent quaternion (w, x, y, z) -> matrix via the sandwich product on basis vectors."""
    w, v = q[0], np.asarray(q[1:])

    def rot(p):
        return p + 2 * w * np.cross(v, p) + 2 * np.cross(v, np.cross(v, p))

    return np.stack([rot(e) for e in np.eye(3)], axis=1)


def write_pickle(path, obj):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)
