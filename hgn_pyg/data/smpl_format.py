"""SMPL-format model files: the layout and the validated reader.

An SMPL-format file (SMPL's own ``.pkl`` in its chumpy-free version, ``SMPL_NEUTRAL.npz`` or
the open body of :mod:`hgn_pyg.data.open_body`) is a dict with at least ``v_template [V,3]``,
``f [F,3]``, ``shapedirs [V,3,>=10]``, ``posedirs [V,3,P]``, ``J_regressor [24,V]`` (dense or
scipy.sparse), ``weights [V,24]`` and ``kintree_table [2,24]`` (row 0 the parent of each joint,
the root marked ``2**32 - 1``).
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Dict

import numpy as np

from ..errors import DataError

__all__ = ["SMPL_JOINT_NAMES", "SMPL_PARENTS", "SMPL_ROOT_PARENT", "read_body_model_file"]

SMPL_JOINT_NAMES = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
]
SMPL_PARENTS = np.array(
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21],
    dtype=np.int64,
)
#: How SMPL's kintree_table marks the root's parent.
SMPL_ROOT_PARENT = 4294967295

_REQUIRED = {
    "v_template": (None, 3), "f": (None, 3), "shapedirs": (None, 3, None),
    "posedirs": (None, 3, None), "J_regressor": (24, None), "weights": (None, 24),
    "kintree_table": (2, 24),
}


def read_body_model_file(path: Path) -> Dict[str, object]:
    """The dict of an SMPL-format file, its keys and shapes checked (DataError naming the file)."""
    if not path.exists():
        raise DataError(f"body model file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=True) as z:
                data = {k: z[k] for k in z.files}
        else:
            with open(path, "rb") as fh:
                data = pickle.load(fh, encoding="latin1")
    except ModuleNotFoundError as exc:
        raise DataError(
            f"body model file {path} needs the module '{exc.name}' to be unpickled; the original "
            "SMPL .pkl stores chumpy arrays - use a chumpy-free copy (the 'remove chumpy' "
            "version of the SMPL file or SMPL_NEUTRAL.npz)") from exc
    except Exception as exc:  # corrupt or not a pickle / npz
        raise DataError(f"cannot read body model file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"body model file {path} holds a {type(data).__name__}, expected a dict")
    for key, shape in _REQUIRED.items():
        if key not in data:
            raise DataError(f"body model file {path} has no key '{key}'")
        arr = data[key]
        shp = arr.shape if hasattr(arr, "shape") else np.shape(arr)
        ok = len(shp) == len(shape) and all(e is None or e == s for e, s in zip(shape, shp))
        if not ok:
            raise DataError(f"body model file {path}: key '{key}' has shape {list(shp)}, "
                            f"expected {['*' if e is None else e for e in shape]}")
    n = np.shape(data["v_template"])[0]
    for key, axis in (("shapedirs", 0), ("posedirs", 0), ("weights", 0), ("J_regressor", 1)):
        if np.shape(data[key])[axis] != n:
            raise DataError(f"body model file {path}: key '{key}' has {np.shape(data[key])[axis]} "
                            f"vertices, v_template has {n}")
    if np.shape(data["shapedirs"])[2] < 10:
        raise DataError(f"body model file {path}: key 'shapedirs' has fewer than 10 components")
    if not np.isfinite(np.asarray(data["v_template"], dtype=np.float64)).all():
        raise DataError(f"body model file {path}: key 'v_template' holds NaN/inf")
    return data

