"""No file a user points us at runs code: hostile pickles on every path that reads one.

Each payload would create a marker file when unpickled by ``pickle.load`` /
``np.load(allow_pickle=True)``; every test asserts the refusal names the file and the refused
global, and that the marker file is absent.
"""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from hgn_pyg.errors import DataError
from hgn_pyg.untrusted import load_npz, load_pickle, loads_pickle

REPO = Path(__file__).resolve().parents[1]
TEST_CFG = REPO / "configs" / "hgn_test.yaml"


class Touch:
    """Unpickling runs ``os.system("touch <marker>")``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Exec:
    """Unpickling runs ``builtins.exec`` (the marker written from Python)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def test_the_payload_works_with_plain_pickle(tmp_path):
    """The payloads are real: plain pickle runs them (so the absent marker below means something)."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(Touch(marker)))
    assert marker.exists()
    marker.unlink()
    pickle.loads(pickle.dumps(Exec(marker)))
    assert marker.exists()


@pytest.mark.parametrize("payload", [Touch, Exec])
def test_load_pickle_refuses(tmp_path, payload):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3)), "x": [payload(marker)]}, protocol=2))
    with pytest.raises(DataError) as info:
        load_pickle(path)
    msg = str(info.value)
    assert str(path) in msg and ("system" in msg or "builtin__.exec" in msg) and "\n" not in msg
    assert not marker.exists()


def test_load_pickle_admits_the_formats(tmp_path):
    """Arrays (every protocol), NumPy scalars and dtypes, scipy.sparse, plain containers."""
    obj = {"a": np.arange(6, dtype=np.uint32).reshape(2, 3), "s": sp.csc_matrix(np.eye(3)),
           "r": sp.csr_matrix(np.eye(2)), "c": sp.coo_matrix(np.eye(2)), "n": np.float32(2.5),
           "l": [1, 2.0, "x", b"y", (3, None), {4}, frozenset({5})], "d": np.dtype("<f8"),
           "o": np.array([{"k": np.ones(2)}], dtype=object)}
    for proto in range(0, pickle.HIGHEST_PROTOCOL + 1):
        back = loads_pickle(pickle.dumps(obj, protocol=proto))
        assert np.array_equal(back["a"], obj["a"]) and back["a"].dtype == np.uint32
        assert (back["s"] != obj["s"]).nnz == 0 and sp.issparse(back["r"]) and sp.issparse(back["c"])
        assert back["n"] == np.float32(2.5) and back["l"] == obj["l"] and back["d"] == obj["d"]
        assert np.array_equal(back["o"][0]["k"], np.ones(2))


def test_numpy_callables_that_run_code_are_refused(tmp_path):
    marker = tmp_path / "marker"

    class Runstring:
        def __reduce__(self):
            from numpy.testing._private.utils import runstring
            return (runstring, (f"open({str(marker)!r}, 'w').close()", {}))

    with pytest.raises(DataError, match="runstring"):
        loads_pickle(pickle.dumps(Runstring()))
    with pytest.raises(DataError, match="builtins.getattr"):
        loads_pickle(b"cbuiltins\ngetattr\n(cbuiltins\nobject\nS'__subclasses__'\ntR.")
    assert not marker.exists()


def _evil_npz(path, marker, key="positions_2d", **arrays):
    arrays[key] = np.array({"S1": Touch(marker)}, dtype=object)
    np.savez(path, **arrays)
    return path


def test_load_npz_refuses_and_reads_plain_arrays(tmp_path):
    marker = tmp_path / "marker"
    path = _evil_npz(tmp_path / "evil.npz", marker, plain=np.arange(4.0))
    with pytest.raises(DataError) as info:
        load_npz(path)
    assert str(path) in str(info.value) and "positions_2d" in str(info.value) and "system" in str(info.value)
    assert np.array_equal(load_npz(path, keys=["plain"])["plain"], np.arange(4.0))  # other keys stay readable
    assert not marker.exists()
    good = tmp_path / "good.npz"
    np.savez(good, d=np.array({"S1": {"Walk": np.ones((2, 3))}}, dtype=object), a=np.eye(2))
    out = load_npz(good)
    assert np.array_equal(out["d"].item()["S1"]["Walk"], np.ones((2, 3))) and np.array_equal(out["a"], np.eye(2))
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        load_npz(tmp_path / "bad.npz")


def _evil_body_model(tmp_path, marker, suffix=".pkl"):
    from hgn_pyg.data.body_model import default_body_model_path

    data = pickle.loads(default_body_model_path().read_bytes())
    data["bs_style"] = Touch(marker)
    path = tmp_path / f"evil_body{suffix}"
    if suffix == ".pkl":
        path.write_bytes(pickle.dumps(data, protocol=2))
    else:
        np.savez(path, **{k: np.array(v, dtype=object) if not isinstance(v, np.ndarray) else v
                          for k, v in data.items()})
    return path


@pytest.mark.parametrize("suffix", [".pkl", ".npz"])
def test_load_body_model_refuses(tmp_path, suffix):
    from hgn_pyg.data.body_model import load_body_model

    marker = tmp_path / "marker"
    path = _evil_body_model(tmp_path, marker, suffix)
    with pytest.raises(DataError) as info:
        load_body_model(path)
    assert str(path) in str(info.value) and "system" in str(info.value)
    assert not marker.exists()


def test_chumpy_smpl_pkl_is_refused_with_advice(tmp_path):
    from hgn_pyg.data.body_model import load_body_model

    payload = b"\x80\x02cchumpy.ch\nCh\nq\x00)\x81q\x01}q\x02b."
    (tmp_path / "SMPL.pkl").write_bytes(payload)
    with pytest.raises(DataError, match="chumpy.ch.Ch.*chumpy-free"):
        load_body_model(tmp_path / "SMPL.pkl")


def test_videopose3d_refuses(tmp_path):
    from hgn_pyg.data.videopose3d import VideoPose3D

    marker = tmp_path / "marker"
    npz3 = _evil_npz(tmp_path / "data_3d_h36m.npz", marker, key="positions_3d")
    npz2 = _evil_npz(tmp_path / "data_2d_h36m_gt.npz", marker)
    with pytest.raises(DataError) as info:
        VideoPose3D(npz3, npz2, split="train", subjects=[1])
    assert "data_3d_h36m.npz" in str(info.value) and "system" in str(info.value)
    assert not marker.exists()


def test_convert_mesh_refuses(tmp_path, capsys):
    from hgn_pyg import convert

    marker = tmp_path / "marker"
    mesh = tmp_path / "SMPL_NEUTRAL.pkl"
    mesh.write_bytes(pickle.dumps({"f": Touch(marker)}, protocol=2))
    rc = convert.main(["--official", str(tmp_path / "final.pth.tar"), "--mesh", str(mesh),
                       "--out", str(tmp_path / "out.pt")])
    err = capsys.readouterr().err
    assert rc == 2 and str(mesh) in err and "system" in err and len(err.strip().splitlines()) == 1
    npz = _evil_npz(tmp_path / "mesh.npz", marker, key="f")
    rc = convert.main(["--official", str(tmp_path / "final.pth.tar"), "--mesh", str(npz),
                       "--out", str(tmp_path / "out.pt")])
    assert rc == 2 and "system" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out.pt").exists()


def test_synthetic_cli_refuses(tmp_path, capsys):
    from hgn_pyg.data import synthetic

    marker = tmp_path / "marker"
    body = _evil_body_model(tmp_path, marker)
    rc = synthetic.main(["--out", str(tmp_path / "syn"), "--frames", "2", "--subjects", "1",
                         "--body-model", str(body)])
    err = capsys.readouterr().err
    assert rc == 2 and str(body) in err and "system" in err
    assert not marker.exists() and not (tmp_path / "syn" / "annotations").exists()


@pytest.mark.parametrize("cli_name", ["train", "test"])
def test_train_and_test_refuse_a_hostile_body_model(tmp_path, capsys, cli_name):
    import torch

    from hgn_pyg import test as test_cli
    from hgn_pyg import train as train_cli

    marker = tmp_path / "marker"
    body = _evil_body_model(tmp_path, marker)
    out = tmp_path / "exp"
    argv = ["--config", str(TEST_CFG), "--set", f"DATASET.root={tmp_path / 'data'}",
            "--set", f"EXPERIMENT.output_root={out}", "--set", f"DATASET.body_model_path={body}"]
    if cli_name == "test":
        torch.save({"model": {}}, tmp_path / "ckpt.pth.tar")
        argv += ["--checkpoint", str(tmp_path / "ckpt.pth.tar")]
    rc = (train_cli if cli_name == "train" else test_cli).main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and str(body) in err and "system" in err, err
    assert not marker.exists()
    assert not out.exists() and not (tmp_path / "data").exists()  # nothing written


def test_train_refuses_a_hostile_videopose3d_file(tmp_path, capsys):
    from hgn_pyg import train as train_cli

    marker = tmp_path / "marker"
    root = tmp_path / "vp"
    root.mkdir()
    _evil_npz(root / "data_3d_h36m.npz", marker, key="positions_3d")
    _evil_npz(root / "data_2d_h36m_gt.npz", marker)
    out = tmp_path / "exp"
    rc = train_cli.main(["--config", str(TEST_CFG), "--set", f"DATASET.root={root}", "--set", "DATASET.format=videopose3d",
                         "--set", f"EXPERIMENT.output_root={out}"])
    err = capsys.readouterr().err
    assert rc == 2 and "data_3d_h36m.npz" in err and "system" in err, err
    assert not marker.exists() and not out.exists()
