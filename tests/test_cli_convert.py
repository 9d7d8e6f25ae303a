"""``python -m hgn_pyg.convert`` end to end, and the mesh readers it uses.

A tiny closed mesh (icosphere, 162 vertices) coarsened 3 times stands in for SMPL; the
"published" checkpoint is a randomised DenseHGN on its level-3/level-2 graphs.
"""
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from hgn_pyg.cli.convert import load_mesh_faces, main
from hgn_pyg.errors import DataError
from hgn_pyg.graphs import GraphHierarchy, mesh_hierarchy, skeleton_graph
from hgn_pyg.models import HGN, DenseHGN
from test_models_hgn import icosphere  # the shared test mesh

REPO = Path(__file__).resolve().parents[1]
LEVELS = 3
MESH_LEVELS = (3, 2)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """faces.npy, a published-layout checkpoint for it, and the reference model."""
    root = tmp_path_factory.mktemp("convert")
    verts, faces = icosphere(2)
    np.save(root / "faces.npy", faces)
    hierarchy = mesh_hierarchy(faces, len(verts), levels=LEVELS)
    skeleton = skeleton_graph("h36m")
    dense = DenseHGN.from_graphs(skeleton, hierarchy, MESH_LEVELS, hidden_channels=8)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in dense.state_dict().items():
            if t.is_floating_point():
                t.add_(0.1 * torch.randn(t.shape, generator=gen))
    torch.save({"model_state_dict": dense.state_dict(), "epoch": 3}, root / "final.pth.tar")
    return root, verts, faces, hierarchy, skeleton, dense.eval()


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "hgn_pyg.convert", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


def test_convert_cli_end_to_end(setup):
    root, _, _, _, skeleton, dense = setup
    out = root / "model.pt"
    res = _cli("--official", root / "final.pth.tar", "--mesh", root / "faces.npy", "--out", out,
               "--levels", LEVELS, "--mesh-levels", *MESH_LEVELS)
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stdout
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    assert ckpt["format"] == "hgn_pyg" and ckpt["config"]["MODEL"]["mesh_levels"] == [3, 2]
    hierarchy = GraphHierarchy.from_state_dict(ckpt["hierarchy"])
    m = ckpt["config"]["MODEL"]
    model = HGN(skeleton, hierarchy, mesh_levels=m["mesh_levels"],
                hidden_channels=m["hidden_channels"]).eval()
    model.load_state_dict(ckpt["model"])
    x = torch.randn(2, 17, 2)
    with torch.no_grad():
        got, ref = model(x), dense(x)
    assert max(float((a - b).abs().max()) for a, b in zip((got.joints, *got.meshes), ref)) <= 1e-4
    # self-describing: the file alone builds the model (eval mode), with the coarse-mesh faces
    alone = HGN.from_checkpoint(out)
    assert not alone.training and set(ckpt["mesh_faces"]) == {3, 2} and ckpt["joint_set"] == "h36m"
    with torch.no_grad():
        assert torch.equal(alone(x).joints, got.joints)

    # an existing --out is kept
    before = out.read_bytes()
    res = _cli("--official", root / "final.pth.tar", "--mesh", root / "faces.npy", "--out", out,
               "--levels", LEVELS, "--mesh-levels", *MESH_LEVELS)
    assert res.returncode == 2
    assert "already exists" in res.stderr and "--force" in res.stderr
    assert out.read_bytes() == before


def test_convert_cli_bad_input_is_one_line(setup, tmp_path):
    root = setup[0]
    out = tmp_path / "wrong.pt"
    np.save(tmp_path / "flat.npy", np.arange(12))
    res = _cli("--official", root / "final.pth.tar", "--mesh", tmp_path / "flat.npy",
               "--out", out)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert "flat.npy" in lines[0] and "[F, 3]" in lines[0]
    assert not out.exists()


