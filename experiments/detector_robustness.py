"""Detector robustness on the synthetic set: train a few HGN variants, test each on clean and
corrupted 2D input, and write the README tables.

    python -m experiments.detector_robustness --out bench_out/detector [--epochs 5] [--quick]

Trainings (``python -m hgn_pyg.train --config configs/hgn_synthetic.yaml`` with ``--set``
overrides, one after another; a finished one is reused on the next call):

=================  ===========================================================================
``gt``             the main job's recipe: ground-truth Human3.6M-17 2D input
``dropout``        + keypoint dropout (``AUG.keypoint_dropout=0.5``, ``AUG.max_dropped=3``)
``detector``       + detector-like augmentation (``AUG.detector_noise=0.25``, outliers 1 %,
                   swaps 1 % per pair, missing 1 % per joint; the settings of the detected-like
                   track) and keypoint dropout as ``dropout``
``detector_score`` as ``detector`` with the score as a third input channel (``MODEL.in_channels=3``)
``coco``           COCO-17 input (``DATASET.input_joint_set=coco17``; learned input node map)
=================  ===========================================================================

Test conditions, all on the synthetic S9/S11 test frames (the config's ``test_subsample``):
``gt`` the projected joints; ``detected`` the seeded detected-like track
(``data_2d_h36m_detected.npz``, read with ``DATASET.use_gt_input=false``); ``missing k`` the
projected joints with exactly ``k`` random joints per frame missing (seeded), filled by the
inference policy (:mod:`hgn_pyg.data.keypoints`); ``coco mapped`` the projected COCO-17 keypoints
through the hand mapping :func:`hgn_pyg.data.keypoints.coco_to_h36m` (H36M-input models);
``coco`` the projected COCO-17 keypoints (the COCO-input model).

Writes ``OUT/results.json`` and ``OUT/results.md`` (the tables, with the protocol and machine
load). ``--quick``: a tiny set (6 frames per sequence), 1 epoch, 16 hidden channels — a smoke
test of the whole pipeline, not a measurement.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

ROOT = Path(__file__).resolve().parents[1]

from hgn_pyg.config import Config, config_from_dict, load_config
from hgn_pyg.data.augment import drop_keypoints
from hgn_pyg.data.keypoints import apply_missing_policy, coco_to_h36m
from hgn_pyg.data.pose_dataset import PoseDataset
from hgn_pyg.engine import build
from hgn_pyg.engine.training_state import load_checkpoint
from hgn_pyg.engine.evaluator import evaluate, make_loader

log = logging.getLogger("detector_robustness")

DETECTOR = ["AUG.detector_noise=0.25", "AUG.outlier_prob=0.01", "AUG.swap_prob=0.01",
            "AUG.missing_prob=0.01"]
DROPOUT = ["AUG.keypoint_dropout=0.5", "AUG.max_dropped=3"]
#: run name -> --set overrides on top of the protocol's
RUNS: Dict[str, List[str]] = {
    "gt": [],
    "dropout": DROPOUT,
    "detector": DETECTOR + DROPOUT,
    "detector_score": DETECTOR + DROPOUT + ["MODEL.in_channels=3"],
    "coco": ["DATASET.input_joint_set=coco17"],
}
MISSING = (1, 2, 3)
DETECTED_FILE = "data_2d_h36m_detected.npz"


def protocol(args) -> List[str]:
    """The --set overrides every training shares. The main job's pose/view augmentation is off in
    every run: it re-projects the Human3.6M-17 target, so the COCO-17 run cannot have it, and the
    runs differ only in their 2D input."""
    out = [f"DATASET.root={args.root}", f"TRAIN.end_epoch={args.epochs}", "TEST.vis=false",
           "EXPERIMENT.progress=false", f"EXPERIMENT.seed={args.seed}", "EXPERIMENT.device=cpu",
           f"SYNTHETIC.frames={args.frames}", "AUG.pose_prob=0", "AUG.view_prob=0"]
    if args.quick:
        out += ["MODEL.hidden_channels=16", "TRAIN.max_train_samples=256", "TEST.max_samples=0"]
    return out


def train(name: str, args) -> Path:
    """Train run ``name`` (reused when ``OUT/runs/<name>/DONE`` exists); returns its checkpoint."""
    folder = Path(args.out) / "runs" / name
    done = folder / "DONE"
    if done.is_file():
        ckpt = Path(done.read_text().strip())
        if ckpt.is_file():
            log.info("%s: reusing %s", name, ckpt)
            return ckpt
    folder.mkdir(parents=True, exist_ok=True)
    sets = protocol(args) + [f"EXPERIMENT.output_root={folder}"] + RUNS[name]
    cmd = [sys.executable, "-m", "hgn_pyg.train", "--config", str(args.config)]
    for s in sets:
        cmd += ["--set", s]
    log.info("%s: %s", name, " ".join(cmd))
    tic = time.time()
    with open(folder / "train.out", "w") as fh:
        subprocess.run(cmd, check=True, stdout=fh, stderr=subprocess.STDOUT, cwd=str(ROOT))
    exps = sorted(folder.glob("exp_*"), key=lambda p: p.stat().st_mtime)
    ckpt = exps[-1] / "checkpoint" / "last.pth.tar"
    (folder / "seconds").write_text(f"{time.time() - tic:.0f}\n")
    done.write_text(str(ckpt) + "\n")
    return ckpt


def _with_input(ds, x: torch.Tensor, score: torch.Tensor) -> PoseDataset:
    tensors = dict(ds.tensors())
    tensors["input_2d"] = x.float().contiguous()
    tensors["score_2d"] = score.float().contiguous()
    return PoseDataset(tensors, ds.mesh_levels)


def test_sets(cfg: Config, seed: int) -> Dict[str, object]:
    """Every test condition's data set (joints only)."""
    def split(**dataset) -> PoseDataset:
        data = cfg.to_dict()
        data["DATASET"].update(dataset)
        c = config_from_dict(data, source=cfg.source)
        return build.build_dataset(c, "test")

    gt = split(input_joint_set="h36m", use_gt_input=True)
    sets: Dict[str, object] = {"gt": gt, "detected": split(use_gt_input=False, npz_2d=DETECTED_FILE,
                                                            input_joint_set="h36m")}
    base = gt.tensors()["input_2d"]
    for k in MISSING:
        gen = torch.Generator().manual_seed(seed * 1000 + k)
        x, score = drop_keypoints(base, torch.ones(base.shape[:2]), k, 1.0, gen, exact=True)
        filled, missing = apply_missing_policy(x, score, joint_set="h36m")
        sets[f"missing {k}"] = _with_input(gt, filled, torch.where(missing, 0.0, score))
    coco = split(input_joint_set="coco17", use_gt_input=True)
    sets["coco"] = coco
    mapped, _ = coco_to_h36m(coco.tensors()["input_2d"])
    sets["coco mapped"] = _with_input(coco, mapped, torch.ones(mapped.shape[:2]))
    return sets


