"""Trainer with a stand-in model and data set: experiment folder, exact resume, baseline."""
import csv
import json
from typing import NamedTuple, Tuple

import pytest
import torch
from torch import nn
from torch_geometric.data import Data

from hgn_pyg.config import Config, apply_overrides
from hgn_pyg.engine.training_state import load_checkpoint
from hgn_pyg.engine.losses import HGNLoss
from hgn_pyg.engine.trainer import Trainer, make_experiment_dir, seed_everything


@pytest.fixture(autouse=True)
def one_thread():
    """The machine is shared: one intra-op thread keeps these tiny runs fast (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class Out(NamedTuple):
    joints: torch.Tensor
    meshes: Tuple[torch.Tensor, torch.Tensor]


class TinyNet(nn.Module):
    """17×2 → 17×3 joints + two small 'meshes' (6 and 5 slots), with BatchNorm and dropout."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(34, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.1))
        self.j = nn.Linear(32, 51)
        self.m = nn.Linear(32, 33)

    def forward(self, x):
        h = self.body(x.flatten(1))
        m = self.m(h)
        return Out(self.j(h).view(-1, 17, 3), (m[:, :18].view(-1, 6, 3), m[:, 18:].view(-1, 5, 3)))


class FakeHierarchy:
    num_slots = {8: 6, 7: 5}
    levels = {8: Data(edge_index=torch.tensor([[0, 2], [2, 0]]), num_nodes=6),
              7: Data(edge_index=torch.tensor([[1, 0], [0, 1]]), num_nodes=5)}

    def real_slots(self, level):
        return {8: torch.tensor([0, 2, 3, 5]), 7: torch.tensor([1, 0, 4])}[level]


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(34, 51, generator=torch.Generator().manual_seed(99)) * 0.1
    items = []
    for i in range(n):
        x = torch.randn(17, 2, generator=g)
        j = (x.flatten() @ w).view(17, 3)
        j = j - j[:1]
        items.append({"input_2d": x, "joints_3d": j, "meshes": (j[:4] * 0.5, j[4:7] * 0.5),
                      "action": i % 15, "subject": 1})
    return items


def make_cfg(tmp_path, **over):
    cfg = Config()
    sets = [f"EXPERIMENT.output_root={tmp_path / 'exp'}", "EXPERIMENT.device=cpu", "EXPERIMENT.progress=false",
            "TRAIN.batch_size=16", "TRAIN.end_epoch=4", "TRAIN.lr_step=[2]", "TRAIN.lr_factor=0.5",
            "AUG.noise_std=0.01", "TEST.batch_size=32", "EXPERIMENT.seed=3"]
    sets += [f"{k}={v}" for k, v in over.items()]
    return apply_overrides(cfg, sets)


def run(cfg, exp_dir, resume=False):
    seed_everything(cfg.EXPERIMENT.seed)
    h = FakeHierarchy()
    model = TinyNet()
    loss = HGNLoss.from_hierarchy(h, [8, 7])
    bones = [[0, 1], [1, 2]]
    tr = Trainer(cfg, exp_dir, model, loss, make_data(90, 0), make_data(40, 1), hierarchy=h, bones=bones)
    if resume:
        tr.resume()
    return tr, tr.fit()


def test_resume_matches_uninterrupted(tmp_path):
    cfg4 = make_cfg(tmp_path)
    full_dir = make_experiment_dir(cfg4.EXPERIMENT.output_root)
    tr_full, res_full = run(cfg4, full_dir)

    cfg2 = apply_overrides(cfg4, ["TRAIN.end_epoch=2"])
    part_dir = make_experiment_dir(cfg4.EXPERIMENT.output_root)
    assert part_dir != full_dir
    _, res2 = run(cfg2, part_dir)
    assert res2["epoch"] == 1
    torch.manual_seed(12345)  # the resumed process starts from a different global RNG state
    tr_res, res_resumed = run(cfg4, part_dir, resume=True)

    for k in ("MPJPE", "PA-MPJPE", "per_action", "num_samples", "best_MPJPE", "best_epoch", "epoch",
              "MPJPE_action_mean", "MPJPE_batch_mean"):
        assert res_resumed[k] == res_full[k], k
    for k in ("last", "best"):  # the same figures (the checkpoint paths differ: other folders)
        strip = lambda block: None if block is None else {n: v for n, v in block.items() if n != "checkpoint"}
        assert strip(res_resumed[k]) == strip(res_full[k]), k
    for a, b in zip(tr_full.model.state_dict().values(), tr_res.model.state_dict().values()):
        assert torch.equal(a, b)
    rows = list(csv.DictReader(open(part_dir / "graph" / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    full_rows = list(csv.DictReader(open(full_dir / "graph" / "metrics.csv")))
    assert [r["train_loss"] for r in rows] == [r["train_loss"] for r in full_rows]


def test_experiment_folder_contents(tmp_path):
    cfg = make_cfg(tmp_path, **{"TRAIN.end_epoch": 2, "TEST.vis": "true", "TEST.vis_samples": 2})
    exp = make_experiment_dir(cfg.EXPERIMENT.output_root)
    tr, res = run(cfg, exp)
    # best.pth.tar exists only once an epoch after epoch 0 beat every earlier one (published rule);
    # the stand-in model does not improve in 2 epochs
    assert (exp / "checkpoint" / "best.pth.tar").is_file() == (res["best"] is not None)
    for rel in ["checkpoint/last.pth.tar", "graph/metrics.csv", "graph/loss.png",
                "graph/error.png", "results.json", "vis/pose_000.png", "vis/mesh_001_level8.obj",
                "vis/mesh_000_level7_gt.obj"]:
        assert (exp / rel).is_file(), rel
    data = json.loads((exp / "results.json").read_text())
    assert {"MPJPE", "PA-MPJPE", "per_action", "num_samples", "baseline"} <= set(data)
    assert data["num_samples"] == 40 and data["baseline"]["num_samples"] == 40
    assert set(data["per_action"]["Directions"]) >= {"MPJPE", "PA-MPJPE"}
    ck = load_checkpoint(exp / "checkpoint" / "last.pth.tar")
    assert ck["epoch"] == 1 and ck["format"] == "hgn_pyg" and ck["mean_pose"].shape == (17, 3)
    assert {"python", "numpy", "torch", "cuda", "generators"} <= set(ck["rng"])
    assert ck["scheduler"]["last_epoch"] == 2 and ck["config"]["TRAIN"]["end_epoch"] == 2
    obj = (exp / "vis" / "mesh_000_level8.obj").read_text().splitlines()
    assert sum(line.startswith("v ") for line in obj) == 4 and "l 1 2" in obj
    # the lr schedule: x0.5 after 2 epochs (milestone 2), stepped once per epoch
    rows = list(csv.DictReader(open(exp / "graph" / "metrics.csv")))
    assert [float(r["lr"]) for r in rows] == [1e-3, 1e-3]
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_experiment_dir_never_reused(tmp_path):
    dirs = {make_experiment_dir(tmp_path) for _ in range(3)}
    assert len(dirs) == 3 and all(d.name.startswith("exp_") for d in dirs)
