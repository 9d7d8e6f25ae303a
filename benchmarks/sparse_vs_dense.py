#!/usr/bin/env python
"""Sparse vs dense graph convolution on the skeleton and on body-mesh graphs.

Two layers are timed on six graphs (the 17-joint skeleton and levels 8, 7, 4, 2, 0 of the
embedded open body's coarsening hierarchy), batch 1 and 64, 128 channels, forward (inference,
``torch.no_grad``) and forward+backward (gradients of the input and of every parameter):

* ``semgraphconv``: :class:`hgn_pyg.nn.SemGraphConv` (128 -> 128) in every kernel:
  ``dense`` (N x N masked soft-max attention, one GEMM), ``torch.sparse`` (CSR spmm over
  ``[N, B*C]``), ``torch_sparse`` (``SparseTensor`` spmm, when installed), ``scatter`` (PyG
  ``propagate``: gather + scatter-add per edge) and ``auto`` (the layer's own choice).
* ``typed_batches``: a PyG ``Batch`` of 64 graphs (the skeleton, or the level-8 / level-7 coarse
  meshes) through ``SemGraphConv``'s typed-edge path (``forward(x, edge_index, edge_type,
  batch)``, kernel ``auto`` = torch.sparse CSR, and ``scatter``) beside its shared-topology path
  on the same 64 graphs (``x [64, N, C]``, built from the template: ``shared``) and PyG's
  ``GATConv(C, C, heads=2, concat=False)`` (also a per-edge soft-max, with one ``[C, 2C]``
  projection like SemGraphConv's ``W_0 | W_1``) on the same batch. ``typed`` and ``shared`` must
  agree (output and every gradient, relative 1e-4); ``mixed`` rows use a batch of different graphs
  (each of the 64 graphs loses 0-3 random nodes; edges keep their template type).
* ``gcn_aggregation``: for reference, the plain GCN aggregation ``A_hat @ X`` with
  ``A_hat = D^-1/2 (A + I) D^-1/2`` (PyG's ``gcn_norm``) and ``X [N, B*128]``: dense, torch.sparse,
  torch_sparse, PyG scatter message passing (no ``auto``: it is not an hgn_pyg layer).

Before any timing, all kernels of one configuration are run once and compared with the dense
kernel (or, where dense is skipped, the first kernel run): output and every gradient within
relative 1e-4 (``max|a - ref| / max|ref|``), else the script stops with an error. The first
run also measures peak memory (see ``benchmarks/_common.py``); then the kernels are warmed up and
timed in alternating rounds (medians). A first call that already took longer than the
"slow" threshold is used as the single measurement (``repeats`` = 1 in the full table).
``--quick`` uses fewer rounds and skips the dense and scatter forward+backward at >= 6,000 nodes
with batch 64 (every size is still covered).

Outputs (``--out``, default ``benchmarks/out``): ``sparse_vs_dense.csv`` (columns
``benchmark,mode,num_nodes,batch,pass,median_ms,speedup_vs_dense,peak_mem_mb``),
``sparse_vs_dense.md`` (every row), ``sparse_vs_dense.png`` (time against N, log-log).

Usage::

    python benchmarks/sparse_vs_dense.py [--quick] [--device cpu|cuda] [--out DIR] [--threads N]
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import Tensor  # noqa: E402
from torch_geometric.nn import MessagePassing  # noqa: E402

try:  # as a script (benchmarks/ on sys.path) or as a module of the benchmarks package
    import _common as common  # noqa: E402
except ImportError:  # pragma: no cover
    from benchmarks import _common as common  # noqa: E402

BENCHMARKS = ("semgraphconv", "typed_batches", "gcn_aggregation")
TYPED_MODES = ("shared", "typed", "typed_scatter", "gatconv", "typed_mixed", "gatconv_mixed")
TYPED_GRAPHS = ("skeleton", "level8", "level7")
TYPED_BATCH = 64
SGC_MODES = ("dense", "torch.sparse", "torch_sparse", "scatter", "auto")
GCN_MODES = ("dense", "torch.sparse", "torch_sparse", "scatter")
PASSES = ("fwd", "fwd+bwd")
GRAPH_NAMES = ("skeleton", "level8", "level7", "level4", "level2", "level0")
RTOL = 1e-4
AUTO_TOLERANCE = 1.1


@dataclass
class GraphSpec:
    name: str
    description: str
    num_nodes: int
    edge_index: Tensor  # [2, E] (source, target)

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.size(1))


@dataclass
class Settings:
    warmup: int
    min_rounds: int
    max_rounds: int
    budget_s: float
    slow_ms: float
    round_ms: float
    skip_dense_bwd_nodes: Optional[int]  # skip dense/scatter fwd+bwd at batch >= 64 from here
    heavy_ms: float  # a configuration whose slowest timed kernel takes this long on its first
    heavy_warmup: int  # run gets only heavy_warmup warm-up calls and heavy_rounds rounds
    heavy_rounds: int


QUICK = Settings(warmup=1, min_rounds=3, max_rounds=40, budget_s=0.12, slow_ms=1500.0,
                 round_ms=5.0, skip_dense_bwd_nodes=6000, heavy_ms=250.0, heavy_warmup=0,
                 heavy_rounds=1)
FULL = Settings(warmup=3, min_rounds=7, max_rounds=400, budget_s=1.0, slow_ms=20000.0,
                round_ms=20.0, skip_dense_bwd_nodes=None, heavy_ms=500.0, heavy_warmup=1,
                heavy_rounds=3)


# ----------------------------------------------------------------------------- graphs
def build_graphs(names: Sequence[str] = GRAPH_NAMES) -> List[GraphSpec]:
    """The benchmark graphs: skeleton (bones + self loops, as HGN uses it), levels 8 and 7 in slot
    order exactly as the HGN mesh branches use them (fake slots isolated), and levels 4, 2, 0 as
    the real-vertex graphs in original order (level 0 = the 6,890-vertex mesh)."""
    from torch_geometric.utils import add_self_loops, remove_self_loops

    unknown = [n for n in names if n not in GRAPH_NAMES]
    if unknown:
        raise ValueError(f"unknown graph(s) {unknown}; choose from {GRAPH_NAMES}")
    skeleton, hierarchy = common.embedded_body_graphs()
    out: List[GraphSpec] = []
    for name in names:
        if name == "skeleton":
            ei, _ = remove_self_loops(skeleton.edge_index)
            ei, _ = add_self_loops(ei, num_nodes=int(skeleton.num_nodes))
            out.append(GraphSpec(name, "H36M skeleton, bones + self loops", int(skeleton.num_nodes), ei))
            continue
        level = int(name[len("level"):])
        if level >= 7:
            data = hierarchy.levels[level]
            out.append(GraphSpec(
                name, f"body level {level}, {hierarchy.num_real[level]} real / "
                f"{hierarchy.num_slots[level]} slots (HGN branch graph)",
                int(data.num_nodes), data.edge_index.clone()))
        else:
            coo = hierarchy.adjacencies[level].tocoo()
            ei = torch.stack([torch.from_numpy(coo.col), torch.from_numpy(coo.row)]).long()
            out.append(GraphSpec(
                name, f"body level {level}, real vertices" + (" (the mesh)" if level == 0 else ""),
                int(hierarchy.num_real[level]), ei))
    return out


# ----------------------------------------------------------------------------- kernels
def available_modes(benchmark: str) -> Tuple[List[str], List[str]]:
    """(modes to run, notes about skipped modes)."""
    if benchmark == "typed_batches":
        return list(TYPED_MODES), []
    modes = list(SGC_MODES if benchmark == "semgraphconv" else GCN_MODES)
    notes = []
    if not common.has_torch_sparse():
        modes.remove("torch_sparse")
        notes.append(f"{benchmark}: torch_sparse not installed, its SparseTensor kernel is skipped")
    return modes, notes


class _Case:
    """One (benchmark, graph, batch, pass): builds every mode's callable on shared inputs."""

    def __init__(self, benchmark: str, graph: GraphSpec, batch: int, channels: int,
                 pass_: str, device: torch.device, seed: int = 0):
        self.benchmark, self.graph, self.batch, self.pass_ = benchmark, graph, batch, pass_
        self.channels, self.device = channels, device
        gen = torch.Generator().manual_seed(seed)
        N, C = graph.num_nodes, channels
        if benchmark == "semgraphconv":
            self.x = torch.randn(batch, N, C, generator=gen).to(device)
            self.grad_out = torch.randn(batch, N, C, generator=gen).to(device)
            self._state = None
            self._gen = gen
        else:
            from torch_geometric.nn.conv.gcn_conv import gcn_norm

            self.x = torch.randn(N, batch * C, generator=gen).to(device)
            self.grad_out = torch.randn(N, batch * C, generator=gen).to(device)
            ei, w = gcn_norm(graph.edge_index, None, N, add_self_loops=True)
            self.gcn_edge_index, self.gcn_weight = ei.to(device), w.to(device)

    # -- SemGraphConv
    def _sgc_layer(self, mode: str):
        from hgn_pyg.nn import SemGraphConv

        layer_mode = {"torch.sparse": "sparse", "torch_sparse": "sparse"}.get(mode, mode)
        backend = {"torch.sparse": "torch", "torch_sparse": "torch_sparse"}.get(mode, "auto")
        layer = SemGraphConv(self.channels, self.channels, self.graph.edge_index,
                             self.graph.num_nodes, isolated="uniform", mode=layer_mode,
                             sparse_backend=backend)
        if self._state is None:  # random logits so that the soft-max is not uniform
            with torch.no_grad():
                layer.edge_logits.copy_(torch.randn(layer.edge_logits.shape, generator=self._gen))
            self._state = {k: v.clone() for k, v in layer.state_dict().items()}
        layer.load_state_dict(self._state)
        return layer.to(self.device)

    def auto_choice(self) -> str:
        from hgn_pyg.nn import choose_mode

        if self.benchmark != "semgraphconv":
            return ""
        choice = choose_mode(self.graph.num_nodes, self.batch, self.device.type)
        if choice == "sparse":  # sparse_backend="auto": torch.sparse on CPU, torch_sparse elsewhere
            choice = ("torch_sparse" if common.has_torch_sparse() and self.device.type != "cpu"
                      else "torch.sparse")
        return choice

    def callable(self, mode: str) -> Callable[[], Tuple[Tensor, ...]]:
        if self.benchmark == "semgraphconv":
            return self._sgc_callable(mode)
        return self._gcn_callable(mode)

    def _sgc_callable(self, mode: str) -> Callable[[], Tuple[Tensor, ...]]:
        layer = self._sgc_layer(mode)
        return _layer_callable(self.pass_, layer, layer, self.x, self.grad_out)

    def _gcn_callable(self, mode: str) -> Callable[[], Tuple[Tensor, ...]]:
        N = self.graph.num_nodes
        ei, w = self.gcn_edge_index, self.gcn_weight
        if mode == "dense":
            A = torch.zeros(N, N, device=self.device)
            A.index_put_((ei[1], ei[0]), w, accumulate=True)
            op = lambda h: A @ h  # noqa: E731
        elif mode == "torch.sparse":
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # CSR "beta" warning
                A = torch.sparse_coo_tensor(torch.stack([ei[1], ei[0]]), w, (N, N)) \
                    .coalesce().to_sparse_csr()
            op = lambda h: torch.sparse.mm(A, h)  # noqa: E731
        elif mode == "torch_sparse":
            import torch_sparse

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


