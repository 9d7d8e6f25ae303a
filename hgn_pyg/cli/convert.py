"""Convert the published HGN checkpoint into an hgn_pyg model file.

``python -m hgn_pyg.convert --official final.pth.tar --mesh MESH --out model.pt
[--levels 9] [--mesh-levels 8 7] [--no-verify] [--force] [--debug]``

``MESH`` gives the body mesh whose coarsened graphs the checkpoint was trained on: an SMPL model
file (``.pkl``, chumpy or not, or ``.npz``; only its faces are read) or a faces file (``.npy`` /
``.txt`` integer ``[F, 3]``, 0-based, or a Wavefront ``.obj``). The mesh hierarchy is rebuilt
(``--levels`` coarsenings), the checkpoint is checked against it and loaded through
:meth:`hgn_pyg.models.HGN.from_official`, the result is compared with the published dense
formulation on random inputs (unless ``--no-verify``), and ``--out`` receives an hgn_pyg checkpoint
(``torch.load(weights_only=True)``-readable)::

    {"format": "hgn_pyg", "version": 2, "model": HGN state dict,
     "config": {"MODEL": {...}}, "converted_from": str, "mesh": str,
     + the inference record of hgn_pyg.models.checkpoint (joint set, input/output conventions,
       "hierarchy": GraphHierarchy.state_dict(), "mesh_faces": coarse-mesh triangles)}

so ``HGN.from_checkpoint(FILE)`` and ``python -m hgn_pyg.lift --checkpoint FILE`` need nothing else.

An existing ``--out`` is never overwritten unless ``--force``. Errors: one line on stderr, exit
status 2 (``--debug`` shows the traceback).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from hgn_pyg.cli.common import run_cli, setup_logging
from hgn_pyg.engine.training_state import save_checkpoint
from hgn_pyg.errors import ConfigError, DataError
from hgn_pyg.graphs import mesh_hierarchy, skeleton_graph
from hgn_pyg.models import HGN
from hgn_pyg.models.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, inference_record
from hgn_pyg.models.checkpoint_io import read_checkpoint
from hgn_pyg.models.dense_reference import DenseHGN
from hgn_pyg.untrusted import load_npz, load_pickle

__all__ = ["main", "build_parser", "load_mesh_faces", "convert"]

log = logging.getLogger("hgn_pyg.convert")

PROG = "python -m hgn_pyg.convert"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--official", metavar="CKPT", required=True,
                   help="the published checkpoint (final.pth.tar)")
    p.add_argument("--mesh", metavar="MESH", required=True,
                   help="SMPL model (.pkl/.npz) or faces file (.npy/.txt/.obj)")
    p.add_argument("--out", metavar="FILE", required=True, help="hgn_pyg model file to write")
    p.add_argument("--levels", type=int, default=9,
                   help="coarsening levels of the mesh hierarchy (published: 9)")
    p.add_argument("--mesh-levels", type=int, nargs=2, default=(8, 7), metavar=("B", "C"),
                   help="hierarchy levels of branches 2 and 3 (published: 8 7)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the comparison with the dense published formulation")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    return p


# ---------------------------------------------------------------------- reading meshes
def _faces_array(arr, path: Path, key: str = "faces"):
    arr = np.asarray(arr)
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
        raise DataError(f"{path}: {key} must be an integer array [F, 3], got shape {list(arr.shape)}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)) or \
                not np.all(arr == np.round(arr)):
            raise DataError(f"{path}: {key} must hold integer vertex ids, got {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        raise DataError(f"{path}: {key} holds negative vertex ids (min {int(arr.min())})")
    return arr


def _read_obj(path: Path) -> Tuple[np.ndarray, int]:
    faces, nv = [], 0
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "v":
                nv += 1
            elif parts[0] == "f":
                try:
                    ids = [int(p.split("/")[0]) for p in parts[1:]]
                except ValueError:
                    raise DataError(f"{path}:{lineno}: malformed face line {line.strip()!r}") from None
                if len(ids) < 3:
                    raise DataError(f"{path}:{lineno}: a face needs at least 3 vertices")
                ids = [i - 1 if i > 0 else nv + i for i in ids]  # 1-based; negative = relative
                faces.extend([ids[0], ids[k], ids[k + 1]] for k in range(1, len(ids) - 1))
    if not faces:
        raise DataError(f"{path}: no faces ('f' lines) in the .obj file")
    return _faces_array(faces, path), nv


def load_mesh_faces(path) -> Tuple[np.ndarray, int]:
    """``(faces [F, 3] int64, num_vertices)`` of a mesh file (see the module docstring).

    Raises:
        DataError: missing, unreadable or malformed file (naming it).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mesh file not found")
    suffix = path.suffix.lower()
    num_vertices: Optional[int] = None
    try:
        if suffix == ".obj":
            faces, num_vertices = _read_obj(path)
        elif suffix == ".npy":
            faces = _faces_array(np.load(path, allow_pickle=False), path)
        elif suffix in (".txt", ".csv"):
            faces = _faces_array(np.loadtxt(path, delimiter="," if suffix == ".csv" else None,
                                            ndmin=2), path)
        elif suffix == ".npz":
            z = load_npz(path, keys=("f", "faces", "v_template"), placeholders=("chumpy",))
            key = next((k for k in ("f", "faces") if k in z), None)
            if key is None:
                raise DataError(f"{path}: no 'f' or 'faces' array")
            faces = _faces_array(z[key], path, key)
            if "v_template" in z:
                num_vertices = int(z["v_template"].shape[0])
        elif suffix == ".pkl":
            data = load_pickle(path, placeholders=("chumpy",))  # only the faces are needed
            if not isinstance(data, dict) or not any(k in data for k in ("f", "faces")):
                raise DataError(f"{path}: not an SMPL model file (a dict with 'f')")
            key = "f" if "f" in data else "faces"
            faces = _faces_array(data[key], path, key)
            vt = data.get("v_template")
            if isinstance(vt, np.ndarray) and vt.ndim == 2:
                num_vertices = int(vt.shape[0])
        else:
            raise DataError(f"{path}: unknown mesh file type {suffix!r} "
                            "(expected .pkl, .npz, .npy, .txt or .obj)")
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read the mesh ({msg})") from None
    used = int(faces.max()) + 1
    if num_vertices is None:
        num_vertices = used
    elif used > num_vertices:
        raise DataError(f"{path}: faces use vertex {used - 1} but the mesh has {num_vertices} vertices")
    return faces, num_vertices


