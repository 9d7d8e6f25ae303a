"""Lifting the synthetic S9/S11 test frames gives what ``hgn_pyg.test`` computes for them.

The frames' pixel keypoints are made independently of the data set's normalised input: the
ground-truth camera-frame joints projected with the frames' cameras (``data.camera.project``).
Tolerances: joints within 1e-5 m of the model's output on the test input; MPJPE within 1e-3 mm
of ``results.json``.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from test_cli_evaluate import cli, trained  # noqa: F401  (the tiny trained run, shared)

pytestmark = pytest.mark.slow


def _test_frames(exp, root):
    """The test split's pixel keypoints, made by benchmarks/lift_check.py (the README figures)."""
    from hgn_pyg.config import load_config

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from lift_check import frames_as_pixels

    return frames_as_pixels(load_config(exp / "config.yaml", [f"DATASET.root={root}"]))


def test_lift_equals_test(trained, tmp_path):  # noqa: F811
    from hgn_pyg.engine.metrics import ACTIONS, MetricAccumulator
    from hgn_pyg.cli.lift import Lifter
    from hgn_pyg.models import HGN

    root, exp = trained
    ckpt = exp / "checkpoint" / "last.pth.tar"
    cli("hgn_pyg.test", ["--checkpoint", ckpt, "--set", f"DATASET.root={root}", "--out", tmp_path / "eval"],
        cwd=tmp_path)
    res = json.loads((tmp_path / "eval" / "results.json").read_text())
    uv, t = _test_frames(exp, root)
    sizes = t["image_size"].double().numpy()

    joints = Lifter.from_checkpoint(ckpt, device="cpu")(uv, image_size=sizes)
    model = HGN.from_checkpoint(ckpt)
    with torch.no_grad():
        ref = model(t["input_2d"]).joints
    ref = (ref - ref[:, :1]).numpy()
    assert np.abs(joints - ref).max() <= 1e-5
    acc = MetricAccumulator(ACTIONS)
    acc.update(torch.from_numpy(joints), t["joints_3d"] - t["joints_3d"][:, :1], t["action"])
    assert acc.summary()["MPJPE"] == pytest.approx(res["MPJPE"], abs=1e-3)
    assert acc.summary()["PA-MPJPE"] == pytest.approx(res["PA-MPJPE"], abs=1e-3)

    # the CLI on a keypoint file of the same frames (one image size per frame group)
    for k, (w, h) in enumerate(np.unique(sizes, axis=0)):
        sel = (sizes == [w, h]).all(1)
        np.savez(tmp_path / f"kp{k}.npz", keypoints=uv[sel], keypoint_format="h36m")
        cli("hgn_pyg.lift", ["--checkpoint", ckpt, "--keypoints", tmp_path / f"kp{k}.npz", "--image-size", w, h,
                             "--out", tmp_path / f"lift{k}", "--device", "cpu"], cwd=tmp_path)
        out = np.load(tmp_path / f"lift{k}" / "poses_3d.npz")["joints_3d"]
        assert np.abs(out - ref[sel]).max() <= 1e-5


def test_lift_version1_checkpoint(trained, tmp_path):  # noqa: F811
    """A checkpoint written before checkpoints carried graphs still lifts: the graphs are rebuilt
    from the body model its stored configuration names."""
    from hgn_pyg.engine.training_state import load_checkpoint
    from hgn_pyg.cli.lift import Lifter

    root, exp = trained
    ck = load_checkpoint(exp / "checkpoint" / "last.pth.tar")
    record_keys = {"joint_set", "joint_names", "input", "output", "hierarchy", "mesh_faces", "joint_regressor"}
    old = {k: v for k, v in ck.items() if k not in record_keys}
    old["version"] = 1
    torch.save(old, tmp_path / "v1.pth.tar")
    uv = np.random.default_rng(0).uniform(300, 700, (5, 17, 2))
    a = Lifter.from_checkpoint(tmp_path / "v1.pth.tar", device="cpu")(uv, image_size=(1000, 1000))
    b = Lifter.from_checkpoint(exp / "checkpoint" / "last.pth.tar", device="cpu")(uv, image_size=(1000, 1000))
    np.testing.assert_array_equal(a, b)
