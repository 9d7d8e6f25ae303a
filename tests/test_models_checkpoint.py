"""Self-describing checkpoints and the one checkpoint reader.

Graphs: an icosphere (642 vertices) coarsened 6 times, mesh levels (5, 4). No body model and no data
set is touched: the loading tests run with nothing but the checkpoint file.
Tolerance: a model loaded from a checkpoint reproduces the saved model's eval outputs exactly
(same float32 operations, ``torch.equal``).
"""
import io
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from hgn_pyg.engine.training_state import check_training_fields, load_checkpoint
from hgn_pyg.errors import CheckpointError
from hgn_pyg.graphs import mesh_hierarchy
from hgn_pyg.models import HGN
from hgn_pyg.models import build_hgn, hgn_options, load_model
from hgn_pyg.models.checkpoint import CHECKPOINT_VERSION, inference_record
from hgn_pyg.models.checkpoint_io import load_checkpoint_file, read_checkpoint

from test_models_hgn import icosphere, randomize_  # the shared test mesh and weights

SECTION = {"name": "HGN", "hidden_channels": 16, "num_layers": 4, "mesh_levels": [5, 4], "hierarchy_levels": 6,
           "fusion": "official", "dropout": None, "mode": "auto", "isolated": "uniform", "weight_path": ""}


@pytest.fixture(scope="module")
def mesh():
    verts, faces = icosphere(3)
    return faces, mesh_hierarchy(faces, len(verts), levels=6)


def _randomised(model, seed=0):
    return randomize_(model, seed).eval()


def _save(tmp_path, ckpt, name="model.pt"):
    p = tmp_path / name
    torch.save(ckpt, p)
    return p


def test_coarsen_faces(mesh):
    faces, h = mesh
    assert torch.equal(h.coarsen_faces(faces, 0), torch.from_numpy(faces))
    for lv in (1, 4, 5):
        f = h.coarsen_faces(faces, lv).numpy()
        assert f.dtype == np.int64 and f.shape[1] == 3 and len(f)
        assert (f.min() >= 0) and f.max() < h.num_real[lv]
        assert (f[:, 0] != f[:, 1]).all() and (f[:, 1] != f[:, 2]).all() and (f[:, 0] != f[:, 2]).all()
        assert len(np.unique(np.sort(f, 1), axis=0)) == len(f)
        # independent check: every triangle side is an edge of the coarsened graph (its adjacency)
        adj = h.adjacencies[lv].tocsr()
        for a, b in np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]):
            assert adj[a, b] != 0
        # and it is the image of the level-0 triangles under the cluster maps
        cl = np.arange(h.num_real[0])
        for i in range(lv):
            cl = h.clusters[i].numpy()[cl]
        img = {tuple(sorted(t)) for t in cl[faces] if len(set(t)) == 3}
        assert {tuple(sorted(t)) for t in f} == img


@pytest.fixture
def no_body_model(monkeypatch):
    """Any attempt to find or read a body model fails the test."""
    import hgn_pyg.data.body_model as bm

    def refuse(*args, **kwargs):
        raise AssertionError("a body model was looked for")

    monkeypatch.setattr(bm, "default_body_model_path", refuse)
    monkeypatch.setattr(bm, "load_body_model", refuse)


@pytest.mark.parametrize("fusion", ["official", "pool"])
def test_from_checkpoint_alone(mesh, tmp_path, fusion, no_body_model):
    faces, h = mesh
    section = dict(SECTION, fusion=fusion)
    reg = torch.rand(17, h.num_real[0], generator=torch.Generator().manual_seed(1))
    reg = reg / reg.sum(1, keepdim=True)
    model = _randomised(build_hgn(section, h, joint_regressor=reg if fusion == "pool" else None))
    ckpt = {"format": "hgn_pyg", "version": CHECKPOINT_VERSION, "model": model.state_dict(),
            "config": {"MODEL": section}, **inference_record(section, h, faces=faces, joint_regressor=reg)}
    path = _save(tmp_path, ckpt)
    loaded = HGN.from_checkpoint(path)
    assert not loaded.training and loaded.fusion == fusion and loaded.mesh_levels == (5, 4)
    x = torch.randn(3, 17, 2)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a.joints, b.joints) and all(torch.equal(p, q) for p, q in zip(a.meshes, b.meshes))
    _, info = load_model(path)
    assert info.joint_set == "h36m" and info.input["normalization"] == "uv / W * 2 - [1, H / W]"
    assert info.output == {"units": "m", "frame": "camera", "root_relative": True, "root": 0}
    assert set(info.mesh_faces) == {5, 4} and torch.equal(info.mesh_faces[4], h.coarsen_faces(faces, 4))


