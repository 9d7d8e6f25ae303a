"""Forward kinematics on joint trees: rotations, bone scaling, points that follow their bones, and
left/right bone-length symmetrisation.

Joints are ``[B, J, 3]`` tensors of one skeleton whose tree is given as ``parents`` (``-1`` for
the root, each parent listed before its children: :attr:`hgn_pyg.graphs.skeleton.JointSet.parents`).
Used by the pose/view augmentation (:mod:`hgn_pyg.data.augment`) and by the lifter's optional
bone symmetrisation (:class:`hgn_pyg.inference.lifter.Lifter`).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor

from hgn_pyg.graphs.skeleton import H36M

__all__ = ["rotation_matrix", "scale_bones", "follow_bones", "bone_lengths", "symmetric_bones", "symmetric_h36m"]


def rotation_matrix(axis: int, angle: Tensor) -> Tensor:
    """Rotations by ``angle [B]`` (radians) about coordinate axis ``axis`` (0 = x, 1 = y, 2 = z):
    ``[B, 3, 3]``, right-handed (``R @ p`` rotates column vectors ``p``)."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    elif axis == 1:
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    elif axis == 2:
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    else:
        raise ValueError(f"rotation_matrix: axis must be 0, 1 or 2, got {axis}")
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def scale_bones(joints: Tensor, parents: Sequence[int], factors: Tensor) -> Tensor:
    """Forward kinematics with scaled bones: joint ``j`` keeps its direction from its parent and its
    bone (parent → j) is multiplied by ``factors[:, j]``.

    Args:
        joints: ``[B, J, 3]``; parents: the tree (``-1`` for the root; parents come before children).
        factors: ``[B, J]`` (the root's entry is ignored).

    Returns: ``[B, J, 3]`` with the root where it was.
    """
    out = [None] * joints.size(1)
    for j, p in enumerate(parents):
        if p < 0:
            out[j] = joints[:, j]
        else:
            if p >= j:
                raise ValueError(f"scale_bones: parent {p} of joint {j} must come before it")
            out[j] = out[p] + factors[:, j:j + 1] * (joints[:, j] - joints[:, p])
    return torch.stack(out, 1)


def follow_bones(points: Tensor, joints: Tensor, new_joints: Tensor, parents: Sequence[int]) -> Tensor:
    """Move points attached to a skeleton along with its bones: each point ``[B, P, 3]`` takes the
    bone (parent → child segment of ``joints``) nearest to it, at the segment parameter
    ``u ∈ [0, 1]`` of its foot point, and moves by ``(1 - u) Δ_parent + u Δ_child`` (``Δ`` = the
    joints' displacements ``new_joints - joints``). A point on a bone stays at the same fraction of
    the scaled bone; a point beside it keeps its offset from the bone."""
    bones = [(p, j) for j, p in enumerate(parents) if p >= 0]
    a = joints[:, [p for p, _ in bones]]            # [B, E, 3]
    b = joints[:, [j for _, j in bones]]
    ab = b - a
    ap = points[:, :, None] - a[:, None]             # [B, P, E, 3]
    u = ((ap * ab[:, None]).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)[:, None]).clamp(0.0, 1.0)
    foot = a[:, None] + u[..., None] * ab[:, None]
    nearest = (points[:, :, None] - foot).norm(dim=-1).argmin(-1)  # [B, P]
    d = new_joints - joints
    da, db = d[:, [p for p, _ in bones]], d[:, [j for _, j in bones]]
    idx = nearest[..., None].expand(-1, -1, 3)
    uu = u.gather(2, nearest[..., None])
    return points + (1 - uu) * da.gather(1, idx) + uu * db.gather(1, idx)


def bone_lengths(joints: Tensor, parents: Sequence[int]) -> Tensor:
    """``[B, J]``: entry ``j`` is the length of the bone parent(j) → j (0 for the root)."""
    par = torch.as_tensor([max(p, 0) for p in parents], device=joints.device)
    return (joints - joints[:, par]).norm(dim=-1)


def symmetric_bones(joints: Tensor, parents: Sequence[int], flip_pairs: Sequence[Tuple[int, int]]) -> Tensor:
    """The same pose with equal left and right bones: for each flip pair ``(a, b)`` the bones
    parent(a) → a and parent(b) → b both take their mean length; every bone keeps its direction
    and the root stays (forward kinematics, :func:`scale_bones`). A bone of length 0 keeps it.

    Args:
        joints: ``[B, J, 3]``; parents: the tree; flip_pairs: the left/right joint pairs.

    Returns: ``[B, J, 3]`` of ``joints``' dtype.
    """
    length = bone_lengths(joints, parents)
    target = length.clone()
    for a, b in flip_pairs:
        mean = 0.5 * (length[:, a] + length[:, b])
        target[:, a], target[:, b] = mean, mean
    factors = torch.where(length > 0, target / length.clamp_min(torch.finfo(length.dtype).tiny),
                          torch.ones_like(length))
    return scale_bones(joints, parents, factors)


def symmetric_h36m(joints: Tensor) -> Tensor:
    """:func:`symmetric_bones` on Human3.6M-17 poses ``[B, 17, 3]``, computed in float64 and
    returned in ``joints``' dtype (the lifter's and the evaluator's ``symmetric_bones`` option)."""
    return symmetric_bones(joints.double(), H36M.parents, H36M.flip_pairs).to(joints.dtype)
