#!/usr/bin/env python
"""End-to-end lift throughput against the model's own inference throughput, in one run.

The model is ``benchmarks/hgn_speed.py``'s ``HGN(fusion="official")`` (hidden 128, 4 layers,
levels 8 and 7 of the embedded open body, randomised weights), saved as a self-describing
checkpoint. Timed in alternating rounds (medians):

* **model**: ``hgn_speed.py``'s inference call -- ``model.eval()``, ``torch.no_grad()``, one
  forward pass at ``--batch`` (64, hgn_speed's batch) -> poses/s;
* **lift**: ``hgn_pyg.lift.main`` in this process -- read the checkpoint (graphs and weights),
  read the keypoint file, normalise, missing-keypoint policy, lift, write ``poses_3d.npz`` and
  ``poses_3d.json`` (no render) -> poses/s, for ``--frames`` (10,000) frames as pixel arrays
  (``.npy``, H36M order) and as a COCO keypoint-result JSON (one detection per frame).

Result: lift poses/s divided by model poses/s at hgn_speed's batch (target >= 0.8).

Usage::

    python benchmarks/lift_speed.py [--frames 10000] [--rounds 5] [--threads N] [--out DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

try:
    import _common as common  # noqa: E402
    import hgn_speed  # noqa: E402
except ImportError:  # pragma: no cover
    from benchmarks import _common as common  # noqa: E402
    from benchmarks import hgn_speed  # noqa: E402

TARGET = 0.8


def make_inputs(folder: Path, frames: int, seed: int = 0) -> Dict[str, Path]:
    """Pixel keypoints of ``frames`` plausible poses (a mean pose, jittered, moved around a
    1000 x 1000 image) as an H36M ``.npy`` and a COCO result JSON."""
    from hgn_pyg.graphs.skeleton import COCO17, H36M

    rng = np.random.default_rng(seed)
    base = np.array([[0, 0], [-12, 2], [-14, 45], [-15, 90], [12, 2], [14, 45], [15, 90], [0, -30], [0, -60],
                     [0, -72], [0, -85], [18, -58], [28, -30], [32, -5], [-18, -58], [-28, -30], [-32, -5]],
                    dtype=np.float64) * 2.5
    centre = rng.uniform(300, 700, size=(frames, 1, 2))
    h36m = base[None] + centre + rng.normal(0, 4, size=(frames, 17, 2))
    npy = folder / "keypoints_h36m.npy"
    np.save(npy, h36m)
    # COCO order: the same limbs, face points around the H36M nose/head
    name = {n: i for i, n in enumerate(H36M.joint_names)}
    coco = np.zeros((frames, 17, 3))
    for k, n in enumerate(COCO17.joint_names):
        src = name.get(n, name["Nose"] if "Eye" in n or n == "Nose" else name["Head"])
        coco[:, k, :2] = h36m[:, src] + (k in (1, 2, 3, 4)) * rng.normal(0, 3, size=(frames, 2))
    coco[..., 2] = rng.uniform(0.5, 1.0, size=(frames, 17))
    js = folder / "keypoints_coco.json"
    js.write_text(json.dumps([{"image_id": t, "category_id": 1, "keypoints": np.round(coco[t], 2).ravel().tolist(),
                               "score": 0.9} for t in range(frames)]))
    return {"npy (H36M)": npy, "COCO JSON": js}


def save_checkpoint(model, hierarchy, path: Path) -> None:
    from hgn_pyg.config import ModelConfig
    from hgn_pyg.engine.training_state import save_checkpoint as save
    from hgn_pyg.models.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, inference_record

    section = ModelConfig()
    section.mode = model.mode
    import dataclasses

    save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": model.state_dict(),
          "config": {"MODEL": dataclasses.asdict(section)}, **inference_record(section, hierarchy)}, path)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=10000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch", type=int, default=64, help="hgn_speed's inference batch")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, float]:
    args = parse_args(argv)
    device = torch.device("cpu")
    common.set_threads(args.threads)
    t_start = time.perf_counter()
    hgn, _dense, _real, hierarchy = hgn_speed.build_models("auto")
    hgn.eval()
    gen = torch.Generator().manual_seed(1)
    x_small = torch.randn(args.batch, 17, 2, generator=gen)

    def model_at(x):
        def call():
            with torch.no_grad():
                return hgn(x)
        return call

    from hgn_pyg.cli.lift import main as lift_main

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "model.pt"
        save_checkpoint(hgn, hierarchy, ckpt)
        inputs = make_inputs(tmp, args.frames)
        fns = {f"model, batch {args.batch}": model_at(x_small)}
        for label, path in inputs.items():
            extra = ["--format", "h36m"] if path.suffix == ".npy" else []

            def lift(path=path, extra=extra, label=label):
                out = tmp / f"out_{label.split()[0]}"
                with contextlib.redirect_stdout(io.StringIO()):
                    rc = lift_main(["--checkpoint", str(ckpt), "--keypoints", str(path), "--image-size", "1000",
                                    "1000", "--out", str(out), "--overwrite", "--device", "cpu", *extra])
                if rc != 0:
                    raise RuntimeError(f"hgn_pyg.lift failed on {path} (exit {rc})")
                joints = np.load(out / "poses_3d.npz")["joints_3d"]
                if joints.shape != (args.frames, 17, 3) or not np.isfinite(joints).all():
                    raise RuntimeError(f"hgn_pyg.lift wrote joints of shape {joints.shape} for {path}")
            fns[f"lift {label}"] = lift
        calls = {k: 1 if k.startswith("lift") else max(1, args.frames // args.batch // 4) for k in fns}
        for _ in range(3):  # warm the model up; the lift runs are long enough not to need it
            fns[f"model, batch {args.batch}"]()
        times = common.time_interleaved(fns, device, warmup=0, min_rounds=args.rounds, max_rounds=args.rounds,
                                        budget_s=0.0, calls_per_round=calls)
    per_pose = {k: args.frames if k.startswith("lift") else args.batch for k in fns}
    rate = {k: per_pose[k] / (t.median_ms * 1e-3) for k, t in times.items()}
    ref = rate[f"model, batch {args.batch}"]
    info = common.machine_info(device)
    lines = ["# lift_speed"] + [f"- {k}: {v}" for k, v in info.items()]
    lines.append(f"- model: {hgn!r}")
    lines.append(f"- {args.frames} frames per lift run (file in -> poses_3d.npz + poses_3d.json out, no "
                 f"render); {args.rounds} alternating rounds, medians")
    lines.append("")
    rows = [[k, per_pose[k], times[k].median_ms, rate[k], f"{rate[k] / ref:.2f}"] for k in fns]
    lines.append(common.markdown_table(["run", "poses per call", "ms per call (median)", "poses/s",
                                        f"/ model at batch {args.batch}"], rows))
    lines.append("")
    worst = min(rate[k] for k in fns if k.startswith("lift"))
    lines.append(f"End-to-end lift / model inference (hgn_speed, batch {args.batch}): {worst / ref:.2f} "
                 f"(target >= {TARGET:g}: {'met' if worst / ref >= TARGET else 'NOT met'})")
    lines.append(f"(wall time {time.perf_counter() - t_start:.0f} s)")
    text = "\n".join(lines)
    print(text, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lift_speed.md").write_text(text + "\n")
    return {"ratio": worst / ref, **rate}


if __name__ == "__main__":
    main()
