"""Peak memory and speed of ``python -m hgn_pyg.lift`` on a long ``.npy`` input, and the cost of
refusing a zip-bomb ``.npz`` (issue 20; figures in docs/reliability_outputs.md).

    python -m benchmarks.lift_memory --checkpoint CKPT [--frames 1000000] [--ref-repo DIR] [--rounds N]
        [--bomb-frames 20000000] [--work DIR]

Each lift runs as a child process (``PYTHONPATH`` = this checkout, or ``--ref-repo`` for the
code to compare with, e.g. a ``git worktree`` of main); its peak resident memory is the child's
``ru_maxrss`` from ``os.wait4`` and its speed is frames / wall-clock seconds of the whole command
(imports and model loading included, the same for both). The keypoints are uniform pixels of a
1000 x 1002 image. The bomb is an ``.npz`` whose ``keypoints`` member is ``bomb-frames x 17 x 2``
float64 zeros, deflated (~2,000:1); its refusal is timed inside one process (``read_keypoints``
only: seconds and resident-memory growth over the process after its imports) and as a whole CLI
run. Ratios are measured in one sitting; the machine's load average is printed with them.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _child(cmd, repo: Path):
    env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"rc": proc.returncode, "wall_s": wall, "max_rss_mb": usage.ru_maxrss / 1024, "stderr": err[-400:],
            "stdout": out[-300:]}


def lift(repo: Path, ckpt: str, kp: Path, out: Path, batch: int = None):
    cmd = [sys.executable, "-m", "hgn_pyg.lift", "--checkpoint", ckpt, "--keypoints", str(kp), "--format", "h36m",
           "--image-size", "1000", "1002", "--out", str(out), "--device", "cpu", "--overwrite"]
    if batch:
        cmd += ["--batch-size", str(batch)]
    return _child(cmd, repo)


def zip_bomb(path: Path, frames: int) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("keypoints.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False,
                                                      "shape": (frames, 17, 2)})
            block = bytes(32 * 2 ** 20)
            left = frames * 17 * 2 * 8
            while left:
                n = min(left, len(block))
                fh.write(block[:n])
                left -= n


_REFUSE = r"""
import resource, sys, time, json
from hgn_pyg.inference.keypoint_files import read_keypoints
from hgn_pyg.errors import DataError
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
try:
    read_keypoints(sys.argv[1], "h36m")
    msg = "NOT REFUSED"
except DataError as exc:
    msg = str(exc)
dt = time.perf_counter() - t0
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": dt, "rss_growth_mb": (rss1 - rss0) / 1024, "rss_after_imports_mb": rss0 / 1024,
                  "message": msg[-160:]}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--frames", type=int, default=1_000_000)
    p.add_argument("--ref-repo", help="a checkout of the code to compare speed and memory with")
    p.add_argument("--bomb-frames", type=int, default=20_000_000, help="0: no bomb")
    p.add_argument("--rounds", type=int, default=1, help="runs of each code, in alternating order (median)")
    p.add_argument("--work", help="scratch folder (default: a temporary one)")
    args = p.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="lift_memory_"))
    work.mkdir(parents=True, exist_ok=True)
    report = {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "frames": args.frames,
              "checkpoint": args.checkpoint, "load_average_before": os.getloadavg()}
    kp = work / "kp.npy"
    rng = np.random.default_rng(0)
    with open(kp, "wb") as fh:  # written in blocks: the benchmark itself stays small
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (args.frames, 17, 2)})
        for lo in range(0, args.frames, 100_000):
            n = min(100_000, args.frames - lo)
            fh.write(rng.uniform(300, 700, (n, 17, 2)).tobytes())
    runs = {"this": REPO}
    if args.ref_repo:
        runs["reference"] = Path(args.ref_repo)
    for r in range(args.rounds):  # alternating order: a drift in the machine's load hits both
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            res = lift(runs[name], args.checkpoint, kp, work / f"out_{name}")
            res["poses_per_s"] = args.frames / res["wall_s"]
            report.setdefault(f"{name}_rounds", []).append(res)
            print(name, json.dumps(res), flush=True)
    for name in runs:
        rounds = report.pop(f"{name}_rounds")
        best = sorted(rounds, key=lambda x: x["poses_per_s"])[len(rounds) // 2]  # the median round
        report[name] = dict(best, poses_per_s_rounds=[x["poses_per_s"] for x in rounds],
                            max_rss_mb=max(x["max_rss_mb"] for x in rounds))
    if "reference" in report and report["reference"]["rc"] == 0 and report["this"]["rc"] == 0:
        report["speed_ratio_this_over_reference (medians)"] = report["this"]["poses_per_s"] / report["reference"]["poses_per_s"]
        a = np.load(work / "out_this" / "poses_3d.npz")["joints_3d"]
        b = np.load(work / "out_reference" / "poses_3d.npz")["joints_3d"]
        report["max_abs_diff_m"] = float(np.abs(a - b).max())
    if not args.bomb_frames:
        print(json.dumps(report, indent=1))
        kp.unlink()
        return
    bomb = work / "bomb.npz"
    zip_bomb(bomb, args.bomb_frames)
    report["bomb"] = {"file_bytes": bomb.stat().st_size, "decoded_bytes": args.bomb_frames * 17 * 2 * 8 + 128}
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _REFUSE, str(bomb)], env=env, capture_output=True, text=True)
    report["bomb"]["in_process"] = json.loads(proc.stdout.strip().splitlines()[-1])
    report["bomb"]["cli"] = lift(REPO, args.checkpoint, bomb, work / "out_bomb")
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=1))
    for f in (kp, bomb):
        f.unlink()


if __name__ == "__main__":
    main()
