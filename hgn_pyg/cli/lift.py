"""Lift 2D keypoints to 3D: ``python -m hgn_pyg.lift --checkpoint CKPT --keypoints FILE
[--format auto|h36m|coco|mmpose|videopose3d] [--image-size W H | --normalized] [--min-score S]
[--symmetric-bones | --no-symmetric-bones] [--flip-test | --no-flip-test]
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

and ``DIR/poses_3d.manifest.json`` (every file of the result with its size, and the
``result_id`` that ``poses_3d.npz`` and ``poses_3d.json`` also carry).

The files are one unit (:class:`hgn_pyg.io.ResultWriter`): written to temporaries in ``DIR`` and
moved into place together under a lock on ``DIR``, so a killed, failing or concurrent lift leaves
the previous result or the new one, whole, never a mix, and never writes through a symbolic link.
Long inputs are read, lifted and written in chunks (:data:`~hgn_pyg.inference.lifter.CHUNK_POSES`
poses): memory stays flat in the number of frames. Existing outputs are kept unless
``--overwrite``. Errors: one line naming the file and what is wrong, exit status 2 (``--debug``
shows the traceback); the previous result stays as it was.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from hgn_pyg.cli.common import run_parsed
from hgn_pyg.data.keypoints import DEFAULT_MIN_SCORE
from hgn_pyg.errors import ConfigError, DataError
from hgn_pyg.graphs.skeleton import H36M
from hgn_pyg.inference.keypoint_files import FILE_FORMATS, read_keypoints
from hgn_pyg.inference.lifter import DEFAULT_BATCH, IMAGE_SIZE_RANGE, Lifter, LiftResult, check_min_score
from hgn_pyg.inference.render import frame_indices, render_contact_sheet, render_gif
from hgn_pyg.io import LOCK_NAME, LockBusy, ResultWriter, file_lock

__all__ = ["main", "build_parser", "Lifter", "LiftResult", "write_lift", "output_names"]

log = logging.getLogger("hgn_pyg.lift")

PROG = "python -m hgn_pyg.lift"
OUTPUT_NAMES = ("poses_3d.npz", "poses_3d.json")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", metavar="CKPT", required=True,
                   help="an hgn_pyg checkpoint (trained or converted), or a lifter exported by hgn-export (.onnx / .pt2)")
    p.add_argument("--keypoints", metavar="FILE", required=True, help="2D keypoint file (.json, .npy, .npz)")
    p.add_argument("--format", default="auto", choices=FILE_FORMATS, help="keypoint file format (default: auto)")
    p.add_argument("--image-size", type=float, nargs=2, metavar=("W", "H"),
                   help="image width and height in pixels (needed for pixel input unless the file records them)")
    p.add_argument("--normalized", action="store_true", help="the keypoints are already normalised")
    p.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE,
                   help=f"keypoints scored below this count as missing (default {DEFAULT_MIN_SCORE})")
    p.add_argument("--symmetric-bones", action=argparse.BooleanOptionalAction, default=None,
                   help="give each lifted pose equal left and right bone lengths (directions kept; "
                        "docs/lifting.md); default: what the checkpoint records (on for the main job's)")
    p.add_argument("--flip-test", action=argparse.BooleanOptionalAction, default=None,
                   help="average each pose with the mirrored lift of its mirror image (twice the work; "
                        "docs/lifting.md); default: what the checkpoint records (on for the main job's)")
    p.add_argument("--out", metavar="DIR", default="lift_output", help="output folder (default: lift_output)")
    p.add_argument("--render", action="store_true", help="also write a GIF and a PNG contact sheet")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs in --out")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when available)")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"poses per forward pass (default: {DEFAULT_BATCH['cpu']} on the CPU, "
                        f"{DEFAULT_BATCH['cuda']} on a GPU)")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    return p


#: Bytes copied at once when the streamed columns are assembled into ``poses_3d.npz``.
_COPY_BLOCK = 4 * 2 ** 20


class _Column:
    """One array of ``poses_3d.npz`` [N, ...] streamed to an anonymous temporary file in the output
    folder, then copied into the zip as a ``.npy`` member (memory: one copy block)."""

    def __init__(self, folder: Path, name: str, dtype, tail: tuple, rows: int):
        import tempfile

        self.name, self.dtype, self.shape = name, np.dtype(dtype), (rows,) + tuple(tail)
        self.fh = tempfile.TemporaryFile(dir=str(folder), prefix=f".poses_3d.npz.{name}.tmp-")
        self.rows = 0

    def append(self, a) -> None:
        a = np.ascontiguousarray(a, dtype=self.dtype)
        self.fh.write(a.tobytes())
        self.rows += len(a)

    def write_member(self, zf) -> None:
        assert self.rows == self.shape[0], (self.name, self.rows, self.shape)
        with zf.open(f"{self.name}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_2_0(member, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                          "fortran_order": False, "shape": self.shape})
            self.fh.seek(0)
            while True:
                block = self.fh.read(_COPY_BLOCK)
                if not block:
                    break
                member.write(block)
        self.fh.close()


def _json_rows(joints) -> str:
    """``[[x, y, z] * 17] * n`` as JSON text without the outer brackets, 0.01 mm resolution."""
    return json.dumps(np.round(joints.astype(np.float64), 5).tolist(), separators=(",", ":"), allow_nan=False)[1:-1]


def output_names(num_tracks: int, render: bool) -> List[str]:
    """The files of one lift result (the manifest aside)."""
    names = list(OUTPUT_NAMES)
    if render:
        stems = [f"poses_3d_track{i}" for i in range(num_tracks)] if num_tracks > 1 else ["poses_3d"]
        names += [f"{stem}.{ext}" for stem in stems for ext in ("gif", "png")]
    return names


def write_lift(lifter: Lifter, kfile, out: Path, meta: dict, image_size=None, normalized=None,
               render: bool = False, overwrite: bool = False, progress: bool = False,
               before_commit=None) -> List[Path]:
    """Lift ``kfile`` and write its result into ``out`` as one unit, streaming (module doc).

    Returns the final paths. Raises :class:`~hgn_pyg.errors.ConfigError` when ``out`` holds a
    result and not ``overwrite``, or another lift is writing into it."""
    from tqdm.auto import tqdm

    names = output_names(len(kfile.tracks), render)
    n = kfile.num_frames
    any_scores = any(t.scores is not None for t in kfile.tracks)
    try:
        writer = ResultWriter(out, "poses_3d").__enter__()
    except LockBusy as exc:
        raise ConfigError(f"--out {out}: another process (pid {exc}) is writing a result into this folder; "
                          "wait for it to end") from None
    try:
        taken = writer.existing(names)
        if taken and not overwrite:
            raise ConfigError(f"--out {out}: already holds {', '.join(taken)}; choose another folder or --overwrite")
        meta = dict(meta, result_id=writer.result_id, num_poses=int(n))
        cols = {"joints_3d": _Column(out, "joints_3d", np.float32, (17, 3), n),
                "frame": _Column(out, "frame", np.int64, (), n), "track": _Column(out, "track", np.int64, (), n),
                "missing": _Column(out, "missing", bool, (17,), n)}
        if any_scores:
            cols["scores"] = _Column(out, "scores", np.float32, (17,), n)
        keep = {}  # track -> rows the renderers draw
        if render:
            for i, t in enumerate(kfile.tracks):
                keep[i] = {"gif": set(frame_indices(len(t.frames), 120).tolist()),
                           "png": set(frame_indices(len(t.frames), 8).tolist()), "rows": {}}
        with writer.open("poses_3d.json", text=True) as js, \
                tqdm(total=n, desc="lift", unit="pose", disable=not progress, leave=False) as bar:
            js.write(json.dumps(meta, separators=(",", ":"), allow_nan=False)[:-1] + ',"tracks":[')
            current, first_chunk = -1, True
            for part in lifter.iter_lift(kfile, image_size=image_size, normalized=normalized):
                if part.track != current:
                    if current >= 0:
                        js.write("]}")
                    t = kfile.tracks[part.track]
                    js.write(("," if current >= 0 else "") + '{"name":' + json.dumps(t.name) + ',"frames":'
                             + json.dumps(np.asarray(t.frames).tolist(), separators=(",", ":")) + ',"joints_3d":[')
                    current, first_chunk = part.track, True
                js.write(("" if first_chunk else ",") + _json_rows(part.joints_3d))
                first_chunk = False
                cols["joints_3d"].append(part.joints_3d)
                cols["frame"].append(part.frames)
                cols["track"].append(np.full(len(part.frames), part.track, dtype=np.int64))
                cols["missing"].append(part.missing)
                if any_scores:
                    cols["scores"].append(part.scores)
                if render:
                    k = keep[part.track]
                    for r in range(part.start, part.start + len(part.frames)):
                        if r in k["gif"] or r in k["png"]:
                            j = r - part.start
                            k["rows"][r] = (part.keypoints_2d[j], part.joints_3d[j], int(part.frames[j]))
                bar.update(len(part.frames))
            js.write("]}]}")
        import zipfile

        with writer.open("poses_3d.npz") as fh:
            with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                for name in ("joints_3d", "frame", "track"):
                    cols.pop(name).write_member(zf)
                small = {"track_names": np.array([t.name for t in kfile.tracks]),
                         "joint_names": np.array(meta["joint_names"]), "result_id": np.array(writer.result_id)}
                for name in ("track_names", "missing", "scores", "joint_names", "result_id"):
                    if name in cols:
                        cols.pop(name).write_member(zf)
                    elif name in small:
                        with zf.open(f"{name}.npy", "w") as member:
                            np.lib.format.write_array(member, small[name], allow_pickle=False)
        if render:
            _render(kfile, keep, writer, meta["joint_names"])
        if before_commit is not None:
            before_commit(writer)
        return writer.commit()
    finally:
        writer.__exit__(None, None, None)


def _render(kfile, keep, writer, joint_names) -> None:

    several = len(kfile.tracks) > 1
    for i in range(len(kfile.tracks)):
        stem = f"poses_3d_track{i}" if several else "poses_3d"
        k = keep[i]
        for ext, draw in (("gif", render_gif), ("png", render_contact_sheet)):
            rows = sorted(k[ext])
            kp = np.stack([k["rows"][r][0] for r in rows])
            j3 = np.stack([k["rows"][r][1] for r in rows])
            frames = np.array([k["rows"][r][2] for r in rows])
            with writer.open(f"{stem}.{ext}") as fh:
                draw(kp, j3, H36M.bones, joint_names, fh, frames=frames)


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    if args.normalized and args.image_size:
        raise ConfigError("give either --image-size W H or --normalized, not both")
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        check_min_score(args.min_score, "--min-score")
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    lo, hi = IMAGE_SIZE_RANGE
    if args.image_size and not all(lo <= v <= hi for v in args.image_size):
        raise ConfigError(f"--image-size {args.image_size[0]:g} {args.image_size[1]:g}: W and H must be "
                          f"{lo:g}..{hi:g} pixels (IMAGE_SIZE_RANGE in hgn_pyg.inference.lifter)")

    kfile = read_keypoints(args.keypoints, args.format)
    names = output_names(len(kfile.tracks), args.render)
    if out.is_dir() and not args.overwrite:  # checked again under the folder's lock
        taken = [n for n in names + ["poses_3d.manifest.json"] if os.path.lexists(out / n)]
        if taken:
            raise ConfigError(f"--out {out}: already holds {', '.join(taken)}; choose another folder or --overwrite")
    lifter = Lifter.from_checkpoint(args.checkpoint, device=args.device, batch_size=args.batch_size,
                                    min_score=args.min_score, symmetric_bones=args.symmetric_bones,
                                    flip_test=args.flip_test)
    info = lifter.info
    joint_names = list(info.joint_names) if info is not None and info.joint_names else None
    if not joint_names:
        joint_names = list(H36M.joint_names)
    meta = {"checkpoint": str(args.checkpoint), "keypoints": str(args.keypoints), "file_format": kfile.file_format,
            "keypoint_format": kfile.keypoint_format, "joint_names": joint_names, "units": "m",
            "frame": "camera", "root_relative": True, "root_joint": joint_names[0],
            "min_score": float(args.min_score), "symmetric_bones": bool(lifter.symmetric_bones),
            "flip_test": bool(lifter.flip_test),
            "num_poses": int(kfile.num_frames)}
    created = not os.path.lexists(out)
    try:
        written = write_lift(lifter, kfile, out, meta, image_size=args.image_size,
                             normalized=True if args.normalized else None, render=args.render,
                             overwrite=args.overwrite, progress=sys.stderr.isatty())
    except BaseException:
        if created:  # a folder this run made holds nothing but its lock file: leave nothing behind
            _remove_if_only_lock(out)
        raise
    print(f"lifted {kfile.num_frames} poses in {len(kfile.tracks)} track(s) from {args.keypoints}: "
          + ", ".join(str(p) for p in written))
    return 0


def _remove_if_only_lock(out: Path) -> None:
    """Remove ``out`` when it holds nothing but its lock file, under that lock: a folder another
    lift is writing into (it holds the lock, maybe before its first temporary) is left alone."""
    if not out.is_dir():
        return
    try:
        with file_lock(out / LOCK_NAME, blocking=False):
            if [p.name for p in out.iterdir()] == [LOCK_NAME]:
                (out / LOCK_NAME).unlink()
                out.rmdir()
    except OSError:  # LockBusy included: the folder is another run's now
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_parsed(build_parser(), _run, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