class _TypedCase:
    """SemGraphConv's typed-edge path on a PyG batch of ``batch`` graphs beside its
    shared-topology path and GATConv(heads=2, concat=False) (see the module docstring)."""

    checked_modes = ("shared", "typed", "typed_scatter")  # must agree with each other

    def __init__(self, graph: GraphSpec, batch: int, channels: int, pass_: str,
                 device: torch.device, seed: int = 0):
        from torch_geometric.data import Batch, Data

        from hgn_pyg.nn import SemGraphConv

        self.benchmark, self.graph, self.batch, self.pass_ = "typed_batches", graph, batch, pass_
        self.channels, self.device = channels, device
        gen = torch.Generator().manual_seed(seed)
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

    def auto_choice(self) -> str:
        return ""

    def _layer(self, mode: str) -> torch.nn.Module:
        from torch_geometric.nn import GATConv

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
        return _layer_callable(self.pass_, layer, run, x, gout,
                               post=lambda t: t.reshape(-1, t.size(-1)))  # [B*N, C]


def _layer_callable(pass_: str, layer: torch.nn.Module, run: Callable[[Tensor], Tensor],
                    x: Tensor, gout: Tensor, post: Callable[[Tensor], Tensor] = lambda t: t
                    ) -> Callable[[], Tuple[Tensor, ...]]:
    """``fwd``: ``run(x)`` in eval mode without grad; ``fwd+bwd``: the output and the gradients of
    ``x`` and of every parameter of ``layer`` for ``grad_out``; tensors of node rows go through
    ``post`` (a common layout for the agreement check)."""
    params = list(layer.parameters())
    if pass_ == "fwd":
        layer.eval()

        def fwd():
            with torch.no_grad():
                return (post(run(x)),)
        return fwd
    xg = x.clone().requires_grad_(True)

    def fwd_bwd():
        out = run(xg)
        grads = torch.autograd.grad(out, [xg] + params, gout)
        return (post(out.detach()), post(grads[0])) + tuple(grads[1:])
    return fwd_bwd


