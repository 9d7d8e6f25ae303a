"""The ``typed_batches`` benchmark of :mod:`benchmarks.sparse_vs_dense`: SemGraphConv's typed-edge path on a
PyG batch of graphs beside its shared-topology path and GATConv(heads=2, concat=False), and the
check of its targets (typed <= GATConv, typed <= 1.5x shared)."""
from __future__ import annotations

import math
from typing import Callable, Sequence, Tuple

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GATConv

from benchmarks import _common as common
from benchmarks.graph_kernels import Case, GraphSpec, Row, layer_callable
from hgn_pyg.nn import SemGraphConv

TYPED_MODES = ("shared", "typed", "typed_scatter", "gatconv", "typed_mixed", "gatconv_mixed")
TYPED_GRAPHS = ("skeleton", "level8", "level7")
TYPED_BATCH = 64


class TypedBatchCase(Case):
    """SemGraphConv's typed-edge path on a PyG batch of ``batch`` graphs beside its
    shared-topology path and GATConv(heads=2, concat=False) (see the module docstring)."""

    benchmark = "typed_batches"
    checked_modes = ("shared", "typed", "typed_scatter")  # must agree with each other

    def __init__(self, graph: GraphSpec, batch: int, channels: int, pass_: str,
                 device: torch.device, seed: int = 0):
        super().__init__(graph, batch, channels, pass_, device, seed)
        gen = self.gen
        N, C, E = graph.num_nodes, channels, graph.num_edges
        types = torch.arange(E)
        self.template = SemGraphConv(C, C, graph.edge_index, N, isolated="uniform")
        with torch.no_grad():
            self.template.edge_logits.copy_(torch.randn(E, generator=gen))
        self.x = torch.randn(batch, N, C, generator=gen).to(device)
        self.grad_out = torch.randn(batch, N, C, generator=gen).to(device)
        copies = Batch.from_data_list([Data(edge_index=graph.edge_index, edge_type=types,
                                            num_nodes=N) for _ in range(batch)])
        mixed = []
        for _ in range(batch):  # drop 0-3 random nodes; edges keep their template type
            keep = torch.ones(N, dtype=torch.bool)
            keep[torch.randperm(N, generator=gen)[:int(torch.randint(4, (1,), generator=gen))]] = False
            new_id = keep.long().cumsum(0) - 1
            cols = keep[graph.edge_index].all(0).nonzero().view(-1)
            mixed.append(Data(edge_index=new_id[graph.edge_index[:, cols]], edge_type=cols,
                              num_nodes=int(keep.sum())))
        mixed = Batch.from_data_list(mixed)
        self.inputs = {
            "copies": (self.x.reshape(-1, C), copies.edge_index.to(device),
                       copies.edge_type.to(device), copies.batch.to(device)),
            "mixed": (torch.randn(mixed.num_nodes, C, generator=gen).to(device),
                      mixed.edge_index.to(device), mixed.edge_type.to(device),
                      mixed.batch.to(device)),
        }
        self.mixed_grad_out = torch.randn(mixed.num_nodes, C, generator=gen).to(device)

    def _layer(self, mode: str) -> torch.nn.Module:
        from hgn_pyg.nn import SemGraphConv

        C = self.channels
        if mode.startswith("gatconv"):
            torch.manual_seed(0)
            return GATConv(C, C, heads=2, concat=False).to(self.device)
        if mode == "shared":
            return self.template.to(self.device)
        layer = SemGraphConv(C, C, num_edge_types=self.graph.num_edges, isolated="uniform",
                             mode="scatter" if mode == "typed_scatter" else "auto")
        layer.load_state_dict(self.template.state_dict())
        return layer.to(self.device)

    def callable(self, mode: str) -> Callable[[], Tuple[Tensor, ...]]:
        layer = self._layer(mode)
        which = "mixed" if mode.endswith("_mixed") else "copies"
        x, ei, et, batch = self.inputs[which]
        gout = self.mixed_grad_out if which == "mixed" else self.grad_out.reshape(x.shape)
        if mode == "shared":
            x, gout = self.x, self.grad_out
            run = lambda xx: layer(xx)  # noqa: E731
        elif mode.startswith("gatconv"):
            run = lambda xx: layer(xx, ei)  # noqa: E731
        else:
            run = lambda xx: layer(xx, ei, et, batch)  # noqa: E731
        return layer_callable(self.pass_, layer, run, x, gout,
                               post=lambda t: t.reshape(-1, t.size(-1)))  # [B*N, C]


def typed_check(rows: Sequence[Row]) -> str:
    """The typed-path targets: typed no slower than GATConv(heads=2, concat=False) and within
    1.5x of the shared-topology path, per graph and pass."""
    cell = {(r.graph, r.pass_, r.mode): r.median_ms for r in rows if r.benchmark == "typed_batches"}
    keys = list(dict.fromkeys((r.graph, r.num_nodes, r.pass_) for r in rows
                              if r.benchmark == "typed_batches"))
    if not keys:
        return ""
    body = []
    for graph, n, pass_ in keys:
        t, gat, shared = (cell.get((graph, pass_, m), math.nan) for m in ("typed", "gatconv", "shared"))
        tm, gm = cell.get((graph, pass_, "typed_mixed"), math.nan), cell.get(
            (graph, pass_, "gatconv_mixed"), math.nan)
        body.append([pass_, f"{graph} ({n})", f"{t / gat:.2f}", "yes" if t <= gat else "NO",
                     f"{t / shared:.2f}", "yes" if t <= 1.5 * shared else "NO", f"{tm / gm:.2f}"])
    batch = next(r.batch for r in rows if r.benchmark == "typed_batches")
    return (f"### typed edges on a PyG batch of {batch} graphs (targets: typed <= GATConv, "
            "typed <= 1.5x shared)\n\n" + common.markdown_table(
                ["pass", "graph (N)", "typed / GATConv", "ok", "typed / shared", "ok",
                 "mixed: typed / GATConv"], body))
