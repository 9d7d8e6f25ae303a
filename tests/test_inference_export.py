"""Exported lifters (hgn_pyg.inference.export, hgn-export): ONNX (dynamo and legacy exporters, run
by onnxruntime) and torch.export ``.pt2`` with a dynamic batch, their metadata, the Lifter running
them, and hostile files.

Model: a self-describing checkpoint made here (icosphere graphs, hidden 16, 4 layers, weights,
BatchNorm statistics and edge logits randomised like a trained model's, then a few Adam steps in
train mode so the statistics move). Reference: the eager model called directly on input
normalised by hand (``uv / W * 2 - [1, H / W]``), pelvis subtracted. Tolerance: 1e-4 m absolute
(the issue's bound; float32 kernels of another runtime), and exported meshes against
``model.real_meshes`` to the same bound.
"""
import io
import json
import zipfile

import numpy as np
import pytest
import torch

from hgn_pyg.errors import CheckpointError
from hgn_pyg.export import main as export_main
from hgn_pyg.graphs import mesh_hierarchy
from hgn_pyg.inference import export as E
from hgn_pyg.inference import Lifter
from hgn_pyg.lift import main as lift_main
from hgn_pyg.models.checkpoint import CHECKPOINT_VERSION, inference_record
from hgn_pyg.models import build_hgn

from test_models_hgn import icosphere, randomize_

SECTION = {"hidden_channels": 16, "num_layers": 4, "mesh_levels": [5, 4], "fusion": "official"}
W, H = 1000.0, 1002.0
ATOL = 1e-4


def _has(mod):
    try:
        __import__(mod)
    except ImportError:
        return False
    return True


needs_ort = pytest.mark.skipif(not (_has("onnx") and _has("onnxruntime")),
                               reason="needs the [onnx] extra (onnx, onnxruntime)")
