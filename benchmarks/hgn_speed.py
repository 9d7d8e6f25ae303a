#!/usr/bin/env python
"""HGN throughput: hgn_pyg's ``HGN(fusion="official")`` against the published dense formulation.

Both networks are built on the same graphs: the 17-joint skeleton and levels 8 and 7 of the
embedded open body's hierarchy (50 and 100 slots, 46 and 85 real vertices; the neutral SMPL mesh
gives 48 and 96 slots), hidden size 128, 4 layers. The dense one is
:class:`hgn_pyg.models.DenseHGN` (docs/published_model.md §2-§3 as published: an ``N x N`` masked soft-max adjacency
built every call, the non-local block's ``[B, C, N, N]`` concatenation, ``Conv1d`` transfers, the
published parameter names). Its parameters (and BatchNorm statistics) are randomised -- every
non-local block is live, unlike at initialisation -- and loaded into ``HGN`` through
``HGN.from_official``; the two must give the same joints and meshes before anything is timed:
checked in float64 on copies of both models, on the first 64 poses of the batch (max abs
difference <= 1e-9, eval and train mode), so float32 rounding, which grows with the batch in train
mode (BatchNorm statistics: 1.3e-4 at batch 256, 1e-3 at 1024), cannot refuse a large ``--batch``.

Measured at batch 64 (``--batch``):

* inference: ``model.eval()``, ``torch.no_grad()``, one forward pass -> poses/s;
* training step: forward, loss ``100 MSE(joints) + MSE(mesh_c) + MSE(mesh_b)`` (meshes at their
  real slots, docs/published_model.md §4), backward, ``Adam.step()`` -> poses/s.

The two models are timed in alternating rounds (same background load for both), medians; the
ratios are the result. Also printed: parameter counts, FLOPs per call counted with
``torch.utils.flop_counter.FlopCounterMode`` (matmul/conv/bmm FLOPs; element-wise work, soft-max
and Adam are not counted) and the machine's measured float32 2048 x 2048 matmul rate, so that
the achieved GFLOP/s can be read against the physical limit.

Usage::

    python -m benchmarks.hgn_speed [--quick] [--threads 2] [--batch 64] [--mode auto]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks import _common as common

ATOL = 1e-9  # float64 agreement (check_equal)
AGREE_POSES = 64
TRAIN_TARGET = 6.0
INFER_TARGET = 8.0


def randomise_(model: nn.Module, seed: int = 0) -> None:
    """Random weights everywhere, including what starts at a constant (logits ``e``, BatchNorm
    affine and running statistics, the non-local block's zero-initialised output)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".e"):
                p.copy_(torch.randn(p.shape, generator=gen))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))


def build_models(mode: str = "auto", mesh_levels: Tuple[int, int] = (8, 7), seed: int = 0):
    """``(hgn, dense, real_slots)`` with identical weights; ``real_slots`` = (branch 2, branch 3)."""
    from hgn_pyg.models import HGN, DenseHGN

    skeleton, hierarchy = common.embedded_body_graphs()
    torch.manual_seed(seed)
    dense = DenseHGN.from_graphs(skeleton, hierarchy, mesh_levels=mesh_levels)
    randomise_(dense, seed)
    hgn = HGN.from_official(dense.state_dict(), skeleton, hierarchy, mesh_levels=mesh_levels,
                            fusion="official", mode=mode)
    real = tuple(hierarchy.real_slots(lv) for lv in mesh_levels)
    return hgn, dense, real, hierarchy


