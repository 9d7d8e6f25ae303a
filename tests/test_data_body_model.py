"""The open procedural body model: SMPL file layout, mesh validity, rig, shape space, loading."""
import json
import pickle
import time

import numpy as np
import pytest
import torch

from hgn_pyg.data import body_model as bm
from hgn_pyg.errors import DataError

smplx = pytest.importorskip("smplx")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("body") / "hgn_open_body.pkl"
    start = time.time()
    bm.build_open_body_model(path)
    assert time.time() - start < 20.0  # a few seconds on an idle machine
    return path


@pytest.fixture(scope="module")
def data(model_file):
    with open(model_file, "rb") as fh:
        return pickle.load(fh, encoding="latin1")


@pytest.fixture(scope="module")
def model(model_file):
    return bm.load_body_model(model_file, dtype=torch.float64)


def _pose(**joints):
    p = torch.zeros(1, 72, dtype=torch.float64)
    for j, aa in joints.items():
        p[0, 3 * int(j[1:]): 3 * int(j[1:]) + 3] = torch.tensor(aa, dtype=torch.float64)
    return p


def test_file_layout_is_smpl(data):
    V = bm.NUM_VERTICES
    assert data["v_template"].shape == (V, 3)
    assert data["f"].ndim == 2 and data["f"].shape[1] == 3 and data["f"].dtype == np.uint32
    assert data["shapedirs"].shape == (V, 3, 10)
    assert data["posedirs"].shape == (V, 3, 207) and not np.any(data["posedirs"])
    assert data["J_regressor"].shape == (24, V) and data["J_regressor"].format == "csc"
    assert data["weights"].shape == (V, 24)
    kt = data["kintree_table"]
    assert kt.shape == (2, 24) and kt[0, 0] == 4294967295
    assert np.array_equal(kt[1], np.arange(24))
    assert np.array_equal(kt[0, 1:], bm.SMPL_PARENTS[1:])
    assert data["J_regressor_h36m"].shape == (17, V)
    assert data["joint_names"][15] == "head" and data["hgn_open_body_version"] == \
        bm.BODY_MODEL_VERSION


def test_smplx_loads_file_unchanged(model_file, data):
    smpl = smplx.SMPL(model_path=str(model_file))
    out = smpl()
    assert out.vertices.shape == (1, 6890, 3)
    assert out.joints.shape[1] > 24  # the extra vertex joints picked at SMPL vertex ids work
    assert torch.allclose(out.vertices[0], torch.as_tensor(data["v_template"], dtype=torch.float32),
                          atol=1e-5)
    # a posed forward pass equals BodyModel's
    pose = torch.zeros(1, 72)
    pose[0, 3 * 16 + 2] = -1.0
    pose[0, 3 * 4] = 0.7
    betas = torch.linspace(-1, 1, 10)[None]
    out = smpl(betas=betas, global_orient=pose[:, :3], body_pose=pose[:, 3:])
    v, j = bm.load_body_model(model_file).forward(pose, betas)
    assert torch.allclose(out.vertices, v, atol=1e-5)
    assert torch.allclose(out.joints[:, :24], j, atol=1e-5)


def test_mesh_closed_manifold_connected(data):
    faces = data["f"].astype(np.int64)
    report = bm.check_closed_manifold(faces, bm.NUM_VERTICES)
    assert report["components"] == 1
    assert report["euler"] == 2  # a sphere-like surface
    vol = bm.signed_volume(data["v_template"], faces)
    assert 0.04 < vol < 0.12  # outward normals, about a person's volume in m^3


def test_check_closed_manifold_rejects_holes(data):
    faces = data["f"].astype(np.int64)
    with pytest.raises(DataError, match="edge"):
        bm.check_closed_manifold(faces[1:], bm.NUM_VERTICES)
    flipped = faces.copy()
    flipped[0] = flipped[0, ::-1]
    with pytest.raises(DataError):
        bm.check_closed_manifold(flipped, bm.NUM_VERTICES)


def _winding_number(points, verts, faces):
    """Generalised winding number of points w.r.t. a closed mesh (1 inside, 0 outside)."""
    tri = verts[faces][None] - points[:, None, None, :]  # [P, F, 3, 3]
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    num = np.einsum("pfi,pfi->pf", a, np.cross(b, c))
    den = la * lb * lc + np.einsum("pfi,pfi->pf", a, b) * lc + \
        np.einsum("pfi,pfi->pf", b, c) * la + np.einsum("pfi,pfi->pf", c, a) * lb
    return (2 * np.arctan2(num, den)).sum(axis=1) / (4 * np.pi)


