"""HGN's input options: a learned input node map for another keypoint set (COCO-17) and the score
channel, and how the config builds them (engine.build.build_model)."""
import numpy as np
import pytest
import torch

from hgn_pyg.config import Config, apply_overrides
from hgn_pyg.engine.build import build_model
from hgn_pyg.errors import CheckpointError
from hgn_pyg.graphs import mesh_hierarchy, skeleton_graph
from hgn_pyg.models import HGN


def grid_mesh(n=9):
    idx = np.arange(n * n).reshape(n, n)
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = idx[i, j], idx[i, j + 1], idx[i + 1, j], idx[i + 1, j + 1]
            faces += [(a, b, d), (a, d, c)]
    return np.asarray(faces, dtype=np.int64), n * n


@pytest.fixture(scope="module")
def hierarchy():
    faces, nv = grid_mesh()
    return mesh_hierarchy(faces, nv, levels=4)


def test_input_map_is_a_node_mixing_before_the_input_block(hierarchy):
    """With the map set to a permutation, the model equals the plain model on permuted input
    (every other weight shared): exact up to float rounding (1e-6)."""
    torch.manual_seed(0)
    plain = HGN(skeleton_graph("h36m"), hierarchy, mesh_levels=(3, 2), hidden_channels=16).eval()
    mapped = HGN(skeleton_graph("h36m"), hierarchy, mesh_levels=(3, 2), hidden_channels=16,
                 input_nodes=17).eval()
    missing, unexpected = mapped.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["input_map.bias", "input_map.weight"] and not unexpected
    perm = torch.randperm(17, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mapped.input_map.weight.copy_(torch.eye(17)[perm])
        mapped.input_map.bias.zero_()
    x = torch.randn(5, 17, 2)
    with torch.no_grad():
        a, b = mapped(x), plain(x[:, perm])
    torch.testing.assert_close(a.joints, b.joints, rtol=0, atol=1e-6)
    for m1, m2 in zip(a.meshes, b.meshes):
        torch.testing.assert_close(m1, m2, rtol=0, atol=1e-6)
    # a bias shifts every coordinate of a node: the same as shifting the permuted input
    with torch.no_grad():
        mapped.input_map.bias.fill_(0.25)
        torch.testing.assert_close(mapped(x).joints, plain(x[:, perm] + 0.25).joints, rtol=0, atol=1e-6)


def test_input_nodes_other_count_and_errors(hierarchy):
    m = HGN(skeleton_graph("h36m"), hierarchy, mesh_levels=(3, 2), hidden_channels=8, input_nodes=19)
    assert m(torch.randn(2, 19, 2)).joints.shape == (2, 17, 3)
    with pytest.raises(ValueError, match=r"\[B, 19, 2\]"):
        m(torch.randn(2, 17, 2))
    before = m.input_map.weight.detach().clone()
    m.reset_parameters()
    assert not torch.equal(before, m.input_map.weight)
    assert HGN(skeleton_graph("h36m"), hierarchy, mesh_levels=(3, 2), hidden_channels=8).input_map is None
    with pytest.raises(CheckpointError, match="input node map"):
        m.to_official_state_dict()  # the published format cannot hold it: never dropped silently


def test_config_builds_the_input_options(hierarchy):
    cfg = apply_overrides(Config(), ["MODEL.mesh_levels=[3,2]", "MODEL.hierarchy_levels=4",
                                     "MODEL.hidden_channels=8", "MODEL.in_channels=3",
                                     "DATASET.input_joint_set=coco"])
    model = build_model(cfg, hierarchy)
    assert model.in_channels == 3 and model.input_nodes == 17 and model.input_map is not None
    assert model(torch.randn(2, 17, 3)).joints.shape == (2, 17, 3)
    plain = build_model(apply_overrides(cfg, ["DATASET.input_joint_set=human36", "MODEL.in_channels=2"]),
                        hierarchy)
    assert plain.input_map is None and plain.in_channels == 2


def test_self_describing_checkpoint_restores_input_map_and_score_channel(hierarchy, tmp_path):
    """A COCO-input, score-channel model saved with its inference record loads from the file alone
    with the same outputs (exact: the same weights)."""
    from hgn_pyg.engine.build import model_section
    from hgn_pyg.models import load_model
    from hgn_pyg.models.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, inference_record

    cfg = apply_overrides(Config(), ["MODEL.mesh_levels=[3,2]", "MODEL.hierarchy_levels=4",
                                     "MODEL.hidden_channels=8", "MODEL.in_channels=3",
                                     "DATASET.input_joint_set=coco"])
    model = build_model(cfg, hierarchy).eval()
    record = inference_record(model_section(cfg), hierarchy, input_format="coco")
    assert record["input_nodes"] == 17 and record["input"]["keypoint_format"] == "coco"
    assert record["input"]["channels"] == ["u", "v", "score"]
    ckpt = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": model.state_dict(),
            "config": cfg.to_dict(), **record}
    torch.save(ckpt, tmp_path / "coco.pt")
    loaded, info = load_model(str(tmp_path / "coco.pt"))
    assert loaded.input_map is not None and loaded.in_channels == 3
    assert info.input["keypoint_format"] == "coco"
    x = torch.randn(3, 17, 3)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).joints, model(x).joints, rtol=0, atol=0)
    plain = inference_record(model_section(apply_overrides(cfg, ["DATASET.input_joint_set=human36"])), hierarchy)
    assert "input_nodes" not in plain and plain["input"]["keypoint_format"] == "h36m"


def test_lifter_feeds_a_coco_input_model_unmapped_coco(hierarchy, tmp_path):
    """A model trained on COCO-17 input gets COCO keypoints as they are (filled on the COCO tree),
    not the hand mapping; H36M keypoints are refused instead of being fed in the wrong order."""
    from hgn_pyg.data.keypoints import apply_missing_policy
    from hgn_pyg.engine.build import model_section
    from hgn_pyg.inference.lifter import Lifter
    from hgn_pyg.errors import DataError
    from hgn_pyg.models.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, inference_record

    cfg = apply_overrides(Config(), ["MODEL.mesh_levels=[3,2]", "MODEL.hierarchy_levels=4",
                                     "MODEL.hidden_channels=8", "DATASET.input_joint_set=coco"])
    model = build_model(cfg, hierarchy).eval()
    ckpt = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": model.state_dict(),
            "config": cfg.to_dict(), **inference_record(model_section(cfg), hierarchy, input_format="coco")}
    torch.save(ckpt, tmp_path / "coco.pt")
    lifter = Lifter.from_checkpoint(tmp_path / "coco.pt", device="cpu")
    kp = np.random.default_rng(0).uniform(-0.5, 0.5, (4, 17, 2))
    kp[1, 9] = np.nan  # a missing left wrist
    out = lifter(kp, normalized=True, keypoint_format="coco")
    filled, _ = apply_missing_policy(kp, None, joint_set="coco17")
    with torch.no_grad():
        ref = model(torch.as_tensor(filled, dtype=torch.float32)).joints
    np.testing.assert_allclose(out, (ref - ref[:, :1]).numpy(), atol=1e-6)
    with pytest.raises(DataError, match="reads coco keypoints"):
        lifter(kp, normalized=True, keypoint_format="h36m")