# ---------------------------------------------------------------------- the conversion
def _verify(model, state, skeleton, hierarchy, mesh_levels, tol: float = 1e-4) -> float:
    """Max abs difference between ``model`` and the dense published formulation (eval mode);
    raises if it exceeds ``tol`` times the outputs' scale (at least 1)."""


    dense = DenseHGN.from_graphs(skeleton, hierarchy, mesh_levels,
                                 hidden_channels=model.hidden_channels,
                                 in_channels=model.in_channels, out_channels=model.out_channels)
    dense.load_state_dict(state)
    was_training = model.training
    model.eval()
    dense.eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, model.num_nodes[1], model.in_channels, generator=gen)
    with torch.no_grad():
        ours = model(x)
        ref = dense(x)
    model.train(was_training)
    diff = max(float((a - b).abs().max()) for a, b in zip((ours.joints, *ours.meshes), ref))
    scale = max([1.0] + [float(r.abs().max()) for r in ref])
    if not diff <= tol * scale:
        raise RuntimeError(f"converted model differs from the dense published formulation by "
                           f"{diff:.3g} (> {tol * scale:.3g})")
    return diff


def convert(official, mesh, out, levels: int = 9, mesh_levels: Sequence[int] = (8, 7),
            verify: bool = True, force: bool = False) -> dict:
    """Do what the command line does; returns the written checkpoint dict."""
    # cheap checks first (no torch import): --out, levels, the mesh file
    out = Path(out)
    if out.exists() and not force:
        raise ConfigError(f"--out {out}: already exists; use --force to overwrite it")
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder")
    if levels < 1:
        raise ConfigError(f"--levels must be >= 1, got {levels}")
    mesh_levels = tuple(int(lv) for lv in mesh_levels)
    for lv in mesh_levels:
        if not 0 <= lv <= levels:
            raise ConfigError(f"--mesh-levels: level {lv} outside 0..--levels ({levels})")
    faces, num_vertices = load_mesh_faces(mesh)


    state = read_checkpoint(os.fspath(official))
    hierarchy = mesh_hierarchy(faces, num_vertices, levels=levels)
    log.info("mesh %s: %d vertices, %d faces; %r", mesh, num_vertices, len(faces), hierarchy)
    skeleton = skeleton_graph("h36m")
    model = HGN.from_official(state, skeleton, hierarchy, mesh_levels=mesh_levels,
                              source=os.fspath(official))
    diff = _verify(model, state, skeleton, hierarchy, mesh_levels) if verify else None
    model_section = {
        "name": "HGN",
        "hidden_channels": model.hidden_channels,
        "num_layers": model.num_layers,
        "mesh_levels": list(mesh_levels),
        "hierarchy_levels": int(levels),
        "fusion": "official",
        "dropout": None,
        "mode": model.mode,
        "isolated": model.isolated,
    }
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": model.state_dict(),
        "config": {"MODEL": model_section},
        **inference_record(model_section, hierarchy, faces=faces),
        "converted_from": os.fspath(official),
        "mesh": os.fspath(mesh),
    }
    if out.exists() and not force:  # appeared while we worked
        raise ConfigError(f"--out {out}: already exists; use --force to overwrite it")
    save_checkpoint(ckpt, out)
    n = sum(p.numel() for p in model.parameters())
    ckpt["summary"] = (
        f"wrote {out}: HGN with {n} parameters, graphs {model.num_nodes[1]}/"
        f"{model.num_nodes[2]}/{model.num_nodes[3]} nodes (levels {mesh_levels[0]}, "
        f"{mesh_levels[1]})" + (f", max |diff| vs dense reference {diff:.2e}" if verify else ""))
    log.info(ckpt["summary"])
    return ckpt


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)

    setup_logging(None, level="DEBUG" if args.debug else "WARNING")

    def run() -> int:
        ckpt = convert(args.official, args.mesh, args.out, levels=args.levels,
                       mesh_levels=args.mesh_levels, verify=not args.no_verify, force=args.force)
        print(ckpt["summary"])
        return 0

    return run_cli(run, args.debug, PROG)


if __name__ == "__main__":
    sys.exit(main())