def test_regressors_and_joint_placement(data):
    v = data["v_template"]
    Jr = data["J_regressor"].toarray()
    assert np.allclose(Jr.sum(axis=1), 1.0) and (Jr >= 0).all()
    assert ((Jr > 0).sum(axis=1) <= 100).all()  # sparse-ish
    H = data["J_regressor_h36m"]
    assert np.allclose(H.sum(axis=1), 1.0) and (H >= 0).all()
    J = Jr @ v
    inside = _winding_number(J, v, data["f"].astype(np.int64))
    assert np.all(inside > 0.5), inside
    inside_h = _winding_number(H @ v, v, data["f"].astype(np.int64))
    assert np.all(inside_h > 0.5), inside_h
    y = J[:, 1]
    assert y[15] > y[12] > y[9] > y[6] > y[3] > y[0] > y[4] > y[7]  # head .. ankle
    assert J[1, 0] > 0 > J[2, 0] and J[16, 0] > 0 > J[17, 0]  # left side at +x
    assert J[22, 0] > J[20, 0] > J[18, 0] > J[16, 0] > J[13, 0] > 0  # left arm along +x
    assert J[10, 2] > J[7, 2] + 0.05  # feet point forward (+z)
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.6 < height < 1.85
    h = H @ v
    assert h[1, 0] < 0 < h[4, 0]  # H36M R_Hip is the person's right = -x = SMPL joint 2
    assert np.allclose(h[1], J[2]) and np.allclose(h[4], J[1])
    assert np.allclose(h[0], 0.5 * (J[1] + J[2]))
    assert h[10, 1] > h[9, 1] > h[8, 1] > h[7, 1] > h[0, 1]
    assert h[9, 2] > h[8, 2]  # the nose is in front


def test_skinning_weights(data):
    W = data["weights"]
    assert np.allclose(W.sum(axis=1), 1.0) and (W >= 0).all()
    assert ((W > 0).sum(axis=1) <= 6).all()
    v = data["v_template"]
    J = data["J_regressor"].toarray() @ v
    hand = np.argmin(np.linalg.norm(v - (J[22] + [0.08, 0, 0]), axis=1))
    assert W[hand, 22] > 0.5
    foot = np.argmin(np.linalg.norm(v - J[10] - [0, -0.02, 0.05], axis=1))
    assert W[foot, 10] + W[foot, 7] > 0.9


def _bones(h):
    pairs = [(0, 7), (7, 8), (8, 9), (9, 10), (8, 11), (11, 12), (12, 13), (8, 14), (14, 15),
             (15, 16), (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6)]
    return torch.stack([torch.linalg.norm(h[:, a] - h[:, b], dim=-1) for a, b in pairs], dim=1)


def test_h36m_bones_rigid_when_static_joints_fixed(model):
    gen = torch.Generator().manual_seed(0)
    pose = 0.6 * torch.randn(16, 72, generator=gen, dtype=torch.float64)
    for j in bm.STATIC_JOINTS:
        pose[:, 3 * j: 3 * j + 3] = 0.0
    shape = torch.randn(1, 10, generator=gen, dtype=torch.float64).expand(16, -1)
    v, j = model.forward(pose, shape, torch.randn(16, 3, dtype=torch.float64, generator=gen))
    h = model.h36m_joints(v)
    rest_v, _ = model.forward(torch.zeros(1, 72, dtype=torch.float64), shape[:1])
    rest = _bones(model.h36m_joints(rest_v))
    assert torch.allclose(_bones(h), rest.expand(16, -1), atol=1e-9)
    # the copied rows regress the SMPL joints themselves
    assert torch.allclose(h[:, 4], j[:, 1], atol=1e-9)
    assert torch.allclose(h[:, 16], j[:, 21], atol=1e-9)


def _rest_joints(model, k, t):
    beta = torch.zeros(1, 10, dtype=torch.float64)
    beta[0, k] = t
    v, j = model.forward(torch.zeros(1, 72, dtype=torch.float64), beta)
    return v[0].numpy(), j[0].numpy()


