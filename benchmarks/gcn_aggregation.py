"""The ``gcn_aggregation`` benchmark of :mod:`benchmarks.sparse_vs_dense`, for reference: the plain GCN
aggregation ``A_hat @ X`` (PyG's ``gcn_norm``) dense, torch.sparse, torch_sparse and with PyG's
scatter message passing (no ``auto``: it is not an hgn_pyg layer)."""
from __future__ import annotations

import warnings
from typing import Callable, Tuple

import torch
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from benchmarks.graph_kernels import Case, GraphSpec

GCN_MODES = ("dense", "torch.sparse", "torch_sparse", "scatter")


class GCNAggregationCase(Case):
    """One (graph, batch, pass) of the ``gcn_aggregation`` benchmark: ``A_hat @ X`` with PyG's
    ``gcn_norm`` weights in every kernel on shared inputs."""

    benchmark = "gcn_aggregation"

    def __init__(self, graph: GraphSpec, batch: int, channels: int, pass_: str, device: torch.device,
                 seed: int = 0):
        super().__init__(graph, batch, channels, pass_, device, seed)
        N = graph.num_nodes
        self.x = self.random(N, batch * channels)
        self.grad_out = self.random(N, batch * channels)
        ei, w = gcn_norm(graph.edge_index, None, N, add_self_loops=True)
        self.gcn_edge_index, self.gcn_weight = ei.to(device), w.to(device)

    def callable(self, mode: str) -> Callable[[], Tuple[Tensor, ...]]:
        N = self.graph.num_nodes
        ei, w = self.gcn_edge_index, self.gcn_weight
        if mode == "dense":
            A = torch.zeros(N, N, device=self.device)
            A.index_put_((ei[1], ei[0]), w, accumulate=True)
            op = lambda h: A @ h  # noqa: E731
        elif mode == "torch.sparse":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # CSR "beta" warning
                A = torch.sparse_coo_tensor(torch.stack([ei[1], ei[0]]), w, (N, N)) \
                    .coalesce().to_sparse_csr()
            op = lambda h: torch.sparse.mm(A, h)  # noqa: E731
        elif mode == "torch_sparse":
            import torch_sparse  # optional: only when installed (available_modes)

            A = torch_sparse.SparseTensor(row=ei[1], col=ei[0], value=w, sparse_sizes=(N, N))
            op = lambda h: torch_sparse.matmul(A, h, reduce="sum")  # noqa: E731
        elif mode == "scatter":
            agg = _ScatterAggregation().to(self.device)
            op = lambda h: agg(h, ei, w)  # noqa: E731
        else:
            raise ValueError(f"gcn_aggregation has no mode {mode!r}")
        x, gout = self.x, self.grad_out
        if self.pass_ == "fwd":
            def fwd():
                with torch.no_grad():
                    return (op(x),)
            return fwd
        xg = x.clone().requires_grad_(True)

        def fwd_bwd():
            out = op(xg)
            (gx,) = torch.autograd.grad(out, [xg], gout)
            return out.detach(), gx
        return fwd_bwd


class _ScatterAggregation(MessagePassing):
    """``out_i = sum_j w_ij x_j`` with PyG's gather / scatter-add message passing."""

    def __init__(self):
        super().__init__(aggr="add", node_dim=0)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor) -> Tensor:
        return self.propagate(edge_index, x=x, edge_weight=edge_weight)

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.unsqueeze(-1) * x_j