class _ScatterAggregation(MessagePassing):
    """``out_i = sum_j w_ij x_j`` with PyG's gather / scatter-add message passing."""

    def __init__(self):
        super().__init__(aggr="add", node_dim=0)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor) -> Tensor:
        return self.propagate(edge_index, x=x, edge_weight=edge_weight)

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.unsqueeze(-1) * x_j


# ----------------------------------------------------------------------------- measuring
@dataclass
class Row:
    benchmark: str
    graph: str
    mode: str
    num_nodes: int
    num_edges: int
    batch: int
    pass_: str
    median_ms: float = math.nan
    speedup_vs_dense: float = math.nan
    peak_mem_mb: float = math.nan
    repeats: int = 0
    max_rel_err: float = math.nan
    note: str = ""

    def as_csv(self) -> Dict[str, object]:
        return {"benchmark": self.benchmark, "mode": self.mode, "num_nodes": self.num_nodes,
                "batch": self.batch, "pass": self.pass_, "median_ms": self.median_ms,
                "speedup_vs_dense": self.speedup_vs_dense, "peak_mem_mb": self.peak_mem_mb}


def skip_reason(mode: str, graph: GraphSpec, batch: int, pass_: str,
                settings: Settings) -> str:
    if (mode in ("dense", "scatter") and pass_ == "fwd+bwd"
            and settings.skip_dense_bwd_nodes is not None
            and graph.num_nodes >= settings.skip_dense_bwd_nodes and batch >= 64):
        return f"skipped in --quick ({mode} fwd+bwd at this size takes tens of seconds)"
    return ""