needs_onnxscript = pytest.mark.skipif(not _has("onnxscript"), reason="the dynamo ONNX exporter needs onnxscript")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    verts, faces = icosphere(3)
    h = mesh_hierarchy(faces, len(verts), levels=6)
    torch.manual_seed(0)
    model = randomize_(build_hgn(SECTION, h), seed=5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(3):  # "trained-like": a few steps move weights and BatchNorm statistics
        out = model(torch.randn(32, 17, 2))
        loss = out.joints.square().mean() + sum(m.square().mean() for m in out.meshes)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.save({"format": "hgn_pyg", "version": CHECKPOINT_VERSION, "model": model.state_dict(),
                "config": {"MODEL": SECTION}, **inference_record(SECTION, h, faces=faces)}, path)
    return path, model


@pytest.fixture(scope="module")
def exported(ckpt, tmp_path_factory):
    """One file per (format, exporter), written once per module (exports take seconds)."""
    path, _ = ckpt
    folder = tmp_path_factory.mktemp("exported")
    cache = {}

    def get(fmt, exporter="dynamo"):
        key = (fmt, exporter)
        if key not in cache:
            cache[key] = E.export_lifter(path, fmt, folder / f"lifter_{exporter}{E.SUFFIXES[fmt]}",
                                         exporter=exporter)
        return cache[key]
    return get


VARIANTS = [pytest.param("pt2", "dynamo", id="pt2"),
            pytest.param("onnx", "legacy", id="onnx-legacy", marks=needs_ort),
            pytest.param("onnx", "dynamo", id="onnx-dynamo", marks=[needs_ort, needs_onnxscript])]


def _pixels(t, seed=0):
    return np.random.default_rng(seed).uniform(300, 700, size=(t, 17, 2))


def _normalise(uv):
    return uv / W * 2 - np.array([1.0, H / W])


def _reference(model, uv):
    with torch.no_grad():
        out = model(torch.from_numpy(_normalise(uv)).float())
    j = out.joints
    return (j - j[:, :1]).numpy(), [(m - j[:, :1]).numpy() for m in model.real_meshes(out)]


@pytest.mark.parametrize("fmt,exporter", VARIANTS)
def test_exported_lifter_matches_eager(ckpt, exported, fmt, exporter):
    path, model = ckpt
    f = exported(fmt, exporter)
    lifter = Lifter.from_checkpoint(f)  # by suffix
    assert lifter.exported and lifter.model.backend == fmt and lifter.device.type == "cpu"
    for t, batch in ((1, None), (37, None), (37, 8), (300, None)):  # dynamic batch, blocks
        uv = _pixels(t, seed=t)
        lf = lifter if batch is None else Lifter.from_exported(f, batch_size=batch)
        joints, meshes = lf(uv, image_size=(W, H), return_meshes=True)
        ref_j, ref_m = _reference(model, uv)
        assert joints.shape == (t, 17, 3) and joints.dtype == np.float32
        np.testing.assert_allclose(joints, ref_j, atol=ATOL, rtol=0)
        assert len(meshes) == len(ref_m)
        for a, b in zip(meshes, ref_m):
            np.testing.assert_allclose(a, b, atol=ATOL, rtol=0)
    # the same pre-processing: COCO input, missing keypoints, one pose, torch in -> torch out
    eager = Lifter.from_checkpoint(path, device="cpu")
    uv = _pixels(9, seed=1)
    uv[2, 5] = np.nan
    np.testing.assert_allclose(lifter(uv, image_size=(W, H)), eager(uv, image_size=(W, H)), atol=ATOL, rtol=0)
    coco = np.random.default_rng(2).uniform(300, 700, size=(4, 17, 2))
    np.testing.assert_allclose(lifter(coco, image_size=(W, H), keypoint_format="coco"),
                               eager(coco, image_size=(W, H), keypoint_format="coco"), atol=ATOL, rtol=0)
    one = lifter(torch.from_numpy(uv[0]), image_size=(W, H))
    assert isinstance(one, torch.Tensor) and one.shape == (17, 3)


@pytest.mark.parametrize("fmt,exporter", VARIANTS)
def test_metadata_round_trip(ckpt, exported, fmt, exporter):
    path, model = ckpt
    f = exported(fmt, exporter)
    meta = E.read_metadata(f)
    want = E.export_metadata(model, Lifter.from_checkpoint(path, device="cpu").info, fmt)
    assert meta == json.loads(json.dumps(want))
    assert meta["input_shape"] == ["batch", 17, 2] and meta["mesh_levels"] == [5, 4]
    assert meta["num_real"] == [len(r) for r in model.real_slots]
    assert meta["input"]["keypoint_format"] == "h36m" and meta["joint_names"][0] == "Pelvis"
    # read by the file format's own tools, not ours
    if fmt == "onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(f)).metadata_props}
        assert json.loads(props[E.METADATA_KEY]) == meta
    else:
        with zipfile.ZipFile(f) as zf:
            name = [n for n in zf.namelist() if n.endswith("/extra/" + E.PT2_METADATA_FILE)]
            assert json.loads(zf.read(name[0])) == meta
    info = Lifter.from_exported(f).info
    assert info.joint_set == "h36m" and tuple(info.mesh_levels) == (5, 4)


def test_pt2_program_has_a_dynamic_batch(exported):
    f = exported("pt2")
    program = torch.export.load(str(f))  # our own file: the trusted path
    x = program.graph_module.graph.find_nodes(op="placeholder")[-1]
    batch = x.meta["val"].shape[0]
    assert isinstance(batch, torch.SymInt)
    model = E.load_exported(f)
    for b in (1, 2, 129):
        out = model(torch.randn(b, 17, 2))
        assert out[0].shape == (b, 17, 3) and out[1].shape[0] == b


# ---------------------------------------------------------------------- hostile / garbled files
def _rewrite_zip(src, dst, edit):
    """Copy the zip ``src`` to ``dst`` with ``edit(name, bytes) -> bytes`` applied to every member."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, edit(item.filename, zin.read(item.filename)))


def test_hostile_pt2_archives_are_refused_before_loading(exported, tmp_path, monkeypatch):
    f = exported("pt2")
    calls = []
    monkeypatch.setattr(torch.export, "load", lambda *a, **k: calls.append(a))

    def node_target(name, data):
        if name.endswith("/models/model.json"):
            doc = json.loads(data)
            doc["graph_module"]["graph"]["nodes"][3]["target"] = "torch.os.system"
            return json.dumps(doc).encode()
        return data

    def pickled_weight(name, data):
        if name.endswith("model_weights_config.json"):
            doc = json.loads(data)
            first = next(iter(doc["config"]))
            doc["config"][first]["use_pickle"] = True
            return json.dumps(doc).encode()
        return data

    def pickled_sample(name, data):
        if "/data/sample_inputs/" in name:
            import pickle

            class Evil:
                def __reduce__(self):
                    return (print, ("pwned",))
            return pickle.dumps(Evil())
        return data

    def bad_meta(name, data):
        if name.endswith(E.PT2_METADATA_FILE):
            doc = json.loads(data)
            doc["joint_names"] = doc["joint_names"][:5]
            return json.dumps(doc).encode()
        return data

    for edit, msg in ((node_target, "torch.os.system"), (pickled_weight, "pickled object"),
                      (pickled_sample, "sample inputs"), (bad_meta, "'joint_names' must be a list of 17")):
        bad = tmp_path / f"{edit.__name__}.pt2"
        _rewrite_zip(f, bad, edit)
        with pytest.raises(CheckpointError, match=msg) as err:
            E.load_exported(bad)
        assert str(bad) in str(err.value)
    assert calls == []  # torch.export.load (which unpickles) never reached


@pytest.mark.parametrize("suffix", [".pt2", pytest.param(".onnx", marks=needs_ort)])
def test_garbled_and_foreign_files(exported, tmp_path, suffix):
    bad = tmp_path / f"garbled{suffix}"
    bad.write_bytes(b"\x08\x07garbage" * 100)
    src = exported("pt2" if suffix == ".pt2" else "onnx", "legacy" if suffix == ".onnx" else "dynamo")
    cut = tmp_path / f"truncated{suffix}"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    for broken in (bad, cut):
        with pytest.raises(CheckpointError, match=r"(not a (torch.export|readable ONNX)|damaged)") as err:
            E.load_exported(broken)
        assert str(broken) in str(err.value)
    with pytest.raises(CheckpointError, match="not found"):
        E.load_exported(tmp_path / f"missing{suffix}")
    if suffix == ".onnx":  # a valid ONNX model without our metadata
        import onnx
        from onnx import TensorProto, helper

        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 17, 2])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 17, 2])])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9),
                  str(tmp_path / "foreign.onnx"))
        with pytest.raises(CheckpointError, match="no 'hgn_pyg' metadata"):
            E.load_exported(tmp_path / "foreign.onnx")
    else:  # a zip that is not a torch.export archive
        with zipfile.ZipFile(tmp_path / "foreign.pt2", "w") as zf:
            zf.writestr("a/b.txt", "hello")
        with pytest.raises(CheckpointError, match="models/model.json"):
            E.load_exported(tmp_path / "foreign.pt2")


def test_check_metadata_names_the_key():
    good = {"format": E.EXPORT_FORMAT, "version": 1, "backend": "onnx", "joint_set": "h36m",
            "joint_names": [f"j{i}" for i in range(17)],
            "input": {"keypoint_format": "h36m", "channels": ["u", "v"]}, "input_shape": ["batch", 17, 2],
            "output": {}, "outputs": ["joints"], "mesh_levels": [], "num_real": []}
    assert E.check_metadata(good, "f") == good
    for key, value, msg in (("version", 99, "'version'"), ("backend", "tflite", "'backend'"),
                            ("input_shape", ["batch", 17, 3], "'input_shape'"),
                            ("outputs", ["joints", "extra"], "'outputs'"), ("joint_set", "os.system", "'joint_set'")):
        with pytest.raises(CheckpointError, match=msg):
            E.check_metadata(dict(good, **{key: value}), "f")
    with pytest.raises(CheckpointError, match="JSON object"):
        E.check_metadata([1, 2], "f")


# ---------------------------------------------------------------------- CLIs
def _cli(fn, args, capsys):
    rc = fn([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_hgn_export_cli_and_lift_cli_on_the_exported_file(ckpt, tmp_path, capsys):
    path, model = ckpt
    out = tmp_path / "m.pt2"
    rc, stdout, err = _cli(export_main, ["--checkpoint", path, "--format", "pt2", "--out", out], capsys)
    assert rc == 0, err
    assert out.is_file() and "exported" in stdout
    # refusals: existing file, wrong suffix, unreadable checkpoint: exit 2, nothing written
    rc, _, err = _cli(export_main, ["--checkpoint", path, "--format", "pt2", "--out", out], capsys)
    assert rc == 2 and "exists" in err
    rc, _, err = _cli(export_main, ["--checkpoint", path, "--format", "onnx", "--out", tmp_path / "m.bin"], capsys)
    assert rc == 2 and ".onnx" in err and not (tmp_path / "m.bin").exists()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    rc, _, err = _cli(export_main, ["--checkpoint", tmp_path / "junk.pt", "--format", "pt2",
                                    "--out", tmp_path / "j.pt2"], capsys)
    assert rc == 2 and "junk.pt" in err and not (tmp_path / "j.pt2").exists()
    # the lift CLI takes the exported file as --checkpoint
    uv = _pixels(11, seed=4)
    np.save(tmp_path / "kp.npy", uv)
    rc, _, err = _cli(lift_main, ["--checkpoint", out, "--keypoints", tmp_path / "kp.npy", "--format", "h36m",
                                  "--image-size", W, H, "--out", tmp_path / "lifted"], capsys)
    assert rc == 0, err
    z = np.load(tmp_path / "lifted" / "poses_3d.npz")
    np.testing.assert_allclose(z["joints_3d"], _reference(model, uv)[0], atol=ATOL, rtol=0)
    rc, _, err = _cli(lift_main, ["--checkpoint", out, "--keypoints", tmp_path / "kp.npy", "--format", "h36m",
                                  "--image-size", W, H, "--out", tmp_path / "l2", "--device", "cuda"], capsys)
    assert rc == 2 and "runs on the CPU" in err


def test_onnx_missing_runtime_is_a_clear_error(exported, monkeypatch, tmp_path):
    import builtins

    f = tmp_path / "x.onnx"
    f.write_bytes(b"whatever")
    real_import = builtins.__import__

    def no_ort(name, *a, **k):
        if name == "onnxruntime":
            raise ImportError(name)
        return real_import(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_ort)
    with pytest.raises(Exception, match=r"onnxruntime: pip install 'hgn_pyg\[onnx\]'"):
        E.load_exported(f)
