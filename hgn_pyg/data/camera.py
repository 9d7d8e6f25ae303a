"""Pinhole camera geometry in the Human3.6M conventions (pure functions, NumPy or torch).

A camera is ``(R [3,3], t [3], f [2], c [2])``: a world point X (mm) maps to the camera point
``X_c = R·X + t``, and to the pixel ``u = X_c/Z_c·f_x + c_x``, ``v = Y_c/Z_c·f_y + c_y``.
Every function broadcasts over leading dimensions (``[..., 3]`` points).
"""
from __future__ import annotations

import numpy as np

__all__ = ["world_to_camera", "camera_to_world", "project", "normalize_screen_coordinates"]


def world_to_camera(X, R, t):
    """``X_c = R·X + t``: X ``[..., 3]``, R ``[3, 3]``, t ``[3]`` -> ``[..., 3]``.

    One camera per sample: X ``[N, P, 3]``, R ``[N, 3, 3]``, t ``[N, 1, 3]``.
    """
    return X @ R.swapaxes(-1, -2) + t


def camera_to_world(Xc, R, t):
    """Inverse of :func:`world_to_camera`: ``X = R^T·(X_c - t)``."""
    return (Xc - t) @ R


def project(Xc, f, c):
    """Pinhole projection of camera points ``[..., 3]`` -> pixels ``[..., 2]``.

    ``u = X/Z·f_x + c_x``, ``v = Y/Z·f_y + c_y`` (no distortion).
    """
    return Xc[..., :2] / Xc[..., 2:3] * f + c


def normalize_screen_coordinates(uv, w, h):
    """Map pixels to ``[-1, 1]`` along the width, keeping the aspect: ``uv/w·2 − [1, h/w]``."""
    if hasattr(uv, "new_tensor"):  # torch
        return uv / w * 2 - uv.new_tensor([1.0, h / w])
    return uv / w * 2 - [1.0, h / w]


# --- quaternion cameras (VideoPose3D / Human3.6M calibration convention) ----------------------
__all__ += ["quaternion_to_matrix", "world_to_camera_quat"]


def quaternion_to_matrix(q):
    """Rotation matrix ``[..., 3, 3]`` of quaternions ``q [..., 4]`` (w, x, y, z; normalised first).

    NumPy in, NumPy out (float64).
    """
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def world_to_camera_quat(X, orientation, position):
    """``X_c = Rᵀ·(X − T)`` for a camera with orientation quaternion ``R`` (camera → world, w x y z)
    and position ``T`` in the world (same units as ``X [..., 3]``); NumPy float64."""
    R = quaternion_to_matrix(orientation)
    return (np.asarray(X, dtype=np.float64) - np.asarray(position, dtype=np.float64)) @ R


__all__ += ["normalize_pixels"]


def normalize_pixels(uv: np.ndarray, width: np.ndarray, height: np.ndarray) -> np.ndarray:
    """docs/published_model.md §4 input normalisation ``uv / w · 2 − (1, h / w)``; uv ``[N, J, 2]``, w/h ``[N]``."""
    w = np.asarray(width, dtype=np.float64)[:, None, None]
    h = np.asarray(height, dtype=np.float64)[:, None, None]
    offset = np.concatenate([np.ones_like(h), h / w], axis=-1)
    return uv / w * 2.0 - offset
