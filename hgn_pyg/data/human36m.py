"""Human3.6M in the Pose2Mesh annotation layout (real or synthetic), docs/published_model.md §4–§5.

Files read, per subject S, under ``root/annotations/``::

    Human36M_subject{S}_data.json        COCO style: images (id, width, height, subject,
                                         action_idx, subaction_idx, frame_idx, cam_idx),
                                         annotations (id, image_id, bbox)
    Human36M_subject{S}_camera.json      {cam_idx: {R [3x3], t [3] (mm), f [2], c [2]}}
    Human36M_subject{S}_joint_3d.json    {action: {subaction: {frame: 17x3 world mm}}}
    Human36M_subject{S}_smpl_param.json  {action: {subaction: {frame: {pose 72, shape 10, trans 3}}}}

Per annotated image (after subsampling by ``frame_idx`` and the skip list):

* camera joints ``X_c = R·X_w + t`` (mm); pixels ``u = X/Z·f_x + c_x``, ``v = Y/Z·f_y + c_y``;
* input ``input_2d = (u, v) / w · 2 − (1, h / w)`` (image width ``w``, height ``h``), ``[17, 2]``;
* target ``joints_3d = (X_c − X_c[pelvis]) / 1000`` (metres, camera frame), ``[17, 3]``;
* mesh targets (with a hierarchy): the world SMPL mesh taken into the camera,
  ``R·(SMPL(θ, β) + trans) + t``, computed as ``SMPL(θ with root R·root, β) + (R·trans + t − J0 +
  R·J0)`` (neutral body, ``β := 0`` when any ``|β| > 3``, ``J0`` the root joint of that forward
  pass), minus the Human3.6M pelvis, coarsened by ``hierarchy.coarsen_vertices`` at each of
  ``mesh_levels`` → ``[num_real[level], 3]`` in original cluster order.

Why the root trick is exact: SMPL rotates the posed body about its root joint, so
``SMPL(θ, β) = R_root·(L − J0) + J0`` with ``L`` the body posed in the root's frame and ``J0`` the
rest-pose root joint (it depends on β only). Hence ``R·(SMPL(θ, β) + trans) + t =
(R·R_root)·(L − J0) + R·J0 + R·trans + t = SMPL(θ with root R·R_root, β) − J0 + R·J0 + R·trans + t``.

All targets are computed once and cached on disk (see :mod:`hgn_pyg.data.cache`); items are
then pure tensor indexing.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..errors import DataError
from . import cache as _cache
from .body_model import default_body_model_path
from .camera import normalize_pixels, project, world_to_camera
from .mesh_targets import SHAPE_LIMIT, camera_meshes, camera_root_pose, mesh_targets
from .actions import ACTION_OFFSET, ACTIONS
from .pose_dataset import NUM_JOINTS, ROOT_JOINT, PoseDataset
from .validate import (
    as_array,
    as_int,
    as_positive,
    check_rotation,
    data_error,
    describe,
    first_bad_row,
    get_key,
    key_path,
    read_json,
)

log = logging.getLogger(__name__)

#: Subjects per protocol and split. Protocol 2 is the HGN / docs/published_model.md §4 split.
PROTOCOL_SUBJECTS: Dict[int, Dict[str, Tuple[int, ...]]] = {
    1: {"train": (1, 5, 6, 7, 8, 9), "test": (11,)},
    2: {"train": (1, 5, 6, 7, 8), "test": (9, 11)},
}
#: Default frame subsampling (every k-th ``frame_idx``).
DEFAULT_SUBSAMPLE: Dict[str, int] = {"train": 5, "test": 50}
#: Corrupt sequences skipped by default: (subject, action_idx, subaction_idx).
DEFAULT_SKIP: Tuple[Tuple[int, int, int], ...] = ((9, 5, 2), (9, 10, 2), (9, 13, 1))
#: Bumped whenever the computation of cached tensors changes.
CACHE_VERSION = 2  # 2: mesh targets from one world-frame SMPL pass per frame

PathLike = Union[str, os.PathLike]


# --------------------------------------------------------------------------------------------
# Human3.6M, Pose2Mesh layout
# --------------------------------------------------------------------------------------------
def annotation_path(root: PathLike, subject: int, kind: str) -> Path:
    """``root/annotations/Human36M_subject{subject}_{kind}.json``."""
    return Path(root) / "annotations" / f"Human36M_subject{int(subject)}_{kind}.json"


def bbox_is_empty(bbox: np.ndarray, width: float, height: float) -> bool:
    """Whether a COCO box ``(x, y, w, h)`` counts as empty by the published rule
    (docs/published_model.md §4): ``w·h <= 0``, ``w < 1`` or ``h < 1``. The box is not clipped
    to the image first, so its position (and ``width``/``height``) do not matter: a box partly or
    wholly outside the image is kept, a box narrower than one pixel is dropped."""
    _x, _y, w, h = (float(v) for v in bbox)
    return not (w * h > 0 and w >= 1 and h >= 1)  # NaN sizes count as empty


def protocol_subjects(split: str, subjects: Optional[Iterable[Any]], protocol: int,
                      reader: str = "Human36M") -> Iterable[Any]:
    """``subjects`` as given, or the subjects of ``split`` in ``protocol`` when ``None``; a bad split
    or protocol raises :class:`DataError` naming ``reader`` (shared by both Human3.6M readers)."""
    if split not in ("train", "test"):
        raise DataError(f"{reader}: split must be 'train' or 'test', got {split!r}")
    if subjects is None:
        if protocol not in PROTOCOL_SUBJECTS:
            raise DataError(f"{reader}: protocol must be one of {sorted(PROTOCOL_SUBJECTS)}, "
                            f"got {protocol!r}")
        return PROTOCOL_SUBJECTS[protocol][split]
    return subjects


def _resolve_subjects(split: str, subjects: Optional[Iterable[int]], protocol: int) -> Tuple[int, ...]:
    out = tuple(int(s) for s in protocol_subjects(split, subjects, protocol))
    if not out:
        raise DataError("Human36M: empty subject list")
    return out


class Human36M(PoseDataset):
    r"""Human3.6M (Pose2Mesh annotation layout, real or synthetic) for HGN, docs/published_model.md §4–§5.

    Args:
        root: data root holding ``annotations/Human36M_subject{S}_*.json``.
        split: ``"train"`` or ``"test"``.
        subjects: subject ids; default from ``protocol`` (protocol 2: train 1, 5, 6, 7, 8;
            test 9, 11 — docs/published_model.md §4; protocol 1: train 1, 5, 6, 7, 8, 9; test 11).
        subsample: keep frames with ``frame_idx % subsample == 0`` (default 5 train, 50 test).
        hierarchy: a :class:`~hgn_pyg.graphs.GraphHierarchy` built from the body model's faces;
            with it, items carry mesh targets at ``mesh_levels``.
        mesh_levels: hierarchy levels of the mesh targets (default ``(8, 7)``: 45 and 83 real
            vertices on SMPL, the order of the model's outputs).
        body_model_path: SMPL file (``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl`` /
            ``SMPL_NEUTRAL.npz``) or the embedded open model; default
            :func:`hgn_pyg.data.body_model.default_body_model_path`.
        cache_dir: folder of the target cache (default ``root/cache``).
        protocol: 1 or 2 (see ``subjects``).
        skip: ``(subject, action_idx, subaction_idx)`` sequences to leave out
            (default :data:`DEFAULT_SKIP`, the corrupt S9 sequences).
        joints_only: do not read SMPL parameters at all (no mesh targets, frames without SMPL
            parameters kept). By default frames without SMPL parameters are dropped in both
            splits, as in the published pipeline, whether or not meshes are computed.
        use_cache: read/write the cache (``False``: always recompute, write nothing).
        smpl_batch_size: frames per SMPL forward pass while building mesh targets.

    Shapes: see :class:`PoseDataset`. Raises :class:`~hgn_pyg.errors.DataError` naming the file
    and key for any missing or malformed input.
    """

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        subjects: Optional[Iterable[int]] = None,
        subsample: Optional[int] = None,
        hierarchy: Any = None,
        mesh_levels: Sequence[int] = (8, 7),
        body_model_path: Optional[PathLike] = None,
        cache_dir: Optional[PathLike] = None,
        protocol: int = 2,
        skip: Iterable[Tuple[int, int, int]] = DEFAULT_SKIP,
        joints_only: bool = False,
        use_cache: bool = True,
        smpl_batch_size: int = 512,
    ):
        self.root = Path(root)
        self.split = split
        self.subjects = _resolve_subjects(split, subjects, protocol)
        self.subsample = int(DEFAULT_SUBSAMPLE.get(split, 1) if subsample is None else subsample)
        if self.subsample < 1:
            raise DataError(f"Human36M: subsample must be >= 1, got {subsample!r}")
        self.skip = tuple(sorted({tuple(int(v) for v in s) for s in skip}))
        if any(len(s) != 3 for s in self.skip):
            raise DataError(f"Human36M: skip entries must be (subject, action_idx, subaction_idx), "
                            f"got {list(skip)!r}")
        self.joints_only = bool(joints_only)
        self.hierarchy = None if joints_only else hierarchy
        levels = tuple(int(level) for level in mesh_levels) if self.hierarchy is not None else ()
        self.smpl_batch_size = int(smpl_batch_size)
        if not (self.root / "annotations").is_dir():
            raise DataError(f"{self.root}: data root not found (expected a folder "
                            f"'annotations' with Human36M_subject*_*.json)")
        if self.hierarchy is not None:
            num_levels = int(getattr(self.hierarchy, "num_levels", len(self.hierarchy.num_real)))
            bad = [level for level in levels if not 0 <= level < num_levels]
            if bad:
                raise DataError(f"Human36M: mesh_levels {bad} outside the hierarchy's levels "
                                f"0..{num_levels - 1}")
        self.body_model_path: Optional[Path] = None
        if self.hierarchy is not None:
            if body_model_path is None:
                body_model_path = default_body_model_path()
            self.body_model_path = Path(body_model_path)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.root / "cache"

        kinds = ("data", "camera", "joint_3d") + (() if self.joints_only else ("smpl_param",))
        files = {s: {k: annotation_path(self.root, s, k) for k in kinds} for s in self.subjects}
        for s, by_kind in files.items():
            for path in by_kind.values():
                if not path.is_file():
                    raise DataError(f"{path}: file not found (subject {s} is in the "
                                    f"{split!r} split)")

        self.cache_path: Optional[Path] = None
        self.cache_hit = False
        tensors: Optional[Dict[str, torch.Tensor]] = None
        key = None
        if use_cache:
            key = self._cache_key(files, levels)
            subj = "-".join(str(s) for s in self.subjects)
            self.cache_path = self.cache_dir / f"human36m_{split}_S{subj}_{key[:16]}.pt"
            loaded = _cache.load_tensors(self.cache_path, key)
            if loaded is not None:
                tensors = loaded["tensors"]
                self.cache_hit = True
                log.info("Human36M %s: %d samples from cache %s", split,
                         len(tensors["action"]), self.cache_path)
        if tensors is None:
            tensors = self._build(files, levels)
            if use_cache:
                try:
                    _cache.save_tensors(self.cache_path, tensors, key,
                                        meta={"split": split, "subjects": list(self.subjects)})
                except OSError as exc:
                    log.warning("could not write the cache file %s (%s); continuing without",
                                self.cache_path, exc)
        super().__init__(tensors, levels)

    # -- cache key -------------------------------------------------------------------------------
    def _cache_key(self, files: Dict[int, Dict[str, Path]], levels: Tuple[int, ...]) -> str:
        parts: Dict[str, Any] = {
            "dataset": "Human36M",
            "version": CACHE_VERSION,
            "subjects": list(self.subjects),
            "subsample": self.subsample,
            "skip": [list(s) for s in self.skip],
            "joints_only": self.joints_only,
            "files": {f"{s}/{k}": _cache.file_fingerprint(p)
                      for s, by_kind in files.items() for k, p in by_kind.items()},
            "mesh_levels": list(levels),
        }
        if self.hierarchy is not None:
            parts["body_model"] = _cache.file_fingerprint(self.body_model_path)
            parts["hierarchy"] = _cache.hierarchy_signature(self.hierarchy, levels)
        return _cache.cache_key(parts)

    # -- building ----------------------------------------------------------------------------------
    def _build(self, files: Dict[int, Dict[str, Path]], levels: Tuple[int, ...]) -> Dict[str, torch.Tensor]:
        cols: Dict[str, List[np.ndarray]] = {}
        for s in self.subjects:
            part = _read_subject(s, files[s], self.subsample, self.skip, self.joints_only)
            log.info("Human36M %s: subject %d, %d samples", self.split, s, len(part["action"]))
            for name, arr in part.items():
                cols.setdefault(name, []).append(arr)
        if not cols or sum(len(a) for a in cols["action"]) == 0:
            raise DataError(f"{self.root}: no samples left for split {self.split!r} (subjects "
                            f"{list(self.subjects)}, subsample {self.subsample}) after the "
                            f"skip list and the SMPL/bounding-box filters")
        cat = {name: np.concatenate(arrs, axis=0) for name, arrs in cols.items()}

        cam = cat["joints_cam"]                              # [N, 17, 3] mm
        z = cam[..., 2:3]
        if (z <= 0).any():
            n = int(np.nonzero((z <= 0).any(axis=(1, 2)))[0][0])
            info = cat["frame_info"][n]
            raise DataError(f"{annotation_path(self.root, info[0], 'joint_3d')}: "
                            f"{key_path([str(info[1]), str(info[2]), str(info[3])])}: joints "
                            f"behind camera {info[4]} (Z <= 0), cannot project")
        w, h = cat["image_size"][:, 0], cat["image_size"][:, 1]
        with np.errstate(over="ignore", invalid="ignore"):
            uv = project(cam, cat["focal"][:, None, :], cat["center"][:, None, :])
            input_2d = normalize_pixels(uv, w, h)
            joints_3d = (cam - cam[:, ROOT_JOINT:ROOT_JOINT + 1]) / 1000.0
        bad = first_bad_row(uv, cam, input_2d, joints_3d)
        if bad is not None:
            info = cat["frame_info"][bad]
            raise DataError(f"{annotation_path(self.root, info[0], 'joint_3d')}: "
                            f"{key_path([str(info[1]), str(info[2]), str(info[3])])}: joints give "
                            f"non-finite camera/pixel coordinates with camera {info[4]} of "
                            f"{annotation_path(self.root, info[0], 'camera')} (values out of the "
                            f"float32 range)")
        tensors: Dict[str, torch.Tensor] = {
            "input_2d": torch.from_numpy(input_2d).float(),
            "joints_3d": torch.from_numpy(joints_3d).float(),
            "root_3d": torch.from_numpy(cam[:, ROOT_JOINT] / 1000.0).float(),
            "action": torch.from_numpy(cat["frame_info"][:, 1] - ACTION_OFFSET).long(),
            "subject": torch.from_numpy(cat["frame_info"][:, 0]).long(),
            "frame_info": torch.from_numpy(cat["frame_info"]).long(),
            "focal": torch.from_numpy(cat["focal"]).float(),
            "center": torch.from_numpy(cat["center"]).float(),
            "image_size": torch.from_numpy(cat["image_size"]).float(),
        }
        if self.hierarchy is not None:
            meshes = mesh_targets(self.body_model_path, self.hierarchy, levels, cat["smpl_pose"],
                                  cat["smpl_shape"], cat["smpl_trans"], cat["cam_R"],
                                  cat["cam_t"], cam[:, ROOT_JOINT], self.smpl_batch_size)
            for k, m in enumerate(meshes):
                if not torch.isfinite(m).all():
                    raise DataError(f"{annotation_path(self.root, self.subjects[0], 'smpl_param')}"
                                    f" (or another subject's): SMPL parameters give non-finite "
                                    f"mesh vertices")
                tensors[f"meshes_{k}"] = m
        return {name: t.contiguous() for name, t in tensors.items()}


def _read_subject(subject: int, files: Dict[str, Path], subsample: int,
                  skip: Sequence[Tuple[int, int, int]], joints_only: bool) -> Dict[str, np.ndarray]:
    """Read, validate and filter one subject's annotation files into per-sample arrays."""
    data_path, cam_path, j3d_path = files["data"], files["camera"], files["joint_3d"]
    data = read_json(data_path, f"subject {subject} image list")
    images = get_key(data, "images", data_path, [])
    anns = get_key(data, "annotations", data_path, [])
    if not isinstance(images, list):
        raise data_error(data_path, ["images"], f"expected a list, got {describe(images)}")
    if not isinstance(anns, list):
        raise data_error(data_path, ["annotations"], f"expected a list, got {describe(anns)}")
    by_id: Dict[int, int] = {}
    for i, img in enumerate(images):
        by_id[as_int(get_key(img, "id", data_path, ["images", i]), data_path, ["images", i, "id"])] = i

    cameras_raw = read_json(cam_path, f"subject {subject} cameras")
    if not isinstance(cameras_raw, Mapping):
        raise data_error(cam_path, [], f"expected an object of cameras, got {describe(cameras_raw)}")
    joints_raw = read_json(j3d_path, f"subject {subject} 3D joints")
    if not isinstance(joints_raw, Mapping):
        raise data_error(j3d_path, [], f"expected an object of actions, got {describe(joints_raw)}")
    smpl_raw = None
    if not joints_only:
        smpl_path = files["smpl_param"]
        smpl_raw = read_json(smpl_path, f"subject {subject} SMPL parameters")
        if not isinstance(smpl_raw, Mapping):
            raise data_error(smpl_path, [], f"expected an object of actions, got "
                                            f"{describe(smpl_raw)}")

    skip_set = {(a, sa) for (s, a, sa) in skip if s == subject}
    cameras: Dict[int, Tuple[np.ndarray, ...]] = {}
    out: Dict[str, List[Any]] = {k: [] for k in (
        "frame_info", "joints_world", "image_size", "cam_R", "cam_t", "focal", "center",
        "smpl_pose", "smpl_shape", "smpl_trans")}
    dropped_smpl = dropped_bbox = 0
    for n, ann in enumerate(anns):
        where = ["annotations", n]
        img_id = as_int(get_key(ann, "image_id", data_path, where), data_path, where + ["image_id"])
        if img_id not in by_id:
            raise data_error(data_path, where + ["image_id"], f"image id {img_id} not in 'images'")
        i = by_id[img_id]
        img = images[i]
        iw = ["images", i]
        fields = {k: as_int(get_key(img, k, data_path, iw), data_path, iw + [k])
                  for k in ("subject", "action_idx", "subaction_idx", "frame_idx", "cam_idx")}
        if fields["subject"] != subject:
            raise data_error(data_path, iw + ["subject"],
                             f"image of subject {fields['subject']} in subject {subject}'s file")
        action, sub, frame, cam = (fields["action_idx"], fields["subaction_idx"],
                                   fields["frame_idx"], fields["cam_idx"])
        if not ACTION_OFFSET <= action < ACTION_OFFSET + len(ACTIONS):
            raise data_error(data_path, iw + ["action_idx"], f"action_idx must be in "
                             f"{ACTION_OFFSET}..{ACTION_OFFSET + len(ACTIONS) - 1}, got {action}")
        if frame % subsample != 0 or (action, sub) in skip_set:
            continue
        width = as_positive(get_key(img, "width", data_path, iw), data_path, iw + ["width"])
        height = as_positive(get_key(img, "height", data_path, iw), data_path, iw + ["height"])
        bbox = as_array(get_key(ann, "bbox", data_path, where), (4,), data_path, where + ["bbox"],
                        "bbox values (x, y, w, h)")
        if bbox_is_empty(bbox, width, height):
            dropped_bbox += 1
            continue
        smpl = None
        if smpl_raw is not None:
            smpl = _lookup_smpl(smpl_raw, action, sub, frame, files["smpl_param"])
            if smpl is None:
                dropped_smpl += 1
                continue
        if cam not in cameras:
            cameras[cam] = _read_camera(cameras_raw, cam, cam_path)
        R, t, f, c = cameras[cam]
        keys = [str(action), str(sub), str(frame)]
        node: Any = joints_raw
        for depth, k in enumerate(keys):
            node = get_key(node, k, j3d_path, keys[:depth], "3D joints of this frame")
        joints = as_array(node, (NUM_JOINTS, 3), j3d_path, keys, "joints")
        out["frame_info"].append((subject, action, sub, frame, cam))
        out["joints_world"].append(joints)
        out["image_size"].append((width, height))
        out["cam_R"].append(R)
        out["cam_t"].append(t)
        out["focal"].append(f)
        out["center"].append(c)
        if smpl is not None:
            out["smpl_pose"].append(smpl[0])
            out["smpl_shape"].append(smpl[1])
            out["smpl_trans"].append(smpl[2])
    if dropped_bbox or dropped_smpl:
        log.info("subject %d: dropped %d frames with an empty box, %d without SMPL parameters",
                 subject, dropped_bbox, dropped_smpl)

    n = len(out["frame_info"])
    res: Dict[str, np.ndarray] = {
        "frame_info": np.asarray(out["frame_info"], dtype=np.int64).reshape(n, 5),
        "image_size": np.asarray(out["image_size"], dtype=np.float64).reshape(n, 2),
        "cam_R": np.asarray(out["cam_R"], dtype=np.float64).reshape(n, 3, 3),
        "cam_t": np.asarray(out["cam_t"], dtype=np.float64).reshape(n, 3),
        "focal": np.asarray(out["focal"], dtype=np.float64).reshape(n, 2),
        "center": np.asarray(out["center"], dtype=np.float64).reshape(n, 2),
    }
    world = np.asarray(out["joints_world"], dtype=np.float64).reshape(n, NUM_JOINTS, 3)
    with np.errstate(over="ignore", invalid="ignore"):
        res["joints_cam"] = world_to_camera(world, res["cam_R"], res["cam_t"][:, None, :])
    if not joints_only:
        res["smpl_pose"] = np.asarray(out["smpl_pose"], dtype=np.float64).reshape(n, 72)
        res["smpl_shape"] = np.asarray(out["smpl_shape"], dtype=np.float64).reshape(n, 10)
        res["smpl_trans"] = np.asarray(out["smpl_trans"], dtype=np.float64).reshape(n, 3)
    res["action"] = res["frame_info"][:, 1]
    return res


def _read_camera(cameras: Mapping, cam: int, path: Path) -> Tuple[np.ndarray, ...]:
    node = get_key(cameras, str(cam), path, [], f"camera {cam}")
    keys = [str(cam)]
    R = as_array(get_key(node, "R", path, keys), (3, 3), path, keys + ["R"], "rotation R")
    check_rotation(R, path, keys + ["R"])
    t = as_array(get_key(node, "t", path, keys), (3,), path, keys + ["t"], "translation t (mm)")
    f = as_array(get_key(node, "f", path, keys), (2,), path, keys + ["f"], "focal length f")
    c = as_array(get_key(node, "c", path, keys), (2,), path, keys + ["c"], "principal point c")
    if (f <= 0).any():
        raise data_error(path, keys + ["f"], f"focal lengths must be positive, got {f.tolist()}")
    return R, t, f, c


def _lookup_smpl(smpl: Mapping, action: int, sub: int, frame: int,
                 path: Path) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The (pose, shape, trans) of a frame; ``None`` when the frame has no SMPL entry."""
    node: Any = smpl
    keys = [str(action), str(sub), str(frame)]
    for depth, k in enumerate(keys):
        if not isinstance(node, Mapping):
            raise data_error(path, keys[:depth], f"expected an object, got {describe(node)}")
        if k not in node:
            return None
        node = node[k]
    if node is None:
        return None
    pose = as_array(get_key(node, "pose", path, keys), (72,), path, keys + ["pose"], "SMPL pose values")
    shape = as_array(get_key(node, "shape", path, keys), (10,), path, keys + ["shape"], "SMPL shape values")
    trans = as_array(get_key(node, "trans", path, keys), (3,), path, keys + ["trans"], "SMPL trans values")
    return pose, shape, trans


__all__ = [
    "ACTIONS",
    "ACTION_OFFSET",
    "PROTOCOL_SUBJECTS",
    "DEFAULT_SUBSAMPLE",
    "DEFAULT_SKIP",
    "CACHE_VERSION",
    "PoseDataset",
    "Human36M",
    "annotation_path",
    "bbox_is_empty",
    "camera_root_pose",
    "camera_meshes",
    "mesh_targets",
    "normalize_pixels",
    "SHAPE_LIMIT",
]
