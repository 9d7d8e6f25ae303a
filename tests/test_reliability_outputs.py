"""Issue 20: results written as one unit (hgn_pyg.io.ResultWriter), never through a symbolic link,
bounded inputs (limits checked from headers before allocation), and every hostile input one line +
exit 2 with nothing written. Hostile files are built here; bombs run in a child process whose
address space is capped with ``resource.setrlimit(RLIMIT_AS)``.

Numerical reference for the streamed lift: the model called directly on input normalised by hand
(test_lift._reference), tolerance 1e-5 relative + absolute as there.
"""
import contextlib
import json
import os
import pickle
import resource
import signal
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from hgn_pyg.errors import DataError
from hgn_pyg.io import LockBusy, NoFollowFileHandler, ResultWriter, file_lock, read_manifest
from hgn_pyg.lift import main

from test_inference_lifter import TOL, H, W, _pixels, _reference, ckpt  # noqa: F401  (the random-weight checkpoint)

REPO = Path(__file__).resolve().parents[1]


def _cli(args, capsys):
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_line_error(rc, err, *needles):
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    for n in needles:
        assert n in err, (n, err)


def _strict_json(path):
    def refuse(name):
        raise AssertionError(f"{path}: non-JSON constant {name}")
    return json.loads(Path(path).read_text(), parse_constant=refuse)


def _whole(out: Path):
    """The lift result in ``out`` is one unit: manifest sizes, result_id in npz, json and manifest,
    and the frame counts of npz and json agree. Returns the result_id."""
    doc = read_manifest(out, "poses_3d")
    assert doc is not None
    z = np.load(out / "poses_3d.npz")
    js = _strict_json(out / "poses_3d.json")
    assert str(z["result_id"]) == js["result_id"] == doc["result_id"]
    assert len(z["frame"]) == sum(len(t["frames"]) for t in js["tracks"]) == js["num_poses"]
    assert sum(len(t["joints_3d"]) for t in js["tracks"]) == len(z["joints_3d"])
    return doc["result_id"]


# ---------------------------------------------------------------------------- the writer
def test_writer_replaces_links_and_never_follows_them(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / "a.txt")
    os.symlink(tmp_path / "nowhere", out / "b.txt")  # a dangling link too
    with ResultWriter(out, "r") as w:
        assert set(w.existing(["a.txt", "b.txt", "c.txt"])) == {"a.txt", "b.txt"}
        with w.open("a.txt") as fh:
            fh.write(b"new a")
        with w.open("b.txt", text=True) as fh:
            fh.write("new b")
        w.commit()
    assert victim.read_bytes() == b"precious"
    assert not (out / "a.txt").is_symlink() and (out / "a.txt").read_bytes() == b"new a"
    assert (out / "b.txt").read_text() == "new b"
    doc = read_manifest(out, "r")
    assert doc["files"] == {"a.txt": {"bytes": 5}, "b.txt": {"bytes": 5}}
    assert sorted(p.name for p in out.iterdir()) == [".lock", "a.txt", "b.txt", "r.manifest.json"]


def test_writer_failure_keeps_the_previous_result(tmp_path):
    with ResultWriter(tmp_path, "r") as w:
        for n in ("a", "b"):
            with w.open(n) as fh:
                fh.write(b"old " + n.encode())
        w.commit()
    with pytest.raises(RuntimeError):
        with ResultWriter(tmp_path, "r") as w:
            with w.open("a") as fh:
                fh.write(b"new a")
            raise RuntimeError("lifting failed half way")
    assert (tmp_path / "a").read_bytes() == b"old a" and (tmp_path / "b").read_bytes() == b"old b"
    assert read_manifest(tmp_path, "r") is not None
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    # a result with fewer files removes the files of the old one it does not have
    with ResultWriter(tmp_path, "r") as w:
        with w.open("a") as fh:
            fh.write(b"third")
        w.commit()
    assert not (tmp_path / "b").exists() and set(read_manifest(tmp_path, "r")["files"]) == {"a"}


