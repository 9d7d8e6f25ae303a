"""What the trainer and the evaluator feed the model: the AUG pipeline (keypoint dropout, detector
noise), the score channel (MODEL.in_channels: 3), and the config keys that switch them."""
from typing import NamedTuple, Tuple

import pytest
import torch
from torch import nn

from hgn_pyg.config import Config, apply_overrides
from hgn_pyg.data.pose_dataset import PoseDataset
from hgn_pyg.engine.evaluator import evaluate, make_loader
from hgn_pyg.engine.losses import HGNLoss
from hgn_pyg.engine.trainer import Trainer, make_experiment_dir
from hgn_pyg.errors import ConfigError
from test_engine_trainer import FakeHierarchy


class Out(NamedTuple):
    joints: torch.Tensor
    meshes: Tuple[torch.Tensor, torch.Tensor]


class Recorder(nn.Module):
    """A linear stand-in model that keeps every input it is given."""

    def __init__(self, in_channels=2):
        super().__init__()
        self.in_channels = in_channels
        self.lin = nn.Linear(17 * in_channels, 51 + 33)
        self.seen = {True: [], False: []}

    def forward(self, x):
        self.seen[self.training].append(x.detach().clone())
        h = self.lin(x.flatten(1))
        m = h[:, 51:]
        return Out(h[:, :51].view(-1, 17, 3), (m[:, :18].view(-1, 6, 3), m[:, 18:].view(-1, 5, 3)))


def dataset(n, seed, score=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 17, 2, generator=g)
    j = torch.randn(n, 17, 3, generator=g) * 0.1
    t = {"input_2d": x, "joints_3d": j - j[:, :1], "action": torch.arange(n) % 15,
         "subject": torch.ones(n, dtype=torch.long)}
    if score:
        t["score_2d"] = torch.rand(n, 17, generator=g)
    return PoseDataset(t)


def trainer(tmp_path, model, train, test, sets):
    cfg = apply_overrides(Config(), [f"EXPERIMENT.output_root={tmp_path / 'exp'}", "EXPERIMENT.device=cpu",
                                     "EXPERIMENT.progress=false", "TRAIN.end_epoch=1", "TRAIN.shuffle=false",
                                     f"TRAIN.batch_size={len(train)}", "TEST.batch_size=64"] + sets)
    exp = make_experiment_dir(cfg.EXPERIMENT.output_root)
    h = FakeHierarchy()
    return Trainer(cfg, exp, model, HGNLoss.from_hierarchy(h, [8, 7]), train, test, hierarchy=h, bones=[])


def test_keypoint_dropout_reaches_the_model_filled(tmp_path):
    train = dataset(400, 0)
    model = Recorder()
    tr = trainer(tmp_path, model, train, dataset(20, 1), ["AUG.keypoint_dropout=1.0", "AUG.max_dropped=3"])
    tr.fit()
    x = model.seen[True][0]
    clean = train.tensors()["input_2d"]
    assert x.shape == clean.shape and torch.isfinite(x).all()
    changed = (x != clean).any(-1)
    assert changed.sum(1).min().item() >= 1 and changed.sum(1).max().item() == 3
    # a dropped joint (other than the root) sits on its parent's (clean or filled) position
    from hgn_pyg.graphs.skeleton import H36M
    b, j = [int(v) for v in torch.nonzero(changed[:, 1:])[0]]
    j += 1
    assert torch.equal(x[b, j], x[b, H36M.parents[j]])
    # evaluation input is the test data untouched
    assert torch.equal(model.seen[False][0], dataset(20, 1).tensors()["input_2d"])


def test_score_channel_in_training_and_evaluation(tmp_path):
    model = Recorder(in_channels=3)
    tr = trainer(tmp_path, model, dataset(300, 0), dataset(20, 1, score=True),
                 ["MODEL.in_channels=3", "AUG.detector_noise=0.25", "AUG.missing_prob=0.2"])
    tr.fit()
    x = model.seen[True][0]
    assert x.shape == (300, 17, 3) and torch.isfinite(x).all()
    score = x[..., 2]
    assert (score >= 0).all() and (score <= 1).all()
    assert (score == 0).double().mean().item() == pytest.approx(0.2, abs=0.04)  # the missing joints
    # the evaluator passes the data set's scores as the third channel
    ev = model.seen[False][0]
    assert torch.equal(ev[..., 2], dataset(20, 1, score=True).tensors()["score_2d"])
    # without scores in the data every keypoint counts as certain
    model.seen[False].clear()
    evaluate(model, make_loader(dataset(10, 2), 10), torch.device("cpu"))
    assert torch.equal(model.seen[False][0][..., 2], torch.ones(10, 17))


