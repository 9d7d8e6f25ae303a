"""Lifter API and the ``hgn_pyg.lift`` CLI on a self-describing checkpoint (icosphere graphs, random
weights; no body model, no data set on disk).

Reference: the model called directly on input normalised by hand (``uv / W * 2 - [1, H / W]``),
pelvis subtracted. Tolerance: 1e-5 relative + 1e-5 absolute (float32 forward passes over batches of
different composition; random weights give outputs up to ~10).
"""
import json

import numpy as np
import pytest
import torch

from hgn_pyg.data.keypoints import coco_to_h36m
from hgn_pyg.errors import DataError
from hgn_pyg.graphs import mesh_hierarchy
from hgn_pyg.cli.lift import Lifter, main
from hgn_pyg.models.checkpoint import CHECKPOINT_VERSION, inference_record
from hgn_pyg.models import build_hgn

from test_models_hgn import icosphere, randomize_

SECTION = {"hidden_channels": 16, "num_layers": 4, "mesh_levels": [5, 4], "fusion": "official"}
W, H = 1000.0, 1002.0
TOL = 1e-5


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    verts, faces = icosphere(3)
    h = mesh_hierarchy(faces, len(verts), levels=6)
    model = randomize_(build_hgn(SECTION, h), seed=3).eval()
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.save({"format": "hgn_pyg", "version": CHECKPOINT_VERSION, "model": model.state_dict(),
                "config": {"MODEL": SECTION}, **inference_record(SECTION, h, faces=faces)}, path)
    return path, model