@pytest.mark.parametrize("name, measure", [
    ("height", lambda v, j: v[:, 1].max() - v[:, 1].min()),
    ("leg_length", lambda v, j: np.linalg.norm(j[1] - j[4]) + np.linalg.norm(j[4] - j[7])),
    ("arm_length", lambda v, j: np.linalg.norm(j[16] - j[20])),
    ("torso_length", lambda v, j: j[12, 1] - j[0, 1]),
    ("shoulder_width", lambda v, j: j[16, 0] - j[17, 0]),
    ("hip_width", lambda v, j: j[1, 0] - j[2, 0]),
    ("girth", lambda v, j: v[:, 0].max() * 0 + np.ptp(v[np.abs(v[:, 1] - j[3, 1]) < 0.03, 2])),
    ("belly", lambda v, j: v[np.abs(v[:, 1] - j[3, 1]) < 0.05, 2].max()),
    ("head_size", lambda v, j: v[:, 1].max() - j[15, 1]),
    ("limb_thickness", lambda v, j: np.ptp(v[(np.abs(v[:, 1] - j[4, 1] - 0.12) < 0.02)
                                             & (v[:, 0] > 0), 2])),
])
def test_shape_directions_do_what_they_say(model, name, measure):
    k = bm.SHAPE_NAMES.index(name)
    lo, hi = measure(*_rest_joints(model, k, -1.0)), measure(*_rest_joints(model, k, 1.0))
    assert hi > lo * 1.01, (name, lo, hi)


def test_height_does_not_change_under_limb_thickness(model):
    k = bm.SHAPE_NAMES.index("limb_thickness")
    v0, _ = _rest_joints(model, k, -2.0)
    v1, _ = _rest_joints(model, k, 2.0)
    assert abs(np.ptp(v0[:, 1]) - np.ptp(v1[:, 1])) < 0.01


def test_build_is_deterministic(data):
    again = bm.make_open_body_data()
    for key in ("v_template", "f", "shapedirs", "weights", "J_regressor_h36m"):
        assert np.array_equal(np.asarray(again[key]), np.asarray(data[key])), key
    assert (again["J_regressor"] != data["J_regressor"]).nnz == 0


def test_default_path_builds_caches_and_rebuilds(tmp_path, model_file):
    import shutil

    root = tmp_path / "bm"
    root.mkdir()
    shutil.copy(model_file, root / "hgn_open_body.pkl")
    shutil.copy(model_file.with_suffix(".json"), root / "hgn_open_body.json")
    mtime = (root / "hgn_open_body.pkl").stat().st_mtime_ns
    p = bm.default_body_model_path(root)
    assert p == root / "hgn_open_body.pkl" and p.stat().st_mtime_ns == mtime  # cached
    (root / "hgn_open_body.json").write_text(json.dumps({"version": "old", "size": 1}))
    p = bm.default_body_model_path(root)
    assert json.loads((root / "hgn_open_body.json").read_text())["version"] == \
        bm.BODY_MODEL_VERSION
    assert bm.load_body_model(p).is_open_model


def test_env_home(tmp_path, monkeypatch, model_file):
    import shutil

    folder = tmp_path / "body_models"
    folder.mkdir()
    shutil.copy(model_file, folder / "hgn_open_body.pkl")
    shutil.copy(model_file.with_suffix(".json"), folder / "hgn_open_body.json")
    monkeypatch.setenv("HGN_PYG_HOME", str(tmp_path))
    assert bm.default_body_model_path() == folder / "hgn_open_body.pkl"


def test_npz_and_external_regressor(tmp_path, data):
    d = {k: v for k, v in data.items() if k not in ("J_regressor_h36m", "hgn_open_body_version")}
    d["J_regressor"] = d["J_regressor"].toarray()
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **{k: np.asarray(v) for k, v in d.items()})
    m = bm.load_body_model(tmp_path / "SMPL_NEUTRAL.npz")
    assert not m.is_open_model and m.num_vertices == 6890 and m.faces.dtype == np.int64
    with pytest.raises(DataError, match="J_regressor_h36m_correct.npy"):
        m.h36m_regressor
    np.save(tmp_path / "J_regressor_h36m_correct.npy", data["J_regressor_h36m"][:, :100])
    with pytest.raises(DataError, match=r"\[17, 6890\]"):
        bm.load_body_model(tmp_path / "SMPL_NEUTRAL.npz").h36m_regressor
    np.save(tmp_path / "J_regressor_h36m_correct.npy", data["J_regressor_h36m"])
    reg = bm.load_body_model(tmp_path / "SMPL_NEUTRAL.npz").h36m_regressor
    assert np.allclose(reg, data["J_regressor_h36m"])


