r"""The HGN training loss (docs/published_model.md §4, §10).

.. math::
    \mathcal{L} = w_J\,\mathrm{MSE}(\hat{J}, J)
      + \sum_k w_k\,\mathrm{MSE}\big(\hat{M}_k[\pi_k], M_k\big)
      + w_S \frac{1}{P} \sum_{(a, b)} \big(\lVert \hat{J}_a - \hat{J}_{p(a)} \rVert
        - \lVert \hat{J}_b - \hat{J}_{p(b)} \rVert\big)^2

with :math:`w_J = 100` and one weight :math:`w_k` per mesh level the network predicts
(published: 1 for each of the 48- and 96-slot meshes; ``TRAIN.mesh_loss_weights`` sets them,
all zeros train without the mesh constraint).  Any number of levels works, none included
(the skeleton-only network).  The network predicts every *slot* of a mesh level (binary-tree
order, fake slots included); the ground truth has one row per *real* vertex in the
original cluster order, so the prediction is read at
:math:`\pi_k = ` ``hierarchy.real_slots(level_k)`` first.  ``MSE`` is the mean over
all elements (``torch.nn.functional.mse_loss``).  When a batch has no mesh targets
(e.g. the VideoPose3D format) the mesh terms are dropped.

The last term is not in the published loss (:math:`w_S = 0` by default, ``TRAIN.symmetry_loss_weight``):
it asks the predicted left and right bones to be equally long, for each left/right joint pair
:math:`(a, b)` of the skeleton (:attr:`~hgn_pyg.graphs.skeleton.JointSet.flip_pairs`, bones
:math:`p(a) \to a` from :attr:`~hgn_pyg.graphs.skeleton.JointSet.parents`), averaged over the
:math:`P` pairs and the batch. Real bodies are nearly symmetric; a lifter that is unsure of a limb's
depth otherwise gives its two sides different lengths (docs/real_people.md).

Shapes: ``joints [B, J, 3]``, ``meshes[k] [B, slots_k, 3]`` (prediction) and
``[B, real_k, 3]`` (target).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["HGNLoss"]


class HGNLoss(nn.Module):
    r"""Weighted joint + multi-level mesh MSE (docs/published_model.md §4).

    Args:
        real_slots: for each mesh level the network predicts, a LongTensor of the slots
            holding real vertices in original order (``hierarchy.real_slots(level)``);
            may be empty when the model predicts no meshes.
        joint_weight: :math:`w_J` (default 100).
        mesh_weights: :math:`w_k` per mesh level (default 1 each).
        symmetry_weight: :math:`w_S` (default 0: the published loss).
        parents, flip_pairs: the predicted skeleton's tree and left/right joint pairs (needed when
            ``symmetry_weight > 0``; :class:`~hgn_pyg.graphs.skeleton.JointSet`).

    ``forward(joints, meshes, joints_gt, meshes_gt=None)`` returns
    ``(total, parts)`` with ``parts = {"joints": …, "mesh0": …, "mesh1": …, …}`` (detached
    unweighted MSEs; mesh entries only when mesh targets are given; ``"symmetry"`` when
    ``symmetry_weight > 0``).
    """

    def __init__(self, real_slots: Sequence[Tensor] = (), joint_weight: float = 100.0,
                 mesh_weights: Optional[Sequence[float]] = None, symmetry_weight: float = 0.0,
                 parents: Sequence[int] = (), flip_pairs: Sequence[Tuple[int, int]] = ()):
        super().__init__()
        real_slots = [torch.as_tensor(s, dtype=torch.long) for s in real_slots]
        if mesh_weights is None:
            mesh_weights = [1.0] * len(real_slots)
        if len(mesh_weights) != len(real_slots):
            raise ValueError(f"HGNLoss: {len(mesh_weights)} mesh weights for {len(real_slots)} mesh levels")
        self.joint_weight = float(joint_weight)
        self.mesh_weights = [float(w) for w in mesh_weights]
        for k, s in enumerate(real_slots):
            self.register_buffer(f"real_slots_{k}", s, persistent=False)
        self.num_meshes = len(real_slots)
        self.symmetry_weight = float(symmetry_weight)
        if self.symmetry_weight < 0:
            raise ValueError(f"HGNLoss: symmetry_weight must be >= 0, got {symmetry_weight}")
        if self.symmetry_weight > 0:
            pairs = torch.as_tensor(flip_pairs, dtype=torch.long).view(-1, 2)
            par = torch.as_tensor(parents, dtype=torch.long)
            if pairs.numel() == 0 or par.numel() == 0:
                raise ValueError("HGNLoss: symmetry_weight > 0 needs the skeleton's parents and flip_pairs")
            if int(pairs.max()) >= par.numel() or bool((par[pairs] < 0).any()):
                raise ValueError(f"HGNLoss: flip_pairs {pairs.tolist()} do not name non-root joints of "
                                 f"a {par.numel()}-joint tree")
            # rows: (a, parent(a), b, parent(b)) per pair
            self.register_buffer("bone_pairs", torch.stack([pairs[:, 0], par[pairs[:, 0]],
                                                            pairs[:, 1], par[pairs[:, 1]]], 1),
                                 persistent=False)

    @classmethod
    def from_hierarchy(cls, hierarchy, mesh_levels: Sequence[int], joint_weight: float = 100.0,
                       mesh_weights: Optional[Sequence[float]] = None, **kwargs) -> "HGNLoss":
        """Build the loss reading predictions at ``hierarchy.real_slots(level)`` for each mesh level
        (``kwargs``: ``symmetry_weight``, ``parents``, ``flip_pairs``)."""
        slots = [torch.as_tensor(hierarchy.real_slots(int(lvl)), dtype=torch.long) for lvl in mesh_levels]
        return cls(slots, joint_weight=joint_weight, mesh_weights=mesh_weights, **kwargs)

    def real_slots(self, k: int) -> Tensor:
        return getattr(self, f"real_slots_{k}")

    def forward(self, joints: Tensor, meshes: Optional[Sequence[Tensor]], joints_gt: Tensor,
                meshes_gt: Optional[Sequence[Tensor]] = None) -> Tuple[Tensor, Dict[str, Tensor]]:
        if joints.shape != joints_gt.shape:
            raise ValueError(f"HGNLoss: predicted joints {tuple(joints.shape)} vs target {tuple(joints_gt.shape)}")
        lj = F.mse_loss(joints, joints_gt)
        total = self.joint_weight * lj
        parts = {"joints": lj.detach()}
        if meshes_gt is not None and meshes is not None:
            if len(meshes_gt) != self.num_meshes or len(meshes) != self.num_meshes:
                raise ValueError(f"HGNLoss: expected {self.num_meshes} mesh levels, got {len(meshes)} "
                                 f"predictions and {len(meshes_gt)} targets")
            for k in range(self.num_meshes):
                pred = meshes[k].index_select(-2, self.real_slots(k))
                if pred.shape != meshes_gt[k].shape:
                    raise ValueError(f"HGNLoss: mesh level {k}: prediction at real slots {tuple(pred.shape)} "
                                     f"vs target {tuple(meshes_gt[k].shape)}")
                lm = F.mse_loss(pred, meshes_gt[k])
                total = total + self.mesh_weights[k] * lm
                parts[f"mesh{k}"] = lm.detach()
        if self.symmetry_weight > 0:
            ls = self.symmetry(joints)
            total = total + self.symmetry_weight * ls
            parts["symmetry"] = ls.detach()
        return total, parts

    def symmetry(self, joints: Tensor) -> Tensor:
        """Mean squared left/right bone-length difference of ``joints [B, J, 3]`` (a scalar)."""
        a, pa, b, pb = self.bone_pairs.unbind(1)
        left = (joints[:, a] - joints[:, pa]).norm(dim=-1)
        right = (joints[:, b] - joints[:, pb]).norm(dim=-1)
        return (left - right).square().mean()

    def __repr__(self) -> str:
        sizes = [int(self.real_slots(k).numel()) for k in range(self.num_meshes)]
        return (f"{self.__class__.__name__}(joint_weight={self.joint_weight}, "
                f"mesh_weights={self.mesh_weights}, real={sizes}"
                + (f", symmetry_weight={self.symmetry_weight})" if self.symmetry_weight > 0 else ")"))