def _pixels(t=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(300, 700, size=(t, 17, 2))


def _reference(model, uv):
    x = uv / W * 2 - np.array([1.0, H / W])
    with torch.no_grad():
        j = model(torch.from_numpy(x).float()).joints
    return (j - j[:, :1]).numpy()


def test_lift_matches_the_model(ckpt):
    path, model = ckpt
    lifter = Lifter.from_checkpoint(path, device="cpu")
    uv = _pixels()
    out = lifter(uv, image_size=(W, H))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (6, 17, 3)
    np.testing.assert_allclose(out, _reference(model, uv), atol=TOL, rtol=TOL)
    assert np.all(out[:, 0] == 0)  # pelvis-relative
    # normalised input, one pose, torch in -> torch out, float16/int input, small batches
    norm = uv / W * 2 - np.array([1.0, H / W])
    np.testing.assert_allclose(lifter(norm, normalized=True), out, atol=TOL, rtol=TOL)
    one = lifter(torch.from_numpy(uv[2]).float(), image_size=(W, H))
    assert isinstance(one, torch.Tensor) and one.shape == (17, 3)
    np.testing.assert_allclose(one.numpy(), out[2], atol=1e-5)
    np.testing.assert_allclose(lifter(uv.astype(np.float16), image_size=(W, H)),
                               _reference(model, uv.astype(np.float16).astype(np.float64)), atol=TOL, rtol=TOL)
    np.testing.assert_allclose(lifter(uv.round().astype(np.int64), image_size=(W, H)),
                               _reference(model, uv.round()), atol=TOL, rtol=TOL)
    np.testing.assert_allclose(Lifter.from_checkpoint(path, device="cpu", batch_size=4)(uv, image_size=(W, H)),
                               out, atol=TOL, rtol=TOL)
    np.testing.assert_allclose(lifter(uv.tolist(), image_size=[W, H]), out, atol=TOL, rtol=TOL)


def test_meshes_and_per_frame_sizes(ckpt):
    path, model = ckpt
    lifter = Lifter.from_checkpoint(path, device="cpu")
    uv = _pixels(4)
    joints, meshes = lifter(uv, image_size=(W, H), return_meshes=True)
    assert [m.shape for m in meshes] == [(4, model.num_real[0], 3), (4, model.num_real[1], 3)]
    sizes = np.array([[W, H], [W, H], [2 * W, 2 * H], [2 * W, 2 * H]])
    mixed = lifter(uv * sizes[:, None] / np.array([W, H]), image_size=sizes)
    np.testing.assert_allclose(mixed[:2], joints[:2], atol=TOL, rtol=TOL)
    ref = lifter(uv[2:] * 2 / np.array([1.0, 1.0]), image_size=(2 * W, 2 * H))
    np.testing.assert_allclose(mixed[2:], ref, atol=TOL, rtol=TOL)


def test_coco_input_and_missing_policy(ckpt):
    path, model = ckpt
    lifter = Lifter.from_checkpoint(path, device="cpu")
    coco = _pixels(5, seed=1)
    scores = np.full((5, 17), 0.9)
    h36m, _ = coco_to_h36m(coco)
    np.testing.assert_allclose(lifter(coco, scores, image_size=(W, H), keypoint_format="coco"),
                               _reference(model, h36m), atol=TOL, rtol=TOL)
    # a NaN wrist and a low-scored knee are filled from their parents (elbow, hip): finite output,
    # equal to lifting the filled pose
    uv = _pixels(3, seed=2)
    sc = np.full((3, 17), 0.9)
    bad = uv.copy()
    bad[0, 13] = np.nan
    sc[1, 2] = 0.01
    out = lifter(bad, sc, image_size=(W, H))
    assert np.isfinite(out).all()
    filled = uv.copy()
    filled[0, 13] = uv[0, 12]
    filled[1, 2] = uv[1, 1]
    np.testing.assert_allclose(out, _reference(model, filled), atol=TOL, rtol=TOL)
    np.testing.assert_allclose(out[2], _reference(model, uv)[2], atol=TOL, rtol=TOL)
    # every keypoint missing: still finite
    assert np.isfinite(lifter(np.full((1, 17, 2), np.nan), image_size=(W, H))).all()


@pytest.mark.parametrize("kwargs,msg", [
    (dict(), "look like pixels"),
    (dict(normalized=True), "far outside the normalised range"),
    (dict(image_size=(W, H), normalized=True), "not both"),
    (dict(image_size=(20, 20)), "fall far outside the image"),
    (dict(image_size=(W, -1)), "two positive numbers"),
])
def test_guards(ckpt, kwargs, msg):
    lifter = Lifter.from_checkpoint(ckpt[0], device="cpu")
    with pytest.raises(DataError, match=msg):
        lifter(_pixels(), **kwargs)


def test_shape_guards(ckpt):
    lifter = Lifter.from_checkpoint(ckpt[0], device="cpu")
    with pytest.raises(DataError, match="18 joints"):
        lifter(np.zeros((2, 18, 2)), normalized=True)
    with pytest.raises(DataError, match=r"expected shape \[T, 17, 2\]"):
        lifter(np.zeros((2, 17, 3)), normalized=True)
    with pytest.raises(DataError, match="scores of shape"):
        lifter(np.zeros((2, 17, 2)), np.zeros((3, 17)), normalized=True)
    with pytest.raises(DataError, match="keypoint format"):
        lifter(np.zeros((2, 17, 2)), normalized=True, keypoint_format="mpii")


def _cli(args, capsys):
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_cli_npy_and_coco_json(ckpt, tmp_path, capsys):
    path, model = ckpt
    uv = _pixels(7)
    np.save(tmp_path / "kp.npy", uv)
    rc, out, err = _cli(["--checkpoint", path, "--keypoints", tmp_path / "kp.npy", "--format", "h36m",
                         "--image-size", W, H, "--out", tmp_path / "o1", "--device", "cpu"], capsys)
    assert rc == 0, err
    z = np.load(tmp_path / "o1" / "poses_3d.npz")
    assert z["joints_3d"].dtype == np.float32 and z["frame"].tolist() == list(range(7))
    np.testing.assert_allclose(z["joints_3d"], _reference(model, uv), atol=TOL, rtol=TOL)
    doc = json.loads((tmp_path / "o1" / "poses_3d.json").read_text())
    assert doc["units"] == "m" and doc["root_relative"] is True and doc["joint_names"][0] == "Pelvis"
    np.testing.assert_allclose(np.array(doc["tracks"][0]["joints_3d"]), z["joints_3d"], atol=1e-5)
    # COCO results with two tracks and scores
    rng = np.random.default_rng(5)
    dets = []
    for t in range(4):
        for tid in (3, 9):
            kp = np.concatenate([rng.uniform(300, 700, (17, 2)), np.full((17, 1), 0.8)], 1)
            dets.append({"image_id": t, "keypoints": kp.ravel().tolist(), "track_id": tid})
    (tmp_path / "r.json").write_text(json.dumps(dets))
    rc, out, err = _cli(["--checkpoint", path, "--keypoints", tmp_path / "r.json", "--image-size", W, H,
                         "--out", tmp_path / "o2", "--device", "cpu", "--render"], capsys)
    assert rc == 0, err
    z = np.load(tmp_path / "o2" / "poses_3d.npz")
    assert z["track"].tolist() == [0] * 4 + [1] * 4 and z["track_names"].tolist() == ["track 3", "track 9"]
    first = np.array([d["keypoints"] for d in dets if d["track_id"] == 3]).reshape(4, 17, 3)
    np.testing.assert_allclose(z["joints_3d"][:4], _reference(model, coco_to_h36m(first[..., :2])[0]), atol=TOL, rtol=TOL)
    np.testing.assert_allclose(z["scores"][:4, 0], 0.8)
    from PIL import Image

    gif = Image.open(tmp_path / "o2" / "poses_3d_track0.gif")
    assert gif.n_frames == 4
    assert Image.open(tmp_path / "o2" / "poses_3d_track1.png").size[0] > 100


@pytest.mark.parametrize("make,args,msg", [
    (lambda d: np.save(d / "kp.npy", _pixels()), ["--format", "h36m"], "look like pixels"),
    (lambda d: np.save(d / "kp.npy", _pixels()), [], "give --format h36m or --format coco"),
    (lambda d: np.save(d / "kp.npy", np.zeros((3, 15, 2))), ["--format", "h36m", "--normalized"], "15 joints"),
    (lambda d: (d / "kp.npy").write_text("garbage"), ["--format", "coco"], "kp.npy: not a"),
])
def test_cli_guards(ckpt, tmp_path, capsys, make, args, msg):
    make(tmp_path)
    rc, out, err = _cli(["--checkpoint", ckpt[0], "--keypoints", tmp_path / "kp.npy", "--out", tmp_path / "o",
                         "--device", "cpu", *args], capsys)
    assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cli_bad_checkpoint_existing_outputs_and_debug(ckpt, tmp_path, capsys):
    np.save(tmp_path / "kp.npy", _pixels())
    base = ["--keypoints", tmp_path / "kp.npy", "--format", "h36m", "--image-size", W, H, "--device", "cpu"]
    (tmp_path / "bad.pt").write_text("nope")
    rc, _, err = _cli(["--checkpoint", tmp_path / "bad.pt", "--out", tmp_path / "o", *base], capsys)
    assert rc == 2 and "not a PyTorch checkpoint" in err and not (tmp_path / "o").exists()
    out = tmp_path / "o2"
    out.mkdir()
    (out / "poses_3d.npz").write_bytes(b"keep me")
    rc, _, err = _cli(["--checkpoint", ckpt[0], "--out", out, *base], capsys)
    assert rc == 2 and "already holds poses_3d.npz" in err and (out / "poses_3d.npz").read_bytes() == b"keep me"
    assert _cli(["--checkpoint", ckpt[0], "--out", out, "--overwrite", *base], capsys)[0] == 0
    with pytest.raises(DataError):
        main(["--checkpoint", str(ckpt[0]), "--keypoints", str(tmp_path / "kp.npy"), "--format", "h36m",
              "--out", str(tmp_path / "o3"), "--debug"])


def test_symmetric_bones_option(ckpt, tmp_path, capsys):
    """``symmetric_bones=True`` (and ``--symmetric-bones``) is the plain lift passed through
    :func:`hgn_pyg.data.kinematics.symmetric_bones` (tolerance 1e-5 m, float32 output)."""
    from hgn_pyg.data.kinematics import bone_lengths, symmetric_bones
    from hgn_pyg.graphs.skeleton import H36M

    path, model = ckpt
    uv = _pixels(5)
    plain = Lifter.from_checkpoint(path, device="cpu")(uv, image_size=(W, H))
    sym = Lifter.from_checkpoint(path, device="cpu", symmetric_bones=True)(uv, image_size=(W, H))
    want = symmetric_bones(torch.from_numpy(plain).double(), H36M.parents, H36M.flip_pairs).numpy()
    np.testing.assert_allclose(sym, want, atol=TOL)
    L = bone_lengths(torch.from_numpy(sym).double(), H36M.parents).numpy()
    assert max(abs(L[:, a] - L[:, b]).max() for a, b in H36M.flip_pairs) < 1e-5
    assert not np.allclose(sym, plain, atol=1e-4)  # the random model is lopsided: the option acts
    joints, meta = _cli_lift(path, uv, tmp_path, "--symmetric-bones", capsys)
    np.testing.assert_allclose(joints, sym, atol=TOL)
    assert meta["symmetric_bones"] is True


def _cli_lift(path, uv, tmp_path, flag, capsys):
    """``hgn-lift`` of H36M pixels ``uv`` with one option flag: ``(joints_3d, poses_3d.json)``."""
    np.save(tmp_path / "kp.npy", uv)
    rc, _, err = _cli(["--checkpoint", path, "--keypoints", tmp_path / "kp.npy", "--format", "h36m",
                       "--image-size", W, H, "--out", tmp_path / "o", "--device", "cpu", flag], capsys)
    assert rc == 0, err
    return (np.load(tmp_path / "o" / "poses_3d.npz")["joints_3d"],
            json.loads((tmp_path / "o" / "poses_3d.json").read_text()))


@pytest.mark.parametrize("option", ["symmetric_bones", "flip_test"])
def test_output_option_default_comes_from_the_checkpoint(ckpt, tmp_path, capsys, option):
    """A checkpoint written with ``TEST.symmetric_bones: true`` / ``TEST.flip_test: true``
    (``inference_record(..., option=True)``: ``output[option]``) lifts that way unless told
    otherwise (``option=False`` / ``--no-symmetric-bones`` / ``--no-flip-test``); the other option
    stays off; exported lifters carry it."""
    from hgn_pyg.inference.export import export_model

    other = {"symmetric_bones": "flip_test", "flip_test": "symmetric_bones"}[option]
    flag_off = "--no-" + option.replace("_", "-")
    path, model = ckpt
    record = inference_record(SECTION, _hierarchy(), faces=icosphere(3)[1], **{option: True})
    assert record["output"][option] is True and other not in record["output"]
    assert option not in inference_record(SECTION, _hierarchy())["output"]
    on_path = tmp_path / "on.pt"
    torch.save({"format": "hgn_pyg", "version": CHECKPOINT_VERSION, "model": model.state_dict(),
                "config": {"MODEL": SECTION}, **record}, on_path)
    uv = _pixels(5)
    want = Lifter.from_checkpoint(path, device="cpu", **{option: True})(uv, image_size=(W, H))
    plain = Lifter.from_checkpoint(path, device="cpu")(uv, image_size=(W, H))
    default = Lifter.from_checkpoint(on_path, device="cpu")
    assert getattr(default, option) and not getattr(default, other)
    np.testing.assert_allclose(default(uv, image_size=(W, H)), want, atol=TOL)
    np.testing.assert_allclose(Lifter.from_checkpoint(on_path, device="cpu", **{option: False})(
        uv, image_size=(W, H)), plain, atol=TOL)
    np.save(tmp_path / "kp.npy", uv)
    for flag, expect, ref in (([], True, want), ([flag_off], False, plain)):
        out = tmp_path / f"o{len(flag)}"
        rc, _, err = _cli(["--checkpoint", on_path, "--keypoints", tmp_path / "kp.npy", "--format", "h36m",
                           "--image-size", W, H, "--out", out, "--device", "cpu", *flag], capsys)
        assert rc == 0, err
        assert json.loads((out / "poses_3d.json").read_text())[option] is expect
        np.testing.assert_allclose(np.load(out / "poses_3d.npz")["joints_3d"], ref, atol=TOL)
    # an exported lifter keeps the checkpoint's choice
    pytest.importorskip("onnxruntime")
    from hgn_pyg.models import load_model

    onnx_path = export_model(*load_model(str(on_path), map_location="cpu"), "onnx", tmp_path / "on.onnx",
                             exporter="legacy", check=False)
    exported = Lifter.from_checkpoint(onnx_path)
    assert getattr(exported, option)
    np.testing.assert_allclose(exported(uv, image_size=(W, H)), want, atol=1e-4)


@pytest.mark.parametrize("field", ["symmetric_bones", "flip_test"])
def test_output_option_fields_must_be_boolean(ckpt, tmp_path, field):
    from hgn_pyg.errors import CheckpointError

    path, model = ckpt
    bad = tmp_path / "bad.pt"
    record = inference_record(SECTION, _hierarchy())
    record["output"][field] = "yes"
    torch.save({"format": "hgn_pyg", "version": CHECKPOINT_VERSION, "model": model.state_dict(),
                "config": {"MODEL": SECTION}, **record}, bad)
    with pytest.raises(CheckpointError, match=f"output.{field}"):
        Lifter.from_checkpoint(bad, device="cpu")


def _mirror_by_name(a: np.ndarray, names, width: float = 0.0) -> np.ndarray:
    """Independent mirror: ``x -> width - x`` and every ``L_*`` / ``R_*`` (``left_*`` / ``right_*``)
    joint swapped with its twin, found by name."""
    def twin(n):
        for l, r in (("L_", "R_"), ("left_", "right_")):
            if n.startswith(l):
                return r + n[len(l):]
            if n.startswith(r):
                return l + n[len(r):]
        return n
    out = a[..., [list(names).index(twin(n)) for n in names], :].copy()
    out[..., 0] = width - out[..., 0]
    return out


def test_flip_test_is_the_mean_with_the_mirrored_lift(ckpt, tmp_path, capsys):
    """``flip_test=True`` (and ``--flip-test``) returns the mean of the plain lift and the mirror of
    the plain lift of the mirrored pixels (``u -> W - u``, left/right swapped by name): an
    independent NumPy computation from two plain lifts (tolerance 1e-5 m); for H36M and COCO input;
    meshes are the plain ones."""
    from hgn_pyg.graphs.skeleton import COCO17, H36M

    path, model = ckpt
    plain = Lifter.from_checkpoint(path, device="cpu")
    flip = Lifter.from_checkpoint(path, device="cpu", flip_test=True)
    assert flip.flip_test and not plain.flip_test
    uv = _pixels(5)
    want = (plain(uv, image_size=(W, H))
            + _mirror_by_name(plain(_mirror_by_name(uv, H36M.joint_names, W), image_size=(W, H)), H36M.joint_names)) / 2
    got = flip(uv, image_size=(W, H))
    np.testing.assert_allclose(got, want, atol=TOL)
    assert not np.allclose(got, plain(uv, image_size=(W, H)), atol=1e-4)  # the random model is not mirror-equivariant
    coco = np.random.default_rng(1).uniform(200, 800, (4, 17, 2))
    want_c = (plain(coco, image_size=(W, H), keypoint_format="coco")
              + _mirror_by_name(plain(_mirror_by_name(coco, COCO17.joint_names, W), image_size=(W, H),
                                      keypoint_format="coco"), H36M.joint_names)) / 2
    np.testing.assert_allclose(flip(coco, image_size=(W, H), keypoint_format="coco"), want_c, atol=TOL)
    j, meshes = flip(uv, image_size=(W, H), return_meshes=True)
    _, plain_meshes = plain(uv, image_size=(W, H), return_meshes=True)
    np.testing.assert_allclose(j, want, atol=TOL)
    for a, b in zip(meshes, plain_meshes):
        np.testing.assert_allclose(a, b, atol=TOL)
    joints, meta = _cli_lift(path, uv, tmp_path, "--flip-test", capsys)
    np.testing.assert_allclose(joints, want, atol=TOL)
    assert meta["flip_test"] is True



def _hierarchy():
    verts, faces = icosphere(3)
    return mesh_hierarchy(faces, len(verts), levels=6)
