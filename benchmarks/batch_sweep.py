#!/usr/bin/env python
"""HGN inference throughput at every batch size, eager and exported, in one run.

Model: a checkpoint given with ``--checkpoint`` (e.g. the main job's ``best.pth.tar``), else
``benchmarks/hgn_speed.py``'s ``HGN(fusion="official")`` (hidden 128, 4 layers, levels 8 and 7 of
the embedded open body, randomised weights). Timed in alternating rounds (medians), every run
lifting the same number of poses per call (``max(B, --poses)``: small batches loop):

* **forward B**: ``model(x)`` on one batch of ``B`` poses under ``torch.inference_mode`` (the
  batch as one tensor);
* **predict B**: :meth:`HGN.predict` (eval, ``inference_mode``, the batch taken in blocks of
  :data:`hgn_pyg.models.hgn.PREDICT_BLOCK`), the inference path the Lifter uses;
* **onnxruntime B** (with ``--onnx``, needs the ``[onnx]`` extra): the model exported by
  :func:`hgn_pyg.inference.export.export_model` (``--exporter``, default dynamo) run by onnxruntime with
  ``--threads`` intra-op threads, at batch 1 and 64, and at batch 1 with one thread;
* **compiled B** (with ``--compile``): ``torch.compile(model, fullgraph=True)`` (inductor) under
  ``torch.inference_mode`` at batch 1 and 64, beside ``forward B`` (compiled vs eager).

Before timing, onnxruntime's and the compiled model's outputs are compared with eager (max abs
difference, limit 1e-4 m).
Result: poses/s per run; the ratio predict(4096) / forward(16) (target >= 1) and the batch-1
latency of the fastest path (target <= 3 ms).

Usage::

    python -m benchmarks.batch_sweep [--checkpoint CK] [--threads 2] [--onnx] [--compile] [--rounds 3]
        [--batches 1 16 64 256 1024 4096] [--poses 1024]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import torch

from benchmarks import _common as common
from benchmarks import hgn_speed
from hgn_pyg.inference.export import LifterNet, export_model, load_exported
from hgn_pyg.models import load_model
from hgn_pyg.models.hgn import PREDICT_BLOCK

ROOT = Path(__file__).resolve().parents[1]

LATENCY_TARGET_MS = 3.0


def load(checkpoint: Optional[Path]):
    """``(model, info)``: the checkpoint's model, or hgn_speed's randomised one."""
    if checkpoint is not None:
        return load_model(str(checkpoint), map_location="cpu")
    hgn, _dense, _real, _h = hgn_speed.build_models("auto")
    return hgn.eval(), None


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64, 256, 1024, 4096])
    p.add_argument("--poses", type=int, default=1024, help="poses per timed call at least (small batches loop)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--onnx", action="store_true", help="also onnxruntime on the exported model")
    p.add_argument("--exporter", default="dynamo", choices=("dynamo", "legacy"), help="ONNX exporter")
    p.add_argument("--compile", action="store_true", help="also torch.compile(fullgraph=True) at batch 1 and 64")
    p.add_argument("--verbose", action="store_true", help="say when timing starts")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, float]:
    args = parse_args(argv)
    common.set_threads(args.threads)
    device = torch.device("cpu")
    t_start = time.perf_counter()
    model, info = load(args.checkpoint)
    k = model.num_nodes[1] if model.input_nodes is None else model.input_nodes
    gen = torch.Generator().manual_seed(0)
    xs = {b: torch.randn(b, k, model.in_channels, generator=gen) for b in sorted(set(args.batches) | {1, 64})}
    fns: Dict[str, Callable[[], object]] = {}
    poses: Dict[str, int] = {}

    def looped(call: Callable[[], object], b: int) -> Callable[[], object]:
        reps = max(1, args.poses // b)

        def run():
            for _ in range(reps):
                call()
        return run

    def forward(x):
        def call():
            with torch.inference_mode():
                return model(x)
        return call

    for b in args.batches:
        fns[f"forward {b}"] = looped(forward(xs[b]), b)
        fns[f"predict {b}"] = looped(lambda x=xs[b]: model.predict(x), b)
        poses[f"forward {b}"] = poses[f"predict {b}"] = max(1, args.poses // b) * b
    agreement = None
    tmp = tempfile.TemporaryDirectory()
    if args.onnx:
        path = export_model(model, info, "onnx", Path(tmp.name) / "model.onnx", exporter=args.exporter, check=False)
        sessions = {"": load_exported(path, threads=args.threads), " (1 thread)": load_exported(path, threads=1)}
        net = LifterNet(model).eval()
        with torch.no_grad():
            want = net(xs[64])
        agreement = max(float((a - b).abs().max()) for a, b in zip(want, sessions[""](xs[64])))
        if not agreement <= 1e-4:
            raise common.AgreementError(f"onnxruntime differs from eager by {agreement:.3g} m (> 1e-4)")
        for b, label in ((1, ""), (1, " (1 thread)"), (64, "")):
            name = f"onnxruntime {b}{label}"
            fns[name] = looped(lambda s=sessions[label], x=xs[b]: s(x), b)
            poses[name] = max(1, args.poses // b) * b
    compiled_agreement = None
    if args.compile:
        compiled = torch.compile(model, fullgraph=True)
        compiled_agreement = 0.0
        for b in (1, 64):
            with torch.inference_mode():
                want, got = model(xs[b]), compiled(xs[b])
            compiled_agreement = max(compiled_agreement, float((want.joints - got.joints).abs().max()))
            if not compiled_agreement <= 1e-4:
                raise common.AgreementError(f"compiled model differs from eager by {compiled_agreement:.3g} m (> 1e-4)")

            def call(x=xs[b]):
                with torch.inference_mode():
                    return compiled(x)
            fns[f"compiled {b}"] = looped(call, b)
            poses[f"compiled {b}"] = max(1, args.poses // b) * b
            if f"forward {b}" not in fns:
                fns[f"forward {b}"] = looped(forward(xs[b]), b)
                poses[f"forward {b}"] = poses[f"compiled {b}"]
    log_progress = print if args.verbose else (lambda *a, **k: None)
    log_progress(f"timing {len(fns)} runs", flush=True)
    times = common.time_interleaved(fns, device, warmup=1, min_rounds=args.rounds, max_rounds=args.rounds,
                                    budget_s=0.0)
    tmp.cleanup()
    rate = {n: poses[n] / (t.median_ms * 1e-3) for n, t in times.items()}
    latency = {n: 1e3 / rate[n] for n in rate if n.split()[-1] == "1" or n.endswith("1 (1 thread)")}
    info_lines = common.machine_info(device)
    lines = ["# batch_sweep"] + [f"- {k}: {v}" for k, v in info_lines.items()]
    lines.append(f"- model: {args.checkpoint or 'hgn_speed random weights'}: {model!r}")
    lines.append(f"- threads {args.threads}; >= {args.poses} poses per timed call; {args.rounds} alternating "
                 f"rounds, medians; predict blocks of {PREDICT_BLOCK['cpu']}")
    if agreement is not None:
        lines.append(f"- onnxruntime vs eager at batch 64: max abs diff {agreement:.1e} m (limit 1e-4)")
    if compiled_agreement is not None:
        lines.append(f"- compiled vs eager at batch 1 and 64: max abs diff {compiled_agreement:.1e} m (limit 1e-4)")
    lines.append("")
    rows = [[n, poses[n], times[n].median_ms, rate[n], f"{1e3 / rate[n]:.2f}"] for n in fns]
    lines.append(common.markdown_table(["run", "poses per call", "ms per call (median)", "poses/s",
                                        "ms per pose"], rows))
    lines.append("")
    out: Dict[str, float] = dict(rate)
    big, small = max(args.batches), 16
    if f"predict {big}" in rate and f"forward {small}" in rate:
        r = rate[f"predict {big}"] / rate[f"forward {small}"]
        lines.append(f"predict at batch {big} / forward at batch {small}: {r:.2f} (target >= 1: "
                     f"{'met' if r >= 1 else 'NOT met'}); forward at batch {big} / forward at batch {small}: "
                     f"{rate[f'forward {big}'] / rate[f'forward {small}']:.2f}")
        out["large_over_16"] = r
    for b in (1, 64):
        if f"compiled {b}" in rate:
            r = rate[f"compiled {b}"] / rate[f"forward {b}"]
            lines.append(f"compiled / eager at batch {b}: {r:.2f}x the poses/s (target >= 1: "
                         f"{'met' if r >= 1 else 'NOT met'})")
            out[f"compiled_over_eager_{b}"] = r
    if latency:
        best = min(latency, key=latency.get)
        lines.append(f"Fastest batch-1 path: {best}, {latency[best]:.2f} ms per pose (target <= "
                     f"{LATENCY_TARGET_MS:g} ms: {'met' if latency[best] <= LATENCY_TARGET_MS else 'NOT met'})")
        out["batch1_ms"] = latency[best]
    lines.append(f"(wall time {time.perf_counter() - t_start:.0f} s)")
    text = "\n".join(lines)
    print(text, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batch_sweep.md").write_text(text + "\n")
    return out


if __name__ == "__main__":
    main()
