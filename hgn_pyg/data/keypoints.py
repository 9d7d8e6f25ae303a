"""2D keypoint conventions: joint formats, the COCO-17 to Human3.6M-17 mapping, and the policy for
missing and low-confidence keypoints.

**Formats** (:data:`KEYPOINT_FORMATS`): ``"h36m"`` is the model's own 17 joints in the order of
:data:`hgn_pyg.graphs.H36M` (``docs/published_model.md §1.1``); ``"coco"`` is the 17 keypoints
of the COCO keypoint task in COCO's order (:data:`hgn_pyg.graphs.COCO17`), as 2D detectors write them.

**COCO to H36M** (:func:`coco_to_h36m`, weights :data:`COCO_TO_H36M` of the joint-set module
:mod:`hgn_pyg.graphs.skeleton`, with the joint names they are made from). Every H36M joint is a fixed
affine combination (weights summing to 1) of COCO keypoints, so the mapping commutes with the
normalisation of screen coordinates and with any 2D similarity transform:

==============  =================================================================================
H36M joint      from COCO
==============  =================================================================================
Pelvis          mid-hip ``(L_Hip + R_Hip) / 2``: H36M's pelvis sits between the hip joints.
R/L Hip, Knee,  the same COCO keypoint.
Ankle, Shoulder,
Elbow, Wrist
Neck (thorax)   mid-shoulder ``(L_Shoulder + R_Shoulder) / 2``: H36M's joint 8 is the thorax at the
                base of the neck, at shoulder height between the shoulders.
Torso (spine)   midpoint of pelvis and thorax: H36M's spine joint lies half-way up the trunk.
Nose            the COCO nose: H36M's joint 9 is a face point ("neck/nose"), and the nose is the
                only face point on the midline.
Head            the crown, which COCO lacks, extrapolated from the ears along the neck direction:
                ``mid_ear + HEAD_EXTENSION * (mid_ear - mid_shoulder)``. In adults the crown lies
                about half as far above the ear line as the ear line lies above the shoulder line
                (stature fractions ~0.82 shoulder, ~0.93 ear, 1.0 crown give 0.07/0.11 to
                0.12/0.20; H36M's head joint sits a little below the crown), so
                ``HEAD_EXTENSION = 0.5``. The ears and not the eyes, because the ears are the
                skull's centre line seen from the front and from the side alike, where the eyes
                move with a nod.
==============  =================================================================================

A mapped joint is missing when any keypoint it is made from is missing (its score is the minimum of
theirs, a NaN coordinate propagates), so a guessed joint never poses as a seen one.

**Missing-keypoint policy** (:func:`apply_missing_policy` = :func:`missing_mask` then
:func:`fill_missing`; training-time keypoint dropout must call the same functions, so the model sees
in training exactly what it sees at inference):

1. A keypoint is *missing* when a coordinate is not finite (NaN, inf), or its score is not finite
   or below ``min_score`` (:data:`DEFAULT_MIN_SCORE`).
2. Before the model, a missing joint takes the position of its nearest present ancestor on the
   joint set's tree (parents toward the root): a missing wrist sits on the elbow, a missing elbow
   and wrist both on the shoulder. A missing root takes the mean of the frame's present joints; a
   frame with no present joint becomes all zeros. Why not zeros everywhere: in normalised screen
   coordinates zero is the image centre, a plausible and misleading position far from the person;
   a joint collapsed onto its parent is a zero-length bone that keeps the person's position and
   scale, so even a model never trained with dropout degrades gracefully, and a model trained with
   dropout learns to recognise it. The model never sees NaN, so one missing joint never makes
   every output joint NaN.

All functions accept NumPy arrays or torch tensors of any float dtype (integers become float64 for
NumPy, the default dtype for torch) and return the same kind and dtype; leading dimensions
broadcast (``[K, 2]``, ``[T, K, 2]``, ``[B, T, K, 2]``, ...).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch

from ..errors import DataError
from ..graphs.skeleton import COCO17, COCO_TO_H36M, H36M, HEAD_EXTENSION, SKELETONS, JointSet

__all__ = [
    "KEYPOINT_FORMATS",
    "FORMAT_JOINT_SETS",
    "DEFAULT_MIN_SCORE",
    "HEAD_EXTENSION",
    "COCO_TO_H36M",
    "coco_to_h36m",
    "to_h36m",
    "missing_mask",
    "fill_missing",
    "apply_missing_policy",
]

Array = Union[np.ndarray, torch.Tensor]

#: The joint formats keypoints can come in; the model itself reads ``"h36m"``.
KEYPOINT_FORMATS = ("h36m", "coco")

#: The joint set of every format in :data:`KEYPOINT_FORMATS`.
FORMAT_JOINT_SETS: Dict[str, JointSet] = {"h36m": H36M, "coco": COCO17}

#: Keypoints scored below this count as missing. Low enough to keep the uncertain but usable joints
#: of heat-map detectors (confidences in [0, 1]); COCO visibility flags (0 = not labelled, 1, 2)
#: read as scores also do the right thing.
DEFAULT_MIN_SCORE = 0.1

# --- NumPy / torch in, the same kind out ------------------------------------------------------

def _to_tensor(x) -> Tuple[torch.Tensor, bool]:
    """``x`` as a float tensor and whether it came as NumPy (or a list)."""
    if isinstance(x, torch.Tensor):
        return (x if x.is_floating_point() else x.to(torch.get_default_dtype())), False
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    return torch.from_numpy(np.ascontiguousarray(a)), True


def _back(t: torch.Tensor, as_numpy: bool) -> Array:
    return t.numpy() if as_numpy else t


def _check_joints(x: torch.Tensor, k: int, what: str, coords: bool = True) -> None:
    dims = 2 if coords else 1
    if x.dim() < dims or x.shape[-dims] != k:
        shape = "[..., K, C]" if coords else "[..., K]"
        raise DataError(f"{what}: expected shape {shape} with K = {k} joints, got {list(x.shape)}")


def _joint_set(joint_set: Union[str, JointSet]) -> JointSet:
    if isinstance(joint_set, JointSet):
        return joint_set
    name = FORMAT_JOINT_SETS.get(joint_set, None) or SKELETONS.get(joint_set, None)
    if name is None:
        raise DataError(f"unknown joint set {joint_set!r}; known: {sorted(set(FORMAT_JOINT_SETS) | set(SKELETONS))}")
    return name


# --- the mapping ---------------------------------------------------------------------------------

def coco_to_h36m(keypoints: Array, scores: Optional[Array] = None) -> Tuple[Array, Optional[Array]]:
    """Map COCO-17 keypoints ``[..., 17, C]`` to Human3.6M-17 joints ``[..., 17, C]``.

    Uses :data:`COCO_TO_H36M` (module docstring). A joint made from a keypoint with a non-finite
    coordinate is NaN; the others are exact affine combinations. ``scores [..., 17]`` map to the
    minimum score of the keypoints each joint is made from (``None`` stays ``None``).
    """
    x, as_np = _to_tensor(keypoints)
    _check_joints(x, COCO17.num_joints, "COCO keypoints")
    w = torch.from_numpy(COCO_TO_H36M.copy()).to(dtype=x.dtype, device=x.device)
    used = w != 0  # [17 h36m, 17 coco]
    bad = ~torch.isfinite(x).all(-1)  # [..., 17 coco]
    out = torch.einsum("jk,...kc->...jc", w, torch.where(bad.unsqueeze(-1), torch.zeros_like(x), x))
    out_bad = (bad.unsqueeze(-2) & used).any(-1)  # [..., 17 h36m]
    out = torch.where(out_bad.unsqueeze(-1), torch.full_like(out, float("nan")), out)
    if scores is None:
        return _back(out, as_np), None
    s, s_np = _to_tensor(scores)
    _check_joints(s, COCO17.num_joints, "COCO keypoint scores", coords=False)
    big = torch.full_like(s, float("inf")).unsqueeze(-2)
    s_out = torch.where(used.to(s.device), s.unsqueeze(-2), big).amin(-1)  # NaN propagates
    return _back(out, as_np), _back(s_out, s_np)


def to_h36m(keypoints: Array, scores: Optional[Array] = None,
            keypoint_format: str = "h36m") -> Tuple[Array, Optional[Array]]:
    """Keypoints of ``keypoint_format`` (one of :data:`KEYPOINT_FORMATS`) as H36M-17 joints."""
    if keypoint_format not in KEYPOINT_FORMATS:
        raise DataError(f"keypoint format {keypoint_format!r}: expected one of {list(KEYPOINT_FORMATS)}")
    if keypoint_format == "coco":
        return coco_to_h36m(keypoints, scores)
    x, _ = _to_tensor(keypoints)
    _check_joints(x, H36M.num_joints, "H36M keypoints")
    if scores is not None:
        _check_joints(_to_tensor(scores)[0], H36M.num_joints, "H36M keypoint scores", coords=False)
    return keypoints, scores


# --- the missing-keypoint policy ------------------------------------------------------------------

def missing_mask(keypoints: Array, scores: Optional[Array] = None,
                 min_score: float = DEFAULT_MIN_SCORE) -> Array:
    """Boolean ``[..., K]``: a coordinate is not finite, or the score is not finite or ``< min_score``."""
    x, as_np = _to_tensor(keypoints)
    if x.dim() < 2:
        raise DataError(f"keypoints: expected shape [..., K, C], got {list(x.shape)}")
    miss = ~torch.isfinite(x).all(-1)
    if scores is not None:
        s, _ = _to_tensor(scores)
        _check_joints(s, x.shape[-2], "keypoint scores", coords=False)
        miss = miss | ~torch.isfinite(s).to(miss.device) | (s.to(miss.device) < min_score)
    return _back(miss, as_np)


def _fill_order(js: JointSet):
    """Joints in breadth-first order from the root (every parent before its children)."""
    children = {j: [] for j in range(js.num_joints)}
    for j, p in enumerate(js.parents):
        if p >= 0:
            children[p].append(j)
    order = [js.root]
    for u in order:
        order.extend(children[u])
    return order


def fill_missing(keypoints: Array, missing: Array, joint_set: Union[str, JointSet] = "h36m") -> Array:
    """Fill the ``missing [..., K]`` joints of ``keypoints [..., K, C]`` by the policy of the module
    docstring (nearest present ancestor; a missing root takes the mean of the present joints; a
    frame with none present is zeros). Present joints are returned unchanged, bit for bit."""
    js = _joint_set(joint_set)
    x, as_np = _to_tensor(keypoints)
    _check_joints(x, js.num_joints, f"keypoints ({js.name})")
    m, _ = _to_tensor(missing)
    m = m.to(device=x.device, dtype=torch.bool).expand(x.shape[:-1])
    present = (~m).unsqueeze(-1)
    zero = torch.zeros_like(x)
    clean = torch.where(present, x, zero)
    count = present.sum(-2).clamp(min=1).to(x.dtype)  # [..., 1]
    mean = clean.sum(-2) / count  # zeros when nothing is present
    cols = list(clean.unbind(-2))
    r = js.root
    cols[r] = torch.where(m[..., r, None], mean, cols[r])
    for j in _fill_order(js)[1:]:
        cols[j] = torch.where(m[..., j, None], cols[js.parents[j]], cols[j])
    return _back(torch.stack(cols, -2), as_np)


def apply_missing_policy(keypoints: Array, scores: Optional[Array] = None,
                         min_score: float = DEFAULT_MIN_SCORE,
                         joint_set: Union[str, JointSet] = "h36m") -> Tuple[Array, Array]:
    """:func:`missing_mask` then :func:`fill_missing`: returns ``(filled [..., K, C], missing [..., K])``."""
    miss = missing_mask(keypoints, scores, min_score)
    return fill_missing(keypoints, miss, joint_set), miss
