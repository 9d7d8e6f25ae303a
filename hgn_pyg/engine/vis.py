"""Visual checks: 3D pose plots (PNG) and coarse meshes as OBJ files.

OBJ files hold the real vertices of a coarse mesh level (``v`` lines, original cluster order)
and its triangles (``f`` lines: the body's faces carried to that level,
``GraphHierarchy.coarsen_faces``, stored in checkpoints as ``mesh_faces``) so mesh viewers show
a surface; without faces, the level graph's edges as line elements (``l i j``, a wireframe).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from hgn_pyg.io import atomic_write, atomic_write_text

__all__ = ["save_pose_png", "save_obj", "level_edges"]

log = logging.getLogger(__name__)


def save_pose_png(pred: np.ndarray, gt: Optional[np.ndarray], bones: Sequence[Sequence[int]], path: Path,
                  title: str = "") -> Path:
    """Draw ``pred`` (red) and ``gt`` (blue) ``[J, 3]`` skeletons (camera frame, y down) into ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(4, 4))
    ax = fig.add_subplot(111, projection="3d")
    for pose, color, label in ((gt, "tab:blue", "ground truth"), (pred, "tab:red", "prediction")):
        if pose is None:
            continue
        p = np.asarray(pose, dtype=np.float64)
        for k, (a, b) in enumerate(bones):
            ax.plot([p[a, 0], p[b, 0]], [p[a, 2], p[b, 2]], [-p[a, 1], -p[b, 1]], color=color,
                    label=label if k == 0 else None)
    ax.set_xlabel("x")
    ax.set_ylabel("z")
    ax.set_zlabel("-y")
    lim = 1.0
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_zlim(-lim, lim)
    ax.legend(loc="upper right", fontsize=7)
    if title:
        ax.set_title(title, fontsize=8)
    try:  # atomically, replacing (never following) a link at path
        return atomic_write(path, lambda fh: fig.savefig(fh, dpi=80, format="png"))
    finally:
        plt.close(fig)


def level_edges(hierarchy, level: int) -> np.ndarray:
    """Undirected edges ``[E, 2]`` between the *real* vertices of ``level`` (original order, i < j)."""
    real = torch.as_tensor(hierarchy.real_slots(level), dtype=torch.long)
    ns = int(hierarchy.num_slots[level])
    slot_to_real = torch.full((ns,), -1, dtype=torch.long)
    slot_to_real[real] = torch.arange(real.numel())
    ei = torch.as_tensor(hierarchy.levels[level].edge_index, dtype=torch.long)
    a, b = slot_to_real[ei[0]], slot_to_real[ei[1]]
    keep = (a >= 0) & (b >= 0) & (a < b)
    e = torch.stack([a[keep], b[keep]], dim=1).numpy()
    return np.unique(e, axis=0) if len(e) else e.reshape(0, 2)


def save_obj(vertices: np.ndarray, path: Path, edges: Optional[np.ndarray] = None,
             faces: Optional[np.ndarray] = None, comment: str = "") -> Path:
    """Write ``vertices [V, 3]`` (+ optional ``l`` edges / ``f`` faces, 0-based) as a Wavefront OBJ."""
    v = np.asarray(vertices, dtype=np.float64)
    lines = [f"# {comment}"] if comment else []
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in v]
    if faces is not None:
        lines += ["f " + " ".join(str(int(i) + 1) for i in f) for f in np.asarray(faces)]
    if edges is not None:
        lines += [f"l {int(a) + 1} {int(b) + 1}" for a, b in np.asarray(edges)]
    return atomic_write_text(path, "\n".join(lines) + "\n")  # replaces (never follows) a link
