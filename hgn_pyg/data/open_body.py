"""The open, procedural body model, written in SMPL's file format.

SMPL and Human3.6M are licensed, so hgn_pyg ships its own body: a closed, manifold triangle mesh
of exactly 6,890 vertices with SMPL's 24 joints and kinematic tree, made deterministically by the
code below and saved in SMPL's pickled layout, so ``smplx.SMPL(model_path=<file>.pkl)`` loads it
unchanged and every downstream stage (mesh hierarchy, mesh targets) treats it like the real file.

Construction (every step after the cage placement is linear in the cage positions):

1. A voxel "polycube" person (torso, neck, head, arms with hands, legs with feet) gives a closed
   quad control cage; its connectivity is fixed.
2. Each cage vertex is placed from design tables (metres, y up, facing +z, T-pose with the arms
   along +-x, the person's left side at +x), then shape edits (height, leg length, ...) deform it.
3. Two Catmull-Clark subdivisions (a sparse linear operator), quads split into triangles, then
   longest-edge bisections of the template mesh until exactly 6,890 vertices (recorded once, so
   the same sequence of midpoints applies to every shape).
4. ``shapedirs[..., k]`` is the difference of the whole pipeline under the k-th shape edit.
5. Skinning weights come from distances to bone segments, smoothed over the mesh; the 24x6890
   joint regressor holds convex weights of vertices around each joint; the 17x6890 Human3.6M
   regressor reuses those rows (plus head rows), and the vertices each reused row reads are given
   one common skinning-weight vector, so a regressed joint moves exactly like the SMPL joint it
   copies (this is what keeps bone lengths constant in the synthetic data).

The joint centres follow Human3.6M's joint definitions and its published reference skeleton
(:data:`H36M_REFERENCE_BONES_MM`, Martinez et al. 2017): the template (all shape coefficients 0)
has exactly those 16 bone lengths; the hips are the thighs' rotation centres 13.3 cm either side
of the pelvis, the thorax is the neck joint, nose and head top are points fixed in the head.

File keys (SMPL's): ``v_template [V,3]``, ``f [F,3] uint32``, ``shapedirs [V,3,10]``,
``posedirs [V,3,207]`` (zeros), ``J_regressor`` (scipy.sparse csc ``[24,V]``), ``weights [V,24]``,
``kintree_table [2,24]``; ours: ``J_regressor_h36m [17,V]``, ``joint_names``, ``shape_names``,
``hgn_open_body_version``.
"""
from __future__ import annotations

import heapq
import json
import logging
import os
import pickle
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import scipy.sparse as sp
from scipy.optimize import nnls

from ..errors import DataError
from ..graphs.skeleton import H36M
from ..io import atomic_write_bytes, file_lock, remove_stale_temps
from .smpl_format import SMPL_JOINT_NAMES, SMPL_PARENTS, SMPL_ROOT_PARENT

logger = logging.getLogger(__name__)

__all__ = [
    "BODY_MODEL_VERSION",
    "NUM_VERTICES",
    "SHAPE_NAMES",
    "H36M_JOINT_NAMES",
    "H36M_FROM_SMPL",
    "H36M_REFERENCE_BONES_MM",
    "STATIC_JOINTS",
    "build_open_body_model",
    "design_joints",
    "default_body_model_path",
    "make_open_body_data",
    "check_closed_manifold",
    "signed_volume",
]

#: Bump whenever the generated file would change; cached copies are rebuilt on mismatch.
BODY_MODEL_VERSION = "hgn-open-body-2.0"  # 2.0: the Human3.6M reference skeleton
NUM_VERTICES = 6890
SHAPE_NAMES = [
    "height", "girth", "leg_length", "arm_length", "torso_length", "shoulder_width",
    "hip_width", "belly", "head_size", "limb_thickness",
]
#: The 17 Human3.6M joints (:data:`hgn_pyg.graphs.skeleton.H36M`'s names and order).
H36M_JOINT_NAMES = list(H36M.joint_names)
#: Human3.6M joint -> the SMPL joint whose regressor row it copies (-1: own row).
#: Note the sides: H36M "R_Hip" is the person's right hip = SMPL joint 2.
H36M_FROM_SMPL = [-1, 2, 5, 8, 1, 4, 7, 3, 12, -1, -1, 16, 18, 20, 17, 19, 21]
#: SMPL joints whose rotation the synthetic motions keep at zero (spine2, spine3, collars, head):
#: with those fixed, every Human3.6M bone of the regressed skeleton is rigid.
STATIC_JOINTS = (6, 9, 13, 14, 15)

# --------------------------------------------------------------------------------------------
# 1. The quad cage (voxel person)
# --------------------------------------------------------------------------------------------
# Grid lines: x -10..10 (|x| <= 2 torso/legs/neck, 3..10 arm rings), y 0..17 (0 sole .. 7 crotch
# .. 13 shoulder line .. 17 head top), z -1..3 (-1 back, 1 front, 2..3 toes).


def _voxels() -> List[Tuple[int, int, int]]:
    cells = set()
    for cx in range(-2, 2):  # torso
        for cy in range(7, 13):
            for cz in (-1, 0):
                cells.add((cx, cy, cz))
    for cx in (1, -2):  # legs
        for cy in range(0, 7):
            for cz in (-1, 0):
                cells.add((cx, cy, cz))
        for cz in (1, 2):  # feet
            cells.add((cx, 0, cz))
    for cx in list(range(2, 10)) + list(range(-10, -2)):  # arms and hands
        for cz in (-1, 0):
            cells.add((cx, 12, cz))
    for cx in (-1, 0):  # neck and head
        for cy in range(13, 17):
            for cz in (-1, 0):
                cells.add((cx, cy, cz))
    return sorted(cells)


