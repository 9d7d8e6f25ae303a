"""Human motions for the synthetic set: named key poses, random poses within joint limits, and
Human3.6M-like action sequences made of them.

A pose is a vector of anatomical angles in degrees, :data:`CHANNELS` (hip flexion / abduction /
twist, knee, ankle, shoulder, elbow, wrist, spine, neck, and the root's pitch and roll), each
bounded by :data:`LIMITS` (no knee or elbow bending backwards, ...). :func:`pose_rotations` turns
poses into the local rotations of SMPL's 24 joints (the rest frame of the open body: x = the
person's left, y up, z forward); SMPL joints 6, 9, 13, 14, 15 (spine2, spine3, collars, head) are
never rotated, so every Human3.6M bone of the open body stays rigid.

:data:`KEY_POSES` is a library of named poses people take (standing, bending, crouching, sitting
on a chair and on the floor, kneeling, arms overhead and across the body, reaching, pointing,
turning, leaning, lying, ...). :func:`action_motion` builds one sequence per (action, sub-action,
subject): a schedule of the action's key poses (:data:`ACTION_POSES`) and random poses
(:func:`random_pose`), joined by smooth (minimum-jerk) transitions, with idle sway, turning, and a
walking gait for the walking actions. Every frame keeps the joint limits, and the arms and knees
stay out of the torso (:func:`body_clearance`, a capsule check on the reference skeleton).

:func:`coverage` measures what a set of poses covers (per-channel angle ranges, which named poses
occur); ``docs/real_people_data.md`` states the figures for the default set.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import DataError
from .body_model import STATIC_JOINTS, rigid_transforms
from .open_body import design_joints
from .smpl_format import SMPL_PARENTS

__all__ = ["CHANNELS", "LIMITS", "KEY_POSES", "ACTION_POSES", "FPS",
           "pose_vector", "random_pose", "UPPER_CHANNELS", "WALKING_ACTIONS", "pose_rotations", "root_rotation", "action_motion",
           "joint_positions", "body_clearance", "CLEARANCE_M", "coverage", "nearest_key_pose",
           "motion_set_coverage"]

FPS = 50
_DEG = np.pi / 180.0

_LEG = ("hip_flex", "hip_abduct", "hip_twist", "knee", "ankle")
_ARM = ("shoulder_down", "shoulder_forward", "shoulder_horiz", "elbow", "wrist")
#: Pose channels (degrees). Legs: flexion (thigh forward relative to the pelvis), abduction
#: (outwards), twist (toes outwards), knee flexion, ankle (toes up). Arms: ``shoulder_down``
#: (0 = arm out sideways as in the T-pose, 80 = hanging down, < 0 = raised above the shoulder),
#: ``shoulder_forward`` (flexion forward of a hanging arm), ``shoulder_horiz`` (rotation about the
#: vertical: moves a bent forearm across the body), elbow flexion, wrist. Spine: flexion
#: (forward), twist (towards the person's left), lateral (towards the left). Neck: nod (down),
#: turn (left), tilt (left). Root: ``pitch`` (the whole body forward, e.g. 90 = lying face down,
#: -90 = lying on the back; the legs follow, so bending at the hips is pitch + hip flexion) and
#: ``roll`` (towards the person's left).
CHANNELS: Tuple[str, ...] = (
    tuple(f"L_{c}" for c in _LEG) + tuple(f"R_{c}" for c in _LEG)
    + tuple(f"L_{c}" for c in _ARM) + tuple(f"R_{c}" for c in _ARM)
    + ("spine_flex", "spine_twist", "spine_lateral", "neck_nod", "neck_turn", "neck_tilt",
       "pitch", "roll"))
_IDX = {c: i for i, c in enumerate(CHANNELS)}

#: Anatomical range (min, max) of each channel in degrees (both sides alike).
_RANGES = {
    "hip_flex": (-30, 135), "hip_abduct": (-25, 50), "hip_twist": (-40, 45), "knee": (0, 150),
    "ankle": (-45, 30), "shoulder_down": (-95, 95), "shoulder_forward": (-60, 175),
    "shoulder_horiz": (-40, 130), "elbow": (0, 150), "wrist": (-70, 70),
    "spine_flex": (-30, 75), "spine_twist": (-45, 45), "spine_lateral": (-35, 35),
    "neck_nod": (-50, 60), "neck_turn": (-75, 75), "neck_tilt": (-35, 35),
    "pitch": (-95, 95), "roll": (-95, 95),
}
LIMITS: Dict[str, Tuple[float, float]] = {
    c: _RANGES[c[2:] if c[:2] in ("L_", "R_") else c] for c in CHANNELS}
_LO = np.array([LIMITS[c][0] for c in CHANNELS], dtype=np.float64)
_HI = np.array([LIMITS[c][1] for c in CHANNELS], dtype=np.float64)

#: Relaxed standing: legs straight, arms hanging, slightly bent elbows.
_STAND = {"L_hip_flex": 2, "R_hip_flex": 2, "L_hip_abduct": 3, "R_hip_abduct": 3,
          "L_knee": 3, "R_knee": 3, "L_shoulder_down": 80, "R_shoulder_down": 80,
          "L_shoulder_forward": 5, "R_shoulder_forward": 5, "L_elbow": 12, "R_elbow": 12,
          "spine_flex": 3, "neck_nod": 5}


def pose_vector(**channels: float) -> np.ndarray:
    """A pose (``[len(CHANNELS)]`` degrees): relaxed standing with ``channels`` changed; a name
    ``both_X`` sets ``L_X`` and ``R_X``."""
    v = np.zeros(len(CHANNELS))
    for name, val in _STAND.items():
        v[_IDX[name]] = val
    for name, val in channels.items():
        names = [f"L_{name[5:]}", f"R_{name[5:]}"] if name.startswith("both_") else [name]
        for n in names:
            if n not in _IDX:
                raise DataError(f"unknown pose channel {n!r}; expected one of {CHANNELS}")
            v[_IDX[n]] = val
    return v


def _mirror(v: np.ndarray) -> np.ndarray:
    """The left-right mirror image of a pose."""
    out = v.copy()
    for c in _LEG + _ARM:
        out[_IDX[f"L_{c}"]], out[_IDX[f"R_{c}"]] = v[_IDX[f"R_{c}"]], v[_IDX[f"L_{c}"]]
    for c in ("spine_twist", "spine_lateral", "neck_turn", "neck_tilt", "roll"):
        out[_IDX[c]] = -v[_IDX[c]]
    return out


_P = pose_vector
#: Named key poses (right-handed versions; :func:`action_motion` mirrors them for left-handed
#: variation). Each is a full channel vector in degrees.
KEY_POSES: Dict[str, np.ndarray] = {
    "stand": _P(),
    "stand_wide": _P(both_hip_abduct=12, both_hip_twist=10, L_shoulder_down=70,
                     R_shoulder_down=70),
    "t_pose": _P(both_shoulder_down=0, both_elbow=5),
    "arms_overhead": _P(both_shoulder_down=-80, both_elbow=15, neck_nod=-15, spine_flex=-8),
    "reach_up": _P(R_shoulder_down=-70, R_shoulder_forward=15, R_elbow=10, neck_nod=-25,
                   spine_lateral=8, L_hip_flex=2, R_ankle=-15, L_ankle=-15),
    "hands_behind_head": _P(both_shoulder_down=-10, both_shoulder_forward=15, both_elbow=145,
                            both_shoulder_horiz=35, neck_nod=-5),
    "arms_crossed": _P(both_shoulder_down=72, both_shoulder_forward=25, both_shoulder_horiz=75,
                       both_elbow=115),
    "reach_across": _P(R_shoulder_down=55, R_shoulder_forward=70, R_shoulder_horiz=60,
                       R_elbow=15, spine_twist=20, neck_turn=20),
    "reach_forward": _P(R_shoulder_down=75, R_shoulder_forward=85, R_elbow=10, spine_flex=10),
    "point_side": _P(R_shoulder_down=5, R_shoulder_forward=25, R_elbow=5, neck_turn=-40,
                     spine_twist=-10),
    "wave": _P(R_shoulder_down=-25, R_shoulder_forward=20, R_elbow=80, neck_nod=-5),
    "hand_to_ear": _P(R_shoulder_down=60, R_shoulder_forward=30, R_shoulder_horiz=25,
                      R_elbow=145, neck_tilt=-10),
    "hand_to_mouth": _P(R_shoulder_down=70, R_shoulder_forward=50, R_shoulder_horiz=35,
                        R_elbow=140),
    "hands_on_hips": _P(both_shoulder_down=50, both_shoulder_forward=-15, both_elbow=100,
                        both_shoulder_horiz=-10),
    "hands_behind_back": _P(both_shoulder_down=75, both_shoulder_forward=-35, both_elbow=60,
                            both_shoulder_horiz=-15),
    "camera_at_face": _P(both_shoulder_down=55, both_shoulder_forward=55, both_shoulder_horiz=25,
                         both_elbow=120, neck_nod=-5),
    "bow": _P(pitch=35, both_hip_flex=35, spine_flex=20, neck_nod=10),
    "bend_forward": _P(pitch=55, both_hip_flex=60, spine_flex=35, both_knee=10,
                       both_shoulder_forward=40, both_elbow=10, neck_nod=-10),
    "pick_up": _P(pitch=60, both_hip_flex=75, spine_flex=35, both_knee=35, both_ankle=15,
                  R_shoulder_forward=70, L_shoulder_forward=40, both_elbow=15),
    "crouch": _P(pitch=35, both_hip_flex=120, both_knee=135, both_ankle=28, spine_flex=20,
                 both_shoulder_forward=45, both_elbow=40, both_hip_abduct=12),
    "squat_half": _P(pitch=25, both_hip_flex=75, both_knee=85, both_ankle=22, spine_flex=10,
                     both_shoulder_forward=60, both_elbow=20),
    "lunge": _P(R_hip_flex=70, R_knee=80, R_ankle=15, L_hip_flex=-20, L_knee=15, pitch=5,
                L_ankle=-10),
    "kick": _P(R_hip_flex=75, R_knee=15, L_knee=5, pitch=-10, spine_flex=-5,
               both_shoulder_down=55),
    "stand_on_one_leg": _P(R_hip_flex=40, R_knee=90, L_shoulder_down=45, R_shoulder_down=45),
    "lean_side": _P(roll=-10, spine_lateral=-25, L_hip_abduct=12, R_hip_abduct=-2,
                    neck_tilt=-10),
    "lean_back": _P(pitch=-10, spine_flex=-20, both_hip_flex=-10, neck_nod=-20,
                    both_shoulder_forward=-15),
    "twist_turn": _P(spine_twist=40, neck_turn=55, R_shoulder_forward=30, L_shoulder_forward=-10),
    "look_down": _P(neck_nod=50, spine_flex=15),
    "sit_chair": _P(both_hip_flex=88, both_knee=88, both_ankle=-5, pitch=-5,
                    both_shoulder_forward=35, both_elbow=60, both_shoulder_down=72),
    "sit_chair_lean_forward": _P(both_hip_flex=100, both_knee=80, pitch=15, spine_flex=25,
                                 both_shoulder_forward=55, both_elbow=75, neck_nod=-10),
    "sit_chair_legs_crossed": _P(R_hip_flex=105, R_hip_abduct=-15, R_knee=70, L_hip_flex=88,
                                 L_knee=88, pitch=-5, both_shoulder_forward=30, both_elbow=70),
    "sit_chair_lean_back": _P(both_hip_flex=70, both_knee=50, pitch=-25, spine_flex=-5,
                              both_shoulder_down=70, both_shoulder_forward=15,
                              both_elbow=30, neck_nod=15),
    "sit_floor_legs_out": _P(both_hip_flex=75, both_knee=5, both_ankle=-20, pitch=-15,
                             spine_flex=5, both_shoulder_down=75, both_shoulder_forward=-25,
                             both_elbow=5),
    "sit_floor_knees_up": _P(both_hip_flex=115, both_knee=120, pitch=-10, spine_flex=25,
                             both_shoulder_forward=60, both_elbow=40, both_hip_abduct=8),
    "kneel": _P(both_hip_flex=0, both_knee=95, both_ankle=-40, both_shoulder_forward=10),
    "kneel_sit_back": _P(both_hip_flex=70, both_knee=150, both_ankle=-40, pitch=10,
                         spine_flex=10, both_shoulder_forward=30, both_elbow=40),
    "kneel_one_knee": _P(R_hip_flex=85, R_knee=90, L_hip_flex=-5, L_knee=95, L_ankle=-35,
                         R_shoulder_forward=35, R_elbow=50),
    "all_fours": _P(pitch=80, both_hip_flex=80, both_knee=95, both_ankle=-40,
                    both_shoulder_forward=80, both_elbow=5, spine_flex=5, neck_nod=-45),
    "lie_back": _P(pitch=-90, both_hip_flex=2, both_knee=5, both_shoulder_down=80,
                   both_elbow=10, neck_nod=5),
    "lie_back_knees_up": _P(pitch=-90, both_hip_flex=60, both_knee=100, both_shoulder_down=60,
                            both_elbow=20, neck_nod=15),
    "lie_front": _P(pitch=90, both_hip_flex=0, both_knee=10, both_shoulder_down=80,
                    both_shoulder_forward=-10, both_elbow=10, neck_nod=-30),
    "lie_side": _P(roll=-88, R_shoulder_down=-90, R_elbow=30, L_hip_flex=35, L_knee=50,
                   R_hip_flex=20, R_knee=30, L_shoulder_forward=20, neck_tilt=-15),
}
del _P

#: Key poses of each Human3.6M action (action_idx 2..16): (whole-body poses, upper-body poses),
#: each in rough order of how often it occurs. A key of a sequence is a whole-body pose, often
#: with the arms, spine and neck of an upper-body pose; random poses within the limits around
#: them (:func:`random_pose`) are mixed in.
ACTION_POSES: Dict[int, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    2: (("stand", "stand_wide", "twist_turn", "lean_side"),
        ("point_side", "reach_forward", "wave", "reach_up", "hands_on_hips")),
    3: (("stand", "stand_wide", "lean_side", "twist_turn"),
        ("hands_on_hips", "arms_crossed", "reach_forward", "hands_behind_back", "wave",
         "point_side")),
    4: (("sit_chair", "sit_chair_lean_forward", "sit_chair_legs_crossed", "stand"),
        ("hand_to_mouth", "look_down", "reach_forward", "arms_crossed")),
    5: (("stand", "bow", "stand_wide", "twist_turn"),
        ("wave", "reach_forward", "arms_overhead", "t_pose")),
    6: (("stand", "sit_chair", "lean_side", "stand_wide"),
        ("hand_to_ear", "look_down", "twist_turn", "hands_on_hips")),
    7: (("arms_overhead", "t_pose", "lunge", "kick", "stand_on_one_leg", "squat_half",
         "lean_back", "kneel_one_knee", "lean_side", "hands_behind_head", "stand"),
        ("arms_overhead", "hands_on_hips", "t_pose", "hands_behind_head", "wave", "point_side")),
    8: (("bend_forward", "pick_up", "crouch", "squat_half", "stand", "reach_up", "reach_across"),
        ("reach_forward", "reach_across", "reach_up", "look_down")),
    9: (("sit_chair", "sit_chair_lean_forward", "sit_chair_legs_crossed", "sit_chair_lean_back"),
        ("hand_to_ear", "arms_crossed", "look_down", "hand_to_mouth", "hands_behind_head",
         "twist_turn", "reach_forward")),
    10: (("sit_floor_knees_up", "lie_back", "kneel", "sit_floor_legs_out", "lie_side",
          "kneel_sit_back", "lie_back_knees_up", "lie_front", "all_fours", "crouch", "stand",
          "sit_chair"), ()),
    11: (("stand", "sit_chair", "lean_side", "stand_wide"),
         ("hand_to_mouth", "arms_crossed", "look_down", "hands_behind_back")),
    12: (("stand", "crouch", "kneel_one_knee", "squat_half", "lean_back", "bend_forward",
          "stand_wide"), ("camera_at_face", "look_down", "point_side")),
    13: (("stand", "stand_wide", "lean_side", "sit_chair", "stand_on_one_leg", "twist_turn"),
         ("arms_crossed", "hands_behind_back", "hands_on_hips", "look_down", "hand_to_ear")),
    14: (("stand",), ("stand", "hands_behind_back")),
    15: (("stand", "bend_forward", "pick_up"), ("reach_forward", "look_down")),
    16: (("stand",), ("twist_turn", "hands_behind_back", "point_side", "arms_crossed")),
}
#: Channels an upper-body pose sets (arms, spine, neck).
UPPER_CHANNELS: Tuple[str, ...] = tuple(c for c in CHANNELS if "shoulder" in c or "elbow" in c
                                        or "wrist" in c or c.startswith(("spine", "neck")))
_UPPER = np.array([_IDX[c] for c in UPPER_CHANNELS])
#: Actions whose sequences walk (a gait drives the legs; the keys set the arms and trunk).
WALKING_ACTIONS = (14, 15, 16)


# --------------------------------------------------------------------------------------------
# poses -> rotations
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


def pose_rotations(poses: np.ndarray) -> np.ndarray:
    """Local rotations ``[T, 24, 3, 3]`` of SMPL's joints for poses ``[T, len(CHANNELS)]``
    (degrees; the root's entry is the identity, see :func:`root_rotation`).

    ``R_j = Rx(a_x)·Ry(a_y)·Rz(a_z)`` in the open body's rest frame; the channels map to
    (joint, axis, sign) as written below; joints :data:`STATIC_JOINTS` stay unrotated.
    """
    p = np.asarray(poses, dtype=np.float64) * _DEG
    T = p.shape[0]
    ang = np.zeros((T, 24, 3))
    g = lambda name: p[:, _IDX[name]]  # noqa: E731
    for side, s, hip, knee, ankle in (("L", 1, 1, 4, 7), ("R", -1, 2, 5, 8)):
        ang[:, hip, 0] = -g(f"{side}_hip_flex")
        ang[:, hip, 1] = s * g(f"{side}_hip_twist")
        ang[:, hip, 2] = s * g(f"{side}_hip_abduct")
        ang[:, knee, 0] = g(f"{side}_knee")
        ang[:, ankle, 0] = -g(f"{side}_ankle")
    for side, s, sh, el, wr in (("L", 1, 16, 18, 20), ("R", -1, 17, 19, 21)):
        ang[:, sh, 0] = -g(f"{side}_shoulder_forward")
        ang[:, sh, 1] = -s * g(f"{side}_shoulder_horiz")
        ang[:, sh, 2] = -s * g(f"{side}_shoulder_down")
        ang[:, el, 1] = -s * g(f"{side}_elbow")
        ang[:, wr, 2] = -s * g(f"{side}_wrist")
    ang[:, 3, 0] = g("spine_flex")
    ang[:, 3, 1] = g("spine_twist")
    ang[:, 3, 2] = -g("spine_lateral")
    ang[:, 12, 0] = g("neck_nod")
    ang[:, 12, 1] = g("neck_turn")
    ang[:, 12, 2] = -g("neck_tilt")
    R = _rot(0, ang[..., 0]) @ _rot(1, ang[..., 1]) @ _rot(2, ang[..., 2])
    R[:, [0] + list(STATIC_JOINTS)] = np.eye(3)
    return R


_Y_TO_Z = _rot(0, np.pi / 2)  # the body's y-up frame -> the world's z-up (the body faces -y)


def root_rotation(poses: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """World rotation ``[T, 3, 3]`` of the root: heading ``yaw [T]`` (radians, about the world's
    vertical z) times the pose's pitch and roll, in the world frame of Human3.6M (z up)."""
    p = np.asarray(poses, dtype=np.float64)
    body = _rot(0, p[:, _IDX["pitch"]] * _DEG) @ _rot(2, -p[:, _IDX["roll"]] * _DEG)
    return _rot(2, yaw) @ _Y_TO_Z @ body


# --------------------------------------------------------------------------------------------
# anatomical checks on the reference skeleton
# --------------------------------------------------------------------------------------------
_REST = design_joints()  # [24, 3] the open body's template joints (the reference skeleton)
#: Minimum distances (m) between body parts, on the reference skeleton: an arm segment (from the
#: middle of the upper arm to the wrist) or a knee from the trunk axis (pelvis -> neck), the two
#: thighs, the two shins.
CLEARANCE_M = {"arm_trunk": 0.10, "knee_trunk": 0.10, "thighs": 0.10, "shins": 0.07}


def joint_positions(local: np.ndarray, root: Optional[np.ndarray] = None,
                    rest: Optional[np.ndarray] = None) -> np.ndarray:
    """Forward kinematics of SMPL's tree: joints ``[T, 24, 3]`` for local rotations
    ``[T, 24, 3, 3]`` (root rotation ``root [T, 3, 3]`` or the identity), rest joints ``rest``
    (default: the open body's template), root at the rest position."""
    rest = _REST if rest is None else np.asarray(rest, dtype=np.float64)
    rot = np.array(local, dtype=np.float64)
    if root is not None:
        rot[:, 0] = root
    return rigid_transforms(rot, rest, SMPL_PARENTS)[..., 3]


def _segment_distance(a0, a1, b0, b1) -> np.ndarray:
    """Closest distance between segments ``a0a1`` and ``b0b1`` (``[T, 3]`` each) -> ``[T]``
    (sampled along both segments: 9 points each, exact enough for a clearance check)."""
    s = np.linspace(0.0, 1.0, 9)
    pa = a0[:, None] + s[None, :, None] * (a1 - a0)[:, None]
    pb = b0[:, None] + s[None, :, None] * (b1 - b0)[:, None]
    return np.linalg.norm(pa[:, :, None] - pb[:, None, :], axis=-1).min(axis=(1, 2))


def body_clearance(poses: np.ndarray) -> np.ndarray:
    """Smallest margin (m) of each pose ``[T, len(CHANNELS)]`` over the :data:`CLEARANCE_M`
    checks on the reference skeleton; negative means a limb passes through the body."""
    J = joint_positions(pose_rotations(poses))
    trunk0, trunk1 = J[:, 0], J[:, 12]
    m = []
    for sh, el, wr in ((16, 18, 20), (17, 19, 21)):
        mid = 0.5 * (J[:, sh] + J[:, el])
        m.append(_segment_distance(mid, J[:, el], trunk0, trunk1) - CLEARANCE_M["arm_trunk"])
        m.append(_segment_distance(J[:, el], J[:, wr], trunk0, trunk1) - CLEARANCE_M["arm_trunk"])
    for knee in (4, 5):
        m.append(_segment_distance(J[:, knee], J[:, knee], trunk0, trunk1)
                 - CLEARANCE_M["knee_trunk"])
    m.append(_segment_distance(J[:, 1], J[:, 4], J[:, 2], J[:, 5]) - CLEARANCE_M["thighs"])
    m.append(_segment_distance(J[:, 4], J[:, 7], J[:, 5], J[:, 8]) - CLEARANCE_M["shins"])
    return np.min(np.stack(m, axis=1), axis=1)


def random_pose(rng: np.random.Generator, base: Optional[np.ndarray] = None,
                spread: float = 0.5, tries: int = 50) -> np.ndarray:
    """A random pose within :data:`LIMITS` that passes :func:`body_clearance`: each channel drawn
    around ``base`` (default: standing) with a spread of ``spread`` times its range (the root's
    pitch and roll kept within +-25 degrees of the base's), clipped to the limits."""
    base = KEY_POSES["stand"] if base is None else np.asarray(base, dtype=np.float64)
    width = (_HI - _LO) * spread
    width[[_IDX["pitch"], _IDX["roll"]]] = 50.0
    for _ in range(tries):
        v = np.clip(base + rng.uniform(-0.5, 0.5, len(CHANNELS)) * width, _LO, _HI)
        if body_clearance(v[None])[0] >= 0.0:
            return v
    return base.copy()


# --------------------------------------------------------------------------------------------
# sequences
# --------------------------------------------------------------------------------------------
def _smooth(x: np.ndarray) -> np.ndarray:
    """Minimum-jerk blend 0 -> 1 on [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (10.0 - 15.0 * x + 6.0 * x * x)


def _wobble(rng: np.random.Generator, t: np.ndarray, n: int, low=0.1, high=0.5) -> np.ndarray:
    """``[T, n]`` smooth random signals in about [-1, 1] (sums of three sines)."""
    f = rng.uniform(low, high, (3, n))
    ph = rng.uniform(0, 2 * np.pi, (3, n))
    return np.sin(2 * np.pi * f[:, None, :] * t[None, :, None] + ph[:, None, :]).sum(0) / 1.7


#: Fastest a channel turns in a transition between key poses (degrees per second).
MAX_SPEED_DEG_S = 240.0


def _schedule(keys: List[np.ndarray], holds: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Hold each key for ``holds[k]`` seconds, then move to the next with a minimum-jerk
    transition lasting long enough that no channel turns faster than :data:`MAX_SPEED_DEG_S`
    on average (at most 1.875 times that at the transition's middle)."""
    out = np.repeat(keys[0][None], len(t), axis=0)
    start = holds[0]
    for k in range(1, len(keys)):
        move = max(0.25, float(np.abs(keys[k] - keys[k - 1]).max()) / MAX_SPEED_DEG_S)
        a = _smooth((t - start) / move)[:, None]
        out = out + a * (keys[k] - keys[k - 1])[None]
        start += move + holds[k]
    return out


def _walk(poses: np.ndarray, t: np.ndarray, rng: np.random.Generator, stride: float,
          cadence: float) -> None:
    """Overlay a walking gait (legs, arm swing, trunk rotation) on ``poses`` in place."""
    ph = 2 * np.pi * cadence * t + rng.uniform(0, 2 * np.pi)
    for side, off in (("L", 0.0), ("R", np.pi)):
        q = ph + off
        poses[:, _IDX[f"{side}_hip_flex"]] = 8 + 24 * stride * np.sin(q)
        poses[:, _IDX[f"{side}_knee"]] = 8 + 55 * stride * np.clip(np.sin(q + 1.2), 0, None) ** 2
        poses[:, _IDX[f"{side}_ankle"]] = 5 * np.sin(q - 0.6)
        poses[:, _IDX[f"{side}_hip_abduct"]] = 2.0
        poses[:, _IDX[f"{side}_shoulder_forward"]] += -18 * stride * np.sin(q)
    poses[:, _IDX["spine_twist"]] += 6 * stride * np.sin(ph)
    poses[:, _IDX["roll"]] = 3 * np.sin(2 * ph)
    poses[:, _IDX["pitch"]] = 2.0


def _walk_path(t: np.ndarray, rng: np.random.Generator, speed: float, half: Sequence[float]):
    """Walking back and forth across the capture area (turning at the ends): path [T, 2] (m,
    around the area's centre) and heading [T] (radians, the direction of travel)."""
    angle = rng.uniform(-np.pi, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    reach = 0.9 / np.sqrt((direction[0] / half[0]) ** 2 + (direction[1] / half[1]) ** 2)
    s = np.cumsum(np.full(len(t), speed / FPS)) + rng.uniform(0, 2 * reach)
    period = 4 * reach
    u = np.mod(s, period)
    pos = np.where(u < 2 * reach, u - reach, 3 * reach - u)  # triangle wave in [-reach, reach]
    heading = np.where(u < 2 * reach, angle, angle + np.pi)
    # smooth the half-turns over about a second
    turn = np.exp(1j * heading)
    k = np.ones(FPS) / FPS
    turn = np.convolve(np.pad(turn, (FPS // 2, FPS - FPS // 2 - 1), mode="edge"), k, "valid")
    return pos[:, None] * direction, np.angle(turn)


def action_motion(action: int, subaction: int, subject: int, frames: int, seed: int = 0,
                  half: Sequence[float] = (0.7, 0.9)):
    """One sequence of an action: ``(poses [T, len(CHANNELS)] degrees, yaw [T] radians,
    path [T, 2] metres around the capture area's centre, names)`` where ``names`` lists the named
    key poses scheduled (random poses as ``"random"``). Deterministic in
    (seed, subject, action, subaction); every frame is within :data:`LIMITS` and passes
    :func:`body_clearance`."""
    if action not in ACTION_POSES:
        raise DataError(f"unknown action_idx {action}; expected 2..16")
    t = np.arange(frames, dtype=np.float64) / FPS
    for attempt in range(20):
        rng = np.random.default_rng([seed, subject, action, subaction, attempt])
        poses, names = _keyed_poses(action, t, rng)
        poses = np.clip(poses, _LO, _HI)
        if body_clearance(poses[:: max(1, frames // 100)]).min() >= 0.0 \
                and body_clearance(poses).min() >= 0.0:
            break
    else:  # a plain standing sequence always passes
        poses = np.repeat(KEY_POSES["stand"][None], frames, axis=0)
        names = ["stand"]
    yaw, path = _root_path(action, t, rng, half)
    return poses, yaw, path, names


def _pick(pool: Sequence[str], rng: np.random.Generator) -> str:
    w = 1.0 / (1.0 + 0.3 * np.arange(len(pool)))
    return pool[rng.choice(len(pool), p=w / w.sum())]


def _keyed_poses(action: int, t: np.ndarray, rng: np.random.Generator):
    whole, upper = ACTION_POSES[action]
    mirror = rng.uniform() < 0.35  # left-handed variation
    dur = t[-1] + 1.0 / FPS
    keys, names, holds = [], [], []
    elapsed = 0.0
    while elapsed < dur:  # keys until the sequence is over
        name = _pick(whole, rng)
        v = KEY_POSES[name].copy()
        if upper and rng.uniform() < 0.6:
            up = _pick(upper, rng)
            v[_UPPER] = KEY_POSES[up][_UPPER]
            name = f"{name}+{up}"
        if rng.uniform() < 0.25:  # a random pose around it
            v = random_pose(rng, v, spread=0.3)
            name = "random"
        # per-key variation of every channel (a few degrees) keeps repeats distinct
        v = v + rng.normal(0.0, 4.0, len(CHANNELS)) * (np.abs(v) > 0)
        v = _mirror(v) if mirror else v
        if keys:
            elapsed += max(0.25, float(np.abs(v - keys[-1]).max()) / MAX_SPEED_DEG_S)
        holds.append(rng.uniform(0.1, 0.7))
        elapsed += holds[-1]
        keys.append(v)
        names.append(name)
    poses = _schedule(keys, np.asarray(holds), t)
    poses += 3.0 * _wobble(rng, t, len(CHANNELS))  # idle sway
    if action in WALKING_ACTIONS:
        _walk(poses, t, rng, stride=rng.uniform(0.7, 1.1), cadence=rng.uniform(0.75, 1.0))
    return poses, names


def _root_path(action: int, t: np.ndarray, rng: np.random.Generator, half: Sequence[float]):
    half = np.asarray(half, dtype=np.float64)
    if action in WALKING_ACTIONS:
        path, heading = _walk_path(t, rng, rng.uniform(0.8, 1.3), half)
        # the body faces -y in its world frame: yaw = heading + pi/2 faces the travel direction
        return heading + np.pi / 2, path
    start = rng.uniform(-0.6, 0.6, 2) * half
    drift = 0.15 * _wobble(rng, t / 8.0, 2)
    heading = rng.uniform(-np.pi, np.pi)
    turns = np.cumsum(rng.normal(0.0, 0.6, 4))  # a few turns over the sequence
    u = t / max(t[-1], 1e-9) * 3.0
    turn = turns[0] + sum(_smooth(u - k) * (turns[k + 1] - turns[k]) for k in range(3))
    return heading + turn, start + drift


# --------------------------------------------------------------------------------------------
# coverage
# --------------------------------------------------------------------------------------------
def nearest_key_pose(poses: np.ndarray, tolerance: float = 20.0) -> List[Optional[str]]:
    """The named key pose each pose ``[T, C]`` is within ``tolerance`` degrees (RMS over the
    channels) of, or ``None``."""
    names = list(KEY_POSES)
    lib = np.stack([KEY_POSES[n] for n in names] + [_mirror(KEY_POSES[n]) for n in names])
    d = np.sqrt(((np.asarray(poses)[:, None] - lib[None]) ** 2).mean(-1))
    best = d.argmin(axis=1)
    return [names[b % len(names)] if d[i, b] <= tolerance else None
            for i, b in enumerate(best)]


def coverage(poses: np.ndarray, tolerance: float = 20.0) -> Dict[str, object]:
    """What poses ``[T, len(CHANNELS)]`` cover: per-channel ``(min, max)`` degrees
    (``ranges``), the share of each channel's anatomical range covered (``range_share``), and
    how many poses lie near each named key pose (``named``, see :func:`nearest_key_pose`)."""
    poses = np.asarray(poses, dtype=np.float64)
    lo, hi = poses.min(axis=0), poses.max(axis=0)
    near = nearest_key_pose(poses, tolerance)
    counts = {n: 0 for n in KEY_POSES}
    for n in near:
        if n is not None:
            counts[n] += 1
    return {
        "ranges": {c: (float(lo[i]), float(hi[i])) for i, c in enumerate(CHANNELS)},
        "range_share": {c: float((hi[i] - lo[i]) / (_HI[i] - _LO[i]))
                        for i, c in enumerate(CHANNELS)},
        "named": counts,
    }


def motion_set_coverage(frames: int, seed: int = 0, subjects: Iterable[int] = (1, 5, 6, 7, 8, 9, 11),
                        actions: Iterable[int] = tuple(range(2, 17)), subactions=(1, 2),
                        tolerance: float = 20.0) -> Dict[str, object]:
    """:func:`coverage` of every frame of the synthetic set's motions (the poses
    :func:`action_motion` makes for ``subjects`` x ``actions`` x ``subactions``), plus
    ``frames_total`` and the clearance's minimum (``min_clearance_m``)."""
    poses = np.concatenate([action_motion(a, s, subj, frames, seed)[0] for subj in subjects
                            for a in actions for s in subactions])
    out = coverage(poses, tolerance)
    out["frames_total"] = int(len(poses))
    out["min_clearance_m"] = float(body_clearance(poses).min())
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m hgn_pyg.data.motions [--frames N] [--seed S]``: print the coverage table."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m hgn_pyg.data.motions",
                                 description="Coverage of the synthetic set's motions.")
    ap.add_argument("--frames", type=int, default=200, help="frames per sequence (default 200)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    cov = motion_set_coverage(args.frames, args.seed)
    print(f"{cov['frames_total']} frames; smallest limb-trunk clearance "
          f"{cov['min_clearance_m'] * 100:.1f} cm beyond the required margins")
    print("| channel | limits (deg) | covered (deg) | share of range |\n|---|---|---|---:|")
    for c in CHANNELS:
        lo, hi = cov["ranges"][c]
        print(f"| {c} | {LIMITS[c][0]:g} .. {LIMITS[c][1]:g} | {lo:.0f} .. {hi:.0f} | "
              f"{cov['range_share'][c] * 100:.0f} % |")
    named = cov["named"]
    total = cov["frames_total"]
    print("| key pose | frames within 20 deg RMS | share |\n|---|---:|---:|")
    for n, k in named.items():
        print(f"| {n} | {k} | {100 * k / total:.1f} % |")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
