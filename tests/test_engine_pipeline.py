"""The run pipeline: everything is checked before the experiment folder exists; paths are absolute;
the data set matches the config (never silently reused); first-use generation is safe when
several processes start at once; the synthetic CLI never overwrites annotations unasked."""
import json
import os
from pathlib import Path

import pytest
import torch

from hgn_pyg import train as train_cli
from hgn_pyg.config import load_config
from hgn_pyg.engine import build, pipeline

REPO = Path(__file__).resolve().parents[1]
TEST_CFG = REPO / "configs" / "hgn_test.yaml"
TINY = ["SYNTHETIC.frames=2", "SYNTHETIC.options={actions: [2]}", "DATASET.train_subjects=[1]",
        "DATASET.test_subjects=[9]"]


def run(argv, capsys):
    rc = train_cli.main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def sets(*pairs):
    out = []
    for p in pairs:
        out += ["--set", p]
    return out


@pytest.mark.parametrize("override,key", [
    ("MODEL.mode=spmm", "MODEL.mode"),            # accepted by config.py, refused by SemGraphConv
    ("MODEL.isolated=none", "MODEL.isolated"),
    ("MODEL.fusion=mean", "MODEL.fusion"),
    ("TRAIN.optimizer=lbfgs", "TRAIN.optimizer"),
    ("DATASET.format=coco", "DATASET.format"),
])
def test_values_the_modules_refuse_fail_before_anything_is_written(tmp_path, capsys, override, key):
    rc, err = run(["--config", TEST_CFG] + sets(override, f"DATASET.root={tmp_path / 'd'}",
                                                f"EXPERIMENT.output_root={tmp_path / 'e'}"), capsys)
    assert rc == 2 and key in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "e").exists() and not (tmp_path / "d").exists()


def test_allowed_values_are_the_modules_own():
    from hgn_pyg.nn.sem_graph_conv import ISOLATED, MODES

    for mode in MODES:
        assert load_config(TEST_CFG, [f"MODEL.mode={mode}"]).MODEL.mode == mode
    for iso in ISOLATED:  # 'zero', the layer's default, was missing from config.py's copy
        assert load_config(TEST_CFG, [f"MODEL.isolated={iso}"]).MODEL.isolated == iso


def test_bad_weight_path_fails_before_anything_is_written(tmp_path, capsys):
    bad = tmp_path / "weights.pth.tar"
    bad.write_bytes(b"not a checkpoint")
    rc, err = run(["--config", TEST_CFG] + sets(f"MODEL.weight_path={bad}", f"DATASET.root={tmp_path / 'd'}",
                                                f"EXPERIMENT.output_root={tmp_path / 'e'}"), capsys)
    assert rc == 2 and str(bad) in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "e").exists() and not (tmp_path / "d").exists()


