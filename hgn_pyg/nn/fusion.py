"""Scatter-based cross-scale fusion: pooling / unpooling followed by a linear map.

The clean alternative to the learned dense :class:`~hgn_pyg.nn.NodeTransfer` maps: features move
between scales along the mesh hierarchy's clusters (:class:`HierarchyPoolFusion`) or along the
mesh-slot -> joint assignment (:class:`JointPoolFusion`), then a ``Linear(C, C')`` mixes channels.
The index structure is copied out of the graph objects into buffers at construction, so the
modules follow ``.to(device)`` and need no graph object at run time.
"""
from __future__ import annotations

from typing import List

import torch
from torch import Tensor
from torch.nn import Linear, Module

from hgn_pyg.errors import GraphError


def _weighted_pool(x: Tensor, src: Tensor, dst: Tensor, weight: Tensor, size: int) -> Tensor:
    """``out[.., d, :] = sum_{k: dst[k] = d} weight[k] * x[.., src[k], :]`` (scatter-add)."""
    xs = x.index_select(-2, src) * weight.to(x.dtype).unsqueeze(-1)
    shape = list(x.shape)
    shape[-2] = size
    return x.new_zeros(shape).index_add(-2, dst, xs)


def _broadcast(x: Tensor, parent: Tensor, mask: Tensor) -> Tensor:
    """``out[.., s, :] = x[.., parent[s], :]`` where ``mask[s]``, else 0."""
    return x.index_select(-2, parent) * mask.to(x.dtype).unsqueeze(-1)


def _check_nodes(x: Tensor, n: int, who: str) -> None:
    if x.dim() not in (2, 3) or x.size(-2) != n:
        raise ValueError(f"{who}: expected x [B, {n}, C] or [{n}, C], got {list(x.shape)}")


class _PoolFusion(Module):
    """Common part: a fine->coarse map ``parent`` (-1 = no parent) with pooling weights, used
    either to pool (fine -> coarse, weighted sum) or to broadcast back (coarse -> fine), then
    ``lin``. ``weight=None`` means a plain mean over each coarse node's fine nodes."""

    def __init__(self, in_channels: int, out_channels: int, parent: Tensor, num_coarse: int,
                 pool: bool, bias: bool, weight: Tensor = None) -> None:
        super().__init__()
        parent = parent.detach().to("cpu", torch.long).view(-1)
        real = (parent >= 0).nonzero().view(-1)
        if weight is None:
            count = torch.bincount(parent[real], minlength=num_coarse).to(torch.float64)
            weight = 1.0 / count[parent[real]]
        else:
            weight = weight.detach().to("cpu", torch.float64).view(-1)[real]
        self.num_fine = int(parent.numel())
        self.num_coarse = int(num_coarse)
        self.pooling = bool(pool)
        self.register_buffer("_fine_src", real, persistent=False)
        self.register_buffer("_coarse_dst", parent[real], persistent=False)
        # float64 so that double models pool exactly; cast to x's dtype at run time
        self.register_buffer("_pool_weight", weight, persistent=False)
        self.register_buffer("_parent", parent.clamp(min=0), persistent=False)
        self.register_buffer("_fine_mask", parent >= 0, persistent=False)
        self.in_nodes = self.num_fine if pool else self.num_coarse
        self.out_nodes = self.num_coarse if pool else self.num_fine
        self.lin = Linear(in_channels, out_channels, bias=bias)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def resample(self, x: Tensor) -> Tensor:
        """The pooling / unpooling step alone (no linear map)."""
        _check_nodes(x, self.in_nodes, self.__class__.__name__)
        if self.pooling:
            return _weighted_pool(x, self._fine_src, self._coarse_dst, self._pool_weight,
                                  self.num_coarse)
        return _broadcast(x, self._parent, self._fine_mask)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin(self.resample(x))