def test_convert_in_process_errors_and_force(setup, capsys):
    root = setup[0]
    out = root / "inproc.pt"
    args = ["--official", str(root / "final.pth.tar"), "--mesh", str(root / "faces.npy"),
            "--out", str(out), "--levels", str(LEVELS), "--mesh-levels", *map(str, MESH_LEVELS)]
    assert main(args) == 0
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["--force", "--no-verify"]) == 0
    capsys.readouterr()
    # graphs that do not fit the checkpoint (another coarsening): one line naming the keys
    wrong = args[:6] + ["--levels", str(LEVELS + 1), "--mesh-levels", *map(str, MESH_LEVELS)]
    assert main(wrong + ["--force"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "final.pth.tar does not match" in err
    assert "fc_1_2_1.conv.weight" in err and "mesh_levels" in err
    bad = list(args)
    bad[1] = str(root / "missing.pth.tar")
    assert main(bad + ["--force"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing.pth.tar" in err
    bad = list(args)
    bad[3] = str(root / "nothing.obj")
    assert main(bad + ["--force"]) == 2
    assert "mesh file not found" in capsys.readouterr().err


def test_load_mesh_faces_formats(setup, tmp_path):
    _, verts, faces, _, _, _ = setup
    # .txt
    np.savetxt(tmp_path / "f.txt", faces, fmt="%d")
    f, n = load_mesh_faces(tmp_path / "f.txt")
    assert np.array_equal(f, faces) and n == len(verts)
    # .obj (1-based, one quad split into two triangles)
    lines = [f"v {x} {y} {z}" for x, y, z in verts]
    lines += [f"f {a + 1}/1 {b + 1}/1 {c + 1}/1" for a, b, c in faces[:-2]]
    a, b, c = faces[-2]
    lines += [f"f {a + 1} {b + 1} {c + 1}", "f 1 2 3 4"]
    (tmp_path / "m.obj").write_text("\n".join(lines) + "\n")
    f, n = load_mesh_faces(tmp_path / "m.obj")
    assert n == len(verts) and len(f) == len(faces) + 1
    assert np.array_equal(f[-2:], [[0, 1, 2], [0, 2, 3]])
    # .npz SMPL-like
    np.savez(tmp_path / "smpl.npz", f=faces.astype(np.uint32), v_template=verts)
    f, n = load_mesh_faces(tmp_path / "smpl.npz")
    assert np.array_equal(f, faces) and n == len(verts)


def test_load_smpl_pkl_with_chumpy_objects(setup, tmp_path):
    """An SMPL .pkl stores chumpy arrays; the faces are read without chumpy installed."""
    _, verts, faces, _, _, _ = setup
    fake = types.ModuleType("chumpy")
    fake_ch = types.ModuleType("chumpy.ch")

    class Ch:  # pickled as chumpy.ch.Ch
        def __init__(self, x):
            self.x = x

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    fake_ch.Ch = Ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = fake, fake_ch
    try:
        payload = pickle.dumps({"f": faces.astype(np.uint32), "v_template": Ch(verts),
                                "shapedirs": Ch(np.zeros((3, 3)))}, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(payload)
    f, n = load_mesh_faces(tmp_path / "SMPL_NEUTRAL.pkl")
    assert np.array_equal(f, faces) and n == len(verts)

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"f": Evil()}))
    with pytest.raises(DataError, match="refused to unpickle"):
        load_mesh_faces(tmp_path / "evil.pkl")

    class EvilNumpy:  # a numpy callable that executes code must be refused too
        def __reduce__(self):
            from numpy.testing._private.utils import runstring
            return (runstring, ("raise SystemExit('pwned')", {}))

    (tmp_path / "evil_np.pkl").write_bytes(pickle.dumps({"f": EvilNumpy()}))
    with pytest.raises(DataError, match="refused to unpickle"):
        load_mesh_faces(tmp_path / "evil_np.pkl")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="bad.npy"):
        load_mesh_faces(tmp_path / "bad.npy")
    np.save(tmp_path / "flat.npy", np.arange(10))
    with pytest.raises(DataError, match=r"\[F, 3\]"):
        load_mesh_faces(tmp_path / "flat.npy")
