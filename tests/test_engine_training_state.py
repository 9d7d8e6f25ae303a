"""Atomic checkpoints and RNG-state capture."""
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from hgn_pyg.engine.training_state import (capture_rng_state, is_official_checkpoint, load_checkpoint, restore_rng_state,
                                       save_checkpoint, strip_module_prefix)
from hgn_pyg.errors import CheckpointError


def test_roundtrip_weights_only(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "epoch": 4, "rng": capture_rng_state(), "config": {"A": {"b": [1]}}}
    p = save_checkpoint(state, tmp_path / "ck" / "last.pth.tar")
    out = load_checkpoint(p)
    assert out["epoch"] == 4 and torch.equal(out["model"]["w"], torch.arange(3.0))
    assert [f.name for f in p.parent.iterdir()] == ["last.pth.tar"]  # no temp file left behind


def test_rng_restore_reproduces_streams():
    g = torch.Generator().manual_seed(11)
    s = capture_rng_state({"shuffle": g})
    a = (random.random(), np.random.rand(), torch.rand(2), torch.randperm(5, generator=g))
    restore_rng_state(s, {"shuffle": g})
    b = (random.random(), np.random.rand(), torch.rand(2), torch.randperm(5, generator=g))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])


def test_corrupt_and_missing(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "x.pth.tar")
    p = tmp_path / "bad.pth.tar"
    save_checkpoint({"w": torch.zeros(1000)}, p)
    p.write_bytes(p.read_bytes()[:100])  # truncated
    with pytest.raises(CheckpointError, match="bad.pth.tar"):
        load_checkpoint(p)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(tmp_path / "list.pt")


def test_official_detection():
    assert is_official_checkpoint({"model_state_dict": {"gconv_input.0.gconv.W": 0, "gconv_output.W": 0}})
    assert not is_official_checkpoint({"model": {"x": 1}})
    assert strip_module_prefix({"module.a": 1}) == {"a": 1}


def test_kill_during_write_keeps_previous(tmp_path):
    """SIGKILL between the temp write and os.replace: the old checkpoint survives intact."""
    p = tmp_path / "last.pth.tar"
    save_checkpoint({"epoch": 1, "w": torch.ones(10)}, p)  # the hook sleeps only when replacing a file
    code = ("import torch,sys; from hgn_pyg.engine.training_state import save_checkpoint; "
            f"save_checkpoint({{'epoch': 2, 'w': torch.zeros(10)}}, {str(p)!r})")
    env = dict(os.environ, HGN_PYG_TEST_CKPT_SLEEP="30")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.time() + 60
    while time.time() < deadline and not any(f.name.startswith(".last") for f in tmp_path.iterdir()):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(p)["epoch"] == 1


def test_state_of_another_architecture_is_named():
    from hgn_pyg.engine.build import load_state, model_from_checkpoint
    from hgn_pyg.config import Config

    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    other = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 1)).state_dict()
    with pytest.raises(CheckpointError) as e:
        load_state(model, other, "other.pth.tar")
    msg = str(e.value)
    assert "other.pth.tar" in msg and "0.weight" in msg and "(5, 4)" in msg and "2.weight" in msg
    with pytest.raises(CheckpointError, match="neither an hgn_pyg checkpoint"):
        model_from_checkpoint({"weights": {}}, Config(), hierarchy=None, path="x.pth.tar")
