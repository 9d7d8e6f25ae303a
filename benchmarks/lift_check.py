#!/usr/bin/env python
"""Lift the synthetic S9/S11 test frames with ``hgn_pyg.lift`` and compare with ``hgn_pyg.test``.

For a checkpoint (default: the newest ``experiment/exp_*/checkpoint/best.pth.tar`` of the main job)
and the test split of its stored configuration:

* **H36M input**: the frames' pixel keypoints, made from the ground-truth camera-frame joints and
  the frames' cameras (``data.camera.project``), written as ``.npz`` files (one per image size) and
  lifted by the CLI ``python -m hgn_pyg.lift ... --format h36m --image-size W H`` (both paths with
  equal left/right bones and flip averaging when the checkpoint records ``TEST.symmetric_bones`` /
  ``TEST.flip_test``); compared with the
  joints the ``hgn_pyg.test`` path computes (the model on the data set's own normalised input):
  max abs difference, MPJPE and PA-MPJPE of both;
* **COCO input** (when the data set carries COCO-17 keypoints,
  ``Human36M_subject{S}_joint_3d_coco.json``): the frames' COCO keypoints projected the same way,
  lifted with ``--format coco`` (the COCO -> H36M mapping of ``hgn_pyg.data.keypoints``).

Usage::

    python -m benchmarks.lift_check [--checkpoint CKPT] [--set DATASET.root=...] [--out DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]

import numpy as np
import torch


def newest_checkpoint(root: Path = Path("experiment")) -> Path:
    found = sorted(root.glob("exp_*/checkpoint/best.pth.tar"))
    if not found:
        raise SystemExit(f"no {root}/exp_*/checkpoint/best.pth.tar: run the main job first or pass --checkpoint")
    return found[-1]


def frames_as_pixels(cfg):
    """``(pixels [N, 17, 2], tensors of the test split)`` in the order hgn_pyg.test reads them."""
    from torch.utils.data import Subset

    from hgn_pyg.data.camera import project
    from hgn_pyg.engine import build

    ds = build.build_dataset(cfg, "test")
    base, idx = (ds.dataset, np.asarray(ds.indices)) if isinstance(ds, Subset) else (ds, np.arange(len(ds)))
    t = {k: v[torch.from_numpy(idx)] for k, v in base.tensors().items()}
    cam = (t["joints_3d"] + t["root_3d"][:, None]).double().numpy()
    uv = project(cam, t["focal"].double().numpy()[:, None], t["center"].double().numpy()[:, None])
    return uv, t


def coco_pixels(cfg, t) -> Optional[np.ndarray]:
    """The test frames' COCO-17 keypoints in pixels, when the data set has them."""
    root = cfg.data_root()
    if not list((root / "annotations").glob("Human36M_subject*_joint_3d_coco.json")):
        return None
    from hgn_pyg.data.input_2d import coco_projections

    return coco_projections(root, t["frame_info"].numpy())


def lift_cli(ckpt: Path, uv: np.ndarray, sizes: np.ndarray, fmt: str, tmp: Path) -> np.ndarray:
    from hgn_pyg.cli.lift import main as lift_main

    out = np.empty((len(uv), 17, 3), dtype=np.float32)
    for k, (w, h) in enumerate(np.unique(sizes, axis=0)):
        sel = (sizes == [w, h]).all(1)
        np.savez(tmp / f"{fmt}{k}.npz", keypoints=uv[sel], keypoint_format=fmt)
        with contextlib.redirect_stdout(io.StringIO()):
            rc = lift_main(["--checkpoint", str(ckpt), "--keypoints", str(tmp / f"{fmt}{k}.npz"), "--image-size",
                            str(w), str(h), "--out", str(tmp / f"{fmt}{k}"), "--device", "cpu"])
        if rc:
            raise SystemExit(f"hgn_pyg.lift failed (exit {rc})")
        out[sel] = np.load(tmp / f"{fmt}{k}" / "poses_3d.npz")["joints_3d"]
    return out


def metrics(joints: np.ndarray, t) -> Dict[str, float]:
    from hgn_pyg.engine.metrics import ACTIONS, MetricAccumulator

    acc = MetricAccumulator(ACTIONS)
    acc.update(torch.from_numpy(np.asarray(joints)), t["joints_3d"] - t["joints_3d"][:, :1], t["action"])
    s = acc.summary()
    return {"MPJPE": s["MPJPE"], "PA-MPJPE": s["PA-MPJPE"]}


def main(argv: Optional[Sequence[str]] = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.key=value")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = p.parse_args(argv)
    from hgn_pyg.config import apply_overrides, config_from_dict
    from hgn_pyg.engine.training_state import load_checkpoint
    from hgn_pyg.engine.evaluator import evaluate, make_loader, predict_joints
    from hgn_pyg.engine import build
    from hgn_pyg.models import HGN

    ckpt = args.checkpoint or newest_checkpoint()
    cfg = apply_overrides(config_from_dict(load_checkpoint(ckpt)["config"], source=str(ckpt)), args.set)
    uv, t = frames_as_pixels(cfg)
    sizes = t["image_size"].double().numpy()
    model = HGN.from_checkpoint(ckpt)
    # the checkpoint's TEST choices (symmetric bones, flip test), which hgn_pyg.lift follows too
    opts = build.test_options(cfg)
    ref = predict_joints(model, t["input_2d"], **opts).numpy()
    test_res = evaluate(model, make_loader(build.build_dataset(cfg, "test"), 256), torch.device("cpu"), **opts)
    rows = [("hgn_pyg.test (normalised test input)", len(ref), None, test_res["MPJPE"], test_res["PA-MPJPE"])]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        joints = lift_cli(ckpt, uv, sizes, "h36m", tmp)
        m = metrics(joints, t)
        rows.append(("hgn_pyg.lift, H36M-17 pixels", len(joints), float(np.abs(joints - ref).max()), m["MPJPE"],
                     m["PA-MPJPE"]))
        coco = coco_pixels(cfg, t)
        if coco is not None:
            joints_c = lift_cli(ckpt, coco, sizes, "coco", tmp)
            mc = metrics(joints_c, t)
            finite = bool(np.isfinite(joints_c).all()) and bool(np.all(joints_c[:, 0] == 0))
            rows.append((f"hgn_pyg.lift, COCO-17 pixels (finite, root-relative: {finite})", len(joints_c), None,
                         mc["MPJPE"], mc["PA-MPJPE"]))
    lines = [f"# lift_check: {ckpt}", "", "| input | poses | max abs diff vs test (m) | MPJPE (mm) | PA-MPJPE (mm) |",
             "|---|---:|---:|---:|---:|"]
    for name, n, diff, e, pa in rows:
        lines.append(f"| {name} | {n} | {'' if diff is None else f'{diff:.1e}'} | {e:.2f} | {pa:.2f} |")
    if coco is None:
        lines.append("")
        lines.append("(no COCO-17 keypoints in this data set: the COCO row needs a synthetic set with "
                     "Human36M_subject{S}_joint_3d_coco.json)")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lift_check.md").write_text(text + "\n")
    return {"rows": rows}


if __name__ == "__main__":
    main()
