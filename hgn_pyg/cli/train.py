"""Train HGN: ``python -m hgn_pyg.train --config FILE [--set SECTION.key=value ...] [--resume EXP_DIR] [--debug]``.

A new run writes ``<EXPERIMENT.output_root>/exp_<UTC timestamp>/`` (config.yaml, train.log,
checkpoint/, graph/, vis/, results.json).  ``--resume EXP_DIR`` continues that run from
``checkpoint/last.pth.tar`` with its ``config.yaml`` (``--set`` may change e.g.
``TRAIN.end_epoch``).  Multi-process: ``torchrun --nproc_per_node N -m hgn_pyg.train ...``.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Sequence

from hgn_pyg.cli.common import add_common_arguments, run_cli, setup_logging
from hgn_pyg.config import load_config
from hgn_pyg.engine import build, pipeline
from hgn_pyg.engine.distributed import cleanup, init_distributed
from hgn_pyg.engine.metrics import format_table
from hgn_pyg.engine.trainer import Trainer, make_experiment_dir
from hgn_pyg.errors import CheckpointError, ConfigError
from hgn_pyg.graphs.skeleton import skeleton_graph

__all__ = ["main", "build_parser"]

log = logging.getLogger("hgn_pyg.train")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hgn_pyg.train", description=__doc__.split("\n")[0])
    p.add_argument("--config", metavar="FILE", help="YAML config (with --resume: default EXP_DIR/config.yaml)")
    p.add_argument("--resume", metavar="EXP_DIR", help="continue the run in EXP_DIR from checkpoint/last.pth.tar")
    add_common_arguments(p)
    return p


def _run(args: argparse.Namespace) -> int:
    exp_dir: Optional[Path] = None
    if args.resume:
        exp_dir = Path(args.resume).absolute()
        if not exp_dir.is_dir():
            raise ConfigError(f"--resume {exp_dir}: experiment folder not found")
        saved = exp_dir / "config.yaml"
        if not saved.is_file() and not args.config:
            raise ConfigError(f"--resume {exp_dir}: no config.yaml in the experiment folder (pass --config)")
        if not (exp_dir / "checkpoint" / "last.pth.tar").is_file():
            raise CheckpointError(f"--resume {exp_dir}: no checkpoint/last.pth.tar (the run stopped before its "
                                  "first epoch ended); start a new run instead")
        cfg = load_config(args.config or saved, args.set, check_data=True)
    else:
        if not args.config:
            raise ConfigError("--config FILE is required (or --resume EXP_DIR)")
        cfg = load_config(args.config, args.set, check_data=True)
    cfg = pipeline.resolve_paths(cfg)

    ctx = init_distributed(cfg.EXPERIMENT.device)
    try:
        with contextlib.ExitStack() as stack:
            setup_logging(None, cfg.EXPERIMENT.log_level, ctx.is_main)
            if exp_dir is not None and ctx.is_main:
                pipeline.open_experiment(exp_dir, stack)  # a second --resume stops here
            run = pipeline.prepare(cfg, ctx, initial_weights=not args.resume)
            cfg = run.cfg
            # everything is checked: only now is anything of the experiment written
            if exp_dir is None:
                exp_dir = ctx.broadcast_object(make_experiment_dir(cfg.EXPERIMENT.output_root)
                                               if ctx.is_main else None)
                if ctx.is_main:
                    pipeline.open_experiment(exp_dir, stack)
                    cfg.save(exp_dir / "config.yaml")
            elif ctx.is_main:
                _record_changed_config(cfg, exp_dir)
            setup_logging(exp_dir / "train.log", cfg.EXPERIMENT.log_level, ctx.is_main)
            with pipeline.fatal_errors_logged():
                log.info("experiment folder: %s", exp_dir)
                if run.initial_weights:
                    log.info("initial weights from %s", run.initial_weights)
                log.info("data: %d training, %d test samples (%s)", len(run.train_set), len(run.test_set),
                         cfg.data_root())
                nparams = sum(p.numel() for p in run.model.parameters())
                log.info("model: %s, %d parameters; device %s, %d process(es)", type(run.model).__name__,
                         nparams, ctx.device, ctx.world_size)

                bones = skeleton_graph("h36m").bones.tolist()
                trainer = Trainer(cfg, exp_dir, run.model, run.loss_fn, run.train_set, run.test_set, ctx,
                                  hierarchy=run.hierarchy, bones=bones,
                                  model_record=build.model_record(cfg, run.hierarchy, run.body))
                if args.resume:
                    trainer.resume()
                results = trainer.fit()
            if ctx.is_main:
                print(format_table(results, results.get("baseline")))
                print(f"results: {exp_dir / 'results.json'}")
    finally:
        cleanup(ctx)
    return 0


def _record_changed_config(cfg, exp_dir: Path) -> None:
    """On ``--resume`` with another configuration, keep it beside the original config.yaml."""
    saved = exp_dir / "config.yaml"
    saved_cfg = load_config(saved) if saved.is_file() else None
    if saved_cfg is None or saved_cfg.to_dict() != cfg.to_dict():
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")
        path = exp_dir / f"config_resume_{stamp}.yaml"
        cfg.save(path)
        log.info("resuming with a changed configuration; saved as %s", path.name)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args), args.debug, "hgn_pyg.train")


if __name__ == "__main__":
    sys.exit(main())