def test_yaml_alias_bomb_is_refused(tmp_path, capsys):
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for k in range(1, 9):
        lines.append(f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    rc, err = run(["--config", bomb], capsys)
    assert rc == 2 and "bomb.yaml" in err and "expands" in err
    rc, err = run(["--config", TEST_CFG, "--set", "TRAIN.lr_step=&x [*x]"], capsys)
    assert rc == 2 and "alias" in err


def test_resolve_paths_makes_every_path_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(TEST_CFG, ["DATASET.root=data", "DATASET.body_model_path=body.pkl", "MODEL.weight_path=w.pt",
                                 "EXPERIMENT.output_root=~/exp"])
    out = pipeline.resolve_paths(cfg)
    assert out.DATASET.root == str(tmp_path / "data") and out.MODEL.weight_path == str(tmp_path / "w.pt")
    assert out.DATASET.body_model_path == str(tmp_path / "body.pkl")
    assert out.EXPERIMENT.output_root == os.path.expanduser("~/exp") and out.DATASET.cache_dir == ""


def _tiny_cfg(root, *extra):
    return pipeline.resolve_paths(load_config(TEST_CFG, [f"DATASET.root={root}", *TINY, *extra]))


@pytest.mark.slow
def test_data_identity_mismatch_goes_to_a_keyed_folder(tmp_path, caplog):
    """After a run with SYNTHETIC.frames=2, a config asking for 3 frames does not train on the old
    set: the set for 3 frames is made in a folder keyed by the parameters; both stay usable."""
    root = tmp_path / "data"
    assert build.ensure_dataset(_tiny_cfg(root)) == root
    first = json.loads((root / "SYNTHETIC.json").read_text())
    stamp = (root / "annotations" / "Human36M_subject1_data.json").stat().st_mtime_ns
    other = build.ensure_dataset(_tiny_cfg(root, "SYNTHETIC.frames=3"))
    assert other != root and other.name.startswith("data-") and other.parent == tmp_path
    assert json.loads((other / "SYNTHETIC.json").read_text())["frames"] == 3
    assert "other parameters" in caplog.text and "frames 2 -> 3" in caplog.text
    assert json.loads((root / "SYNTHETIC.json").read_text()) == first  # untouched
    assert (root / "annotations" / "Human36M_subject1_data.json").stat().st_mtime_ns == stamp
    assert build.ensure_dataset(_tiny_cfg(root, "SYNTHETIC.frames=3")) == other  # found again
    assert build.ensure_dataset(_tiny_cfg(root)) == root
    # the user's own data (no SYNTHETIC.json) are used as they are
    (root / "SYNTHETIC.json").unlink()
    assert build.ensure_dataset(_tiny_cfg(root, "SYNTHETIC.frames=3")) == root


@pytest.mark.slow
def test_concurrent_first_use_generation(tmp_path):
    """Several processes starting at once on a missing data root: all succeed, one data set."""
    root = tmp_path / "data"
    cfg = _tiny_cfg(root)
    pids = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                torch.set_num_threads(1)
                code = 0 if build.ensure_dataset(cfg) == root else 3
            finally:
                os._exit(code)
        pids.append(pid)
    statuses = [os.waitpid(pid, 0)[1] for pid in pids]
    assert statuses == [0, 0, 0]
    assert (root / "SYNTHETIC.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_synthetic_cli_refuses_to_overwrite_annotations(tmp_path, capsys):
    from hgn_pyg.data import synthetic

    out = tmp_path / "syn"
    (out / "annotations").mkdir(parents=True)
    ann = out / "annotations" / "Human36M_subject1_data.json"
    ann.write_text('{"mine": true}')
    rc = synthetic.main(["--out", str(out), "--frames", "2", "--subjects", "1", "--actions", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and str(out) in err and "--overwrite" in err
    assert ann.read_text() == '{"mine": true}'
    assert synthetic.main(["--out", str(out), "--frames", "2", "--subjects", "1", "--actions", "2",
                           "--overwrite"]) == 0
    assert "images" in json.loads(ann.read_text())


@pytest.mark.slow
def test_resume_from_another_directory_uses_the_recorded_paths(tmp_path, monkeypatch, capsys):
    """A relative DATASET.root is recorded absolute: --resume from elsewhere finds the same data
    (it used to generate a new set in the current directory)."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    monkeypatch.chdir(a)
    args = ["--config", TEST_CFG] + sets("DATASET.root=data", "EXPERIMENT.output_root=exp", "TRAIN.end_epoch=1",
                                         "TRAIN.max_train_samples=32", "TEST.max_samples=16", *TINY)
    rc, err = run(args, capsys)
    assert rc == 0, err
    (exp,) = list((a / "exp").iterdir())
    saved = load_config(exp / "config.yaml")
    assert saved.DATASET.root == str(a / "data") and saved.EXPERIMENT.output_root == str(a / "exp")
    monkeypatch.chdir(b)
    rc, err = run(["--resume", exp, "--set", "TRAIN.end_epoch=2"], capsys)
    assert rc == 0, err
    assert list(b.iterdir()) == []
    assert json.loads((exp / "results.json").read_text())["epoch"] == 1
