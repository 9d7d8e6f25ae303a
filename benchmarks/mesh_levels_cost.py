#!/usr/bin/env python
"""Does HGN's cost grow with the work when mesh levels are added, or with its square?

Training-step time (batch 64: forward, the published loss on the joints and every mesh level at
its real slots, backward, ``Adam.step()``) of:

* the published 3-branch model, ``mesh_levels=[8, 7]`` (hgn_pyg's ``HGN``, ``fusion="official"``);
* ``mesh_levels=[8, 7, 6, 5]`` (5 layers, the fewest the schedule allows; docs/published_model.md
  §10) with ``fusion="official"`` (one learned ``N_t x N_s`` node-mixing map per pair and stage,
  as published) and with ``fusion="pool"`` (pooling along the hierarchy + ``Linear(C, C)``);
* the dense formulation of the same networks: ``DenseHGN`` for ``[8, 7]`` and, for
  ``[8, 7, 6, 5]``, the same ``HGN`` with ``SemGraphConv(mode="dense")`` (the ``N x N`` masked
  soft-max adjacency) and the published non-local block with its explicit ``[B, C, N, N]``
  concatenation (:class:`hgn_pyg.models.dense_reference.DenseGraphNonLocal`).

Every dense model gets the weights of its sparse counterpart and must give the same outputs
(max abs difference <= 1e-4 relative to the output scale) before anything is timed. All models are
timed in alternating rounds (same background load for all), medians.

The cost unit is the **node-layer**: one node passing through one layer (a residual block and a
non-local block) of its branch, i.e. ``sum over layers of the branch's node count``. The figure of
merit is training-step time per node-layer relative to the published model's.

Usage::

    python -m benchmarks.mesh_levels_cost [--quick] [--threads 2] [--batch 64]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks import _common as common
from benchmarks.hgn_speed import randomise_

TARGET = 1.5  # per-node-layer time of [8, 7, 6, 5] within this factor of the published model's
RTOL = 1e-4


class DenseNonLocal(nn.Module):
    """``[B, N, C]`` adapter running the published-form non-local block with the weights of one of
    ours (:class:`hgn_pyg.nn.GraphNonLocal`)."""

    def __init__(self, ours: nn.Module):
        super().__init__()
        from hgn_pyg.models.dense_reference import DenseGraphNonLocal

        self.block = DenseGraphNonLocal(ours.channels, ours.inner_channels)
        b = self.block
        with torch.no_grad():
            for name in ("g", "theta", "phi"):
                getattr(b, name).weight.copy_(getattr(ours, name).weight.unsqueeze(-1))
                getattr(b, name).bias.copy_(getattr(ours, name).bias)
            b.concat_project[0].weight.copy_(ours.concat_project.view(1, -1, 1, 1))
            b.W[0].weight.copy_(ours.W.weight.unsqueeze(-1))
            b.W[0].bias.copy_(ours.W.bias)
            b.W[1].load_state_dict(ours.bn.state_dict())

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x.transpose(1, 2)).transpose(1, 2)


def node_layers(model: nn.Module) -> int:
    """Sum over the model's branch layers of the branch's node count."""
    if hasattr(model, "layers"):  # HGN: layers "<branch>_<k>"
        return sum(model.num_nodes[int(key.split("_")[0])] for key in model.layers.keys())
    return sum(model.num_nodes[int(name.split("_")[2])] for name, _ in model.named_children()
               if name.startswith("gconv_layers_"))  # DenseHGN: gconv_layers_<branch>_<k>


def dense_concat_gib(batch: int, channels: int, nodes: int) -> float:
    """Size of the published non-local block's ``[B, C, N, N]`` concatenation (float32), GiB."""
    return batch * channels * nodes * nodes * 4 / 2 ** 30


def build(hierarchy, skeleton, joint_weights, with_deep_dense: bool = True
          ) -> Dict[str, Tuple[nn.Module, Tuple[int, ...]]]:
    from hgn_pyg.models import HGN, DenseHGN

    models: Dict[str, Tuple[nn.Module, Tuple[int, ...]]] = {}
    torch.manual_seed(0)
    dense3 = DenseHGN.from_graphs(skeleton, hierarchy, mesh_levels=(8, 7))
    randomise_(dense3, 0)
    models["HGN [8, 7] official (published)"] = (
        HGN.from_official(dense3.state_dict(), skeleton, hierarchy, mesh_levels=(8, 7)), (8, 7))
    models["DenseHGN [8, 7] (published dense)"] = (dense3, (8, 7))
    for fusion in ("official", "pool"):
        kw = dict(joint_assignment=joint_weights) if fusion == "pool" else {}
        m = HGN(skeleton, hierarchy, mesh_levels=(8, 7, 6, 5), num_layers=5, fusion=fusion, **kw)
        randomise_(m, 1)
        models[f"HGN [8, 7, 6, 5] {fusion}"] = (m, (8, 7, 6, 5))
    if not with_deep_dense:
        return models
    sparse = models["HGN [8, 7, 6, 5] official"][0]
    dense = HGN(skeleton, hierarchy, mesh_levels=(8, 7, 6, 5), num_layers=5, mode="dense")
    dense.load_state_dict(sparse.state_dict())
    for layer in dense.layers.values():
        layer.non_local = DenseNonLocal(layer.non_local)
    models["dense [8, 7, 6, 5] official"] = (dense, (8, 7, 6, 5))
    return models


