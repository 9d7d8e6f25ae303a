r"""Which 2D input a Human3.6M-layout data set gives the model.

By default :class:`~hgn_pyg.data.human36m.Human36M` feeds the ground-truth projections of the
Human3.6M-17 joints. :func:`with_input_2d` replaces them, keeping targets, meshes and frames:

* **another joint set** (``DATASET.input_joint_set``, :data:`INPUT_JOINT_SETS`): ``"coco17"`` reads
  the COCO-17 keypoints of the same frames (``Human36M_subject{S}_joint_3d_coco.json``, world mm,
  written by :mod:`hgn_pyg.data.synthetic`) and projects them with the frame's camera, in COCO
  order; a model with ``MODEL.input_joint_set``-sized input learns the mapping to the joints.
* **a 2D track from a file** (``DATASET.use_gt_input: false``, ``DATASET.npz_2d``): detections in
  VideoPose3D's 2D layout — ``positions_2d["S9"]["Directions 1"][camera]`` ``[T, 17, C]`` pixels
  (``C >= 2``; a third channel is the score, else the score is 1) — aligned to the annotated
  frames: subject ``S{subject}``, the sequence of the frame's action whose name is the
  ``subaction_idx``-th of that action's names in sorted order (``"Directions"`` before
  ``"Directions 1"``; the synthetic set writes ``"Directions 1"``, ``"Directions 2"``), camera
  ``cam_idx - 1`` (VideoPose3D's camera order is Human3.6M's 1..4), row ``frame_idx`` (both
  count the frames of the 50 fps video). This is how CPN detections
  (``data_2d_h36m_cpn_ft_h36m_dbb.npz``) become the input of the Pose2Mesh-layout frames, and
  how the synthetic set's detected-like track (``data_2d_h36m_detected.npz``) is read.

Missing keypoints (non-finite coordinates or a score below ``min_score``) are filled by the
policy of :mod:`hgn_pyg.data.keypoints` (the same as at inference and in keypoint dropout); the
data set then carries ``score_2d [N, K]`` beside ``input_2d`` (0 for missing joints).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from ..errors import DataError
from .actions import ACTION_OFFSET, ACTIONS, parse_action
from .camera import normalize_pixels, project, world_to_camera
from .human36m import _read_camera, annotation_path
from .keypoints import DEFAULT_MIN_SCORE, FORMAT_JOINT_SETS, apply_missing_policy
from .pose_dataset import PoseDataset
from .validate import as_array, data_error, get_key, read_json
from .videopose3d import read_npz_dict

__all__ = ["INPUT_JOINT_SETS", "LEGACY_JOINT_SET_NAMES", "INPUT_FORMATS", "JOINT_FILES", "joint_set_name",
           "read_track_2d", "coco_projections", "with_input_2d"]

PathLike = Union[str, os.PathLike]

#: ``DATASET.input_joint_set`` values: the joint sets (:data:`hgn_pyg.graphs.SKELETONS` names, the
#: one spelling) the 2D input may come in.
INPUT_JOINT_SETS: Tuple[str, ...] = ("h36m", "coco17")
#: The spellings of the published configurations (Pose2Mesh lineage), still accepted in
#: ``DATASET.input_joint_set`` / ``target_joint_set``: a configuration is resolved to the names of
#: :data:`INPUT_JOINT_SETS` when it is loaded (:func:`joint_set_name`).
LEGACY_JOINT_SET_NAMES: Dict[str, str] = {"human36": "h36m", "coco": "coco17"}
#: Input joint set -> the keypoint format name of :data:`hgn_pyg.data.keypoints.KEYPOINT_FORMATS`
#: (what a checkpoint's input convention records): ``{"h36m": "h36m", "coco17": "coco"}``.
INPUT_FORMATS: Dict[str, str] = {js.name: fmt for fmt, js in FORMAT_JOINT_SETS.items()}
#: The annotation file (``Human36M_subject{S}_{kind}.json``) holding each input joint set in 3D.
JOINT_FILES: Dict[str, str] = {"h36m": "joint_3d", "coco17": "joint_3d_coco"}


def joint_set_name(name: str) -> str:
    """The one spelling of a joint-set name given in a configuration (``"human36"`` -> ``"h36m"``,
    ``"coco"`` -> ``"coco17"``, :data:`LEGACY_JOINT_SET_NAMES`); other names are returned as given."""
    return LEGACY_JOINT_SET_NAMES.get(name, name)


def _sequence_names(seqs: Dict[str, Any]) -> Dict[Tuple[int, int], str]:
    """``{(action_idx, subaction_idx): name}`` of one subject's sequences (see module docstring)."""
    by_action: Dict[int, List[str]] = {}
    for name in seqs:
        if str(name).startswith("_"):
            continue
        label = parse_action(str(name))
        if label is not None:
            by_action.setdefault(label + ACTION_OFFSET, []).append(str(name))
    return {(a, k + 1): n for a, names in by_action.items() for k, n in enumerate(sorted(names))}


