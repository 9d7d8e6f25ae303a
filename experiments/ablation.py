#!/usr/bin/env python
"""HGN ablations on the synthetic set: does the hierarchy help, does the mesh constraint help?

Trains and evaluates a list of variants with the same data (one data set object, built once
with mesh targets at every level any variant needs), the same seed (the same initial RNG state,
the same shuffling of every epoch) and the same recipe (the published loss, optimiser and
learning-rate schedule; ``configs/hgn_synthetic.yaml``), each through hgn_pyg's own
:class:`~hgn_pyg.engine.Trainer`:

==================  ===============================================================
``skeleton``        ``mesh_levels: []`` -- the skeleton-only network (SemGCN with
                    non-local blocks)
``17+L8``           one mesh branch (level 8; 48 slots on SMPL)
``17+L8+L7``        the published model (levels 8, 7; 48 + 96 slots on SMPL)
``17+L8+L7+L6``     a third mesh branch (level 6; 192 slots on SMPL)
``17+L8+...+L5``    a fourth (level 5; 384 slots on SMPL); 5 layers, the fewest
                    this schedule allows (docs/published_model.md §10)
``pool``            the published levels with ``fusion: pool`` instead of the learned
                    node-mixing maps
``no mesh loss``    the published model trained with ``mesh_loss_weights: [0, 0]``
==================  ===============================================================

Columns: test MPJPE and PA-MPJPE (mm, sample means) of the last epoch and of the best epoch
(chosen by the published rule, ``hgn_pyg.engine.trainer.BEST_RULE`` -- on the test set, as
published, so "best" flatters every variant alike), parameters, training seconds per epoch
(the training pass alone, evaluation excluded) and inference poses/s (eval mode, no grad,
batch 256, median of timed calls). Outputs ``ablation.csv`` and ``ablation.md`` in ``--out``.

Usage::

    python -m experiments.ablation --quick            # 12 short epochs, about 11 min on 2 cores
    python -m experiments.ablation                    # the full synthetic protocol (hours on a CPU)
"""
from __future__ import annotations

import argparse
import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]

import torch
from torch.utils.data import Dataset

from benchmarks import _common as common

log = logging.getLogger("ablation")

CSV_COLUMNS = ["variant", "mesh_levels", "slots", "fusion", "mesh_loss", "num_layers", "parameters",
               "last_epoch", "last_MPJPE", "last_PA-MPJPE", "best_epoch", "best_MPJPE", "best_PA-MPJPE",
               "train_s_per_epoch", "infer_poses_per_s"]


@dataclass
class Variant:
    name: str
    mesh_levels: List[int]
    num_layers: int = 4
    fusion: str = "official"
    mesh_loss: bool = True
    overrides: List[str] = field(default_factory=list)

    def sets(self) -> List[str]:
        weights = "null" if self.mesh_loss else "[" + ", ".join("0" for _ in self.mesh_levels) + "]"
        return [f"MODEL.mesh_levels={list(self.mesh_levels)}", f"MODEL.num_layers={self.num_layers}",
                f"MODEL.fusion={self.fusion}", f"TRAIN.mesh_loss_weights={weights}", *self.overrides]


VARIANTS: List[Variant] = [
    Variant("skeleton", []),
    Variant("17+L8", [8]),
    Variant("17+L8+L7 (published)", [8, 7]),
    Variant("17+L8+L7+L6", [8, 7, 6]),
    Variant("17+L8+L7+L6+L5", [8, 7, 6, 5], num_layers=5),
    Variant("17+L8+L7, fusion pool", [8, 7], fusion="pool"),
    Variant("17+L8+L7, no mesh loss", [8, 7], mesh_loss=False),
]

#: Synthetic frames per sequence, epochs, training / test samples (0 = all) and hidden width per
#: protocol. ``quick`` (12 epochs) took 641 s on 2 cores (the 5-branch model with learned
#: node-mixing maps dominates); ``full`` is the synthetic config's data with 30 epochs.
PROTOCOLS = {
    "quick": dict(frames=30, epochs=12, train_samples=960, test_samples=320, hidden=64),
    "full": dict(frames=50, epochs=30, train_samples=0, test_samples=0, hidden=128),
}


