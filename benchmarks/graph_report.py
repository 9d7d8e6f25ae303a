"""Reporting of the graph-kernel benchmarks (:mod:`benchmarks.sparse_vs_dense`): the per-benchmark
time and memory tables, the table of every row, the time-against-N plot."""
from __future__ import annotations

import math
from pathlib import Path
from typing import List, Sequence

from benchmarks import _common as common
from benchmarks.graph_kernels import BENCHMARKS, PASSES, GraphSpec, Row


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
