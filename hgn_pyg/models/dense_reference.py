r"""The published HGN network in its dense formulation (reference implementation).

:class:`DenseHGN` restates docs/published_model.md §2–§3 literally in plain PyTorch, the way the
published model computes it:

* graph convolutions build an ``N × N`` logit matrix every call (``e_k`` on the
  nonzeros of the adjacency, ``-9e15`` elsewhere), soft-max it row-wise and
  multiply densely (docs/published_model.md §2.1);
* the non-local block materialises the ``[B, C, N, N]`` concatenation of
  :math:`\theta_i` and :math:`\phi_j` before its ``1 × 1`` projection (docs/published_model.md §2.3);
* cross-scale transfers are ``Conv1d(N_in, N_out, 1)`` with nodes as channels
  (docs/published_model.md §2.4);
* the sequential fusion of docs/published_model.md §3 is written out line by line.

Its parameter names and shapes are exactly those of the published checkpoint, so
``DenseHGN(...).load_state_dict(published_state_dict)`` works.  It is slow and
memory hungry on purpose: it is the yard-stick that :class:`hgn_pyg.models.HGN`
(sparse message passing, separable non-local) is tested and benchmarked against.
It is not meant for training new models.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
import torch.nn.functional as F

__all__ = ["DenseHGN", "dense_adjacency", "DenseSemGraphConv", "DenseGraphNonLocal"]

#: logit given to the non-edges before the row soft-max (the published constant).
NEG_LOGIT = -9e15


def dense_adjacency(edge_index: Tensor, num_nodes: int, add_self_loops: bool = False) -> Tensor:
    r"""Binary dense adjacency ``A[target, source] = 1`` from an ``edge_index [2, E]``.

    With ``add_self_loops`` the diagonal is set too (the skeleton graph of docs/published_model.md §1.1).
    Rows without any edge stay all-zero (fake slots of a mesh level).

    Returns a float tensor ``[num_nodes, num_nodes]``.
    """
    adj = torch.zeros(num_nodes, num_nodes, dtype=torch.float32)
    edge_index = torch.as_tensor(edge_index, dtype=torch.long)
    if edge_index.numel():
        adj[edge_index[1], edge_index[0]] = 1.0
    if add_self_loops:
        adj.fill_diagonal_(1.0)
    return adj


class DenseSemGraphConv(nn.Module):
    r"""Semantic graph convolution, dense published form (docs/published_model.md §2.1).

    .. math::
        L_{ij} = e_k \text{ if } A_{ij} \neq 0 \text{ else } -9\cdot10^{15},\quad
        S = \mathrm{softmax}_j(L),\quad
        \mathbf{out}_i = S_{ii} \mathbf{x}_i W_0 + \sum_{j \neq i} S_{ij} \mathbf{x}_j W_1 + \mathbf{b}

    Parameters (published names): ``W [2, Cin, Cout]``, ``e [1, nnz]`` (nonzeros of ``adj``
    enumerated row-major), ``bias [Cout]``.

    Shapes: ``x [B, N, Cin]`` → ``[B, N, Cout]``.
    """

    def __init__(self, in_channels: int, out_channels: int, adj: Tensor, bias: bool = True):
        super().__init__()
        adj = torch.as_tensor(adj, dtype=torch.float32)
        if adj.dim() != 2 or adj.size(0) != adj.size(1):
            raise ValueError(f"adjacency must be square [N, N], got {tuple(adj.shape)}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.register_buffer("mask", adj > 0, persistent=False)
        self.register_buffer("eye", torch.eye(adj.size(0)), persistent=False)
        self.W = nn.Parameter(torch.empty(2, in_channels, out_channels))
        self.e = nn.Parameter(torch.empty(1, int(self.mask.sum())))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    @property
    def num_nodes(self) -> int:
        return self.mask.size(0)

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.W, gain=1.414)
        nn.init.constant_(self.e, 1.0)
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.out_channels)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        h0 = torch.matmul(x, self.W[0])
        h1 = torch.matmul(x, self.W[1])
        logits = torch.full(self.mask.shape, NEG_LOGIT, dtype=x.dtype, device=x.device)
        logits = logits.masked_scatter(self.mask, self.e.to(x.dtype).reshape(-1))
        att = F.softmax(logits, dim=1)
        out = torch.matmul(att * self.eye, h0) + torch.matmul(att * (1 - self.eye), h1)
        if self.bias is not None:
            out = out + self.bias
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"nodes={self.num_nodes}, edges={self.e.size(1)})")


class _DenseGraphConv(nn.Module):
    """Graph conv block (docs/published_model.md §2.2): SemGraphConv → BatchNorm1d over channels → ReLU."""

    def __init__(self, adj: Tensor, in_channels: int, out_channels: int,
                 dropout: Optional[float] = None):
        super().__init__()
        self.gconv = DenseSemGraphConv(in_channels, out_channels, adj)
        self.bn = nn.BatchNorm1d(out_channels)
        self.dropout = nn.Dropout(dropout) if dropout is not None else None

    def reset_parameters(self) -> None:
        self.gconv.reset_parameters()
        self.bn.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        x = self.gconv(x)
        x = self.bn(x.transpose(1, 2)).transpose(1, 2)
        if self.dropout is not None:
            x = self.dropout(F.relu(x))
        return F.relu(x)


class _DenseResGraphConv(nn.Module):
    """Residual block (docs/published_model.md §2.2): ``x + gconv2(gconv1(x))``."""

    def __init__(self, adj: Tensor, channels: int, hidden: int, dropout: Optional[float] = None):
        super().__init__()
        self.gconv1 = _DenseGraphConv(adj, channels, hidden, dropout)
        self.gconv2 = _DenseGraphConv(adj, hidden, channels, dropout)

    def reset_parameters(self) -> None:
        self.gconv1.reset_parameters()
        self.gconv2.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.gconv2(self.gconv1(x))


class DenseGraphNonLocal(nn.Module):
    r"""Graph non-local block with the explicit concatenation (docs/published_model.md §2.3, published form).

    .. math::
        f_{ij} = \mathrm{ReLU}(\mathbf{w}^\top[\theta(\mathbf{x}_i); \phi(\mathbf{x}_j)]) / N,\quad
        \mathbf{out} = \mathbf{x} + \mathrm{BN}(W (f\, g(\mathbf{x})))

    The ``[B, C, N, N]`` tensor ``[θ_i ; φ_j]`` is built explicitly, as the published code does.
    Parameter names: ``g, theta, phi`` (Conv1d ``[C/2, C, 1]`` + bias),
    ``concat_project.0.weight [1, C, 1, 1]``, ``W.0`` (Conv1d ``[C, C/2, 1]``), ``W.1`` (BatchNorm1d).

    Shapes: ``x [B, C, N]`` → ``[B, C, N]`` (channels first, like the published block).
    """

    def __init__(self, channels: int, inner_channels: Optional[int] = None):
        super().__init__()
        inner = inner_channels if inner_channels is not None else max(channels // 2, 1)
        self.channels = channels
        self.inner_channels = inner
        self.g = nn.Conv1d(channels, inner, 1)
        self.theta = nn.Conv1d(channels, inner, 1)
        self.phi = nn.Conv1d(channels, inner, 1)
        self.concat_project = nn.Sequential(nn.Conv2d(2 * inner, 1, 1, bias=False), nn.ReLU())
        self.W = nn.Sequential(nn.Conv1d(inner, channels, 1), nn.BatchNorm1d(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in (self.g, self.theta, self.phi, self.concat_project[0], self.W[0]):
            conv.reset_parameters()
        self.W[1].reset_parameters()
        nn.init.zeros_(self.W[0].bias)
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)

    def forward(self, x: Tensor) -> Tensor:
        batch, _, n = x.shape
        g_x = self.g(x).permute(0, 2, 1)                                  # [B, N, C/2]
        theta_x = self.theta(x).unsqueeze(3).expand(-1, -1, -1, n)        # [B, C/2, N, N]
        phi_x = self.phi(x).unsqueeze(2).expand(-1, -1, n, -1)            # [B, C/2, N, N]
        f = self.concat_project(torch.cat([theta_x, phi_x], dim=1))       # [B, 1, N, N]
        f = f.view(batch, n, n) / n
        y = torch.matmul(f, g_x).permute(0, 2, 1).contiguous()            # [B, C/2, N]
        return x + self.W(y)


class _DenseGraphNonLocalWrapper(nn.Module):
    """``[B, N, C]`` adapter around :class:`DenseGraphNonLocal` (published name ``nonlocal1``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.nonlocal1 = DenseGraphNonLocal(channels)

    def reset_parameters(self) -> None:
        self.nonlocal1.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        return self.nonlocal1(x.transpose(1, 2)).transpose(1, 2)


class _DenseTransfer(nn.Module):
    """Cross-scale transfer (docs/published_model.md §2.4): ``Conv1d(N_in, N_out, 1)`` with nodes as channels."""

    def __init__(self, in_nodes: int, out_nodes: int):
        super().__init__()
        self.conv = nn.Conv1d(in_nodes, out_nodes, 1)

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


#: (from, to, stage) of every published transfer map, in the published order.
_TRANSFERS: Tuple[Tuple[int, int, int], ...] = (
    (1, 2, 1),
    (2, 1, 2), (1, 2, 2),
    (2, 1, 3), (1, 2, 3), (1, 3, 3), (2, 3, 3),
    (2, 1, 4), (3, 1, 4), (1, 2, 4), (3, 2, 4), (1, 3, 4), (2, 3, 4),
    (2, 1, 5), (3, 1, 5), (1, 2, 5), (3, 2, 5), (1, 3, 5), (2, 3, 5),
)


class DenseHGN(nn.Module):
    r"""The published HGN network (docs/published_model.md §3), dense formulation, published parameter names.

    Args:
        adj_joints: adjacency of the 17-joint skeleton ``[17, 17]`` (bones and self loops).
        adj_mesh_b: adjacency of branch 2 (mesh level 8 in slot order; isolated rows allowed).
        adj_mesh_c: adjacency of branch 3 (mesh level 7 in slot order; isolated rows allowed).
            Only the nonzero pattern of each adjacency matters.
        hidden_channels: ``C`` (128 in the published model).
        in_channels / out_channels: 2 and 3.
        dropout: dropout probability of the conv blocks (``None`` in the published model).

    Shapes: ``x [B, 17, 2]`` → ``(joints [B, 17, 3], mesh_b [B, N_b, 3], mesh_c [B, N_c, 3])``.
    """

    def __init__(self, adj_joints: Tensor, adj_mesh_b: Tensor, adj_mesh_c: Tensor,
                 hidden_channels: int = 128, in_channels: int = 2, out_channels: int = 3,
                 dropout: Optional[float] = None):
        super().__init__()
        adjs = {1: adj_joints, 2: adj_mesh_b, 3: adj_mesh_c}
        self.num_nodes = {b: int(torch.as_tensor(a).size(0)) for b, a in adjs.items()}
        self.hidden_channels = hidden_channels
        c = hidden_channels
        self.gconv_input = nn.Sequential(_DenseGraphConv(adjs[1], in_channels, c, dropout))
        for branch, layers in ((1, (1, 2, 3, 4)), (2, (1, 2, 3, 4)), (3, (3, 4))):
            for k in layers:
                self.add_module(f"gconv_layers_{branch}_{k}", nn.Sequential(
                    _DenseResGraphConv(adjs[branch], c, c, dropout),
                    _DenseGraphNonLocalWrapper(c)))
        for src, dst, stage in _TRANSFERS:
            self.add_module(f"fc_{src}_{dst}_{stage}",
                            _DenseTransfer(self.num_nodes[src], self.num_nodes[dst]))
        self.gconv_output = DenseSemGraphConv(c, out_channels, adjs[1])
        self.gconv_output_48 = DenseSemGraphConv(c, out_channels, adjs[2])
        self.gconv_output_96 = DenseSemGraphConv(c, out_channels, adjs[3])

    @classmethod
    def from_graphs(cls, skeleton, hierarchy, mesh_levels: Sequence[int] = (8, 7), **kwargs
                    ) -> "DenseHGN":
        """Build from a skeleton ``Data`` (self loops are added) and a ``GraphHierarchy``."""
        adj_j = dense_adjacency(skeleton.edge_index, int(skeleton.num_nodes), add_self_loops=True)
        adj_b, adj_c = (dense_adjacency(hierarchy.levels[lv].edge_index,
                                        int(hierarchy.levels[lv].num_nodes))
                        for lv in mesh_levels)
        return cls(adj_j, adj_b, adj_c, **kwargs)

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.reset_parameters()
        for module in self.modules():  # after the BNs: the non-local zero-inits its W.1
            if isinstance(module, (DenseSemGraphConv, DenseGraphNonLocal, _DenseTransfer)):
                module.reset_parameters()

    def _t(self, src: int, dst: int, stage: int, x: Tensor) -> Tensor:
        return getattr(self, f"fc_{src}_{dst}_{stage}")(x)

    def _layer(self, branch: int, k: int, x: Tensor) -> Tensor:
        return getattr(self, f"gconv_layers_{branch}_{k}")(x)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        t, layer = self._t, self._layer
        a = self.gconv_input(x)
        b = t(1, 2, 1, a)
        # layer 1
        a = layer(1, 1, a)
        b = layer(2, 1, b)
        a = a + t(2, 1, 2, b)
        b = b + t(1, 2, 2, a)
        # layer 2
        a = layer(1, 2, a)
        b = layer(2, 2, b)
        a = a + t(2, 1, 3, b)
        b = b + t(1, 2, 3, a)
        c = t(1, 3, 3, a) + t(2, 3, 3, b)
        # layer 3
        a = layer(1, 3, a)
        b = layer(2, 3, b)
        c = layer(3, 3, c)
        a = a + t(2, 1, 4, b) + t(3, 1, 4, c)
        b = b + t(1, 2, 4, a) + t(3, 2, 4, c)
        c = c + t(1, 3, 4, a) + t(2, 3, 4, b)
        # layer 4
        a = layer(1, 4, a)
        b = layer(2, 4, b)
        c = layer(3, 4, c)
        a = a + t(2, 1, 5, b) + t(3, 1, 5, c)
        b = b + t(1, 2, 5, a) + t(3, 2, 5, c)
        c = c + t(1, 3, 5, a) + t(2, 3, 5, b)
        return self.gconv_output(a), self.gconv_output_48(b), self.gconv_output_96(c)

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return (f"{self.__class__.__name__}(nodes=({self.num_nodes[1]}, {self.num_nodes[2]}, "
                f"{self.num_nodes[3]}), hidden={self.hidden_channels}, parameters={n})")
