"""Human36M (Pose2Mesh layout) on small generated fixtures: geometry, split, targets, meshes."""
import json
import time

import numpy as np
import pytest
import torch

from hgn_pyg.data import mesh_targets as mesh_mod
from hgn_pyg.data.human36m import ACTIONS, DEFAULT_SKIP, Human36M, camera_meshes, camera_root_pose
from hgn_pyg.engine.build import collate, train_mean_pose
from hgn_pyg.engine.evaluator import make_loader
from hgn_pyg.errors import DataError

from test_data_fixtures import (FRAMES, HEIGHT, SUBJECTS, WIDTH, TinyBody, expected_samples,
                                grid_mesh, rodrigues, write_h36m)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_h36m(tmp_path_factory.mktemp("h36m"))


def _by_frame(ds):
    info = ds.tensors()["frame_info"].tolist()
    return {tuple(r): k for k, r in enumerate(info)}


@pytest.mark.parametrize("subsample", [1, 5])
def test_projection_normalisation_targets_match_numpy(root, tmp_path, subsample):
    ds = Human36M(root, split="train", subjects=SUBJECTS, subsample=subsample,
                  cache_dir=tmp_path)
    rows = expected_samples(root, SUBJECTS, subsample, set(DEFAULT_SKIP))
    assert len(ds) == len(rows) > 0
    index = _by_frame(ds)
    for inp, tgt, action, subject, info in rows:
        item = ds[index[info]]
        assert item["input_2d"].shape == (17, 2) and item["input_2d"].dtype == torch.float32
        assert item["joints_3d"].shape == (17, 3)
        np.testing.assert_allclose(item["input_2d"].numpy(), inp, atol=2e-6)
        np.testing.assert_allclose(item["joints_3d"].numpy(), tgt, atol=2e-6)
        assert item["action"] == action and item["subject"] == subject
        assert "meshes" not in item
    # pelvis-relative, metres (fixture joints are a few hundred mm from the pelvis)
    j = ds.tensors()["joints_3d"]
    assert torch.all(j[:, 0] == 0)
    assert 0.05 < j.abs().max() < 3.0


def test_normalisation_formula_and_pixels_roundtrip(root, tmp_path):
    ds = Human36M(root, split="train", subjects=[1], subsample=1, cache_dir=tmp_path)
    t = ds.tensors()
    w, h = t["image_size"][:, 0:1], t["image_size"][:, 1:2]
    assert torch.all(w == WIDTH) and torch.all(h == HEIGHT)
    # un-normalise and re-project the camera-frame joints
    uv = (t["input_2d"].double() + torch.cat([torch.ones_like(w), h / w], 1)[:, None].double()) \
        * w[:, None].double() / 2
    X = t["joints_3d"].double() + t["root_3d"].double()[:, None]
    proj = X[..., :2] / X[..., 2:] * t["focal"].double()[:, None] + t["center"].double()[:, None]
    torch.testing.assert_close(uv, proj, atol=5e-3, rtol=0)   # float32 storage, pixels


def test_split_subsample_skip_and_filters(root, tmp_path):
    full = Human36M(root, split="test", subjects=[9], subsample=1, cache_dir=tmp_path, skip=())
    skipped = Human36M(root, split="test", subjects=[9], subsample=1, cache_dir=tmp_path)
    info_full = full.tensors()["frame_info"]
    info = skipped.tensors()["frame_info"]
    seq = {(int(r[1]), int(r[2])) for r in info}
    assert (5, 2) not in seq and (10, 2) not in seq and (13, 1) not in seq
    assert (5, 1) in seq and (10, 1) in seq and (13, 2) in seq
    assert {(5, 2), (10, 2), (13, 1)} <= {(int(r[1]), int(r[2])) for r in info_full}
    # frames without SMPL (action 2, sub 2, frame 10) and with an empty box (2, 1, 3) dropped
    rows = {tuple(r[1:4].tolist()) for r in info_full}
    assert (2, 2, 10) not in rows and (2, 1, 3) not in rows and (2, 2, 9) in rows
    # joints_only keeps the frame without SMPL parameters
    jo = Human36M(root, split="test", subjects=[9], subsample=1, cache_dir=tmp_path, skip=(),
                  joints_only=True)
    assert (2, 2, 10) in {tuple(r[1:4].tolist()) for r in jo.tensors()["frame_info"]}
    assert len(jo) == len(full) + 4
    # default subsampling: 5 train / 50 test
    tr = Human36M(root, split="train", subjects=[1], cache_dir=tmp_path)
    assert tr.subsample == 5 and set(tr.tensors()["frame_info"][:, 3].tolist()) == {0, 5, 10}
    te = Human36M(root, split="test", subjects=[9], cache_dir=tmp_path)
    assert te.subsample == 50 and set(te.tensors()["frame_info"][:, 3].tolist()) == {0}
    # default subjects per protocol
    from hgn_pyg.data.human36m import PROTOCOL_SUBJECTS
    assert PROTOCOL_SUBJECTS[2] == {"train": (1, 5, 6, 7, 8), "test": (9, 11)}


