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