class MeshLevelSelect(Dataset):
    """The items of ``base`` (built with mesh targets at ``base_levels``) with the mesh targets of
    ``levels`` only, in that order (``()``: items without meshes)."""

    def __init__(self, base: Dataset, base_levels: Sequence[int], levels: Sequence[int]):
        self.base = base
        self.index = [list(base_levels).index(lv) for lv in levels]

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        item = dict(self.base[i])
        meshes = item.get("meshes")
        item["meshes"] = tuple(meshes[k] for k in self.index) if meshes is not None and self.index else None
        return item


def inference_poses_per_s(model: torch.nn.Module, test_set: Dataset, batch: int = 256) -> float:
    from hgn_pyg.engine.build import collate

    items = [test_set[i % len(test_set)] for i in range(batch)]
    x = collate(items).input_2d
    model.eval()
    with torch.no_grad():
        t = common.time_call(lambda: model(x), torch.device("cpu"), warmup=2, min_repeats=5, budget_s=2.0)
    return batch / (t.median_ms / 1e3)


def run_variant(v: Variant, base_cfg, hierarchy, body, train_base, test_base, base_levels, out: Path) -> Dict:
    from hgn_pyg.config import apply_overrides
    from hgn_pyg.engine import build
    from hgn_pyg.engine.trainer import Trainer, make_experiment_dir, seed_everything

    cfg = apply_overrides(base_cfg, v.sets())
    train_set = MeshLevelSelect(train_base, base_levels, v.mesh_levels)
    test_set = MeshLevelSelect(test_base, base_levels, v.mesh_levels)
    seed_everything(cfg.EXPERIMENT.seed)
    model = build.build_model(cfg, hierarchy, body)
    loss_fn = build.build_loss(cfg, hierarchy)
    exp = make_experiment_dir(out / "runs", prefix="run")
    trainer = Trainer(cfg, exp, model, loss_fn, train_set, test_set, hierarchy=hierarchy)
    tic = time.time()
    res = trainer.fit()
    train_times = [r["train_time_s"] for r in trainer.history]
    best = res.get("best") or {}
    row = {
        "variant": v.name,
        "mesh_levels": " ".join(str(lv) for lv in v.mesh_levels) or "-",
        "slots": "+".join(["17"] + [str(hierarchy.num_slots[lv]) for lv in v.mesh_levels]),
        "fusion": v.fusion if v.mesh_levels else "-",
        "mesh_loss": ("yes" if v.mesh_loss else "no") if v.mesh_levels else "-",
        "num_layers": v.num_layers,
        "parameters": sum(p.numel() for p in model.parameters()),
        "last_epoch": res["epoch"],
        "last_MPJPE": res["MPJPE"],
        "last_PA-MPJPE": res["PA-MPJPE"],
        "best_epoch": best.get("epoch"),
        "best_MPJPE": best.get("MPJPE"),
        "best_PA-MPJPE": best.get("PA-MPJPE"),
        "train_s_per_epoch": sum(train_times) / max(len(train_times), 1),
        "infer_poses_per_s": inference_poses_per_s(model, test_set),
    }
    log.info("%s: last %.2f mm, best %s mm, %.1f s/epoch, %.0f poses/s (%.0f s in all)", v.name,
             row["last_MPJPE"], "-" if row["best_MPJPE"] is None else f"{row['best_MPJPE']:.2f}",
             row["train_s_per_epoch"], row["infer_poses_per_s"], time.time() - tic)
    return row


