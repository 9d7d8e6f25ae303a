"""Make the pictures of datasets/README.md (the open body model and the synthetic set).

    python datasets/make_figures.py [--out datasets/figures] [--synthetic DIR]

Without --synthetic a small synthetic set (100 frames per sequence, subject 1) is generated in a
temporary folder. Writes body_rest.png, body_shapes.png, key_poses.png, body_actions.png, projection_2d.png.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hgn_pyg.data.body_model import SHAPE_NAMES, load_body_model  # noqa: E402
from hgn_pyg.data.camera import project, world_to_camera  # noqa: E402
from hgn_pyg.data.synthetic import ACTION_NAMES, generate  # noqa: E402

BONES = [(0, 7), (7, 8), (8, 9), (9, 10), (8, 11), (11, 12), (12, 13), (8, 14), (14, 15),
         (15, 16), (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6)]
LEFT = {4, 5, 6, 11, 12, 13}


def shade_mesh(ax, verts2d, depth, normals_z, faces, color=(0.72, 0.76, 0.86), light=None):
    """Painter's-algorithm Lambert rendering of a projected mesh.

    verts2d [V,2] screen coordinates, depth [V] (larger = farther), normals_z [F] facing term.
    """
    tri = verts2d[faces]
    order = np.argsort(-depth[faces].mean(axis=1))
    vis = normals_z[order] > 0
    order = order[vis]
    shade = 0.3 + 0.7 * np.clip(normals_z[order], 0, 1)
    cols = np.clip(np.asarray(color)[None] * shade[:, None], 0, 1)
    ax.add_collection(PolyCollection(tri[order], facecolors=cols, edgecolors="none",
                                     antialiaseds=False))


def ortho(ax, v, faces, view, joints=None, color=(0.72, 0.76, 0.86)):
    """Orthographic view: rows of ``view`` are screen x, screen y, towards-the-viewer axes."""
    p = v @ np.asarray(view, dtype=float).T
    tri = p[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    light = np.array([0.35, 0.45, 1.0])
    light /= np.linalg.norm(light)
    facing = np.where(n[:, 2] > 0, np.maximum(n @ light, 1e-3), -1.0)
    shade_mesh(ax, p[:, :2], -p[:, 2], facing, faces, color)
    if joints is not None:
        q = joints @ np.asarray(view, dtype=float).T
        for a, b in BONES:
            ax.plot(q[[a, b], 0], q[[a, b], 1], "-", color="tab:red" if b in LEFT else "tab:blue",
                    lw=1.5, zorder=5)
        ax.plot(q[:, 0], q[:, 1], "k.", ms=3, zorder=6)
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.axis("off")


FRONT = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]        # SMPL frame seen from the front
SIDE = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]        # seen from the person's left


def fig_rest(model, out):
    import torch

    v, _ = model.forward(torch.zeros(1, 72), torch.zeros(1, 10))
    h = model.h36m_joints(v)[0].numpy()
    v = v[0].numpy()
    fig, axs = plt.subplots(1, 2, figsize=(8, 5), gridspec_kw={"width_ratios": [2.2, 1]})
    ortho(axs[0], v, model.faces, FRONT, h)
    ortho(axs[1], v, model.faces, SIDE, h)
    axs[0].set_title("front (T-pose, Human3.6M joints)", fontsize=9)
    axs[1].set_title("left side", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def fig_shapes(model, out):
    import torch

    pose = torch.zeros(1, 72)
    pose[0, 16 * 3 + 2] = -1.25  # arms down a little for a compact row
    pose[0, 17 * 3 + 2] = 1.25
    picks = [0, 1, 2, 3, 5, 7]
    fig, axs = plt.subplots(2, len(picks), figsize=(2.0 * len(picks), 5.6))
    for c, k in enumerate(picks):
        for r, sgn in enumerate((-2.0, 2.0)):
            beta = torch.zeros(1, 10)
            beta[0, k] = sgn
            v, _ = model.forward(pose, beta)
            ortho(axs[r, c], v[0].numpy(), model.faces, FRONT)
            axs[r, c].set_title(f"{SHAPE_NAMES[k]} {sgn:+.0f}", fontsize=8)
    for ax in axs.ravel():  # common scale
        ax.set_xlim(-0.45, 0.45)
        ax.set_ylim(-1.25, 0.75)
    fig.tight_layout()
    fig.savefig(out, dpi=60)
    plt.close(fig)


def _load(root, subject, kind):
    return json.loads((Path(root) / "annotations" / f"Human36M_subject{subject}_{kind}.json")
                      .read_text())


def fig_actions(model, root, out, subject=1, picks=((14, 1, 0.5), (10, 1, 0.55), (6, 1, 0.5),
                                                      (12, 2, 0.4), (4, 1, 0.3), (7, 1, 0.5))):
    """One frame (at a fraction of the sequence) of a few (action, sub-action) pairs."""
    import torch

    smpl = _load(root, subject, "smpl_param")
    j3d = _load(root, subject, "joint_3d")
    fig, axs = plt.subplots(1, len(picks), figsize=(2.3 * len(picks), 3.8))
    # world z-up, viewed from a 3/4 angle
    az = np.deg2rad(-35)
    view = np.array([[np.cos(az), np.sin(az), 0.0], [0.0, 0.0, 1.0],
                     [np.sin(az), -np.cos(az), 0.0]])
    for ax, (a, s, f) in zip(axs, picks):
        frames = sorted(smpl[str(a)][str(s)], key=int)
        f = frames[int(f * (len(frames) - 1))]
        p = smpl[str(a)][str(s)][f]
        v, _ = model.forward(torch.tensor([p["pose"]]), torch.tensor([p["shape"]]),
                             torch.tensor([p["trans"]]))
        v = v[0].numpy()
        joints = np.asarray(j3d[str(a)][str(s)][f]) / 1000.0
        ortho(ax, v, model.faces, view, joints)
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.set_title(f"{ACTION_NAMES[a]} (sub {s}, frame {f})", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=70)
    plt.close(fig)


def fig_projection(model, root, out, subject=1, action=5, sub=1, frame=0.8, cam=None):
    """Projected joints, mesh and bbox of one frame (cam None: the most frontal camera)."""
    import torch

    data = _load(root, subject, "data")
    cams = _load(root, subject, "camera")
    j3d = _load(root, subject, "joint_3d")
    smpl = _load(root, subject, "smpl_param")
    frames = sorted(j3d[str(action)][str(sub)], key=int)
    fr = frames[int(frame * (len(frames) - 1))]
    X = np.asarray(j3d[str(action)][str(sub)][fr])
    if cam is None:
        def shoulders(k):
            c = cams[str(k)]
            uv = project(world_to_camera(X, np.asarray(c["R"]), np.asarray(c["t"])),
                         np.asarray(c["f"]), np.asarray(c["c"]))
            return uv[11, 0] - uv[14, 0]  # facing the camera: the right shoulder is on the left
        cam = max(range(1, 5), key=shoulders)
    c = cams[str(cam)]
    R, t, f, cc = (np.asarray(c[k], dtype=float) for k in ("R", "t", "f", "c"))
    X = np.asarray(j3d[str(action)][str(sub)][fr])
    uv = project(world_to_camera(X, R, t), f, cc)
    img = next(i for i in data["images"] if i["action_idx"] == action and i["subaction_idx"] == sub
               and i["cam_idx"] == cam and i["frame_idx"] == int(fr))
    ann = next(a for a in data["annotations"] if a["image_id"] == img["id"])
    p = smpl[str(action)][str(sub)][fr]
    v, _ = model.forward(torch.tensor([p["pose"]]), torch.tensor([p["shape"]]),
                         torch.tensor([p["trans"]]))
    vc = world_to_camera(v[0].numpy() * 1000.0, R, t)
    vuv = project(vc, f, cc)
    tri = vc[model.faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    light = np.array([0.3, -0.4, -1.0])
    light /= np.linalg.norm(light)
    facing = np.where(n[:, 2] < 0, np.maximum(n @ light, 1e-3), -1.0)  # camera looks along +z
    W, H = img["width"], img["height"]
    fig, ax = plt.subplots(figsize=(5, 5 * H / W))
    ax.add_patch(plt.Rectangle((0, 0), W, H, color="0.93"))
    shade_mesh(ax, vuv, vc[:, 2], facing, model.faces, color=(0.78, 0.80, 0.88))
    for a, b in BONES:
        ax.plot(uv[[a, b], 0], uv[[a, b], 1], "-", color="tab:red" if b in LEFT else "tab:blue",
                lw=2)
    ax.plot(uv[:, 0], uv[:, 1], "k.", ms=4)
    x, y, w, h = ann["bbox"]
    ax.add_patch(plt.Rectangle((x, y), w, h, fill=False, ec="tab:green", lw=1.2))
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)
    ax.set_aspect("equal")
    ax.set_title(f"subject {subject}, {ACTION_NAMES[action]}, camera {cam}, frame {fr}: "
                 f"{W}x{H} image", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def fig_key_poses(model, out, cols=8):
    """Every named key pose of :mod:`hgn_pyg.data.motions` on the reference body, floor at 0."""
    import torch

    from hgn_pyg.data.motions import KEY_POSES, pose_rotations, root_rotation
    from scipy.spatial.transform import Rotation

    names = list(KEY_POSES)
    P = np.stack([KEY_POSES[n] for n in names])
    rot = pose_rotations(P)
    rot[:, 0] = root_rotation(P, np.full(len(P), np.deg2rad(-30.0)))
    pose = torch.tensor(Rotation.from_matrix(rot.reshape(-1, 3, 3)).as_rotvec()
                        .reshape(len(P), 72), dtype=torch.float32)
    v, _ = model.forward(pose, torch.zeros(len(P), 10))
    h = model.h36m_joints(v).numpy()
    v = v.numpy()
    rows = -(-len(names) // cols)
    fig, axs = plt.subplots(rows, cols, figsize=(1.6 * cols, 2.1 * rows))
    view = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # world z up, from -y
    for ax, n, vi, hi in zip(axs.ravel(), names, v, h):
        low = vi[:, 2].min()
        ortho(ax, vi - [0, 0, low], model.faces, view, hi - [0, 0, low])
        ax.set_xlim(-1.0, 1.0)
        ax.set_ylim(-0.05, 2.1)
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.set_title(n, fontsize=7)
    for ax in axs.ravel()[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=60)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "figures"))
    ap.add_argument("--synthetic", default=None, help="an existing synthetic set (else: make one)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_body_model()
    fig_rest(model, out / "body_rest.png")
    fig_shapes(model, out / "body_shapes.png")
    fig_key_poses(model, out / "key_poses.png")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.synthetic
        if root is None:
            root = tmp
            generate(root, frames=100, seed=0, subjects=[1])
        fig_actions(model, root, out / "body_actions.png")
        fig_projection(model, root, out / "projection_2d.png")
    for p in sorted(out.glob("*.png")):
        print(f"{p} {p.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
