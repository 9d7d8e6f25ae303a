#!/usr/bin/env python
"""How well a checkpoint lifts real people: Human3.6M frames and CMU Panoptic bodies with public 3D
truth, and real COCO people (2D only) for left/right symmetry.

**Panoptic** (``--panoptic DIR``): every ``<DIR>/<sequence>/hdPose3d_stage1_coco19/body3DScene_*.json``
(19 joints per body, ``x, y, z, confidence`` in cm, world frame of the dome; joint order
:data:`COCO19`) is projected through the sequence's real HD cameras
(``<DIR>/<sequence>/calibration_<sequence>.json``: ``K``, ``distCoef`` = OpenCV ``k1 k2 p1 p2 k3``,
``R``, ``t`` in cm; a sequence without its own file uses the calibration of another sequence of
the same directory, the same dome). A view counts when the whole body lies in front of the camera
and inside its ``resolution``; its 17 COCO pixels (:data:`COCO19_TO_COCO17`) go through the
product's own path, :class:`Lifter` with ``keypoint_format="coco"`` and the camera's image size, as
``python -m hgn_pyg.lift --format coco --image-size W H`` does for a user with a COCO detector.
Joints whose confidence is below ``--min-confidence`` (Panoptic writes -1 for joints it did not
reconstruct) are given to the lifter as missing; a body is *scored* only when the 12 joints both
skeletons share (:data:`SHARED`: hips, knees, ankles, shoulders, elbows, wrists) are all reconstructed.

Scores, on the shared joints, per view: **MPJPE** with both poses made relative to their mid-hip
(the mean of the two hips; H36M's pelvis is defined there, Panoptic's body centre nearly so) and no
rotation — the lifter answers in the camera frame, and the truth is put in the same camera frame
(``R·X + t``); **PA-MPJPE** after a similarity Procrustes alignment. Both by the project's one
:mod:`hgn_pyg.engine.metrics`. **Left/right asymmetry** of the lifted poses: per bone pair (upper
arm, forearm, thigh, shin; :data:`BONE_PAIRS`) ``|L - R| / ((L + R) / 2)``; the median over poses
and pairs (a real body: a few %; the truth's own figure is reported next to it).

**Human3.6M** (``--h36m FILE``, MMPose's ``tests/data/h36m/h36m_coco.json``: real Human3.6M
frames as COCO-style annotations, ``keypoints`` the 17 ground-truth pixels and ``keypoints_3d``
the 17 world joints in metres, both in Human3.6M's own joint order (that of
:data:`hgn_pyg.graphs.H36M`, whatever the file's category names say), the subject and camera named
by the image's file name ``S<subject>_<action>.<camera serial>_<frame>.jpg``): each pose is lifted
from its own image's pixels (``keypoint_format="h36m"``, the image's size) and, projected through
the published calibration (:mod:`hgn_pyg.data.h36m_calibration`, pinhole), from each of its
subject's four cameras. Scored by the Human3.6M protocol: MPJPE on the 17 joints relative to the
pelvis in the camera frame, and PA-MPJPE. The file's pixels are checked against the projection of
its 3D joints (reported as the reprojection error: a few pixels means the calibration matches).

**COCO** (``--coco FILE``, a COCO keypoint annotation file such as MMPose's
``tests/data/coco/test_coco.json``): each annotated person is lifted from the labelled keypoints
with the image's size (unlabelled ones missing, as a detector's misses), and a bone pair counts
only when all four of its keypoints were labelled.

The data are not in this repository (they are third-party files): the user gives their paths. See
docs/real_people.md for where they come from and what the numbers mean.

Usage::

    python -m benchmarks.real_check --checkpoint experiment/exp_.../checkpoint/best.pth.tar \\
        --panoptic /data/panoptic_body3d --h36m /data/h36m/h36m_coco.json --coco /data/coco/test_coco.json \\
        [--cameras 31] [--symmetric-bones | --no-symmetric-bones] [--flip-test | --no-flip-test] [--json out.json]
"""
from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from hgn_pyg.data.h36m_calibration import CALIBRATED_SUBJECTS, H36M_CAMERAS, IMAGE_SIZES, pose2mesh_camera
from hgn_pyg.data.validate import read_json
from hgn_pyg.engine.metrics import mpjpe, pa_mpjpe
from hgn_pyg.engine.trainer import write_results
from hgn_pyg.errors import CheckpointError, DataError
from hgn_pyg.graphs.skeleton import H36M
from hgn_pyg.inference.keypoint_files import read_keypoints
from hgn_pyg.inference.lifter import Lifter

