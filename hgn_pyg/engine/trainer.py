"""The training loop of docs/published_model.md §4, experiment folders, and exact resumption.

An experiment lives in ``<output_root>/exp_<UTC timestamp>/``::

    config.yaml            the resolved configuration (never rewritten)
    train.log              the log (appended to on resume)
    checkpoint/last.pth.tar, best.pth.tar   (atomic writes, once per epoch)
    graph/metrics.csv, loss.png, error.png  (regenerated from the checkpoint's history)
    vis/                   pose PNGs + coarse-mesh OBJ files (TEST.vis)
    results.json           last- and best-epoch test metrics beside the mean-pose baseline

Exact resumption: the checkpoint written at the end of epoch ``e`` holds the model,
optimizer, scheduler, the best metric, the history and the RNG states (Python, NumPy,
torch CPU/CUDA, the augmentation generator).  The shuffling of epoch ``e`` is a pure
function of ``(seed, e)`` (:class:`~torch.utils.data.DistributedSampler`), so a run
resumed from epoch ``e`` sees the same batches, the same noise and the same weights as
one that never stopped, and ends with the same metrics (on CPU; GPU kernels may not be
bit-reproducible).
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler
from tqdm.auto import tqdm

from hgn_pyg.data.augment import KeypointAugmentation, PoseViewAugmentation, model_input
from hgn_pyg.engine.build import load_state, resolve_device, test_options, train_mean_pose
from hgn_pyg.engine.distributed import DistContext
from hgn_pyg.engine.evaluator import _progress_interval, evaluate, make_loader, mean_pose_baseline, write_vis
from hgn_pyg.engine.metrics import mpjpe
from hgn_pyg.engine.optim import make_optimizer, make_scheduler
from hgn_pyg.engine.plots import plot_history, write_metrics_csv
from hgn_pyg.engine.training_state import (capture_rng_state, check_training_fields, load_checkpoint,
                                           restore_rng_state, save_checkpoint)
from hgn_pyg.errors import CheckpointError, ConfigError
from hgn_pyg.io import atomic_write, atomic_write_text
from hgn_pyg.models.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, check_model_fields

if TYPE_CHECKING:
    from hgn_pyg.config import Config

__all__ = ["Trainer", "make_experiment_dir", "seed_everything", "write_results", "BEST_RULE"]

log = logging.getLogger(__name__)


#: How the best epoch (``best.pth.tar``, ``results.json`` → ``best``) is chosen: the published
#: rule (docs/published_model.md §4).
BEST_RULE = ("published: lowest test MPJPE_batch_mean (mean over test batches of each batch's mean "
             "MPJPE); epoch 0 is never selected but its error counts towards the minimum to beat; "
             "a tie keeps the earlier epoch")


def make_experiment_dir(output_root: os.PathLike, prefix: str = "exp") -> Path:
    """Create and return a *new* ``<output_root>/<prefix>_<UTC YYYYmmdd_HHMMSS>`` folder.

    An existing folder is never reused: ``_1``, ``_2`` … are appended until the name is free.
    """
    root = Path(output_root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")
    for k in range(10000):
        path = root / (f"{prefix}_{stamp}" + (f"_{k}" if k else ""))
        try:
            path.mkdir(exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise ConfigError(f"EXPERIMENT.output_root: cannot create a new experiment folder in {root}")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_results(path: Path, results: Dict[str, Any]) -> None:
    """Write ``results.json`` atomically (non-finite numbers become ``null``: strict JSON)."""
    atomic_write_text(Path(path), json.dumps(_json_safe(results), indent=2, allow_nan=False) + "\n")


class Trainer:
    """Trains an HGN as docs/published_model.md §4 says, evaluates each epoch and keeps the
    experiment folder. The best epoch is chosen by :data:`BEST_RULE`.

    Args:
        cfg: the configuration.
        exp_dir: the experiment folder (created by :func:`make_experiment_dir`).
        model: the network (moved to ``ctx.device``; wrapped in DDP when distributed).
        loss_fn: :class:`~hgn_pyg.engine.losses.HGNLoss`.
        train_set, test_set: data sets yielding the item dicts of :mod:`hgn_pyg.data`.
        ctx: the :class:`~hgn_pyg.engine.distributed.DistContext`.
        hierarchy, bones: used for the visual outputs only.
    """

    def __init__(self, cfg: Config, exp_dir: Path, model: torch.nn.Module, loss_fn: torch.nn.Module,
                 train_set: Dataset, test_set: Dataset, ctx: Optional[DistContext] = None, hierarchy=None,
                 bones=None, model_record: Optional[Dict[str, Any]] = None):
        self.cfg = cfg
        self.exp_dir = Path(exp_dir)
        if ctx is None:  # a single process on the configured device
            ctx = DistContext(device=resolve_device(cfg.EXPERIMENT.device))
        self.ctx = ctx
        self.device = self.ctx.device
        self.model = model.to(self.device)
        self.loss_fn = loss_fn.to(self.device)
        self.hierarchy = hierarchy
        self.bones = bones
        # what inference needs without a body model or data (graphs, faces, conventions)
        self.model_record = dict(model_record or {})
        self.train_set, self.test_set = train_set, test_set
        t = cfg.TRAIN
        if self.ctx.enabled:
            self.net = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.DATASET.format == "videopose3d")
        else:
            self.net = self.model
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(t.optimizer, params, t.lr, t.weight_decay)
        self.scheduler = make_scheduler(t.scheduler, self.optimizer, t.lr_step, t.lr_factor)
        seed = cfg.EXPERIMENT.seed
        self.sampler = DistributedSampler(train_set, num_replicas=self.ctx.world_size, rank=self.ctx.rank,
                                          shuffle=t.shuffle, seed=seed, drop_last=False)
        workers = cfg.DATASET.workers
        self.train_loader = make_loader(train_set, t.batch_size, workers, sampler=self.sampler)
        test_gen = torch.Generator().manual_seed(seed + 2) if cfg.TEST.shuffle else None
        self.test_loader = make_loader(test_set, cfg.TEST.batch_size, workers, shuffle=cfg.TEST.shuffle,
                                       generator=test_gen)
        self.aug_gen = torch.Generator().manual_seed(seed + 1)
        self.augment = KeypointAugmentation.from_config(cfg.AUG, cfg.DATASET.input_joint_set)
        self.pose_view = PoseViewAugmentation.from_config(cfg.AUG)
        if self.pose_view.active and cfg.DATASET.input_joint_set != "h36m":
            raise ConfigError(f"{cfg.source}: AUG.pose_prob / AUG.view_prob re-project the Human3.6M-17 target "
                              "to 2D; they need DATASET.input_joint_set 'h36m'")
        self.epoch = t.begin_epoch - 1  # last finished epoch
        self.best_metric = math.inf  # MPJPE_batch_mean of the best epoch
        self.best_epoch = -1
        self.min_metric = math.inf   # lowest MPJPE_batch_mean of any evaluated epoch (epoch 0 included)
        self.best_eval: Optional[Dict[str, Any]] = None
        self.history: List[Dict[str, Any]] = []
        self.last_eval: Optional[Dict[str, Any]] = None
        self.mean_pose: Optional[torch.Tensor] = None
        self.baseline: Optional[Dict[str, Any]] = None

    # ----------------------------------------------------------------- paths
    @property
    def ckpt_dir(self) -> Path:
        return self.exp_dir / "checkpoint"

    @property
    def progress(self) -> bool:
        return bool(self.cfg.EXPERIMENT.progress) and self.ctx.is_main

    # ----------------------------------------------------------------- state
    def state_dict(self) -> Dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "min_metric": self.min_metric,
            "best_eval": self.best_eval,
            "history": self.history,
            "last_eval": self.last_eval,
            "mean_pose": self.mean_pose,
            "baseline": self.baseline,
            "rng": capture_rng_state({"augment": self.aug_gen}),
            "config": self.cfg.to_dict(),
            "world_size": self.ctx.world_size,
            **self.model_record,
        }

    def load_state_dict(self, state: Dict[str, Any], path: str = "checkpoint") -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path}: not an hgn_pyg training checkpoint (format {state.get('format')!r})")
        check_training_fields(state, path)
        check_model_fields(state, path)
        for key in ("epoch", "best_metric", "best_epoch", "optimizer", "scheduler", "rng"):
            if key not in state:
                raise CheckpointError(f"{path}: not a training checkpoint (no {key!r}); start a new run from it "
                                      "with MODEL.weight_path instead")
        load_state(self.model, state["model"], path)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (KeyError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: optimizer/scheduler state does not fit ({exc})") from None
        self.epoch = int(state["epoch"])
        self.best_metric = float(state["best_metric"])
        self.best_epoch = int(state["best_epoch"])
        self.min_metric = float(state.get("min_metric", self.best_metric))
        self.best_eval = state.get("best_eval")
        self.history = list(state.get("history") or [])
        self.last_eval = state.get("last_eval")
        self.mean_pose = state.get("mean_pose")
        self.baseline = state.get("baseline")
        restore_rng_state(state["rng"], {"augment": self.aug_gen})

    def resume(self, path: Optional[Path] = None) -> int:
        """Load ``checkpoint/last.pth.tar`` (or ``path``); returns the epoch training continues at."""
        path = Path(path) if path is not None else self.ckpt_dir / "last.pth.tar"
        # on the CPU first: the RNG states must stay CPU tensors; the optimizer state follows
        # its parameters' device when loaded
        state = load_checkpoint(path, map_location="cpu")
        self.load_state_dict(state, str(path))
        log.info("resumed from %s (epoch %d finished, best MPJPE %.2f mm at epoch %d)", path, self.epoch,
                 self.best_metric, self.best_epoch)
        if self.ctx.is_main:
            self._repair(path)
        return self.epoch + 1

    def _repair(self, last: Path) -> None:
        """Make the folder agree with ``last`` after a kill at any point of :meth:`save` or after it.

        An epoch's writes go last.pth.tar → best.pth.tar → graph/metrics.csv (results.json only at
        the end of :meth:`fit`), so a kill can leave best.pth.tar one best epoch behind (then
        last.pth.tar *is* the best epoch's checkpoint and is copied over it) and metrics.csv behind
        the history (rewritten from it).
        """
        best = self.ckpt_dir / "best.pth.tar"
        if self.best_epoch >= 0 and last.parent == self.ckpt_dir:
            try:
                best_epoch = int(load_checkpoint(best, map_location="cpu").get("epoch", -1)) if best.is_file() else None
            except CheckpointError:
                best_epoch = None  # unreadable: replaced below when it can be
            if best_epoch != self.best_epoch:
                if self.best_epoch == self.epoch:
                    with open(last, "rb") as src:
                        atomic_write(best, lambda fh: shutil.copyfileobj(src, fh), sync_dir=True)
                    log.warning("repaired %s: it held epoch %s, the best epoch is %d", best, best_epoch,
                                self.best_epoch)
                else:
                    log.warning("%s holds epoch %s but the best epoch is %d; it is rewritten at the next "
                                "best epoch", best, best_epoch, self.best_epoch)
        self._write_graphs(plots=False)

    def save(self, is_best: bool) -> None:
        if not self.ctx.is_main:
            return
        state = self.state_dict()
        save_checkpoint(state, self.ckpt_dir / "last.pth.tar")
        if is_best:
            save_checkpoint(state, self.ckpt_dir / "best.pth.tar")

    # ----------------------------------------------------------------- loop
    def _prepare_baseline(self) -> None:
        if self.mean_pose is None:
            self.mean_pose = train_mean_pose(self.train_set)
        if self.baseline is None and self.ctx.is_main:
            self.baseline = mean_pose_baseline(self.mean_pose, self.test_loader)
            log.info("mean-pose baseline: MPJPE %.2f mm, PA-MPJPE %.2f mm (%d test samples)",
                     self.baseline["MPJPE"], self.baseline["PA-MPJPE"], self.baseline["num_samples"])

    def train_epoch(self, epoch: int) -> Dict[str, Any]:
        t = self.cfg.TRAIN
        self.net.train()
        self.sampler.set_epoch(epoch)
        num_meshes = int(getattr(self.loss_fn, "num_meshes", 2))
        sums = torch.zeros(4 + num_meshes, dtype=torch.float64)  # n, loss, joints, mpjpe, mesh0, mesh1, ...
        bar = tqdm(self.train_loader, desc=f"epoch {epoch}", leave=False, disable=not self.progress,
                   dynamic_ncols=True, mininterval=_progress_interval(), file=sys.stderr)
        for it, batch in enumerate(bar):
            x, joints_gt, meshes_gt = self.pose_view(batch.input_2d, batch.joints_3d, batch.meshes, self.aug_gen)
            x, score = self.augment(x, batch.score_2d, self.aug_gen)
            x = model_input(x, score, self.cfg.MODEL.in_channels).to(self.device)
            joints_gt = joints_gt.to(self.device)
            meshes_gt = tuple(m.to(self.device) for m in meshes_gt) if meshes_gt is not None else None
            out = self.net(x)
            loss, parts = self.loss_fn(out.joints, out.meshes, joints_gt, meshes_gt)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"epoch {epoch}, iteration {it}: the loss is {loss.item()}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=t.grad_clip)
            self.optimizer.step()
            n = x.shape[0]
            with torch.no_grad():
                pj = out.joints.detach()
                e = mpjpe(pj, joints_gt).sum()
            sums += torch.tensor([n, loss.item() * n, parts["joints"].item() * n, e.item()]
                                 + [parts.get(f"mesh{k}", torch.tensor(0.0)).item() * n for k in range(num_meshes)],
                                 dtype=torch.float64)
            if self.progress:
                bar.set_postfix(loss=f"{sums[1] / sums[0]:.4f}", MPJPE=f"{sums[3] / sums[0]:.1f}", refresh=False)
            if (it + 1) % t.print_freq == 0:
                log.debug("epoch %d iter %d/%d loss %.5f MPJPE %.2f mm", epoch, it + 1, len(self.train_loader),
                          sums[1] / sums[0], sums[3] / sums[0])
        sums = self.ctx.all_reduce_sum(sums)
        n = max(float(sums[0]), 1.0)
        has_mesh = self.train_set is not None and num_meshes > 0 and float(sums[4:].sum()) > 0
        row = {
            "train_loss": float(sums[1] / n),
            "train_joints_mse": float(sums[2] / n),
            "train_mpjpe": float(sums[3] / n),
        }
        for k in range(max(num_meshes, 2)):  # mesh0/mesh1 columns always present (None without meshes)
            row[f"train_mesh{k}_mse"] = float(sums[4 + k] / n) if has_mesh and k < num_meshes else None
        return row

    def fit(self, start_epoch: Optional[int] = None) -> Dict[str, Any]:
        """Train from ``start_epoch`` (default: after the last finished one) to ``TRAIN.end_epoch``.

        Returns the final results (also written to ``results.json`` by rank 0).
        """
        t = self.cfg.TRAIN
        self._prepare_baseline()
        start = self.epoch + 1 if start_epoch is None else start_epoch
        end = t.end_epoch
        if start >= end:
            log.info("nothing to train: epoch %d already reached TRAIN.end_epoch %d", start - 1, end)
        for epoch in range(start, end):
            tic = time.time()
            row: Dict[str, Any] = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]}
            row.update(self.train_epoch(epoch))
            row["train_time_s"] = round(time.time() - tic, 3)  # the training pass alone
            self.scheduler.step()
            last = epoch == end - 1
            evaluated = (epoch - t.begin_epoch + 1) % t.eval_every == 0 or last
            is_best = False
            if evaluated and self.ctx.is_main:
                res = evaluate(self.model, self.test_loader, self.device, progress=self.progress,
                               **test_options(self.cfg))
                self.last_eval = res
                row["test_mpjpe"], row["test_pa_mpjpe"] = res["MPJPE"], res["PA-MPJPE"]
                row["test_mpjpe_action_mean"] = res["MPJPE_action_mean"]
                row["test_mpjpe_batch_mean"] = res["MPJPE_batch_mean"]
                is_best = self._update_best(epoch, res)
            row["epoch_time_s"] = round(time.time() - tic, 3)
            self.history.append(row)
            self.epoch = epoch
            if self.ctx.is_main:
                self.save(is_best)
                # the CSV every epoch; the PNG curves every 10 epochs and at the end (plotting is slow)
                self._write_graphs(plots=(epoch - t.begin_epoch + 1) % 10 == 0)
                log.info("epoch %d/%d  loss %.5f  train MPJPE %.2f mm%s  lr %.3g  %.1f s", epoch, end - 1,
                         row["train_loss"], row["train_mpjpe"],
                         (f"  test MPJPE {row['test_mpjpe']:.2f} mm  PA-MPJPE {row['test_pa_mpjpe']:.2f} mm"
                          f"  (best {self.best_metric:.2f} @ {self.best_epoch})") if "test_mpjpe" in row else "",
                         row["lr"], row["epoch_time_s"])
            self.ctx.barrier()
        results = self.final_results()
        if self.ctx.is_main:
            if self.cfg.TEST.vis:
                n = write_vis(self.model, self.test_set, self.hierarchy, self.cfg.MODEL.mesh_levels,
                              self.bones or [], self.exp_dir / "vis", self.device, self.cfg.TEST.vis_samples,
                              faces=self.model_record.get("mesh_faces"))
                log.info("wrote %d visualisations to %s", n, self.exp_dir / "vis")
            write_results(self.exp_dir / "results.json", results)
            self._write_graphs()
        return self.ctx.broadcast_object(results)  # every rank returns rank 0's results

    def _update_best(self, epoch: int, res: Dict[str, Any]) -> bool:
        """Apply :data:`BEST_RULE` to the evaluation ``res`` of ``epoch``; True if it is the new best."""
        metric = float(res["MPJPE_batch_mean"])
        is_best = epoch > 0 and metric < self.min_metric
        self.min_metric = min(self.min_metric, metric)
        if is_best:
            self.best_metric, self.best_epoch, self.best_eval = metric, epoch, res
        return is_best

    def final_results(self) -> Dict[str, Any]:
        """``results.json``: the last epoch's metrics at the top level (as before) and in ``last``,
        the best epoch's (:data:`BEST_RULE`) in ``best`` (``null`` when no epoch after epoch 0
        beat every earlier one), the mean-pose baseline and the checkpoint paths."""
        if self.last_eval is None and self.ctx.is_main:
            self.last_eval = evaluate(self.model, self.test_loader, self.device, **test_options(self.cfg))
        last = dict(self.last_eval or {})
        res = dict(last)
        best = None
        if self.best_eval is not None:
            best = dict(self.best_eval, epoch=self.best_epoch, rule=BEST_RULE,
                        checkpoint=str(self.ckpt_dir / "best.pth.tar"))
        res.update({
            "epoch": self.epoch,
            "best_epoch": self.best_epoch,
            "best_MPJPE": best["MPJPE"] if best is not None else None,
            "last": dict(last, epoch=self.epoch, checkpoint=str(self.ckpt_dir / "last.pth.tar")),
            "best": best,
            "best_rule": BEST_RULE,
            "baseline": self.baseline,
            "checkpoint": str(self.ckpt_dir / "last.pth.tar"),
        })
        return res

    def _write_graphs(self, plots: bool = True) -> None:
        try:
            write_metrics_csv(self.history, self.exp_dir / "graph" / "metrics.csv")
            if plots:
                plot_history(self.history, self.exp_dir / "graph")
        except OSError as exc:  # plots are a convenience; never stop training for them
            log.warning("cannot write the training curves: %s", exc)