@pytest.mark.parametrize("override, match", [
    ("MODEL.in_channels=4", "MODEL.in_channels"),
    ("AUG.outlier_prob=1.5", "AUG.outlier_prob"),
    ("AUG.keypoint_dropout=-0.1", "AUG.keypoint_dropout"),
    ("AUG.max_dropped=18", "AUG.max_dropped"),
    ("AUG.detector_noise=-1", "AUG.detector_noise"),
    ("DATASET.input_joint_set=mpii", "DATASET.input_joint_set"),
])
def test_config_rejects_bad_values(override, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(Config(), [override])


def test_config_combinations():
    with pytest.raises(ConfigError, match="DATASET.format"):
        apply_overrides(Config(), ["DATASET.format=videopose3d", "DATASET.input_joint_set=coco"])
    with pytest.raises(ConfigError, match="use_gt_input"):
        apply_overrides(Config(), ["DATASET.use_gt_input=false", "DATASET.input_joint_set=coco"])
    cfg = apply_overrides(Config(), ["DATASET.use_gt_input=false", "DATASET.npz_2d=cpn.npz"])
    assert cfg.DATASET.use_gt_input is False and cfg.DATASET.npz_2d == "cpn.npz"


DETECTOR_AUG = {"AUG.detector_noise": 0.25, "AUG.outlier_prob": 0.05, "AUG.swap_prob": 0.05,
                "AUG.missing_prob": 0.05, "AUG.keypoint_dropout": 0.5}


@pytest.mark.parametrize("aug", [DETECTOR_AUG, {**DETECTOR_AUG, "AUG.pose_prob": 0.7, "AUG.view_prob": 0.6}],
                         ids=["detector", "detector+pose/view"])
def test_resume_is_exact_with_detector_augmentation(tmp_path, aug):
    """The corruption (and pose/view) draws come from the checkpointed augmentation generator:
    2 + 2 epochs end exactly like 4."""
    from test_engine_trainer import make_cfg, run

    cfg4 = make_cfg(tmp_path, **aug)
    full_dir = make_experiment_dir(cfg4.EXPERIMENT.output_root)
    tr_full, res_full = run(cfg4, full_dir)
    part_dir = make_experiment_dir(cfg4.EXPERIMENT.output_root)
    run(apply_overrides(cfg4, ["TRAIN.end_epoch=2"]), part_dir)
    torch.manual_seed(12345)
    tr_res, res_resumed = run(cfg4, part_dir, resume=True)
    assert res_resumed["MPJPE"] == res_full["MPJPE"]
    for a, b in zip(tr_full.model.state_dict().values(), tr_res.model.state_dict().values()):
        assert torch.equal(a, b)
    # and the augmentation did change the training (not a no-op)
    _, res_clean = run(make_cfg(tmp_path), make_experiment_dir(cfg4.EXPERIMENT.output_root))
    assert res_clean["MPJPE"] != res_full["MPJPE"]


def test_evaluation_with_symmetric_bones_scores_the_symmetrised_poses():
    """``TEST.symmetric_bones``: the evaluator scores the network's root-relative output after
    left/right bone equalisation. Reference: the same poses symmetrised in NumPy from bone
    lengths written out by hand, MPJPE in NumPy (tolerance 1e-3 mm: float32 model output)."""
    import numpy as np

    torch.manual_seed(0)
    model = Recorder().eval()
    data = dataset(12, 3)
    plain = evaluate(model, make_loader(data, 5), torch.device("cpu"))
    sym = evaluate(model, make_loader(data, 5), torch.device("cpu"), symmetric_bones=True)
    with torch.no_grad():
        pred = model(data.tensors()["input_2d"]).joints.double().numpy()
    pred = pred - pred[:, :1]
    parent = {1: 0, 2: 1, 3: 2, 4: 0, 5: 4, 6: 5, 7: 0, 8: 7, 9: 8, 10: 9, 11: 8, 12: 11, 13: 12,
              14: 8, 15: 14, 16: 15}
    pairs = [(1, 4), (2, 5), (3, 6), (14, 11), (15, 12), (16, 13)]
    length = {c: np.linalg.norm(pred[:, c] - pred[:, p], axis=-1) for c, p in parent.items()}
    target = dict(length)
    for a, b in pairs:
        target[a] = target[b] = 0.5 * (length[a] + length[b])
    ref = np.zeros_like(pred)
    for c in range(1, 17):  # parents come first in H36M order
        p = parent[c]
        ref[:, c] = ref[:, p] + (pred[:, c] - pred[:, p]) * (target[c] / length[c])[:, None]
    gt = data.tensors()["joints_3d"].double().numpy()
    want = np.linalg.norm(ref - gt, axis=-1).mean() * 1000
    assert abs(sym["MPJPE"] - want) < 1e-3
    assert abs(plain["MPJPE"] - want) > 0.1  # the random model is lopsided: the option acts


def test_evaluation_with_flip_test_scores_the_flip_averaged_poses():
    """``TEST.flip_test`` (``flip_pairs``): the evaluator scores the mean of the model's output and
    the mirrored output for the mirrored input. Reference in NumPy: the input mirrored by hand
    (``x -> -x``, Human3.6M's left/right joints swapped by index), the mean, MPJPE (tolerance
    1e-3 mm: float32 model output); :func:`build.test_options` gives the pairs of a configuration."""
    import numpy as np

    from hgn_pyg.engine.build import test_options
    from hgn_pyg.graphs.skeleton import H36M

    torch.manual_seed(0)
    model = Recorder().eval()
    data = dataset(12, 3)
    pairs = (H36M.flip_pairs, H36M.flip_pairs)
    flip = evaluate(model, make_loader(data, 5), torch.device("cpu"), flip_pairs=pairs)
    swap = [0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13]
    x = data.tensors()["input_2d"].double().numpy()
    xm = x[:, swap].copy()
    xm[..., 0] *= -1
    with torch.no_grad():
        a = model(torch.from_numpy(x).float()).joints.double().numpy()
        b = model(torch.from_numpy(xm).float()).joints.double().numpy()[:, swap]
    b[..., 0] *= -1
    pred = (a + b) / 2
    pred = pred - pred[:, :1]
    gt = data.tensors()["joints_3d"].double().numpy()
    want = np.linalg.norm(pred - gt, axis=-1).mean() * 1000
    assert abs(flip["MPJPE"] - want) < 1e-3
    plain = evaluate(model, make_loader(data, 5), torch.device("cpu"))
    assert abs(plain["MPJPE"] - want) > 0.1  # the linear model is not mirror-equivariant: the option acts
    cfg = apply_overrides(Config(), ["TEST.flip_test=true", "TEST.symmetric_bones=true"])
    assert test_options(cfg) == {"symmetric_bones": True, "flip_pairs": pairs}
    assert test_options(Config()) == {"symmetric_bones": False, "flip_pairs": None}