def test_action_labels_and_names(root, tmp_path):
    ds = Human36M(root, split="train", subjects=[1], subsample=1, cache_dir=tmp_path)
    t = ds.tensors()
    assert torch.equal(t["action"], t["frame_info"][:, 1] - 2)
    assert len(ACTIONS) == 15 and ACTIONS[0] == "Directions" and ACTIONS[10] == "Photo"
    assert ACTIONS[14] == "WalkTogether"
    counts = ds.action_counts()
    assert counts["Directions"] > 0 and counts["Greeting"] > 0 and counts["Walking"] == 0


def test_batch_paths_and_mean_pose(root, tmp_path):
    ds = Human36M(root, split="train", subjects=SUBJECTS, subsample=1, cache_dir=tmp_path)
    idx = [3, 0, 7]
    b = ds[idx]
    assert b["input_2d"].shape == (3, 17, 2) and b["action"].dtype == torch.long
    items = ds.__getitems__(idx)
    coll = collate(items)  # the one collate (engine.build), over the per-item path
    for k in ("input_2d", "joints_3d", "action", "subject"):
        assert torch.equal(getattr(coll, k), b[k])
        assert torch.equal(torch.utils.data.default_collate(items)[k], b[k])
    # DataLoader: default batching (uses __getitems__) and the engine's loader agree
    dl = torch.utils.data.DataLoader(ds, batch_size=16)
    for x, y in zip(dl, make_loader(ds, batch_size=16)):
        assert torch.equal(x["joints_3d"], y.joints_3d) and torch.equal(x["action"], y.action)
    mp = train_mean_pose(ds)
    assert mp.shape == (17, 3)
    j = ds.tensors()["joints_3d"].double()
    torch.testing.assert_close(mp, (j - j[:, :1]).mean(0).float(), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------
# mesh targets
# ------------------------------------------------------------------------------------------------
def test_camera_on_root_identity_tiny_body():
    """SMPL(θ with root R·root, β) + (R·trans + t − J0 + R·J0) == R·(SMPL(θ, β) + trans) + t."""
    rng = np.random.default_rng(1)
    body = TinyBody(40)
    n = 6
    pose = rng.normal(0, 0.5, size=(n, 72))
    shape = rng.uniform(-1, 1, size=(n, 10))
    trans = rng.uniform(-1, 1, size=(n, 3))
    R = rodrigues(rng.normal(0, 1.5, size=(n, 3)))
    t_mm = rng.uniform(-3000, 3000, size=(n, 3))
    got = camera_meshes(body, pose, shape, trans, R, t_mm).numpy()
    world, _ = body._forward_np(pose, shape, trans)
    want = np.einsum("nij,nvj->nvi", R, world) + t_mm[:, None] / 1000.0
    np.testing.assert_allclose(got, want, atol=2e-5)
    # the root rotation is composed, not replaced
    np.testing.assert_allclose(rodrigues(camera_root_pose(pose, R)[:, :3]),
                               R @ rodrigues(pose[:, :3]), atol=1e-10)


def test_shape_limit_zeroes_beta():
    body = TinyBody(20)
    pose = np.zeros((2, 72))
    shape = np.zeros((2, 10))
    shape[0, 2] = 3.5
    shape[1, 2] = 2.5
    R = np.stack([np.eye(3)] * 2)
    got = camera_meshes(body, pose, shape, np.zeros((2, 3)), R, np.zeros((2, 3))).numpy()
    want0, _ = body._forward_np(pose[:1], np.zeros((1, 10)))
    want1, _ = body._forward_np(pose[1:], shape[1:])
    np.testing.assert_allclose(got[0], want0[0], atol=2e-6)
    np.testing.assert_allclose(got[1], want1[0], atol=2e-6)


@pytest.fixture(scope="module")
def tiny_hierarchy():
    from hgn_pyg.graphs.hierarchy import mesh_hierarchy
    faces, nv = grid_mesh(8)
    return mesh_hierarchy(faces, nv, levels=3)


def test_mesh_targets_with_tiny_body(root, tmp_path, monkeypatch, tiny_hierarchy):
    body = TinyBody(tiny_hierarchy.num_real[0])
    monkeypatch.setattr(mesh_mod, "_load_body_model", lambda path: body)
    bm = tmp_path / "tiny_body.pkl"
    bm.write_bytes(b"stand-in body model file")
    ds = Human36M(root, split="train", subjects=[9], subsample=5, hierarchy=tiny_hierarchy,
                  mesh_levels=(2, 1), body_model_path=bm, cache_dir=tmp_path, smpl_batch_size=7)
    assert ds.has_meshes and ds.mesh_levels == (2, 1)
    item = ds[0]
    assert [m.shape for m in item["meshes"]] == [(tiny_hierarchy.num_real[2], 3),
                                                 (tiny_hierarchy.num_real[1], 3)]
    # independent computation for every sample
    smpl = json.loads((root / "annotations/Human36M_subject9_smpl_param.json").read_text())
    cams = json.loads((root / "annotations/Human36M_subject9_camera.json").read_text())
    j3d = json.loads((root / "annotations/Human36M_subject9_joint_3d.json").read_text())
    P = [tiny_hierarchy.pool_matrix(i, dense=True, dtype=torch.float64).numpy() for i in range(2)]
    info = ds.tensors()["frame_info"].tolist()
    saw_big_beta = False
    for k, (s, a, sa, f, c) in enumerate(info):
        p = smpl[str(a)][str(sa)][str(f)]
        shape = np.array(p["shape"])
        if np.abs(shape).max() > 3:
            shape[:] = 0
            saw_big_beta = True
        world, _ = body._forward_np(np.array([p["pose"]]), shape[None], np.array([p["trans"]]))
        R, t = np.array(cams[str(c)]["R"]), np.array(cams[str(c)]["t"])
        mesh = world[0] @ R.T + t / 1000.0
        pelvis = (np.array(j3d[str(a)][str(sa)][str(f)][0]) @ R.T + t) / 1000.0
        rel = mesh - pelvis
        lvl1 = P[0].T @ rel
        lvl2 = P[1].T @ lvl1
        np.testing.assert_allclose(ds[k]["meshes"][1].numpy(), lvl1, atol=3e-5)
        np.testing.assert_allclose(ds[k]["meshes"][0].numpy(), lvl2, atol=3e-5)
    assert saw_big_beta  # frame 0 of (5, 1) has |β| > 3
    # second construction hits the cache and gives identical tensors
    ds2 = Human36M(root, split="train", subjects=[9], subsample=5, hierarchy=tiny_hierarchy,
                   mesh_levels=(2, 1), body_model_path=bm, cache_dir=tmp_path)
    assert ds2.cache_hit
    for a, b in zip(ds.tensors().values(), ds2.tensors().values()):
        assert torch.equal(a, b)
    # a changed body model file invalidates the cache
    bm.write_bytes(b"another stand-in body model file")
    ds3 = Human36M(root, split="train", subjects=[9], subsample=5, hierarchy=tiny_hierarchy,
                   mesh_levels=(2, 1), body_model_path=bm, cache_dir=tmp_path)
    assert not ds3.cache_hit
    # other levels: another cache entry
    ds4 = Human36M(root, split="train", subjects=[9], subsample=5, hierarchy=tiny_hierarchy,
                   mesh_levels=(3,), body_model_path=bm, cache_dir=tmp_path)
    assert not ds4.cache_hit and ds4[0]["meshes"][0].shape == (tiny_hierarchy.num_real[3], 3)
    default = torch.utils.data.default_collate([ds4[0], ds4[1]])
    assert default["meshes"][0].shape == (2, tiny_hierarchy.num_real[3], 3)


def test_vertex_count_mismatch_is_a_data_error(root, tmp_path, monkeypatch, tiny_hierarchy):
    monkeypatch.setattr(mesh_mod, "_load_body_model", lambda path: TinyBody(10))
    bm = tmp_path / "b.pkl"
    bm.write_bytes(b"x")
    with pytest.raises(DataError, match="vertices"):
        Human36M(root, split="test", subjects=[9], hierarchy=tiny_hierarchy, mesh_levels=(1,),
                 body_model_path=bm, cache_dir=tmp_path)


def _real_body_model():
    from hgn_pyg.data.body_model import default_body_model_path, load_body_model

    return load_body_model(default_body_model_path())


def test_camera_on_root_identity_real_body_model():
    """The same identity through smplx (open embedded body model), float32 tolerance."""
    body = _real_body_model()
    rng = np.random.default_rng(3)
    n = 3
    pose = rng.normal(0, 0.3, size=(n, 72))
    pose[:, :3] = rng.normal(0, 1.5, size=(n, 3))
    shape = rng.uniform(-2, 2, size=(n, 10))
    trans = rng.uniform(-1, 1, size=(n, 3))
    R = rodrigues(rng.normal(0, 1.5, size=(n, 3)))
    t_mm = rng.uniform(-3000, 3000, size=(n, 3))
    got = camera_meshes(body, pose, shape, trans, R, t_mm).numpy()
    world, _ = body.forward(torch.tensor(pose, dtype=torch.float32),
                            torch.tensor(shape, dtype=torch.float32),
                            torch.tensor(trans, dtype=torch.float32))
    want = np.einsum("nij,nvj->nvi", R, world.double().numpy()) + t_mm[:, None] / 1000.0
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_mesh_targets_real_body_model(root, tmp_path):
    """End to end with the embedded body model and its HGN hierarchy: levels (8, 7)."""
    from hgn_pyg.data.body_model import default_body_model_path
    from hgn_pyg.graphs.hierarchy import mesh_hierarchy

    body = _real_body_model()
    h = mesh_hierarchy(body.faces, body.num_vertices, levels=9)
    ds = Human36M(root, split="test", subjects=[9], hierarchy=h, cache_dir=tmp_path,
                  body_model_path=default_body_model_path())
    assert len(ds) == 20 and [m.shape[0] for m in ds[0]["meshes"]] == [h.num_real[8], h.num_real[7]]
    smpl = json.loads((root / "annotations/Human36M_subject9_smpl_param.json").read_text())
    cams = json.loads((root / "annotations/Human36M_subject9_camera.json").read_text())
    j3d = json.loads((root / "annotations/Human36M_subject9_joint_3d.json").read_text())
    Ps = [h.pool_matrix(i, dense=True, dtype=torch.float64).numpy() for i in range(8)]
    for k, (s, a, sa, f, c) in enumerate(ds.tensors()["frame_info"].tolist()[:6]):
        p = smpl[str(a)][str(sa)][str(f)]
        shape = np.array(p["shape"])
        if np.abs(shape).max() > 3:
            shape[:] = 0
        world, _ = body.forward(torch.tensor([p["pose"]], dtype=torch.float32),
                                torch.tensor(shape[None], dtype=torch.float32),
                                torch.tensor([p["trans"]], dtype=torch.float32))
        R, t = np.array(cams[str(c)]["R"]), np.array(cams[str(c)]["t"])
        mesh = world[0].double().numpy() @ R.T + t / 1000.0
        pelvis = (np.array(j3d[str(a)][str(sa)][str(f)][0]) @ R.T + t) / 1000.0
        coarse = [mesh - pelvis]
        for P in Ps:                                   # docs/published_model.md §1.3: P_iᵀ applied level by level
            coarse.append(P.T @ coarse[-1])
        np.testing.assert_allclose(ds[k]["meshes"][0].numpy(), coarse[8], atol=5e-5)
        np.testing.assert_allclose(ds[k]["meshes"][1].numpy(), coarse[7], atol=5e-5)
