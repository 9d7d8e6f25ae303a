"""Graph convolution block and residual block (docs/published_model.md §2.2)."""
from __future__ import annotations

from typing import Optional

from torch import Tensor
from torch.nn import BatchNorm1d, Dropout, Module

from .sem_graph_conv import SemGraphConv


def _batch_norm_relu(bn: BatchNorm1d, x: Tensor) -> Tensor:
    """``ReLU(BatchNorm1d(x))`` over channels for ``[N, C]`` (nodes are samples) or
    ``[B, N, C]``; the ReLU runs in place on BatchNorm's fresh output (whose backward does not
    read it), one tensor fewer per block."""
    if x.dim() == 2:
        return bn(x).relu_()
    # same statistics as bn(x.transpose(1, 2)) (per channel over B and N), without the slow
    # strided BatchNorm of a transposed tensor; a node-major x (SemGraphConv's output) stays so
    if not x.is_contiguous() and x.transpose(0, 1).is_contiguous():
        xt = x.transpose(0, 1)
        return bn(xt.reshape(-1, x.size(-1))).relu_().view(xt.shape).transpose(0, 1)
    return bn(x.reshape(-1, x.size(-1))).relu_().view(x.shape)


class GraphConvBlock(Module):
    r"""``SemGraphConv -> BatchNorm1d (over channels) -> ReLU`` (§2.2).

    .. math::
        x' = \mathrm{ReLU}\big(\mathrm{BN}(\mathrm{SemGraphConv}(x))\big)

    With ``dropout=p`` the tail is ``ReLU -> Dropout(p) -> ReLU`` (the published order).

    Args:
        in_channels (int), out_channels (int): feature sizes.
        edge_index (LongTensor, optional): ``[2, E]`` template; num_nodes (int, optional): ``N``.
        dropout (float, optional): dropout probability (default: none).
        **conv_kwargs: passed to :class:`SemGraphConv` (``num_edge_types`` for a typed layer,
            ``isolated``, ``mode``, ``bias``).

    Submodules ``gconv`` and ``bn`` carry the published names (``_GraphConv.gconv/bn``).

    Shapes:
        - **input:** ``x [B, N, Cin]`` or ``[N, Cin]``, optional ``edge_index``, ``edge_type``,
          ``batch`` as for :class:`SemGraphConv` (BatchNorm pools over all nodes of a batch).
        - **output:** ``[B, N, Cout]`` or ``[N, Cout]``.
    """

    def __init__(self, in_channels: int, out_channels: int, edge_index: Optional[Tensor] = None,
                 num_nodes: Optional[int] = None, dropout: Optional[float] = None,
                 **conv_kwargs) -> None:
        super().__init__()
        self.gconv = SemGraphConv(in_channels, out_channels, edge_index, num_nodes, **conv_kwargs)
        self.bn = BatchNorm1d(out_channels)
        self.dropout = Dropout(dropout) if dropout else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.gconv.reset_parameters()
        self.bn.reset_parameters()

    def forward(self, x: Tensor, edge_index=None, edge_type: Optional[Tensor] = None,
                batch: Optional[Tensor] = None) -> Tensor:
        x = _batch_norm_relu(self.bn, self.gconv(x, edge_index, edge_type, batch))
        if self.dropout is not None:  # published: ReLU -> Dropout -> ReLU; the second ReLU is
            x = self.dropout(x)         # the identity on Dropout's non-negative output (values
        return x                        # and gradients), so it is not computed

    def __repr__(self) -> str:
        g = self.gconv
        drop = f", dropout={self.dropout.p}" if self.dropout is not None else ""
        return (f"{self.__class__.__name__}({g.in_channels}, {g.out_channels}, "
                f"{_graph(g)}{drop})")


class ResidualGraphConvBlock(Module):
    r"""Two :class:`GraphConvBlock` with a skip connection (§2.2):

    .. math::
        x' = x + \mathrm{block}_2(\mathrm{block}_1(x))

    Args:
        channels (int): ``C`` (input and output); hidden (int): width between the blocks
            (HGN: ``C``); edge_index, num_nodes, dropout, **conv_kwargs: as in GraphConvBlock.

    Submodules ``gconv1`` (C -> hidden) and ``gconv2`` (hidden -> C), the published names.

    Shapes: ``[B, N, C]`` or ``[N, C]`` (+ ``edge_index``, ``edge_type``, ``batch``) -> same.
    """

    def __init__(self, channels: int, hidden: int, edge_index: Optional[Tensor] = None,
                 num_nodes: Optional[int] = None, dropout: Optional[float] = None,
                 **conv_kwargs) -> None:
        super().__init__()
        self.gconv1 = GraphConvBlock(channels, hidden, edge_index, num_nodes, dropout, **conv_kwargs)
        self.gconv2 = GraphConvBlock(hidden, channels, edge_index, num_nodes, dropout, **conv_kwargs)

    def reset_parameters(self) -> None:
        self.gconv1.reset_parameters()
        self.gconv2.reset_parameters()

    def forward(self, x: Tensor, edge_index=None, edge_type: Optional[Tensor] = None,
                batch: Optional[Tensor] = None) -> Tensor:
        args = (edge_index, edge_type, batch)
        return x + self.gconv2(self.gconv1(x, *args), *args)

    def __repr__(self) -> str:
        g = self.gconv1.gconv
        return (f"{self.__class__.__name__}({g.in_channels}, hidden={g.out_channels}, "
                f"{_graph(g)})")


def _graph(conv: SemGraphConv) -> str:
    return (f"edge_types={conv.num_edge_types}" if conv.num_nodes is None
            else f"nodes={conv.num_nodes}")
