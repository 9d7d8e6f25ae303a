"""Evaluate HGN: ``python -m hgn_pyg.test [--config FILE] --checkpoint PATH [--out DIR] [--set ...] [--debug]``.

``PATH`` is a checkpoint of ours (``checkpoint/last.pth.tar`` / ``best.pth.tar``) or the
published ``final.pth.tar`` (loaded through ``HGN.from_official``). Without ``--config`` the
configuration stored in the checkpoint is used (``--set`` may still override it, e.g. data paths);
the model's architecture always comes from the checkpoint when it records one.  Prints MPJPE and
PA-MPJPE (mm) per action beside the mean-pose baseline, with both averages (over samples —
the paper's figure — and over the per-action means), and writes ``results.json``
(``{"MPJPE", "PA-MPJPE", "MPJPE_action_mean", "PA-MPJPE_action_mean", "MPJPE_batch_mean",
"per_action", "num_samples", "epoch", "selected_as_best", "baseline", ...}``) into a new
``<EXPERIMENT.output_root>/exp_<UTC timestamp>/`` folder, or ``--out DIR``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from hgn_pyg.cli.common import add_common_arguments, run_cli, setup_logging
from hgn_pyg.config import apply_overrides, check_paths, config_from_dict, load_config
from hgn_pyg.data.input_2d import joint_set_name
from hgn_pyg.engine import build, pipeline
from hgn_pyg.engine.evaluator import evaluate, make_loader, mean_pose_baseline, write_vis
from hgn_pyg.engine.metrics import format_table
from hgn_pyg.engine.trainer import BEST_RULE, make_experiment_dir, write_results
from hgn_pyg.engine.training_state import check_training_fields, is_official_checkpoint, load_checkpoint
from hgn_pyg.errors import CheckpointError, ConfigError
from hgn_pyg.graphs.skeleton import skeleton_graph

__all__ = ["main", "build_parser", "run_test"]

log = logging.getLogger("hgn_pyg.test")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hgn_pyg.test", description=__doc__.split("\n")[0])
    p.add_argument("--config", metavar="FILE",
                   help="YAML config (data set, model); default: the one stored in the checkpoint")
    p.add_argument("--checkpoint", metavar="PATH", help="checkpoint to evaluate (default: TEST.weight_path)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: a new exp_<timestamp> folder)")
    add_common_arguments(p)
    return p


def _stored_config(ckpt_path: Path, overrides):
    """The configuration stored in the checkpoint at ``ckpt_path``, with ``--set`` overrides."""
    stored = load_checkpoint(ckpt_path, map_location="cpu").get("config")
    if not isinstance(stored, dict) or "DATASET" not in stored:
        raise ConfigError(f"{ckpt_path}: the checkpoint stores no data configuration; pass --config FILE")
    try:
        cfg = config_from_dict(stored, source=f"{ckpt_path} (stored config)")
    except ConfigError as exc:
        raise CheckpointError(f"{ckpt_path}: its stored configuration is invalid: {exc}") from None
    cfg = apply_overrides(cfg, overrides)
    cfg.source = f"{ckpt_path} (stored config)"
    check_paths(cfg)
    return cfg


def _run(args: argparse.Namespace) -> int:
    if args.config:
        cfg = load_config(args.config, args.set, check_data=True)
    elif not args.checkpoint:
        raise ConfigError("give --checkpoint PATH (and --config FILE for a checkpoint without a stored configuration)")
    elif not Path(args.checkpoint).is_file():
        raise CheckpointError(f"{args.checkpoint}: checkpoint file not found")
    else:
        cfg = _stored_config(Path(args.checkpoint), args.set)
    return run_test(cfg, args.checkpoint, args.out)


def run_test(cfg, checkpoint: Optional[str] = None, out: Optional[str] = None) -> int:
    """Evaluate ``checkpoint`` (default ``TEST.weight_path``) with the data and model of ``cfg``
    (a :class:`~hgn_pyg.config.Config` from a file, or from elsewhere); results into ``out``."""
    cfg = pipeline.resolve_paths(cfg)
    ckpt_path = checkpoint or cfg.TEST.weight_path
    if not ckpt_path:
        raise ConfigError(f"{cfg.source}: TEST.weight_path: no checkpoint given (use --checkpoint PATH)")
    ckpt_path = Path(ckpt_path).absolute()
    if not ckpt_path.is_file():
        raise CheckpointError(f"{ckpt_path}: checkpoint file not found")
    out_dir = Path(out).absolute() if out else None
    if out_dir is not None and (out_dir / "results.json").exists():
        raise ConfigError(f"--out {out_dir}: already holds a results.json; choose another folder")
    device = build.resolve_device(cfg.EXPERIMENT.device)
    ckpt = load_checkpoint(ckpt_path, map_location="cpu")
    if not is_official_checkpoint(ckpt):
        check_training_fields(ckpt, str(ckpt_path))
    setup_logging(None, cfg.EXPERIMENT.log_level)

    if not is_official_checkpoint(ckpt) and isinstance(ckpt.get("config"), dict):
        # the architecture comes from the checkpoint's own MODEL section
        try:
            saved = config_from_dict({"MODEL": ckpt["config"].get("MODEL", {})}, source=f"{ckpt_path} (config)")
        except ConfigError as exc:
            raise CheckpointError(f"{ckpt_path}: its stored configuration is invalid: {exc}") from None
        if saved.MODEL != cfg.MODEL:
            log.info("using the MODEL section stored in %s", ckpt_path)
            cfg.MODEL = saved.MODEL
        # the input keypoint set is part of the architecture (the input node map) too
        stored_set = joint_set_name(ckpt["config"].get("DATASET", {}).get("input_joint_set", "h36m"))
        if stored_set != cfg.DATASET.input_joint_set:
            log.info("using DATASET.input_joint_set %r stored in %s", stored_set, ckpt_path)
            cfg = config_from_dict({"DATASET": {"input_joint_set": stored_set}}, source=cfg.source, base=cfg)
    mean_pose = ckpt.get("mean_pose")
    splits = ("test",) if mean_pose is not None else ("test", "train")
    run = pipeline.prepare(cfg, splits=splits, mesh_splits=("test",) if cfg.TEST.vis else (), checkpoint=ckpt,
                           checkpoint_path=str(ckpt_path), with_loss=False)
    cfg, model, test_set = run.cfg, run.model.to(device), run.test_set
    from hgn_pyg.models.checkpoint import check_finite_weights

    check_finite_weights(model, str(ckpt_path))  # NaN weights: one line, before any folder exists
    if out_dir is not None:
        links = [n for n in ("config.yaml", "test.log", "results.json") if (out_dir / n).is_symlink()]
        if links:
            raise ConfigError(f"--out {out_dir}: {', '.join(links)} is a symbolic link; hgn_pyg.test never "
                              "writes through one (remove it or choose another folder)")

    # everything is checked: only now is the output folder written
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    else:
        out_dir = make_experiment_dir(cfg.EXPERIMENT.output_root)
    if not (out_dir / "config.yaml").exists():
        cfg.save(out_dir / "config.yaml")
    setup_logging(out_dir / "test.log", cfg.EXPERIMENT.log_level)
    with pipeline.fatal_errors_logged():
        log.info("output folder: %s", out_dir)
        loader = make_loader(test_set, cfg.TEST.batch_size, cfg.DATASET.workers)
        if mean_pose is None:
            log.info("computing the training mean pose for the baseline")
            mean_pose = build.train_mean_pose(run.train_set)
        results = evaluate(model, loader, device, progress=cfg.EXPERIMENT.progress, **build.test_options(cfg))
        baseline = mean_pose_baseline(mean_pose, loader)
        results["baseline"] = baseline
        results["checkpoint"] = str(ckpt_path)
        if cfg.TEST.vis:
            faces = {lv: run.hierarchy.coarsen_faces(np.asarray(run.body.faces, dtype=np.int64), lv)
                     for lv in cfg.MODEL.mesh_levels}
            write_vis(model, test_set, run.hierarchy, cfg.MODEL.mesh_levels, skeleton_graph("h36m").bones.tolist(),
                      out_dir / "vis", device, cfg.TEST.vis_samples, faces=faces)
        # which epoch this is: ours record it (and whether it is the best one by the trainer's rule);
        # the published final.pth.tar is that code's best epoch (docs/published_model.md §4)
        epoch = ckpt.get("epoch")
        results["epoch"] = int(epoch) if isinstance(epoch, int) else None
        if is_official_checkpoint(ckpt):
            results["selected_as_best"] = True
            results["best_rule"] = "the published training code's (docs/published_model.md §4)"
        else:
            results["selected_as_best"] = bool(isinstance(epoch, int) and epoch == ckpt.get("best_epoch"))
            results["best_rule"] = BEST_RULE
        log.info("checkpoint epoch %s (%s)", results["epoch"],
                 "the best epoch by " + results["best_rule"] if results["selected_as_best"]
                 else "not the best epoch")
        write_results(out_dir / "results.json", results)
    print(format_table(results, baseline))
    print(f"results: {out_dir / 'results.json'}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args), args.debug, "hgn_pyg.test")


if __name__ == "__main__":
    sys.exit(main())