def _cage() -> Tuple[np.ndarray, np.ndarray]:
    """Boundary quads of the voxel person: (grid coordinates [Nc,3] int, quads [F,4])."""
    cells = set(_voxels())
    unit = np.eye(3, dtype=np.int64)
    quads_xyz = []
    for cell in sorted(cells):
        c = np.array(cell, dtype=np.int64)
        for axis in range(3):
            u, v = unit[(axis + 1) % 3], unit[(axis + 2) % 3]
            for sign in (1, -1):
                nb = tuple(c + sign * unit[axis])
                if nb in cells:
                    continue
                base = c + (unit[axis] if sign > 0 else 0)
                corners = [base, base + u, base + u + v, base + v]  # normal u x v = +axis
                if sign < 0:
                    corners = corners[::-1]
                quads_xyz.append([tuple(p) for p in corners])
    points = sorted({p for q in quads_xyz for p in q})
    index = {p: i for i, p in enumerate(points)}
    quads = np.array([[index[p] for p in q] for q in quads_xyz], dtype=np.int64)
    return np.array(points, dtype=np.int64), quads


# --------------------------------------------------------------------------------------------
# 2. Placement of the cage (design tables, metres, soles at y = 0; shifted at the end)
# --------------------------------------------------------------------------------------------
_TORSO_Y = {7: 0.925, 8: 1.025, 9: 1.14, 10: 1.23, 11: 1.315, 12: 1.385, 13: 1.465}
# half widths at |gx| = 1 and |gx| = 2
_TORSO_X = {7: (0.03, 0.168), 8: (0.095, 0.18), 9: (0.082, 0.155), 10: (0.085, 0.163),
            11: (0.10, 0.19), 12: (0.10, 0.188), 13: (0.075, 0.178)}
# back / front depth (z)
_TORSO_Z = {7: (-0.095, 0.075), 8: (-0.13, 0.09), 9: (-0.10, 0.10), 10: (-0.10, 0.11),
            11: (-0.11, 0.14), 12: (-0.11, 0.115), 13: (-0.085, 0.065)}
# legs: y, centre x, half width x, centre z, half depth z
_LEG = {0: (0.0, 0.095, 0.05, 0.0, 0.0), 1: (0.085, 0.09, 0.045, -0.005, 0.05),
        2: (0.214, 0.092, 0.054, -0.01, 0.06), 3: (0.371, 0.095, 0.072, -0.015, 0.08),
        4: (0.540, 0.097, 0.068, 0.0, 0.07), 5: (0.677, 0.102, 0.085, -0.005, 0.092),
        6: (0.813, 0.106, 0.097, -0.01, 0.105)}
_FOOT_SOLE_Z = {-1: -0.075, 0: 0.0, 1: 0.07, 2: 0.14, 3: 0.205}
_FOOT_TOP = {2: (0.06, 0.13), 3: (0.035, 0.20)}  # gz: (y, z) of the instep/toe top line
# arms: x, centre y, half height y, centre z, half depth z
_ARM = {3: (0.215, 1.415, 0.072, -0.015, 0.088), 4: (0.302, 1.427, 0.074, -0.015, 0.075),
        5: (0.425, 1.431, 0.058, -0.015, 0.062), 6: (0.543, 1.433, 0.058, -0.01, 0.068),
        7: (0.677, 1.435, 0.038, -0.005, 0.05), 8: (0.742, 1.435, 0.027, 0.0, 0.066),
        9: (0.822, 1.433, 0.021, 0.0, 0.064), 10: (0.897, 1.43, 0.015, 0.0, 0.046)}
# neck/head rings: y, half width x, back z, front z
_HEAD = {14: (1.515, 0.08, -0.07, 0.10), 15: (1.57, 0.115, -0.125, 0.13),
         16: (1.655, 0.115, -0.13, 0.11), 17: (1.73, 0.075, -0.085, 0.06)}

#: The Human3.6M reference skeleton (mm): the bone lengths of the Human3.6M skeleton offsets
#: published with the motion-prediction code of Martinez, Black and Romero, "On human motion
#: prediction using recurrent neural networks" (CVPR 2017; reused by QuaterNet, Pavllo et al.
#: 2018). Keys name the 16 bones of the 17-joint skeleton as (parent, child) joint indices of
#: :data:`H36M_JOINT_NAMES`; left and right sides share a length.
H36M_REFERENCE_BONES_MM: Dict[Tuple[int, int], float] = {
    (0, 1): 132.95, (0, 4): 132.95,      # pelvis -> hip
    (1, 2): 442.89, (4, 5): 442.89,      # thigh
    (2, 3): 454.21, (5, 6): 454.21,      # shin
    (0, 7): 233.38,                      # spine: pelvis -> torso
    (7, 8): 257.08,                      # thorax: torso -> neck/thorax
    (8, 9): 121.13,                      # neck: thorax -> nose
    (9, 10): 115.00,                     # head: nose -> head top
    (8, 11): 151.03, (8, 14): 151.03,    # shoulder: thorax -> shoulder
    (11, 12): 278.88, (14, 15): 278.88,  # upper arm
    (12, 13): 251.73, (15, 16): 251.73,  # forearm
}


