"""A synthetic Human3.6M-format data set made with the open body model (docs/published_model.md §5 layout).

``python -m hgn_pyg.data.synthetic --out DIR [--frames N] [--seed S] [--subjects 1 5 ...]``
writes, for each subject S (1, 5, 6, 7, 8, 9, 11 by default)::

    DIR/annotations/Human36M_subject{S}_data.json       COCO images + annotations (bbox)
    DIR/annotations/Human36M_subject{S}_camera.json     {"1": {R, t (mm), f, c}, ...}
    DIR/annotations/Human36M_subject{S}_joint_3d.json   {action: {subaction: {frame: 17x3 mm}}}
    DIR/annotations/Human36M_subject{S}_smpl_param.json {action: {subaction: {frame: {pose,
                                                          shape, trans}}}}
    DIR/annotations/Human36M_subject{S}_joint_3d_coco.json  the COCO-17 keypoints, same layout
    DIR/data_2d_h36m_detected.npz                       a "detected-like" 2D track of the test
                                                        subjects (VideoPose3D's 2D layout)
    DIR/SYNTHETIC.json                                  manifest (seed, frames, versions)

Each subject has its own body shape (10 betas). The 15 Human3.6M actions (action_idx 2..16,
2 sub-actions each) are parametric motions at 50 fps with per-subject / per-sub-action variation.
The world frame is z-up in millimetres like Human3.6M; the SMPL root rotation stored in ``pose``
is in that world frame (it includes the y-up -> z-up turn), ``trans`` is in metres, and
``world_mesh_m = SMPL(pose, shape) + trans``; 3D joints are ``1000 · J_h36m · world_mesh_m``.

The motions keep the rotations of SMPL joints 6, 9, 13, 14, 15 (spine2, spine3, collars, head) at
zero; with the open body model's regressor this makes every Human3.6M bone rigid, so each
subject's bone lengths are constant over all of its frames (as in real motion capture).

COCO-17 keypoints (:func:`coco_regressor`): shoulders, elbows, wrists, hips, knees and ankles are
the body model's own joints (rows of its SMPL joint regressor, as a detector aims at joint
centres); nose, eyes and ears are vertices of the head's surface (:func:`face_vertices`). The
Human3.6M pelvis, spine, thorax, neck/nose and head-top points are *not* among them: a COCO input
has to infer those.

The detected-like 2D track (:func:`detected_track`): for every sequence and camera of the
``detected_subjects`` (default: the test subjects 9 and 11 when generated), the pixel projections
of the Human3.6M joints corrupted by :class:`hgn_pyg.data.augment.DetectorNoise` (default
settings) with a generator seeded by ``(seed, subject, action, sub-action, camera)``: the same
track for every run. ``positions_2d["S9"]["Directions 1"][cam_idx - 1]`` is ``[T, 17, 3]``
float32 (x, y pixels; score), NaN coordinates for missing joints; read it with
``DATASET.use_gt_input: false`` and ``DATASET.npz_2d: data_2d_h36m_detected.npz``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Optional, Sequence, Union

import numpy as np

from ..errors import DataError, HGNError
from ..io import atomic_write_bytes, atomic_write_text
from .body_model import STATIC_JOINTS, default_body_model_path, load_body_model
from .camera import project, world_to_camera
from .h36m_calibration import IMAGE_SIZES, pose2mesh_camera
from .pose_dataset import ACTIONS

logger = logging.getLogger(__name__)

__all__ = ["SYNTHETIC_VERSION", "SUBJECTS", "ACTION_NAMES", "DEFAULT_FRAMES", "FPS",
           "DETECTED_FILE", "DETECTED_SUBJECTS", "COCO_FROM_SMPL", "FACE_POINTS", "generate",
           "make_cameras", "subject_betas", "action_motion", "coco_regressor", "face_vertices",
           "detected_track", "dataset_identity", "manifest_identity", "main"]

SYNTHETIC_VERSION = "hgn-synthetic-2.0"  # 2.0: Human3.6M skeleton, cameras and capture area
SUBJECTS = (1, 5, 6, 7, 8, 9, 11)
#: action_idx (2..16) -> Human3.6M action name (:data:`hgn_pyg.data.pose_dataset.ACTIONS`).
ACTION_NAMES = {k + 2: name for k, name in enumerate(ACTIONS)}
SUBACTIONS = (1, 2)
#: 200 frames per sequence: every 5th frame of subjects 1, 5, 6, 7, 8 x 4 cameras = 24,000
#: training samples; every 50th of subjects 9, 11 = 960 test samples.
DEFAULT_FRAMES = 200
FPS = 50
#: Centre (x, y) of the capture area in the Human3.6M world (m): the middle of the floor region
#: all four cameras of every calibrated subject see a standing person in.
CAPTURE_CENTRE = (0.25, 0.55)
#: Half extents (x, y) of the capture area (m) the motions' paths are kept in.
CAPTURE_HALF = (0.7, 0.9)
_DEG = np.pi / 180.0
#: The detected-like 2D track, in VideoPose3D's 2D layout, in the data root.
DETECTED_FILE = "data_2d_h36m_detected.npz"
#: Subjects that get a detected-like track by default (the protocol-2 test subjects).
DETECTED_SUBJECTS = (9, 11)
#: COCO-17 keypoint -> SMPL joint of the body model (-1: a face point, :data:`FACE_POINTS`).
COCO_FROM_SMPL = (-1, -1, -1, -1, -1, 16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8)
#: Face points (COCO index: offset in metres from the head joint of the rest template, SMPL's
#: y-up frame facing +z with the person's left at +x); the nearest head vertex is used.
FACE_POINTS = {0: (0.0, 0.05, 0.20), 1: (0.035, 0.085, 0.20), 2: (-0.035, 0.085, 0.20),
               3: (0.20, 0.06, 0.0), 4: (-0.20, 0.06, 0.0)}
_HEAD_JOINTS = (12, 15)  # SMPL neck and head: the vertices they carry form the head


# --------------------------------------------------------------------------------------------
# rotations
# --------------------------------------------------------------------------------------------
def _rot(axis: int, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    i, j = (axis + 1) % 3, (axis + 2) % 3
    R[..., axis, axis] = 1.0
    R[..., i, i] = c
    R[..., j, j] = c
    R[..., i, j] = -s
    R[..., j, i] = s
    return R


def _rotvec(R: np.ndarray) -> np.ndarray:
    """Axis-angle of rotation matrices ``[..., 3, 3]`` (stable near 0 and pi)."""
    from scipy.spatial.transform import Rotation

    shp = R.shape[:-2]
    return Rotation.from_matrix(R.reshape(-1, 3, 3)).as_rotvec().reshape(shp + (3,))


class _Pose:
    """Per-frame Euler channels of the 24 SMPL joints, ``R_j = Rx(a_x)·Ry(a_y)·Rz(a_z)``.

    Channel conventions (SMPL rest frame: x = person's left, y up, z forward) are hidden behind
    anatomical helpers (:meth:`leg`, :meth:`arm`, :meth:`spine`, :meth:`head`).
    """

    # (min, max) in degrees of the anatomical angles, applied by the helpers
    LIMITS = {
        "hip_flex": (-35, 125), "hip_abduct": (-25, 45), "hip_twist": (-35, 35),
        "knee": (0, 150), "ankle": (-45, 30), "shoulder_down": (-100, 100),
        "shoulder_forward": (-60, 175), "shoulder_horiz": (-40, 130), "elbow": (0, 150),
        "spine_flex": (-25, 70), "spine_twist": (-40, 40), "spine_lateral": (-30, 30),
        "neck_nod": (-45, 55), "neck_turn": (-70, 70), "neck_tilt": (-30, 30),
        "wrist": (-70, 70),
    }

    def __init__(self, T: int):
        self.T = T
        self.ang = np.zeros((T, 24, 3))
        self.lean = np.zeros(T)  # root pitch (forward positive), degrees
        self.roll = np.zeros(T)  # root roll towards the person's left, degrees

    def _lim(self, name, a):
        lo, hi = self.LIMITS[name]
        return np.clip(np.broadcast_to(np.asarray(a, dtype=np.float64), (self.T,)), lo, hi)

    def leg(self, side, flex=0.0, abduct=0.0, twist=0.0, knee=0.0, ankle=0.0):
        s, hip, kn, an = (1, 1, 4, 7) if side == "L" else (-1, 2, 5, 8)
        self.ang[:, hip, 0] += -self._lim("hip_flex", flex) * _DEG
        self.ang[:, hip, 1] += s * self._lim("hip_twist", twist) * _DEG
        self.ang[:, hip, 2] += s * self._lim("hip_abduct", abduct) * _DEG
        self.ang[:, kn, 0] += self._lim("knee", knee) * _DEG
        self.ang[:, an, 0] += -self._lim("ankle", ankle) * _DEG

    def arm(self, side, down=0.0, forward=0.0, horiz=0.0, elbow=0.0, wrist=0.0):
        s, sh, el, wr = (1, 16, 18, 20) if side == "L" else (-1, 17, 19, 21)
        self.ang[:, sh, 0] += -self._lim("shoulder_forward", forward) * _DEG
        self.ang[:, sh, 1] += -s * self._lim("shoulder_horiz", horiz) * _DEG
        self.ang[:, sh, 2] += -s * self._lim("shoulder_down", down) * _DEG
        self.ang[:, el, 1] += -s * self._lim("elbow", elbow) * _DEG
        self.ang[:, wr, 2] += -s * self._lim("wrist", wrist) * _DEG

    def clear_arm(self, side):
        """Forget what earlier helpers set for one arm (shoulder, elbow, wrist)."""
        self.ang[:, [16, 18, 20] if side == "L" else [17, 19, 21]] = 0.0

    def spine(self, flex=0.0, twist=0.0, lateral=0.0):
        self.ang[:, 3, 0] += self._lim("spine_flex", flex) * _DEG
        self.ang[:, 3, 1] += self._lim("spine_twist", twist) * _DEG
        self.ang[:, 3, 2] += -self._lim("spine_lateral", lateral) * _DEG

    def head(self, nod=0.0, turn=0.0, tilt=0.0):
        self.ang[:, 12, 0] += self._lim("neck_nod", nod) * _DEG
        self.ang[:, 12, 1] += self._lim("neck_turn", turn) * _DEG
        self.ang[:, 12, 2] += -self._lim("neck_tilt", tilt) * _DEG

    def pelvis(self, lean=0.0, roll=0.0):
        """Tilt the pelvis (degrees); the hips compensate so the legs keep their direction."""
        lean = np.broadcast_to(np.asarray(lean, dtype=np.float64), (self.T,))
        self.lean += lean
        self.roll += roll
        for hip in (1, 2):
            self.ang[:, hip, 0] += lean * _DEG  # undo the pitch for the legs

    def matrices(self) -> np.ndarray:
        a = self.ang
        R = _rot(0, a[..., 0]) @ _rot(1, a[..., 1]) @ _rot(2, a[..., 2])
        R[:, list(STATIC_JOINTS)] = np.eye(3)
        return R


# --------------------------------------------------------------------------------------------
# motions
# --------------------------------------------------------------------------------------------
@dataclass
class _Var:
    """Per (subject, sub-action) variation of a motion."""

    amp: float  # amplitude scale
    speed: float  # tempo scale
    phase: float  # radians
    heading: float  # radians, initial facing in the world
    start: np.ndarray  # [2] metres, initial position in the capture space
    side: str  # dominant hand "R" or "L"
    rng: np.random.Generator

    def noise(self, t, amp, low=0.15, high=0.6):
        """Smooth random wobble (sum of three sines), degrees."""
        f = self.rng.uniform(low, high, 3)
        p = self.rng.uniform(0, 2 * np.pi, 3)
        return amp * np.sum(np.sin(2 * np.pi * f[:, None] * t + p[:, None]), axis=0) / 1.7


def _other(side):
    return "L" if side == "R" else "R"


def _stand(P: _Pose, v: _Var, t):
    """Relaxed standing with idle sway."""
    for side in ("L", "R"):
        P.leg(side, flex=2 + v.noise(t, 2), abduct=3 + v.noise(t, 1.5), knee=3 + v.noise(t, 2))
        P.arm(side, down=80 + v.noise(t, 3), forward=5 + v.noise(t, 4), elbow=12 + v.noise(t, 5))
    P.spine(flex=3 + v.noise(t, 2), twist=v.noise(t, 3), lateral=v.noise(t, 2))
    P.head(nod=5 + v.noise(t, 4), turn=v.noise(t, 10))


def _walk_cycle(P: _Pose, v: _Var, t, cadence=0.9, stride=1.0, arms=True):
    ph = 2 * np.pi * cadence * v.speed * t + v.phase
    for side, off in (("L", 0.0), ("R", np.pi)):
        q = ph + off
        P.leg(side, flex=8 + 24 * stride * np.sin(q), abduct=2,
              knee=8 + 55 * stride * np.clip(np.sin(q + 1.2), 0, None) ** 2,
              ankle=5 * np.sin(q - 0.6))
        if arms:
            P.arm(side, down=82, forward=-18 * stride * np.sin(q) + 3, elbow=18 + 10 * np.sin(q))
    P.spine(flex=4, twist=6 * stride * np.sin(ph))
    P.pelvis(lean=2, roll=3 * np.sin(2 * ph))
    P.head(nod=4 + v.noise(t, 3))


def _circle(v: _Var, t, speed, radius):
    """Walking on a circle through the start point; returns (path [T,2], yaw [T])."""
    direction = 1.0 if v.rng.uniform() < 0.5 else -1.0
    w = direction * speed * v.speed / radius
    th = v.heading + w * t
    centre = v.start - radius * np.array([np.cos(v.heading), np.sin(v.heading)])
    centre *= min(1.0, 0.15 / max(np.linalg.norm(centre), 1e-9))  # circles around the middle
    path = centre + radius * np.stack([np.cos(th), np.sin(th)], axis=1)
    yaw = th + direction * np.pi / 2 + np.pi / 2  # facing the direction of travel
    return path, yaw


def _hand_to_head(P: _Pose, side, amount, ear=True):
    """Bring a hand to the ear (phoning) or the mouth (eating, smoking); amount in [0, 1]."""
    if ear:
        P.arm(side, down=80 - 20 * amount, forward=8 + 22 * amount, horiz=25 * amount,
              elbow=15 + 130 * amount)
    else:
        P.arm(side, down=80 - 10 * amount, forward=8 + 45 * amount, horiz=35 * amount,
              elbow=15 + 125 * amount)


def _pulse(t, period, duty=0.5, phase=0.0):
    """Smooth 0..1 pulse train."""
    x = np.mod(t / period + phase, 1.0)
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.clip(x / duty, 0, 1))


def _sit(P: _Pose, v: _Var, t, depth=1.0):
    for side in ("L", "R"):
        P.leg(side, flex=88 * depth + v.noise(t, 3), abduct=6 + v.noise(t, 3),
              knee=85 * depth + v.noise(t, 4), ankle=-5 * depth)
    P.pelvis(lean=-8 * depth)


def _act_directions(P, v, t):
    _stand(P, v, t)
    point = _pulse(t, 3.0 / v.speed, 0.7, v.phase / (2 * np.pi))
    P.arm(v.side, down=-10 * point, forward=70 * point * v.amp, horiz=20 * point,
          elbow=-10 * point)
    P.head(turn=25 * np.sin(0.5 * t * v.speed + v.phase))
    P.spine(twist=12 * np.sin(0.4 * t * v.speed + v.phase))
    return _drift(v, t, 0.05, 0.4)


def _act_discussion(P, v, t):
    _stand(P, v, t)
    for side, ph in (("L", 0.0), ("R", 1.7)):
        g = 0.5 + 0.5 * np.sin(2 * np.pi * 0.6 * v.speed * t + v.phase + ph)
        P.arm(side, down=-20 * g * v.amp, forward=30 * g * v.amp, elbow=60 * g + 10)
    P.head(nod=8 * np.sin(2 * np.pi * 0.8 * t + v.phase), turn=20 * np.sin(0.7 * t))
    return _drift(v, t, 0.15, 0.6)


def _act_eating(P, v, t):
    _sit(P, v, t)
    bite = _pulse(t, 2.5 / v.speed, 0.6, v.phase / (2 * np.pi))
    P.arm(v.side, down=75 - 5 * bite, forward=35 + 18 * bite, horiz=35 * bite,
          elbow=70 + 75 * bite)
    P.arm(_other(v.side), down=70, forward=35, elbow=70 + v.noise(t, 8))
    P.spine(flex=12 + 8 * bite)
    P.head(nod=10 - 10 * bite + v.noise(t, 4), turn=v.noise(t, 8))
    return _drift(v, t, 0.0, 0.1)


def _act_greeting(P, v, t):
    dur = t[-1] + 1e-9
    walk = np.clip(1.0 - t / (0.45 * dur), 0, 1)
    _walk_cycle(P, v, t, stride=0.8 * walk, arms=True)
    wave = np.clip((t / dur - 0.45) / 0.1, 0, 1)
    wave = 0.5 - 0.5 * np.cos(np.pi * wave)
    P.clear_arm(v.side)
    P.arm(v.side, down=82 * (1 - wave) - 35 * wave * v.amp, forward=25 * wave, horiz=10 * wave,
          elbow=18 * (1 - wave) + (50 + 25 * np.sin(2 * np.pi * 2.0 * t)) * wave)
    P.head(nod=-5 * wave)
    d = np.cumsum(walk) / FPS * 0.9 * v.speed
    heading = np.arctan2(-v.start[1], -v.start[0]) + 0.3 * np.sin(v.heading)  # across the room
    path = v.start + d[:, None] * np.array([np.cos(heading), np.sin(heading)])
    return path, np.full_like(t, heading + np.pi / 2)


def _act_phoning(P, v, t):
    _walk_cycle(P, v, t, cadence=0.55, stride=0.35, arms=False)
    _hand_to_head(P, v.side, 1.0, ear=True)
    P.arm(_other(v.side), down=75, forward=10 + 20 * np.sin(2 * np.pi * 0.3 * t + v.phase),
          elbow=30 + 30 * np.sin(2 * np.pi * 0.3 * t))
    P.head(tilt=(10 if v.side == "R" else -10), turn=v.noise(t, 15))
    return _circle(v, t, 0.35, 0.8)


def _act_posing(P, v, t):
    _stand(P, v, t)
    period = 4.0 / v.speed
    a = _pulse(t, period, 0.5, 0.0)
    b = _pulse(t, period, 0.5, 0.5)
    rest = 1 - a - b
    for side in ("L", "R"):  # a: arms raised high; b: hands on hips
        P.clear_arm(side)
        P.arm(side, down=80 * rest - 60 * a * v.amp + 45 * b, forward=5 * rest + 10 * a - 20 * b,
              elbow=12 * rest + 20 * a + 100 * b)
    P.leg("L", flex=30 * a, knee=35 * a, abduct=10 * b)
    P.leg("R", flex=-10 * a, knee=5 * a, abduct=10 * b)
    P.spine(flex=-8 * a, lateral=10 * b)
    P.head(nod=-15 * a)
    return _drift(v, t, 0.0, 0.3)


def _act_purchases(P, v, t):
    _stand(P, v, t)
    bend = _pulse(t, 3.5 / v.speed, 0.6, v.phase / (2 * np.pi))
    P.pelvis(lean=35 * bend * v.amp)
    P.spine(flex=30 * bend)
    for side in ("L", "R"):
        P.leg(side, knee=25 * bend, flex=15 * bend)
        P.arm(side, down=10 * bend, forward=45 * bend, elbow=20 * (1 - bend) + 10)
    P.head(nod=-10 * bend)
    return _drift(v, t, 0.3, 0.5)


def _act_sitting(P, v, t):
    _sit(P, v, t)
    lean = 10 * np.sin(2 * np.pi * 0.15 * v.speed * t + v.phase)
    P.spine(flex=8 + lean, twist=v.noise(t, 10))
    P.arm("L", down=70, forward=40 + v.noise(t, 8), elbow=60 + v.noise(t, 15))
    P.arm("R", down=70, forward=40 + v.noise(t, 8), elbow=60 + v.noise(t, 15))
    cross = _pulse(t, 5.0 / v.speed, 0.5, v.phase / (2 * np.pi))
    P.leg(v.side, flex=10 * cross, abduct=-12 * cross, knee=-15 * cross)
    P.head(nod=8 + v.noise(t, 5), turn=v.noise(t, 20))
    return _drift(v, t, 0.0, 0.2)


def _act_sitting_down(P, v, t):
    """Stand, sit down on the floor, stay, stand up (one cycle over the sequence)."""
    dur = t[-1] + 1e-9
    x = t / dur
    s = np.clip(np.minimum((x - 0.1) / 0.3, (0.95 - x) / 0.25), 0, 1)
    s = 0.5 - 0.5 * np.cos(np.pi * s)
    _stand(P, v, t)
    for side in ("L", "R"):
        P.leg(side, flex=100 * s, knee=125 * s, abduct=12 * s, ankle=10 * s)
        P.arm(side, down=-10 * s, forward=45 * s, elbow=40 * s)
    P.pelvis(lean=25 * np.sin(np.pi * s) - 15 * s)
    P.spine(flex=20 * np.sin(np.pi * s) + 10 * s)
    return _drift(v, t, 0.0, 0.2)


def _act_smoking(P, v, t):
    _stand(P, v, t)
    puff = _pulse(t, 4.0 / v.speed, 0.45, v.phase / (2 * np.pi))
    P.clear_arm(v.side)
    _hand_to_head(P, v.side, puff, ear=False)
    P.clear_arm(_other(v.side))
    P.arm(_other(v.side), down=75, forward=20, horiz=30, elbow=85)  # forearm across the belly
    P.head(nod=-5 * puff + v.noise(t, 4), turn=v.noise(t, 15))
    return _drift(v, t, 0.05, 0.4)


def _act_photo(P, v, t):
    _stand(P, v, t)
    crouch = _pulse(t, 5.0 / v.speed, 0.5, v.phase / (2 * np.pi))
    for side in ("L", "R"):
        P.clear_arm(side)
        P.arm(side, down=55, forward=55, horiz=25, elbow=120)
        P.leg(side, flex=45 * crouch, knee=80 * crouch, ankle=25 * crouch)
    P.pelvis(lean=10 * crouch)
    P.spine(flex=10 * crouch, twist=15 * np.sin(0.5 * t + v.phase))
    P.head(nod=-5)
    path, yaw = _drift(v, t, 0.1, 0.6)
    return path, yaw


def _act_waiting(P, v, t):
    _stand(P, v, t)
    shift = np.sin(2 * np.pi * 0.2 * v.speed * t + v.phase)
    P.leg("L", abduct=4 * shift, knee=6 * np.clip(shift, 0, None))
    P.leg("R", abduct=-4 * shift, knee=6 * np.clip(-shift, 0, None))
    P.pelvis(roll=-4 * shift)
    P.spine(lateral=4 * shift)
    behind = _pulse(t, 6.0 / v.speed, 0.6, v.phase / (2 * np.pi))
    for side in ("L", "R"):
        P.arm(side, forward=-25 * behind, elbow=60 * behind)
    P.head(turn=35 * np.sin(2 * np.pi * 0.12 * t + v.phase))
    return _drift(v, t, 0.05, 0.6)


def _act_walking(P, v, t):
    _walk_cycle(P, v, t, cadence=0.9, stride=1.0 * v.amp)
    return _circle(v, t, 1.25, 1.1)


def _act_walk_dog(P, v, t):
    _walk_cycle(P, v, t, cadence=0.75, stride=0.8)
    tug = v.noise(t, 10, 0.3, 1.0)
    P.clear_arm(v.side)
    P.arm(v.side, down=60 + tug, forward=35, elbow=20)
    P.spine(flex=8, twist=8 * np.sin(0.8 * t))
    P.head(nod=15, turn=20 * np.sin(0.6 * t + v.phase))
    return _circle(v, t, 0.9, 1.0)


def _act_walk_together(P, v, t):
    _walk_cycle(P, v, t, cadence=0.7, stride=0.75)
    P.clear_arm(v.side)
    P.arm(v.side, down=75, forward=10, elbow=35)
    P.head(turn=(25 if v.side == "L" else -25) + v.noise(t, 8))
    return _circle(v, t, 0.8, 1.05)


def _drift(v: _Var, t, dist, turn):
    """Standing actions: a slow wander of ``dist`` m and heading changes of ``turn`` rad."""
    dx = v.noise(t, dist, 0.03, 0.12)
    dy = v.noise(t, dist, 0.03, 0.12)
    path = v.start + np.stack([dx, dy], axis=1)
    yaw = v.heading + np.pi / 2 + v.noise(t, turn, 0.03, 0.15)
    return path, yaw


_ACTIONS: Dict[int, Callable] = {
    2: _act_directions, 3: _act_discussion, 4: _act_eating, 5: _act_greeting, 6: _act_phoning,
    7: _act_posing, 8: _act_purchases, 9: _act_sitting, 10: _act_sitting_down,
    11: _act_smoking, 12: _act_photo, 13: _act_waiting, 14: _act_walking, 15: _act_walk_dog,
    16: _act_walk_together,
}

_Y_TO_Z = _rot(0, np.pi / 2)  # SMPL y-up body frame -> world z-up (the body then faces -y)


def action_motion(action: int, subaction: int, subject: int, frames: int, seed: int = 0):
    """Motion of one sequence: ``(local rotations [T,24,3,3], root world rotation [T,3,3],
    pelvis path [T,2] in metres)``. Deterministic in (seed, subject, action, subaction)."""
    if action not in _ACTIONS:
        raise DataError(f"unknown action_idx {action}; expected 2..16")
    rng = np.random.default_rng([seed, subject, action, subaction])
    r = rng.uniform(0.3, 0.9)
    a = rng.uniform(0, 2 * np.pi)
    v = _Var(amp=rng.uniform(0.85, 1.15), speed=rng.uniform(0.85, 1.15),
             phase=rng.uniform(0, 2 * np.pi), heading=rng.uniform(-np.pi, np.pi),
             start=r * np.array([np.cos(a), np.sin(a)]),
             side="R" if (subject + subaction) % 3 else "L", rng=rng)
    t = np.arange(frames, dtype=np.float64) / FPS
    P = _Pose(frames)
    path, yaw = _ACTIONS[action](P, v, t)
    # into the capture area: an ellipse of half extents CAPTURE_HALF around CAPTURE_CENTRE
    half = np.asarray(CAPTURE_HALF)
    radius = np.linalg.norm(path / half, axis=1, keepdims=True)
    path = path * np.minimum(1.0, 1.0 / np.maximum(radius, 1e-9)) + np.asarray(CAPTURE_CENTRE)
    body = _rot(0, P.lean * _DEG) @ _rot(2, -P.roll * _DEG)
    root = _rot(2, yaw) @ _Y_TO_Z @ body
    return P.matrices(), root, path


# --------------------------------------------------------------------------------------------
# subjects and cameras
# --------------------------------------------------------------------------------------------
def _raw_betas(subject: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, subject, 1000]).normal(0.0, 0.9, 10)


def subject_betas(subject: int, seed: int = 0) -> np.ndarray:
    """The 10 shape coefficients of a subject (|beta| <= 2.2): a normal draw (std 0.9) minus
    the mean draw of the seven Human3.6M subjects :data:`SUBJECTS`, so that those subjects
    vary around the reference skeleton (the open body's template, ``beta = 0``)."""
    mean = np.mean([_raw_betas(s, seed) for s in SUBJECTS], axis=0)
    return np.clip(_raw_betas(subject, seed) - mean, -2.2, 2.2)


def make_cameras(subject: int, seed: int = 0) -> Dict[str, Dict[str, list]]:
    """The four Human3.6M cameras of ``subject`` (the published calibration,
    :mod:`hgn_pyg.data.h36m_calibration`; uncalibrated subject numbers borrow one):
    ``{"1": {"R": 3x3, "t": [3] mm, "f": [2], "c": [2]}, ...}``. ``seed`` is not used (kept
    for the signature)."""
    del seed
    return {str(k): pose2mesh_camera(subject, k) for k in sorted(IMAGE_SIZES)}


def _overflow(joints_mm: np.ndarray, cams, margin: float = 8.0) -> float:
    """Largest distance (px) by which a joint falls outside an image (less ``margin``), over all
    frames and cameras; ``inf`` when a joint is less than 1.5 m in front of a camera."""
    worst = 0.0
    for cam, (R, t, f, c) in cams.items():
        w, h = IMAGE_SIZES[int(cam)]
        Xc = world_to_camera(joints_mm, R, t)
        if (Xc[..., 2] < 1500.0).any():
            return float("inf")
        uv = project(Xc, f, c)
        over = np.maximum(np.maximum(margin - uv, uv - (np.array([w, h]) - 1 - margin)), 0.0)
        worst = max(worst, float(over.max()))
    return worst


def _fit_in_view(joints_mm: np.ndarray, cams) -> np.ndarray:
    """A horizontal shift (mm, ``[3]``) of one sequence that keeps its joints inside every
    camera's image: the path is pulled towards :data:`CAPTURE_CENTRE` (factors 1 .. 0) until it
    fits; if it never does (e.g. hands far overhead close to a camera), the least overflow."""
    centre = np.array([CAPTURE_CENTRE[0], CAPTURE_CENTRE[1], 0.0]) * 1000.0
    pelvis = joints_mm[:, 0].copy()
    pelvis[:, 2] = 0.0
    best, best_over = np.zeros(3), float("inf")
    for k in np.linspace(1.0, 0.0, 6):
        shift = (k - 1.0) * (pelvis.mean(axis=0) - centre)
        over = _overflow(joints_mm + shift, cams)
        if over == 0.0:
            return shift
        if over < best_over:
            best, best_over = shift, over
    return best


# --------------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------------
def face_vertices(model) -> np.ndarray:
    """Vertex indices of the COCO face points (nose, left/right eye, left/right ear), ``[5]``:
    the head vertices (skinned only to SMPL's neck and head joints) nearest to the rest
    template's head joint plus :data:`FACE_POINTS`."""
    smpl = model.smpl
    v = smpl.v_template.detach().cpu().double().numpy()
    head = (model.joint_regressor @ v)[15]
    W = np.asarray(model.skinning_weights)
    cand = np.flatnonzero(W[:, list(_HEAD_JOINTS)].sum(axis=1) >= 0.999)
    if len(cand) < len(FACE_POINTS):
        raise DataError("body model: too few head vertices (skinned to the neck/head joints only) "
                        "to place the COCO face points")
    out = []
    for k in sorted(FACE_POINTS):
        q = head + np.asarray(FACE_POINTS[k])
        out.append(int(cand[np.argmin(np.linalg.norm(v[cand] - q, axis=1))]))
    return np.asarray(out, dtype=np.int64)


def coco_regressor(model) -> np.ndarray:
    """``[17, V]`` vertex weights of the COCO-17 keypoints (COCO order): the SMPL joint-regressor
    rows of :data:`COCO_FROM_SMPL` and one-hot rows at :func:`face_vertices`."""
    J = np.asarray(model.joint_regressor, dtype=np.float64)
    reg = np.zeros((17, J.shape[1]))
    face = iter(face_vertices(model))
    for k, j in enumerate(COCO_FROM_SMPL):
        if j >= 0:
            reg[k] = J[j]
        else:
            reg[k, next(face)] = 1.0
    return reg


def detected_track(uv: np.ndarray, seed: int, subject: int, action: int, subaction: int,
                   camera: int) -> np.ndarray:
    """A detected-like version ``[T, 17, 3]`` float32 (x, y, score; NaN where missing) of the
    pixel projections ``uv [T, 17, 2]`` of the Human3.6M joints, seeded by the sequence."""
    import torch

    from .augment import DetectorNoise

    key = np.random.SeedSequence([int(seed), int(subject), int(action), int(subaction),
                                  int(camera), 4000]).generate_state(2, dtype=np.uint32)
    gen = torch.Generator().manual_seed(int(key[0]) << 32 | int(key[1]))
    xy, score = DetectorNoise()(torch.as_tensor(uv, dtype=torch.float64), generator=gen)
    return torch.cat([xy, score.unsqueeze(-1)], dim=-1).float().numpy()


class _FastBody:
    """Exact LBS shortcuts for one body shape (float64): the Human3.6M joints through
    ``sum_k A_k (sum_v H_jv w_vk [v_v; 1])`` (and the same for the COCO keypoints) and a
    lower-body vertex subset (floor contact)."""

    def __init__(self, model, betas: np.ndarray, coco: Optional[np.ndarray] = None):
        smpl = model.smpl
        v_t = smpl.v_template.detach().cpu().double().numpy()
        dirs = smpl.shapedirs.detach().cpu().double().numpy()
        v = v_t + np.einsum("l,vcl->vc", np.asarray(betas, dtype=np.float64), dirs)
        self.joints = smpl.J_regressor.detach().cpu().double().numpy() @ v  # [24, 3]
        self.parents = smpl.parents.detach().cpu().numpy()
        W = model.skinning_weights
        vh = np.concatenate([v, np.ones((len(v), 1))], axis=1)
        self.C = np.einsum("jv,vk,vc->jkc", model.h36m_regressor, W, vh)  # [17, 24, 4]
        self.C_coco = None if coco is None else np.einsum("jv,vk,vc->jkc", coco, W, vh)
        low = np.flatnonzero(v[:, 1] < self.joints[0, 1])[::3]
        self.low_v = vh[low]
        self.low_w = W[low]

    def transforms(self, rot: np.ndarray) -> np.ndarray:
        """Skinning transforms ``[B, 24, 3, 4]`` (rest joints removed) of rotations [B,24,3,3]."""
        B = rot.shape[0]
        G = np.zeros((B, 24, 4, 4))
        G[:, :, 3, 3] = 1.0
        for k in range(24):
            p = self.parents[k]
            off = self.joints[k] - (self.joints[p] if p >= 0 else 0.0)
            local = np.zeros((B, 4, 4))
            local[:, :3, :3] = rot[:, k]
            local[:, :3, 3] = off
            local[:, 3, 3] = 1.0
            G[:, k] = local if p < 0 else G[:, p] @ local
        A = G[:, :, :3, :].copy()
        A[:, :, :, 3] -= np.einsum("bkrc,kc->bkr", G[:, :, :3, :3], self.joints)
        return A

    def coco_joints(self, rot: np.ndarray) -> np.ndarray:
        """rot [B,24,3,3] -> COCO-17 keypoints [B,17,3] (needs ``coco`` at construction)."""
        A = self.transforms(rot)
        B = A.shape[0]
        out = A.transpose(0, 2, 1, 3).reshape(B, 3, 96) @ self.C_coco.reshape(17, 96).T
        return out.transpose(0, 2, 1)

    def __call__(self, rot: np.ndarray, lowest: bool = True):
        """rot [B,24,3,3] (root included) -> (h36m joints [B,17,3], lowest z of the lower-body
        vertices [B] or None)."""
        A = self.transforms(rot)
        B = A.shape[0]
        h = (A.transpose(0, 2, 1, 3).reshape(B, 3, 96) @ self.C.reshape(17, 96).T)
        h = h.transpose(0, 2, 1)
        if not lowest:
            return h, None
        Az = A[:, :, 2, :].transpose(1, 0, 2).reshape(24, B * 4)  # only the z row is needed
        Tz = (self.low_w @ Az).reshape(-1, B, 4)  # [n, B, 4]
        z = np.einsum("nbc,nc->bn", Tz, self.low_v)
        return h, z.min(axis=1)


def _json_dump(obj, path: Path) -> None:
    atomic_write_text(path, json.dumps(obj, separators=(",", ":")))  # the C encoder: one string


def _generate_subject(model, subject: int, frames: int, seed: int, actions: Sequence[int],
                      coco: np.ndarray, detected: bool):
    betas = subject_betas(subject, seed)
    body = _FastBody(model, betas, coco)
    cams = make_cameras(subject, seed)
    cam_np = {k: (np.array(c["R"]), np.array(c["t"]), np.array(c["f"]), np.array(c["c"]))
              for k, c in cams.items()}
    joint_3d: Dict[str, Dict[str, Dict[str, list]]] = {}
    joint_3d_coco: Dict[str, Dict[str, Dict[str, list]]] = {}
    track: Dict[str, list] = {}
    smpl_param: Dict[str, Dict[str, Dict[str, dict]]] = {}
    images, annotations = [], []
    next_id = (SUBJECTS.index(subject) if subject in SUBJECTS else subject) * 10_000_000
    J0 = body.joints[0]
    shape_list = np.round(betas, 6).tolist()
    for action in actions:
        joint_3d[str(action)] = {}
        joint_3d_coco[str(action)] = {}
        smpl_param[str(action)] = {}
        for sub in SUBACTIONS:
            local, root, path = action_motion(action, sub, subject, frames, seed)
            rot = local.copy()
            rot[:, 0] = root
            h, zmin = body(rot)
            # the pelvis (rotation centre J0) goes to the path, the lowest point to the floor
            trans = np.zeros((frames, 3))
            trans[:, :2] = path - J0[:2]
            trans[:, 2] = -zmin
            joints_mm = (h + trans[:, None, :]) * 1000.0
            trans += _fit_in_view(joints_mm, cam_np) / 1000.0
            pose = _rotvec(rot).reshape(frames, 72)
            pose = np.round(pose, 7)
            trans = np.round(trans, 7)
            # joints from the rounded parameters (what a reader of the files will reproduce)
            h2, _ = body(_matrices_from_rotvec(pose), lowest=False)
            joints_mm = np.round((h2 + trans[:, None, :]) * 1000.0, 4)
            coco_mm = np.round((body.coco_joints(_matrices_from_rotvec(pose)) + trans[:, None, :])
                               * 1000.0, 4)
            jd, sd, cd = {}, {}, {}
            for fi in range(frames):
                jd[str(fi)] = joints_mm[fi].tolist()
                cd[str(fi)] = coco_mm[fi].tolist()
                sd[str(fi)] = {"pose": pose[fi].tolist(), "shape": shape_list,
                               "trans": trans[fi].tolist()}
            joint_3d[str(action)][str(sub)] = jd
            joint_3d_coco[str(action)][str(sub)] = cd
            views = []
            smpl_param[str(action)][str(sub)] = sd
            for cam in sorted(cam_np, key=int):
                R, t, f, c = cam_np[cam]
                uv = project(world_to_camera(joints_mm, R, t), f, c)  # [T,17,2]
                if detected:
                    views.append(detected_track(uv, seed, subject, action, sub, int(cam)))
                w, hgt = IMAGE_SIZES[int(cam)]
                lo, hi = uv.min(axis=1), uv.max(axis=1)
                size = hi - lo
                lo = np.clip(lo - 0.15 * size - 10, 0, [w - 1, hgt - 1])
                hi = np.clip(hi + 0.15 * size + 10, 0, [w - 1, hgt - 1])
                folder = f"s_{subject:02d}_act_{action:02d}_subact_{sub:02d}_ca_{int(cam):02d}"
                for fi in range(frames):
                    images.append({
                        "id": next_id, "file_name": f"{folder}/{folder}_{fi + 1:06d}.jpg",
                        "width": w, "height": hgt, "subject": subject,
                        "action_name": ACTION_NAMES[action], "action_idx": action,
                        "subaction_idx": sub, "cam_idx": int(cam), "frame_idx": fi,
                    })
                    x0, y0 = lo[fi]
                    x1, y1 = hi[fi]
                    annotations.append({
                        "id": next_id, "image_id": next_id,
                        "bbox": [round(float(x0), 2), round(float(y0), 2),
                                 round(float(x1 - x0), 2), round(float(y1 - y0), 2)],
                        "keypoints_vis": [True] * 17,
                    })
                    next_id += 1
            if detected:
                track[f"{ACTION_NAMES[action]} {sub}"] = views
    data = {"images": images, "annotations": annotations}
    return data, cams, joint_3d, smpl_param, betas, joint_3d_coco, track


def _write_track(tracks: Dict[str, Dict[str, list]], path: Path) -> None:
    """``positions_2d`` (subject -> sequence -> one array per camera) and ``metadata`` in
    VideoPose3D's 2D layout, compressed, written atomically."""
    import io

    meta = {"layout_name": "h36m", "num_joints": 17,
            "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]],
            "channels": ["x", "y", "score"], "generator": "hgn_pyg.data.synthetic"}
    buf = io.BytesIO()
    np.savez_compressed(buf, positions_2d=np.array(tracks, dtype=object),
                        metadata=np.array(meta, dtype=object))
    atomic_write_bytes(path, buf.getvalue())


def _matrices_from_rotvec(pose: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    T = pose.shape[0]
    return Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(T, 24, 3, 3)


def generate(out_dir: Union[str, Path], frames: int = DEFAULT_FRAMES, seed: int = 0,
             subjects: Iterable[int] = SUBJECTS, body_model_path: Optional[Union[str, Path]] = None,
             actions: Optional[Iterable[int]] = None, overwrite: bool = False,
             detected_subjects: Optional[Iterable[int]] = None) -> Path:
    """Write the synthetic data set into ``out_dir`` and return the manifest path.

    Args:
        out_dir: destination; ``annotations/`` and ``SYNTHETIC.json`` are created in it.
        frames: frames per (action, sub-action) sequence at 50 fps (default 200).
        seed: everything (shapes, motions, cameras) is a function of the seed.
        subjects: Human3.6M subject numbers to write (default 1, 5, 6, 7, 8, 9, 11).
        body_model_path: an SMPL-format model with a Human3.6M regressor (default: the open
            body model; the bone-length guarantee holds for that one).
        actions: action indices 2..16 (default all 15).
        overwrite: replace the annotations already in ``out_dir`` (otherwise a DataError).
        detected_subjects: subjects that get the detected-like 2D track
            (:data:`DETECTED_FILE`; default those of :data:`DETECTED_SUBJECTS` being generated;
            an empty list writes no track).

    The manifest ``SYNTHETIC.json`` records the parameters; :func:`dataset_identity` of them
    tells whether a folder holds the set a configuration asks for.
    """
    if int(frames) < 1:
        raise DataError(f"frames must be >= 1, got {frames}")
    subjects = [int(s) for s in subjects]
    if not subjects:
        raise DataError("no subjects to generate")
    actions = sorted(ACTION_NAMES) if actions is None else [int(a) for a in actions]
    for a in actions:
        if a not in ACTION_NAMES:
            raise DataError(f"unknown action_idx {a}; expected 2..16")
    out = Path(out_dir)
    ann = out / "annotations"
    if not overwrite and ann.is_dir() and any(ann.glob("Human36M_subject*_*.json")):
        raise DataError(f"{out}: already holds annotations; choose an empty folder or pass "
                        f"overwrite=True (--overwrite) to replace them")
    path = Path(body_model_path) if body_model_path is not None else default_body_model_path()
    model = load_body_model(path, dtype=None)
    start = time.time()
    detected = ([s for s in subjects if s in DETECTED_SUBJECTS] if detected_subjects is None
                else [int(s) for s in detected_subjects])
    unknown = sorted(set(detected) - set(subjects))
    if unknown:
        raise DataError(f"detected_subjects {unknown} are not among the generated subjects {subjects}")
    coco = coco_regressor(model)
    manifest_betas = {}
    tracks: Dict[str, Dict[str, list]] = {}
    for s in subjects:
        data, cams, j3d, smpl, betas, j3d_coco, track = _generate_subject(
            model, s, int(frames), int(seed), actions, coco, s in detected)
        _json_dump(j3d_coco, ann / f"Human36M_subject{s}_joint_3d_coco.json")
        if s in detected:
            tracks[f"S{s}"] = track
        _json_dump(data, ann / f"Human36M_subject{s}_data.json")
        _json_dump(cams, ann / f"Human36M_subject{s}_camera.json")
        _json_dump(j3d, ann / f"Human36M_subject{s}_joint_3d.json")
        _json_dump(smpl, ann / f"Human36M_subject{s}_smpl_param.json")
        manifest_betas[str(s)] = np.round(betas, 6).tolist()
        logger.info("subject %d written (%.1f s)", s, time.time() - start)
    manifest = {
        "generator": "hgn_pyg.data.synthetic", "version": SYNTHETIC_VERSION,
        "identity": dataset_identity(frames, seed, subjects, actions, path.name,
                                     model.version or "external"),
        "body_model": path.name, "body_model_version": model.version or "external",
        "seed": int(seed), "frames": int(frames), "fps": FPS, "subjects": subjects,
        "actions": {str(a): ACTION_NAMES[a] for a in actions}, "subactions": list(SUBACTIONS),
        "cameras": [1, 2, 3, 4], "betas": manifest_betas,
        "coco_face_vertices": face_vertices(model).tolist(),
        "detected_track": {"file": DETECTED_FILE, "subjects": detected} if detected else None,
        "static_smpl_joints": list(STATIC_JOINTS),
    }
    if detected:
        _write_track(tracks, out / DETECTED_FILE)
    _json_dump(manifest, out / "SYNTHETIC.json")
    return out / "SYNTHETIC.json"


def dataset_identity(frames: int, seed: int, subjects: Iterable[int], actions: Iterable[int],
                     body_model: str, body_model_version: str) -> Dict[str, object]:
    """The parameters that decide a synthetic set's content, in one canonical dict (recorded in
    ``SYNTHETIC.json``; two folders with equal identities hold the same data)."""
    return {"version": SYNTHETIC_VERSION, "frames": int(frames), "seed": int(seed),
            "subjects": sorted(int(s) for s in subjects), "actions": sorted(int(a) for a in actions),
            "body_model": str(body_model), "body_model_version": str(body_model_version)}


def manifest_identity(manifest: Dict[str, object]) -> Optional[Dict[str, object]]:
    """:func:`dataset_identity` of a ``SYNTHETIC.json`` (``None`` when it is not one of ours)."""
    if not isinstance(manifest, dict) or manifest.get("generator") != "hgn_pyg.data.synthetic":
        return None
    if isinstance(manifest.get("identity"), dict):
        return manifest["identity"]
    try:  # written before the identity was recorded
        ident = dataset_identity(manifest["frames"], manifest["seed"], manifest["subjects"],
                                 manifest["actions"], manifest["body_model"],
                                 manifest["body_model_version"])
    except (KeyError, TypeError, ValueError):
        return None
    ident["version"] = manifest.get("version")
    return ident


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hgn_pyg.data.synthetic",
        description="Write a synthetic Human3.6M-format data set (Pose2Mesh annotation layout) "
                    "made with the open body model.")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help=f"frames per sequence at 50 fps (default {DEFAULT_FRAMES})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subjects", type=int, nargs="+", default=list(SUBJECTS))
    parser.add_argument("--actions", type=int, nargs="+", default=None,
                        help="action indices 2..16 (default all)")
    parser.add_argument("--body-model", default=None, help="SMPL-format model file")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the annotations already in --out")
    parser.add_argument("--detected-subjects", type=int, nargs="*", default=None,
                        help=f"subjects that get the detected-like 2D track {DETECTED_FILE} "
                             f"(default: those of {list(DETECTED_SUBJECTS)} generated)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        start = time.time()
        manifest = generate(args.out, frames=args.frames, seed=args.seed, subjects=args.subjects,
                            body_model_path=args.body_model, actions=args.actions,
                            overwrite=args.overwrite, detected_subjects=args.detected_subjects)
    except (HGNError, OSError) as exc:
        if args.debug:
            raise
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("interrupted", file=sys.stderr)
        return 130
    logger.info("wrote %s in %.1f s", manifest, time.time() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