@pytest.mark.parametrize("kill_at", [0, 1, 2])
def test_writer_killed_mid_commit_is_rolled_forward(tmp_path, kill_at):
    """kill -9 between the moves of a commit: the journal names the set; the next writer finishes it."""
    names = ["a", "b", "c"]
    with ResultWriter(tmp_path, "r") as w:
        for n in names:
            with w.open(n) as fh:
                fh.write(b"old")
        w.commit()
    pid = os.fork()
    if pid == 0:  # child: a new result, killed before its move number kill_at
        try:
            with ResultWriter(tmp_path, "r") as w:
                for n in names:
                    with w.open(n) as fh:
                        fh.write(b"new " + n.encode())
                count = iter(range(10))

                def hook(name):
                    if next(count) == kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)
                w.commit(before_move=hook)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert read_manifest(tmp_path, "r") is None  # a commit is pending: not reported as whole
    with ResultWriter(tmp_path, "r") as w:
        pass  # entering recovers
    assert read_manifest(tmp_path, "r") is not None
    assert [(tmp_path / n).read_bytes() for n in names] == [b"new a", b"new b", b"new c"]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or "commit" in p.name]


def test_writer_lock_and_stale_temporaries(tmp_path):
    (tmp_path / ".a.tmp-left").write_bytes(b"left by a killed run")
    with file_lock(tmp_path / ".lock"):
        with pytest.raises(LockBusy):
            ResultWriter(tmp_path, "r").__enter__()
    with ResultWriter(tmp_path, "r"):
        assert not (tmp_path / ".a.tmp-left").exists()


def test_disk_full_error_names_the_file(tmp_path):
    """A write beyond RLIMIT_FSIZE (EFBIG, as ENOSPC) in a child: the error names the final path."""
    r, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        msg = "no error"
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
            with ResultWriter(tmp_path, "r") as w:
                with w.open("big.bin") as fh:
                    fh.write(b"\0" * (1 << 20))
                w.commit()
        except OSError as exc:
            msg = str(exc)
        os.write(wfd, msg.encode())
        os._exit(0)
    os.close(wfd)
    os.waitpid(pid, 0)
    msg = os.read(r, 4096).decode()
    assert str(tmp_path / "big.bin") in msg and "File too large" in msg, msg
    assert not (tmp_path / "big.bin").exists() and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_logs_are_never_appended_through_a_link(tmp_path):
    from hgn_pyg.cli.common import setup_logging

    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, tmp_path / "test.log")
    with pytest.raises(OSError, match="symbolic link"):
        NoFollowFileHandler(tmp_path / "test.log")
    with pytest.raises(OSError, match="test.log"):
        setup_logging(tmp_path / "test.log")
    assert victim.read_text() == "precious"
    setup_logging(None)


# ---------------------------------------------------------------------------- the lift CLI
def _two_tracks(path, t=4, seed=5):
    rng = np.random.default_rng(seed)
    dets = []
    for f in range(t):
        for tid in (3, 9):
            kp = np.concatenate([rng.uniform(300, 700, (17, 2)), np.full((17, 1), 0.8)], 1)
            dets.append({"image_id": f, "keypoints": kp.ravel().tolist(), "track_id": tid})
    path.write_text(json.dumps(dets))
    return dets


