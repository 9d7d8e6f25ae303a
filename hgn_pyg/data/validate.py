"""Checked reads of annotation values: each failure is a DataError naming the file and key path.

Shared by the readers of untrusted data files (:mod:`~hgn_pyg.data.human36m`,
:mod:`~hgn_pyg.data.videopose3d`).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import DataError

__all__ = ["key_path", "data_error", "read_json", "get_key", "as_array", "as_int", "as_positive",
           "describe", "check_rotation", "FLOAT32_MAX", "first_bad_row", "unwrap_object"]

#: Largest finite float32: the tensors are float32, so a larger input would become inf there.
FLOAT32_MAX = float(np.finfo(np.float32).max)

PathLike = Union[str, os.PathLike]


def key_path(keys: Sequence[Any]) -> str:
    """``["2"]["1"]["15"]`` for the key sequence ``("2", "1", "15")`` (ints shown as ``[3]``)."""
    return "".join(f"[{k}]" if isinstance(k, int) else f'["{k}"]' for k in keys)


def data_error(path: PathLike, keys: Sequence[Any], message: str) -> DataError:
    """A :class:`DataError` naming the file and the key path: ``file: ["a"]["b"]: message``."""
    where = f"{path}: {key_path(keys)}: " if keys else f"{path}: "
    return DataError(where + message)


def read_json(path: PathLike, what: str = "") -> Any:
    """Parse a JSON file; a missing, unreadable, truncated or malformed file is a DataError."""
    path = Path(path)
    suffix = f" ({what})" if what else ""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found{suffix}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file{suffix} ({exc.strerror or exc})") from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: malformed or truncated JSON at line {exc.lineno} column "
                        f"{exc.colno} ({exc.msg})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file (expected JSON){suffix}") from None
    except (ValueError, RecursionError) as exc:  # absurd nesting, other decoding failures
        raise DataError(f"{path}: not a valid JSON file ({type(exc).__name__}: {exc})") from None


def get_key(obj: Any, key: Any, path: PathLike, keys: Sequence[Any], what: str = "") -> Any:
    """``obj[key]`` for a mapping ``obj``; a DataError names the file and key when it is missing."""
    if not isinstance(obj, Mapping):
        raise data_error(path, keys, f"expected an object, got {type(obj).__name__}")
    if key not in obj:
        label = f" ({what})" if what else ""
        raise data_error(path, list(keys) + [key], f"missing key{label}")
    return obj[key]


def as_array(value: Any, shape: Tuple[int, ...], path: PathLike, keys: Sequence[Any],
             what: str) -> np.ndarray:
    """``value`` as a finite float64 array of ``shape`` (``-1`` = any length), else DataError."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.dtype.kind not in "biuf":
        raise data_error(path, keys, f"expected {what} as numbers, got {describe(value)}")
    if arr.ndim != len(shape) or any(s != -1 and s != n for s, n in zip(shape, arr.shape)):
        want = "×".join("N" if s == -1 else str(s) for s in shape)
        got = "×".join(str(n) for n in arr.shape) if arr.ndim else "a scalar"
        raise data_error(path, keys, f"expected {want} {what}, got {got}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise data_error(path, keys, f"{what} contains NaN or Inf")
    if arr.size and np.abs(arr).max() > FLOAT32_MAX:
        raise data_error(path, keys, f"{what} holds {np.abs(arr).max():.3g}, beyond the float32 range "
                                     f"(±{FLOAT32_MAX:.3g})")
    return arr


def first_bad_row(*arrays: np.ndarray) -> Optional[int]:
    """Index (along axis 0) of the first sample whose values in any of ``arrays`` are NaN/Inf or
    beyond the float32 range, or ``None`` when every sample fits."""
    bad = None
    for a in arrays:
        a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
        with np.errstate(invalid="ignore"):
            rows = ~(np.isfinite(a) & (np.abs(a) <= FLOAT32_MAX)).all(axis=1)
        bad = rows if bad is None else bad | rows
    if bad is None or not bad.any():
        return None
    return int(np.flatnonzero(bad)[0])


def as_int(value: Any, path: PathLike, keys: Sequence[Any]) -> int:
    """An integer field (an integral float is accepted), else DataError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise data_error(path, keys, f"expected an integer, got {describe(value)}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise data_error(path, keys, f"expected an integer, got {value!r}")
    return int(value)


def as_positive(value: Any, path: PathLike, keys: Sequence[Any]) -> float:
    """A finite, strictly positive number, else DataError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise data_error(path, keys, f"expected a positive number, got {describe(value)}")
    return float(value)


def describe(value: Any) -> str:
    """``type repr`` of a value, the repr cut at 40 characters (for error messages)."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def check_rotation(R: np.ndarray, path: PathLike, keys: Sequence[Any]) -> None:
    """DataError unless ``R`` is a proper rotation (orthonormal, det +1) within 1e-3."""
    err = np.abs(R @ R.T - np.eye(3)).max()
    if err > 1e-3 or np.linalg.det(R) < 0:
        raise data_error(path, keys, f"R is not a rotation matrix (|R·Rᵀ − I| = {err:.3g}, "
                                     f"det = {np.linalg.det(R):.3g})")


def unwrap_object(value: Any) -> Any:
    """The object inside a 0-d object array (how ``np.savez`` stores a dict, e.g. VideoPose3D's
    ``positions_2d`` or a body model's entries); any other value unchanged."""
    if isinstance(value, np.ndarray) and value.dtype == object and value.shape == ():
        return value.item()
    return value