def measure_case(case: _Case, modes: Sequence[str], settings: Settings,
                 log: Callable[[str], None]) -> List[Row]:
    """Agreement check (first run of every mode, with peak memory), then interleaved timing."""
    g = case.graph
    rows = {m: Row(case.benchmark, g.name, m, g.num_nodes, g.num_edges, case.batch, case.pass_)
            for m in modes}
    run_modes = []
    for m in modes:
        reason = skip_reason(m, g, case.batch, case.pass_, settings)
        if reason:
            rows[m].note = reason
        else:
            run_modes.append(m)
    fns: Dict[str, Callable[[], Tuple[Tensor, ...]]] = {}
    first_ms: Dict[str, float] = {}
    reference: Optional[Tuple[Tensor, ...]] = None
    checked = getattr(case, "checked_modes", run_modes)
    ref_mode = [m for m in run_modes if m in checked][0]  # "dense" whenever it runs
    for m in run_modes:
        fn = case.callable(m)
        out, ms, peak = common.run_with_peak_memory(fn, case.device)
        fns[m], first_ms[m] = fn, ms
        rows[m].peak_mem_mb = peak
        if m not in checked:
            pass
        elif reference is None:
            reference = tuple(t.detach() for t in out)
            rows[m].max_rel_err = 0.0
        else:
            what = (f"{case.benchmark} on {g.name} (N={g.num_nodes}), batch {case.batch}, "
                    f"{case.pass_}")
            errs = common.check_agreement({ref_mode: reference, m: out}, ref_mode, RTOL, what)
            rows[m].max_rel_err = errs[m]
        del out
    del reference
    slow = {m for m in run_modes if first_ms[m] >= settings.slow_ms}
    for m in slow:
        rows[m].median_ms, rows[m].repeats = first_ms[m], 1
    timed = {m: fns[m] for m in run_modes if m not in slow}
    if timed:
        calls = {m: max(1, int(settings.round_ms / max(first_ms[m], 1e-3))) for m in timed}
        heavy = max(first_ms[m] for m in timed) >= settings.heavy_ms
        warmup = settings.heavy_warmup if heavy else settings.warmup
        min_rounds = settings.heavy_rounds if heavy else settings.min_rounds
        res = common.time_interleaved(timed, case.device, warmup=warmup, min_rounds=min_rounds,
                                      max_rounds=settings.max_rounds,
                                      budget_s=settings.budget_s * len(timed),
                                      calls_per_round=calls)
        for m, t in res.items():
            rows[m].median_ms, rows[m].repeats = t.median_ms, t.repeats
    dense = rows.get("dense")
    for r in rows.values():
        if dense is not None and not math.isnan(dense.median_ms) and not math.isnan(r.median_ms):
            r.speedup_vs_dense = dense.median_ms / r.median_ms
    if "auto" in rows:
        rows["auto"].note = f"auto -> {case.auto_choice()}"
    summary = ", ".join(f"{m} {common.fmt(rows[m].median_ms)} ms" for m in run_modes)
    log(f"  {case.benchmark:15s} {g.name:8s} N={g.num_nodes:5d} B={case.batch:3d} "
        f"{case.pass_:7s}: {summary}")
    return [rows[m] for m in modes]


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