def evaluate_run(ckpt: Path, sets: Dict[str, object], conditions: Sequence[str]) -> Dict[str, dict]:
    """The run's figures per condition, cached beside the checkpoint's run folder
    (``runs/<name>/eval.json``, keyed by the checkpoint path and its modification time)."""
    cache = ckpt.parents[2] / "eval.json"
    key = f"{ckpt}@{ckpt.stat().st_mtime_ns}"
    if cache.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("key") == key and all(c in saved["results"] for c in conditions):
            return {c: saved["results"][c] for c in conditions}
    out = _evaluate_run(ckpt, sets, conditions)
    cache.write_text(json.dumps({"key": key, "results": out}, indent=2) + "\n")
    return out


def _evaluate_run(ckpt: Path, sets: Dict[str, object], conditions: Sequence[str]) -> Dict[str, dict]:
    state = load_checkpoint(ckpt, map_location="cpu")
    cfg = config_from_dict(state["config"], source=str(ckpt))
    hierarchy = build.build_hierarchy(cfg)
    model = build.model_from_checkpoint(state, cfg, hierarchy, path=str(ckpt))
    out = {}
    for cond in conditions:
        loader = make_loader(sets[cond], cfg.TEST.batch_size)
        res = evaluate(model, loader, torch.device("cpu"), **build.test_options(cfg))
        out[cond] = {"MPJPE": res["MPJPE"], "PA-MPJPE": res["PA-MPJPE"],
                     "num_samples": res.get("num_samples")}
        log.info("%s on %s: MPJPE %.2f mm, PA-MPJPE %.2f mm", ckpt.parents[2].name, cond,
                 res["MPJPE"], res["PA-MPJPE"])
    return out


def conditions_of(name: str) -> List[str]:
    if name == "coco":
        return ["coco"]
    return ["gt", "detected"] + [f"missing {k}" for k in MISSING] + ["coco mapped"]


