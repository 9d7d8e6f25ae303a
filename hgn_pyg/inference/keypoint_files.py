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

Size limits (checked before anything is allocated; a file beyond them is one
:class:`~hgn_pyg.errors.DataError`):

* :data:`MAX_POSES` poses per file (``.npy`` shape from its header, ``.npz`` member headers);
* :data:`MAX_NPZ_MEMBER_BYTES` decoded bytes per ``.npz`` member, read from the zip directory
  before decompressing (an ``.npz`` member is decompressed whole; longer inputs go in ``.npy``);
* :data:`MAX_JSON_BYTES` per JSON file (Python's JSON objects take ~16x the text); the nesting
  depth of JSON is bounded by the parser (about 1000 levels, refused with one line);
* a ``.npy`` file is read in chunks (:class:`NpyRows`): lifting memory stays flat in the number
  of frames.

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
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from hgn_pyg.data.keypoints import KEYPOINT_FORMATS
from hgn_pyg.data.validate import read_json
from hgn_pyg.data.videopose3d import read_npz_dict
from hgn_pyg.errors import DataError
from hgn_pyg.untrusted import load_npz

__all__ = ["FILE_FORMATS", "KeypointTrack", "KeypointFile", "read_keypoints", "detect_format", "NpyRows",
           "MAX_POSES", "MAX_NPZ_MEMBER_BYTES", "MAX_JSON_BYTES", "MAX_ID"]

#: ``--format`` values: ``auto`` and the formats of the module docstring.
FILE_FORMATS = ("auto", "h36m", "coco", "mmpose", "videopose3d")

_NUM_JOINTS = 17
PathLike = Union[str, os.PathLike]

#: Most poses (track x frame) one keypoint file may hold: 10 million, four days of 30 fps video;
#: their outputs alone take ~2 GB (``.npz``) and ~5 GB (``.json``).
MAX_POSES = 10_000_000
#: Most decoded bytes of one ``.npz`` member (decompressed whole into memory): 512 MiB, about
#: 1.3 million ``[17, 3]`` float64 poses; a longer input belongs in a ``.npy`` file (streamed).
MAX_NPZ_MEMBER_BYTES = 512 * 2 ** 20
#: Largest JSON keypoint file: 128 MiB (~250k COCO detections); parsed, Python's objects take
#: about 16x the text, so this bounds the reader at ~2 GB.
MAX_JSON_BYTES = 128 * 2 ** 20
#: Largest |image_id| / |frame_id| (int64 frame numbers, with room for arithmetic).
MAX_ID = 2 ** 62


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

    def __len__(self) -> int:
        return len(self.frames)

    def rows(self, lo: int, hi: int) -> Tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
        """``(keypoints, scores, image_size)`` of frames ``lo:hi`` as float64 arrays (a chunk: a
        streamed ``.npy`` reads only these rows)."""
        kp = np.asarray(self.keypoints[lo:hi], dtype=np.float64)
        sc = None if self.scores is None else np.asarray(self.scores[lo:hi], dtype=np.float64)
        size = None if self.image_size is None else np.asarray(self.image_size[lo:hi], dtype=np.float64)
        return kp, sc, size


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


# ---------------------------------------------------------------------------- streamed .npy
class NpyRows:
    """Columns ``cols`` of a C-ordered ``.npy`` array ``[T, 17, C]`` read lazily by rows: slicing
    (``rows[lo:hi]``) reads only those rows from the file (``os.pread``), as float64;
    ``np.asarray(rows)`` reads everything. Shape and dtype come from the header (checked)."""

    def __init__(self, path: Path, offset: int, shape: Tuple[int, ...], dtype: np.dtype, cols: slice):
        self.path, self.offset, self.dtype, self.cols = path, offset, dtype, cols
        self.file_shape = shape
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        width = len(range(*cols.indices(shape[-1])))
        self.shape = (shape[0], shape[1], width) if width > 1 else (shape[0], shape[1])
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, item: slice) -> np.ndarray:
        if not isinstance(item, slice):
            raise TypeError("NpyRows: only row slices are read")
        lo, hi, step = item.indices(self.shape[0])
        if step != 1:
            raise TypeError("NpyRows: only contiguous row slices are read")
        n = max(hi - lo, 0)
        with open(self.path, "rb") as fh:
            raw = os.pread(fh.fileno(), n * self.row_bytes, self.offset + lo * self.row_bytes)
        if len(raw) != n * self.row_bytes:
            raise _fail(self.path, f"truncated .npy file (rows {lo}:{hi} of {self.shape[0]} missing)")
        a = np.frombuffer(raw, dtype=self.dtype).reshape((n,) + tuple(self.file_shape[1:]))
        out = a[..., self.cols].astype(np.float64)
        return out.reshape((n,) + self.shape[1:])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def _npy_header(fh, path, what: str) -> Tuple[Tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype of a ``.npy`` stream from its header alone."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            return fmt.read_array_header_1_0(fh, max_header_size=10000)
        if version == (2, 0):
            return fmt.read_array_header_2_0(fh, max_header_size=10000)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        where = f"{what}: " if what else ""
        raise _fail(path, f"{where}not a readable .npy file ({str(exc).splitlines()[0][:200]})") from None
    raise _fail(path, f"{what + ': ' if what else ''}unsupported .npy format version {version}")


def _check_shape(path, what: str, shape: Tuple[int, ...], dtype: np.dtype, numeric: bool = True) -> None:
    real = np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer) or dtype == bool
    if numeric and (dtype.hasobject or not real):
        raise _fail(path, f"{what}: expected numbers, got {dtype} values")
    if len(shape) == 3 and shape[0] > MAX_POSES:
        raise _fail(path, f"{what}: {shape[0]} poses declared; at most {MAX_POSES} are read "
                          "(MAX_POSES in hgn_pyg.inference.keypoint_files): split the file")
    if shape and int(np.prod(shape, dtype=np.float64)) > MAX_POSES * _NUM_JOINTS * 3:
        raise _fail(path, f"{what}: shape {list(shape)} is beyond the {MAX_POSES}-pose limit")