def test_render_never_writes_through_links(ckpt, tmp_path, capsys):
    _two_tracks(tmp_path / "two.json")
    victim = tmp_path / "VICTIM"
    victim.write_bytes(b"precious")
    out = tmp_path / "s"
    out.mkdir()
    os.symlink(victim, out / "poses_3d_track0.gif")
    os.symlink(victim, out / "poses_3d.png")
    args = ["--checkpoint", ckpt[0], "--keypoints", tmp_path / "two.json", "--image-size", W, H, "--out", out,
            "--device", "cpu", "--render"]
    rc, _, err = _cli(args, capsys)
    _one_line_error(rc, err, "already holds poses_3d_track0.gif")
    rc, _, err = _cli(args + ["--overwrite"], capsys)
    assert rc == 0, err
    assert victim.read_bytes() == b"precious"
    assert not (out / "poses_3d_track0.gif").is_symlink()
    assert (out / "poses_3d_track0.gif").read_bytes()[:6] == b"GIF89a"
    first = _whole(out)
    # one track now: the per-track files of the old result go, the link left by the user stays
    np.save(tmp_path / "kp.npy", _pixels(5))
    rc, _, err = _cli(["--checkpoint", ckpt[0], "--keypoints", tmp_path / "kp.npy", "--format", "h36m",
                       "--image-size", W, H, "--out", out, "--device", "cpu", "--render", "--overwrite"], capsys)
    assert rc == 0, err
    assert _whole(out) != first and not (out / "poses_3d_track0.gif").exists()
    assert (out / "poses_3d.gif").is_file() and not (out / "poses_3d.png").is_symlink()
    assert victim.read_bytes() == b"precious"


