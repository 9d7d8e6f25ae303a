"""Mesh targets: the world SMPL mesh of a frame taken into the camera and coarsened
(``docs/published_model.md §4``).

The target of a frame seen by camera ``(R, t)`` is ``R·(SMPL(θ, β) + trans) + t`` (neutral body,
``β := 0`` when any ``|β| > 3``), minus the Human3.6M pelvis, coarsened by
``hierarchy.coarsen_vertices`` at each requested level. See :mod:`hgn_pyg.data.human36m` for why
``SMPL(θ with root R·root, β) + (R·trans + t − J0 + R·J0)`` equals it exactly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Sequence, Tuple

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..errors import DataError

__all__ = ["SHAPE_LIMIT", "camera_root_pose", "camera_meshes", "mesh_targets"]

#: Mesh targets whose shape has any |β| above this use β = 0 (docs/published_model.md §4).
SHAPE_LIMIT = 3.0


def camera_root_pose(pose: np.ndarray, R: np.ndarray) -> np.ndarray:
    """SMPL poses ``[N, 72]`` with the root rotation (axis-angle) replaced by ``R·root``."""
    out = np.array(pose, dtype=np.float64, copy=True)
    root = Rotation.from_rotvec(out[:, :3]).as_matrix()
    out[:, :3] = Rotation.from_matrix(np.einsum("nij,njk->nik", R, root)).as_rotvec()
    return out


def _camera_forward(body: Any, pose: np.ndarray, shape: np.ndarray, trans: np.ndarray,
                    R: np.ndarray, t_mm: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(SMPL(θ with root R·root, β) [N, V, 3], R·trans + t − J0 + R·J0 [N, 3] float64)``."""
    shape = np.where(np.abs(shape).max(axis=1, keepdims=True) > SHAPE_LIMIT, 0.0, shape)
    cam_pose = camera_root_pose(pose, R)
    verts, joints = body.forward(torch.as_tensor(cam_pose, dtype=torch.float32),
                                 torch.as_tensor(shape, dtype=torch.float32), None)
    j0 = torch.as_tensor(joints).detach().double()[:, 0]                    # [N, 3]
    Rt = torch.as_tensor(R, dtype=torch.float64)
    offset = (torch.einsum("nij,nj->ni", Rt, torch.as_tensor(trans, dtype=torch.float64))
              + torch.as_tensor(t_mm, dtype=torch.float64) / 1000.0
              - j0 + torch.einsum("nij,nj->ni", Rt, j0))
    return torch.as_tensor(verts).detach(), offset


def camera_meshes(body: Any, pose: np.ndarray, shape: np.ndarray, trans: np.ndarray,
                  R: np.ndarray, t_mm: np.ndarray) -> torch.Tensor:
    """World SMPL meshes taken into the camera, ``[N, V, 3]`` metres (float64), docs/published_model.md §4.

    ``SMPL(θ with root R·root, β) + (R·trans + t − J0 + R·J0)``, ``t`` in mm → m, ``β := 0`` when
    any ``|β| > 3``, ``J0`` the root joint of the forward pass.
    """
    verts, offset = _camera_forward(body, pose, shape, trans, R, t_mm)
    return verts.double() + offset[:, None, :]


def _load_body_model(path: Path) -> Any:
    from .body_model import load_body_model

    return load_body_model(path)


def mesh_targets(body_model_path: Path, hierarchy: Any, levels: Sequence[int], pose: np.ndarray,
                 shape: np.ndarray, trans: np.ndarray, R: np.ndarray, t_mm: np.ndarray,
                 pelvis_mm: np.ndarray, batch_size: int = 512) -> List[torch.Tensor]:
    """Mesh targets ``[N, num_real[level], 3]`` (float32, metres, relative to the Human3.6M
    pelvis ``pelvis_mm [N, 3]``) for each level, SMPL run ``batch_size`` frames at a time."""
    body = _load_body_model(body_model_path)
    num_vertices = int(body.num_vertices)
    if int(hierarchy.num_real[0]) != num_vertices:
        raise DataError(f"{body_model_path}: body model has {num_vertices} vertices but the mesh "
                        f"hierarchy's level 0 has {int(hierarchy.num_real[0])}; build the "
                        f"hierarchy from this body model's faces")
    n = len(pose)
    out = [torch.empty(n, int(hierarchy.num_real[level]), 3) for level in levels]
    if n == 0:
        return out
    # The camera only rotates and shifts the posed body: SMPL(θ with root R·root, β) + (R·trans +
    # t − J0 + R·J0) = R·(SMPL(θ, β) + trans) + t exactly (the pose correctives ignore the root).
    # Every camera view of a frame shares (θ, β), so run SMPL once per distinct (θ, β) in the
    # world frame, coarsen there (coarse vertices are convex means, so coarsening commutes with
    # the rigid map), and apply each camera to the few coarse vertices. ``camera_meshes`` keeps
    # the published per-camera formula (docs/published_model.md §4); the tests check that both agree.
    shape = np.where(np.abs(shape).max(axis=1, keepdims=True) > SHAPE_LIMIT, 0.0, shape)
    params = np.concatenate([np.asarray(pose, np.float64), np.asarray(shape, np.float64)], axis=1)
    unique, inverse = np.unique(params, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    world = [torch.empty(len(unique), int(hierarchy.num_real[level]), 3, dtype=torch.float64)
             for level in levels]
    step = max(1, batch_size)
    with torch.no_grad():
        for start in range(0, len(unique), step):
            sl = slice(start, min(len(unique), start + step))
            verts, _ = body.forward(torch.as_tensor(unique[sl, :72], dtype=torch.float32),
                                    torch.as_tensor(unique[sl, 72:], dtype=torch.float32), None)
            verts = torch.as_tensor(verts).detach().float()
            for k, level in enumerate(levels):
                world[k][sl] = torch.as_tensor(hierarchy.coarsen_vertices(verts, level)).double()
        Rt = torch.as_tensor(np.asarray(R), dtype=torch.float64)
        shift = (torch.as_tensor(np.asarray(t_mm), dtype=torch.float64)
                 - torch.as_tensor(np.asarray(pelvis_mm), dtype=torch.float64)) / 1000.0
        trans_t = torch.as_tensor(np.asarray(trans), dtype=torch.float64)
        idx = torch.as_tensor(inverse, dtype=torch.long)
        for start in range(0, n, 8192):
            sl = slice(start, min(n, start + 8192))
            for k in range(len(levels)):
                pts = world[k][idx[sl]] + trans_t[sl, None, :]
                cam_pts = torch.einsum("nij,nvj->nvi", Rt[sl], pts) + shift[sl, None, :]
                out[k][sl] = cam_pts.float()
    return out