def read_track_2d(path: PathLike, frame_info: np.ndarray,
                  num_joints: int = 17) -> Tuple[np.ndarray, np.ndarray]:
    """The 2D track of ``path`` (VideoPose3D layout) at the frames ``frame_info [N, 5]`` (subject,
    action_idx, subaction_idx, frame_idx, cam_idx): ``(uv [N, K, 2] pixels, score [N, K])``,
    float64, NaN coordinates where the file has non-finite values.

    Raises :class:`DataError` naming the file and key when a subject, sequence, camera or frame is
    missing or an array has the wrong shape.
    """
    path = Path(path)
    tracks = read_npz_dict(path, "positions_2d")["value"]
    info = np.asarray(frame_info, dtype=np.int64).reshape(-1, 5)
    uv = np.empty((len(info), num_joints, 2))
    score = np.empty((len(info), num_joints))
    names: Dict[int, Dict[Tuple[int, int], str]] = {}
    arrays: Dict[Tuple[int, str, int], np.ndarray] = {}
    for n, (subject, action, sub, frame, cam) in enumerate(info.tolist()):
        skey = f"S{subject}"
        if subject not in names:
            seqs = tracks.get(skey)
            if not isinstance(seqs, dict):
                raise data_error(path, ["positions_2d", skey], "missing subject (or not a dict of "
                                 "sequences)" if seqs is None else f"expected a dict of sequences, "
                                 f"got {type(seqs).__name__}")
            names[subject] = _sequence_names(seqs)
        name = names[subject].get((action, sub))
        if name is None:
            raise data_error(path, ["positions_2d", skey], f"no sequence for action "
                             f"{ACTIONS[action - ACTION_OFFSET]} sub-action {sub} (sequences of "
                             f"an action are matched to sub-actions 1, 2 in sorted name order)")
        key = (subject, name, cam)
        if key not in arrays:
            views = tracks[skey][name]
            where = ["positions_2d", skey, name]
            if not isinstance(views, (list, tuple)) or not 1 <= cam <= len(views):
                raise data_error(path, where, f"expected a list with one array per camera "
                                 f"(camera {cam} = index {cam - 1})")
            try:
                arr = np.asarray(views[cam - 1], dtype=np.float64)
            except (TypeError, ValueError):
                arr = None
            if arr is None or arr.ndim != 3 or arr.shape[1] != num_joints or arr.shape[2] < 2:
                got = "not numbers" if arr is None else "×".join(map(str, arr.shape))
                raise data_error(path, where + [cam - 1], f"expected T×{num_joints}×C (C >= 2) "
                                 f"2D keypoints, got {got}")
            arrays[key] = arr
        arr = arrays[key]
        if not 0 <= frame < len(arr):
            raise data_error(path, ["positions_2d", skey, name, cam - 1], f"frame {frame} "
                             f"requested but the track has {len(arr)} frames")
        uv[n] = arr[frame, :, :2]
        score[n] = arr[frame, :, 2] if arr.shape[2] >= 3 else 1.0
    bad = ~np.isfinite(uv).all(-1)
    uv[bad] = np.nan
    return uv, score


