"""Pictures of lifted poses: the 2D input beside the 3D skeleton, as an animated GIF and a PNG
contact sheet (``python -m hgn_pyg.lift --render``).

Left limbs are drawn in blue, right limbs in red, the trunk and head in grey (joint names starting
with ``L_`` / ``R_``). The 2D panel shows the normalised image coordinates (``v`` down); the 3D panel
the camera frame in metres (``x`` right, ``z`` forward, ``-y`` up) with equal axes, the same limits
for every frame.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["render_gif", "render_contact_sheet", "bone_sides"]

log = logging.getLogger(__name__)

_COLORS = {"left": "tab:blue", "right": "tab:red", "centre": "0.35"}


def bone_sides(bones: Sequence[Sequence[int]], joint_names: Sequence[str]) -> List[str]:
    """``"left"``, ``"right"`` or ``"centre"`` for every bone (by its joints' ``L_``/``R_`` names)."""
    out = []
    for a, b in bones:
        names = (joint_names[a], joint_names[b])
        out.append("left" if any(n.startswith("L_") for n in names) else
                   "right" if any(n.startswith("R_") for n in names) else "centre")
    return out


def _limits(joints: np.ndarray) -> Tuple[np.ndarray, float]:
    pts = joints.reshape(-1, 3)
    pts = pts[np.isfinite(pts).all(1)]
    if not len(pts):
        return np.zeros(3), 1.0
    lo, hi = pts.min(0), pts.max(0)
    return (lo + hi) / 2, max(float((hi - lo).max()) / 2 * 1.1, 0.1)


def _draw(fig, kp2d: np.ndarray, j3d: np.ndarray, bones, sides, centre, half, title: str, pos: int, rows: int,
          cols: int, lim2d) -> None:
    ax2 = fig.add_subplot(rows, cols * 2, 2 * pos + 1)
    ax3 = fig.add_subplot(rows, cols * 2, 2 * pos + 2, projection="3d")
    for (a, b), side in zip(bones, sides):
        c = _COLORS[side]
        ax2.plot(kp2d[[a, b], 0], kp2d[[a, b], 1], color=c, lw=2)
        ax3.plot(j3d[[a, b], 0], j3d[[a, b], 2], -j3d[[a, b], 1], color=c, lw=2)
    ax2.scatter(kp2d[:, 0], kp2d[:, 1], s=6, color="k")
    ax2.set_xlim(*lim2d[0])
    ax2.set_ylim(lim2d[1][1], lim2d[1][0])  # v grows downwards
    ax2.set_aspect("equal")
    ax2.set_title(f"2D input {title}", fontsize=8)
    ax2.tick_params(labelsize=6)
    cx, cy, cz = centre
    ax3.set_xlim(cx - half, cx + half)
    ax3.set_ylim(cz - half, cz + half)
    ax3.set_zlim(-cy - half, -cy + half)
    ax3.set_box_aspect((1, 1, 1))
    ax3.set_xlabel("x (m)", fontsize=7)
    ax3.set_ylabel("z (m)", fontsize=7)
    ax3.set_zlabel("-y (m)", fontsize=7)
    ax3.tick_params(labelsize=6)
    ax3.set_title(f"3D {title}", fontsize=8)


def _lim2d(kp: np.ndarray):
    pts = kp.reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(1)]
    if not len(pts):
        return (-1, 1), (-1, 1)
    lo, hi = pts.min(0), pts.max(0)
    c, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2 * 1.1, 0.05)
    return (c[0] - half, c[0] + half), (c[1] - half, c[1] + half)


def _figure(figsize):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=figsize)


def render_gif(keypoints_2d: np.ndarray, joints_3d: np.ndarray, bones, joint_names, path: Path,
               frames: Optional[np.ndarray] = None, max_frames: int = 120, fps: float = 10.0) -> Path:
    """An animated GIF of ``keypoints_2d [T, J, 2]`` (normalised) beside ``joints_3d [T, J, 3]``
    (metres); at most ``max_frames`` frames, evenly spread."""
    from PIL import Image

    t = len(joints_3d)
    idx = np.unique(np.linspace(0, t - 1, min(t, max_frames)).round().astype(int)) if t else np.zeros(0, int)
    sides = bone_sides(bones, joint_names)
    centre, half = _limits(joints_3d[idx])
    lim2d = _lim2d(keypoints_2d[idx])
    images = []
    plt, fig = _figure((7, 3.5))
    try:
        for i in idx:
            fig.clf()
            label = f"frame {int(frames[i]) if frames is not None else int(i)}"
            _draw(fig, keypoints_2d[i], joints_3d[i], bones, sides, centre, half, label, 0, 1, 1, lim2d)
            fig.tight_layout()
            fig.canvas.draw()
            images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()))
    finally:
        plt.close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


def render_contact_sheet(keypoints_2d: np.ndarray, joints_3d: np.ndarray, bones, joint_names, path: Path,
                         frames: Optional[np.ndarray] = None, count: int = 8, cols: int = 2) -> Path:
    """A PNG of ``count`` evenly spread frames, each 2D input beside its 3D skeleton."""
    t = len(joints_3d)
    idx = np.unique(np.linspace(0, t - 1, min(t, count)).round().astype(int))
    rows = int(np.ceil(len(idx) / cols))
    sides = bone_sides(bones, joint_names)
    centre, half = _limits(joints_3d[idx])
    lim2d = _lim2d(keypoints_2d[idx])
    plt, fig = _figure((7 * cols, 3.5 * rows))
    try:
        for pos, i in enumerate(idx):
            label = f"frame {int(frames[i]) if frames is not None else int(i)}"
            _draw(fig, keypoints_2d[i], joints_3d[i], bones, sides, centre, half, label, pos, rows, cols, lim2d)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=70)
    finally:
        plt.close(fig)
    return path
