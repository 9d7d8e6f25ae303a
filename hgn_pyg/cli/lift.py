"""Lift 2D keypoints to 3D: ``python -m hgn_pyg.lift --checkpoint CKPT --keypoints FILE
[--format auto|h36m|coco|mmpose|videopose3d] [--image-size W H | --normalized] [--min-score S]
[--out DIR] [--render] [--overwrite] [--device DEV] [--batch-size N] [--debug]``.

Reads the keypoint file (formats: :mod:`hgn_pyg.inference.keypoint_files`), lifts every person's track
with :class:`~hgn_pyg.inference.lifter.Lifter` (conventions there), and writes

* ``DIR/poses_3d.npz``: ``joints_3d [N, 17, 3]`` float32 (metres, camera frame, pelvis-relative),
  ``frame [N]``, ``track [N]`` (index into ``track_names``), ``scores [N, 17]`` when the file has
  scores, ``missing [N, 17]`` (joints the missing-keypoint policy filled), ``joint_names``;
* ``DIR/poses_3d.json``: the same per track (``{"tracks": [{"name", "frames", "joints_3d"}]}``,
  0.01 mm resolution);
* with ``--render``: ``DIR/poses_3d.gif`` (animation) and ``DIR/poses_3d.png`` (contact sheet) of
  the 2D input beside the 3D skeleton, per track (``..._track<i>``) when there are several.

Everything is read and lifted before anything is written; existing outputs are kept unless
``--overwrite``. Errors: one line naming the file and what is wrong, exit status 2 (``--debug``
shows the traceback).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from hgn_pyg.cli.common import run_cli, setup_logging
from hgn_pyg.data.keypoints import DEFAULT_MIN_SCORE
from hgn_pyg.errors import ConfigError
from hgn_pyg.graphs.skeleton import H36M
from hgn_pyg.inference.keypoint_files import FILE_FORMATS, read_keypoints
from hgn_pyg.inference.lifter import Lifter, LiftResult
from hgn_pyg.inference.render import render_contact_sheet, render_gif
from hgn_pyg.io import atomic_write, atomic_write_text

__all__ = ["main", "build_parser", "Lifter", "LiftResult", "write_outputs"]

log = logging.getLogger("hgn_pyg.lift")

PROG = "python -m hgn_pyg.lift"
OUTPUT_NAMES = ("poses_3d.npz", "poses_3d.json")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", metavar="CKPT", required=True, help="an hgn_pyg checkpoint (trained or converted)")
    p.add_argument("--keypoints", metavar="FILE", required=True, help="2D keypoint file (.json, .npy, .npz)")
    p.add_argument("--format", default="auto", choices=FILE_FORMATS, help="keypoint file format (default: auto)")
    p.add_argument("--image-size", type=float, nargs=2, metavar=("W", "H"),
                   help="image width and height in pixels (needed for pixel input unless the file records them)")
    p.add_argument("--normalized", action="store_true", help="the keypoints are already normalised")
    p.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE,
                   help=f"keypoints scored below this count as missing (default {DEFAULT_MIN_SCORE})")
    p.add_argument("--out", metavar="DIR", default="lift_output", help="output folder (default: lift_output)")
    p.add_argument("--render", action="store_true", help="also write a GIF and a PNG contact sheet")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs in --out")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when available)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="poses per forward pass (default: 64 on the CPU, 4096 on a GPU)")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    return p


def write_outputs(result: LiftResult, out: Path, meta: dict) -> Sequence[Path]:
    """Write ``poses_3d.npz`` and ``poses_3d.json`` into ``out`` (atomically); returns the paths."""


    out.mkdir(parents=True, exist_ok=True)
    arrays = {"joints_3d": result.joints_3d, "frame": result.frame, "track": result.track,
              "track_names": np.array(result.track_names), "missing": result.missing,
              "joint_names": np.array(meta["joint_names"])}
    if result.scores is not None:
        arrays["scores"] = result.scores
    npz = atomic_write(out / "poses_3d.npz", lambda fh: np.savez(fh, **arrays))
    rounded = np.round(result.joints_3d.astype(np.float64), 5)
    tracks = []
    for i, name in enumerate(result.track_names):
        sel = result.track == i
        tracks.append({"name": name, "frames": result.frame[sel].tolist(), "joints_3d": rounded[sel].tolist()})
    doc = dict(meta, tracks=tracks)
    js = atomic_write_text(out / "poses_3d.json", json.dumps(doc, separators=(",", ":")))
    return npz, js


def _render(result: LiftResult, out: Path, joint_names) -> Sequence[Path]:
    written = []
    several = len(result.track_names) > 1
    for i, _name in enumerate(result.track_names):
        sel = result.track == i
        stem = f"poses_3d_track{i}" if several else "poses_3d"
        args = (result.keypoints_2d[sel], result.joints_3d[sel], H36M.bones, joint_names)
        written.append(render_gif(*args, out / f"{stem}.gif", frames=result.frame[sel]))
        written.append(render_contact_sheet(*args, out / f"{stem}.png", frames=result.frame[sel]))
    return written


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    names = list(OUTPUT_NAMES) + (["poses_3d.gif", "poses_3d.png"] if args.render else [])
    taken = [n for n in names if (out / n).exists()]
    if taken and not args.overwrite:
        raise ConfigError(f"--out {out}: already holds {', '.join(taken)}; choose another folder or --overwrite")
    if args.normalized and args.image_size:
        raise ConfigError("give either --image-size W H or --normalized, not both")
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")

    kfile = read_keypoints(args.keypoints, args.format)
    lifter = Lifter.from_checkpoint(args.checkpoint, device=args.device, batch_size=args.batch_size,
                                    min_score=args.min_score)
    progress = sys.stderr.isatty()
    result = lifter.lift_file(kfile, image_size=args.image_size, normalized=True if args.normalized else None,
                              progress=progress)
    info = lifter.info
    joint_names = list(info.joint_names) if info is not None and info.joint_names else None
    if not joint_names:
        joint_names = list(H36M.joint_names)
    meta = {"checkpoint": str(args.checkpoint), "keypoints": str(args.keypoints), "file_format": kfile.file_format,
            "keypoint_format": kfile.keypoint_format, "joint_names": joint_names, "units": "m",
            "frame": "camera", "root_relative": True, "root_joint": joint_names[0],
            "min_score": args.min_score, "num_poses": int(len(result.frame))}
    written = list(write_outputs(result, out, meta))
    if args.render:
        written += _render(result, out, joint_names)
    filled = int(result.missing.any(-1).sum())
    print(f"lifted {len(result.frame)} poses in {len(result.track_names)} track(s) from {args.keypoints}"
          + (f" ({filled} with missing joints filled)" if filled else "") + ": "
          + ", ".join(str(p) for p in written))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(None, level="DEBUG" if args.debug else "WARNING")
    return run_cli(lambda: _run(args), args.debug, PROG)


if __name__ == "__main__":
    sys.exit(main())