def outputs(model: nn.Module, x: Tensor) -> Tuple[Tensor, ...]:
    out = model(x)
    return (out.joints, *out.meshes) if hasattr(out, "joints") else tuple(out)


def check_pairs(models, pairs, x) -> Dict[str, float]:
    """Relative max abs difference of each (sparse, dense) pair in eval mode; raises on > RTOL."""
    diffs = {}
    for a, b in pairs:
        ma, mb = models[a][0].eval(), models[b][0].eval()
        with torch.no_grad():
            oa, ob = outputs(ma, x), outputs(mb, x)
        scale = max(1.0, max(float(t.abs().max()) for t in oa))
        d = max(float((u - v).abs().max()) for u, v in zip(oa, ob)) / scale
        diffs[f"{a} vs {b}"] = d
        if not d <= RTOL:
            raise common.AgreementError(f"{a} and {b} disagree: relative max abs diff {d:.3g} > {RTOL:g}")
    return diffs


def make_step(model: nn.Module, levels: Sequence[int], hierarchy, x: Tensor, gen) -> Callable[[], object]:
    real = [hierarchy.real_slots(lv) for lv in levels]
    tj = torch.randn(x.shape[0], 17, 3, generator=gen)
    tm = [torch.randn(x.shape[0], r.numel(), 3, generator=gen) for r in real]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        model.train()
        opt.zero_grad(set_to_none=True)
        j, *meshes = outputs(model, x)
        loss = 100.0 * F.mse_loss(j, tj)
        for m, r, t in zip(meshes, real, tm):
            loss = loss + F.mse_loss(m.index_select(1, r), t)
        loss.backward()
        opt.step()
        return loss

    return step


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 timing rounds instead of 7")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--dense-max-gib", type=float, default=1.0,
                   help="skip the dense [8, 7, 6, 5] model when its [B, C, N, N] concatenation at the "
                        "finest level would exceed this many GiB (it is kept several times for backward)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = p.parse_args(argv)
    threads = common.set_threads(args.threads)
    rounds = args.rounds or (3 if args.quick else 7)
    t0 = time.perf_counter()
    from hgn_pyg.data.body_model import default_body_model_path, load_body_model

    skeleton, hierarchy = common.embedded_body_graphs()
    body = load_body_model(default_body_model_path())
    concat = dense_concat_gib(args.batch, 128, hierarchy.num_slots[5])
    deep_dense = concat <= args.dense_max_gib
    models = build(hierarchy, skeleton, body.h36m_regressor, with_deep_dense=deep_dense)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, 17, 2, generator=gen)
    pairs = [("HGN [8, 7] official (published)", "DenseHGN [8, 7] (published dense)")]
    if deep_dense:
        pairs.append(("HGN [8, 7, 6, 5] official", "dense [8, 7, 6, 5] official"))
    diffs = check_pairs(models, pairs, x)
    steps = {name: make_step(m, lv, hierarchy, x, gen) for name, (m, lv) in models.items()}
    timings = common.time_interleaved(steps, torch.device("cpu"), warmup=1, min_rounds=rounds,
                                      max_rounds=rounds, budget_s=0.0)
    ref_name = "HGN [8, 7] official (published)"
    ref = timings[ref_name].median_ms / node_layers(models[ref_name][0])
    info = common.machine_info(torch.device("cpu"))
    lines = ["# mesh_levels_cost" + (" (--quick)" if args.quick else "")]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines.append("- slots per level (open body model; SMPL: 48 / 96 / 192 / 384): "
                 + ", ".join(f"level {lv}: {hierarchy.num_slots[lv]}" for lv in (8, 7, 6, 5)))
    lines.append(f"- batch {args.batch}; {rounds} alternating rounds, medians; {threads} torch threads")
    lines.append("- equal outputs before timing (relative max abs diff, limit 1e-4): "
                 + ", ".join(f"{k}: {v:.1e}" for k, v in diffs.items()))
    if not deep_dense:
        lines.append(f"- dense [8, 7, 6, 5] skipped: its non-local [B, C, N, N] concatenation alone would take "
                     f"{concat:.1f} GiB at batch {args.batch} (limit --dense-max-gib {args.dense_max_gib:g}); "
                     "run with a smaller --batch for its figures")
    lines.append("")
    header = ["model", "parameters", "node-layers", "train step ms", "ms per 1000 node-layers",
              "per node-layer vs published"]
    rows: List[List[object]] = []
    result: Dict[str, float] = {}
    for name, (m, _lv) in models.items():
        nl = node_layers(m)
        ms = timings[name].median_ms
        rel = (ms / nl) / ref
        result[name] = rel
        rows.append([name, f"{sum(q.numel() for q in m.parameters()):,}", nl, ms, 1000 * ms / nl, f"{rel:.2f}x"])
    lines.append(common.markdown_table(header, rows))
    lines.append("")
    for fusion in ("official", "pool"):
        rel = result[f"HGN [8, 7, 6, 5] {fusion}"]
        lines.append(f"[8, 7, 6, 5] with fusion={fusion}: {rel:.2f}x the published model's time per "
                     f"node-layer (target <= {TARGET:g}x: {'met' if rel <= TARGET else 'NOT met'})")
    lines.append(f"(wall time {time.perf_counter() - t0:.0f} s; load average at the end "
                 f"{common.load_average()})")
    text = "\n".join(lines)
    print(text, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"mesh_levels_cost_b{args.batch}.md").write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
