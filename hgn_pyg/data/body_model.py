"""A wrapper for SMPL-format body models (the real SMPL or the open body) behind one interface.

The files are read by :func:`hgn_pyg.data.smpl_format.read_body_model_file`; the open body is
built by :mod:`hgn_pyg.data.open_body` (its names are re-exported here).
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Optional, Union

import numpy as np
import scipy.sparse as sp

from ..errors import DataError
from .open_body import (  # noqa: F401  (re-exported: the open body's public names)
    BODY_MODEL_VERSION,
    H36M_FROM_SMPL,
    H36M_JOINT_NAMES,
    H36M_REFERENCE_BONES_MM,
    NUM_VERTICES,
    SHAPE_NAMES,
    STATIC_JOINTS,
    build_open_body_model,
    check_closed_manifold,
    default_body_model_path,
    make_open_body_data,
    signed_volume,
)
from .smpl_format import SMPL_JOINT_NAMES, SMPL_PARENTS, read_body_model_file  # noqa: F401

__all__ = [
    "BODY_MODEL_VERSION",
    "NUM_VERTICES",
    "SMPL_JOINT_NAMES",
    "SMPL_PARENTS",
    "SHAPE_NAMES",
    "H36M_FROM_SMPL",
    "H36M_JOINT_NAMES",
    "H36M_REFERENCE_BONES_MM",
    "STATIC_JOINTS",
    "BodyModel",
    "build_open_body_model",
    "default_body_model_path",
    "load_body_model",
    "make_open_body_data",
    "check_closed_manifold",
    "signed_volume",
    "read_body_model_file",
    "rigid_transforms",
    "skinning_transforms",
    "PointSkinning",
]


class BodyModel:
    """An SMPL-format body (the real SMPL or the open one) behind one small interface.

    Wraps :class:`smplx.SMPL`. ``forward(pose [B,72], shape [B,10], trans [B,3] | None)``
    returns ``(vertices [B,V,3], joints [B,24,3])`` in metres: SMPL's linear blend skinning,
    ``v = sum_k w_vk G_k(pose, J(shape)) [T + S shape + P(pose)]`` plus ``trans``.

    Attributes:
        path: the model file. faces: ``[F,3]`` int64. num_vertices: V.
        skinning_weights: ``[V,24]``. joint_regressor: ``[24,V]`` (dense).
        h36m_regressor: ``[17,V]`` (file key ``J_regressor_h36m`` or, for the real SMPL, a
            ``J_regressor_h36m_correct.npy`` next to the model file).
        is_open_model: True for the model built by :func:`build_open_body_model`.
    """

    def __init__(self, path: Union[str, Path], dtype=None):
        import torch
        import smplx
        from smplx.utils import Struct

        self.path = Path(path)
        data = read_body_model_file(self.path)
        self.dtype = dtype if dtype is not None else torch.float32
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a 10-betas warning
                self.smpl = smplx.SMPL(model_path=str(self.path), data_struct=Struct(**data),
                                       dtype=self.dtype)
        except Exception as exc:
            raise DataError(f"smplx could not build SMPL from {self.path}: {exc}") from exc
        self.faces = np.asarray(data["f"], dtype=np.int64)
        self.num_vertices = int(np.shape(data["v_template"])[0])
        self.skinning_weights = np.asarray(data["weights"], dtype=np.float64)
        jr = data["J_regressor"]
        self.joint_regressor = np.asarray(jr.toarray() if sp.issparse(jr) else jr,
                                          dtype=np.float64)
        self.version = str(data.get("hgn_open_body_version", "")) or None
        self.is_open_model = self.version is not None
        self._h36m = data.get("J_regressor_h36m")
        self._h36m_torch = None

    @property
    def h36m_regressor(self) -> np.ndarray:
        """``[17, V]`` regressor from mesh vertices to the Human3.6M joints (docs/published_model.md §1.1 order)."""
        if self._h36m is None:
            candidates = [self.path.parent / "J_regressor_h36m_correct.npy",
                          self.path.parent / "J_regressor_h36m.npy"]
            found = next((c for c in candidates if c.exists()), None)
            if found is None:
                raise DataError(
                    f"body model file {self.path} has no key 'J_regressor_h36m' and no "
                    f"{candidates[0].name} lies next to it; put the Human3.6M joint regressor "
                    "(17 x V) there")
            try:
                reg = np.load(found)
            except Exception as exc:
                raise DataError(f"cannot read Human3.6M regressor {found}: {exc}") from exc
            self._h36m = reg
            where = str(found)
        else:
            where = f"{self.path} key 'J_regressor_h36m'"
        reg = np.asarray(self._h36m.toarray() if sp.issparse(self._h36m) else self._h36m,
                         dtype=np.float64)
        if reg.shape != (17, self.num_vertices):
            raise DataError(f"Human3.6M regressor {where} has shape {list(reg.shape)}, expected "
                            f"[17, {self.num_vertices}]")
        self._h36m = reg
        return reg

    def to(self, device):
        """Move the wrapped SMPL layer to ``device`` (returns self)."""
        self.smpl = self.smpl.to(device)
        self._h36m_torch = None
        return self

    @property
    def device(self):
        return self.smpl.v_template.device

    def _tensor(self, x, name, width):
        import torch

        t = torch.as_tensor(x, dtype=self.dtype, device=self.device)
        if t.dim() == 1:
            t = t.unsqueeze(0)
        if t.dim() != 2 or t.shape[1] != width:
            raise DataError(f"BodyModel.forward: '{name}' must be [B, {width}], got "
                            f"{list(t.shape)}")
        return t

    def forward(self, pose, shape, trans=None):
        """Posed mesh and joints.

        Args:
            pose: ``[B, 72]`` axis-angle (root first). shape: ``[B, 10]`` (or ``[1, 10]``).
            trans: ``[B, 3]`` or None.

        Returns:
            ``(vertices [B, V, 3], joints [B, 24, 3])`` torch tensors, metres.
        """
        pose = self._tensor(pose, "pose", 72)
        shape = self._tensor(shape, "shape", 10)
        if shape.shape[0] == 1 and pose.shape[0] > 1:
            shape = shape.expand(pose.shape[0], -1)
        if shape.shape[0] != pose.shape[0]:
            raise DataError(f"BodyModel.forward: pose has {pose.shape[0]} rows, shape "
                            f"{shape.shape[0]}")
        kwargs = {}
        if trans is not None:
            kwargs["transl"] = self._tensor(trans, "trans", 3)
        else:
            import torch

            kwargs["transl"] = torch.zeros(pose.shape[0], 3, dtype=self.dtype, device=self.device)
        out = self.smpl(betas=shape, global_orient=pose[:, :3], body_pose=pose[:, 3:], **kwargs)
        return out.vertices, out.joints[:, :24]

    __call__ = forward

    def h36m_joints(self, vertices):
        """Regress the 17 Human3.6M joints from vertices ``[B, V, 3]`` (torch) -> ``[B, 17, 3]``."""
        import torch

        if self._h36m_torch is None or self._h36m_torch.device != vertices.device \
                or self._h36m_torch.dtype != vertices.dtype:
            self._h36m_torch = torch.as_tensor(self.h36m_regressor, dtype=vertices.dtype,
                                               device=vertices.device)
        return torch.einsum("jv,bvc->bjc", self._h36m_torch, vertices)

    def __repr__(self) -> str:
        kind = self.version if self.is_open_model else "SMPL"
        return f"BodyModel({self.path.name}, {kind}, vertices={self.num_vertices})"


def load_body_model(path: Optional[Union[str, Path]] = None, dtype=None) -> BodyModel:
    """Load an SMPL-format body model (``.pkl`` or ``.npz``); ``None`` means the open model."""
    if path is None:
        path = default_body_model_path()
    return BodyModel(path, dtype=dtype)


def rigid_transforms(rot: np.ndarray, joints: np.ndarray, parents) -> np.ndarray:
    """World transforms ``[B, K, 3, 4]`` (rotation, joint position) of a kinematic tree.

    Args:
        rot: local rotations ``[B, K, 3, 3]`` (the root's is its world rotation).
        joints: rest joint positions ``[K, 3]``. parents: ``[K]`` (root: a negative number).

    NumPy float64; ``[..., 3]`` is each joint's posed position (root at its rest position).
    """
    rot = np.asarray(rot, dtype=np.float64)
    B, K = rot.shape[:2]
    G = np.zeros((B, K, 3, 4))
    for k in range(K):
        p = int(parents[k])
        if p < 0:
            G[:, k, :, :3] = rot[:, k]
            G[:, k, :, 3] = joints[k]
        else:
            G[:, k, :, :3] = G[:, p, :, :3] @ rot[:, k]
            G[:, k, :, 3] = G[:, p, :, 3] + G[:, p, :, :3] @ (joints[k] - joints[p])
    return G


def skinning_transforms(rot: np.ndarray, joints: np.ndarray, parents) -> np.ndarray:
    """SMPL's linear-blend-skinning transforms ``[B, K, 3, 4]``: :func:`rigid_transforms` with
    the rest joints removed, so a rest point ``x`` skinned to joint ``k`` goes to
    ``A_k · [x; 1]``."""
    G = rigid_transforms(rot, joints, parents)
    G[..., 3] -= np.einsum("bkrc,kc->bkr", G[..., :3], np.asarray(joints, dtype=np.float64))
    return G


class PointSkinning:
    """The body model's skinning of a few regressed points, exactly, in NumPy float64, for one
    body shape: ``x_j = sum_k A_k (sum_v R_jv w_vk [v_v; 1])`` for each regressor ``R`` (e.g. the
    Human3.6M regressor), and the lowest height of the mesh (floor contact). The same linear
    blend skinning as :meth:`BodyModel.forward` (``posedirs`` must be zero, as in the open body),
    without posing all vertices.

    Args:
        model: a :class:`BodyModel`. betas: ``[10]`` shape coefficients.
        regressors: name -> ``[P, V]`` vertex weights (default: ``{"h36m": h36m_regressor}``).
        floor_stride: every how many-th vertex :meth:`lowest` looks at.
    """

    def __init__(self, model: "BodyModel", betas: np.ndarray, regressors=None,
                 floor_stride: int = 3):
        smpl = model.smpl
        v = smpl.v_template.detach().cpu().double().numpy() + np.einsum(
            "l,vcl->vc", np.asarray(betas, dtype=np.float64),
            smpl.shapedirs.detach().cpu().double().numpy())
        #: rest joints ``[24, 3]`` of this shape
        self.joints = smpl.J_regressor.detach().cpu().double().numpy() @ v
        self.parents = smpl.parents.detach().cpu().numpy().astype(np.int64)
        self.parents[0] = -1
        W = model.skinning_weights
        vh = np.concatenate([v, np.ones((len(v), 1))], axis=1)
        regressors = {"h36m": model.h36m_regressor} if regressors is None else regressors
        self._C = {name: np.einsum("jv,vk,vc->jkc", np.asarray(R, dtype=np.float64), W, vh)
                   for name, R in regressors.items()}  # [P, 24, 4]
        self._low_v = vh[::floor_stride]
        self._low_w = W[::floor_stride]

    def transforms(self, rot: np.ndarray) -> np.ndarray:
        """:func:`skinning_transforms` of rotations ``[B, 24, 3, 3]`` for this shape."""
        return skinning_transforms(rot, self.joints, self.parents)

    def points(self, rot: np.ndarray, name: str = "h36m", A: Optional[np.ndarray] = None):
        """Posed points ``[B, P, 3]`` of regressor ``name`` (metres, before translation)."""
        A = self.transforms(rot) if A is None else A
        C = self._C[name]
        B = A.shape[0]
        out = A.transpose(0, 2, 1, 3).reshape(B, 3, -1) @ C.reshape(len(C), -1).T
        return out.transpose(0, 2, 1)

    def lowest(self, rot: np.ndarray, axis: int = 2, A: Optional[np.ndarray] = None):
        """Lowest coordinate ``[B]`` along ``axis`` of the posed mesh (every ``floor_stride``-th
        vertex)."""
        A = self.transforms(rot) if A is None else A
        B = A.shape[0]
        Az = A[:, :, axis, :].transpose(1, 0, 2).reshape(len(self.joints), B * 4)
        Tz = (self._low_w @ Az).reshape(-1, B, 4)
        return np.einsum("nbc,nc->bn", Tz, self._low_v).min(axis=1)