def test_streamed_lift_equals_the_model(ckpt, tmp_path, capsys, monkeypatch):
    """Chunks of 64 poses (CHUNK_POSES patched) over 300 frames give the model's output row by row."""
    import hgn_pyg.inference.lifter as lifter_mod

    monkeypatch.setattr(lifter_mod, "CHUNK_POSES", 64)
    monkeypatch.setattr(lifter_mod.Lifter.iter_lift, "__defaults__", (None, None, None, 64))
    path, model = ckpt
    uv = _pixels(300, seed=4)
    scores = np.random.default_rng(1).uniform(0.5, 1, (300, 17, 1))
    np.save(tmp_path / "kp.npy", np.concatenate([uv, scores], -1).astype(np.float32))
    rc, _, err = _cli(["--checkpoint", path, "--keypoints", tmp_path / "kp.npy", "--format", "h36m",
                       "--image-size", W, H, "--out", tmp_path / "o", "--device", "cpu"], capsys)
    assert rc == 0, err
    z = np.load(tmp_path / "o" / "poses_3d.npz")
    ref = _reference(model, uv.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(z["joints_3d"], ref, atol=TOL, rtol=TOL)
    np.testing.assert_allclose(z["scores"], scores[..., 0], rtol=1e-6)
    assert z["frame"].tolist() == list(range(300)) and z["missing"].shape == (300, 17)
    js = _strict_json(tmp_path / "o" / "poses_3d.json")
    np.testing.assert_allclose(np.array(js["tracks"][0]["joints_3d"]), z["joints_3d"], atol=1e-5)
    _whole(tmp_path / "o")
    # an error in a later chunk names the frame in the file, and nothing is written
    bad = uv.copy()
    bad[200] = 1e6
    np.save(tmp_path / "bad.npy", bad)
    rc, _, err = _cli(["--checkpoint", path, "--keypoints", tmp_path / "bad.npy", "--format", "h36m",
                       "--image-size", W, H, "--out", tmp_path / "o2", "--device", "cpu"], capsys)
    _one_line_error(rc, err, "frame 200")
    assert not (tmp_path / "o2").exists()


def _vp3d(path, meta):
    pos = {"v.mp4": {"custom": [np.zeros((3, 17, 2))]}}
    np.savez(path, positions_2d=np.array(pos, dtype=object), metadata=np.array(meta, dtype=object))


def _npy_header_only(path, shape):
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": shape})
        fh.write(b"\0" * 64)


class _Bomb:
    """Pickles as ``bytearray(3_000_000_000)``: 3 GB from a few bytes of pickle."""

    def __reduce__(self):
        return (bytearray, (3_000_000_000,))


HOSTILE = [
    ("huge.npy", lambda p: _npy_header_only(p, (10 ** 9, 17, 2)), ["--format", "h36m"],
     ["huge.npy", "1000000000 poses declared"]),
    ("cut.npy", lambda p: _npy_header_only(p, (1000, 17, 2)), ["--format", "h36m"], ["cut.npy", "truncated .npy"]),
    ("nj1.npz", lambda p: _vp3d(p, {"layout_name": "coco", "num_joints": "seventeen"}), [],
     ["metadata.num_joints: 'seventeen'"]),
    ("nj2.npz", lambda p: _vp3d(p, {"layout_name": "coco", "num_joints": [17]}), [], ["metadata.num_joints: [17]"]),
    ("nj3.npz", lambda p: _vp3d(p, {"layout_name": "coco", "num_joints": None}), [], ["metadata.num_joints: None"]),
    ("nj4.npz", lambda p: _vp3d(p, {"layout_name": "coco", "num_joints": 1e400}), [], ["metadata.num_joints: inf"]),
    ("bomb.npz", lambda p: _vp3d(p, {"layout_name": "coco", "junk": _Bomb()}), [],
     ["bomb.npz", "metadata", "builtins.bytearray asks for 3000000000 items"]),
    ("tl.json", lambda p: p.write_text(json.dumps([{"image_id": 0, "keypoints": [1.0] * 51, "track_id": [1]}])),
     [], ["results[0].track_id: expected an integer or string id, got list"]),
    ("td.json", lambda p: p.write_text(json.dumps([{"image_id": 0, "keypoints": [1.0] * 51, "track_id": {}}])),
     [], ["results[0].track_id", "got dict"]),
    ("mm.json", lambda p: p.write_text(json.dumps([{"keypoints": [[1.0, 1.0]] * 17, "track_id": {"a": 1}}])),
     [], ["[0].track_id", "got dict"]),
    ("id.json", lambda p: p.write_text(json.dumps([{"image_id": 10 ** 30, "keypoints": [1.0] * 51}])),
     [], ["results[0].image_id", "out of range"]),
]


@pytest.mark.parametrize("name,make,extra,needles", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_keypoint_files(ckpt, tmp_path, capsys, name, make, extra, needles):
    make(tmp_path / name)
    rc, _, err = _cli(["--checkpoint", ckpt[0], "--keypoints", tmp_path / name, "--image-size", W, H,
                       "--out", tmp_path / "o", "--device", "cpu", *extra], capsys)
    _one_line_error(rc, err, *needles)
    assert not (tmp_path / "o").exists()


def test_size_limits_from_headers(tmp_path, monkeypatch):
    """The limits are read from the zip directory / file size, before anything is decoded."""
    import hgn_pyg.inference.keypoint_files as kf

    np.savez_compressed(tmp_path / "z.npz", keypoints=np.zeros((4000, 17, 2)))
    monkeypatch.setattr(kf, "MAX_NPZ_MEMBER_BYTES", 100_000)
    with pytest.raises(DataError, match=r'z.npz: \["keypoints"\]: decodes to 1088128 bytes; at most 100000'):
        kf.read_keypoints(tmp_path / "z.npz", "h36m")
    (tmp_path / "big.json").write_text("[" + ",".join(["1"] * 1000) + "]")
    monkeypatch.setattr(kf, "MAX_JSON_BYTES", 1000)
    with pytest.raises(DataError, match="big.json: 2001 bytes of JSON; at most 1000"):
        kf.read_keypoints(tmp_path / "big.json", "coco")
    monkeypatch.setattr(kf, "MAX_POSES", 10)
    np.save(tmp_path / "a.npy", np.zeros((11, 17, 2)))
    with pytest.raises(DataError, match="11 poses declared; at most 10"):
        kf.read_keypoints(tmp_path / "a.npy", "h36m")


def test_npy_is_read_in_rows(tmp_path):
    from hgn_pyg.inference.keypoint_files import NpyRows, read_keypoints

    a = np.random.default_rng(0).normal(size=(50, 17, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    t = read_keypoints(tmp_path / "a.npy", "h36m").tracks[0]
    assert isinstance(t.keypoints, NpyRows)
    kp, sc, size = t.rows(10, 20)
    np.testing.assert_array_equal(kp, a[10:20, :, :2].astype(np.float64))
    np.testing.assert_array_equal(sc, a[10:20, :, 2].astype(np.float64))
    np.testing.assert_array_equal(np.asarray(t.keypoints), a[..., :2])
    assert size is None


@pytest.mark.parametrize("args,needle", [
    (["--min-score", "nan"], "--min-score must be in [0, 1]"),
    (["--min-score", "inf"], "--min-score must be in [0, 1]"),
    (["--min-score", "2"], "--min-score must be in [0, 1]"),
    (["--min-score", "-0.1"], "--min-score must be in [0, 1]"),
    (["--image-size", "1e30", "1e30"], "W and H must be 1..65536 pixels"),
    (["--image-size", "0.5", "100"], "W and H must be 1..65536 pixels"),
])
def test_cli_value_ranges(ckpt, tmp_path, capsys, args, needle):
    np.save(tmp_path / "kp.npy", _pixels())
    base = ["--checkpoint", ckpt[0], "--keypoints", tmp_path / "kp.npy", "--format", "h36m", "--out", tmp_path / "o",
            "--device", "cpu"]
    rc, _, err = _cli(base + (["--image-size", W, H] if "--image-size" not in args else []) + args, capsys)
    _one_line_error(rc, err, needle)
    assert not (tmp_path / "o").exists()


def test_image_size_in_the_file_is_checked_too(ckpt):
    from hgn_pyg.inference.lifter import Lifter

    lifter = Lifter.from_checkpoint(ckpt[0], device="cpu")
    with pytest.raises(DataError, match="image size 1e\\+30 x 1e\\+30 is outside 1..65536 pixels"):
        lifter(_pixels(3), image_size=np.full((3, 2), 1e30))


def test_nan_weights_name_the_checkpoint(ckpt, tmp_path, capsys):
    ck = torch.load(ckpt[0], weights_only=True)
    key = next(k for k, v in ck["model"].items() if v.is_floating_point())
    ck["model"][key] = torch.full_like(ck["model"][key], float("nan"))
    torch.save(ck, tmp_path / "nan.pt")
    np.save(tmp_path / "kp.npy", _pixels())
    rc, _, err = _cli(["--checkpoint", tmp_path / "nan.pt", "--keypoints", tmp_path / "kp.npy", "--format", "h36m",
                       "--image-size", W, H, "--out", tmp_path / "o", "--device", "cpu"], capsys)
    _one_line_error(rc, err, "nan.pt: the weights hold NaN or infinite values", key)
    assert not (tmp_path / "o").exists()


def test_non_finite_output_names_the_checkpoint(ckpt):
    """Finite weights that overflow float32 (x 1e30): the joints are not finite -> CheckpointError."""
    from hgn_pyg.errors import CheckpointError
    from hgn_pyg.inference.lifter import Lifter

    lifter = Lifter.from_checkpoint(ckpt[0], device="cpu")
    with torch.no_grad():
        for p in lifter.model.parameters():
            p.mul_(1e30)
    with pytest.raises(CheckpointError, match=r"model.pt: the model gave NaN or infinite joints"):
        lifter(_pixels(3), image_size=(W, H))


# ---------------------------------------------------------------------------- checkpoints, --set
def test_truncated_and_legacy_checkpoints(tmp_path):
    from hgn_pyg.errors import CheckpointError
    from hgn_pyg.models.checkpoint_io import load_checkpoint_file

    torch.save({"model": {"w": torch.randn(300, 100)}}, tmp_path / "a.pt")
    data = (tmp_path / "a.pt").read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="half.pt: truncated checkpoint"):
        load_checkpoint_file(tmp_path / "half.pt")
    (tmp_path / "p4.pt").write_bytes(pickle.dumps({"x": 1}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="p4.pt: not a readable PyTorch checkpoint"):
            load_checkpoint_file(tmp_path / "p4.pt")
    assert not caught  # torch's two-line note is not printed before our one line


@pytest.mark.parametrize("module", ["hgn_pyg.train", "hgn_pyg.test"])
def test_deep_set_is_one_line(module, capsys):
    import importlib

    cli_main = importlib.import_module(module).main
    deep = "DATASET.root=" + "[" * 60000 + "]" * 60000
    rc = cli_main(["--config", str(REPO / "configs" / "hgn_test.yaml"), "--set", deep])
    _one_line_error(rc, capsys.readouterr().err, "nested too deeply")


# ---------------------------------------------------------------------------- bombs, memory-capped
_CAPPED = r"""
import resource, sys
from hgn_pyg.inference.keypoint_files import read_keypoints
from hgn_pyg.errors import DataError
size = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
cap = size + 200 * 2 ** 20  # what is mapped after the imports + 200 MB
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
try:
    read_keypoints(sys.argv[1], sys.argv[2])
except DataError as exc:
    print("REFUSED", exc)
"""


def _zip_bomb(path, frames):
    """An .npz whose keypoints member is ``frames x 17 x 2`` float64 zeros, deflated (~2000:1): the
    benchmark's (benchmarks/lift_memory.py) builder."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from lift_memory import zip_bomb

    zip_bomb(path, frames)


@pytest.mark.parametrize("kind", ["zip", "pickle"])
def test_bombs_refused_under_a_memory_cap(tmp_path, kind):
    if kind == "zip":
        path = tmp_path / "bomb.npz"
        _zip_bomb(path, 2_400_000)  # 653 MB decoded, beyond MAX_NPZ_MEMBER_BYTES (512 MiB), 2.8 MB stored
        assert path.stat().st_size < 4 * 2 ** 20
        fmt, needle, code = "h36m", "decodes to 652800128 bytes", _CAPPED
    else:
        path = tmp_path / "bomb_meta.npz"
        _vp3d(path, {"layout_name": "coco", "junk": _Bomb()})
        fmt, needle, code = "videopose3d", "bytearray asks for", _CAPPED
    proc = subprocess.run([sys.executable, "-c", code, str(path), fmt], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1"))
    assert proc.returncode == 0 and "REFUSED" in proc.stdout and needle in proc.stdout, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------- killed and concurrent lifts
def _lift_cmd(ckpt_path, kp, out):
    return [sys.executable, "-m", "hgn_pyg.lift", "--checkpoint", str(ckpt_path), "--keypoints", str(kp),
            "--format", "h36m", "--image-size", str(W), str(H), "--out", str(out), "--device", "cpu", "--overwrite"]


def _env():
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


@pytest.mark.slow
def test_kill_9_at_random_points_then_rerun(ckpt, tmp_path):
    """kill -9 at random moments of --overwrite lifts: afterwards the folder holds the old result or
    the new one whole (or a pending commit that the next lift finishes), never a mix."""
    import random
    import time

    rng = random.Random(20)
    np.save(tmp_path / "kp.npy", _pixels(12_000, seed=2))
    out = tmp_path / "out"
    t0 = time.time()
    subprocess.run(_lift_cmd(ckpt[0], tmp_path / "kp.npy", out), env=_env(), check=True, capture_output=True)
    full = time.time() - t0
    ids = {_whole(out)}
    for _ in range(3):
        proc = subprocess.Popen(_lift_cmd(ckpt[0], tmp_path / "kp.npy", out), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, full * 1.1))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if read_manifest(out, "poses_3d") is None:  # killed mid-commit: the next writer finishes it
            with ResultWriter(out, "poses_3d"):
                pass
        ids.add(_whole(out))
    subprocess.run(_lift_cmd(ckpt[0], tmp_path / "kp.npy", out), env=_env(), check=True, capture_output=True)
    assert _whole(out) not in ids
    assert not [p for p in out.iterdir() if ".tmp-" in p.name or "commit" in p.name]


@pytest.mark.slow
def test_two_concurrent_lifts_into_one_folder(ckpt, tmp_path):
    np.save(tmp_path / "a.npy", _pixels(20_000, seed=1))
    np.save(tmp_path / "b.npy", _pixels(30_000, seed=2))
    out = tmp_path / "out"
    procs = [subprocess.Popen(_lift_cmd(ckpt[0], tmp_path / f"{n}.npy", out), env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in "ab"]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    assert all(rc in (0, 2) for rc, _ in results) and any(rc == 0 for rc, _ in results), results
    for rc, err in results:
        if rc == 2:
            assert "another process" in err and len(err.strip().splitlines()) == 1, err
    _whole(out)
    n = len(np.load(out / "poses_3d.npz")["frame"])
    sizes = {"a": 20_000, "b": 30_000}
    ok = [sizes[name] for (rc, _), name in zip(results, "ab") if rc == 0]
    assert n in ok  # the result of a lift that succeeded, whole


def test_refused_lift_leaves_the_folder_of_the_lift_that_holds_it(ckpt, tmp_path, capsys, monkeypatch):
    """The window behind a rare failure of the test above: lift B finds --out missing, lift A then
    creates it and takes its lock (before writing any temporary), B is refused. B must not remove
    the folder (it holds only A's lock file) from under A. Made deterministic: the refusal happens
    while this test holds the lock the way A would."""
    import hgn_pyg.cli.lift as cli

    np.save(tmp_path / "a.npy", _pixels(4, seed=1))
    out = tmp_path / "out"
    real = cli.write_lift

    a_lock = contextlib.ExitStack()  # A's lock, held until A would end

    def a_takes_the_folder_first(*args, **kwargs):
        out.mkdir()
        a_lock.enter_context(file_lock(out / ".lock"))
        return real(*args, **kwargs)

    monkeypatch.setattr(cli, "write_lift", a_takes_the_folder_first)
    with a_lock:
        rc, _, err = _cli(_lift_cmd(ckpt[0], tmp_path / "a.npy", out)[3:], capsys)
        _one_line_error(rc, err, "another process")
        assert (out / ".lock").exists()  # A's folder and lock are still there
    monkeypatch.setattr(cli, "write_lift", real)
    # a failed lift that made the folder itself still leaves nothing behind
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 5, 2), np.float32))
    out2 = tmp_path / "out2"
    rc, _, err = _cli(_lift_cmd(ckpt[0], bad, out2)[3:], capsys)
    assert rc == 2 and not os.path.lexists(out2), err


def test_training_plots_and_vis_files_replace_symlinks_never_follow_them(tmp_path):
    """The training curves (graph/*.png), the pose pictures and the OBJ meshes of TEST.vis are
    written atomically: a symlink planted at their path is replaced, its target untouched."""
    from hgn_pyg.engine.plots import plot_history
    from hgn_pyg.engine.vis import save_obj, save_pose_png
    from hgn_pyg.graphs.skeleton import H36M

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    graph = tmp_path / "graph"
    graph.mkdir()
    names = ["loss.png", "error.png", "pose.png", "mesh.obj"]
    for n in names:
        (graph / n).symlink_to(victim)
    history = [{"epoch": 0, "train_loss": 2.0, "test_mpjpe": 100.0, "test_pa_mpjpe": 80.0},
               {"epoch": 1, "train_loss": 1.0, "test_mpjpe": 90.0, "test_pa_mpjpe": 70.0}]
    plot_history(history, graph)
    rng = np.random.default_rng(0)
    save_pose_png(rng.normal(size=(17, 3)), None, H36M.bones, graph / "pose.png")
    save_obj(rng.normal(size=(4, 3)), graph / "mesh.obj")
    assert victim.read_text() == "precious"
    for n in names:
        assert not (graph / n).is_symlink() and (graph / n).stat().st_size > 0, n
