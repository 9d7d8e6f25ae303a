"""Human3.6M in the VideoPose3D ``.npz`` layout.

Files:

* ``data_3d_h36m.npz`` — ``positions_3d[subject][action]``: ``[frames, 32, 3]`` world joints in
  metres (the 32-joint Human3.6M mocap skeleton; a ``[frames, 17, 3]`` array is taken as already
  mapped);
* ``data_2d_h36m_gt.npz`` (or detections of the same layout, e.g. CPN) —
  ``positions_2d[subject][action]``: a list of ``[frames, 17, 2]`` pixel arrays, one per camera,
  and ``metadata`` (``num_joints`` … ).

Subject keys are ``"S1"`` …, action names carry sub-action suffixes (``"Walking 1"``) and a few
aliases (``"TakingPhoto"`` = Photo, ``"WalkingDog"`` = WalkDog); they map to :data:`ACTIONS`.
Sequences whose name starts with ``_`` (``_ALL``) are ignored.

Per frame and camera: the 17 joints ``[0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26,
27]`` of the 32 are taken into the camera, ``X_c = Rᵀ·(X_w − T)`` with ``R`` the camera's
orientation quaternion and ``T`` its position (the Human3.6M calibration, :data:`H36M_CAMERAS`);
targets are ``X_c − X_c[pelvis]`` (metres); inputs the 2D file's pixels normalised
``uv / w · 2 − (1, h / w)`` with the camera's resolution. When a 2D sequence is longer than the
3D one it is cut to the 3D length (detections often are); shorter is an error. No mesh targets.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..errors import DataError
from ..untrusted import load_npz
from .camera import normalize_pixels, quaternion_to_matrix, world_to_camera_quat
from .h36m_calibration import H36M_CAMERAS, h36m_cameras  # noqa: F401  (re-exported)
from .human36m import DEFAULT_SUBSAMPLE, PROTOCOL_SUBJECTS
from .pose_dataset import ACTIONS, PoseDataset
from .validate import as_array, data_error, first_bad_row

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Indices of the 17 HGN joints (docs/published_model.md §1.1) in the 32-joint Human3.6M mocap skeleton.
H36M32_TO_17: Tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)

#: Alternative spellings of action names in the original Human3.6M sequence names.
ACTION_ALIASES: Dict[str, str] = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog",
                                  "WalkingTogether": "WalkTogether"}

def parse_action(name: str) -> Optional[int]:
    """Action label 0..14 of a sequence name like ``"Walking 1"``; ``None`` for unknown names."""
    base = re.sub(r"\s+\d+$", "", str(name).strip())
    base = ACTION_ALIASES.get(base, base)
    try:
        return ACTIONS.index(base)
    except ValueError:
        return None


def _load_npz_dict(path: Path, key: str) -> Dict[str, Any]:
    """``path[key]`` as a dict (a pickled object array, read by :func:`hgn_pyg.untrusted.load_npz`),
    else DataError."""
    npz = load_npz(path, keys=(key, "metadata"))  # the restricted reader: no code runs
    if key not in npz:
        raise DataError(f"{path}: [\"{key}\"]: missing key")
    value = npz[key]
    meta = npz.get("metadata")
    try:
        value = value.item() if isinstance(value, np.ndarray) and value.dtype == object \
            and value.shape == () else value
    except Exception as exc:
        raise DataError(f"{path}: [\"{key}\"]: cannot read ({exc})") from None
    if not isinstance(value, Mapping):
        raise DataError(f"{path}: [\"{key}\"]: expected a dict of subjects, got "
                        f"{type(value).__name__}")
    out = {"value": value, "metadata": None}
    if meta is not None:
        try:
            out["metadata"] = meta.item() if meta.dtype == object and meta.shape == () else meta
        except Exception:
            out["metadata"] = None
    return out


def _subject_key(s: Union[int, str]) -> str:
    return s if isinstance(s, str) and s.startswith("S") else f"S{int(s)}"


class VideoPose3D(PoseDataset):
    r"""Human3.6M from the VideoPose3D ``.npz`` files (same items as :class:`Human36M`, no meshes).

    Args:
        npz_3d: ``data_3d_h36m.npz``.
        npz_2d: ``data_2d_h36m_gt.npz`` or a detection file of the same layout (e.g. CPN).
        split: ``"train"`` or ``"test"``; subjects from ``protocol`` unless ``subjects`` is given
            (ints or ``"S9"``-style keys).
        subsample: keep frames whose index in the sequence is a multiple (default 5 train, 50 test).
        protocol: 1 or 2, as :class:`Human36M`.
        skip: ``(subject, sequence name)`` pairs to leave out, e.g. ``[("S9", "Greeting")]``;
            none by default (the VideoPose3D convention; Human36M's corrupt-sequence list is
            keyed by sub-action indices that these names do not carry).
        cameras: calibration in the layout of :func:`h36m_cameras` (default: Human3.6M's).
        camera_indices: which of the four cameras to use (default all).

    Items: ``input_2d [17, 2]``, ``joints_3d [17, 3]`` (metres, pelvis-relative, camera frame),
    ``action``, ``subject``; see :class:`~hgn_pyg.data.pose_dataset.PoseDataset`. Extra tensors:
    ``root_3d [N, 3]``, ``frame_info [N, 3]`` (subject, frame, camera), ``image_size [N, 2]``.
    """

    def __init__(
        self,
        npz_3d: PathLike,
        npz_2d: PathLike,
        split: str = "train",
        subjects: Optional[Iterable[Union[int, str]]] = None,
        subsample: Optional[int] = None,
        protocol: int = 2,
        skip: Iterable[Tuple[Union[int, str], str]] = (),
        cameras: Optional[Mapping[str, Sequence[Mapping[str, Any]]]] = None,
        camera_indices: Optional[Sequence[int]] = None,
    ):
        if split not in ("train", "test"):
            raise DataError(f"VideoPose3D: split must be 'train' or 'test', got {split!r}")
        if subjects is None:
            if protocol not in PROTOCOL_SUBJECTS:
                raise DataError(f"VideoPose3D: protocol must be one of {sorted(PROTOCOL_SUBJECTS)}"
                                f", got {protocol!r}")
            subjects = PROTOCOL_SUBJECTS[protocol][split]
        self.subjects = tuple(_subject_key(s) for s in subjects)
        self.split = split
        self.subsample = int(DEFAULT_SUBSAMPLE[split] if subsample is None else subsample)
        if self.subsample < 1:
            raise DataError(f"VideoPose3D: subsample must be >= 1, got {subsample!r}")
        self.skip = {(_subject_key(s), str(a)) for s, a in skip}
        self.npz_3d, self.npz_2d = Path(npz_3d), Path(npz_2d)
        cams = cameras if cameras is not None else H36M_CAMERAS

        pos3d = _load_npz_dict(self.npz_3d, "positions_3d")["value"]
        loaded2d = _load_npz_dict(self.npz_2d, "positions_2d")
        pos2d, meta = loaded2d["value"], loaded2d["metadata"]
        if isinstance(meta, Mapping) and "num_joints" in meta:
            nj = meta["num_joints"]
            if not isinstance(nj, (int, np.integer)) or int(nj) != 17:
                raise DataError(f"{self.npz_2d}: [\"metadata\"][\"num_joints\"]: expected 17, "
                                f"got {nj!r}")

        cols: Dict[str, List[np.ndarray]] = {k: [] for k in (
            "input_2d", "joints_cam", "action", "subject", "frame_info", "image_size")}
        for s in self.subjects:
            for label, path, src in (("3D", self.npz_3d, pos3d), ("2D", self.npz_2d, pos2d)):
                if s not in src:
                    raise DataError(f"{path}: [\"positions_{label.lower()}\"][\"{s}\"]: missing "
                                    f"subject (file has {sorted(map(str, src))})")
            if s not in cams:
                raise DataError(f"VideoPose3D: no camera calibration for subject {s}")
            seqs3d, seqs2d = pos3d[s], pos2d[s]
            for path, seqs, label in ((self.npz_3d, seqs3d, "3d"), (self.npz_2d, seqs2d, "2d")):
                if not isinstance(seqs, Mapping):
                    raise data_error(path, [f"positions_{label}", s],
                                     f"expected a dict of actions, got {type(seqs).__name__}")
            subj_id = int(s[1:])
            subj_cams = list(cams[s])
            use_cams = range(len(subj_cams)) if camera_indices is None else camera_indices
            for name in seqs3d:
                if str(name).startswith("_"):
                    continue
                label = parse_action(name)
                k3 = ["positions_3d", s, name]
                if label is None:
                    raise data_error(self.npz_3d, k3, f"unknown action name (expected one of "
                                                      f"{list(ACTIONS)} with an optional number)")
                if (s, str(name)) in self.skip:
                    continue
                world = as_array(seqs3d[name], (-1, -1, 3), self.npz_3d, k3, "3D joints (frames×joints×3)")
                if world.shape[1] == 32:
                    world = world[:, list(H36M32_TO_17)]
                elif world.shape[1] != 17:
                    raise data_error(self.npz_3d, k3, f"expected 32 (or 17) joints, got "
                                                      f"{world.shape[1]}")
                k2 = ["positions_2d", s, name]
                if name not in seqs2d:
                    raise data_error(self.npz_2d, k2, "missing key (sequence of the 3D file)")
                views = seqs2d[name]
                if not isinstance(views, (list, tuple)) or len(views) != len(subj_cams):
                    raise data_error(self.npz_2d, k2, f"expected a list of {len(subj_cams)} "
                                                      f"camera arrays, got {_brief(views)}")
                frames = np.arange(0, len(world), self.subsample)
                for c in use_cams:
                    cam = subj_cams[c]
                    uv = as_array(views[c], (-1, 17, 2), self.npz_2d, k2 + [c], "2D joints")
                    if len(uv) < len(world):
                        raise data_error(self.npz_2d, k2 + [c], f"{len(uv)} frames of 2D joints "
                                         f"for {len(world)} frames of 3D joints")
                    w, h = float(cam["res_w"]), float(cam["res_h"])
                    xc = world_to_camera_quat(world[frames], cam["orientation"],
                                              cam["translation"])
                    n = len(frames)
                    with np.errstate(over="ignore", invalid="ignore"):
                        inp = normalize_pixels(uv[frames], np.full(n, w), np.full(n, h))
                    if first_bad_row(inp) is not None:
                        raise data_error(self.npz_2d, k2 + [c], "2D joints give normalised input "
                                         "beyond the float32 range (image size?)")
                    if first_bad_row(xc, xc - xc[:, :1]) is not None:
                        raise data_error(self.npz_3d, k3, f"3D joints in camera {c} are beyond "
                                         "the float32 range")
                    cols["input_2d"].append(inp)
                    cols["joints_cam"].append(xc)
                    cols["action"].append(np.full(n, label, dtype=np.int64))
                    cols["subject"].append(np.full(n, subj_id, dtype=np.int64))
                    cols["frame_info"].append(np.stack(
                        [np.full(n, subj_id), frames, np.full(n, c)], axis=1).astype(np.int64))
                    cols["image_size"].append(np.tile([w, h], (n, 1)))
        if not cols["action"] or sum(len(a) for a in cols["action"]) == 0:
            raise DataError(f"{self.npz_3d}: no samples for split {split!r} (subjects "
                            f"{list(self.subjects)})")
        cat = {k: np.concatenate(v, axis=0) for k, v in cols.items()}
        cam3 = cat["joints_cam"]
        tensors = {
            "input_2d": torch.from_numpy(cat["input_2d"]).float(),
            "joints_3d": torch.from_numpy(cam3 - cam3[:, :1]).float(),
            "root_3d": torch.from_numpy(cam3[:, 0]).float(),
            "action": torch.from_numpy(cat["action"]).long(),
            "subject": torch.from_numpy(cat["subject"]).long(),
            "frame_info": torch.from_numpy(cat["frame_info"]).long(),
            "image_size": torch.from_numpy(cat["image_size"]).float(),
        }
        log.info("VideoPose3D %s: %d samples", split, len(cat["action"]))
        super().__init__({k: t.contiguous() for k, t in tensors.items()}, ())


def _brief(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


__all__ = [
    "VideoPose3D",
    "H36M32_TO_17",
    "H36M_CAMERAS",
    "h36m_cameras",
    "quaternion_to_matrix",
    "world_to_camera_quat",
    "parse_action",
]
