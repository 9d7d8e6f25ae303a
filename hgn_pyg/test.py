"""Evaluate HGN: ``python -m hgn_pyg.test --config FILE --checkpoint PATH [--out DIR] [--set ...] [--debug]``.

``PATH`` is a checkpoint of ours (``checkpoint/last.pth.tar`` / ``best.pth.tar``) or the
published ``final.pth.tar`` (loaded through ``HGN.from_official``).  Prints MPJPE and
PA-MPJPE (mm) per action beside the mean-pose baseline and writes ``results.json``
(``{"MPJPE", "PA-MPJPE", "per_action", "num_samples", "baseline", ...}``) into a new
``<EXPERIMENT.output_root>/exp_<UTC timestamp>/`` folder, or ``--out DIR``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["main", "build_parser", "run_test"]

log = logging.getLogger("hgn_pyg.test")


def build_parser() -> argparse.ArgumentParser:
    from hgn_pyg.engine.cli import add_common_arguments

    p = argparse.ArgumentParser(prog="python -m hgn_pyg.test", description=__doc__.split("\n")[0])
    p.add_argument("--config", metavar="FILE", required=True, help="YAML config (data set, model)")
    p.add_argument("--checkpoint", metavar="PATH", help="checkpoint to evaluate (default: TEST.weight_path)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: a new exp_<timestamp> folder)")
    add_common_arguments(p)
    return p


def _run(args: argparse.Namespace) -> int:
    from hgn_pyg.config import load_config

    cfg = load_config(args.config, args.set, check_data=True)
    return run_test(cfg, args.checkpoint, args.out)


def run_test(cfg, checkpoint: Optional[str] = None, out: Optional[str] = None) -> int:
    """Evaluate ``checkpoint`` (default ``TEST.weight_path``) with the data and model of ``cfg``
    (a :class:`~hgn_pyg.config.Config` from a file, or from elsewhere); results into ``out``."""
    from hgn_pyg.config import config_from_dict
    from hgn_pyg.engine import build, pipeline
    from hgn_pyg.engine.checkpoint import is_official_checkpoint, load_checkpoint
    from hgn_pyg.engine.evaluator import evaluate, make_loader, mean_pose_baseline, write_vis
    from hgn_pyg.engine.metrics import format_table
    from hgn_pyg.engine.trainer import make_experiment_dir, setup_logging, write_results
    from hgn_pyg.errors import CheckpointError, ConfigError

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
        stored_set = ckpt["config"].get("DATASET", {}).get("input_joint_set", "human36")
        if stored_set != cfg.DATASET.input_joint_set:
            log.info("using DATASET.input_joint_set %r stored in %s", stored_set, ckpt_path)
            cfg = config_from_dict({"DATASET": {"input_joint_set": stored_set}}, source=cfg.source, base=cfg)
    mean_pose = ckpt.get("mean_pose")
    splits = ("test",) if mean_pose is not None else ("test", "train")
    run = pipeline.prepare(cfg, splits=splits, mesh_splits=("test",) if cfg.TEST.vis else (), checkpoint=ckpt,
                           checkpoint_path=str(ckpt_path), with_loss=False)
    cfg, model, test_set = run.cfg, run.model.to(device), run.test_set

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
        results = evaluate(model, loader, device, progress=cfg.EXPERIMENT.progress)
        baseline = mean_pose_baseline(mean_pose, loader)
        results["baseline"] = baseline
        results["checkpoint"] = str(ckpt_path)
        if cfg.TEST.vis:
            from hgn_pyg.graphs.skeleton import skeleton_graph

            write_vis(model, test_set, run.hierarchy, cfg.MODEL.mesh_levels, skeleton_graph("h36m").bones.tolist(),
                      out_dir / "vis", device, cfg.TEST.vis_samples)
        write_results(out_dir / "results.json", results)
    print(format_table(results, baseline))
    print(f"results: {out_dir / 'results.json'}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    from hgn_pyg.engine.cli import run_cli

    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args), args.debug, "hgn_pyg.test")


if __name__ == "__main__":
    sys.exit(main())
