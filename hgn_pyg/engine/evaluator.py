"""Evaluation: MPJPE / PA-MPJPE per action, the mean-pose baseline, visual outputs."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from hgn_pyg.data.augment import model_input
from hgn_pyg.data.kinematics import symmetric_h36m
from hgn_pyg.engine.build import collate
from hgn_pyg.engine.metrics import ACTIONS, MetricAccumulator, mpjpe
from hgn_pyg.engine.vis import level_edges, save_obj, save_pose_png
from hgn_pyg.models.flip import merge_mirrored, with_mirror

__all__ = ["evaluate", "predict_joints", "mean_pose_baseline", "write_vis", "make_loader"]

log = logging.getLogger(__name__)


def _progress_interval() -> float:
    """Refresh tqdm often on a terminal, rarely when stderr goes to a file or a pipe."""
    try:
        return 0.2 if sys.stderr.isatty() else 30.0
    except (AttributeError, ValueError):
        return 30.0


def make_loader(ds: Dataset, batch_size: int, workers: int = 0, shuffle: bool = False, sampler=None,
                generator: Optional[torch.Generator] = None) -> DataLoader:
    """A :class:`DataLoader` with hgn_pyg's :func:`~hgn_pyg.engine.build.collate`."""
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle if sampler is None else False, sampler=sampler,
                      num_workers=workers, collate_fn=collate, generator=generator,
                      persistent_workers=False, drop_last=False)


def _root_relative(j: Tensor) -> Tensor:
    return j - j[:, :1]


FlipPairs = Tuple[Sequence[Tuple[int, int]], Sequence[Tuple[int, int]]]


@torch.no_grad()
def predict_joints(model: torch.nn.Module, inp: Tensor, symmetric_bones: bool = False,
                   flip_pairs: Optional[FlipPairs] = None) -> Tensor:
    """The root-relative joints ``[B, J, 3]`` (float32, CPU) that :func:`evaluate` scores for one
    batch of model input ``inp [B, K, C]`` (already on the model's device), with the options of
    :func:`hgn_pyg.engine.build.test_options`."""
    if flip_pairs is not None:
        inp = with_mirror(inp, flip_pairs[0])
    out = model(inp)
    joints = out.joints if hasattr(out, "joints") else out[0]
    if flip_pairs is not None:
        joints = merge_mirrored(joints, flip_pairs[1])
    pred = _root_relative(joints.float().cpu())
    return symmetric_h36m(pred) if symmetric_bones else pred


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader, device: torch.device, progress: bool = False,
             desc: str = "test", symmetric_bones: bool = False, flip_pairs: Optional[FlipPairs] = None
             ) -> Dict[str, object]:
    """Run ``model`` over ``loader`` (eval mode) and summarise the errors (``results.json`` layout).
    ``symmetric_bones``: score the predicted poses with equal left and right bones
    (``TEST.symmetric_bones``; :func:`hgn_pyg.data.kinematics.symmetric_bones`, as the lifter does).
    ``flip_pairs``: ``(input pairs, output pairs)`` to score the flip-averaged poses
    (``TEST.flip_test``; :mod:`hgn_pyg.models.flip`, as the lifter does); ``None``: the plain output.
    :func:`hgn_pyg.engine.build.test_options` gives both from a configuration."""
    was_training = model.training
    model.eval()
    acc = MetricAccumulator(ACTIONS)
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True, mininterval=_progress_interval())
    in_channels = getattr(model, "in_channels", 2)
    for batch in bar:
        inp = model_input(batch.input_2d, batch.score_2d, in_channels).to(device)
        pred = predict_joints(model, inp, symmetric_bones, flip_pairs)
        acc.update(pred, _root_relative(batch.joints_3d), batch.action)
        if progress:
            e, _, _ = acc.arrays()
            bar.set_postfix(MPJPE=f"{e.mean():.1f}", refresh=False)
    model.train(was_training)
    return acc.summary()


@torch.no_grad()
def mean_pose_baseline(mean_pose: Tensor, loader: DataLoader) -> Dict[str, object]:
    """Errors of predicting the training mean pose (``[J, 3]``, root-relative) for every test sample."""
    acc = MetricAccumulator(ACTIONS)
    mp = torch.as_tensor(mean_pose, dtype=torch.float64)
    for batch in loader:
        gt = _root_relative(batch.joints_3d.double())
        acc.update(mp.expand_as(gt), gt, batch.action)
    return acc.summary()


@torch.no_grad()
def write_vis(model: torch.nn.Module, ds: Dataset, hierarchy, mesh_levels: Sequence[int], bones, folder: Path,
              device: torch.device, num_samples: int = 4, faces: Optional[Mapping[int, object]] = None) -> int:
    """For the first ``num_samples`` items of ``ds``: ``pose_<i>.png`` (prediction vs ground truth) and,
    when the model predicts meshes, ``mesh_<i>_level<L>.obj`` of the predicted coarse meshes (real
    vertices; the coarse-mesh triangles ``faces[L]`` when given, so mesh viewers show a surface, else
    the graph edges as lines; ``..._gt.obj`` beside them when the item has mesh targets).
    Returns the number of samples drawn."""
    n = min(int(num_samples), len(ds))
    if n <= 0:
        return 0
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    batch = collate([ds[i] for i in range(n)])
    was_training = model.training
    model.eval()
    out = model(model_input(batch.input_2d, batch.score_2d, getattr(model, "in_channels", 2)).to(device))
    model.train(was_training)
    joints = _root_relative(out.joints.float().cpu()).numpy()
    gt = _root_relative(batch.joints_3d).numpy()
    meshes = getattr(out, "meshes", None)
    edges = {}
    errors = mpjpe(joints, gt, root=None)  # already root-relative
    for i in range(n):
        err = float(errors[i])
        save_pose_png(joints[i], gt[i], bones, folder / f"pose_{i:03d}.png", title=f"sample {i}: MPJPE {err:.1f} mm")
        if meshes is None or hierarchy is None:
            continue
        for k, level in enumerate(mesh_levels):
            level = int(level)
            if level not in edges:
                tri = (faces or {}).get(level)
                edges[level] = (None, np.asarray(tri)) if tri is not None else (level_edges(hierarchy, level), None)
            slots = torch.as_tensor(hierarchy.real_slots(level), dtype=torch.long)
            verts = meshes[k][i].float().cpu().index_select(0, slots).numpy()
            lines, tri = edges[level]
            save_obj(verts, folder / f"mesh_{i:03d}_level{level}.obj", edges=lines, faces=tri,
                     comment=f"predicted level-{level} mesh of sample {i} (metres, pelvis-relative)")
            if batch.meshes is not None:
                save_obj(batch.meshes[k][i].numpy(), folder / f"mesh_{i:03d}_level{level}_gt.obj", edges=lines,
                         faces=tri, comment=f"ground-truth level-{level} mesh of sample {i}")
    return n