def _along(start, length_mm: float, direction) -> np.ndarray:
    """``start`` plus a vector of ``length_mm`` (converted to metres) along ``direction``."""
    d = np.asarray(direction, dtype=np.float64)
    return np.asarray(start, dtype=np.float64) + length_mm / 1000.0 * d / np.linalg.norm(d)


def _design_joints() -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Design joints (SMPL order, metres, soles at y = 0) placed so that the Human3.6M joints they
    carry have exactly the reference bone lengths :data:`H36M_REFERENCE_BONES_MM` (the bone
    directions are the T-pose's), plus the Human3.6M nose and head-top points.

    The Human3.6M hips are the rotation centres of the thighs (SMPL joints 1, 2), 13.3 cm either
    side of the pelvis at its height; the pelvis is their midpoint; torso = spine1, thorax = the
    SMPL neck joint, shoulders/elbows/wrists the SMPL arm joints; nose and head top are points
    fixed in the head.
    """
    b = H36M_REFERENCE_BONES_MM
    J = np.zeros((24, 3))
    J[0] = (0.0, 0.982, -0.012)  # pelvis (root rotation centre)
    for side, hip, knee, ankle in ((1.0, 1, 4, 7), (-1.0, 2, 5, 8)):
        J[hip] = _along(J[0], b[(0, 1)], (side, 0, 0))
        J[knee] = _along(J[hip], b[(1, 2)], (side * (0.097 - 0.13295) / 0.44, -1.0, 0.012 / 0.44))
        J[ankle] = _along(J[knee], b[(2, 3)], (-side * 0.007 / 0.454, -1.0, -0.01 / 0.454))
        J[ankle + 3] = (side * 0.095, 0.025, 0.12)  # ball of the foot
    J[3] = _along(J[0], b[(0, 7)], (0, 1.0, -0.013 / 0.233))  # spine1 = H36M torso
    J[12] = _along(J[3], b[(7, 8)], (0, 1.0, 0.01 / 0.257))  # neck base = H36M thorax
    J[6] = J[3] + 0.35 * (J[12] - J[3])  # spine2
    J[9] = J[3] + 0.65 * (J[12] - J[3])  # spine3
    J[15] = J[12] + (0.0, 0.073, 0.015)  # head (static: its vertices move with the neck)
    for side, collar, sh, el, wr, hand in ((1.0, 13, 16, 18, 20, 22), (-1.0, 14, 17, 19, 21, 23)):
        J[collar] = J[12] + (side * 0.07, -0.035, 0.0)
        J[sh] = _along(J[12], b[(8, 11)], (side * 0.14564, -0.04, 0.0))
        J[el] = _along(J[sh], b[(11, 12)], (side, 0.0, 0.0))
        J[wr] = _along(J[el], b[(12, 13)], (side * 0.2515, 0.0, 0.01))
        J[hand] = J[wr] + (side * 0.095, 0.0, 0.005)
    nose = _along(J[12], b[(8, 9)], (0.0, 0.87, 0.49))
    head_top = _along(nose, b[(9, 10)], (0.0, 0.97, -0.25))
    return J, nose, head_top


def design_joints() -> np.ndarray:
    """The template's 24 joint centres ``[24, 3]`` (SMPL order, metres, the model's frame with
    the soles at y = -1.15): the reference skeleton the synthetic motions are checked on."""
    return _design_joints()[0] + np.array([0.0, _Y_SHIFT, 0.0])


# Design joints (same frame), SMPL order; the Human3.6M nose and head-top points.
_JOINTS, _NOSE, _HEAD_TOP = _design_joints()
_LEAF_TIPS = {10: (0.10, 0.02, 0.20), 11: (-0.10, 0.02, 0.20), 15: (0.0, 1.74, 0.0),
              22: (0.89, 1.43, 0.0), 23: (-0.89, 1.43, 0.0)}
_Y_SHIFT = -1.15  # soles end up at y = -1.15 like SMPL's template


def _region(g: np.ndarray) -> np.ndarray:
    """0 torso, 1 leg/foot, 2 arm, 3 neck/head for each cage vertex (grid coords [N,3])."""
    gx, gy = np.abs(g[:, 0]), g[:, 1]
    r = np.zeros(len(g), dtype=np.int64)
    r[gy < 7] = 1
    r[gx >= 3] = 2
    r[gy >= 14] = 3
    return r


def _place(g: np.ndarray) -> np.ndarray:
    """Template positions of the cage vertices from the design tables."""
    out = np.zeros((len(g), 3))
    region = _region(g)
    for i, (gx, gy, gz) in enumerate(g):
        s = 1.0 if gx > 0 else (-1.0 if gx < 0 else 0.0)
        ax = abs(gx)
        if region[i] == 0:
            x = 0.0 if ax == 0 else _TORSO_X[gy][ax - 1]
            zb, zf = _TORSO_Z[gy]
            z = {-1: zb, 0: 0.5 * (zb + zf), 1: zf}[gz]
            if ax == 2 and gz != 0:  # round the corners of the cross-section
                z *= 0.75
            y = _TORSO_Y[gy]
            if gy == 13:  # sloping shoulders
                y += {0: 0.0, 1: 0.005, 2: -0.02}[ax]
            out[i] = (s * x, y, z)
        elif region[i] == 1:
            y, cx, rx, cz, rz = _LEG[gy]
            x = cx + (rx if ax == 2 else -rx)
            if gy == 0:
                z = _FOOT_SOLE_Z[gz]
                y = 0.0 if gz < 3 else 0.012
                if gz == -1:
                    y = 0.01
            elif gy == 1 and gz >= 2:
                y, z = _FOOT_TOP[gz]
            else:
                z = cz + gz * rz
                if gz != 0 and gy >= 2:
                    x = cx + 0.8 * (x - cx)
            if gy <= 1:
                x = cx + (rx if ax == 2 else -rx) * (1.2 if gz >= 1 else 1.0)
            out[i] = (s * x, y, z)
        elif region[i] == 2:
            x, cy, ry, cz, rz = _ARM[ax]
            y = cy + (ry if gy == 13 else -ry)
            z = cz + gz * rz
            if gz != 0:
                y = cy + 0.8 * (y - cy)
            out[i] = (s * x, y, z)
        else:
            y, hx, zb, zf = _HEAD[gy]
            x = s * hx if ax else 0.0
            z = {-1: zb, 0: 0.5 * (zb + zf), 1: zf}[gz]
            if ax and gz != 0:
                x *= 0.85
                z *= 0.9
            out[i] = (x, y, z)
    return out


# Shape edits: each maps (template cage, grid coords, amount) -> edited cage, affine in amount.
def _ring_keys(g: np.ndarray) -> np.ndarray:
    """An id per cross-section ring (used to scale about ring centres)."""
    region = _region(g)
    side = np.sign(g[:, 0])
    ring = np.where(region == 2, np.abs(g[:, 0]), g[:, 1])
    return region * 10000 + (side + 1) * 100 * (region != 0) * (region != 3) + ring


def _scale_rings(P, g, mask, fx, fz_or_y, axis_pair=(0, 2)):
    keys = _ring_keys(g)
    out = P.copy()
    for k in np.unique(keys[mask]):
        sel = mask & (keys == k)
        c = P[sel].mean(axis=0)
        a, b = axis_pair
        out[sel, a] = c[a] + fx * (P[sel, a] - c[a])
        out[sel, b] = c[b] + fz_or_y * (P[sel, b] - c[b])
    return out


def _shape_edit(P: np.ndarray, g: np.ndarray, k: int, t: float) -> np.ndarray:
    region = _region(g)
    P = P.copy()
    y_crotch, y_shoulder = _TORSO_Y[7], _TORSO_Y[13]
    if k == 0:  # height: about 5% per unit, widths follow a little
        P[:, 1] *= 1 + 0.05 * t
        P[:, [0, 2]] *= 1 + 0.015 * t
    elif k == 1:  # girth / weight
        legs, arms = region == 1, region == 2
        torso = region == 0
        P = _scale_rings(P, g, legs & (g[:, 1] >= 2), 1 + 0.07 * t, 1 + 0.07 * t)
        P = _scale_rings(P, g, arms & (np.abs(g[:, 0]) <= 6), 1 + 0.06 * t, 1 + 0.06 * t, (1, 2))
        P[torso, 0] *= 1 + 0.08 * t
        P[torso, 2] *= 1 + 0.10 * t
        P[region == 2, 0] += np.sign(P[region == 2, 0]) * 0.015 * t
    elif k == 2:  # leg length (moves everything above the crotch)
        below = P[:, 1] < y_crotch - 1e-9
        d = 0.06 * t
        P[below, 1] *= 1 + d / y_crotch
        P[~below, 1] += d
    elif k == 3:  # arm length
        arms = region == 2
        x0 = _TORSO_X[12][1]
        ax = np.abs(P[arms, 0])
        P[arms, 0] = np.sign(P[arms, 0]) * (x0 + (ax - x0) * (1 + 0.07 * t))
    elif k == 4:  # torso length
        L = y_shoulder - y_crotch
        mid = (P[:, 1] >= y_crotch - 1e-9) & (region != 2) & (region != 3)
        P[mid, 1] = y_crotch + (P[mid, 1] - y_crotch) * (1 + 0.07 * t)
        up = (region == 2) | (region == 3)
        P[up, 1] += 0.07 * t * L * np.where(region[up] == 2, (P[up, 1] - y_crotch) / L, 1.0)
    elif k == 5:  # shoulder width
        w = np.clip((P[:, 1] - _TORSO_Y[10]) / (_TORSO_Y[12] - _TORSO_Y[10]), 0, 1)
        torso_out = (region == 0) & (np.abs(g[:, 0]) == 2)
        d = 0.018 * t
        P[torso_out, 0] += np.sign(P[torso_out, 0]) * d * w[torso_out]
        P[region == 2, 0] += np.sign(P[region == 2, 0]) * d
    elif k == 6:  # hip width
        w = np.clip((_TORSO_Y[10] - P[:, 1]) / (_TORSO_Y[10] - _TORSO_Y[8]), 0, 1)
        torso = (region == 0) & (np.abs(g[:, 0]) >= 1)
        d = 0.015 * t
        P[torso, 0] += np.sign(P[torso, 0]) * d * w[torso]
        legs = region == 1
        fall = np.clip(P[legs, 1] / y_crotch, 0.3, 1.0)
        P[legs, 0] += np.sign(P[legs, 0]) * d * fall
    elif k == 7:  # belly
        front = (region == 0) & (g[:, 2] == 1)
        bump = np.exp(-((P[:, 1] - 1.18) / 0.09) ** 2) * (1 - 0.3 * np.abs(g[:, 0]) / 2)
        P[front, 2] += 0.025 * t * bump[front]
        side = (region == 0) & (np.abs(g[:, 0]) == 2)
        P[side, 0] += np.sign(P[side, 0]) * 0.006 * t * bump[side]
    elif k == 8:  # head size
        head = region == 3
        c = np.array([0.0, 1.60, 0.0])
        P[head] = c + (P[head] - c) * (1 + 0.06 * t)
    elif k == 9:  # limb thickness
        legs, arms = region == 1, region == 2
        P = _scale_rings(P, g, legs & (g[:, 1] >= 2), 1 + 0.08 * t, 1 + 0.08 * t)
        P = _scale_rings(P, g, arms & (np.abs(g[:, 0]) <= 7), 1 + 0.08 * t, 1 + 0.08 * t, (1, 2))
    return P


# --------------------------------------------------------------------------------------------
# 3. Subdivision (linear operators)
# --------------------------------------------------------------------------------------------
def _catmull_clark(quads: np.ndarray, n: int) -> Tuple[sp.csr_matrix, np.ndarray]:
    """One Catmull-Clark step on a closed quad mesh: (operator [n', n], new quads)."""
    F = len(quads)
    a = quads.reshape(-1)
    b = np.roll(quads, -1, axis=1).reshape(-1)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    ekey = lo * n + hi
    uniq, e_of_side = np.unique(ekey, return_inverse=True)
    E = len(uniq)
    e_of_side = e_of_side.reshape(F, 4)
    ea, eb = uniq // n, uniq % n
    face_of_side = np.repeat(np.arange(F), 4)
    # face points: mean of the 4 corners
    Fm = sp.csr_matrix((np.full(4 * F, 0.25), (face_of_side, a)), shape=(F, n))
    # edge midpoints and the faces on each edge
    Em = sp.csr_matrix((np.full(2 * E, 0.5), (np.r_[np.arange(E), np.arange(E)], np.r_[ea, eb])),
                       shape=(E, n))
    EF = sp.csr_matrix((np.full(4 * F, 1.0), (e_of_side.reshape(-1), face_of_side)), shape=(E, F))
    if not np.all(np.asarray(EF.sum(axis=1)).ravel() == 2):
        raise RuntimeError("cage is not a closed manifold quad mesh")
    Ep = 0.5 * Em + 0.25 * (EF @ Fm)
    # vertex points: (Q + 2R + (k-3)S)/k
    VF = sp.csr_matrix((np.ones(4 * F), (a, face_of_side)), shape=(n, F))
    VE = sp.csr_matrix((np.ones(2 * E), (np.r_[ea, eb], np.r_[np.arange(E), np.arange(E)])),
                       shape=(n, E))
    val = np.asarray(VE.sum(axis=1)).ravel()
    inv = sp.diags(1.0 / val)
    Vp = inv @ (inv @ (VF @ Fm)) + 2 * inv @ (inv @ (VE @ Em)) + sp.diags((val - 3) / val)
    op = sp.vstack([Vp, Ep, Fm]).tocsr()
    fp = n + E + np.arange(F)
    new = []
    for i in range(4):
        e_next = n + e_of_side[:, i]
        e_prev = n + e_of_side[:, (i - 1) % 4]
        new.append(np.stack([quads[:, i], e_next, fp, e_prev], axis=1))
    new_quads = np.stack(new, axis=1).reshape(-1, 4)
    return op, new_quads


def _bisect_to(faces: np.ndarray, pos: np.ndarray, target: int):
    """Longest-edge bisection of a closed triangle mesh until ``target`` vertices.

    Each step splits the longest edge (ties: lowest vertex ids) at its midpoint and each of its
    two triangles in two, which keeps the mesh closed, manifold and consistently oriented.
    Returns (faces [F',3], list of (a, b) midpoint parents in creation order).
    """
    faces = [list(f) for f in faces]
    pos = list(pos)
    edges: Dict[Tuple[int, int], set] = {}
    for fi, f in enumerate(faces):
        for j in range(3):
            u, v = f[j], f[(j + 1) % 3]
            edges.setdefault((min(u, v), max(u, v)), set()).add(fi)

    def key(u, v):
        return (-round(float(np.linalg.norm(pos[u] - pos[v])), 9), min(u, v), max(u, v))

    heap = [key(u, v) for (u, v) in edges]
    heapq.heapify(heap)
    parents = []
    n = len(pos)
    while n < target:
        _, u, v = heapq.heappop(heap)
        if (u, v) not in edges:
            continue
        m = n
        n += 1
        pos.append(0.5 * (pos[u] + pos[v]))
        parents.append((u, v))
        spokes = []
        for fi in sorted(edges.pop((u, v))):
            f = faces[fi]
            j = next(j for j in range(3) if {f[j], f[(j + 1) % 3]} == {u, v})
            x, y, z = f[j], f[(j + 1) % 3], f[(j + 2) % 3]
            fj = len(faces)
            faces[fi] = [x, m, z]
            faces.append([m, y, z])
            ek = (min(y, z), max(y, z))
            edges[ek].discard(fi)
            edges[ek].add(fj)
            for (p, q, fs) in ((x, m, (fi,)), (m, y, (fj,)), (m, z, (fi, fj))):
                edges.setdefault((min(p, q), max(p, q)), set()).update(fs)
            spokes.append(z)
        for w in [u, v] + spokes:
            heapq.heappush(heap, key(m, w))
    return np.array(faces, dtype=np.int64), parents


def _mesh_operator(g: np.ndarray, quads: np.ndarray, cage: np.ndarray, levels: int = 2):
    """(operator [6890, Nc] as CSR, faces [F,3]) from the cage connectivity and template cage."""
    op = sp.identity(len(g), format="csr")
    n = len(g)
    for _ in range(levels):
        step, quads = _catmull_clark(quads, n)
        op = (step @ op).tocsr()
        n = op.shape[0]
    if n > NUM_VERTICES:
        raise RuntimeError(f"subdivided cage has {n} > {NUM_VERTICES} vertices")
    tris = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]], axis=0)
    tris = tris.reshape(2, -1, 3).transpose(1, 0, 2).reshape(-1, 3)  # keep a quad's halves adjacent
    base = op @ cage
    faces, parents = _bisect_to(tris, base, NUM_VERTICES)
    if parents:
        # new vertex i is 0.5 (a + b) where a, b may be earlier new vertices: expand in order
        row_of: Dict[int, Dict[int, float]] = {}
        rows, cols, vals = [], [], []
        for i, (a, b) in enumerate(parents):
            r: Dict[int, float] = {}
            for p in (a, b):
                for c, w in (row_of[p].items() if p >= n else ((p, 1.0),)):
                    r[c] = r.get(c, 0.0) + 0.5 * w
            row_of[n + i] = r
            for c, w in r.items():
                rows.append(n + i)
                cols.append(c)
                vals.append(w)
        B = sp.csr_matrix((np.r_[np.ones(n), vals], (np.r_[np.arange(n), rows],
                                                     np.r_[np.arange(n), cols])),
                          shape=(n + len(parents), n))
        op = (B @ op).tocsr()
    return op, faces