class HierarchyPoolFusion(_PoolFusion):
    r"""Move features between two levels of a :class:`~hgn_pyg.graphs.GraphHierarchy`, then
    apply a linear map.

    From a finer ``source_level`` to a coarser ``target_level`` (``target > source``) each coarse
    slot takes the mean of its real descendants (fake slots excluded; a slot without a real
    descendant gets 0); in the other direction each real fine slot takes its ancestor's features
    (fake slots 0). Levels further apart compose the one-level steps (``GraphHierarchy.pool`` /
    ``unpool`` applied repeatedly), so a descendant ``t`` of ``s`` weighs
    :math:`w_t = \prod_{\text{steps}} 1/|\text{real children}|`:

    .. math::
        x'_s = W\Big(\sum_{t \in D(s)} w_t\, x_t\Big) + b \quad\text{(pool)},\qquad
        x'_t = W x_{\mathrm{anc}(t)} + b \quad\text{(unpool)}

    Args:
        in_channels (int), out_channels (int, default ``in_channels``): ``Linear`` sizes.
        hierarchy (GraphHierarchy): the mesh hierarchy (slot order at every level).
        source_level (int), target_level (int): the levels, different.
        bias (bool): linear bias.

    Shapes:
        - **input:** ``x [B, S_source, C]`` or ``[S_source, C]`` in slot order.
        - **output:** ``[B, S_target, C']`` or ``[S_target, C']``.
    """

    def __init__(self, in_channels: int, hierarchy, source_level: int, target_level: int,
                 out_channels: int = None, bias: bool = True) -> None:
        if source_level == target_level:
            raise GraphError(f"HierarchyPoolFusion: source_level and target_level are both "
                             f"{source_level}")
        lo, hi = sorted((int(source_level), int(target_level)))
        if lo < 0 or hi >= hierarchy.num_levels:
            raise GraphError(f"HierarchyPoolFusion: levels {source_level}->{target_level} outside "
                             f"the hierarchy's 0..{hierarchy.num_levels - 1}")
        parent = torch.arange(int(hierarchy.num_slots[lo]))
        weight = torch.ones(parent.numel(), dtype=torch.float64)
        for level in range(lo, hi):
            up = _slot_parents(hierarchy, level)
            count = torch.bincount(up[up >= 0], minlength=int(hierarchy.num_slots[level + 1]))
            ok = parent >= 0
            parent = torch.where(ok, up[parent.clamp(min=0)], parent)
            ok = parent >= 0
            weight = torch.where(ok, weight / count[parent.clamp(min=0)].clamp(min=1), 0.0)
        super().__init__(in_channels, out_channels or in_channels, parent,
                         int(hierarchy.num_slots[hi]), pool=target_level > source_level,
                         bias=bias, weight=weight)
        self.source_level = int(source_level)
        self.target_level = int(target_level)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.lin.in_features}, {self.lin.out_features}, "
                f"level {self.source_level} ({self.in_nodes}) -> {self.target_level} "
                f"({self.out_nodes}))")


class JointPoolFusion(_PoolFusion):
    r"""Move features between a mesh level and the skeleton along a
    :class:`~hgn_pyg.graphs.JointAssignment`, then apply a linear map.

    ``direction="pool"`` (mesh -> joints): each joint takes the mean of its slots (0 if none);
    ``direction="unpool"`` (joints -> mesh): each real slot takes its joint's features (fake 0).

    .. math::
        x'_j = W\Big(\tfrac{1}{|S_j|}\sum_{s \in S_j} x_s\Big) + b,\qquad x'_s = W x_{a(s)} + b

    Args:
        in_channels (int), out_channels (int, default ``in_channels``): ``Linear`` sizes.
        assignment (JointAssignment): ``assign [S]`` (joint per slot, -1 fake), ``num_joints``.
        direction (str): ``"pool"`` or ``"unpool"``.
        bias (bool): linear bias.

    Shapes:
        - pool: ``[B, S, C]`` / ``[S, C]`` -> ``[B, J, C']`` / ``[J, C']``.
        - unpool: ``[B, J, C]`` / ``[J, C]`` -> ``[B, S, C']`` / ``[S, C']``.
    """

    def __init__(self, in_channels: int, assignment, direction: str = "pool",
                 out_channels: int = None, bias: bool = True) -> None:
        if direction not in ("pool", "unpool"):
            raise ValueError(f"JointPoolFusion: direction must be 'pool' or 'unpool', "
                             f"got {direction!r}")
        assign = torch.as_tensor(assignment.assign).view(-1)
        num_joints = int(getattr(assignment, "num_joints", int(assign.max()) + 1))
        super().__init__(in_channels, out_channels or in_channels, assign, num_joints,
                         pool=direction == "pool", bias=bias)
        self.direction = direction

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.lin.in_features}, {self.lin.out_features}, "
                f"{self.direction}: {self.in_nodes} -> {self.out_nodes} nodes)")


def _slot_parents(hierarchy, level: int) -> Tensor:
    """Slot of level ``level + 1`` holding each slot of ``level`` (-1 for fake slots), from the
    hierarchy's public ``perms``, ``inv_perms``, ``clusters`` and ``num_real``."""
    perm = torch.as_tensor(hierarchy.perms[level]).long().cpu()
    cluster = torch.as_tensor(hierarchy.clusters[level]).long().cpu()
    inv_up = torch.as_tensor(hierarchy.inv_perms[level + 1]).long().cpu()
    n_real = int(hierarchy.num_real[level])
    real = perm < n_real
    parent = torch.full_like(perm, -1)
    parent[real] = inv_up[cluster[perm[real]]]
    return parent


__all__: List[str] = ["HierarchyPoolFusion", "JointPoolFusion"]