# ----------------------------------------------------------------------------- reporting
def pivot_tables(rows: Sequence[Row], graphs: Sequence[GraphSpec]) -> str:
    order = {g.name: i for i, g in enumerate(graphs)}
    parts = []
    for bench in BENCHMARKS:
        brows = [r for r in rows if r.benchmark == bench]
        if not brows:
            continue
        modes = list(dict.fromkeys(r.mode for r in brows))
        keys = sorted({(r.graph, r.num_nodes, r.batch, r.pass_) for r in brows},
                      key=lambda k: (PASSES.index(k[3]), k[2], order[k[0]]))
        cell = {(r.graph, r.batch, r.pass_, r.mode): r for r in brows}
        time_rows, mem_rows = [], []
        for graph, n, batch, pass_ in keys:
            trow: List[object] = [pass_, batch, f"{graph} ({n})"]
            mrow: List[object] = [pass_, batch, f"{graph} ({n})"]
            for m in modes:
                r = cell.get((graph, batch, pass_, m))
                if r is None or math.isnan(r.median_ms):
                    trow.append("skipped" if r is not None and r.note.startswith("skipped") else "")
                    mrow.append("")
                    continue
                t = f"{common.fmt(r.median_ms)}"
                if m != "dense" and not math.isnan(r.speedup_vs_dense):
                    t += f" ({common.fmt(r.speedup_vs_dense)}x)"
                trow.append(t)
                mrow.append(common.fmt(r.peak_mem_mb))
            time_rows.append(trow)
            mem_rows.append(mrow)
        header = ["pass", "batch", "graph (N)"] + modes
        parts.append(f"### {bench}: median time, ms (speed-up over dense)\n\n"
                     + common.markdown_table(header, time_rows))
        parts.append(f"### {bench}: peak memory of one call, MiB\n\n"
                     + common.markdown_table(header, mem_rows))
    return "\n\n".join(parts)