def coco_projections(root: PathLike, frame_info: np.ndarray) -> np.ndarray:
    """Pixel projections ``[N, 17, 2]`` of the COCO-17 keypoints of ``frame_info``'s frames, read
    from ``root/annotations/Human36M_subject{S}_joint_3d_coco.json`` and the camera files."""
    info = np.asarray(frame_info, dtype=np.int64).reshape(-1, 5)
    out = np.empty((len(info), 17, 2))
    for subject in np.unique(info[:, 0]).tolist():
        rows = np.flatnonzero(info[:, 0] == subject)
        jpath = annotation_path(root, subject, JOINT_FILES["coco17"])
        cpath = annotation_path(root, subject, "camera")
        joints = read_json(jpath, f"subject {subject} COCO keypoints (3D)")
        cams_raw = read_json(cpath, f"subject {subject} cameras")
        cams: Dict[int, Tuple[np.ndarray, ...]] = {}
        for n in rows.tolist():
            _, action, sub, frame, cam = info[n].tolist()
            keys = [str(action), str(sub), str(frame)]
            node: Any = joints
            for depth, k in enumerate(keys):
                node = get_key(node, k, jpath, keys[:depth], "COCO keypoints of this frame")
            world = as_array(node, (17, 3), jpath, keys, "COCO keypoints")
            if cam not in cams:
                cams[cam] = _read_camera(cams_raw, cam, cpath)
            R, t, f, c = cams[cam]
            out[n] = project(world_to_camera(world, R, t), f, c)
    return out


def with_input_2d(ds, root: PathLike, input_joint_set: str = "h36m",
                  npz_2d: Optional[PathLike] = None, min_score: float = DEFAULT_MIN_SCORE):
    """A :class:`~hgn_pyg.data.human36m.PoseDataset` with ``ds``'s targets and frames and the 2D
    input of ``input_joint_set`` (:data:`INPUT_JOINT_SETS`) or of the track ``npz_2d``.

    ``ds`` must carry ``frame_info [N, 5]`` and ``image_size [N, 2]`` (a
    :class:`~hgn_pyg.data.human36m.Human36M`). Returns ``ds`` itself for the default input.
    """
    input_joint_set = joint_set_name(input_joint_set)
    if input_joint_set not in INPUT_JOINT_SETS:
        raise DataError(f"input joint set {input_joint_set!r}: expected one of {list(INPUT_JOINT_SETS)}")
    if npz_2d is None and input_joint_set == "h36m":
        return ds
    if npz_2d is not None and input_joint_set != "h36m":
        raise DataError(f"a 2D track file ({npz_2d}) holds Human3.6M-17 keypoints; it cannot be "
                        f"the input of joint set {input_joint_set!r}")
    tensors = ds.tensors()
    for key in ("frame_info", "image_size"):
        if key not in tensors:
            raise DataError(f"{type(ds).__name__}: no {key!r}; another 2D input needs the "
                            f"Human3.6M (Pose2Mesh layout) frames")
    info = tensors["frame_info"].numpy()
    size = tensors["image_size"].double().numpy()
    if npz_2d is not None:
        uv, score = read_track_2d(npz_2d, info)
    else:
        uv = coco_projections(root, info)
        score = np.ones(uv.shape[:2])
    x = normalize_pixels(uv, size[:, 0], size[:, 1])
    filled, missing = apply_missing_policy(x, score, min_score, input_joint_set)
    score = np.where(missing, 0.0, score)
    out = dict(tensors)
    out["input_2d"] = torch.from_numpy(np.ascontiguousarray(filled)).float()
    out["score_2d"] = torch.from_numpy(np.ascontiguousarray(score)).float()
    return PoseDataset(out, ds.mesh_levels)
