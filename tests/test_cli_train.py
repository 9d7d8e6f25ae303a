"""End-to-end training CLI: experiment folder, exact resume, SIGKILL mid-epoch / mid-checkpoint, DDP.

These run real (tiny) training subprocesses on the synthetic set and are marked ``slow``;
they use ``configs/hgn_test.yaml`` (narrow network, a few hundred samples, 2 epochs).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TEST_CFG = REPO / "configs" / "hgn_test.yaml"
METRIC_KEYS = ("MPJPE", "PA-MPJPE", "per_action", "num_samples")

pytestmark = pytest.mark.slow


def env(**extra):
    e = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
             OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    e.update(extra)
    return e


def base_args(data, out):
    return ["--config", str(TEST_CFG), "--set", f"DATASET.root={data}", "--set", f"EXPERIMENT.output_root={out}"]


def cli(module, args, cwd, check=True, **kw):
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env(), capture_output=True,
                          text=True, timeout=600, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def new_exp(out: Path, before: set) -> Path:
    made = sorted(p for p in out.iterdir() if p.name not in before)
    assert len(made) == 1, made
    return made[0]


def listing(out: Path) -> set:
    return {p.name for p in out.iterdir()} if out.exists() else set()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny synthetic set (generated once by the train CLI's own code path) + hierarchy cache."""
    root = tmp_path_factory.getbasetemp() / "synthetic_tiny"
    if not root.exists():
        code = ("import sys; from hgn_pyg.config import load_config; from hgn_pyg.engine import build; "
                f"cfg = load_config({str(TEST_CFG)!r}, ['DATASET.root={root}']); build.ensure_dataset(cfg); "
                "build.build_hierarchy(cfg)")
        subprocess.run([sys.executable, "-c", code], env=env(), check=True, timeout=600)
    return root


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """An uninterrupted 4-epoch run: its experiment folder."""
    out = tmp_path_factory.mktemp("ref")
    cli("hgn_pyg.train", base_args(data, out) + ["--set", "TRAIN.end_epoch=4"], cwd=out)
    (exp,) = list(out.iterdir())
    return exp


def results(exp: Path) -> dict:
    return json.loads((exp / "results.json").read_text())


def same_metrics(a: dict, b: dict) -> None:
    for k in METRIC_KEYS:
        assert a[k] == b[k], k


def test_experiment_folder(reference):
    exp = reference
    assert exp.name.startswith("exp_")
    for rel in ["config.yaml", "train.log", "checkpoint/last.pth.tar", "checkpoint/best.pth.tar",
                "graph/metrics.csv", "graph/loss.png", "graph/error.png", "results.json"]:
        assert (exp / rel).is_file(), rel
    res = results(exp)
    assert set(METRIC_KEYS) <= set(res) and res["epoch"] == 3
    assert res["num_samples"] > 0 and res["MPJPE"] > 0 and res["PA-MPJPE"] <= res["MPJPE"] + 1e-6
    assert res["baseline"]["num_samples"] == res["num_samples"]
    assert len((exp / "graph" / "metrics.csv").read_text().strip().splitlines()) == 1 + 4
    from hgn_pyg.engine.training_state import load_checkpoint
    ck = load_checkpoint(exp / "checkpoint" / "last.pth.tar")
    assert ck["epoch"] == 3 and {"model", "optimizer", "scheduler", "rng", "config", "best_metric"} <= set(ck)


def test_resume_2_plus_2_equals_4(data, reference, tmp_path):
    cli("hgn_pyg.train", base_args(data, tmp_path), cwd=tmp_path)  # hgn_test.yaml: end_epoch 2
    (exp,) = list(tmp_path.iterdir())
    before = {p.name for p in exp.rglob("*")}
    assert results(exp)["epoch"] == 1
    cli("hgn_pyg.train", ["--resume", str(exp), "--set", "TRAIN.end_epoch=4"], cwd=tmp_path)
    same_metrics(results(exp), results(reference))
    assert results(exp)["epoch"] == 3
    assert before <= {p.name for p in exp.rglob("*")}  # nothing removed
    assert "resumed from" in (exp / "train.log").read_text()
    assert list(exp.glob("config_resume_*.yaml"))  # the changed end_epoch is recorded beside config.yaml