def markdown(rows: List[Dict], header_lines: List[str]) -> str:
    head = ["variant", "slots", "layers", "params", "MPJPE last", "PA-MPJPE last", "MPJPE best (epoch)",
            "PA-MPJPE best", "train s/epoch", "infer poses/s"]

    def num(value, digits=2):
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"

    table = [
        [r["variant"], r["slots"], r["num_layers"], f"{r['parameters']:,}", num(r["last_MPJPE"]),
         num(r["last_PA-MPJPE"]),
         "-" if r["best_MPJPE"] is None else f"{r['best_MPJPE']:.2f} ({r['best_epoch']})",
         num(r["best_PA-MPJPE"]), num(r["train_s_per_epoch"], 1), num(r["infer_poses_per_s"], 0)]
        for r in rows]
    return "\n".join(header_lines) + "\n\n" + common.markdown_table(head, table) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="reduced protocol (< 15 min on 2 cores)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "ablation")
    p.add_argument("--data", type=Path, default=None,
                   help="synthetic data folder (made when missing; default: <out>/data_<protocol>)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--train-samples", type=int, default=None, help="training samples (0 = all)")
    p.add_argument("--test-samples", type=int, default=None, help="test samples (0 = all)")
    p.add_argument("--frames", type=int, default=None, help="synthetic frames per sequence")
    p.add_argument("--hidden", type=int, default=None, help="hidden channels C (published: 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default="", help="comma-separated variant indices (default: all)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("hgn_pyg").setLevel(logging.WARNING)
    threads = common.set_threads(args.threads)

    from hgn_pyg.config import apply_overrides, load_config
    from hgn_pyg.engine import build

    proto_name = "quick" if args.quick else "full"
    proto = dict(PROTOCOLS[proto_name])
    for key in ("epochs", "train_samples", "test_samples", "frames", "hidden"):
        if getattr(args, key) is not None:
            proto[key] = getattr(args, key)
    variants = VARIANTS if not args.variants else [VARIANTS[int(i)] for i in args.variants.split(",")]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "runs", ignore_errors=True)  # our own scratch folder
    data = args.data or out / f"data_{proto_name}_f{proto['frames']}"
    all_levels = sorted({lv for v in variants for lv in v.mesh_levels}, reverse=True)
    base_cfg = apply_overrides(load_config(ROOT / "configs" / "hgn_synthetic.yaml"), [
        f"DATASET.root={data}", f"SYNTHETIC.frames={proto['frames']}", f"SYNTHETIC.seed={args.seed}",
        f"EXPERIMENT.seed={args.seed}", "EXPERIMENT.device=cpu", "EXPERIMENT.progress=false",
        "EXPERIMENT.log_level=WARNING", f"EXPERIMENT.output_root={out / 'runs'}", "TEST.vis=false",
        f"TRAIN.end_epoch={proto['epochs']}", f"TRAIN.max_train_samples={proto['train_samples']}",
        f"TEST.max_samples={proto['test_samples']}", f"MODEL.hidden_channels={proto['hidden']}",
        f"MODEL.mesh_levels={all_levels}", f"MODEL.num_layers={max(4, len(all_levels) + 1)}"])
    tic = time.time()
    build.ensure_dataset(base_cfg)
    body = build.load_body(base_cfg)
    hierarchy = build.build_hierarchy(base_cfg, body)
    train_base, test_base = build.build_datasets(base_cfg, hierarchy, build.body_model_path(base_cfg))
    log.info("data: %d training, %d test samples (%s), ready in %.0f s", len(train_base), len(test_base),
             data, time.time() - tic)

    rows = []
    for v in variants:
        rows.append(run_variant(v, base_cfg, hierarchy, body, train_base, test_base, all_levels, out))
        common.write_csv(rows, out / "ablation.csv", CSV_COLUMNS)  # after every variant
    info = common.machine_info(torch.device("cpu"))
    header = [
        f"Protocol `{proto_name}`: synthetic Human3.6M-format set (open body model), "
        f"{proto['frames']} frames per sequence, {len(train_base)} training / {len(test_base)} test samples, "
        f"{proto['epochs']} epochs, batch {base_cfg.TRAIN.batch_size}, hidden {proto['hidden']}, "
        f"published loss / Adam / schedule, "
        f"seed {args.seed}, one run per variant.",
        f"Machine: {info['cpu']}, {info['cores (os.cpu_count)']} cores, {threads} torch threads, "
        f"load average {info['load average (1/5/15 min)']} at the end; torch {info['torch']}. "
        f"Total {time.time() - tic:.0f} s.",
        "Slots are those of the open body model's hierarchy (SMPL: 48, 96, 192, 384).",
    ]
    text = markdown(rows, header)
    (out / "ablation.md").write_text(text)
    print(text)
    print(f"wrote {out / 'ablation.csv'} and {out / 'ablation.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
