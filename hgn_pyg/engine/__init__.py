"""Training and evaluation engine: loss, metrics, checkpoints, the trainer, evaluation, DDP.

The command-line tools :mod:`hgn_pyg.train` and :mod:`hgn_pyg.test` are thin wrappers around
these pieces; they can also be used from Python::

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
from hgn_pyg.engine import build
from hgn_pyg.engine.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from hgn_pyg.engine.distributed import DistContext, init_distributed
from hgn_pyg.engine.evaluator import evaluate, mean_pose_baseline, write_vis
from hgn_pyg.engine.losses import HGNLoss
from hgn_pyg.engine.metrics import ACTIONS, MetricAccumulator, format_table, mpjpe, pa_mpjpe, procrustes_align
from hgn_pyg.engine.trainer import Trainer, make_experiment_dir, seed_everything

__all__ = [
    "build", "HGNLoss", "ACTIONS", "mpjpe", "pa_mpjpe", "procrustes_align", "MetricAccumulator", "format_table",
    "save_checkpoint", "load_checkpoint", "capture_rng_state", "restore_rng_state", "DistContext",
    "init_distributed", "evaluate", "mean_pose_baseline", "write_vis", "Trainer", "make_experiment_dir",
    "seed_everything",
]