def _wait_for(pred, timeout=300, proc=None):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended before it could be killed: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("timed out")


def _start(data, out, **extra_env):
    args = [sys.executable, "-m", "hgn_pyg.train"] + base_args(data, out) + ["--set", "TRAIN.end_epoch=4"]
    return subprocess.Popen(args, cwd=out, env=env(**extra_env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _epoch_of(path):
    from hgn_pyg.engine.training_state import load_checkpoint
    return load_checkpoint(path)["epoch"]


def test_sigkill_mid_epoch_then_resume(data, reference, tmp_path):
    proc = _start(data, tmp_path)
    try:
        _wait_for(lambda: any(tmp_path.glob("exp_*/checkpoint/last.pth.tar")), proc=proc)
        time.sleep(0.5)  # well inside epoch 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (exp,) = list(tmp_path.iterdir())
    last = exp / "checkpoint" / "last.pth.tar"
    assert _epoch_of(last) in (0, 1, 2)
    cli("hgn_pyg.train", ["--resume", str(exp)], cwd=tmp_path)
    same_metrics(results(exp), results(reference))


def test_sigkill_during_checkpoint_write_then_resume(data, reference, tmp_path):
    # the test hook sleeps between writing the temporary file and replacing an existing checkpoint
    proc = _start(data, tmp_path, HGN_PYG_TEST_CKPT_SLEEP="60")
    try:
        # epoch 0's checkpoint exists and epoch 1's is being written (held between tmp write and replace)
        _wait_for(lambda: any(tmp_path.glob("exp_*/checkpoint/last.pth.tar"))
                  and any(tmp_path.glob("exp_*/checkpoint/.last.pth.tar.tmp-*")), proc=proc)
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (exp,) = list(tmp_path.iterdir())
    assert _epoch_of(exp / "checkpoint" / "last.pth.tar") == 0  # the previous checkpoint, intact
    cli("hgn_pyg.train", ["--resume", str(exp)], cwd=tmp_path)
    same_metrics(results(exp), results(reference))


def test_new_run_never_touches_existing_folders(data, reference, tmp_path):
    out = reference.parent
    before = {p: p.stat().st_mtime_ns for p in reference.rglob("*") if p.is_file()}
    names = listing(out)
    cli("hgn_pyg.train", base_args(data, out) + ["--set", "TRAIN.end_epoch=1", "--set", "TEST.symmetric_bones=true",
                                                 "--set", "TEST.flip_test=true"], cwd=tmp_path)
    new = new_exp(out, names)
    assert new != reference and (new / "results.json").is_file()
    assert before == {p: p.stat().st_mtime_ns for p in reference.rglob("*") if p.is_file()}
    # TEST.symmetric_bones / TEST.flip_test are recorded in the checkpoint as the lifter's defaults
    # (absent otherwise)
    for exp, want in ((new, True), (reference, None)):
        ckpt = torch.load(exp / "checkpoint" / "last.pth.tar", map_location="cpu", weights_only=True)
        assert ckpt["output"].get("symmetric_bones") is want and ckpt["output"].get("flip_test") is want


def test_torchrun_two_cpu_processes(data, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "hgn_pyg.train"] + base_args(data, tmp_path) + ["--set", "TRAIN.end_epoch=1"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (exp,) = list(tmp_path.iterdir())  # one folder: only rank 0 writes
    res = results(exp)
    assert res["num_samples"] > 0 and res["MPJPE"] > 0
    from hgn_pyg.engine.training_state import load_checkpoint
    assert load_checkpoint(exp / "checkpoint" / "last.pth.tar")["world_size"] == 2


def test_resume_with_a_checkpoint_of_another_architecture(data, tmp_path):
    """`--resume` of a folder whose last.pth.tar was made for another network: one line naming the
    keys, exit 2, and every file of the folder left as it was."""
    from hgn_pyg.engine.training_state import load_checkpoint, save_checkpoint

    cli("hgn_pyg.train", base_args(data, tmp_path) + ["--set", "TRAIN.end_epoch=1"], cwd=tmp_path)
    (exp,) = list(tmp_path.iterdir())
    last = exp / "checkpoint" / "last.pth.tar"
    ck = load_checkpoint(last)
    key = next(k for k, v in ck["model"].items() if k.endswith("weight") and v.dim() == 3)
    ck["model"][key] = torch.zeros(ck["model"][key].shape[0], 3, 5)  # another channel count
    save_checkpoint(ck, last)
    snapshot = {p: p.read_bytes() for p in exp.rglob("*") if p.is_file() and p.name not in ("train.log", ".lock")}
    proc = cli("hgn_pyg.train", ["--resume", str(exp), "--set", "TRAIN.end_epoch=3"], cwd=tmp_path,
               check=False)
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and key in errors[0]
    for p, content in snapshot.items():
        assert p.read_bytes() == content, p  # nothing written over
    assert not list(exp.glob("config_resume_*"))  # the changed config is recorded only once resumed


def test_model_weight_path_initialises_a_new_run(data, tmp_path):
    """MODEL.weight_path loads initial weights (here: a finished run's); a checkpoint of another
    width is one line naming the file and exit 2."""
    a = tmp_path / "a"
    cli("hgn_pyg.train", base_args(data, a) + ["--set", "TRAIN.end_epoch=1"], cwd=tmp_path)
    (exp_a,) = list(a.iterdir())
    weights = exp_a / "checkpoint" / "last.pth.tar"
    b = tmp_path / "b"
    cli("hgn_pyg.train", base_args(data, b) + ["--set", "TRAIN.end_epoch=1", "--set",
                                                f"MODEL.weight_path={weights}"], cwd=tmp_path)
    (exp_b,) = list(b.iterdir())
    assert f"initial weights from {weights}" in (exp_b / "train.log").read_text()
    # starting from trained weights, the first epoch's training loss is below the fresh run's
    hist_a = (exp_a / "graph" / "metrics.csv").read_text().splitlines()
    hist_b = (exp_b / "graph" / "metrics.csv").read_text().splitlines()
    col = hist_a[0].split(",").index("train_loss")
    assert float(hist_b[1].split(",")[col]) < float(hist_a[1].split(",")[col])
    c = tmp_path / "c"
    proc = cli("hgn_pyg.train", base_args(data, c) + ["--set", "MODEL.hidden_channels=8", "--set",
                                                       f"MODEL.weight_path={weights}"], cwd=tmp_path,
               check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert str(weights) in [line for line in proc.stderr.splitlines() if "error" in line][0]


def test_sigterm_ends_training_with_a_message_then_resume(data, reference, tmp_path):
    """SIGTERM (kill, a scheduler's stop): one line, exit 143, a train.log line; --resume then ends
    exactly like an uninterrupted run."""
    args = [sys.executable, "-m", "hgn_pyg.train"] + base_args(data, tmp_path) + ["--set", "TRAIN.end_epoch=4"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: any(tmp_path.glob("exp_*/checkpoint/last.pth.tar")), proc=proc)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err
    assert [line for line in err.splitlines() if "hgn_pyg.train:" in line] == [
        "hgn_pyg.train: terminated (SIGTERM); a training run resumes with --resume EXP_DIR"]
    (exp,) = list(tmp_path.iterdir())
    assert "fatal: Terminated: terminated by SIGTERM" in (exp / "train.log").read_text()
    cli("hgn_pyg.train", ["--resume", str(exp)], cwd=tmp_path)
    same_metrics(results(exp), results(reference))