def _open_npy(path: Path) -> Tuple[Any, Optional[Any]]:
    """``(keypoints, scores)`` of a ``.npy`` file, checked from its header and read lazily."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            shape, fortran, dtype = _npy_header(fh, path, "")
            offset = fh.tell()
    except OSError as exc:
        raise _fail(path, f"cannot read file ({exc.strerror or exc})") from None
    _check_shape(path, "array", shape, dtype)
    if len(shape) == 2:
        shape = (1,) + tuple(shape)
    if len(shape) != 3 or shape[-1] not in (2, 3) or shape[0] == 0:
        raise _fail(path, f"array: expected shape [T, {_NUM_JOINTS}, 2] (or 3 with scores), got {list(shape)}")
    if shape[1] != _NUM_JOINTS:
        raise _fail(path, f"array: {shape[1]} joints per pose; the lifter reads {_NUM_JOINTS} (H36M-17 or COCO-17)")
    need = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size < need:
        raise _fail(path, f"truncated .npy file: the header declares {list(shape)} {dtype} ({need} bytes), "
                          f"the file has {size}")
    if fortran:  # rare: read it whole (bounded by MAX_POSES)
        a = np.load(path, mmap_mode="r", allow_pickle=False).reshape(shape)
        return a[..., :2], (a[..., 2] if shape[-1] == 3 else None)
    xy = NpyRows(path, offset, shape, dtype, slice(0, 2))
    sc = NpyRows(path, offset, shape, dtype, slice(2, 3)) if shape[-1] == 3 else None
    return xy, sc


def _check_npz_members(path: Path) -> None:
    """Refuse an ``.npz`` whose members would decode beyond :data:`MAX_NPZ_MEMBER_BYTES` or whose
    array headers declare more than :data:`MAX_POSES` poses — from the zip directory and the
    headers, before anything is decompressed."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if info.file_size > MAX_NPZ_MEMBER_BYTES:
                    raise _fail(path, f"[\"{key}\"]: decodes to {info.file_size} bytes; at most "
                                      f"{MAX_NPZ_MEMBER_BYTES} per .npz member (MAX_NPZ_MEMBER_BYTES in "
                                      "hgn_pyg.inference.keypoint_files): store long inputs as .npy")
                with zf.open(info) as fh:
                    shape, _, dtype = _npy_header(fh, path, f"[\"{key}\"]")
                if not dtype.hasobject:
                    _check_shape(path, f"[\"{key}\"]", shape, dtype, numeric=False)
                    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                    if declared > info.file_size:
                        raise _fail(path, f"[\"{key}\"]: the header declares {list(shape)} {dtype}, more than "
                                          f"the {info.file_size} bytes stored")
    except DataError:
        raise
    except Exception as exc:  # zip errors of a truncated or foreign file
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _fail(path, f"not a readable .npz file ({type(exc).__name__}: {msg[:200]})") from None


def _read_json_bounded(path: Path) -> Any:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _fail(path, f"cannot read file ({exc.strerror or exc})") from None
    if size > MAX_JSON_BYTES:
        raise _fail(path, f"{size} bytes of JSON; at most {MAX_JSON_BYTES} are read (MAX_JSON_BYTES in "
                          "hgn_pyg.inference.keypoint_files): split the file or convert it to .npy")
    return read_json(path)


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
    _check_npz_members(path)
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
        if not -MAX_ID <= int(value) <= MAX_ID:
            raise _fail(path, f"{where}: {int(value)} is out of range (|id| <= 2**62)")
        return int(value)
    if isinstance(value, str):  # file names as image ids: numbered in order of appearance
        return names.setdefault(value, len(names))
    raise _fail(path, f"{where}: expected an integer or string id, got {type(value).__name__}")


def _track_id(value: Any, path, where: str) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _fail(path, f"{where}.track_id: expected an integer or string id, got {type(value).__name__}")


# ---------------------------------------------------------------------------- readers
def _read_array(path: Path, keypoint_format: str) -> KeypointFile:
    normalized = None
    if path.suffix.lower() == ".npy":
        xy, sc = _open_npy(path)
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
                        [KeypointTrack(xy, sc, np.arange(xy.shape[0], dtype=np.int64), "array")], normalized)


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
        tid = _track_id(det.get("track_id"), path, where)
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
    return kp, sc, _track_id(inst.get("track_id"), path, where)


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
    loaded = read_npz_dict(path, "positions_2d")  # the one VideoPose3D reader
    pos, meta = loaded["value"], loaded["metadata"]
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
        nj = meta.get("num_joints", _NUM_JOINTS)
        if not (isinstance(nj, (int, np.integer)) and not isinstance(nj, bool)) or int(nj) != _NUM_JOINTS:
            shown = repr(nj) if len(repr(nj)) <= 40 else f"a {type(nj).__name__}"
            raise _fail(path, f"metadata.num_joints: {shown}; expected the integer {_NUM_JOINTS} (the lifter reads "
                              f"{_NUM_JOINTS} joints)")
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
        data = _read_json_bounded(path)
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
    data = _read_json_bounded(path)
    return _read_coco_json(path, data) if fmt == "coco" else _read_mmpose_json(path, data)
