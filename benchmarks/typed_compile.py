#!/usr/bin/env python
"""SemGraphConv's typed-edge path: eager against ``torch.compile(fullgraph=True)``.

The inputs are the ``typed_batches`` case of ``benchmarks/sparse_vs_dense.py``: a PyG batch of
``--batch`` copies (default 64) of one graph (the skeleton, or the level-8 / level-7 HGN branch
graph: 100 slots, ~990 nodes... see that script) with ``C = --channels`` (64), run through a
typed layer ``SemGraphConv(C, C, num_edge_types=E, mode="auto")``. Compiled (inductor, static
shapes, one warm-up call that compiles) and eager runs alternate; medians, and the outputs and
gradients must agree (max relative error <= 1e-4) before anything is timed. Eager runs the CSR
kernel; the compiled layer runs the traced kernel (gather / scatter-add without data-dependent
shapes, see ``SemGraphConv._convolve_traced``), fused by inductor.

Usage::

    python benchmarks/typed_compile.py [--graphs level7] [--threads 1] [--batch 64]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import _common as common  # noqa: E402
import sparse_vs_dense as svd  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--graphs", default="level7", help="comma list of skeleton, level8, level7")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--budget", type=float, default=3.0, help="seconds of timing per cell")
    args = p.parse_args(argv)
    common.set_threads(args.threads)
    device = torch.device("cpu")
    rows = []
    for graph in svd.build_graphs(args.graphs.split(",")):
        for pass_ in ("fwd", "fwd+bwd"):
            case = svd._TypedCase(graph, args.batch, args.channels, pass_, device)
            eager = case.callable("typed")
            layer = case._layer("typed")
            compiled_layer = torch.compile(layer, fullgraph=True, dynamic=False)
            x, ei, et, batch = case.inputs["copies"]
            gout = case.grad_out.reshape(x.shape)
            compiled = svd._layer_callable(pass_, layer, lambda xx: compiled_layer(xx, ei, et, batch),
                                           x, gout, post=lambda t: t.reshape(-1, t.size(-1)))
            t0 = time.perf_counter()
            ref, got = eager(), compiled()  # the first compiled call compiles
            compile_s = time.perf_counter() - t0
            common.check_agreement({"eager": ref, "compiled": got}, "eager", rtol=1e-4)
            t = common.time_interleaved({"eager": eager, "compiled": compiled}, device,
                                        budget_s=args.budget)
            e, c = t["eager"].median_ms, t["compiled"].median_ms
            rows.append((graph.name, graph.num_nodes * args.batch, pass_, common.fmt(e),
                         common.fmt(c), common.fmt(c / e), f"{compile_s:.0f}"))
            torch._dynamo.reset()
    print(f"typed SemGraphConv, {args.batch} graphs, C={args.channels}, {args.threads} thread(s), "
          f"torch {torch.__version__}, load {common.load_average()}")
    print(common.markdown_table(["graph", "nodes", "pass", "eager ms", "compiled ms",
                                 "compiled / eager", "compile s"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
