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

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..graphs.skeleton import H36M, SKELETONS
from .keypoints import DEFAULT_MIN_SCORE, apply_missing_policy

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