log = logging.getLogger("real_check")

#: Panoptic's ``coco19`` joint order (Panoptic toolbox / the ``hdPose3d_stage1_coco19`` files).
COCO19 = ("Neck", "Nose", "BodyCenter", "L_Shoulder", "L_Elbow", "L_Wrist", "L_Hip", "L_Knee", "L_Ankle",
          "R_Shoulder", "R_Elbow", "R_Wrist", "R_Hip", "R_Knee", "R_Ankle", "L_Eye", "L_Ear", "R_Eye", "R_Ear")
_C19 = {n: i for i, n in enumerate(COCO19)}

#: COCO-17 keypoint ``k`` (``hgn_pyg.graphs.COCO17`` order) is Panoptic joint ``COCO19_TO_COCO17[k]``.
COCO19_TO_COCO17 = tuple(_C19[n] for n in (
    "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow",
    "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle"))

#: The joints both skeletons share: ``(H36M index, Panoptic coco19 index)`` by name.
_SHARED_NAMES = ("R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle",
                 "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist")


def _h36m_index() -> Dict[str, int]:
    return {n: i for i, n in enumerate(H36M.joint_names)}


SHARED: Tuple[Tuple[int, int], ...] = tuple((_h36m_index()[n], _C19[n]) for n in _SHARED_NAMES)

#: Left/right bone pairs in H36M indices: ``name -> ((left parent, left child), (right ...))``.
BONE_PAIRS: Dict[str, Tuple[Tuple[int, int], Tuple[int, int]]] = {
    name: tuple((_h36m_index()[f"{s}_{a}"], _h36m_index()[f"{s}_{b}"]) for s in ("L", "R"))
    for name, (a, b) in {"upper arm": ("Shoulder", "Elbow"), "forearm": ("Elbow", "Wrist"),
                         "thigh": ("Hip", "Knee"), "shin": ("Knee", "Ankle")}.items()
}

#: Panoptic marks joints it did not reconstruct with confidence -1; below this a joint is missing.
DEFAULT_MIN_CONFIDENCE = 0.1


# ----------------------------------------------------------------------------- Panoptic files
@dataclass
class Camera:
    """One calibrated camera: ``X_cam = R·X + t`` (cm), OpenCV distortion, pinhole ``K``."""

    name: str
    K: np.ndarray          # [3, 3]
    dist: np.ndarray       # [5] k1 k2 p1 p2 k3
    R: np.ndarray          # [3, 3]
    t: np.ndarray          # [3] cm
    resolution: Tuple[int, int]  # (W, H)


def read_calibration(path: Path, kind: str = "hd") -> List[Camera]:
    """The cameras of ``type == kind`` in a Panoptic calibration JSON (a malformed file: DataError)."""
    data = read_json(path, "Panoptic calibration")
    if not isinstance(data, dict) or not isinstance(data.get("cameras"), list):
        raise DataError(f"{path}: expected an object with a 'cameras' list")
    cams = []
    for i, c in enumerate(data["cameras"]):
        if not isinstance(c, dict) or c.get("type") != kind:
            continue
        try:
            cam = Camera(str(c["name"]), np.asarray(c["K"], dtype=np.float64).reshape(3, 3),
                         np.asarray(c["distCoef"], dtype=np.float64).reshape(5),
                         np.asarray(c["R"], dtype=np.float64).reshape(3, 3),
                         np.asarray(c["t"], dtype=np.float64).reshape(3),
                         (int(c["resolution"][0]), int(c["resolution"][1])))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DataError(f"{path}: cameras[{i}]: needs K [3x3], distCoef [5], R [3x3], t [3], "
                            f"resolution [W, H] ({exc})") from None
        if not (np.isfinite(cam.K).all() and np.isfinite(cam.R).all() and np.isfinite(cam.t).all()):
            raise DataError(f"{path}: cameras[{i}] ({cam.name}): non-finite parameters")
        cams.append(cam)
    if not cams:
        raise DataError(f"{path}: no cameras of type {kind!r}")
    return cams


