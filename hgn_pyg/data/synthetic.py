"""A synthetic Human3.6M-format data set made with the open body model (docs/published_model.md §5 layout).

``python -m hgn_pyg.data.synthetic --out DIR [--frames N] [--seed S] [--subjects 1 5 ...]``
writes, for each subject S (1, 5, 6, 7, 8, 9, 11 by default)::

    DIR/annotations/Human36M_subject{S}_data.json       COCO images + annotations (bbox)
    DIR/annotations/Human36M_subject{S}_camera.json     {"1": {R, t (mm), f, c}, ...}
    DIR/annotations/Human36M_subject{S}_joint_3d.json   {action: {subaction: {frame: 17x3 mm}}}
    DIR/annotations/Human36M_subject{S}_smpl_param.json {action: {subaction: {frame: {pose,
                                                          shape, trans}}}}
    DIR/annotations/Human36M_subject{S}_joint_3d_coco.json  the COCO-17 keypoints, same layout
    DIR/data_2d_h36m_detected.npz                       a "detected-like" 2D track of the test
                                                        subjects (VideoPose3D's 2D layout)
    DIR/SYNTHETIC.json                                  manifest (seed, frames, versions)

Each subject has its own body shape (10 betas, :func:`subject_betas`): the seven subjects vary
around the open body's template, which has Human3.6M's reference skeleton
(:data:`hgn_pyg.data.open_body.H36M_REFERENCE_BONES_MM`). The cameras are the published
Human3.6M calibration of each subject (:mod:`hgn_pyg.data.h36m_calibration`), and the subjects
move in the floor area all four cameras see (:data:`CAPTURE_CENTRE`, :data:`CAPTURE_HALF`;
a sequence that would leave an image is pulled towards the centre). The 15 Human3.6M actions
(action_idx 2..16, 2 sub-actions each) are sequences of named key poses and random poses within
joint limits at 50 fps (:mod:`hgn_pyg.data.motions`); the manifest lists the named key poses of
every sequence.
The world frame is z-up in millimetres like Human3.6M; the SMPL root rotation stored in ``pose``
is in that world frame (it includes the y-up -> z-up turn), ``trans`` is in metres, and
``world_mesh_m = SMPL(pose, shape) + trans``; 3D joints are ``1000 · J_h36m · world_mesh_m``.
The lowest point of the mesh touches the floor (z = 0) in every frame.

The motions keep the rotations of SMPL joints 6, 9, 13, 14, 15 (spine2, spine3, collars, head) at
zero; with the open body model's regressor this makes every Human3.6M bone rigid, so each
subject's bone lengths are constant over all of its frames (as in real motion capture).

COCO-17 keypoints (:func:`coco_regressor`): shoulders, elbows, wrists, hips, knees and ankles are
the body model's own joints (rows of its SMPL joint regressor, as a detector aims at joint
centres); nose, eyes and ears are vertices of the head's surface (:func:`face_vertices`). The
Human3.6M pelvis, spine, thorax, neck/nose and head-top points are *not* among them: a COCO input
has to infer those.

The detected-like 2D track (:func:`detected_track`): for every sequence and camera of the
``detected_subjects`` (default: the test subjects 9 and 11 when generated), the pixel projections
of the Human3.6M joints corrupted by :class:`hgn_pyg.data.augment.DetectorNoise` (default
settings) with a generator seeded by ``(seed, subject, action, sub-action, camera)``: the same
track for every run. ``positions_2d["S9"]["Directions 1"][cam_idx - 1]`` is ``[T, 17, 3]``
float32 (x, y pixels; score), NaN coordinates for missing joints; read it with
``DATASET.use_gt_input: false`` and ``DATASET.npz_2d: data_2d_h36m_detected.npz``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Union

import numpy as np

from ..errors import DataError, HGNError
from ..io import atomic_write_bytes, atomic_write_text
from .body_model import STATIC_JOINTS, PointSkinning, default_body_model_path, load_body_model
from .camera import project, world_to_camera
from .h36m_calibration import IMAGE_SIZES, pose2mesh_camera
from .motions import FPS, action_motion, pose_rotations, root_rotation
from .pose_dataset import ACTIONS

logger = logging.getLogger(__name__)

__all__ = ["SYNTHETIC_VERSION", "SUBJECTS", "ACTION_NAMES", "DEFAULT_FRAMES", "FPS",
           "DETECTED_FILE", "DETECTED_SUBJECTS", "COCO_FROM_SMPL", "FACE_POINTS", "generate",
           "make_cameras", "subject_betas", "action_motion", "coco_regressor", "face_vertices",
           "detected_track", "dataset_identity", "manifest_identity", "main", "CAPTURE_CENTRE",
           "CAPTURE_HALF"]

SYNTHETIC_VERSION = "hgn-synthetic-2.1"  # 2.x: Human3.6M skeleton, cameras, capture area, key-pose motions
SUBJECTS = (1, 5, 6, 7, 8, 9, 11)
#: action_idx (2..16) -> Human3.6M action name (:data:`hgn_pyg.data.pose_dataset.ACTIONS`).
ACTION_NAMES = {k + 2: name for k, name in enumerate(ACTIONS)}
SUBACTIONS = (1, 2)
#: 200 frames per sequence: every 5th frame of subjects 1, 5, 6, 7, 8 x 4 cameras = 24,000
#: training samples; every 50th of subjects 9, 11 = 960 test samples.
DEFAULT_FRAMES = 200
#: Centre (x, y) of the capture area in the Human3.6M world (m): the middle of the floor region
#: all four cameras of every calibrated subject see a standing person in.
CAPTURE_CENTRE = (0.25, 0.55)
#: Half extents (x, y) of the capture area (m) the motions' paths are kept in.
CAPTURE_HALF = (0.7, 0.9)
#: The detected-like 2D track, in VideoPose3D's 2D layout, in the data root.
DETECTED_FILE = "data_2d_h36m_detected.npz"
#: Subjects that get a detected-like track by default (the protocol-2 test subjects).
DETECTED_SUBJECTS = (9, 11)
#: COCO-17 keypoint -> SMPL joint of the body model (-1: a face point, :data:`FACE_POINTS`).
COCO_FROM_SMPL = (-1, -1, -1, -1, -1, 16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8)
#: Face points (COCO index: offset in metres from the head joint of the rest template, SMPL's
#: y-up frame facing +z with the person's left at +x); the nearest head vertex is used.
FACE_POINTS = {0: (0.0, 0.05, 0.20), 1: (0.035, 0.085, 0.20), 2: (-0.035, 0.085, 0.20),
               3: (0.20, 0.06, 0.0), 4: (-0.20, 0.06, 0.0)}
_HEAD_JOINTS = (12, 15)  # SMPL neck and head: the vertices they carry form the head


# --------------------------------------------------------------------------------------------
# subjects and cameras
# --------------------------------------------------------------------------------------------
def _raw_betas(subject: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, subject, 1000]).normal(0.0, 0.9, 10)


def subject_betas(subject: int, seed: int = 0) -> np.ndarray:
    """The 10 shape coefficients of a subject (|beta| <= 2.2): a normal draw (std 0.9) minus
    the mean draw of the seven Human3.6M subjects :data:`SUBJECTS`, so that those subjects
    vary around the reference skeleton (the open body's template, ``beta = 0``)."""
    mean = np.mean([_raw_betas(s, seed) for s in SUBJECTS], axis=0)
    return np.clip(_raw_betas(subject, seed) - mean, -2.2, 2.2)


def make_cameras(subject: int, seed: int = 0) -> Dict[str, Dict[str, list]]:
    """The four Human3.6M cameras of ``subject`` (the published calibration,
    :mod:`hgn_pyg.data.h36m_calibration`; uncalibrated subject numbers borrow one):
    ``{"1": {"R": 3x3, "t": [3] mm, "f": [2], "c": [2]}, ...}``. ``seed`` is not used (kept
    for the signature)."""
    del seed
    return {str(k): pose2mesh_camera(subject, k) for k in sorted(IMAGE_SIZES)}


def _overflow(joints_mm: np.ndarray, cams, margin: float = 8.0) -> float:
    """Largest distance (px) by which a joint falls outside an image (less ``margin``), over all
    frames and cameras; ``inf`` when a joint is less than 1.5 m in front of a camera."""
    worst = 0.0
    for cam, (R, t, f, c) in cams.items():
        w, h = IMAGE_SIZES[int(cam)]
        Xc = world_to_camera(joints_mm, R, t)
        if (Xc[..., 2] < 1500.0).any():
            return float("inf")
        uv = project(Xc, f, c)
        over = np.maximum(np.maximum(margin - uv, uv - (np.array([w, h]) - 1 - margin)), 0.0)
        worst = max(worst, float(over.max()))
    return worst


def _fit_in_view(joints_mm: np.ndarray, cams) -> np.ndarray:
    """A horizontal shift (mm, ``[3]``) of one sequence that keeps its joints inside every
    camera's image: the path is pulled towards :data:`CAPTURE_CENTRE` (factors 1 .. 0) until it
    fits; if it never does (e.g. hands far overhead close to a camera), the least overflow."""
    centre = np.array([CAPTURE_CENTRE[0], CAPTURE_CENTRE[1], 0.0]) * 1000.0
    pelvis = joints_mm[:, 0].copy()
    pelvis[:, 2] = 0.0
    best, best_over = np.zeros(3), float("inf")
    for k in np.linspace(1.0, 0.0, 6):
        shift = (k - 1.0) * (pelvis.mean(axis=0) - centre)
        over = _overflow(joints_mm + shift, cams)
        if over == 0.0:
            return shift
        if over < best_over:
            best, best_over = shift, over
    return best


# --------------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------------
def face_vertices(model) -> np.ndarray:
    """Vertex indices of the COCO face points (nose, left/right eye, left/right ear), ``[5]``:
    the head vertices (skinned only to SMPL's neck and head joints) nearest to the rest
    template's head joint plus :data:`FACE_POINTS`."""
    smpl = model.smpl
    v = smpl.v_template.detach().cpu().double().numpy()
    head = (model.joint_regressor @ v)[15]
    W = np.asarray(model.skinning_weights)
    cand = np.flatnonzero(W[:, list(_HEAD_JOINTS)].sum(axis=1) >= 0.999)
    if len(cand) < len(FACE_POINTS):
        raise DataError("body model: too few head vertices (skinned to the neck/head joints only) "
                        "to place the COCO face points")
    out = []
    for k in sorted(FACE_POINTS):
        q = head + np.asarray(FACE_POINTS[k])
        out.append(int(cand[np.argmin(np.linalg.norm(v[cand] - q, axis=1))]))
    return np.asarray(out, dtype=np.int64)


def coco_regressor(model) -> np.ndarray:
    """``[17, V]`` vertex weights of the COCO-17 keypoints (COCO order): the SMPL joint-regressor
    rows of :data:`COCO_FROM_SMPL` and one-hot rows at :func:`face_vertices`."""
    J = np.asarray(model.joint_regressor, dtype=np.float64)
    reg = np.zeros((17, J.shape[1]))
    face = iter(face_vertices(model))
    for k, j in enumerate(COCO_FROM_SMPL):
        if j >= 0:
            reg[k] = J[j]
        else:
            reg[k, next(face)] = 1.0
    return reg


def detected_track(uv: np.ndarray, seed: int, subject: int, action: int, subaction: int,
                   camera: int) -> np.ndarray:
    """A detected-like version ``[T, 17, 3]`` float32 (x, y, score; NaN where missing) of the
    pixel projections ``uv [T, 17, 2]`` of the Human3.6M joints, seeded by the sequence."""
    import torch

    from .augment import DetectorNoise

    key = np.random.SeedSequence([int(seed), int(subject), int(action), int(subaction),
                                  int(camera), 4000]).generate_state(2, dtype=np.uint32)
    gen = torch.Generator().manual_seed(int(key[0]) << 32 | int(key[1]))
    xy, score = DetectorNoise()(torch.as_tensor(uv, dtype=torch.float64), generator=gen)
    return torch.cat([xy, score.unsqueeze(-1)], dim=-1).float().numpy()


def _rotvec(R: np.ndarray) -> np.ndarray:
    """Axis-angle of rotation matrices ``[..., 3, 3]`` (stable near 0 and pi)."""
    from scipy.spatial.transform import Rotation

    shp = R.shape[:-2]
    return Rotation.from_matrix(R.reshape(-1, 3, 3)).as_rotvec().reshape(shp + (3,))


def _json_dump(obj, path: Path) -> None:
    atomic_write_text(path, json.dumps(obj, separators=(",", ":")))  # the C encoder: one string


def _generate_subject(model, subject: int, frames: int, seed: int, actions: Sequence[int],
                      coco: np.ndarray, detected: bool):
    betas = subject_betas(subject, seed)
    body = PointSkinning(model, betas, {"h36m": model.h36m_regressor, "coco": coco})
    cams = make_cameras(subject, seed)
    cam_np = {k: (np.array(c["R"]), np.array(c["t"]), np.array(c["f"]), np.array(c["c"]))
              for k, c in cams.items()}
    joint_3d: Dict[str, Dict[str, Dict[str, list]]] = {}
    joint_3d_coco: Dict[str, Dict[str, Dict[str, list]]] = {}
    track: Dict[str, list] = {}
    smpl_param: Dict[str, Dict[str, Dict[str, dict]]] = {}
    images, annotations = [], []
    next_id = (SUBJECTS.index(subject) if subject in SUBJECTS else subject) * 10_000_000
    J0 = body.joints[0]
    key_poses: Dict[str, list] = {}
    shape_list = np.round(betas, 6).tolist()
    for action in actions:
        joint_3d[str(action)] = {}
        joint_3d_coco[str(action)] = {}
        smpl_param[str(action)] = {}
        for sub in SUBACTIONS:
            poses, yaw, path, names = action_motion(action, sub, subject, frames, seed,
                                                    half=CAPTURE_HALF)
            key_poses[f"{action} {sub}"] = sorted(set(names))
            path = path + np.asarray(CAPTURE_CENTRE)
            rot = pose_rotations(poses)
            rot[:, 0] = root_rotation(poses, yaw)
            A = body.transforms(rot)
            h, zmin = body.points(rot, A=A), body.lowest(rot, A=A)
            # the pelvis (rotation centre J0) goes to the path, the lowest point to the floor
            trans = np.zeros((frames, 3))
            trans[:, :2] = path - J0[:2]
            trans[:, 2] = -zmin
            joints_mm = (h + trans[:, None, :]) * 1000.0
            trans += _fit_in_view(joints_mm, cam_np) / 1000.0
            pose = _rotvec(rot).reshape(frames, 72)
            pose = np.round(pose, 7)
            trans = np.round(trans, 7)
            # joints from the rounded parameters (what a reader of the files will reproduce)
            A = body.transforms(_matrices_from_rotvec(pose))
            joints_mm = np.round((body.points(None, A=A) + trans[:, None, :]) * 1000.0, 4)
            coco_mm = np.round((body.points(None, "coco", A=A) + trans[:, None, :]) * 1000.0, 4)
            jd, sd, cd = {}, {}, {}
            for fi in range(frames):
                jd[str(fi)] = joints_mm[fi].tolist()
                cd[str(fi)] = coco_mm[fi].tolist()
                sd[str(fi)] = {"pose": pose[fi].tolist(), "shape": shape_list,
                               "trans": trans[fi].tolist()}
            joint_3d[str(action)][str(sub)] = jd
            joint_3d_coco[str(action)][str(sub)] = cd
            views = []
            smpl_param[str(action)][str(sub)] = sd
            for cam in sorted(cam_np, key=int):
                R, t, f, c = cam_np[cam]
                uv = project(world_to_camera(joints_mm, R, t), f, c)  # [T,17,2]
                if detected:
                    views.append(detected_track(uv, seed, subject, action, sub, int(cam)))
                w, hgt = IMAGE_SIZES[int(cam)]
                lo, hi = uv.min(axis=1), uv.max(axis=1)
                size = hi - lo
                lo = np.clip(lo - 0.15 * size - 10, 0, [w - 1, hgt - 1])
                hi = np.clip(hi + 0.15 * size + 10, 0, [w - 1, hgt - 1])
                folder = f"s_{subject:02d}_act_{action:02d}_subact_{sub:02d}_ca_{int(cam):02d}"
                for fi in range(frames):
                    images.append({
                        "id": next_id, "file_name": f"{folder}/{folder}_{fi + 1:06d}.jpg",
                        "width": w, "height": hgt, "subject": subject,
                        "action_name": ACTION_NAMES[action], "action_idx": action,
                        "subaction_idx": sub, "cam_idx": int(cam), "frame_idx": fi,
                    })
                    x0, y0 = lo[fi]
                    x1, y1 = hi[fi]
                    annotations.append({
                        "id": next_id, "image_id": next_id,
                        "bbox": [round(float(x0), 2), round(float(y0), 2),
                                 round(float(x1 - x0), 2), round(float(y1 - y0), 2)],
                        "keypoints_vis": [True] * 17,
                    })
                    next_id += 1
            if detected:
                track[f"{ACTION_NAMES[action]} {sub}"] = views
    data = {"images": images, "annotations": annotations}
    return data, cams, joint_3d, smpl_param, betas, joint_3d_coco, track, key_poses


def _write_track(tracks: Dict[str, Dict[str, list]], path: Path) -> None:
    """``positions_2d`` (subject -> sequence -> one array per camera) and ``metadata`` in
    VideoPose3D's 2D layout, compressed, written atomically."""
    import io

    meta = {"layout_name": "h36m", "num_joints": 17,
            "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]],
            "channels": ["x", "y", "score"], "generator": "hgn_pyg.data.synthetic"}
    buf = io.BytesIO()
    np.savez_compressed(buf, positions_2d=np.array(tracks, dtype=object),
                        metadata=np.array(meta, dtype=object))
    atomic_write_bytes(path, buf.getvalue())


def _matrices_from_rotvec(pose: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    T = pose.shape[0]
    return Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(T, 24, 3, 3)


def generate(out_dir: Union[str, Path], frames: int = DEFAULT_FRAMES, seed: int = 0,
             subjects: Iterable[int] = SUBJECTS, body_model_path: Optional[Union[str, Path]] = None,
             actions: Optional[Iterable[int]] = None, overwrite: bool = False,
             detected_subjects: Optional[Iterable[int]] = None) -> Path:
    """Write the synthetic data set into ``out_dir`` and return the manifest path.

    Args:
        out_dir: destination; ``annotations/`` and ``SYNTHETIC.json`` are created in it.
        frames: frames per (action, sub-action) sequence at 50 fps (default 200).
        seed: everything (shapes, motions, cameras) is a function of the seed.
        subjects: Human3.6M subject numbers to write (default 1, 5, 6, 7, 8, 9, 11).
        body_model_path: an SMPL-format model with a Human3.6M regressor (default: the open
            body model; the bone-length guarantee holds for that one).
        actions: action indices 2..16 (default all 15).
        overwrite: replace the annotations already in ``out_dir`` (otherwise a DataError).
        detected_subjects: subjects that get the detected-like 2D track
            (:data:`DETECTED_FILE`; default those of :data:`DETECTED_SUBJECTS` being generated;
            an empty list writes no track).

    The manifest ``SYNTHETIC.json`` records the parameters; :func:`dataset_identity` of them
    tells whether a folder holds the set a configuration asks for.
    """
    if int(frames) < 1:
        raise DataError(f"frames must be >= 1, got {frames}")
    subjects = [int(s) for s in subjects]
    if not subjects:
        raise DataError("no subjects to generate")
    actions = sorted(ACTION_NAMES) if actions is None else [int(a) for a in actions]
    for a in actions:
        if a not in ACTION_NAMES:
            raise DataError(f"unknown action_idx {a}; expected 2..16")
    out = Path(out_dir)
    ann = out / "annotations"
    if not overwrite and ann.is_dir() and any(ann.glob("Human36M_subject*_*.json")):
        raise DataError(f"{out}: already holds annotations; choose an empty folder or pass "
                        f"overwrite=True (--overwrite) to replace them")
    path = Path(body_model_path) if body_model_path is not None else default_body_model_path()
    model = load_body_model(path, dtype=None)
    start = time.time()
    detected = ([s for s in subjects if s in DETECTED_SUBJECTS] if detected_subjects is None
                else [int(s) for s in detected_subjects])
    unknown = sorted(set(detected) - set(subjects))
    if unknown:
        raise DataError(f"detected_subjects {unknown} are not among the generated subjects {subjects}")
    coco = coco_regressor(model)
    manifest_betas, manifest_keys = {}, {}
    tracks: Dict[str, Dict[str, list]] = {}
    for s in subjects:
        data, cams, j3d, smpl, betas, j3d_coco, track, keys = _generate_subject(
            model, s, int(frames), int(seed), actions, coco, s in detected)
        _json_dump(j3d_coco, ann / f"Human36M_subject{s}_joint_3d_coco.json")
        if s in detected:
            tracks[f"S{s}"] = track
        _json_dump(data, ann / f"Human36M_subject{s}_data.json")
        _json_dump(cams, ann / f"Human36M_subject{s}_camera.json")
        _json_dump(j3d, ann / f"Human36M_subject{s}_joint_3d.json")
        _json_dump(smpl, ann / f"Human36M_subject{s}_smpl_param.json")
        manifest_betas[str(s)] = np.round(betas, 6).tolist()
        manifest_keys[str(s)] = keys
        logger.info("subject %d written (%.1f s)", s, time.time() - start)
    manifest = {
        "generator": "hgn_pyg.data.synthetic", "version": SYNTHETIC_VERSION,
        "identity": dataset_identity(frames, seed, subjects, actions, path.name,
                                     model.version or "external"),
        "body_model": path.name, "body_model_version": model.version or "external",
        "seed": int(seed), "frames": int(frames), "fps": FPS, "subjects": subjects,
        "actions": {str(a): ACTION_NAMES[a] for a in actions}, "subactions": list(SUBACTIONS),
        "cameras": [1, 2, 3, 4], "betas": manifest_betas,
        "coco_face_vertices": face_vertices(model).tolist(),
        "detected_track": {"file": DETECTED_FILE, "subjects": detected} if detected else None,
        "static_smpl_joints": list(STATIC_JOINTS),
        "capture_area": {"centre_m": list(CAPTURE_CENTRE), "half_m": list(CAPTURE_HALF)},
        "key_poses": manifest_keys,
    }
    if detected:
        _write_track(tracks, out / DETECTED_FILE)
    _json_dump(manifest, out / "SYNTHETIC.json")
    return out / "SYNTHETIC.json"


def dataset_identity(frames: int, seed: int, subjects: Iterable[int], actions: Iterable[int],
                     body_model: str, body_model_version: str) -> Dict[str, object]:
    """The parameters that decide a synthetic set's content, in one canonical dict (recorded in
    ``SYNTHETIC.json``; two folders with equal identities hold the same data)."""
    return {"version": SYNTHETIC_VERSION, "frames": int(frames), "seed": int(seed),
            "subjects": sorted(int(s) for s in subjects), "actions": sorted(int(a) for a in actions),
            "body_model": str(body_model), "body_model_version": str(body_model_version)}


def manifest_identity(manifest: Dict[str, object]) -> Optional[Dict[str, object]]:
    """:func:`dataset_identity` of a ``SYNTHETIC.json`` (``None`` when it is not one of ours)."""
    if not isinstance(manifest, dict) or manifest.get("generator") != "hgn_pyg.data.synthetic":
        return None
    if isinstance(manifest.get("identity"), dict):
        return manifest["identity"]
    try:  # written before the identity was recorded
        ident = dataset_identity(manifest["frames"], manifest["seed"], manifest["subjects"],
                                 manifest["actions"], manifest["body_model"],
                                 manifest["body_model_version"])
    except (KeyError, TypeError, ValueError):
        return None
    ident["version"] = manifest.get("version")
    return ident


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hgn_pyg.data.synthetic",
        description="Write a synthetic Human3.6M-format data set (Pose2Mesh annotation layout) "
                    "made with the open body model.")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help=f"frames per sequence at 50 fps (default {DEFAULT_FRAMES})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subjects", type=int, nargs="+", default=list(SUBJECTS))
    parser.add_argument("--actions", type=int, nargs="+", default=None,
                        help="action indices 2..16 (default all)")
    parser.add_argument("--body-model", default=None, help="SMPL-format model file")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the annotations already in --out")
    parser.add_argument("--detected-subjects", type=int, nargs="*", default=None,
                        help=f"subjects that get the detected-like 2D track {DETECTED_FILE} "
                             f"(default: those of {list(DETECTED_SUBJECTS)} generated)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        start = time.time()
        manifest = generate(args.out, frames=args.frames, seed=args.seed, subjects=args.subjects,
                            body_model_path=args.body_model, actions=args.actions,
                            overwrite=args.overwrite, detected_subjects=args.detected_subjects)
    except (HGNError, OSError) as exc:
        if args.debug:
            raise
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("interrupted", file=sys.stderr)
        return 130
    logger.info("wrote %s in %.1f s", manifest, time.time() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
