"""SMPL-format model files: the layout and the validated reader.

An SMPL-format file (SMPL's own ``.pkl`` in its chumpy-free version, ``SMPL_NEUTRAL.npz`` or
the open body of :mod:`hgn_pyg.data.open_body`) is a dict with at least ``v_template [V,3]``,
``f [F,3]``, ``shapedirs [V,3,>=10]``, ``posedirs [V,3,P]``, ``J_regressor [24,V]`` (dense or
scipy.sparse), ``weights [V,24]`` and ``kintree_table [2,24]`` (row 0 the parent of each joint,
the root marked ``2**32 - 1``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import scipy.sparse as sp

from ..errors import DataError
from ..untrusted import load_npz, load_pickle
from .validate import FLOAT32_MAX, unwrap_object

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
    """The dict of an SMPL-format file (``.pkl`` or ``.npz``), read through the restricted reader of
    :mod:`hgn_pyg.untrusted` and checked: every required key with its shape, one vertex count,
    finite numbers that fit float32, integer faces inside ``0..V-1``, kintree parents that precede
    their joint. Any failure is a :class:`~hgn_pyg.errors.DataError` naming the file and key.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"body model file {path} does not exist")
    if path.suffix.lower() == ".npz":
        data = load_npz(path)
        data = {k: unwrap_object(v) for k, v in data.items()}
    else:
        data = load_pickle(path)
    if not isinstance(data, dict):
        raise DataError(f"body model file {path} holds a {type(data).__name__}, expected a dict")
    for key, shape in _REQUIRED.items():
        if key not in data:
            raise DataError(f"body model file {path} has no key '{key}'")
        shp = _shape(data[key])
        ok = len(shp) == len(shape) and all(e is None or e == s for e, s in zip(shape, shp))
        if not ok:
            raise DataError(f"body model file {path}: key '{key}' has shape {list(shp)}, "
                            f"expected {['*' if e is None else e for e in shape]}")
    n = _shape(data["v_template"])[0]
    if n < 4:
        raise DataError(f"body model file {path}: key 'v_template' has {n} vertices")
    for key, axis in (("shapedirs", 0), ("posedirs", 0), ("weights", 0), ("J_regressor", 1)):
        if _shape(data[key])[axis] != n:
            raise DataError(f"body model file {path}: key '{key}' has {_shape(data[key])[axis]} "
                            f"vertices, v_template has {n}")
    if _shape(data["shapedirs"])[2] < 10:
        raise DataError(f"body model file {path}: key 'shapedirs' has fewer than 10 components")
    if "J_regressor_h36m" in data and _shape(data["J_regressor_h36m"]) != (17, n):
        raise DataError(f"body model file {path}: key 'J_regressor_h36m' has shape "
                        f"{list(_shape(data['J_regressor_h36m']))}, expected [17, {n}]")
    for key in _NUMERIC:
        if key in data:
            _check_numbers(data[key], path, key)
    data["f"] = _check_faces(data["f"], n, path)
    _check_kintree(data["kintree_table"], path)
    return data


#: Keys whose numbers must be finite and fit float32 (smplx computes in float32).
_NUMERIC = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "J_regressor_h36m")


def _shape(value: object) -> Tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else np.shape(value)


def _numbers(value: object, path: Path, key: str) -> np.ndarray:
    """The numbers of a dense or scipy.sparse array (the stored entries of a sparse one)."""
    if sp.issparse(value):
        value = value.tocoo().data
    arr = np.asarray(value) if isinstance(value, np.ndarray) else None
    if arr is None or arr.dtype.kind not in "biuf":
        raise DataError(f"body model file {path}: key '{key}' is not a numeric array "
                        f"({type(value).__name__}{'' if arr is None else ' of ' + str(arr.dtype)})")
    return arr


def _check_numbers(value: object, path: Path, key: str) -> None:
    arr = _numbers(value, path, key)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (np.abs(arr) > FLOAT32_MAX)
        if bad.any():
            where = np.unravel_index(int(np.flatnonzero(bad)[0]), arr.shape) if arr.ndim else ()
            raise DataError(f"body model file {path}: key '{key}' holds {arr[where]!r} at "
                            f"{list(map(int, where))} (values must be finite and fit float32)")


def _check_faces(value: object, n: int, path: Path) -> np.ndarray:
    arr = _numbers(value, path, "f")
    if arr.dtype.kind == "f":
        frac = ~np.isfinite(arr) | (arr != np.round(arr))
        if frac.any():
            row = int(np.flatnonzero(frac.any(axis=1))[0])
            raise DataError(f"body model file {path}: key 'f' row {row} holds non-integer vertex "
                            f"indices {arr[row].tolist()}")
    idx = arr.astype(np.int64) if arr.dtype.kind == "f" else arr
    bad = (idx < 0) | (idx >= n)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise DataError(f"body model file {path}: key 'f' row {row} holds vertex indices "
                        f"{np.asarray(arr[row]).tolist()} outside 0..{n - 1}")
    return idx.astype(np.uint32) if arr.dtype.kind == "f" else arr


def _check_kintree(value: object, path: Path) -> None:
    arr = _numbers(value, path, "kintree_table")
    parents = np.asarray(arr[0], dtype=np.float64)
    for j in range(1, len(parents)):
        p = parents[j]
        if not (p == int(p) and 0 <= p < j):
            raise DataError(f"body model file {path}: key 'kintree_table' gives joint {j} the parent "
                            f"{p:g}; a parent must be a joint listed before it (0..{j - 1})")
