"""CLI error handling: one line on stderr, exit status 2, no traceback unless --debug; no folder written."""
from pathlib import Path

import pytest
import torch
import yaml

from hgn_pyg import test as test_cli
from hgn_pyg import train as train_cli

REPO = Path(__file__).resolve().parents[1]
TEST_CFG = REPO / "configs" / "hgn_test.yaml"


def run(cli, argv, capsys):
    rc = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return rc, err


def test_unknown_key_one_line(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"TRAIN": {"batchsize": 4}, "EXPERIMENT": {"output_root": str(tmp_path / "e")}}))
    rc, err = run(train_cli, ["--config", cfg], capsys)
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err
    assert str(cfg) in err and "TRAIN.batchsize" in err and "TRAIN.batch_size" in err
    assert not (tmp_path / "e").exists()  # nothing created for a bad config


def test_debug_shows_traceback(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("TRAIN:\n  lr: fast\n")
    from hgn_pyg.errors import ConfigError
    with pytest.raises(ConfigError, match="TRAIN.lr"):
        train_cli.main(["--config", str(cfg), "--debug"])


@pytest.mark.parametrize("override,key", [
    ("TRAIN.batch_size=abc", "TRAIN.batch_size"), ("MODEL.fusion=weird", "MODEL.fusion"),
    ("TRAIN.nope=1", "TRAIN.nope"), ("TRAIN.lr", "SECTION.key=value"),
])
def test_bad_overrides(tmp_path, capsys, override, key):
    rc, err = run(train_cli, ["--config", TEST_CFG, "--set", override], capsys)
    assert rc == 2 and key in err and "Traceback" not in err


def test_missing_data_root(tmp_path, capsys):
    rc, err = run(train_cli, ["--config", REPO / "configs" / "hgn_h36m.yaml", "--set",
                              f"DATASET.root={tmp_path / 'missing'}", "--set",
                              f"EXPERIMENT.output_root={tmp_path / 'e'}"], capsys)
    assert rc == 2 and "DATASET.root" in err and "hgn_h36m.yaml" in err and "Traceback" not in err
    assert not (tmp_path / "e").exists()


def test_missing_config_and_resume_dir(tmp_path, capsys):
    rc, err = run(train_cli, ["--config", tmp_path / "nope.yaml"], capsys)
    assert rc == 2 and "nope.yaml" in err
    rc, err = run(train_cli, ["--resume", tmp_path / "exp_missing"], capsys)
    assert rc == 2 and "exp_missing" in err
    exp = tmp_path / "exp_x"
    exp.mkdir()
    (exp / "config.yaml").write_text("{}\n")
    rc, err = run(train_cli, ["--resume", exp], capsys)
    assert rc == 2 and "last.pth.tar" in err
    assert sorted(p.name for p in exp.iterdir()) == ["config.yaml"]  # untouched


def test_test_cli_bad_checkpoints(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    base = ["--config", TEST_CFG, "--set", f"DATASET.root={data}", "--set", f"EXPERIMENT.output_root={tmp_path}/e"]
    rc, err = run(test_cli, base + ["--checkpoint", tmp_path / "none.pth.tar"], capsys)
    assert rc == 2 and "none.pth.tar" in err and "Traceback" not in err
    bad = tmp_path / "garbage.pth.tar"
    bad.write_bytes(b"not a checkpoint at all")
    rc, err = run(test_cli, base + ["--checkpoint", bad], capsys)
    assert rc == 2 and "garbage.pth.tar" in err and "Traceback" not in err
    rc, err = run(test_cli, base, capsys)
    assert rc == 2 and "TEST.weight_path" in err


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory):
    from hgn_pyg.data.synthetic import generate

    root = tmp_path_factory.mktemp("syn")
    generate(root, frames=10, seed=0, subjects=[1, 9], actions=[2, 3])
    return root


def _train_args(root, out, *extra):
    return ["--config", TEST_CFG, "--set", f"DATASET.root={root}", "--set",
            "DATASET.train_subjects=[1]", "--set", "DATASET.test_subjects=[9]", "--set",
            "SYNTHETIC.generate_if_missing=false", "--set", f"EXPERIMENT.output_root={out}",
            *extra]


def test_corrupt_annotation_through_train_cli(tiny_synthetic, tmp_path, capsys):
    """A truncated annotation file: one line naming the file, exit 2, existing runs untouched."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_synthetic, root)
    out = tmp_path / "e"
    old = out / "exp_old"
    old.mkdir(parents=True)
    (old / "results.json").write_text('{"MPJPE": 1.0}')
    bad = root / "annotations" / "Human36M_subject9_joint_3d.json"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    rc, err = run(train_cli, _train_args(root, out), capsys)
    errors = [line for line in err.splitlines() if "error" in line]  # INFO progress lines aside
    assert rc == 2 and len(errors) == 1 and "Traceback" not in err
    assert "Human36M_subject9_joint_3d.json" in errors[0]
    assert (old / "results.json").read_text() == '{"MPJPE": 1.0}'


def test_missing_subject_through_train_cli(tiny_synthetic, tmp_path, capsys):
    rc, err = run(train_cli, _train_args(tiny_synthetic, tmp_path / "e", "--set",
                                         "DATASET.test_subjects=[11]"), capsys)
    assert rc == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "Human36M_subject11" in errors[0]


def test_non_finite_input_stops_training_with_one_line(tiny_synthetic, tmp_path, capsys):
    """Inf in the network input (here through the noise augmentation) makes the loss non-finite:
    the run stops at once with one line naming the epoch and iteration, exit 2."""
    rc, err = run(train_cli, _train_args(tiny_synthetic, tmp_path / "e", "--set",
                                         "AUG.noise_std=3e38"), capsys)
    assert rc == 2 and "Traceback" not in err
    assert "loss" in err and "iteration" in err
    (exp,) = list((tmp_path / "e").iterdir())
    assert "fatal: FloatingPointError" in (exp / "train.log").read_text()  # the error is in the log too


@pytest.mark.parametrize("key", ["AUG.noise_std", "TRAIN.lr", "TRAIN.grad_clip", "TRAIN.lr_factor"])
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_config_values_are_refused(tmp_path, capsys, key, value):
    """NaN passes '< 0' checks (and silently switched clipping and noise off): every float is finite."""
    rc, err = run(train_cli, ["--config", TEST_CFG, "--set", f"{key}={value}", "--set",
                              f"DATASET.root={tmp_path / 'd'}", "--set", f"EXPERIMENT.output_root={tmp_path / 'e'}"],
                  capsys)
    assert rc == 2 and key in err and "finite" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "e").exists() and not (tmp_path / "d").exists()
