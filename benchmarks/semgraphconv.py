"""The ``semgraphconv`` benchmark of :mod:`benchmarks.sparse_vs_dense`: :class:`hgn_pyg.nn.SemGraphConv`
(128 -> 128) in every kernel (``dense``, ``torch.sparse``, ``torch_sparse``, ``scatter``, ``auto``),
and the check that ``auto`` runs within :data:`AUTO_TOLERANCE` of the best kernel."""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import Tensor

from benchmarks import _common as common
from benchmarks.graph_kernels import Case, GraphSpec, Row, layer_callable
from hgn_pyg.nn import SemGraphConv, choose_mode

SGC_MODES = ("dense", "torch.sparse", "torch_sparse", "scatter", "auto")
AUTO_TOLERANCE = 1.1


class SemGraphConvCase(Case):
    """One (graph, batch, pass) of the ``semgraphconv`` benchmark: :class:`hgn_pyg.nn.SemGraphConv`
    in every kernel on shared inputs."""

    benchmark = "semgraphconv"

    def __init__(self, graph: GraphSpec, batch: int, channels: int, pass_: str, device: torch.device,
                 seed: int = 0):
        super().__init__(graph, batch, channels, pass_, device, seed)
        self.x = self.random(batch, graph.num_nodes, channels)
        self.grad_out = self.random(batch, graph.num_nodes, channels)
        self._state = None

    def _sgc_layer(self, mode: str):
        layer_mode = {"torch.sparse": "sparse", "torch_sparse": "sparse"}.get(mode, mode)
        backend = {"torch.sparse": "torch", "torch_sparse": "torch_sparse"}.get(mode, "auto")
        layer = SemGraphConv(self.channels, self.channels, self.graph.edge_index,
                             self.graph.num_nodes, isolated="uniform", mode=layer_mode,
                             sparse_backend=backend)
        if self._state is None:  # random logits so that the soft-max is not uniform
            with torch.no_grad():
                layer.edge_logits.copy_(torch.randn(layer.edge_logits.shape, generator=self.gen))
            self._state = {k: v.clone() for k, v in layer.state_dict().items()}
        layer.load_state_dict(self._state)
        return layer.to(self.device)

    def auto_choice(self) -> str:
        choice = choose_mode(self.graph.num_nodes, self.batch, self.device.type)
        if choice == "sparse":  # sparse_backend="auto": torch.sparse on CPU, torch_sparse elsewhere
            choice = ("torch_sparse" if common.has_torch_sparse() and self.device.type != "cpu"
                      else "torch.sparse")
        return choice

    def callable(self, mode: str) -> Callable[[], Tuple[Tensor, ...]]:
        layer = self._sgc_layer(mode)
        return layer_callable(self.pass_, layer, layer, self.x, self.grad_out)


def auto_check(rows: Sequence[Row]) -> List[Tuple[Row, float, str]]:
    """For every semgraphconv configuration: (auto row, auto / best other mode, best mode)."""
    out = []
    groups: Dict[Tuple[str, int, str], Dict[str, Row]] = {}
    for r in rows:
        if r.benchmark == "semgraphconv":
            groups.setdefault((r.graph, r.batch, r.pass_), {})[r.mode] = r
    for key, by_mode in groups.items():
        auto = by_mode.get("auto")
        others = {m: r for m, r in by_mode.items() if m != "auto" and not math.isnan(r.median_ms)}
        if auto is None or math.isnan(auto.median_ms) or not others:
            continue
        best = min(others, key=lambda m: others[m].median_ms)
        out.append((auto, auto.median_ms / others[best].median_ms, best))
    return out
