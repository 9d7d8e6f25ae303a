"""Shared parts of the graph-kernel benchmarks of :mod:`benchmarks.sparse_vs_dense`: the benchmark
graphs, the timing settings, the agreement-then-timing loop and the result rows.

Each benchmark (:mod:`benchmarks.semgraphconv`, :mod:`benchmarks.gcn_aggregation`,
:mod:`benchmarks.typed_batches`) provides a *case* class: ``benchmark``, ``graph``, ``batch``,
``pass_``, ``device``, ``callable(mode)`` (one call returning the output and gradients to compare)
and ``auto_choice()``; :func:`measure_case` checks the modes against each other and times them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch_geometric.utils import add_self_loops, remove_self_loops

from benchmarks import _common as common

BENCHMARKS = ("semgraphconv", "typed_batches", "gcn_aggregation")
PASSES = ("fwd", "fwd+bwd")
GRAPH_NAMES = ("skeleton", "level8", "level7", "level4", "level2", "level0")
RTOL = 1e-4


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


def build_graphs(names: Sequence[str] = GRAPH_NAMES) -> List[GraphSpec]:
    """The benchmark graphs: skeleton (bones + self loops, as HGN uses it), levels 8 and 7 in slot
    order exactly as the HGN mesh branches use them (fake slots isolated), and levels 4, 2, 0 as
    the real-vertex graphs in original order (level 0 = the 6,890-vertex mesh)."""
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


class Case:
    """One (graph, batch, pass) of a benchmark on shared random inputs (drawn from ``self.gen``,
    seeded, in a fixed order). Subclasses set :attr:`benchmark` and build ``callable(mode)``;
    :meth:`auto_choice` names the kernel ``auto`` runs (empty: the benchmark has no ``auto``)."""

    benchmark = ""

    def __init__(self, graph: GraphSpec, batch: int, channels: int, pass_: str, device: torch.device,
                 seed: int = 0):
        self.graph, self.batch, self.pass_ = graph, batch, pass_
        self.channels, self.device = channels, device
        self.gen = torch.Generator().manual_seed(seed)

    def random(self, *shape: int) -> Tensor:
        """The next standard-normal draw of ``shape`` from :attr:`gen`, on the case's device."""
        return torch.randn(*shape, generator=self.gen).to(self.device)

    def auto_choice(self) -> str:
        return ""


def layer_callable(pass_: str, layer: torch.nn.Module, run: Callable[[Tensor], Tensor],
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


def measure_case(case, modes: Sequence[str], settings: Settings,
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
