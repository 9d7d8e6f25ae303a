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

    python -m benchmarks.sparse_vs_dense [--quick] [--device cpu|cuda] [--out DIR] [--threads N]
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from benchmarks import _common as common
from benchmarks.gcn_aggregation import GCN_MODES, GCNAggregationCase
from benchmarks.graph_kernels import (BENCHMARKS, FULL, GRAPH_NAMES, PASSES, QUICK, RTOL, Row,
                                      build_graphs, measure_case)
from benchmarks.graph_report import full_table, pivot_tables, plot
from benchmarks.semgraphconv import AUTO_TOLERANCE, SGC_MODES, SemGraphConvCase, auto_check
from benchmarks.typed_batches import TYPED_BATCH, TYPED_GRAPHS, TYPED_MODES, TypedBatchCase, typed_check

ROOT = Path(__file__).resolve().parents[1]

#: The case class of each benchmark.
CASES = {"semgraphconv": SemGraphConvCase, "gcn_aggregation": GCNAggregationCase, "typed_batches": TypedBatchCase}


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
                    case = CASES[bench](g, batch, args.channels, pass_, device)
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
