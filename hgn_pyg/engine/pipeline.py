"""One run pipeline for ``hgn_pyg.train`` and ``hgn_pyg.test``: everything is checked before anything
is written.

The steps, in order (each raises a :class:`~hgn_pyg.errors.HGNError` naming the file or key at
fault, and nothing of the experiment exists yet when one does):

1. :func:`resolve_paths` — every path of the config made absolute once (``~`` expanded, relative
   paths taken from the current directory), so the ``config.yaml`` recorded in the experiment
   works from any directory (``--resume``);
2. :func:`prepare` — the body model read (restricted reader) and checked; the data set found or
   generated and checked against the config (:func:`hgn_pyg.engine.build.ensure_dataset`; the
   settled root is recorded in the config); the mesh hierarchy; the data sets; the model built and
   its weights loaded;
3. :func:`open_experiment` — only then the experiment folder: created (or, for ``--resume``,
   locked: one process at a time), the project's stale temporary files removed, ``config.yaml``
   written, the log file attached.

A caller with a :class:`~hgn_pyg.config.Config` from elsewhere (e.g. the one stored in a
checkpoint) enters at :func:`resolve_paths`.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence

import torch
from torch.utils.data import Dataset

from hgn_pyg.config import Config, config_from_dict
from hgn_pyg.engine import build
from hgn_pyg.engine.trainer import seed_everything
from hgn_pyg.engine.training_state import load_checkpoint
from hgn_pyg.errors import ConfigError
from hgn_pyg.io import LockBusy, file_lock, remove_stale_temps

__all__ = ["Prepared", "resolve_paths", "prepare", "open_experiment", "experiment_lock", "fatal_errors_logged",
           "EXPERIMENT_LOCK"]

log = logging.getLogger(__name__)

#: The lock file of an experiment folder (held while a process trains in it).
EXPERIMENT_LOCK = ".lock"

#: Age (seconds) after which a temporary file in the shared cache folder counts as left by a killed
#: process (other processes may be writing there; the experiment folder is locked instead).
STALE_CACHE_TEMP_S = 3600

#: Config keys that hold paths (section, key).
_PATH_KEYS = (("DATASET", "root"), ("DATASET", "body_model_path"), ("DATASET", "cache_dir"),
              ("MODEL", "weight_path"), ("TEST", "weight_path"), ("EXPERIMENT", "output_root"))


def resolve_paths(cfg: Config) -> Config:
    """A copy of ``cfg`` with every non-empty path absolute (``~`` expanded; relative to the
    current directory), validated again."""
    data = cfg.to_dict()
    for section, key in _PATH_KEYS:
        value = data[section][key]
        if value:
            data[section][key] = os.path.abspath(os.path.expanduser(value))
    out = config_from_dict(data, source=cfg.source)
    return out


@dataclass
class Prepared:
    """What :func:`prepare` built: the settled config and the pieces of the run."""

    cfg: Config
    body_path: Path
    body: Any
    hierarchy: Any
    model: torch.nn.Module
    train_set: Optional[Dataset] = None
    test_set: Optional[Dataset] = None
    loss_fn: Optional[torch.nn.Module] = None
    #: the checkpoint the fresh model's weights came from (``MODEL.weight_path``), if any
    initial_weights: Optional[str] = None


def prepare(cfg: Config, ctx=None, splits: Sequence[str] = ("train", "test"),
            mesh_splits: Sequence[str] = ("train", "test"),
            checkpoint: Optional[Dict[str, Any]] = None, checkpoint_path: str = "checkpoint",
            initial_weights: bool = True, with_loss: bool = True) -> Prepared:
    """Build everything a run needs, writing nothing but data caches (step 2 of the module doc).

    Args:
        cfg: a config whose paths went through :func:`resolve_paths`.
        ctx: a :class:`~hgn_pyg.engine.distributed.DistContext` (rank 0 fills the data caches
            first, the others then read them); ``None``: one process.
        splits: the data sets to build (``"train"``, ``"test"``).
        mesh_splits: the data sets that carry mesh targets (the test CLI needs them only for
            ``TEST.vis``).
        checkpoint: weights to load (ours or the published layout) instead of a fresh model.
        initial_weights: load ``MODEL.weight_path`` into a fresh model (a new training run).
        with_loss: build the loss too.
    """
    is_main = ctx is None or ctx.is_main
    barrier = ctx.barrier if ctx is not None else (lambda: None)
    body_path = build.body_model_path(cfg)
    body = build.load_body(cfg)  # the restricted reader; checks the file
    weights = None
    if checkpoint is None and initial_weights and cfg.MODEL.weight_path:
        weights = load_checkpoint(cfg.MODEL.weight_path, map_location="cpu")
    if is_main:
        root = build.ensure_dataset(cfg, is_main=True, body_path=body_path, body=body)
    barrier()
    if not is_main:
        root = build.ensure_dataset(cfg, is_main=False, body_path=body_path, body=body)
    if str(root) != cfg.DATASET.root:
        data = cfg.to_dict()
        data["DATASET"]["root"] = str(root)
        cfg = config_from_dict(data, source=cfg.source)
    if is_main:  # cache files a killed process was writing (an hour old: no live writer takes that long)
        remove_stale_temps(build.cache_dir(cfg), older_than=STALE_CACHE_TEMP_S)

    def build_data():
        h = build.build_hierarchy(cfg, body)
        sets = {}
        for split in splits:
            meshes = split in mesh_splits
            sets[split] = build.build_dataset(cfg, split, h if meshes else None, body_path if meshes else None)
        return h, sets

    if is_main:
        hierarchy, sets = build_data()
    barrier()
    if not is_main:
        hierarchy, sets = build_data()
    seed_everything(cfg.EXPERIMENT.seed)  # the initial weights depend on the seed only
    if checkpoint is not None:
        model = build.model_from_checkpoint(checkpoint, cfg, hierarchy, body, path=checkpoint_path)
    else:
        model = build.build_model(cfg, hierarchy, body)
        if weights is not None:
            # initial weights (ours or the published final.pth.tar), e.g. to fine-tune
            init = build.model_from_checkpoint(weights, cfg, hierarchy, body, path=cfg.MODEL.weight_path)
            build.load_state(model, init.state_dict(), cfg.MODEL.weight_path)
    loss_fn = build.build_loss(cfg, hierarchy) if with_loss else None
    return Prepared(cfg, body_path, body, hierarchy, model, sets.get("train"), sets.get("test"), loss_fn,
                    cfg.MODEL.weight_path if weights is not None else None)


@contextlib.contextmanager
def experiment_lock(exp_dir: Path) -> Iterator[Path]:
    """Hold the experiment folder's lock; a second process gets one ConfigError line at once."""
    try:
        with file_lock(Path(exp_dir) / EXPERIMENT_LOCK, blocking=False) as path:
            yield path
    except LockBusy as exc:
        raise ConfigError(f"{exp_dir}: another process (pid {exc}) is running in this experiment folder; "
                          "wait for it to end or stop it first") from None


def open_experiment(exp_dir: Path, stack: contextlib.ExitStack) -> Path:
    """Lock ``exp_dir`` for the life of ``stack`` and remove the temporary files a killed process
    left in it (safe: the lock keeps every other writer out)."""
    stack.enter_context(experiment_lock(exp_dir))
    for folder in (exp_dir, exp_dir / "checkpoint", exp_dir / "graph", exp_dir / "vis"):
        for path in remove_stale_temps(folder):
            log.info("removed a temporary file left by a killed run: %s", path)
    return exp_dir


@contextlib.contextmanager
def fatal_errors_logged() -> Iterator[None]:
    """Write an error that ends the run into the log *file* too (the CLI prints it on stderr)."""
    try:
        yield
    except Exception as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        record = logging.LogRecord("hgn_pyg", logging.ERROR, __file__, 0, "fatal: %s: %s",
                                   (type(exc).__name__, msg), None)
        for handler in logging.getLogger("hgn_pyg").handlers:
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)
        raise