def _outputs(model: nn.Module, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    out = model(x)
    if hasattr(out, "joints"):
        return (out.joints,) + tuple(out.meshes)
    return tuple(out)


def check_equal(hgn: nn.Module, dense: nn.Module, x: Tensor, atol: float = ATOL
                ) -> Dict[str, float]:
    """Max abs output difference in eval and in train mode (BatchNorm batch statistics), in
    float64 on copies of the two models and the first :data:`AGREE_POSES` poses of ``x`` (the
    models themselves are not touched). Raises :class:`common.AgreementError`."""
    import copy

    diffs: Dict[str, float] = {}
    names = ("joints", "mesh_b", "mesh_c")
    x64 = x[:AGREE_POSES].double()
    for train in (False, True):
        a_model, b_model = (copy.deepcopy(m).double().train(train) for m in (hgn, dense))
        with torch.no_grad():
            a, b = _outputs(a_model, x64), _outputs(b_model, x64)
        for name, u, v in zip(names, a, b):
            if u.shape != v.shape:
                raise common.AgreementError(f"{name}: shape {tuple(u.shape)} != {tuple(v.shape)}")
            diffs[f"{name} ({'train' if train else 'eval'})"] = float((u - v).abs().max())
    bad = {k: v for k, v in diffs.items() if not v <= atol}
    if bad:
        raise common.AgreementError(
            "HGN and the dense formulation disagree (float64, max abs diff > "
            f"{atol:g}): " + ", ".join(f"{k} {v:.3g}" for k, v in bad.items()))
    hgn.eval()
    dense.eval()
    return diffs


def make_steps(model: nn.Module, x: Tensor, targets: Sequence[Tensor], real: Sequence[Tensor],
               lr: float = 1e-3) -> Tuple[Callable[[], object], Callable[[], object]]:
    """(inference call, training-step call) for ``model``."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    tj, tb, tc = targets
    rb, rc = real

    def infer():
        model.eval()
        with torch.no_grad():
            return model(x)

    def train_step():
        model.train()
        opt.zero_grad(set_to_none=True)
        j, mb, mc = _outputs(model, x)
        loss = (100.0 * F.mse_loss(j, tj) + F.mse_loss(mc.index_select(1, rc), tc)
                + F.mse_loss(mb.index_select(1, rb), tb))
        loss.backward()
        opt.step()
        return loss

    return infer, train_step


def count_flops(fn: Callable[[], object]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer timing rounds")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--mode", default="auto", choices=("auto", "dense", "sparse", "scatter"),
                   help="SemGraphConv kernel of the hgn_pyg model")
    p.add_argument("--rounds", type=int, default=None,
                   help="alternating timing rounds (default 5 with --quick, 15 otherwise)")
    p.add_argument("--matmul-size", type=int, default=2048,
                   help="size n of the n x n float32 matmul whose rate is reported")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, float]:
    args = parse_args(argv)
    device = common.resolve_device(args.device)
    common.set_threads(args.threads)
    rounds = args.rounds or (5 if args.quick else 15)
    t_start = time.perf_counter()
    hgn, dense, real, hierarchy = build_models(args.mode)
    hgn, dense = hgn.to(device), dense.to(device)
    real = tuple(r.to(device) for r in real)
    gen = torch.Generator().manual_seed(1)
    B = args.batch
    x = torch.randn(B, 17, 2, generator=gen).to(device)
    targets = (torch.randn(B, 17, 3, generator=gen).to(device),
               torch.randn(B, real[0].numel(), 3, generator=gen).to(device),
               torch.randn(B, real[1].numel(), 3, generator=gen).to(device))
    diffs = check_equal(hgn, dense, x)

    n_params = {"HGN": sum(p.numel() for p in hgn.parameters()),
                "DenseHGN": sum(p.numel() for p in dense.parameters())}
    steps = {"HGN": make_steps(hgn, x, targets, real), "DenseHGN": make_steps(dense, x, targets, real)}
    flops = {name: (count_flops(s[0]), count_flops(s[1])) for name, s in steps.items()}
    rate = common.matmul_gflops(device, args.matmul_size, repeats=3)

    warm = 1 if args.quick else 3
    infer_t = common.time_interleaved({k: s[0] for k, s in steps.items()}, device, warmup=warm,
                                      min_rounds=rounds, max_rounds=rounds, budget_s=0.0,
                                      calls_per_round={"HGN": 3, "DenseHGN": 1})
    train_t = common.time_interleaved({k: s[1] for k, s in steps.items()}, device, warmup=warm,
                                      min_rounds=rounds, max_rounds=rounds, budget_s=0.0,
                                      calls_per_round={"HGN": 3, "DenseHGN": 1})
    rate_after = common.matmul_gflops(device, args.matmul_size, repeats=3)

    info = common.machine_info(device)
    lines = ["# hgn_speed" + (" (--quick)" if args.quick else "")]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lv = hgn.mesh_levels
    lines.append(f"- graphs: skeleton 17 joints; body level {lv[0]}: {hgn.num_nodes[2]} slots "
                 f"({hgn.num_real[0]} real), level {lv[1]}: {hgn.num_nodes[3]} slots "
                 f"({hgn.num_real[1]} real) (SMPL: 48 / 96 slots); edges per graph "
                 f"{hgn.num_edges[1]} / {hgn.num_edges[2]} / {hgn.num_edges[3]}")
    lines.append(f"- hgn_pyg model: {hgn!r}")
    kernels = sorted({m.resolve_mode(B, device.type) for m in hgn.modules()
                      if hasattr(m, "resolve_mode")})
    lines.append(f"- SemGraphConv kernels the HGN ran at batch {B}: {', '.join(kernels)}")
    lines.append(f"- batch {B}; {rounds} alternating rounds (HGN 3 calls, DenseHGN 1 call per "
                 "round), medians")
    lines.append(f"- equal outputs before timing (float64, first {min(B, AGREE_POSES)} poses; max abs diff, "
                 f"limit {ATOL:g}): "
                 + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    n = args.matmul_size
    lines.append(f"- float32 {n}x{n} matmul: {rate:.1f} GFLOP/s before, {rate_after:.1f} after "
                 "the timings")
    lines.append("")
    header = ["model", "parameters", "inference ms / batch", "inference poses/s",
              "train step ms", "train poses/s", "GFLOP / inference", "GFLOP / train step",
              "achieved GFLOP/s (train)", "% of matmul rate"]
    rows = []
    for name in ("DenseHGN", "HGN"):
        ti, tt = infer_t[name].median_ms, train_t[name].median_ms
        fi, ft = flops[name]
        achieved = ft / (tt * 1e-3) / 1e9
        rows.append([name, n_params[name], ti, B / (ti * 1e-3), tt, B / (tt * 1e-3),
                     fi / 1e9, ft / 1e9, achieved, f"{100 * achieved / rate:.0f}%"])
    lines.append(common.markdown_table(header, rows))
    r_inf = infer_t["DenseHGN"].median_ms / infer_t["HGN"].median_ms
    r_tr = train_t["DenseHGN"].median_ms / train_t["HGN"].median_ms
    lines.append("")
    lines.append(f"Training step speed-up (HGN over DenseHGN): {r_tr:.2f}x "
                 f"(target >= {TRAIN_TARGET:g}x: {'met' if r_tr >= TRAIN_TARGET else 'NOT met'})")
    lines.append(f"Inference speed-up (HGN over DenseHGN): {r_inf:.2f}x "
                 f"(target >= {INFER_TARGET:g}x: {'met' if r_inf >= INFER_TARGET else 'NOT met'})")
    lines.append(f"FLOP ratio DenseHGN / HGN: inference {flops['DenseHGN'][0] / flops['HGN'][0]:.2f}x,"
                 f" training {flops['DenseHGN'][1] / flops['HGN'][1]:.2f}x")
    lines.append(f"(wall time {time.perf_counter() - t_start:.0f} s)")
    text = "\n".join(lines)
    print(text, flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "hgn_speed.md").write_text(text + "\n")
    return {"train_speedup": r_tr, "inference_speedup": r_inf,
            "max_abs_diff": max(diffs.values()), "params_hgn": float(n_params["HGN"]),
            "params_dense": float(n_params["DenseHGN"])}


if __name__ == "__main__":
    main()
