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
