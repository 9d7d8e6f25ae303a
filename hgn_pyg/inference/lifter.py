"""Lift 2D keypoints to 3D joints with a trained HGN checkpoint: :class:`Lifter`.

Input conventions (what the model was trained on, stored in the checkpoint):

* joints: H36M-17 order (``keypoint_format="h36m"``), or COCO-17 mapped by
  :func:`hgn_pyg.data.keypoints.coco_to_h36m` (``keypoint_format="coco"``);
* coordinates: pixels ``(u, v)`` of an image ``W x H`` (``image_size=(W, H)``), normalised as
  ``uv / W * 2 - [1, H / W]`` (:func:`hgn_pyg.data.camera.normalize_pixels`), or
  already normalised (``normalized=True``);
* missing keypoints (NaN, or score below ``min_score``) follow :mod:`hgn_pyg.data.keypoints`.

Output: joints ``[T, 17, 3]`` in metres, camera frame, relative to the pelvis (joint 0), the
convention of the training targets; with ``return_meshes=True`` also the coarse meshes (real
vertices, original cluster order, the same pelvis-relative frame).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from hgn_pyg.config import config_from_dict
from hgn_pyg.data.augment import model_input
from hgn_pyg.data.camera import normalize_pixels
from hgn_pyg.data.kinematics import symmetric_h36m
from hgn_pyg.data.keypoints import DEFAULT_MIN_SCORE, FORMAT_JOINT_SETS, apply_missing_policy, to_h36m
from hgn_pyg.engine import build
from hgn_pyg.engine.evaluator import _progress_interval
from hgn_pyg.errors import CheckpointError, ConfigError, DataError
from hgn_pyg.graphs.skeleton import H36M, SKELETONS
from hgn_pyg.inference.exported import ExportedModel, is_exported, load_exported
from hgn_pyg.models import load_model
from hgn_pyg.models.checkpoint import check_finite_weights
from hgn_pyg.models.checkpoint_io import is_official_checkpoint, load_checkpoint_file
from hgn_pyg.models.flip import merge_mirrored, with_mirror
from hgn_pyg.models.hgn import PREDICT_BLOCK

__all__ = ["Lifter", "LiftResult", "LiftChunk", "NORMALIZED_LIMIT", "DEFAULT_BATCH", "CHUNK_POSES",
           "IMAGE_SIZE_RANGE", "check_min_score"]

log = logging.getLogger(__name__)

#: Normalised coordinates of a person in the image lie in about ``[-1, 1]``; present keypoints
#: beyond this magnitude mean pixels without an image size, or a wrong image size.
NORMALIZED_LIMIT = 4.0

#: Poses per forward pass by device type: :data:`hgn_pyg.models.hgn.PREDICT_BLOCK` (on the CPU small
#: blocks stay in cache and run faster per pose than large batches; benchmarks/batch_sweep.py).
DEFAULT_BATCH = PREDICT_BLOCK

#: Image sizes (W and H, pixels) the lifter accepts: 1 to 65536, the largest side JPEG and PNG
#: encoders write. Pixels are divided by W, so an absurd size (``1e30``) would turn every pose
#: into the same constant input: refused instead.
IMAGE_SIZE_RANGE = (1.0, 65536.0)

#: Poses read, prepared and lifted at once by :meth:`Lifter.iter_lift` (a streamed file's memory is
#: this many poses' worth, ~1.5 KB each while prepared, whatever the file's length).
CHUNK_POSES = 32768


@dataclass
class LiftChunk:
    """Consecutive poses of one track lifted by :meth:`Lifter.iter_lift` (fields as in
    :class:`LiftResult`; ``track`` is the index of the track, ``start`` the chunk's first row in
    it)."""

    track: int
    start: int
    frames: np.ndarray
    joints_3d: np.ndarray
    scores: Optional[np.ndarray]
    missing: np.ndarray
    keypoints_2d: np.ndarray


@dataclass
class LiftResult:
    """Everything :meth:`Lifter.lift_file` produced, one row per (track, frame) pose.

    Attributes:
        joints_3d: ``[N, 17, 3]`` float32, metres, camera frame, pelvis-relative.
        frame: ``[N]`` int64 frame numbers; ``track``: ``[N]`` int64 index into ``track_names``.
        scores: ``[N, 17]`` float32 scores of the H36M joints (mapped for COCO input) or ``None``.
        missing: ``[N, 17]`` bool, the joints the missing-keypoint policy filled.
        keypoints_2d: ``[N, 17, 2]`` float32 normalised H36M input, as the model saw it.
    """

    joints_3d: np.ndarray
    frame: np.ndarray
    track: np.ndarray
    track_names: List[str]
    scores: Optional[np.ndarray]
    missing: np.ndarray
    keypoints_2d: np.ndarray


def check_min_score(value: float, what: str = "min_score") -> float:
    """``value`` as a float in [0, 1] (a keypoint confidence threshold), else a :class:`DataError`:
    NaN would compare false everywhere and a threshold above 1 marks every joint missing."""
    v = float(value)
    if not (0.0 <= v <= 1.0):
        raise DataError(f"{what} must be in [0, 1] (a keypoint confidence), got {value}")
    return v


class Lifter:
    """2D keypoints in, 3D joints out, from a checkpoint alone (no body model, no data).

    Args:
        model: an :class:`~hgn_pyg.models.HGN` (put in eval mode).
        info: the :class:`~hgn_pyg.models.checkpoint.CheckpointInfo` of its checkpoint.
        device: where to run (default: the model's device).
        batch_size: poses per forward pass (default :data:`DEFAULT_BATCH`: 64 on the CPU, where
            small batches stay in cache and run fastest per pose, 4096 on a GPU).
        min_score: keypoints scored below it count as missing.
        symmetric_bones: give each lifted pose equal left and right bones (each pair takes its mean
            length; directions kept, pelvis fixed: :func:`hgn_pyg.data.kinematics.symmetric_bones`).
            A real body's sides differ by 1–2 %; a model lifting people unlike its training data can
            return lopsided limbs (docs/real_people.md measures both). ``None`` (default): what the
            checkpoint records (``output["symmetric_bones"]``, written by a training run with
            ``TEST.symmetric_bones: true`` such as the main job), else off.
        flip_test: lift each pose and its mirror image (left and right swapped, ``x -> -x`` about the
            image centre) and return the mean of the answer and the mirrored answer
            (:mod:`hgn_pyg.models.flip`; twice the computation). Coarse meshes
            (``return_meshes``) are those of the pose itself, pelvis-relative. ``None`` (default): what the
            checkpoint records (``output["flip_test"]``, written by a training run with
            ``TEST.flip_test: true`` such as the main job), else off.

    Example::

        lifter = Lifter.from_checkpoint("experiment/exp_.../checkpoint/best.pth.tar")
        joints = lifter(keypoints_px, image_size=(1000, 1002))      # [T, 17, 3] metres
    """

    def __init__(self, model: torch.nn.Module, info=None, device: Optional[Union[str, torch.device]] = None,
                 batch_size: Optional[int] = None, min_score: Optional[float] = None,
                 symmetric_bones: Optional[bool] = None, flip_test: Optional[bool] = None):
        #: an exported lifter (:class:`~hgn_pyg.inference.exported.ExportedModel`) runs on the CPU
        self.exported = isinstance(model, ExportedModel)
        if self.exported:
            if device is not None and torch.device(device).type != "cpu":
                raise ConfigError(f"{model.path}: an exported lifter runs on the CPU (onnxruntime / "
                                  f"torch.export); got device {device}")
            self.device, self.model = torch.device("cpu"), model
            info = model.info() if info is None else info
        else:
            self.device = torch.device(device) if device is not None else next(model.parameters()).device
            self.model = model.to(self.device).eval()
        self.info = info
        if batch_size is None:
            batch_size = DEFAULT_BATCH.get(self.device.type, DEFAULT_BATCH["cuda"])
        if int(batch_size) < 1:
            raise ValueError(f"Lifter: batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.min_score = check_min_score(DEFAULT_MIN_SCORE if min_score is None else min_score)
        recorded = getattr(info, "output", None) or {}
        self.symmetric_bones = bool(recorded.get("symmetric_bones", False) if symmetric_bones is None
                                    else symmetric_bones)
        self.flip_test = bool(recorded.get("flip_test", False) if flip_test is None else flip_test)
        if self.symmetric_bones and str(getattr(info, "joint_set", None) or "h36m") != H36M.name:
            raise ConfigError(f"Lifter: symmetric_bones needs a model that predicts the {H36M.name} skeleton; "
                              f"this one predicts {info.joint_set!r}")
        self.in_channels = int(getattr(model, "in_channels", 2))
        #: the keypoint format the model itself reads: "h36m", or e.g. "coco" for a model trained on
        #: COCO-17 input (DATASET.input_joint_set: coco), which then gets COCO keypoints unmapped
        self.input_format = str(((getattr(info, "input", None) or {}).get("keypoint_format")) or "h36m")
        if self.in_channels not in (2, 3):
            raise CheckpointError(f"Lifter: the model reads {self.in_channels} input channels; (u, v) or "
                                  "(u, v, score) are supported")
        #: left/right pairs of the model's input keypoints and of its joints (for ``flip_test``)
        in_set = FORMAT_JOINT_SETS.get(self.input_format)
        out_set = SKELETONS.get(str(getattr(info, "joint_set", None) or H36M.name))
        self._flip_pairs = (in_set.flip_pairs, out_set.flip_pairs) if in_set and out_set else None
        if self.flip_test and self._flip_pairs is None:
            raise ConfigError(f"Lifter: flip_test needs known joint sets; this model reads "
                              f"{self.input_format!r} keypoints and predicts {getattr(info, 'joint_set', None)!r}")
        #: what errors call the weights (the checkpoint's path when read from one)
        self.source = str(getattr(info, "source", None) or "the model")
        if not self.exported:  # an exported model's output is checked as it is lifted
            check_finite_weights(model, self.source)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoint(cls, path, device: Optional[Union[str, torch.device]] = None, **kwargs) -> "Lifter":
        """A lifter for the checkpoint at ``path`` (ours; self-describing or, for older ones, with the
        graphs rebuilt from the body model its stored configuration names).

        Raises:
            CheckpointError: unreadable file, or a checkpoint this cannot build a model from.
        """
        if is_exported(path):
            return cls.from_exported(path, device=device, **kwargs)
        source = os.fspath(path)
        ckpt = load_checkpoint_file(path)
        hierarchy = None
        if "hierarchy" not in ckpt and not is_official_checkpoint(ckpt):
            hierarchy = _hierarchy_from_stored_config(ckpt, source)
        dev = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        model, info = load_model(ckpt, map_location=dev, hierarchy=hierarchy, source=source)
        return cls(model, info, device=dev, **kwargs)

    @classmethod
    def from_exported(cls, path, device: Optional[Union[str, torch.device]] = None, threads: Optional[int] = None,
                      **kwargs) -> "Lifter":
        """A lifter running the exported model at ``path`` (``.onnx`` through onnxruntime, ``.pt2``
        through ``torch.export.load``; written by ``hgn-export``), with the pre- and
        post-processing of a checkpoint's lifter. ``threads``: onnxruntime intra-op threads
        (default: torch's). :meth:`from_checkpoint` comes here for those suffixes.

        Raises:
            CheckpointError: unreadable file, invalid metadata, a ``.pt2`` that would run code.
        """
        return cls(load_exported(path, threads=threads), None, device=device, **kwargs)

    # ------------------------------------------------------------------ lifting arrays
    def __call__(self, keypoints, scores=None, image_size: Optional[Sequence[float]] = None,
                 normalized: bool = False, keypoint_format: str = "h36m", return_meshes: bool = False,
                 min_score: Optional[float] = None):
        """Lift ``keypoints [T, K, 2]`` or ``[K, 2]`` (NumPy or torch, any real dtype).

        Args:
            scores: ``[T, K]`` (or ``[K]``) keypoint confidences, optional.
            image_size: ``(W, H)`` of the image the pixels come from, or ``[T, 2]`` per frame.
            normalized: the keypoints are already normalised (no ``image_size``).
            keypoint_format: ``"h36m"`` or ``"coco"`` (:data:`hgn_pyg.data.keypoints.KEYPOINT_FORMATS`).
            return_meshes: also return the coarse meshes.
            min_score: override of the lifter's ``min_score``.

        Returns:
            joints ``[T, 17, 3]`` (``[17, 3]`` for one pose) in metres, camera frame, pelvis-relative:
            NumPy float32 for NumPy (or list) input, a float32 tensor for tensor input. With
            ``return_meshes``: ``(joints, meshes)``, ``meshes`` one ``[T, V_level, 3]`` per mesh level.

        Raises:
            DataError: wrong shapes or joint count, pixels without ``image_size``, values far
                outside the normalised range.
        """
        as_torch = isinstance(keypoints, torch.Tensor)
        kp = keypoints.detach().cpu().numpy() if as_torch else np.asarray(keypoints)
        sc = None if scores is None else (scores.detach().cpu().numpy() if isinstance(scores, torch.Tensor)
                                          else np.asarray(scores))
        single = kp.ndim == 2
        if single:
            kp = kp[None]
            sc = None if sc is None else sc[None]
        x, miss, sc_h = self.prepare(kp, sc, image_size, normalized, keypoint_format, min_score)
        joints, meshes = self._forward(x, sc_h, miss, return_meshes)
        if single:
            joints = joints[0]
            meshes = None if meshes is None else tuple(m[0] for m in meshes)
        if as_torch:
            joints = torch.from_numpy(joints)
            meshes = None if meshes is None else tuple(torch.from_numpy(m) for m in meshes)
        return (joints, meshes) if return_meshes else joints

    def prepare(self, keypoints: np.ndarray, scores: Optional[np.ndarray], image_size, normalized: bool,
                keypoint_format: str, min_score: Optional[float] = None, source: str = "keypoints",
                first_frame: int = 0) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """Keypoints ``[T, K, 2]`` -> the model's input: ``(x [T, 17, 2] float64 normalised, missing
        filled; missing [T, 17]; scores [T, 17] or None)`` (checks of :meth:`__call__`)."""
        kp = np.asarray(keypoints)
        if kp.dtype == object or not (np.issubdtype(kp.dtype, np.floating) or np.issubdtype(kp.dtype, np.integer)):
            raise DataError(f"{source}: expected real numbers, got dtype {kp.dtype}")
        if kp.ndim != 3 or kp.shape[-1] != 2:
            raise DataError(f"{source}: expected shape [T, 17, 2] or [17, 2], got {list(kp.shape)}")
        if kp.shape[1] != 17:
            raise DataError(f"{source}: {kp.shape[1]} joints per pose; expected 17 ({keypoint_format} order)")
        kp = kp.astype(np.float64)
        sc = None
        if scores is not None:
            sc = np.asarray(scores, dtype=np.float64)
            if sc.shape != kp.shape[:2]:
                raise DataError(f"{source}: scores of shape {list(sc.shape)} for keypoints {list(kp.shape)}")
        if self.input_format == "h36m":
            xy, sc = to_h36m(kp, sc, keypoint_format)
            fill_set = "h36m"
        elif keypoint_format == self.input_format:  # the model learnt the mapping: no hand mapping
            xy, fill_set = kp, FORMAT_JOINT_SETS[keypoint_format]
        else:
            raise DataError(f"{source}: this model reads {self.input_format} keypoints (it was trained on "
                            f"them); got {keypoint_format} keypoints")
        xy = self._normalize(np.asarray(xy, dtype=np.float64), image_size, normalized, source)
        x, miss = apply_missing_policy(xy, sc, self.min_score if min_score is None else check_min_score(min_score),
                                       fill_set)
        bad = np.abs(np.where(miss[..., None], 0.0, x)).max() if x.size else 0.0
        if bad > NORMALIZED_LIMIT:
            t = first_frame + int(np.argmax(np.abs(np.where(miss[..., None], 0.0, x)).max(axis=(1, 2))))
            if image_size is None:
                raise DataError(
                    f"{source}: values reach |{bad:.4g}| (frame {t}), far outside the normalised range "
                    f"[-1, 1]: pixel coordinates need the image size (--image-size W H / image_size=(W, H))")
            raise DataError(f"{source}: keypoints of frame {t} fall far outside the image given by the image "
                            f"size (normalised |{bad:.4g}|); is --image-size W H right?")
        return x, miss, sc

    @staticmethod
    def _normalize(xy: np.ndarray, image_size, normalized: bool, source: str) -> np.ndarray:
        if image_size is None:
            if not normalized:
                finite = xy[np.isfinite(xy)]
                top = float(np.abs(finite).max()) if finite.size else 0.0
                if top > NORMALIZED_LIMIT:
                    raise DataError(f"{source}: values up to {top:.4g} look like pixels: give the image size "
                                    "(--image-size W H / image_size=(W, H)), or normalized=True for "
                                    "coordinates already normalised as uv / W * 2 - [1, H / W]")
                log.info("%s: no image size given; reading the keypoints as normalised coordinates", source)
            return xy
        if normalized:
            raise DataError(f"{source}: give either image_size or normalized=True, not both")
        size = np.asarray(image_size, dtype=np.float64)
        if size.shape == (2,):
            size = np.broadcast_to(size, (xy.shape[0], 2))
        if size.shape != (xy.shape[0], 2) or not np.isfinite(size).all() or (size <= 0).any():
            raise DataError(f"{source}: image size must be two positive numbers (W, H) or [T, 2], got "
                            f"{np.asarray(image_size).tolist() if np.asarray(image_size).size <= 4 else list(size.shape)}")
        lo, hi = IMAGE_SIZE_RANGE
        if size.size and ((size < lo).any() or (size > hi).any()):
            bad = size[((size < lo) | (size > hi)).any(1)][0].tolist()
            raise DataError(f"{source}: image size {bad[0]:g} x {bad[1]:g} is outside {lo:g}..{hi:g} pixels "
                            "(IMAGE_SIZE_RANGE in hgn_pyg.inference.lifter)")
        return normalize_pixels(xy, size[:, 0], size[:, 1])  # per frame, as the data readers do

    @torch.inference_mode()
    def _forward(self, x: np.ndarray, scores: Optional[np.ndarray], missing: np.ndarray, return_meshes: bool
                 ) -> Tuple[np.ndarray, Optional[Tuple[np.ndarray, ...]]]:
        score = None
        if self.in_channels == 3:  # scores clipped to [0, 1]; a missing joint scores 0
            s = np.ones(missing.shape) if scores is None else np.clip(np.nan_to_num(scores), 0.0, 1.0)
            score = torch.from_numpy(np.where(missing, 0.0, s).astype(np.float32))
        inp = model_input(torch.from_numpy(x.astype(np.float32)), score, self.in_channels)
        joints = np.empty((len(x), 17, 3), dtype=np.float32)
        meshes: Optional[List[np.ndarray]] = None
        for lo in range(0, len(x), self.batch_size):
            j, real = self._predict(inp[lo:lo + self.batch_size].to(self.device), return_meshes)
            j = j.float()
            root = j[:, :1]
            rel = j - root
            if self.symmetric_bones:
                rel = symmetric_h36m(rel)
            joints[lo:lo + len(j)] = rel.cpu().numpy()
            if not np.isfinite(joints[lo:lo + len(j)]).all():
                raise CheckpointError(f"{self.source}: the model gave NaN or infinite joints (for poses "
                                      f"{lo}..{lo + len(j) - 1} of this chunk); the checkpoint is corrupt or its "
                                      "training diverged")
            if return_meshes:
                if meshes is None:
                    meshes = [np.empty((len(x), m.shape[1], 3), dtype=np.float32) for m in real]
                for buf, m in zip(meshes, real):
                    buf[lo:lo + len(j)] = (m.float() - root).cpu().numpy()
        return joints, (None if meshes is None else tuple(meshes))

    def _predict(self, x: torch.Tensor, meshes: bool) -> Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]:
        """The model on one batch: ``(joints, real meshes or ())``; with ``flip_test`` the joints are
        flip-averaged (one pass over the batch and its mirror) and the meshes are the batch's own."""
        n = len(x)
        if self.flip_test:
            x = with_mirror(x, self._flip_pairs[0])
        out = self.model(x)
        if self.exported:
            joints, real = out[0], (tuple(out[1:]) if meshes else ())
        else:
            joints, real = out.joints, (tuple(self.model.real_meshes(out)) if meshes else ())
        if self.flip_test:  # meshes: the pose's own pass, placed so that they stay pelvis-relative
            merged = merge_mirrored(joints, self._flip_pairs[1])
            shift = merged[:, :1] - joints[:n, :1]
            joints, real = merged, tuple(m[:n] + shift for m in real)
        return joints, real

    # ------------------------------------------------------------------ lifting files
    def iter_lift(self, kfile, image_size: Optional[Sequence[float]] = None, normalized: Optional[bool] = None,
                  min_score: Optional[float] = None, chunk: int = CHUNK_POSES):
        """Lift every track of a :class:`~hgn_pyg.inference.keypoint_files.KeypointFile` in chunks of
        ``chunk`` poses: yields :class:`LiftChunk` in track, then frame order. A streamed file
        (``.npy``) is read chunk by chunk, so memory stays flat in its length.

        ``image_size`` (W, H) overrides the sizes the file records; ``normalized`` defaults to what
        the file says.
        """
        if not kfile.tracks:
            raise DataError(f"{kfile.path}: no keypoints to lift")
        norm = bool(kfile.normalized) if normalized is None else bool(normalized)
        any_scores = any(t.scores is not None for t in kfile.tracks)
        chunk = max(int(chunk), 1)
        for i, t in enumerate(kfile.tracks):
            for lo in range(0, len(t.frames), chunk):
                hi = min(lo + chunk, len(t.frames))
                kp, sc_in, sizes = t.rows(lo, hi) if hasattr(t, "rows") else (
                    t.keypoints[lo:hi], None if t.scores is None else t.scores[lo:hi],
                    None if t.image_size is None else t.image_size[lo:hi])
                size = image_size if image_size is not None else sizes
                x, miss, sc = self.prepare(kp, sc_in, None if norm else size, norm, kfile.keypoint_format,
                                           min_score, source=f"{kfile.path} ({t.name})", first_frame=lo)
                joints, _ = self._forward(x, sc, miss, False)
                if any_scores:
                    sc = (sc if sc is not None else np.full(miss.shape, np.nan)).astype(np.float32)
                yield LiftChunk(i, lo, np.asarray(t.frames[lo:hi], dtype=np.int64), joints, sc, miss,
                                x.astype(np.float32))

    def lift_file(self, kfile, image_size: Optional[Sequence[float]] = None, normalized: Optional[bool] = None,
                  min_score: Optional[float] = None, progress: bool = False) -> LiftResult:
        """Lift every track of a :class:`~hgn_pyg.inference.keypoint_files.KeypointFile` into one
        :class:`LiftResult` held in memory (:meth:`iter_lift` streams instead); ``progress`` shows a
        tqdm bar over poses."""
        parts: List[LiftChunk] = []
        with tqdm(total=kfile.num_frames, desc="lift", unit="pose", disable=not progress, leave=False,
                  mininterval=_progress_interval()) as bar:
            for part in self.iter_lift(kfile, image_size, normalized, min_score):
                parts.append(part)
                bar.update(len(part.frames))
        any_scores = parts[0].scores is not None
        return LiftResult(np.concatenate([p.joints_3d for p in parts]), np.concatenate([p.frames for p in parts]),
                          np.concatenate([np.full(len(p.frames), p.track, dtype=np.int64) for p in parts]),
                          [t.name for t in kfile.tracks],
                          np.concatenate([p.scores for p in parts]) if any_scores else None,
                          np.concatenate([p.missing for p in parts]), np.concatenate([p.keypoints_2d for p in parts]))


def _hierarchy_from_stored_config(ckpt: Dict[str, Any], source: str):
    """Graphs for a version-1 checkpoint: rebuilt from the body model its stored config names."""
    stored = ckpt.get("config")
    if not isinstance(stored, dict):
        raise CheckpointError(f"{source}: carries neither graphs nor a configuration to rebuild them from")
    try:
        cfg = config_from_dict(stored, source=f"{source} (stored config)")
    except ConfigError as exc:
        raise CheckpointError(f"{source}: its stored configuration is invalid: {exc}") from None
    log.info("%s: an older checkpoint without graphs; rebuilding them from the body model", source)
    return build.build_hierarchy(cfg, build.load_body(cfg), cache=False)
