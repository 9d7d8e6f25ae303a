"""Readers of 2D keypoint files, for lifting detections to 3D (:mod:`hgn_pyg.lift`).

==============  ==================  ============================================================
format          files               layout
==============  ==================  ============================================================
``h36m``        ``.npy`` / ``.npz``  an array ``[T, 17, 2]`` (or ``[T, 17, 3]`` with scores, or
                                    ``[17, 2|3]``) in H36M joint order; ``.npz``: key
                                    ``keypoints`` (or its only array), optional ``scores [T, 17]``
``coco``        ``.npy`` / ``.npz``  the same in COCO-17 order
``coco``        ``.json``           COCO keypoint results: a list of ``{"image_id", "keypoints":
                                    [x, y, s] * 17, "track_id"?}``; or a COCO annotation file
                                    (``{"images", "annotations"}``; image sizes taken from it)
``mmpose``      ``.json``           MMPose predictions (COCO-17): a list of instances
                                    ``{"keypoints": [[x, y]] * 17, "keypoint_scores", "track_id"?}``
                                    (one image), a list of ``{"frame_id", "instances"}`` (a video),
                                    or the demo's ``{"meta_info", "instance_info"}``
``videopose3d`` ``.npz``            VideoPose3D's 2D file (``positions_2d``: video -> camera/ name ->
                                    list of ``[T, 17, 2|3]``; ``metadata``: ``layout_name``
                                    (``coco``/``h36m``), ``video_metadata`` with ``w``, ``h``)
==============  ==================  ============================================================

``auto`` (:func:`detect_format`) looks at the extension and content and says why when it cannot
tell (a plain array of 17 joints may be in either order; an ``.npz`` may say ``keypoint_format``).
People: detections with a ``track_id`` are grouped per track; without one, the i-th detection of
each frame forms track i. Every reader returns a :class:`KeypointFile`; a malformed file raises one
:class:`~hgn_pyg.errors.DataError` naming the file, the key and what is wrong.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from hgn_pyg.data.keypoints import KEYPOINT_FORMATS
from hgn_pyg.data.validate import read_json
from hgn_pyg.errors import DataError
from hgn_pyg.untrusted import load_npz

__all__ = ["FILE_FORMATS", "KeypointTrack", "KeypointFile", "read_keypoints", "detect_format"]

#: ``--format`` values: ``auto`` and the formats of the module docstring.
FILE_FORMATS = ("auto", "h36m", "coco", "mmpose", "videopose3d")

_NUM_JOINTS = 17
PathLike = Union[str, os.PathLike]


@dataclass
class KeypointTrack:
    """One person's keypoints over frames.

    Attributes:
        keypoints: ``[T, K, 2]`` float64 (pixels, or normalised when the file says so).
        scores: ``[T, K]`` float64 or ``None``.
        frames: ``[T]`` int64 frame numbers (image ids for COCO, frame ids for MMPose, 0..T-1 else).
        name: a readable id (``"track 3"``, ``"video.mp4/custom/0"``).
        image_size: ``[T, 2]`` float64 ``(W, H)`` per frame when the file gives it, else ``None``.
    """

    keypoints: np.ndarray
    scores: Optional[np.ndarray]
    frames: np.ndarray
    name: str
    image_size: Optional[np.ndarray] = None


@dataclass
class KeypointFile:
    """What :func:`read_keypoints` found: the joint order, the tracks, and whether coordinates are
    already normalised (``None``: the file does not say)."""

    path: str
    file_format: str
    keypoint_format: str
    tracks: List[KeypointTrack] = field(default_factory=list)
    normalized: Optional[bool] = None

    @property
    def num_frames(self) -> int:
        """Total number of (track, frame) poses."""
        return sum(len(t.frames) for t in self.tracks)


# ---------------------------------------------------------------------------- helpers
def _fail(path, what: str) -> DataError:
    return DataError(f"{path}: {what}")


def _float_array(value: Any, path, key: str) -> np.ndarray:
    try:
        a = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise _fail(path, f"{key}: not a numeric array ({exc})") from None
    if a.dtype == object or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
                                 or a.dtype == bool):
        raise _fail(path, f"{key}: expected numbers, got {a.dtype} values")
    return a.astype(np.float64)  # NaN/inf coordinates are missing keypoints (data.keypoints)


def _split_xy_scores(a: np.ndarray, path, key: str) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """``[T, K, 2|3]`` or ``[K, 2|3]`` -> ``([T, K, 2], [T, K] or None)``; K must be 17."""
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[-1] not in (2, 3) or a.shape[0] == 0:
        raise _fail(path, f"{key}: expected shape [T, {_NUM_JOINTS}, 2] (or 3 with scores), got {list(a.shape)}")
    if a.shape[1] != _NUM_JOINTS:
        raise _fail(path, f"{key}: {a.shape[1]} joints per pose; the lifter reads {_NUM_JOINTS} "
                          "(H36M-17 or COCO-17)")
    return np.ascontiguousarray(a[..., :2]), (np.ascontiguousarray(a[..., 2]) if a.shape[-1] == 3 else None)


def _read_npz(path: Path) -> Dict[str, np.ndarray]:
    """Every array of an ``.npz``: object arrays (VideoPose3D's pickled dicts) through the one
    restricted reader, so nothing in the file can run code."""
    return load_npz(path)


def _group(path, dets: List[Tuple[int, Optional[Any], np.ndarray, Optional[np.ndarray], Optional[Tuple[float, float]]]]
           ) -> List[KeypointTrack]:
    """Detections ``(frame, track_id, xy [17, 2], scores [17], (W, H))`` -> tracks (by track id;
    without ids, the i-th detection of each frame is track i), frames in ascending order."""
    use_ids = any(d[1] is not None for d in dets)
    groups: "OrderedDict[Any, list]" = OrderedDict()
    seen: Dict[int, int] = {}
    for frame, tid, xy, sc, size in dets:
        if use_ids:
            if tid is None:
                raise _fail(path, f"frame {frame}: a detection without a track_id among tracked ones")
            key = tid
        else:
            key = seen.get(frame, 0)
            seen[frame] = key + 1
        groups.setdefault(key, []).append((frame, xy, sc, size))
    tracks = []
    for key, items in groups.items():
        items.sort(key=lambda it: it[0])
        frames = np.array([it[0] for it in items], dtype=np.int64)
        if use_ids and len(np.unique(frames)) != len(frames):
            dup = int(frames[np.flatnonzero(np.diff(frames) == 0)[0]])
            raise _fail(path, f"track_id {key!r} appears twice in frame {dup}")
        has_scores = all(it[2] is not None for it in items)
        sizes = [it[3] for it in items]
        tracks.append(KeypointTrack(
            keypoints=np.stack([it[1] for it in items]),
            scores=np.stack([it[2] for it in items]) if has_scores else None,
            frames=frames,
            name=f"track {key}" if use_ids else f"person {key}",
            image_size=np.array(sizes, dtype=np.float64) if all(s is not None for s in sizes) else None))
    return tracks


def _frame_id(value: Any, path, where: str, names: Dict[Any, int]) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):  # file names as image ids: numbered in order of appearance
        return names.setdefault(value, len(names))
    raise _fail(path, f"{where}: expected an integer or string id, got {type(value).__name__}")


# ---------------------------------------------------------------------------- readers
def _read_array(path: Path, keypoint_format: str) -> KeypointFile:
    normalized = None
    if path.suffix.lower() == ".npy":
        try:
            raw = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise _fail(path, f"not a numeric .npy array ({str(exc).splitlines()[0]})") from None
        except (OSError, EOFError) as exc:
            raise _fail(path, f"not a readable .npy file ({type(exc).__name__}: {exc})") from None
        xy, sc = _split_xy_scores(_float_array(raw, path, "array"), path, "array")
    else:
        z = _read_npz(path)
        if "keypoints" in z:
            key = "keypoints"
        else:
            arrays = [k for k in z if k not in ("scores", "keypoint_format", "normalized")]
            if len(arrays) != 1:
                raise _fail(path, f"no 'keypoints' array (keys: {', '.join(sorted(z)) or 'none'})")
            key = arrays[0]
        xy, sc = _split_xy_scores(_float_array(z[key], path, key), path, key)
        if "scores" in z:
            sc = _float_array(z["scores"], path, "scores")
            if sc.shape != xy.shape[:2]:
                raise _fail(path, f"scores: expected shape {list(xy.shape[:2])}, got {list(sc.shape)}")
        if "normalized" in z:
            normalized = bool(np.asarray(z["normalized"]).reshape(-1)[0])
    return KeypointFile(str(path), keypoint_format, keypoint_format,
                        [KeypointTrack(xy, sc, np.arange(len(xy), dtype=np.int64), "array")], normalized)


def _coco_keypoints(value: Any, path, where: str) -> Tuple[np.ndarray, np.ndarray]:
    a = _float_array(value, path, where)
    if a.shape != (3 * _NUM_JOINTS,):
        raise _fail(path, f"{where}: expected {3 * _NUM_JOINTS} numbers ([x, y, score] * {_NUM_JOINTS}), "
                          f"got shape {list(a.shape)}")
    a = a.reshape(_NUM_JOINTS, 3)
    return a[:, :2].copy(), a[:, 2].copy()


def _read_coco_json(path: Path, data: Any) -> KeypointFile:
    sizes: Dict[Any, Tuple[float, float]] = {}
    if isinstance(data, dict):
        if not isinstance(data.get("annotations"), list):
            raise _fail(path, "a COCO file must be a list of results or hold an 'annotations' list")
        for i, img in enumerate(data.get("images") or []):
            try:
                sizes[img["id"]] = (float(img["width"]), float(img["height"]))
            except (KeyError, TypeError, ValueError):
                raise _fail(path, f"images[{i}]: needs 'id', 'width' and 'height'") from None
        items, where0 = data["annotations"], "annotations"
    else:
        items, where0 = data, "results"
    if not items:
        raise _fail(path, f"{where0}: empty, no detections to lift")
    dets, names = [], {}
    for i, det in enumerate(items):
        where = f"{where0}[{i}]"
        if not isinstance(det, dict) or "keypoints" not in det or "image_id" not in det:
            raise _fail(path, f"{where}: expected an object with 'image_id' and 'keypoints'")
        xy, sc = _coco_keypoints(det["keypoints"], path, f"{where}.keypoints")
        frame = _frame_id(det["image_id"], path, f"{where}.image_id", names)
        tid = det.get("track_id")
        if sizes and det["image_id"] not in sizes:
            raise _fail(path, f"{where}: image_id {det['image_id']!r} is not in 'images'")
        dets.append((frame, tid, xy, sc, sizes.get(det["image_id"])))
    return KeypointFile(str(path), "coco", "coco", _group(path, dets))


def _mmpose_instance(inst: Any, path, where: str) -> Tuple[np.ndarray, Optional[np.ndarray], Any]:
    if not isinstance(inst, dict) or "keypoints" not in inst:
        raise _fail(path, f"{where}: expected an instance object with 'keypoints'")
    kp = _float_array(inst["keypoints"], path, f"{where}.keypoints")
    if kp.ndim == 3 and kp.shape[0] == 1:  # some versions keep a leading instance axis
        kp = kp[0]
    if kp.shape != (_NUM_JOINTS, 2):
        raise _fail(path, f"{where}.keypoints: expected [{_NUM_JOINTS}, 2] (COCO-17), got {list(kp.shape)}")
    sc = None
    if "keypoint_scores" in inst:
        sc = _float_array(inst["keypoint_scores"], path, f"{where}.keypoint_scores").reshape(-1)
        if sc.shape != (_NUM_JOINTS,):
            raise _fail(path, f"{where}.keypoint_scores: expected {_NUM_JOINTS} scores, got {sc.size}")
    return kp, sc, inst.get("track_id")


def _read_mmpose_json(path: Path, data: Any) -> KeypointFile:
    if isinstance(data, dict):
        if not isinstance(data.get("instance_info"), list):
            raise _fail(path, "an MMPose file must be a list, or an object with an 'instance_info' list")
        data = data["instance_info"]
    if not isinstance(data, list) or not data:
        raise _fail(path, "no MMPose predictions (an empty list)")
    if all(isinstance(d, dict) and "instances" in d for d in data):
        frames = [(d.get("frame_id", i), d["instances"], f"[{i}]") for i, d in enumerate(data)]
    elif all(isinstance(d, dict) and "keypoints" in d for d in data):
        frames = [(0, data, "")]
    else:
        raise _fail(path, "expected a list of instances ({'keypoints', 'keypoint_scores'}) or of frames "
                          "({'frame_id', 'instances'})")
    dets, names = [], {}
    for fid, insts, where in frames:
        frame = _frame_id(fid, path, f"{where}.frame_id", names)
        if not isinstance(insts, list):
            raise _fail(path, f"{where}.instances: expected a list")
        for j, inst in enumerate(insts):
            xy, sc, tid = _mmpose_instance(inst, path, f"{where}.instances[{j}]" if where else f"[{j}]")
            dets.append((frame, tid, xy, sc, None))
    if not dets:
        raise _fail(path, "no instances in any frame, nothing to lift")
    return KeypointFile(str(path), "mmpose", "coco", _group(path, dets))


_VP3D_LAYOUTS = {"coco": "coco", "detectron": "coco", "h36m": "h36m"}


def _read_videopose3d(path: Path) -> KeypointFile:
    z = _read_npz(path)
    if "positions_2d" not in z:
        raise _fail(path, f"no 'positions_2d' (keys: {', '.join(sorted(z)) or 'none'}); not a VideoPose3D 2D file")
    pos = z["positions_2d"]
    pos = pos.item() if isinstance(pos, np.ndarray) and pos.dtype == object and pos.shape == () else pos
    meta = z.get("metadata")
    meta = meta.item() if isinstance(meta, np.ndarray) and meta.dtype == object and meta.shape == () else meta
    if not isinstance(pos, dict) or not pos:
        raise _fail(path, "positions_2d: expected a dict video -> {name: [arrays]}")
    layout = "coco"
    video_meta: Dict[str, Any] = {}
    if meta is not None:
        if not isinstance(meta, dict):
            raise _fail(path, "metadata: expected a dict")
        name = str(meta.get("layout_name", "coco")).lower()
        if name not in _VP3D_LAYOUTS:
            raise _fail(path, f"metadata.layout_name: {name!r} is not a 17-joint layout this reads "
                              f"({', '.join(sorted(_VP3D_LAYOUTS))})")
        layout = _VP3D_LAYOUTS[name]
        if int(meta.get("num_joints", _NUM_JOINTS)) != _NUM_JOINTS:
            raise _fail(path, f"metadata.num_joints: {meta.get('num_joints')}; the lifter reads {_NUM_JOINTS}")
        video_meta = meta.get("video_metadata") or {}
        if not isinstance(video_meta, dict):
            raise _fail(path, "metadata.video_metadata: expected a dict")
    tracks = []
    for video, per_name in pos.items():
        if not isinstance(per_name, dict):
            raise _fail(path, f"positions_2d[{video!r}]: expected a dict name -> list of arrays")
        vm = video_meta.get(video)
        size = None
        if vm is not None:
            try:
                size = (float(vm["w"]), float(vm["h"]))
            except (KeyError, TypeError, ValueError):
                raise _fail(path, f"metadata.video_metadata[{video!r}]: needs numbers 'w' and 'h'") from None
        for name, arrays in per_name.items():
            if isinstance(arrays, np.ndarray) and arrays.dtype != object:
                arrays = [arrays]
            if not isinstance(arrays, (list, tuple, np.ndarray)):
                raise _fail(path, f"positions_2d[{video!r}][{name!r}]: expected a list of arrays")
            for k, a in enumerate(arrays):
                key = f"positions_2d[{video!r}][{name!r}][{k}]"
                xy, sc = _split_xy_scores(_float_array(a, path, key), path, key)
                t = len(xy)
                tracks.append(KeypointTrack(xy, sc, np.arange(t, dtype=np.int64), f"{video}/{name}/{k}",
                                            None if size is None else np.tile(np.array(size), (t, 1))))
    if not tracks:
        raise _fail(path, "positions_2d holds no sequences")
    return KeypointFile(str(path), "videopose3d", layout, tracks)


# ---------------------------------------------------------------------------- dispatch
def detect_format(path: PathLike) -> str:
    """The format of ``path`` (one of :data:`FILE_FORMATS` but ``auto``), or a :class:`DataError`
    saying why it cannot be told."""
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "keypoint file not found")
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = read_json(path)
        return _json_kind(path, data)
    if suffix == ".npz":
        z = _read_npz(path)
        if "positions_2d" in z:
            return "videopose3d"
        if "keypoint_format" in z:
            fmt = str(np.asarray(z["keypoint_format"]).reshape(-1)[0])
            if fmt in KEYPOINT_FORMATS:
                return fmt
            raise _fail(path, f"keypoint_format: {fmt!r} is not one of {list(KEYPOINT_FORMATS)}")
    if suffix in (".npy", ".npz"):
        raise _fail(path, "a plain array of 17 joints may be in H36M or COCO order: give --format h36m or "
                          "--format coco (or store keypoint_format in the .npz)")
    raise _fail(path, f"unknown keypoint file type {suffix!r} (expected .json, .npy or .npz)")


def _json_kind(path: Path, data: Any) -> str:
    if isinstance(data, dict):
        if "instance_info" in data:
            return "mmpose"
        if "annotations" in data:
            return "coco"
        raise _fail(path, "a JSON object without 'annotations' (COCO) or 'instance_info' (MMPose)")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        first = data[0]
        if "instances" in first:
            return "mmpose"
        kp = first.get("keypoints")
        if isinstance(kp, list) and kp and isinstance(kp[0], list):
            return "mmpose"
        if isinstance(kp, list) and "image_id" in first:
            return "coco"
    raise _fail(path, "JSON is neither COCO keypoint results (a list of {'image_id', 'keypoints'}) nor "
                      "MMPose predictions")


def read_keypoints(path: PathLike, file_format: str = "auto") -> KeypointFile:
    """Read a keypoint file (module docstring) as a :class:`KeypointFile`.

    Raises:
        DataError: unknown format, missing, unreadable or malformed file (one line naming the
            file and the key at fault).
    """
    path = Path(path)
    if file_format not in FILE_FORMATS:
        raise DataError(f"--format {file_format!r}: expected one of {', '.join(FILE_FORMATS)}")
    if not path.is_file():
        raise _fail(path, "keypoint file not found")
    fmt = detect_format(path) if file_format == "auto" else file_format
    suffix = path.suffix.lower()
    if fmt == "videopose3d":
        if suffix != ".npz":
            raise _fail(path, "--format videopose3d reads a VideoPose3D .npz file")
        return _read_videopose3d(path)
    if fmt in ("h36m", "coco") and suffix in (".npy", ".npz"):
        return _read_array(path, fmt)
    if suffix != ".json":
        raise _fail(path, f"--format {fmt} reads {'.json' if fmt == 'mmpose' else '.json, .npy or .npz'} files")
    if fmt == "h36m":
        raise _fail(path, "H36M-ordered keypoints are read from .npy/.npz arrays; JSON files are COCO or MMPose")
    data = read_json(path)
    return _read_coco_json(path, data) if fmt == "coco" else _read_mmpose_json(path, data)
