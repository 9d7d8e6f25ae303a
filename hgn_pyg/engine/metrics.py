r"""Pose error metrics: MPJPE, PA-MPJPE (similarity Procrustes) and per-action summaries.

All functions take joints in metres, ``[B, J, 3]`` (torch or NumPy), and return
errors in millimetres, one value per sample (``[B]``), so that means over a test
set are weighted per sample (docs/published_model.md §4):

* **MPJPE** — both poses are made relative to the root joint (index 0), then
  :math:`\frac{1}{J}\sum_j \lVert \hat{y}_j - y_j \rVert_2`, averaged over all
  ``J`` joints (the root included).
* **PA-MPJPE** — the prediction is first aligned to the ground truth by the
  similarity transform :math:`(s, R, t)` minimising
  :math:`\sum_j \lVert s R \hat{y}_j + t - y_j \rVert^2` with :math:`R` a proper
  rotation (:math:`\det R = +1`; a reflection is never used):
  with centred points :math:`X, Y` and :math:`U \Sigma V^\top = \mathrm{svd}(X^\top Y)`,
  :math:`D = \mathrm{diag}(1, 1, \operatorname{sign}\det(U V^\top))`,
  :math:`R = V D U^\top`, :math:`s = \operatorname{tr}(\Sigma D) / \lVert X \rVert_F^2`.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from hgn_pyg.data.pose_dataset import ACTIONS

__all__ = [
    "ACTIONS",
    "mpjpe",
    "pa_mpjpe",
    "procrustes_align",
    "MetricAccumulator",
    "format_table",
]

ArrayLike = Union[Tensor, np.ndarray]


def _check(pred, gt, name: str) -> None:
    if tuple(pred.shape) != tuple(gt.shape) or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"{name}: prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} must "
                         "both be [B, J, 3]")


def _as_tensors(pred: ArrayLike, gt: ArrayLike) -> Tuple[Tensor, Tensor, bool]:
    """``pred``/``gt`` as tensors, and whether they came as NumPy (then float64, returned as NumPy)."""
    if isinstance(pred, Tensor) and isinstance(gt, Tensor):
        return pred, gt, False
    return (torch.as_tensor(np.asarray(pred, dtype=np.float64)),
            torch.as_tensor(np.asarray(gt, dtype=np.float64)), True)


def mpjpe(pred: ArrayLike, gt: ArrayLike, root: Optional[int] = 0) -> ArrayLike:
    """Root-aligned mean per-joint position error in mm, per sample: the one MPJPE of hgn_pyg
    (training log, evaluation, benchmarks).

    Args:
        pred, gt: ``[B, J, 3]`` joints in metres (tensors, or NumPy arrays: computed in float64 and
            returned as NumPy).
        root: joint subtracted from both poses first (``None`` = no alignment).

    Returns: ``[B]`` errors in millimetres (same dtype as the input tensors, float64 kept).
    """
    pred, gt, as_numpy = _as_tensors(pred, gt)
    if as_numpy:
        return mpjpe(pred, gt, root).numpy()
    _check(pred, gt, "mpjpe")
    if root is not None:
        pred = pred - pred[:, root:root + 1]
        gt = gt - gt[:, root:root + 1]
    return (pred - gt).norm(dim=-1).mean(dim=-1) * 1000.0


def procrustes_align(pred: ArrayLike, gt: ArrayLike) -> ArrayLike:
    """Align ``pred`` to ``gt`` by the best similarity transform (scale, rotation, translation).

    Batched over ``[B, J, 3]`` (tensors, or NumPy arrays returned as NumPy float64); the SVD runs
    in float64 for stability.  Reflections are excluded (``det R = +1``).  A degenerate prediction
    (all joints at one point) is mapped to the ground truth's centroid.  Returns the aligned
    prediction ``[B, J, 3]``.
    """
    pred, gt, as_numpy = _as_tensors(pred, gt)
    if as_numpy:
        return procrustes_align(pred, gt).numpy()
    _check(pred, gt, "procrustes_align")
    dtype = pred.dtype
    x = pred.double()
    y = gt.double()
    mx = x.mean(dim=1, keepdim=True)
    my = y.mean(dim=1, keepdim=True)
    x0 = x - mx
    y0 = y - my
    h = x0.transpose(1, 2) @ y0  # [B, 3, 3]
    u, sig, vh = torch.linalg.svd(h)
    v = vh.transpose(1, 2)
    d = torch.sign(torch.linalg.det(v @ u.transpose(1, 2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    diag = torch.ones_like(sig)
    diag[:, -1] = d
    rot = v @ torch.diag_embed(diag) @ u.transpose(1, 2)  # [B, 3, 3], maps x -> y
    var_x = (x0 ** 2).sum(dim=(1, 2))
    scale = (sig * diag).sum(dim=1) / var_x.clamp_min(1e-30)
    scale = torch.where(var_x > 0, scale, torch.zeros_like(scale))
    aligned = scale[:, None, None] * (x0 @ rot.transpose(1, 2)) + my
    return aligned.to(dtype)


def pa_mpjpe(pred: ArrayLike, gt: ArrayLike) -> ArrayLike:
    """MPJPE after similarity Procrustes alignment, in mm, per sample (``[B]``; NumPy in, NumPy out)."""
    return mpjpe(procrustes_align(pred, gt), gt, root=None)


class MetricAccumulator:
    """Collects per-sample MPJPE / PA-MPJPE, the action of each sample and the batches.

    ``update(pred, gt, actions)`` with ``[B, J, 3]`` metres and ``[B]`` action indices (one
    call per test batch); :meth:`summary` returns the ``results.json`` layout::

        {"MPJPE": mm, "PA-MPJPE": mm,                        # means over samples
         "MPJPE_action_mean": mm, "PA-MPJPE_action_mean": mm,  # means of the per-action means
         "MPJPE_batch_mean": mm,                              # mean of the per-batch means
         "num_samples": n, "num_actions": a,
         "per_action": {name: {"MPJPE": mm, "PA-MPJPE": mm, "num_samples": k}}}

    ``MPJPE`` is the figure the paper reports (37.32 mm for the published checkpoint);
    ``MPJPE_action_mean`` is the published test's second figure (the mean of the action
    means, over the ``num_actions`` actions that have samples); ``MPJPE_batch_mean`` is what
    the published training loop selects its best epoch on (docs/published_model.md §4; it
    depends on the batch size, the last batch weighing as much as a full one). Actions
    without samples are left out of ``per_action``.
    """

    def __init__(self, action_names: Sequence[str] = ACTIONS):
        self.action_names = list(action_names)
        self._mpjpe: List[np.ndarray] = []
        self._pa: List[np.ndarray] = []
        self._act: List[np.ndarray] = []
        self._batch_means: List[float] = []

    def update(self, pred: ArrayLike, gt: ArrayLike, actions: Optional[ArrayLike] = None) -> Tensor:
        """Add a batch; returns its per-sample MPJPE (mm) as a tensor."""
        pred_t = torch.as_tensor(pred).detach().to("cpu", torch.float64)
        gt_t = torch.as_tensor(gt).detach().to("cpu", torch.float64)
        e = mpjpe(pred_t, gt_t)
        p = pa_mpjpe(pred_t, gt_t)
        if actions is None:
            a = np.full(e.shape[0], -1, dtype=np.int64)
        else:
            a = torch.as_tensor(actions).detach().cpu().reshape(-1).numpy().astype(np.int64)
            if a.shape[0] != e.shape[0]:
                raise ValueError(f"MetricAccumulator.update: {a.shape[0]} actions for {e.shape[0]} samples")
        self._mpjpe.append(e.numpy())
        self._pa.append(p.numpy())
        self._act.append(a)
        if e.numel():
            self._batch_means.append(float(e.mean()))
        return e

    def __len__(self) -> int:
        return int(sum(len(e) for e in self._mpjpe))

    def arrays(self):
        """``(mpjpe [N], pa_mpjpe [N], actions [N])`` NumPy arrays of everything seen."""
        if not self._mpjpe:
            z = np.zeros(0)
            return z, z, np.zeros(0, dtype=np.int64)
        return np.concatenate(self._mpjpe), np.concatenate(self._pa), np.concatenate(self._act)

    def summary(self) -> Dict[str, object]:
        e, p, a = self.arrays()
        nan = float("nan")
        per: Dict[str, Dict[str, float]] = {}
        for k, name in enumerate(self.action_names):
            sel = a == k
            if sel.any():
                per[name] = {"MPJPE": float(e[sel].mean()), "PA-MPJPE": float(p[sel].mean()),
                             "num_samples": int(sel.sum())}
        return {
            "MPJPE": float(e.mean()) if len(e) else nan,
            "PA-MPJPE": float(p.mean()) if len(p) else nan,
            "MPJPE_action_mean": float(np.mean([r["MPJPE"] for r in per.values()])) if per else nan,
            "PA-MPJPE_action_mean": float(np.mean([r["PA-MPJPE"] for r in per.values()])) if per else nan,
            "MPJPE_batch_mean": float(np.mean(self._batch_means)) if self._batch_means else nan,
            "num_samples": int(len(e)),
            "num_actions": len(per),
            "per_action": per,
        }


def format_table(results: Dict[str, object], baseline: Optional[Dict[str, object]] = None,
                 action_names: Iterable[str] = ACTIONS) -> str:
    """A fixed-width text table of per-action MPJPE / PA-MPJPE (and the baseline's, if given)."""
    cols = ["MPJPE", "PA-MPJPE"]
    head = f"{'Action':<14}" + "".join(f"{c:>10}" for c in cols)
    if baseline is not None:
        head += "".join(f"{'mean ' + c:>16}" for c in cols)
    lines = [head, "-" * len(head)]

    def row(name: str, r: Optional[Dict], b: Optional[Dict]) -> str:
        s = f"{name:<14}"
        s += "".join(f"{r[c]:>10.2f}" if r else f"{'-':>10}" for c in cols)
        if baseline is not None:
            s += "".join(f"{b[c]:>16.2f}" if b else f"{'-':>16}" for c in cols)
        return s

    per = results.get("per_action", {}) or {}
    bper = (baseline or {}).get("per_action", {}) or {}
    for name in action_names:
        if name in per or name in bper:
            lines.append(row(name, per.get(name), bper.get(name)))
    lines.append("-" * len(head))
    lines.append(row("Average", results, baseline))

    def action_mean(r: Optional[Dict]) -> Optional[Dict]:
        if not r or "MPJPE_action_mean" not in r:
            return None
        return {c: r[f"{c}_action_mean"] for c in cols}

    if action_mean(results) is not None:
        lines.append(row("Action mean", action_mean(results), action_mean(baseline)))
    lines.append(f"{results.get('num_samples', 0)} samples, {results.get('num_actions', len(per))} actions; "
                 "Average is over samples (the paper's figure; published: 37.32 mm MPJPE), Action mean "
                 "is the mean of the per-action means")
    return "\n".join(lines)
