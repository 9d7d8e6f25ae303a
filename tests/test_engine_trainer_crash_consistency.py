"""Crash consistency: kill -9 at random points of a tiny training, each followed by a resume, ends
exactly like an uninterrupted run; a killed run's leftovers are repaired; one process per folder.

The runs are forked from this process (the data, hierarchy and model are built once, so a start
costs no imports): each child trains through :func:`train_child`, the code path of
``hgn_pyg.train`` after the pipeline (experiment lock, temporary-file cleanup, Trainer, resume).
"""
import contextlib
import csv
import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

from hgn_pyg.config import load_config
from hgn_pyg.engine import pipeline
from hgn_pyg.engine.training_state import capture_rng_state, load_checkpoint, restore_rng_state
from hgn_pyg.engine.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
TEST_CFG = REPO / "configs" / "hgn_test.yaml"
EPOCHS = 4


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    cfg = load_config(TEST_CFG, [
        f"DATASET.root={root / 'data'}", f"EXPERIMENT.output_root={root / 'exp'}", "SYNTHETIC.frames=10",
        "SYNTHETIC.options={actions: [2, 3]}", "DATASET.train_subjects=[1]", "DATASET.test_subjects=[9]",
        "DATASET.train_subsample=1", "DATASET.test_subsample=5", "TRAIN.max_train_samples=64",
        "TEST.max_samples=32", f"TRAIN.end_epoch={EPOCHS}", "TRAIN.lr_step=[2]", "MODEL.hidden_channels=8",
        "TRAIN.eval_every=1"])
    torch.set_num_threads(1)
    run = pipeline.prepare(pipeline.resolve_paths(cfg))
    return run, capture_rng_state(), root


def train_child(run, rng, exp: Path) -> None:
    """What ``hgn_pyg.train`` does once the pipeline has prepared the run (in a forked child)."""
    with contextlib.ExitStack() as stack:
        pipeline.open_experiment(exp, stack)
        restore_rng_state(rng)
        trainer = Trainer(run.cfg, exp, run.model, run.loss_fn, run.train_set, run.test_set)
        if (exp / "checkpoint" / "last.pth.tar").is_file():
            trainer.resume()
        trainer.fit()


def fork_train(run, rng, exp: Path) -> int:
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            train_child(run, rng, exp)
        except BaseException:  # pragma: no cover - shows in the parent as a non-zero status
            import traceback
            traceback.print_exc()
            code = 1
        os._exit(code)
    return pid


def wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return status


#: Wall-clock columns of the history: the only values a resumed run may not reproduce.
TIME_KEYS = ("epoch_time_s", "train_time_s")


def untimed(rows):
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in rows]


def history_rows(path: Path):
    with open(path) as fh:
        return untimed(csv.DictReader(fh))


def same_checkpoint(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca["epoch"] == cb["epoch"] and ca["best_epoch"] == cb["best_epoch"]
    assert ca["best_metric"] == cb["best_metric"]
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    assert untimed(ca["history"]) == untimed(cb["history"])
    assert ca["last_eval"] == cb["last_eval"]


def results(exp: Path) -> dict:
    """results.json without the checkpoint paths (they name the experiment folder): the top-level
    one and those of the ``last``/``best`` blocks."""
    res = json.loads((exp / "results.json").read_text())
    res.pop("checkpoint")
    for block in ("last", "best"):
        if isinstance(res.get(block), dict):
            assert res[block].pop("checkpoint").startswith(str(exp))
    return res


def temp_files(exp: Path):
    return [p for p in exp.rglob("*") if ".tmp-" in p.name]


@pytest.mark.slow
def test_kill_at_random_points_then_resume_equals_uninterrupted(prepared, tmp_path):
    """kill -9 at 10 random moments (each run resumed from what the previous one left), then a
    final resume: results.json, metrics.csv and both checkpoints equal an uninterrupted run's."""
    run, rng, _ = prepared
    ref = tmp_path / "ref"
    ref.mkdir()
    tic = time.time()
    assert wait(fork_train(run, rng, ref)) == 0
    duration = time.time() - tic
    exp = tmp_path / "killed"
    exp.mkdir()
    gen = random.Random(12)
    kills = 0
    per_epoch = duration / EPOCHS
    for _ in range(10):  # each run dies within about 1.5 epochs: the kills spread over the whole run
        pid = fork_train(run, rng, exp)
        time.sleep(gen.uniform(0.02, 1.5 * per_epoch))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        kills += wait(pid) != 0
    assert kills >= 5  # most of the runs were really killed
    assert wait(fork_train(run, rng, exp)) == 0
    assert results(exp) == results(ref)
    assert history_rows(exp / "graph" / "metrics.csv") == history_rows(ref / "graph" / "metrics.csv")
    for name in ("last.pth.tar", "best.pth.tar"):
        same_checkpoint(exp / "checkpoint" / name, ref / "checkpoint" / name)
    assert temp_files(exp) == []


@pytest.mark.slow
def test_resume_repairs_best_checkpoint_and_metrics(prepared, tmp_path):
    """The issue's case: killed between the last and best writes of a best epoch (best.pth.tar one
    best epoch behind) with metrics.csv behind and a stale temporary file: resume repairs all."""
    run, rng, _ = prepared
    exp = tmp_path / "exp"
    exp.mkdir()
    assert wait(fork_train(run, rng, exp)) == 0
    last, best = exp / "checkpoint" / "last.pth.tar", exp / "checkpoint" / "best.pth.tar"
    state = load_checkpoint(last)
    # pretend the best epoch was the last one and best.pth.tar was not written yet
    stale = dict(state, epoch=state["epoch"] - 1)
    torch.save(stale, best)
    state["best_epoch"] = state["epoch"]
    torch.save(state, last)
    (exp / "graph" / "metrics.csv").write_text("epoch\n")
    (exp / "checkpoint" / ".best.pth.tar.tmp-abc123").write_bytes(b"half")
    assert wait(fork_train(run, rng, exp)) == 0
    assert load_checkpoint(best)["epoch"] == state["epoch"] == load_checkpoint(best)["best_epoch"]
    assert len(history_rows(exp / "graph" / "metrics.csv")) == EPOCHS
    assert temp_files(exp) == []


def test_second_resume_of_a_folder_refuses(prepared, tmp_path, capsys):
    from hgn_pyg import train as train_cli
    from hgn_pyg.io import file_lock

    run, _, _ = prepared
    exp = tmp_path / "exp"
    (exp / "checkpoint").mkdir(parents=True)
    run.cfg.save(exp / "config.yaml")
    (exp / "checkpoint" / "last.pth.tar").write_bytes(b"x")
    with file_lock(exp / pipeline.EXPERIMENT_LOCK):  # a training process holds the folder
        before = sorted(p.name for p in exp.rglob("*"))
        rc = train_cli.main(["--resume", str(exp)])
    err = capsys.readouterr().err
    assert rc == 2 and "another process" in err and str(os.getpid()) in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in exp.rglob("*")) == before