def read_bodies(path: Path) -> np.ndarray:
    """The bodies of one ``body3DScene_*.json``: ``[B, 19, 4]`` (x, y, z cm, confidence)."""
    data = read_json(path, "Panoptic body3DScene")
    if not isinstance(data, dict) or not isinstance(data.get("bodies"), list):
        raise DataError(f"{path}: expected an object with a 'bodies' list")
    out = []
    for i, b in enumerate(data["bodies"]):
        try:
            a = np.asarray(b["joints19"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}: bodies[{i}]: needs 'joints19' (19 x [x, y, z, confidence])") from None
        if a.shape != (19 * 4,):
            raise DataError(f"{path}: bodies[{i}].joints19: expected 76 numbers, got shape {list(a.shape)}")
        out.append(a.reshape(19, 4))
    return np.stack(out) if out else np.zeros((0, 19, 4))


def load_panoptic(root: Path) -> List[Tuple[str, np.ndarray, List[Camera]]]:
    """``[(sequence, bodies [N, 19, 4], cameras)]`` for every sequence under ``root``."""
    root = Path(root)
    seqs = sorted(p.parent.parent for p in root.glob("*/hdPose3d_stage1_coco19/body3DScene_*.json"))
    seqs = sorted(set(seqs))
    if not seqs:
        raise DataError(f"{root}: no <sequence>/hdPose3d_stage1_coco19/body3DScene_*.json files")
    calibs = {s: s / f"calibration_{s.name}.json" for s in seqs}
    any_calib = next((c for c in calibs.values() if c.is_file()), None)
    if any_calib is None:
        calib_files = sorted(root.glob("*/calibration_*.json"))
        any_calib = calib_files[0] if calib_files else None
    if any_calib is None:
        raise DataError(f"{root}: no calibration_<sequence>.json next to the pose files")
    out = []
    for s in seqs:
        calib = calibs[s] if calibs[s].is_file() else any_calib
        if calib != calibs[s]:
            log.info("%s: no calibration file of its own; using %s (the same dome)", s.name, calib)
        files = sorted((s / "hdPose3d_stage1_coco19").glob("body3DScene_*.json"))
        bodies = [read_bodies(f) for f in files]
        bodies = np.concatenate([b for b in bodies if len(b)]) if any(len(b) for b in bodies) else np.zeros((0, 19, 4))
        out.append((s.name, bodies, read_calibration(calib)))
    return out


# ----------------------------------------------------------------------------- geometry
def to_camera(X: np.ndarray, cam: Camera) -> np.ndarray:
    """World points ``[..., 3]`` (cm) -> camera frame ``R·X + t`` (cm)."""
    return X @ cam.R.T + cam.t


def project(X: np.ndarray, cam: Camera) -> np.ndarray:
    """Panoptic/OpenCV projection of world points ``[..., 3]`` (cm) to pixels ``[..., 2]``:
    normalised ``(x, y) = (X_c/Z_c, Y_c/Z_c)``, radial ``k1 k2 k3`` and tangential ``p1 p2``
    distortion, then ``K``."""
    Xc = to_camera(X, cam)
    x, y = Xc[..., 0] / Xc[..., 2], Xc[..., 1] / Xc[..., 2]
    k1, k2, p1, p2, k3 = cam.dist
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    K = cam.K
    return np.stack([K[0, 0] * xd + K[0, 1] * yd + K[0, 2], K[1, 1] * yd + K[1, 2]], axis=-1)


def bone_asymmetry(joints: np.ndarray, valid: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """Per pose and bone pair ``|L - R| / ((L + R) / 2)`` of H36M poses ``[N, 17, 3]``; with
    ``valid [N, 17]`` a pair is NaN unless its four joints are valid."""
    out = {}
    for name, ((la, lb), (ra, rb)) in BONE_PAIRS.items():
        left = np.linalg.norm(joints[:, la] - joints[:, lb], axis=-1)
        right = np.linalg.norm(joints[:, ra] - joints[:, rb], axis=-1)
        mean = (left + right) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(mean > 0, np.abs(left - right) / mean, np.nan)
        if valid is not None:
            a = np.where(valid[:, [la, lb, ra, rb]].all(1), a, np.nan)
        out[name] = a
    return out


def asymmetry_summary(asym: Dict[str, np.ndarray]) -> Dict[str, object]:
    """Medians in % (overall over every valid (pose, pair), and per pair) and the count."""
    every = np.concatenate([v[np.isfinite(v)] for v in asym.values()])
    per = {k: (float(np.median(v[np.isfinite(v)]) * 100) if np.isfinite(v).any() else None) for k, v in asym.items()}
    return {"median_pct": float(np.median(every) * 100) if every.size else None, "per_bone_pct": per,
            "num_pairs": int(every.size)}


# ----------------------------------------------------------------------------- Human3.6M frames
#: ``S<subject>_<action>.<camera serial>_<frame>.jpg``, the image names of MMPose's Human3.6M files
H36M_IMAGE_NAME = re.compile(r"^S(\d+)_.*\.(\d{8})_\d+\.\w+$")


@dataclass
class H36MPose:
    """One annotated Human3.6M pose: world joints (m), its image's pixels, subject, camera slot 1..4."""

    name: str
    world: np.ndarray      # [17, 3] metres, Human3.6M world (z up)
    pixels: np.ndarray     # [17, 2] the annotated pixels of its own image
    image_size: Tuple[int, int]
    subject: int
    camera: int


def read_h36m_frames(path: Path) -> List[H36MPose]:
    """The annotated poses of a COCO-style Human3.6M file with ``keypoints_3d`` (a malformed file,
    an unknown subject or camera: DataError naming the annotation)."""
    data = read_json(path, "Human3.6M annotations")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise DataError(f"{path}: expected a COCO-style object with 'images' and 'annotations' lists")
    serials = {c["id"]: k + 1 for k, c in enumerate(H36M_CAMERAS["S1"])}
    images = {}
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not isinstance(im.get("id"), (int, str)):
            raise DataError(f"{path}: images[{i}]: needs an 'id' (a number or a string)")
        images[im["id"]] = im
    poses = []
    for i, an in enumerate(data["annotations"]):
        where = f"{path}: annotations[{i}]"
        if not isinstance(an, dict) or not isinstance(an.get("image_id"), (int, str)) \
                or an["image_id"] not in images:
            raise DataError(f"{where}: needs an 'image_id' naming one of the images")
        im = images[an["image_id"]]
        m = H36M_IMAGE_NAME.match(str(im.get("file_name", "")))
        if m is None:
            raise DataError(f"{where}: image file name {str(im.get('file_name'))!r:.80} is not "
                            "S<subject>_<action>.<camera serial>_<frame>.jpg")
        subject, serial = int(m.group(1)), m.group(2)
        if subject not in CALIBRATED_SUBJECTS or serial not in serials:
            raise DataError(f"{where}: subject S{subject} / camera {serial} has no published calibration "
                            f"(subjects {list(CALIBRATED_SUBJECTS)}, cameras {sorted(serials)})")
        try:
            kp = np.asarray(an["keypoints"], dtype=np.float64).reshape(17, 3)[:, :2]
            k3 = np.asarray(an["keypoints_3d"], dtype=np.float64).reshape(17, 4)[:, :3]
            size = (int(im["width"]), int(im["height"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: needs 'keypoints' (17 x [u, v, v]), 'keypoints_3d' (17 x [x, y, z, v], m) "
                            f"and the image's 'width' / 'height' ({exc})") from None
        if not (np.isfinite(kp).all() and np.isfinite(k3).all()):
            raise DataError(f"{where}: non-finite keypoints")
        poses.append(H36MPose(str(im["file_name"]), k3, kp, size, subject, serials[serial]))
    if not poses:
        raise DataError(f"{path}: no annotations")
    return poses


def h36m_views(poses: Sequence[H36MPose]):
    """Every pose through each of its subject's four cameras.

    Returns ``(pixels [V, 17, 2], image_size [V, 2], truth [V, 17, 3] metres in the camera frame,
    own [V] bool (the pose's own image, with the file's pixels), reprojection_px [P])``.
    """
    px, sizes, truth, own, reproj = [], [], [], [], []
    for p in poses:
        for cam in sorted(IMAGE_SIZES):
            c = pose2mesh_camera(p.subject, cam)
            Xc = p.world * 1000.0 @ np.asarray(c["R"]).T + np.asarray(c["t"])
            uv = Xc[:, :2] / Xc[:, 2:] * np.asarray(c["f"]) + np.asarray(c["c"])
            if cam == p.camera:
                reproj.append(float(np.linalg.norm(uv - p.pixels, axis=-1).max()))
                uv, size = p.pixels, p.image_size
            else:
                size = IMAGE_SIZES[cam]
            px.append(uv)
            sizes.append(size)
            truth.append(Xc / 1000.0)
            own.append(cam == p.camera)
    return (np.stack(px), np.asarray(sizes, dtype=np.float64), np.stack(truth), np.asarray(own),
            np.asarray(reproj))


def score_h36m(pred: np.ndarray, truth: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per view MPJPE and PA-MPJPE (mm) on the 17 joints, pelvis-relative (the Human3.6M protocol)."""
    p_t = torch.from_numpy(pred - pred[:, :1])
    g_t = torch.from_numpy(truth - truth[:, :1])
    return mpjpe(p_t, g_t, root=None).numpy(), pa_mpjpe(p_t, g_t).numpy()


def check_h36m(lifter, path: Path) -> Dict[str, object]:
    """Lift the poses of a Human3.6M annotation file from their own images and from all four cameras."""
    poses = read_h36m_frames(path)
    px, sizes, truth, own, reproj = h36m_views(poses)
    pred = np.asarray(lifter(px, image_size=sizes, keypoint_format="h36m"), dtype=np.float64)
    e, pa = score_h36m(pred, truth)
    return {"poses": len(poses), "views": int(len(e)), "images": [p.name for p in poses],
            "own_view": {"MPJPE": float(e[own].mean()), "PA-MPJPE": float(pa[own].mean())},
            "all_cameras": {"MPJPE": float(e.mean()), "PA-MPJPE": float(pa.mean())},
            "per_view_mpjpe": [round(float(v), 1) for v in e],
            "reprojection_px_max": float(reproj.max()),
            "asymmetry": asymmetry_summary(bone_asymmetry(pred)),
            "truth_asymmetry": asymmetry_summary(bone_asymmetry(truth))}


# ----------------------------------------------------------------------------- the check
def panoptic_views(sequences, num_cameras: int, min_confidence: float = DEFAULT_MIN_CONFIDENCE):
    """Every (body, camera) view that shows the whole body inside the image.

    Returns ``(coco_px [V, 17, 2] with NaN for missing joints, image_size [V, 2], truth [V, 17, 3]
    metres in the camera frame (H36M order, only the shared joints filled, others NaN), info)``.
    """
    px, sizes, truth = [], [], []
    info = {"bodies": 0, "bodies_scored": 0, "views": 0, "views_outside": 0, "cameras": 0}
    for _seq, bodies, cams in sequences:
        cams = cams[:num_cameras] if num_cameras > 0 else cams
        info["cameras"] = max(info["cameras"], len(cams))
        info["bodies"] += len(bodies)
        conf = bodies[..., 3]
        shared19 = [j for _, j in SHARED]
        scored = (conf[:, shared19] >= min_confidence).all(1)
        bodies = bodies[scored]
        info["bodies_scored"] += int(scored.sum())
        if not len(bodies):
            continue
        X, ok = bodies[..., :3], bodies[..., 3] >= min_confidence
        for cam in cams:
            Xc = to_camera(X, cam)
            uv = project(X, cam)
            W, H = cam.resolution
            inside = np.where(ok, (Xc[..., 2] > 0) & (uv[..., 0] >= 0) & (uv[..., 0] < W)
                              & (uv[..., 1] >= 0) & (uv[..., 1] < H), True).all(1)
            info["views_outside"] += int((~inside).sum())
            if not inside.any():
                continue
            uv = np.where(ok[..., None], uv, np.nan)[inside]
            px.append(uv[:, list(COCO19_TO_COCO17)])
            sizes.append(np.tile([W, H], (int(inside.sum()), 1)).astype(np.float64))
            t = np.full((int(inside.sum()), 17, 3), np.nan)
            for h, j in SHARED:
                t[:, h] = Xc[inside][:, j] / 100.0
            truth.append(t)
    if not px:
        raise DataError("Panoptic: no body with its 12 shared joints reconstructed is seen whole by any camera")
    px, sizes, truth = np.concatenate(px), np.concatenate(sizes), np.concatenate(truth)
    info["views"] = len(px)
    return px, sizes, truth, info


def lifter_class():
    """The product's :class:`~hgn_pyg.inference.lifter.Lifter`."""
    return Lifter


def lift_coco_pixels(lifter, px: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Lift COCO-17 pixels ``[V, 17, 2]`` (NaN = missing) with per-view image sizes, as
    ``hgn_pyg.lift --format coco`` does; returns H36M joints ``[V, 17, 3]`` (m, camera frame)."""
    return np.asarray(lifter(px, image_size=sizes, keypoint_format="coco"), dtype=np.float64)


def score_panoptic(pred: np.ndarray, truth: np.ndarray) -> Dict[str, object]:
    """MPJPE / PA-MPJPE (mm) on the shared joints, both relative to their mid-hip, and asymmetry."""
    idx = [h for h, _ in SHARED]
    hips = [_h36m_index()["R_Hip"], _h36m_index()["L_Hip"]]
    p = pred[:, idx] - pred[:, hips].mean(1, keepdims=True)
    g = truth[:, idx] - truth[:, hips].mean(1, keepdims=True)
    p_t, g_t = torch.from_numpy(p), torch.from_numpy(g)
    e = mpjpe(p_t, g_t, root=None).numpy()
    pa = pa_mpjpe(p_t, g_t).numpy()
    shared_valid = np.zeros(truth.shape[:2], dtype=bool)
    shared_valid[:, idx] = True
    return {"MPJPE": float(e.mean()), "PA-MPJPE": float(pa.mean()), "MPJPE_median": float(np.median(e)),
            "num_views": int(len(e)),
            "asymmetry": asymmetry_summary(bone_asymmetry(pred)),
            "truth_asymmetry": asymmetry_summary(bone_asymmetry(np.nan_to_num(truth), shared_valid))}


def check_coco(lifter, path: Path) -> Dict[str, object]:
    """Lift every annotated person of a COCO keypoint annotation file; their bone asymmetry."""
    kfile = read_keypoints(path, "coco")
    res = lifter.lift_file(kfile)
    present = ~res.missing
    keep = present.sum(1) > 0
    summary = asymmetry_summary(bone_asymmetry(res.joints_3d[keep].astype(np.float64), present[keep]))
    summary["num_people"] = int(keep.sum())
    return summary


def evaluate(lifter, panoptic: Optional[Path], coco: Optional[Path], num_cameras: int = 31,
             min_confidence: float = DEFAULT_MIN_CONFIDENCE, h36m: Optional[Path] = None) -> Dict[str, object]:
    """The figures of a :class:`Lifter` (or anything with its ``__call__`` / ``lift_file``)."""
    out: Dict[str, object] = {}
    if h36m is not None:
        out["h36m"] = check_h36m(lifter, h36m)
    if panoptic is not None:
        seqs = load_panoptic(panoptic)
        px, sizes, truth, info = panoptic_views(seqs, num_cameras, min_confidence)
        pred = lift_coco_pixels(lifter, px, sizes)
        out["panoptic"] = {**score_panoptic(pred, truth), **info, "sequences": [s for s, _, _ in seqs]}
    if coco is not None:
        out["coco"] = check_coco(lifter, coco)
    return out


def run(checkpoint: Path, panoptic: Optional[Path], coco: Optional[Path], num_cameras: int = 31,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE, device: str = "cpu",
        symmetric_bones: Optional[bool] = None, h36m: Optional[Path] = None,
        flip_test: Optional[bool] = None) -> Dict[str, object]:
    lifter = lifter_class().from_checkpoint(checkpoint, device=device, symmetric_bones=symmetric_bones,
                                            flip_test=flip_test)
    return {"checkpoint": str(checkpoint), "symmetric_bones": lifter.symmetric_bones, "flip_test": lifter.flip_test,
            **evaluate(lifter, panoptic, coco, num_cameras, min_confidence, h36m)}


def report(res: Dict[str, object]) -> str:
    how = [k for k in ("symmetric_bones", "flip_test") if res.get(k)]
    lines = [f"checkpoint: {res['checkpoint']}" + (f" (lifted with {', '.join(how)})" if how else "")]
    h = res.get("h36m")
    if h:
        lines.append(f"Human3.6M: {h['poses']} poses ({', '.join(h['images'])}); the file's pixels are within "
                     f"{h['reprojection_px_max']:.1f} px of the published cameras' projection")
        lines.append(f"  own images: MPJPE {h['own_view']['MPJPE']:.1f} mm, PA-MPJPE {h['own_view']['PA-MPJPE']:.1f} mm; "
                     f"all {h['views']} views (4 cameras each): MPJPE {h['all_cameras']['MPJPE']:.1f} mm, "
                     f"PA-MPJPE {h['all_cameras']['PA-MPJPE']:.1f} mm (17 joints, pelvis-relative)")
        lines.append(f"  L/R bone asymmetry of the lifted poses: median {h['asymmetry']['median_pct']:.1f}% "
                     f"(truth: {h['truth_asymmetry']['median_pct']:.1f}%)")
    p = res.get("panoptic")
    if p:
        lines.append(f"Panoptic ({', '.join(p['sequences'])}): {p['bodies_scored']}/{p['bodies']} bodies scored, "
                     f"{p['views']} views through up to {p['cameras']} HD cameras "
                     f"({p['views_outside']} views left out: body not wholly in the image)")
        lines.append(f"  MPJPE {p['MPJPE']:.1f} mm (median {p['MPJPE_median']:.1f}), PA-MPJPE {p['PA-MPJPE']:.1f} mm "
                     "(12 shared joints, mid-hip aligned)")
        a, ta = p["asymmetry"], p["truth_asymmetry"]
        lines.append(f"  L/R bone asymmetry of the lifted poses: median {a['median_pct']:.1f}% "
                     f"(truth: {ta['median_pct']:.1f}%); per bone "
                     + ", ".join(f"{k} {v:.1f}%" for k, v in a["per_bone_pct"].items() if v is not None))
    c = res.get("coco")
    if c:
        lines.append(f"COCO: {c['num_people']} people, {c['num_pairs']} labelled bone pairs: median L/R asymmetry "
                     f"{c['median_pct']:.1f}%; per bone "
                     + ", ".join(f"{k} {v:.1f}%" for k, v in c["per_bone_pct"].items() if v is not None))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--panoptic", type=Path, help="folder of Panoptic sequences (<seq>/hdPose3d_stage1_coco19/...)")
    ap.add_argument("--coco", type=Path, help="COCO keypoint annotation JSON (e.g. test_coco.json)")
    ap.add_argument("--h36m", type=Path, help="Human3.6M frames as COCO-style JSON with keypoints_3d "
                                              "(e.g. MMPose's tests/data/h36m/h36m_coco.json)")
    ap.add_argument("--cameras", type=int, default=31, help="HD cameras per sequence (0 = all; default 31)")
    ap.add_argument("--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--symmetric-bones", action=argparse.BooleanOptionalAction, default=None,
                    help="lift with Lifter(symmetric_bones=True / False) (hgn_pyg.lift --[no-]symmetric-bones); "
                         "default: what the checkpoint records")
    ap.add_argument("--flip-test", action=argparse.BooleanOptionalAction, default=None,
                    help="lift with Lifter(flip_test=True / False) (hgn_pyg.lift --[no-]flip-test); "
                         "default: what the checkpoint records")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    if args.panoptic is None and args.coco is None and args.h36m is None:
        ap.error("give --panoptic DIR, --h36m FILE and/or --coco FILE")
    try:
        res = run(args.checkpoint, args.panoptic, args.coco, args.cameras, args.min_confidence, args.device,
                  args.symmetric_bones, args.h36m, args.flip_test)
    except (DataError, CheckpointError) as exc:
        print(f"real_check: {exc}", file=sys.stderr)
        return 2
    print(report(res))
    if args.json:
        write_results(args.json, res)  # strict JSON (non-finite numbers as null), written atomically
    return 0


if __name__ == "__main__":
    sys.exit(main())