def full_table(rows: Sequence[Row]) -> str:
    header = ["benchmark", "graph", "N", "E", "batch", "pass", "mode", "median ms", "repeats",
              "speed-up vs dense", "peak MiB", "max rel err", "note"]
    return common.markdown_table(header, (
        [r.benchmark, r.graph, r.num_nodes, r.num_edges, r.batch, r.pass_, r.mode, r.median_ms,
         r.repeats, r.speedup_vs_dense, r.peak_mem_mb,
         "" if math.isnan(r.max_rel_err) else f"{r.max_rel_err:.1e}", r.note] for r in rows))


def plot(rows: Sequence[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({r.batch for r in rows})
    combos = [(b, p) for b in batches for p in PASSES]
    fig, axes = plt.subplots(len(BENCHMARKS), len(combos), figsize=(4.2 * len(combos), 7.5),
                             squeeze=False)
    for i, bench in enumerate(BENCHMARKS):
        for j, (batch, pass_) in enumerate(combos):
            ax = axes[i][j]
            sel = [r for r in rows if r.benchmark == bench and r.batch == batch
                   and r.pass_ == pass_ and not math.isnan(r.median_ms)]
            for mode in dict.fromkeys(r.mode for r in sel):
                pts = sorted((r.num_nodes, r.median_ms) for r in sel if r.mode == mode)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                        linestyle="--" if mode == "auto" else "-", label=mode)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{bench}, batch {batch}, {pass_}", fontsize=9)
            ax.set_xlabel("nodes N")
            ax.set_ylabel("median time (ms)")
            ax.grid(True, which="both", alpha=0.3)
            if sel:
                ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- main
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats; skip dense and scatter fwd+bwd at >= 6,000 nodes with "
                   "batch >= 64")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--graphs", default=",".join(GRAPH_NAMES),
                   help=f"comma-separated subset of {','.join(GRAPH_NAMES)}")
    p.add_argument("--batches", default="1,64", help="comma-separated batch sizes")
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--typed-batch", type=int, default=TYPED_BATCH,
                   help="graphs per PyG batch in the typed_batches benchmark")
    p.add_argument("--benchmarks", default=",".join(BENCHMARKS),
                   help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    p.add_argument("--rounds", type=int, default=None,
                   help="exactly this many timing rounds per configuration (smoke tests)")
    p.add_argument("--no-plot", action="store_true")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> List[Row]:
    args = parse_args(argv)
    device = common.resolve_device(args.device)
    common.set_threads(args.threads)
    settings = QUICK if args.quick else FULL
    if args.rounds is not None:
        settings = dataclasses.replace(settings, warmup=min(settings.warmup, 1),
                                       heavy_warmup=min(settings.heavy_warmup, 1),
                                       min_rounds=args.rounds, max_rounds=args.rounds,
                                       heavy_rounds=args.rounds,
                                       budget_s=0.0, round_ms=0.0)
    graph_names = [s for s in args.graphs.split(",") if s]
    batches = [int(s) for s in args.batches.split(",") if s]
    benches = [s for s in args.benchmarks.split(",") if s]
    for b in benches:
        if b not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {b!r}; choose from {BENCHMARKS}")
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(msg, flush=True)

    graphs = build_graphs(graph_names)
    info = common.machine_info(device)
    log("# sparse_vs_dense" + (" (--quick)" if args.quick else ""))
    for k, v in info.items():
        log(f"- {k}: {v}")
    log(f"- channels: {args.channels}; batches: {batches}; agreement: relative {RTOL:g} "
        "(output and all gradients) against the dense kernel, checked before timing")
    log("- graphs: " + "; ".join(f"{g.name} = {g.description}: N={g.num_nodes}, E={g.num_edges}"
                                 for g in graphs))
    notes: List[str] = []
    rows: List[Row] = []
    for bench in benches:
        modes, mode_notes = available_modes(bench)
        notes.extend(mode_notes)
        for g in graphs:
            if bench == "typed_batches" and g.name not in TYPED_GRAPHS:
                continue
            for batch in ([args.typed_batch] if bench == "typed_batches" else batches):
                for pass_ in PASSES:
                    case = (_TypedCase(g, batch, args.channels, pass_, device)
                            if bench == "typed_batches"
                            else _Case(bench, g, batch, args.channels, pass_, device))
                    rows.extend(measure_case(case, modes, settings, log))
                    del case
    for r in rows:
        if r.note.startswith("skipped"):
            notes.append(f"{r.benchmark} {r.mode} {r.graph} batch {r.batch} {r.pass_}: {r.note}")
    notes = list(dict.fromkeys(notes))

    report = [pivot_tables(rows, graphs)]
    checks = auto_check(rows)
    if checks:
        def verdict(r: Row, ratio: float, best: str) -> str:
            if ratio <= AUTO_TOLERANCE:
                return "yes"
            if r.note.replace("auto -> ", "") == best:
                return "timing noise (auto ran the best kernel)"
            return "NO"

        lines = ["### auto vs the best kernel (target: within 1.1x)", "",
                 common.markdown_table(
                     ["pass", "batch", "graph (N)", "auto ran", "best kernel", "auto / best", "ok"],
                     ([r.pass_, r.batch, f"{r.graph} ({r.num_nodes})", r.note.replace("auto -> ", ""),
                       best, f"{ratio:.2f}", verdict(r, ratio, best)]
                      for r, ratio, best in checks))]
        within = sum(ratio <= AUTO_TOLERANCE for _, ratio, _ in checks)
        same = sum(r.note.replace("auto -> ", "") == best for r, _, best in checks)
        wrong = [c for c in checks if verdict(*c) == "NO"]
        lines.append("")
        lines.append(f"auto within {AUTO_TOLERANCE}x of the best kernel's median in {within} of "
                     f"{len(checks)} configurations; auto ran the fastest kernel in {same} of "
                     f"{len(checks)}; auto chose a slower kernel and lost more than "
                     f"{AUTO_TOLERANCE}x in {len(wrong)}.")
        report.append("\n".join(lines))
    typed = typed_check(rows)
    if typed:
        report.append(typed)
    big = [r for r in rows if r.benchmark == "semgraphconv" and r.num_nodes >= 6000
           and r.mode in ("torch.sparse", "torch_sparse") and not math.isnan(r.speedup_vs_dense)]
    if big:
        report.append("Sparse vs dense at the largest graph (target >= 50x): " + "; ".join(
            f"{r.mode} batch {r.batch} {r.pass_}: {r.speedup_vs_dense:.1f}x" for r in big))
    if notes:
        report.append("Notes:\n" + "\n".join(f"- {n}" for n in notes))
    text = "\n\n".join(report)
    log("")
    log(text)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common.write_csv([r.as_csv() for r in rows], out / "sparse_vs_dense.csv")
    header = "\n".join(f"- {k}: {v}" for k, v in info.items())
    (out / "sparse_vs_dense.md").write_text(
        f"# sparse_vs_dense{' (--quick)' if args.quick else ''}\n\n{header}\n\n{text}\n\n"
        f"## All rows\n\n{full_table(rows)}\n")
    if not args.no_plot:
        plot(rows, out / "sparse_vs_dense.png")
    log(f"\nwrote {out / 'sparse_vs_dense.csv'}, {out / 'sparse_vs_dense.md'}"
        + ("" if args.no_plot else f", {out / 'sparse_vs_dense.png'}")
        + f" in {time.perf_counter() - t_start:.0f} s")
    return rows


if __name__ == "__main__":
    main()
