"""Scatter-based cross-scale fusion: pooling / unpooling followed by a linear map.

The clean alternative to the learned dense :class:`~hgn_pyg.nn.NodeTransfer` maps: features move
between scales along the mesh hierarchy's clusters (:class:`HierarchyPoolFusion`) or along the
mesh-slot -> joint assignment (:class:`JointPoolFusion`), then a ``Linear(C, C')`` mixes channels.
The index structure is copied out of the graph objects into buffers at construction, so the
modules follow ``.to(device)`` and need no graph object at run time.
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor
from torch.nn import Linear, Module

from hgn_pyg.errors import GraphError
from hgn_pyg.graphs.hierarchy import ParentMap


class _PoolFusion(Module):
    """Common part: a :class:`~hgn_pyg.graphs.ParentMap` (fine -> coarse with pooling weights)
    used to pool (fine -> coarse) or to broadcast back (coarse -> fine), then ``lin``."""

    def __init__(self, in_channels: int, out_channels: int, parent: ParentMap, pool: bool,
                 bias: bool) -> None:
        super().__init__()
        self.num_fine, self.num_coarse = parent.num_fine, int(parent.num_coarse)
        self.pooling = bool(pool)
        self.register_buffer("_index", parent.index.detach().to("cpu", torch.long).clone(),
                             persistent=False)
        # float64 so that double models pool exactly; cast to x's dtype at run time
        self.register_buffer("_weight", parent.weight.detach().to("cpu", torch.float64).clone(),
                             persistent=False)
        self.in_nodes = self.num_fine if pool else self.num_coarse
        self.out_nodes = self.num_coarse if pool else self.num_fine
        self.lin = Linear(in_channels, out_channels, bias=bias)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def resample(self, x: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        """The pooling / unpooling step alone (no linear map)."""
        parent = ParentMap(self._index, self._weight, self.num_coarse)
        return parent.pool(x, batch) if self.pooling else parent.unpool(x, batch)

    def forward(self, x: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        return self.lin(self.resample(x, batch))


class HierarchyPoolFusion(_PoolFusion):
    r"""Move features between two levels of a :class:`~hgn_pyg.graphs.GraphHierarchy`, then
    apply a linear map.

    From a finer ``source_level`` to a coarser ``target_level`` (``target > source``) each coarse
    slot takes the mean of its real descendants (fake slots excluded; a slot without a real
    descendant gets 0); in the other direction each real fine slot takes its ancestor's features
    (fake slots 0). Levels further apart compose the one-level steps
    (:meth:`GraphHierarchy.parent_map`), so a descendant ``t`` of ``s`` weighs
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
        - **input:** ``x [B, S_source, C]`` or ``[S_source, C]`` in slot order, or a PyG batch
          ``[k*S_source, C]`` with ``batch``.
        - **output:** ``[B, S_target, C']``, ``[S_target, C']`` or ``[k*S_target, C']``.
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
        super().__init__(in_channels, out_channels or in_channels,
                         hierarchy.parent_map(lo, hi), pool=target_level > source_level,
                         bias=bias)
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
        - either way a PyG batch ``[k*S_in, C]`` with ``batch`` -> ``[k*S_out, C']``.
    """

    def __init__(self, in_channels: int, assignment, direction: str = "pool",
                 out_channels: int = None, bias: bool = True) -> None:
        if direction not in ("pool", "unpool"):
            raise ValueError(f"JointPoolFusion: direction must be 'pool' or 'unpool', "
                             f"got {direction!r}")
        super().__init__(in_channels, out_channels or in_channels, assignment.parent_map(),
                         pool=direction == "pool", bias=bias)
        self.direction = direction

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.lin.in_features}, {self.lin.out_features}, "
                f"{self.direction}: {self.in_nodes} -> {self.out_nodes} nodes)")


__all__: List[str] = ["HierarchyPoolFusion", "JointPoolFusion"]
