"""Test-time flip averaging: lift a pose and its mirror image, and average the two answers.

The mirror image of a person is the image of the mirrored person (left and right swapped) taken by
the mirrored camera. So a lifter that has learnt people in general gives two estimates of one pose:
its answer for the input, and the mirror of its answer for the mirrored input. Their mean is the
usual test-time augmentation of 2D-to-3D lifters (docs/real_people.md measures what it buys on
real people).

The model's input holds normalised image coordinates (``x = 2u/W - 1``,
:func:`hgn_pyg.data.camera.normalize_pixels`), so the mirror about the image centre is ``x -> -x``
with the left/right keypoints swapped; its output holds camera-frame joints, mirrored as
``X -> -X`` with the left/right joints swapped. Any further input channel (a keypoint score) is
swapped with its keypoint and kept.

Shapes:
    input ``[B, J_in, C]`` (channel 0 the horizontal coordinate), output ``[B, J_out, 3]``.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["mirror", "with_mirror", "merge_mirrored"]

Pairs = Sequence[Tuple[int, int]]


def mirror(x: Tensor, flip_pairs: Pairs) -> Tensor:
    """``x [B, J, C]`` mirrored: channel 0 negated and each left/right pair ``(a, b)`` swapped."""
    perm = list(range(x.shape[-2]))
    for a, b in flip_pairs:
        perm[a], perm[b] = perm[b], perm[a]
    out = x[..., perm, :].clone()
    out[..., 0] = -out[..., 0]
    return out


def with_mirror(x: Tensor, input_pairs: Pairs) -> Tensor:
    """The batch to run: ``[2B, J_in, C]``, the input ``x [B, J_in, C]`` then its mirror."""
    return torch.cat([x, mirror(x, input_pairs)])


def merge_mirrored(joints: Tensor, output_pairs: Pairs) -> Tensor:
    """The model's joints ``[2B, J_out, 3]`` for :func:`with_mirror`'s batch -> ``[B, J_out, 3]``:
    the mean of the answer for the input and the mirror of the answer for the mirrored input."""
    half = joints.shape[0] // 2
    if joints.shape[0] != 2 * half:
        raise ValueError(f"merge_mirrored: expected an even batch (input, then mirror), got {joints.shape[0]}")
    return (joints[:half] + mirror(joints[half:], output_pairs)) / 2