def test_load_errors_name_the_file_and_key(tmp_path, data):
    with pytest.raises(DataError, match="does not exist"):
        bm.load_body_model(tmp_path / "missing.pkl")
    chumpy = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    chumpy.write_bytes(b"cchumpy.ch\nCh\n.")  # what a chumpy-pickled SMPL file needs
    with pytest.raises(DataError, match="chumpy"):
        bm.load_body_model(chumpy)
    bad = dict(data)
    bad["weights"] = bad["weights"][:, :10]
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps(bad))
    with pytest.raises(DataError, match="'weights'.*bad.pkl|bad.pkl.*'weights'"):
        bm.load_body_model(tmp_path / "bad.pkl")
    del bad["weights"]
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps(bad))
    with pytest.raises(DataError, match="no key 'weights'"):
        bm.load_body_model(tmp_path / "bad.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="junk.pkl"):
        bm.load_body_model(tmp_path / "junk.pkl")


@pytest.mark.parametrize("edit,key,fragment", [
    (lambda d: d.__setitem__("f", d["f"].astype(np.float64) + 0.5), "'f'", "non-integer vertex indices"),
    (lambda d: d["f"].__setitem__((3, 1), 7000), "'f'", "outside 0..6889"),
    (lambda d: d["kintree_table"].__setitem__((0, 5), 40), "'kintree_table'", "joint 5 the parent 40"),
    (lambda d: d["kintree_table"].__setitem__((0, 4), 7), "'kintree_table'", "joint 4 the parent 7"),
    (lambda d: d["weights"].__setitem__((10, 3), np.nan), "'weights'", "nan"),
    (lambda d: d["v_template"].__setitem__((0, 0), 1e39), "'v_template'", "fit float32"),
    (lambda d: d.__setitem__("posedirs", np.array([["a"] * 3] * 6890)), "'posedirs'", "shape"),
    (lambda d: d.__setitem__("shapedirs", d["shapedirs"].astype(object)), "'shapedirs'", "not a numeric"),
])
def test_bad_body_model_values_name_the_file_and_key(tmp_path, data, edit, key, fragment):
    """Fractional faces were truncated, a parent out of range was an IndexError and NaN weights were
    blamed on a subject's SMPL parameters: each is now a DataError naming the body-model file."""
    import copy

    bad = copy.deepcopy(data)
    edit(bad)
    path = tmp_path / "bad_body.pkl"
    path.write_bytes(pickle.dumps(bad))
    with pytest.raises(DataError) as info:
        bm.load_body_model(path)
    msg = str(info.value)
    assert str(path) in msg and key in msg and fragment in msg, msg


def test_forward_checks_shapes(model):
    with pytest.raises(DataError, match="pose"):
        model.forward(torch.zeros(2, 69), torch.zeros(2, 10))
    v, j = model.forward(torch.zeros(3, 72), torch.zeros(1, 10))  # one shape for all
    assert v.shape == (3, 6890, 3) and j.shape == (3, 24, 3)
    assert "BodyModel" in repr(model)


def test_template_has_the_human36m_reference_skeleton(data):
    # Martinez et al. 2017 Human3.6M skeleton (mm), written independently of the library
    ref = {(0, 1): 132.95, (0, 4): 132.95, (1, 2): 442.89, (4, 5): 442.89, (2, 3): 454.21,
           (5, 6): 454.21, (0, 7): 233.38, (7, 8): 257.08, (8, 9): 121.13, (9, 10): 115.00,
           (8, 11): 151.03, (8, 14): 151.03, (11, 12): 278.88, (14, 15): 278.88,
           (12, 13): 251.73, (15, 16): 251.73}
    h = data["J_regressor_h36m"] @ data["v_template"] * 1000.0
    got = {b: float(np.linalg.norm(h[b[0]] - h[b[1]])) for b in ref}
    assert all(abs(got[b] - ref[b]) < 0.1 for b in ref), got  # 0.1 mm
    # Human3.6M's hips sit at the pelvis height, 13.3 cm either side of it
    assert abs(h[1, 1] - h[0, 1]) < 1.0 and abs(h[4, 1] - h[0, 1]) < 1.0
    assert np.allclose(bm.H36M_REFERENCE_BONES_MM[(0, 1)], 132.95)