def tables(results: Dict[str, Dict[str, dict]], meta: Dict[str, object]) -> str:
    def cell(run: str, cond: str, key: str = "MPJPE") -> str:
        r = results.get(run, {}).get(cond)
        return "—" if r is None else f"{r[key]:.1f}"

    lines = [f"Protocol: {meta['protocol']}", ""]
    lines += ["| trained on | tested on GT 2D: MPJPE | PA-MPJPE | tested on detected-like 2D: MPJPE "
              "| PA-MPJPE |", "|---|---:|---:|---:|---:|"]
    for run, label in (("gt", "ground-truth 2D"), ("dropout", "GT 2D + keypoint dropout"),
                       ("detector", "detector augmentation"),
                       ("detector_score", "detector augmentation, score channel")):
        if run in results:
            lines.append(f"| {label} | {cell(run, 'gt')} | {cell(run, 'gt', 'PA-MPJPE')} | "
                         f"{cell(run, 'detected')} | {cell(run, 'detected', 'PA-MPJPE')} |")
    lines += ["", "| trained on | MPJPE, 0 missing | 1 missing | 2 missing | 3 missing |",
              "|---|---:|---:|---:|---:|"]
    for run, label in (("gt", "ground-truth 2D"), ("dropout", "GT 2D + keypoint dropout"),
                       ("detector", "detector augmentation"),
                       ("detector_score", "detector augmentation, score channel")):
        if run in results:
            lines.append(f"| {label} | {cell(run, 'gt')} | " + " | ".join(
                cell(run, f"missing {k}") for k in MISSING) + " |")
    lines += ["", "| COCO-17 input | MPJPE | PA-MPJPE |", "|---|---:|---:|"]
    if "gt" in results:
        lines.append(f"| hand mapping COCO→H36M, model trained on H36M-17 (`gt`) | "
                     f"{cell('gt', 'coco mapped')} | {cell('gt', 'coco mapped', 'PA-MPJPE')} |")
        lines.append(f"| (same model on H36M-17 input, for reference) | {cell('gt', 'gt')} | "
                     f"{cell('gt', 'gt', 'PA-MPJPE')} |")
    if "coco" in results:
        lines.append(f"| model trained on COCO-17 input (`coco`) | {cell('coco', 'coco')} | "
                     f"{cell('coco', 'coco', 'PA-MPJPE')} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="bench_out/detector", help="runs and results go here")
    p.add_argument("--root", default=None, help="synthetic data root (default OUT/synthetic; "
                   "generated when missing)")
    p.add_argument("--config", default=str(ROOT / "configs" / "hgn_synthetic.yaml"))
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--frames", type=int, default=50, help="frames per synthetic sequence")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    p.add_argument("--eval-only", action="store_true", help="evaluate the finished runs only")
    p.add_argument("--quick", action="store_true", help="tiny smoke run (not a measurement)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.quick:
        args.frames, args.epochs = 6, 1
    out = Path(args.out)
    args.root = str(Path(args.root) if args.root else out / "synthetic")
    out.mkdir(parents=True, exist_ok=True)
    if not Path(args.root).exists():
        from hgn_pyg.data import synthetic

        synthetic.generate(args.root, frames=args.frames, seed=args.seed)
    ckpts = {}
    for name in args.runs:
        done = out / "runs" / name / "DONE"
        if args.eval_only:
            if done.is_file():
                ckpts[name] = Path(done.read_text().strip())
            continue
        ckpts[name] = train(name, args)
    cfg = load_config(args.config, protocol(args))
    sets = test_sets(cfg, args.seed)
    results = {name: evaluate_run(ck, sets, conditions_of(name)) for name, ck in ckpts.items()}
    meta = {
        "protocol": (f"configs/hgn_synthetic.yaml, {args.frames} frames per sequence "
                     f"({len(sets['gt'])} test frames, S9/S11), {args.epochs} epochs, seed "
                     f"{args.seed}, CPU, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
                     f", load average at the end {os.getloadavg()[0]:.1f}"
                     + (" (--quick: not a measurement)" if args.quick else "")),
        "runs": {name: RUNS[name] for name in ckpts},
        "train_seconds": {name: (out / "runs" / name / "seconds").read_text().strip()
                          for name in ckpts if (out / "runs" / name / "seconds").is_file()},
        "command": "python -m experiments.detector_robustness " + " ".join(argv if argv is not None
                                                                           else sys.argv[1:]),
    }
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    text = tables(results, meta)
    (out / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
