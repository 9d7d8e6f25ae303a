r"""Detector-like corruption of 2D keypoints and keypoint dropout.

Ground-truth 2D projections are cleaner than what a 2D detector returns: a detector's error grows
with the person's size on screen and differs per joint (a nose is found more precisely than a
hip), it sometimes puts a joint somewhere else entirely, confuses left and right limbs, and misses
joints. :class:`DetectorNoise` imitates this on normalised keypoints ``[B, K, 2]`` and returns a
confidence per joint; :func:`drop_keypoints` removes whole joints (keypoint dropout). Missing
joints come out as NaN coordinates with score 0, so that the *same* fill policy as at inference
(:func:`hgn_pyg.data.keypoints.fill_missing`) turns them into model input.

Per frame, with the keypoints' bounding box of longer side :math:`s` (in the units of ``x``):

.. math::
    \tilde x_j = x_j + \epsilon_j,\quad \epsilon_j \sim \mathcal N(0, (\nu\,\sigma_j\,s)^2 I)

with the joint spreads :math:`\sigma_j` (:data:`H36M_SPREADS`, :data:`COCO_SPREADS`) and the
noise level :math:`\nu`; each joint is, with probability ``outlier_prob``, moved by
:math:`\mathcal N(0, (\text{outlier_scale}\cdot s)^2 I)` instead (a gross error); each
left/right pair is swapped with probability ``swap_prob``; each joint is missing with probability
``missing_prob``. Scores: :math:`\exp(-\lVert\epsilon_j\rVert^2 / (8 (\nu\sigma_j s)^2))` times
:math:`U(0.8, 1)` (about 0.7–1 for ordinary noise), :math:`U(0, 0.3)` for gross errors, the score
of the joint's own noise for swapped joints (a detector is confident when it swaps), 0 for missing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..graphs.skeleton import H36M, SKELETONS
from .keypoints import DEFAULT_MIN_SCORE, apply_missing_policy
from .kinematics import follow_bones, rotation_matrix, scale_bones

__all__ = ["H36M_SPREADS", "COCO_SPREADS", "JOINT_SPREADS", "INPUT_CHANNELS", "DetectorNoise",
           "KeypointAugmentation", "drop_keypoints", "box_size", "model_input"]

#: COCO's per-keypoint annotation spreads (the OKS sigmas of the COCO keypoint evaluation), in
#: COCO-17 order: nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles.
COCO_SPREADS: Tuple[float, ...] = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
    0.087, 0.087, 0.089, 0.089)

#: The same spreads for the Human3.6M-17 joints (``hgn_pyg.graphs.skeleton.H36M`` order): the
#: limbs take COCO's values; pelvis and spine the hips' (they are inferred from the hips), thorax
#: the shoulders', nose COCO's nose, head top the ears' (no COCO point; the least precise face
#: point).
H36M_SPREADS: Tuple[float, ...] = (
    0.107, 0.107, 0.087, 0.089, 0.107, 0.087, 0.089, 0.107, 0.079, 0.026, 0.035, 0.079, 0.072,
    0.062, 0.079, 0.072, 0.062)

#: Spreads by joint-set name (:data:`hgn_pyg.graphs.SKELETONS`).
JOINT_SPREADS = {"h36m": H36M_SPREADS, "coco17": COCO_SPREADS}

#: What the model can read per keypoint (``MODEL.in_channels``): 2 = ``(x, y)``; 3 = ``(x, y,
#: score)``.
INPUT_CHANNELS = (2, 3)


def model_input(x: Tensor, score: Optional[Tensor], in_channels: int) -> Tensor:
    """The model's input from filled keypoints ``x [..., K, 2]`` and scores ``[..., K]`` (``None``
    = all 1): ``x`` itself for 2 channels, ``[x, score]`` ``[..., K, 3]`` for 3."""
    if in_channels not in INPUT_CHANNELS:
        raise ValueError(f"in_channels must be one of {INPUT_CHANNELS}, got {in_channels}")
    if in_channels == 2:
        return x
    if score is None:
        score = torch.ones(x.shape[:-1], dtype=x.dtype, device=x.device)
    return torch.cat([x, score.to(dtype=x.dtype, device=x.device).unsqueeze(-1)], dim=-1)


def box_size(x: Tensor) -> Tensor:
    """Longer side of each frame's keypoint bounding box: ``x [B, K, 2]`` → ``[B]`` (NaN joints
    are ignored; a frame without any finite joint gets 0)."""
    finite = torch.isfinite(x).all(-1, keepdim=True)
    big = torch.finfo(x.dtype).max
    lo = torch.where(finite, x, torch.full_like(x, big)).amin(1)
    hi = torch.where(finite, x, torch.full_like(x, -big)).amax(1)
    size = (hi - lo).amax(-1)
    return torch.where(finite.any(1).squeeze(-1), size, torch.zeros_like(size))


def _check(x: Tensor, what: str) -> None:
    if x.dim() != 3 or x.size(-1) != 2:
        raise ValueError(f"{what}: expected keypoints [B, K, 2], got {list(x.shape)}")


@dataclass(frozen=True)
class DetectorNoise:
    """Imitate a 2D detector on ground-truth keypoints (see the module docstring for the model).

    Args:
        spreads: per-joint spreads ``σ_j`` relative to the box size (:data:`H36M_SPREADS`).
        flip_pairs: ``(left, right)`` joint pairs that can be swapped (the skeleton's flip pairs).
        noise: the noise level ``ν`` (0 = no Gaussian noise).
        outlier_prob: probability that a joint is a gross error.
        outlier_scale: standard deviation of a gross error relative to the box size.
        swap_prob: probability that a left/right pair is swapped.
        missing_prob: probability that a joint is missing (NaN, score 0).

    Call: ``noise(x, generator=None) -> (x' [B, K, 2], score [B, K])``, same dtype and device as
    ``x``; draws come from ``generator`` (a ``torch.Generator`` on ``x``'s device) in a fixed
    order, so a seeded generator gives the same corruption every time.
    """

    spreads: Sequence[float] = H36M_SPREADS
    flip_pairs: Sequence[Tuple[int, int]] = H36M.flip_pairs
    noise: float = 0.25
    outlier_prob: float = 0.01
    outlier_scale: float = 0.3
    swap_prob: float = 0.01
    missing_prob: float = 0.01

    def __post_init__(self) -> None:
        for name in ("noise", "outlier_scale"):
            if getattr(self, name) < 0:
                raise ValueError(f"DetectorNoise: {name} must be >= 0, got {getattr(self, name)}")
        for name in ("outlier_prob", "swap_prob", "missing_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"DetectorNoise: {name} must be in [0, 1], got {getattr(self, name)}")
        k = len(self.spreads)
        if any(not (0 <= a < k and 0 <= b < k) or a == b for a, b in self.flip_pairs):
            raise ValueError(f"DetectorNoise: flip_pairs {list(self.flip_pairs)} invalid for {k} joints")

    def __call__(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
        _check(x, "DetectorNoise")
        B, K, _ = x.shape
        if K != len(self.spreads):
            raise ValueError(f"DetectorNoise: {len(self.spreads)} joint spreads for {K} keypoints")
        kw = dict(generator=generator, device=x.device, dtype=x.dtype)
        # draws in a fixed order: noise, outlier mask, outlier offsets, outlier scores, score
        # jitter, swap mask, missing mask
        normal = torch.randn(B, K, 2, **kw)
        is_outlier = torch.rand(B, K, **kw) < self.outlier_prob
        offset = torch.randn(B, K, 2, **kw)
        outlier_score = 0.3 * torch.rand(B, K, **kw)
        jitter = 0.8 + 0.2 * torch.rand(B, K, **kw)
        pairs = torch.as_tensor(list(self.flip_pairs), dtype=torch.long, device=x.device).view(-1, 2)
        swap = torch.rand(B, pairs.size(0), **kw) < self.swap_prob
        missing = torch.rand(B, K, **kw) < self.missing_prob

        size = box_size(x).view(B, 1, 1)
        sigma = self.noise * torch.as_tensor(self.spreads, dtype=x.dtype, device=x.device).view(1, K, 1) * size
        eps = normal * sigma
        out = x + eps
        with torch.no_grad():
            d2 = (eps ** 2).sum(-1)
            denom = 8.0 * (sigma.squeeze(-1) ** 2)
            score = torch.where(denom > 0, torch.exp(-d2 / denom.clamp_min(1e-30)), torch.ones_like(d2)) * jitter
        out = torch.where(is_outlier.unsqueeze(-1), x + offset * (self.outlier_scale * size), out)
        score = torch.where(is_outlier, outlier_score, score)
        if pairs.numel() and bool(swap.any()):
            perm = torch.arange(K, device=x.device).expand(B, K).clone()
            left, right = pairs[:, 0].expand(B, -1), pairs[:, 1].expand(B, -1)
            perm.scatter_(1, left, torch.where(swap, right, left))
            perm.scatter_(1, right, torch.where(swap, left, right))
            # joint j takes the detection made for joint perm[j]; its score stays with the detection
            out = out.gather(1, perm.unsqueeze(-1).expand(B, K, 2))
            score = score.gather(1, perm)
        out = torch.where(missing.unsqueeze(-1), torch.full_like(out, float("nan")), out)
        score = torch.where(missing, torch.zeros_like(score), score)
        return out, score


def drop_keypoints(x: Tensor, score: Tensor, max_joints: int, prob: float = 1.0,
                   generator: Optional[torch.Generator] = None,
                   exact: bool = False) -> Tuple[Tensor, Tensor]:
    """Keypoint dropout: in a frame chosen with probability ``prob``, make ``n`` distinct random
    joints missing (NaN coordinates, score 0), ``n`` uniform in ``1..max_joints`` (``exact``:
    always ``max_joints``).

    Args:
        x: keypoints ``[B, K, 2]``; score: ``[B, K]``.
        max_joints: most joints dropped per frame (``0 <= max_joints <= K``).
        prob: probability that a frame loses joints.
        generator: source of the draws (fixed order: frame mask, counts, joint order).

    Returns:
        ``(x', score')`` (new tensors).
    """
    _check(x, "drop_keypoints")
    B, K, _ = x.shape
    if score.shape != (B, K):
        raise ValueError(f"drop_keypoints: score must be [{B}, {K}], got {list(score.shape)}")
    if not 0 <= max_joints <= K:
        raise ValueError(f"drop_keypoints: max_joints must be in 0..{K}, got {max_joints}")
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"drop_keypoints: prob must be in [0, 1], got {prob}")
    if max_joints == 0 or prob == 0.0:
        return x.clone(), score.clone()
    kw = dict(generator=generator, device=x.device)
    chosen = torch.rand(B, **kw) < prob
    if exact:
        count = torch.full((B,), max_joints, dtype=torch.long, device=x.device)
        torch.randint(1, max_joints + 1, (B,), **kw)  # same number of draws either way
    else:
        count = torch.randint(1, max_joints + 1, (B,), **kw)
    order = torch.rand(B, K, **kw).argsort(dim=1)  # a random permutation per frame
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(K, device=x.device).expand(B, K))
    drop = (rank < count.unsqueeze(1)) & chosen.unsqueeze(1)
    out = torch.where(drop.unsqueeze(-1), torch.full_like(x, float("nan")), x)
    return out, torch.where(drop, torch.zeros_like(score), score)


class KeypointAugmentation:
    """The training-time 2D input pipeline (``AUG`` section): optional Gaussian noise of fixed
    standard deviation, :class:`DetectorNoise`, keypoint dropout (:func:`drop_keypoints`), then the
    missing-keypoint policy of inference (:func:`hgn_pyg.data.keypoints.apply_missing_policy`).

    Args:
        joint_set: name of the input joint set (``"h36m"`` or ``"coco17"``): spreads, flip pairs
            and the fill tree.
        noise_std: standard deviation of plain Gaussian noise on the normalised input (0 = none).
        detector: a :class:`DetectorNoise` (``None`` = none).
        dropout_prob, max_dropped: keypoint dropout (frames chosen with ``dropout_prob`` lose
            1..``max_dropped`` joints).
        min_score: keypoints scored below it count as missing (as at inference).

    Call: ``aug(x [B, K, 2], score [B, K] or None, generator) -> (filled x [B, K, 2], score [B, K])``
    (missing joints have score 0). With nothing switched on it returns ``x`` unchanged and the
    given (or all-one) scores, drawing nothing.
    """

    def __init__(self, joint_set: str = "h36m", noise_std: float = 0.0,
                 detector: Optional[DetectorNoise] = None, dropout_prob: float = 0.0,
                 max_dropped: int = 0, min_score: Optional[float] = None):
        self.joint_set = joint_set
        self.noise_std = float(noise_std)
        self.detector = detector
        self.dropout_prob = float(dropout_prob)
        self.max_dropped = int(max_dropped)
        self.min_score = DEFAULT_MIN_SCORE if min_score is None else float(min_score)

    @classmethod
    def from_config(cls, aug, joint_set: str = "h36m") -> "KeypointAugmentation":
        """From an ``AUG`` config section (:class:`hgn_pyg.config.AugConfig`)."""
        detector = None
        if aug.detector_noise > 0 or aug.outlier_prob > 0 or aug.swap_prob > 0 or aug.missing_prob > 0:
            js = SKELETONS[joint_set]
            detector = DetectorNoise(spreads=JOINT_SPREADS[joint_set], flip_pairs=js.flip_pairs,
                                     noise=aug.detector_noise, outlier_prob=aug.outlier_prob,
                                     outlier_scale=aug.outlier_scale, swap_prob=aug.swap_prob,
                                     missing_prob=aug.missing_prob)
        return cls(joint_set, aug.noise_std, detector, aug.keypoint_dropout, aug.max_dropped)

    @property
    def active(self) -> bool:
        return (self.noise_std > 0 or self.detector is not None
                or (self.dropout_prob > 0 and self.max_dropped > 0))

    def __call__(self, x: Tensor, score: Optional[Tensor] = None,
                 generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
        if score is None:
            score = torch.ones(x.shape[:-1], dtype=x.dtype, device=x.device)
        if not self.active:
            return x, score
        if self.noise_std > 0:  # drawn first, as before this pipeline existed
            x = x + self.noise_std * torch.randn(x.shape, generator=generator, dtype=x.dtype,
                                                 device=x.device)
        if self.detector is not None:
            x, det_score = self.detector(x, generator)
            score = torch.minimum(score, det_score)
        if self.dropout_prob > 0 and self.max_dropped > 0:
            x, score = drop_keypoints(x, score, self.max_dropped, self.dropout_prob, generator)
        filled, missing = apply_missing_policy(x, score, self.min_score, self.joint_set)
        return filled, torch.where(missing, torch.zeros_like(score), score)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(joint_set={self.joint_set!r}, noise_std={self.noise_std}, "
                f"detector={self.detector}, dropout_prob={self.dropout_prob}, "
                f"max_dropped={self.max_dropped})")


# ============================================================================== pose and view
# Generalisation augmentation: new bodies (bone lengths) and new views (rotations, virtual cameras)
# made from the 3D target, the 2D input re-projected from them.
__all__ += ["PoseViewAugmentation", "POSE_VIEW_DEFAULTS"]

#: Defaults of the pose/view augmentation (``AUG`` keys of the same names; see
#: :class:`PoseViewAugmentation`). Ranges are ``[low, high]``.
#:
#: * ``body_scale`` — stature factor of the whole body: 0.88–1.12 spans adult statures of about
#:   1.50–1.90 m around Human3.6M's ~1.70 m subjects.
#: * ``bone_scale`` — standard deviation of a per-bone factor shared by the left and right bone of a
#:   pair (body proportions: segment-to-stature ratios vary by a few % between adults); draws are
#:   clipped to ±2.5 standard deviations.
#: * ``bone_scale_side`` — standard deviation of an extra factor per single bone (left/right
#:   differences; a real body's are ~1–2 %, so it is 0 unless asked for).
#: * ``yaw`` — half-range (degrees) of the rotation about the camera's vertical axis through the
#:   pelvis (180 = any heading); ``tilt`` — half-range of the roll about the viewing axis.
#: * ``elevation`` — the virtual camera's angle above (+) or below (−) the subject, degrees (a pitch
#:   of the subject about the camera's horizontal axis through the pelvis).
#: * ``distance`` — pelvis depth in metres; ``focal`` — normalised focal length ``2 f / W`` (the
#:   input normalisation ``uv / W * 2 - [1, H / W]`` makes ``x = focal · X / Z + c``): Human3.6M
#:   ~2.3, Panoptic HD ~1.5–1.9, phone/webcam ~1.2–1.8; ``offset`` — largest normalised distance
#:   of the pelvis's image from the image centre.
POSE_VIEW_DEFAULTS = {
    "body_scale": (0.88, 1.12),
    "bone_scale": 0.05,
    "bone_scale_side": 0.0,
    "yaw": 180.0,
    "tilt": 10.0,
    "elevation": (-20.0, 35.0),
    "distance": (2.5, 7.0),
    "focal": (1.2, 2.6),
    "offset": 0.5,
}


@dataclass(frozen=True)
class PoseViewAugmentation:
    r"""New bodies and new views from the training poses (generalisation augmentation).

    With probability ``pose_prob`` a sample's skeleton gets new bone lengths: a stature factor
    :math:`U(\text{body_scale})` times, per left/right bone pair (and per central bone), a factor
    :math:`1 + \mathcal N(0, \text{bone_scale}^2)`, times per single bone
    :math:`1 + \mathcal N(0, \text{bone_scale_side}^2)` (normal draws clipped to ±2.5 σ); the joints
    follow by forward kinematics along the tree (:func:`scale_bones`) and the mesh targets with
    their nearest bone (:func:`follow_bones`), so they stay on the body.

    With probability ``view_prob`` a sample is seen by a virtual camera: the pose (camera frame,
    pelvis-relative) is turned about the camera's vertical axis by :math:`U(\pm\text{yaw})`,
    rolled by :math:`U(\pm\text{tilt})` and pitched by :math:`U(\text{elevation})` (the camera
    higher or lower), its pelvis put at depth :math:`Z \sim U(\text{distance})` with its image at a
    uniform point of the disc of radius ``offset``, and projected with a focal length
    :math:`U(\text{focal})` in normalised units: :math:`x = f\,X/Z + o`. The 3D target and the
    meshes turn with the pose (they stay pelvis-relative in the new camera's frame).

    A sample whose body changed but whose view did not is re-projected through its own camera,
    recovered from the input (:meth:`fit_camera`, exact for ground-truth input); when no camera
    with positive focal length and depth explains the input, the sample gets a virtual camera.
    The new 2D input is a clean projection (ground-truth-like): the detector-like corruption of
    :class:`KeypointAugmentation` is applied after it, as for every sample.

    Call: ``aug(input_2d [B, J, 2], joints [B, J, 3], meshes (tuple of [B, V, 3]) or None,
    generator) -> (input_2d, joints, meshes)`` — new tensors for augmented samples, the others
    passed through unchanged. Draws come from ``generator`` in a fixed order.
    """

    parents: Sequence[int] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
    flip_pairs: Sequence[Tuple[int, int]] = ((1, 4), (2, 5), (3, 6), (14, 11), (15, 12), (16, 13))
    pose_prob: float = 0.0
    body_scale: Tuple[float, float] = POSE_VIEW_DEFAULTS["body_scale"]
    bone_scale: float = POSE_VIEW_DEFAULTS["bone_scale"]
    bone_scale_side: float = POSE_VIEW_DEFAULTS["bone_scale_side"]
    view_prob: float = 0.0
    yaw: float = POSE_VIEW_DEFAULTS["yaw"]
    tilt: float = POSE_VIEW_DEFAULTS["tilt"]
    elevation: Tuple[float, float] = POSE_VIEW_DEFAULTS["elevation"]
    distance: Tuple[float, float] = POSE_VIEW_DEFAULTS["distance"]
    focal: Tuple[float, float] = POSE_VIEW_DEFAULTS["focal"]
    offset: float = POSE_VIEW_DEFAULTS["offset"]

    def __post_init__(self) -> None:
        for name in ("pose_prob", "view_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"PoseViewAugmentation: {name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("bone_scale", "bone_scale_side", "yaw", "tilt", "offset"):
            if getattr(self, name) < 0:
                raise ValueError(f"PoseViewAugmentation: {name} must be >= 0, got {getattr(self, name)}")
        for name, positive in (("body_scale", True), ("elevation", False), ("distance", True), ("focal", True)):
            lo, hi = getattr(self, name)
            if lo > hi or (positive and lo <= 0):
                raise ValueError(f"PoseViewAugmentation: {name} must be [low, high] with low <= high"
                                 f"{' and low > 0' if positive else ''}, got {[lo, hi]}")
        if not -90.0 < self.elevation[0] <= self.elevation[1] < 90.0:
            raise ValueError(f"PoseViewAugmentation: elevation must lie in (-90, 90), got {list(self.elevation)}")
        if len(self.parents) < 1 or any(p >= j for j, p in enumerate(self.parents)):
            raise ValueError("PoseViewAugmentation: parents must list each joint's parent before it")

    @classmethod
    def from_config(cls, aug, joint_set: str = "h36m") -> "PoseViewAugmentation":
        """From an ``AUG`` config section (:class:`hgn_pyg.config.AugConfig`)."""
        js = SKELETONS["h36m"]  # the 3D target's skeleton (the 2D input is re-projected from it)
        return cls(parents=tuple(js.parents), flip_pairs=tuple(js.flip_pairs), pose_prob=aug.pose_prob,
                   body_scale=tuple(aug.body_scale), bone_scale=aug.bone_scale,
                   bone_scale_side=aug.bone_scale_side, view_prob=aug.view_prob, yaw=aug.yaw, tilt=aug.tilt,
                   elevation=tuple(aug.elevation), distance=tuple(aug.distance), focal=tuple(aug.focal),
                   offset=aug.offset)

    @property
    def active(self) -> bool:
        return self.pose_prob > 0 or self.view_prob > 0

    def _pairs(self, num_joints: int):
        """Bone groups: a left/right pair shares one factor, a central bone has its own."""
        group = list(range(num_joints))
        for a, b in self.flip_pairs:
            group[max(a, b)] = min(a, b)
        return torch.as_tensor(group, dtype=torch.long)

    def bone_factors(self, B: int, J: int, generator=None, dtype=torch.float32, device=None) -> Tensor:
        """``[B, J]`` bone factors (entry ``j``: the bone parent(j) → j)."""
        kw = dict(generator=generator, dtype=dtype, device=device)
        lo, hi = self.body_scale
        body = lo + (hi - lo) * torch.rand(B, 1, **kw)
        pair = 1 + self.bone_scale * torch.randn(B, J, **kw).clamp(-2.5, 2.5)
        side = 1 + self.bone_scale_side * torch.randn(B, J, **kw).clamp(-2.5, 2.5)
        pair = pair[:, self._pairs(J).to(pair.device)]
        return body * pair * side

    @staticmethod
    def fit_camera(x: Tensor, joints: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The pinhole ``x = f · X / Z + c`` of ground-truth-like input: ``x [B, J, 2]`` and
        pelvis-relative ``joints [B, J, 3]`` give ``(f [B, 2], c [B, 2], Z_root [B])``.

        With ``P = X_rel``: ``x (Z_root + P_z) = f (X_root + P_x) + c (Z_root + P_z)`` is not
        linear, so the fit uses ``x Z = f X + c Z`` with unknowns ``(f X_root, f, c, Z_root)``
        rearranged as ``x P_z = f P_x + c P_z + (f X_root + c Z_root - x Z_root)`` — linear in
        ``(f, c, k := f X_root + c Z_root, Z_root)`` per axis; both axes share ``Z_root``.
        """
        B, J, _ = x.shape
        xd, P = x.double(), joints.double()
        ones = torch.ones(B, J, dtype=torch.float64, device=x.device)
        zeros = torch.zeros_like(ones)
        # unknowns: f_x, c_x, k_x, f_y, c_y, k_y, Z_root
        rows_x = torch.stack([P[..., 0], P[..., 2], ones, zeros, zeros, zeros, -xd[..., 0]], -1)
        rows_y = torch.stack([zeros, zeros, zeros, P[..., 1], P[..., 2], ones, -xd[..., 1]], -1)
        A = torch.cat([rows_x, rows_y], 1)                         # [B, 2J, 7]
        rhs = torch.cat([xd[..., 0] * P[..., 2], xd[..., 1] * P[..., 2]], 1)
        sol = torch.linalg.lstsq(A, rhs[..., None]).solution[..., 0]
        f = sol[:, [0, 3]]
        c = sol[:, [1, 4]]
        z = sol[:, 6]
        return f.to(x.dtype), c.to(x.dtype), z.to(x.dtype)

    def __call__(self, x: Tensor, joints: Tensor, meshes=None, generator: Optional[torch.Generator] = None):
        _check(x, "PoseViewAugmentation")
        B, J, _ = x.shape
        if joints.shape != (B, J, 3):
            raise ValueError(f"PoseViewAugmentation: joints must be [{B}, {J}, 3], got {list(joints.shape)}")
        if J != len(self.parents):
            raise ValueError(f"PoseViewAugmentation: {len(self.parents)} parents for {J} joints")
        meshes = tuple(meshes) if meshes is not None else None
        if not self.active or B == 0:
            return x, joints, meshes
        kw = dict(generator=generator, device=x.device, dtype=joints.dtype)
        # draws in a fixed order: pose mask, bone factors, view mask, yaw, tilt, elevation, distance,
        # focal, offset radius, offset angle
        pose_on = torch.rand(B, **kw) < self.pose_prob
        factors = self.bone_factors(B, J, generator, joints.dtype, x.device)
        view_on = torch.rand(B, **kw) < self.view_prob
        deg = math.pi / 180.0
        yaw = (2 * torch.rand(B, **kw) - 1) * self.yaw * deg
        tilt = (2 * torch.rand(B, **kw) - 1) * self.tilt * deg
        elev = (self.elevation[0] + (self.elevation[1] - self.elevation[0]) * torch.rand(B, **kw)) * deg
        dist = self.distance[0] + (self.distance[1] - self.distance[0]) * torch.rand(B, **kw)
        focal = self.focal[0] + (self.focal[1] - self.focal[0]) * torch.rand(B, **kw)
        radius = self.offset * torch.rand(B, **kw).sqrt()
        angle = 2 * math.pi * torch.rand(B, **kw)
        if not bool(pose_on.any()) and not bool(view_on.any()):
            return x, joints, meshes

        rel = joints - joints[:, :1]
        new = rel
        new_meshes = None if meshes is None else tuple(m - joints[:, :1] for m in meshes)
        if bool(pose_on.any()):
            scaled = scale_bones(rel, self.parents, factors)
            new = torch.where(pose_on[:, None, None], scaled, rel)
            if new_meshes is not None:
                new_meshes = tuple(torch.where(pose_on[:, None, None], follow_bones(m, rel, scaled, self.parents), m)
                                   for m in new_meshes)
        # the camera each sample is seen by: its own (fitted) or a virtual one; a sample whose input
        # is no pinhole view of its target (no positive focal length / depth fits) gets a virtual one
        f_own, c_own, z_own = self.fit_camera(x, rel)
        own_ok = torch.isfinite(f_own).all(1) & (f_own > 1e-3).all(1) & torch.isfinite(z_own) & (z_own > 1e-3)
        own_ok = own_ok & torch.isfinite(c_own).all(1)
        view_on = view_on | (pose_on & ~own_ok)
        f_own = torch.where(own_ok[:, None], f_own, torch.ones_like(f_own))
        c_own = torch.where(own_ok[:, None], c_own, torch.zeros_like(c_own))
        z_own = torch.where(own_ok, z_own, torch.ones_like(z_own))
        # own camera: x_root = f X_root / Z_root + c  ->  X_root = (x_root - c) Z_root / f
        root_own = torch.stack([(x[:, 0, 0] - c_own[:, 0]) * z_own / f_own[:, 0],
                                (x[:, 0, 1] - c_own[:, 1]) * z_own / f_own[:, 1], z_own], -1)
        R = (rotation_matrix(0, elev) @ rotation_matrix(2, tilt) @ rotation_matrix(1, yaw))  # [B, 3, 3]
        rotated = new @ R.transpose(1, 2)
        img = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], -1)   # pelvis image
        root_virtual = torch.stack([img[:, 0] * dist / focal, img[:, 1] * dist / focal, dist], -1)
        v = view_on[:, None, None]
        pose_cam = torch.where(v, rotated, new)
        root = torch.where(view_on[:, None], root_virtual, root_own)
        f = torch.where(view_on[:, None], focal[:, None].expand(B, 2), f_own)
        c = torch.where(view_on[:, None], torch.zeros_like(c_own), c_own)
        P = pose_cam + root[:, None]
        depth = P[..., 2:3].clamp_min(1e-3)
        x_new = f[:, None] * P[..., :2] / depth + c[:, None]
        changed = (pose_on | view_on)[:, None, None]
        x_out = torch.where(changed, x_new.to(x.dtype), x)
        joints_out = torch.where(changed, pose_cam + joints[:, :1], joints)
        meshes_out = None
        if new_meshes is not None:
            meshes_out = tuple(torch.where(changed, torch.where(v, m @ R.transpose(1, 2), m) + joints[:, :1], m0)
                               for m, m0 in zip(new_meshes, meshes))
        return x_out, joints_out, meshes_out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(pose_prob={self.pose_prob}, body_scale={list(self.body_scale)}, "
                f"bone_scale={self.bone_scale}, bone_scale_side={self.bone_scale_side}, view_prob={self.view_prob}, "
                f"yaw={self.yaw}, tilt={self.tilt}, elevation={list(self.elevation)}, "
                f"distance={list(self.distance)}, focal={list(self.focal)}, offset={self.offset})")