def test_version1_and_published_layouts(mesh, tmp_path):
    faces, h = mesh
    model = _randomised(build_hgn(SECTION, h))
    old = _save(tmp_path, {"format": "hgn_pyg", "version": 1, "epoch": 3, "config": {"MODEL": SECTION},
                           "model": {"module." + k: v for k, v in model.state_dict().items()}}, "v1.pt")
    with pytest.raises(CheckpointError, match="before checkpoints carried their graphs"):
        HGN.from_checkpoint(old)
    x = torch.randn(2, 17, 2)
    with torch.no_grad():
        assert torch.equal(HGN.from_checkpoint(old, hierarchy=h)(x).joints, model(x).joints)
    pub = _save(tmp_path, {"epoch": np.int64(7), "model_state_dict": {
        "module." + k: v for k, v in model.to_official_state_dict().items()}}, "final.pth.tar")
    with pytest.raises(CheckpointError, match="carries no graphs"):
        HGN.from_checkpoint(pub)
    loaded, info = load_model(pub, hierarchy=h, model_section={"mesh_levels": [5, 4]})
    assert info.layout == "published"
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x).joints.numpy(), model(x).joints.numpy(), atol=1e-5)


def _numpy1_pickle(tmp_path, obj):
    """A torch.save file whose NumPy scalars name ``numpy.core.multiarray`` as NumPy 1.x writes."""
    p = tmp_path / "np1.pth.tar"
    torch.save(obj, p)
    buf = io.BytesIO()
    with zipfile.ZipFile(p) as zin, zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in data or b"numpy.core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            zout.writestr(item, data)
    p.write_bytes(buf.getvalue())
    return p


def test_reader_published_scalars_and_prefix(tmp_path):
    sd = {"module.gconv_input.0.gconv.W": torch.ones(2, 2, 4), "module.gconv_output.W": torch.ones(2, 4, 3)}
    p = _numpy1_pickle(tmp_path, {"epoch": np.int64(150), "error": np.float64(37.5), "model_state_dict": sd})
    ck = load_checkpoint_file(p)
    assert int(ck["epoch"]) == 150 and float(ck["error"]) == 37.5
    assert list(read_checkpoint(p)) == ["gconv_input.0.gconv.W", "gconv_output.W"]
    with pytest.raises(CheckpointError, match="with and without"):
        read_checkpoint({"module.a": torch.ones(1), "a": torch.ones(1)})


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_reader_refuses_bad_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint") as e:
        load_checkpoint(text)
    assert "weights_only" not in str(e.value)
    z = tmp_path / "other.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "x")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_checkpoint(z)
    good = _save(tmp_path, {"model": {"w": torch.ones(1000)}}, "good.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:1500])
    with pytest.raises(CheckpointError, match="truncated or corrupt|not a PyTorch"):
        load_checkpoint(cut)
    marker = tmp_path / "pwned"
    evil = _Evil()
    evil.marker = marker
    bad = tmp_path / "evil.pt"
    with open(bad, "wb") as fh:  # a legacy (non-zip) pickle
        pickle.dump({"model": evil}, fh, protocol=2)
    with pytest.raises(CheckpointError, match="refused to load .*system"):
        load_checkpoint(bad)
    torch.save({"model": evil}, tmp_path / "evil_zip.pt")
    with pytest.raises(CheckpointError, match="refused to load .*system"):
        load_checkpoint(tmp_path / "evil_zip.pt")
    assert not marker.exists()
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(tmp_path / "list.pt")


@pytest.mark.parametrize("key,value,msg", [
    ("epoch", "3", "'epoch' must be an integer"),
    ("epoch", 2.5, "'epoch' must be an integer"),
    ("best_metric", float("nan"), "'best_metric' must be a number"),
    ("best_metric", "low", "'best_metric' must be a number"),
    ("history", {"a": 1}, "'history' must be a list"),
    ("history", [1, 2], "'history' must be a list"),
    ("mean_pose", torch.zeros(17), r"'mean_pose' must be a finite float tensor \[J, 3\]"),
    ("mean_pose", torch.full((17, 3), float("nan")), "'mean_pose' must be"),
    ("optimizer", [], "'optimizer' must be a dict"),
])
def test_training_fields_checked(key, value, msg):
    state = {"epoch": 1, "best_metric": 50.0, "best_epoch": 1, "history": [{"epoch": 1}],
             "mean_pose": torch.zeros(17, 3), "optimizer": {}}
    check_training_fields(state, "ck.pth")
    with pytest.raises(CheckpointError, match=msg):
        check_training_fields(dict(state, **{key: value}), "ck.pth")


def test_model_fields_checked(mesh, tmp_path):
    faces, h = mesh
    model = build_hgn(SECTION, h)
    base = {"format": "hgn_pyg", "version": 2, "model": model.state_dict(), "config": {"MODEL": SECTION},
            **inference_record(SECTION, h, faces=faces)}
    for key, value, msg in [("mesh_faces", {5: torch.zeros(3, 3)}, "mesh_faces"),
                            ("joint_set", "mpii", "unknown skeleton"),
                            ("config", {"MODEL": [1]}, "'config' must be"),
                            ("config", {"MODEL": dict(SECTION, hidden_channels=8)}, "does not fit|shape"),
                            ("hierarchy", {"format": "x"}, "GraphHierarchy")]:
        p = _save(tmp_path, dict(base, **{key: value}), f"bad_{key}.pt")
        with pytest.raises(CheckpointError, match=msg):
            HGN.from_checkpoint(p)


def test_hgn_options_from_config_dataclass():
    from hgn_pyg.config import ModelConfig

    opts = hgn_options(ModelConfig())
    assert opts["mesh_levels"] == (8, 7) and "weight_path" not in opts and "name" not in opts
