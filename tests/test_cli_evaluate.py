"""Evaluation CLI: our checkpoints and the published checkpoint layout, results.json, the table."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TEST_CFG = REPO / "configs" / "hgn_test.yaml"

pytestmark = pytest.mark.slow


def env():
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def cli(module, args, cwd):
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, env=env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "synthetic_tiny"
    out = tmp_path_factory.mktemp("train")
    cli("hgn_pyg.train", ["--config", TEST_CFG, "--set", f"DATASET.root={root}", "--set",
                          f"EXPERIMENT.output_root={out}", "--set", "TRAIN.end_epoch=1"], cwd=out)
    (exp,) = list(out.iterdir())
    return root, exp


def test_evaluate_our_checkpoint(trained, tmp_path):
    root, exp = trained
    proc = cli("hgn_pyg.test", ["--config", TEST_CFG, "--checkpoint", exp / "checkpoint" / "last.pth.tar",
                                "--set", f"DATASET.root={root}", "--set", "TEST.vis=true",
                                "--out", tmp_path / "eval"], cwd=tmp_path)
    res = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert {"MPJPE", "PA-MPJPE", "per_action", "num_samples", "baseline"} <= set(res)
    for name, r in res["per_action"].items():
        assert set(r) >= {"MPJPE", "PA-MPJPE"}
    train_res = json.loads((exp / "results.json").read_text())
    assert res["MPJPE"] == pytest.approx(train_res["MPJPE"], rel=1e-9)
    assert res["baseline"]["MPJPE"] == pytest.approx(train_res["baseline"]["MPJPE"], rel=1e-9)
    assert "Average" in proc.stdout and "mean MPJPE" in proc.stdout
    assert list((tmp_path / "eval" / "vis").glob("pose_*.png")) and list((tmp_path / "eval" / "vis").glob("*.obj"))


def test_evaluate_published_layout(trained, tmp_path):
    """A checkpoint in the published layout (model_state_dict, published names) goes through
    HGN.from_official and gives the same numbers as ours."""
    root, exp = trained
    from hgn_pyg.config import load_config
    from hgn_pyg.engine import build
    from hgn_pyg.engine.training_state import load_checkpoint

    ck = load_checkpoint(exp / "checkpoint" / "last.pth.tar")
    cfg = load_config(exp / "config.yaml")
    h = build.build_hierarchy(cfg)
    model = build.model_from_checkpoint(ck, cfg, h)
    # the published layout as the published training script wrote it: DataParallel's "module."
    # prefix and NumPy-1.x scalars beside the weights
    from test_models_checkpoint import _numpy1_pickle

    official = _numpy1_pickle(tmp_path, {"epoch": np.int64(150), "error": np.float64(40.0), "model_state_dict": {
        "module." + k: v for k, v in model.to_official_state_dict().items()}})
    cli("hgn_pyg.test", ["--config", exp / "config.yaml", "--checkpoint", official, "--set",
                         f"EXPERIMENT.output_root={tmp_path / 'out'}"], cwd=tmp_path)
    (out,) = list((tmp_path / "out").iterdir())
    assert out.name.startswith("exp_")
    res = json.loads((out / "results.json").read_text())
    mine = json.loads((exp / "results.json").read_text())
    assert res["MPJPE"] == pytest.approx(mine["MPJPE"], rel=1e-5)
    assert res["baseline"]["MPJPE"] == pytest.approx(mine["baseline"]["MPJPE"], rel=1e-6)


def test_evaluate_without_config(trained, tmp_path):
    """The checkpoint's stored configuration is enough (--set may still point at the data)."""
    root, exp = trained
    cli("hgn_pyg.test", ["--checkpoint", exp / "checkpoint" / "last.pth.tar", "--set", f"DATASET.root={root}",
                         "--out", tmp_path / "eval"], cwd=tmp_path)
    res = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert res["MPJPE"] == pytest.approx(json.loads((exp / "results.json").read_text())["MPJPE"], rel=1e-9)


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "notes.pth.tar"
    bad.write_text("not a checkpoint\n")
    proc = subprocess.run([sys.executable, "-m", "hgn_pyg.test", "--checkpoint", str(bad), "--out", str(tmp_path / "o")],
                          cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "not a PyTorch checkpoint" in proc.stderr and "weights_only" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_checkpoint_fields_of_the_wrong_type(trained, tmp_path):
    """Checkpoint fields are typed and checked before anything is written: one line, exit 2."""
    from hgn_pyg.engine.training_state import load_checkpoint

    root, exp = trained
    ck = load_checkpoint(exp / "checkpoint" / "last.pth.tar")
    for key, value in (("epoch", "3"), ("mean_pose", torch.zeros(4)), ("history", {"a": 1})):
        bad = tmp_path / f"bad_{key}.pth.tar"
        torch.save(dict(ck, **{key: value}), bad)
        proc = subprocess.run([sys.executable, "-m", "hgn_pyg.test", "--checkpoint", str(bad), "--set",
                               f"DATASET.root={root}", "--out", str(tmp_path / key)], cwd=tmp_path, env=env(),
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 2 and f"field '{key}'" in proc.stderr and str(bad) in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / key).exists()
