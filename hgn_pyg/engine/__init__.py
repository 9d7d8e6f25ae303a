"""Training and evaluation engine: loss, metrics, optimisers, training state (resume), the trainer,
evaluation, DDP.

The command-line tools :mod:`hgn_pyg.cli.train` and :mod:`hgn_pyg.cli.evaluate` are thin wrappers
around these pieces; they can also be used from Python::

    from hgn_pyg.config import load_config
    from hgn_pyg.engine import build, Trainer, make_experiment_dir

    cfg = load_config("configs/hgn_synthetic.yaml")
    build.ensure_dataset(cfg)
    body = build.load_body(cfg)
    hierarchy = build.build_hierarchy(cfg, body)
    train_set, test_set = build.build_datasets(cfg, hierarchy, build.body_model_path(cfg))
    model = build.build_model(cfg, hierarchy, body)
    trainer = Trainer(cfg, make_experiment_dir(cfg.EXPERIMENT.output_root), model,
                      build.build_loss(cfg, hierarchy), train_set, test_set, hierarchy=hierarchy)
    results = trainer.fit()
"""
import importlib
from typing import Any

#: Public name -> the module that defines it. Imported on first use, so ``import hgn_pyg.engine``
#: (which importing any engine module implies) loads neither the trainer nor DDP.
_EXPORTS = {
    "HGNLoss": "losses",
    "ACTIONS": "metrics", "MetricAccumulator": "metrics", "format_table": "metrics", "mpjpe": "metrics",
    "pa_mpjpe": "metrics", "procrustes_align": "metrics",
    "save_checkpoint": "training_state", "load_checkpoint": "training_state",
    "capture_rng_state": "training_state", "restore_rng_state": "training_state",
    "DistContext": "distributed", "init_distributed": "distributed",
    "evaluate": "evaluator", "mean_pose_baseline": "evaluator", "write_vis": "evaluator",
    "Trainer": "trainer", "make_experiment_dir": "trainer", "seed_everything": "trainer",
}

__all__ = ["build", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name == "build":
        return importlib.import_module("hgn_pyg.engine.build")
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"hgn_pyg.engine.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'hgn_pyg.engine' has no attribute {name!r}")