# --------------------------------------------------------------------------------------------
# 4. Mesh checks
# --------------------------------------------------------------------------------------------
def check_closed_manifold(faces: np.ndarray, num_vertices: int) -> Dict[str, float]:
    """Check that ``faces`` form one closed, consistently oriented, manifold surface.

    Returns a report (``edges``, ``components``, ``volume``, ``euler``); raises
    :class:`~hgn_pyg.errors.DataError` naming the first offending edge/vertex otherwise.
    """
    faces = np.asarray(faces, dtype=np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise DataError(f"faces must be [F, 3], got {list(faces.shape)}")
    used = np.zeros(num_vertices, dtype=bool)
    used[faces.reshape(-1)] = True
    if not used.all():
        raise DataError(f"vertex {int(np.flatnonzero(~used)[0])} is in no face")
    a = faces.reshape(-1)
    b = np.roll(faces, -1, axis=1).reshape(-1)
    directed = a * num_vertices + b
    if len(np.unique(directed)) != len(directed):
        raise DataError("a directed edge appears twice (inconsistent orientation or non-manifold)")
    undirected, counts = np.unique(np.minimum(a, b) * num_vertices + np.maximum(a, b),
                                   return_counts=True)
    if not np.all(counts == 2):
        bad = int(undirected[np.flatnonzero(counts != 2)[0]])
        raise DataError(f"edge ({bad // num_vertices}, {bad % num_vertices}) is in "
                        f"{int(counts[counts != 2][0])} faces, expected 2")
    reverse = b * num_vertices + a
    if not np.all(np.isin(reverse, directed)):
        raise DataError("faces are not consistently oriented")
    adj = sp.csr_matrix((np.ones(len(a)), (a, b)), shape=(num_vertices, num_vertices))
    ncomp, _ = sp.csgraph.connected_components(adj, directed=False)
    # vertex links must be single cycles (no pinched vertices)
    nxt = {}
    for f in faces:
        for j in range(3):
            nxt[(int(f[j]), int(f[(j + 1) % 3]))] = int(f[(j + 2) % 3])
    fan_count = np.bincount(a, minlength=num_vertices)
    start = {}
    for (v, w) in nxt:
        start.setdefault(v, w)
    for v, w0 in start.items():
        w, steps = w0, 0
        while True:
            w = nxt[(v, w)]
            steps += 1
            if w == w0 or steps > fan_count[v]:
                break
        if steps != fan_count[v]:
            raise DataError(f"vertex {v} is not manifold (its faces form more than one fan)")
    return {
        "edges": int(len(undirected)),
        "components": int(ncomp),
        "euler": int(num_vertices - len(undirected) + len(faces)),
    }


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume of a closed mesh (positive when the faces point outwards)."""
    v = np.asarray(vertices, dtype=np.float64)[np.asarray(faces, dtype=np.int64)]
    return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)


# --------------------------------------------------------------------------------------------
# 5. Rigging: skinning weights and regressors
# --------------------------------------------------------------------------------------------
def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def _vertex_adjacency(faces: np.ndarray, n: int) -> sp.csr_matrix:
    a = faces.reshape(-1)
    b = np.roll(faces, -1, axis=1).reshape(-1)
    A = sp.csr_matrix((np.ones(2 * len(a)), (np.r_[a, b], np.r_[b, a])), shape=(n, n))
    A.data[:] = 1.0
    return A


def _skinning_weights(v: np.ndarray, faces: np.ndarray, joints: np.ndarray,
                      tau: float = 0.012, smooth: int = 12, keep: int = 4) -> np.ndarray:
    n = len(v)
    dist = np.full((n, 24), np.inf)
    for j in range(24):
        ends = [joints[c] for c in range(24) if SMPL_PARENTS[c] == j]
        if j in _LEAF_TIPS:
            ends.append(np.array(_LEAF_TIPS[j]))
        for e in ends:
            dist[:, j] = np.minimum(dist[:, j], _segment_distance(v, joints[j], np.asarray(e)))
    w = np.exp(-(dist - dist.min(axis=1, keepdims=True)) / tau)
    w /= w.sum(axis=1, keepdims=True)
    A = _vertex_adjacency(faces, n)
    D = sp.diags(1.0 / np.asarray(A.sum(axis=1)).ravel())
    L = D @ A
    head = (v[:, 1] > joints[15, 1]) & (np.abs(v[:, 0]) < 0.15)
    head_frame = np.array([_effective(k) == 12 for k in range(24)])
    for _ in range(smooth):
        w = 0.5 * w + 0.5 * (L @ w)
        w[np.ix_(head, ~head_frame)] = 0.0  # the skull moves rigidly with the neck joint
        w /= w.sum(axis=1, keepdims=True)
    # keep the largest few per vertex
    idx = np.argsort(-w, axis=1, kind="stable")[:, keep:]
    np.put_along_axis(w, idx, 0.0, axis=1)
    w[w < 1e-3] = 0.0
    return w / w.sum(axis=1, keepdims=True)


def _relax_weights(v, faces, w, fixed, joints, iters=25, keep=4):
    """Laplacian smoothing of the free vertices' weights with ``fixed`` rows held."""
    n = len(v)
    A = _vertex_adjacency(faces, n)
    L = sp.diags(1.0 / np.asarray(A.sum(axis=1)).ravel()) @ A
    head = (v[:, 1] > joints[15, 1]) & (np.abs(v[:, 0]) < 0.15)
    head_frame = np.array([_effective(k) == 12 for k in range(24)])
    near = np.asarray((A @ fixed.astype(float)) > 0).ravel()
    for _ in range(3):  # a band a few rings wide around the fixed vertices
        near = np.asarray((A @ near.astype(float)) > 0).ravel()
    free = near & ~fixed
    for _ in range(iters):
        w[free] = 0.5 * w[free] + 0.5 * (L @ w)[free]
        w[np.ix_(head & free, ~head_frame)] = 0.0
        w[free] /= w[free].sum(axis=1, keepdims=True)
    sub = w[free]
    idx = np.argsort(-sub, axis=1, kind="stable")[:, keep:]
    np.put_along_axis(sub, idx, 0.0, axis=1)
    sub[sub < 1e-3] = 0.0
    w[free] = sub / sub.sum(axis=1, keepdims=True)
    return w


def _convex_weights(points: np.ndarray, target: np.ndarray, reg: float = 0.03) -> np.ndarray:
    """Non-negative weights summing to 1 whose combination of ``points`` is ``target``."""
    d = np.linalg.norm(points - target, axis=1)
    alpha = 100.0
    A = np.vstack([alpha * points.T, alpha * np.ones((1, len(points))), reg * np.diag(d / d.max())])
    b = np.r_[alpha * target, alpha, np.zeros(len(points))]
    r, _ = nnls(A, b, maxiter=50 * len(points))
    r[r < 1e-6] = 0.0
    return r / r.sum()


def _effective(k: int) -> int:
    while k in STATIC_JOINTS:
        k = int(SMPL_PARENTS[k])
    return k


def _rig(v: np.ndarray, faces: np.ndarray):
    """(weights [V,24], J_regressor [24,V], J_regressor_h36m [17,V]) for the template ``v``."""
    joints = _JOINTS + np.array([0.0, _Y_SHIFT, 0.0])
    tips = {k: np.asarray(t) + np.array([0.0, _Y_SHIFT, 0.0]) for k, t in _LEAF_TIPS.items()}
    saved = dict(_LEAF_TIPS)
    _LEAF_TIPS.update(tips)
    try:
        w = _skinning_weights(v, faces, joints)
    finally:
        _LEAF_TIPS.clear()
        _LEAF_TIPS.update(saved)
    n = len(v)
    Jr = np.zeros((24, n))
    needed = [x for x in H36M_FROM_SMPL if x >= 0]
    used = np.zeros(n, dtype=bool)
    for j in needed + [j for j in range(24) if j not in needed]:
        d = np.linalg.norm(v - joints[j], axis=1)
        if j in needed:
            d = np.where(used, np.inf, d)
        cand = np.argsort(d, kind="stable")[:40]
        r = _convex_weights(v[cand], joints[j])
        if np.linalg.norm(r @ v[cand] - joints[j]) > 1e-4:
            # one-sided neighbourhood: use the cross-section through the joint instead
            axis = joints[j] - joints[max(int(SMPL_PARENTS[j]), 0)]
            if j == 0 or abs(axis[1]) > 0.5 * np.linalg.norm(axis):
                axis = np.array([0.0, 1.0, 0.0])
            axis = axis / np.linalg.norm(axis)
            h = np.abs((v - joints[j]) @ axis)
            width = 0.015
            slab = np.flatnonzero((h < width) & np.isfinite(d))
            while len(slab) < 30:
                width *= 1.5
                slab = np.flatnonzero((h < width) & np.isfinite(d))
            slab = slab[np.argsort(d[slab], kind="stable")]
            for reach in (1.6, 2.0, 2.5, 3.5, np.inf):  # stay close to the joint
                cand = slab[d[slab] <= reach * d[slab[0]]][:80]
                r = _convex_weights(v[cand], joints[j])
                if np.linalg.norm(r @ v[cand] - joints[j]) < 1e-4:
                    break
        err = np.linalg.norm(r @ v[cand] - joints[j])
        if err > 1e-3:
            raise RuntimeError(f"joint regressor row {j} misses its joint by {err:.4f} m")
        Jr[j, cand] = r
        if j in needed:
            sup = cand[r > 0]
            used[sup] = True
            allowed = np.array([_effective(k) in (_effective(j), _effective(int(SMPL_PARENTS[j])))
                                for k in range(24)])
            common = (r[r > 0, None] * w[sup]).sum(axis=0) * allowed
            w[sup] = common / common.sum()
    # blend the neighbourhoods of the fixed vertices into their common weights
    w = _relax_weights(v, faces, w, used, joints)
    # Human3.6M rows
    H = np.zeros((17, n))
    for i, x in enumerate(H36M_FROM_SMPL):
        if x >= 0:
            H[i] = Jr[x]
    H[0] = 0.5 * (Jr[1] + Jr[2])
    head_frame = np.array([_effective(k) == 12 for k in range(24)])
    rigid_head = np.flatnonzero((w[:, ~head_frame] == 0).all(axis=1))
    for i, q in ((9, _NOSE), (10, _HEAD_TOP)):
        q = np.asarray(q) + np.array([0.0, _Y_SHIFT, 0.0])
        d = np.linalg.norm(v[rigid_head] - q, axis=1)
        for count in (40, 80, 160, 320):  # widen until the point lies inside the candidates
            cand = rigid_head[np.argsort(d, kind="stable")[:count]]
            r = _convex_weights(v[cand], q)
            err = np.linalg.norm(r @ v[cand] - q)
            if err < 1e-4:
                break
        if err > 1e-3:
            raise RuntimeError(f"Human3.6M regressor row {i} misses its point by {err:.4f} m")
        H[i, cand] = r
    return w, Jr, H


# --------------------------------------------------------------------------------------------
# 6. Assembling and saving the model
# --------------------------------------------------------------------------------------------
def make_open_body_data() -> Dict[str, object]:
    """Build the open body model in memory: a dict in SMPL's layout (see the module docstring)."""
    g, quads = _cage()
    base = _place(g)
    op, faces = _mesh_operator(g, quads, base)
    shift = np.array([0.0, _Y_SHIFT, 0.0])
    v_template = op @ base + shift
    shapedirs = np.zeros((NUM_VERTICES, 3, len(SHAPE_NAMES)))
    for k in range(len(SHAPE_NAMES)):
        plus, minus = _shape_edit(base, g, k, 1.0), _shape_edit(base, g, k, -1.0)
        shapedirs[:, :, k] = op @ (0.5 * (plus - minus))
    weights, j_reg, h36m = _rig(v_template, faces)
    kintree = np.stack([SMPL_PARENTS, np.arange(24)]).astype(np.int64)
    kintree[0, 0] = SMPL_ROOT_PARENT
    return {
        "v_template": v_template,
        "f": faces.astype(np.uint32),
        "shapedirs": shapedirs,
        "posedirs": np.zeros((NUM_VERTICES, 3, 207), dtype=np.float32),
        "J_regressor": sp.csc_matrix(j_reg),
        "weights": weights,
        "kintree_table": kintree,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "J_regressor_h36m": h36m,
        "joint_names": list(SMPL_JOINT_NAMES),
        "h36m_joint_names": list(H36M_JOINT_NAMES),
        "shape_names": list(SHAPE_NAMES),
        "hgn_open_body_version": BODY_MODEL_VERSION,
    }


def build_open_body_model(path: Union[str, Path]) -> Path:
    """Build the open body model and write it (atomically) to ``path`` (a ``.pkl`` file)."""
    path = Path(path)
    data = make_open_body_data()
    atomic_write_bytes(path, pickle.dumps(data, protocol=4))
    stamp = {"version": BODY_MODEL_VERSION, "size": path.stat().st_size}
    atomic_write_bytes(_stamp_path(path), json.dumps(stamp).encode())
    logger.info("built the open body model %s (%s)", path, BODY_MODEL_VERSION)
    return path


def _stamp_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _default_root() -> Path:
    home = os.environ.get("HGN_PYG_HOME")
    if home:
        return Path(home) / "body_models"
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").exists() and (repo / "hgn_pyg").is_dir():
        return repo / "datasets" / "body_models"
    return Path.home() / ".cache" / "hgn_pyg" / "body_models"


def default_body_model_path(root: Optional[Union[str, Path]] = None) -> Path:
    """Path of the open body model, built on first use and rebuilt when its version changes.

    Args:
        root: folder holding ``hgn_open_body.pkl``; default ``$HGN_PYG_HOME/body_models`` or
            ``<repo>/datasets/body_models`` (``~/.cache/hgn_pyg/body_models`` when installed).
    """
    folder = Path(root) if root is not None else _default_root()
    path = folder / "hgn_open_body.pkl"
    if _is_fresh(path):
        return path
    # several processes may start at once: one builds, the others wait and then find it fresh
    with file_lock(folder / ".hgn_open_body.lock"):
        if not _is_fresh(path):
            remove_stale_temps(folder)
            build_open_body_model(path)
    return path


def _is_fresh(path: Path) -> bool:
    try:
        stamp = json.loads(_stamp_path(path).read_text())
        return (stamp.get("version") == BODY_MODEL_VERSION and path.exists()
                and path.stat().st_size == stamp.get("size"))
    except (OSError, ValueError):
        return False
