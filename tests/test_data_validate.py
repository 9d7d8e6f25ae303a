"""Every bad input of the annotation readers gives one DataError naming the file and the key;
a seeded fuzz pass over random corruptions gives DataError or a valid data set, nothing else."""
import json
import random
import time
from pathlib import Path

import numpy as np
import pytest

from hgn_pyg.data.human36m import Human36M
from hgn_pyg.data.videopose3d import VideoPose3D
from hgn_pyg.errors import DataError, HGNError

from test_data_fixtures import write_h36m, write_videopose3d


@pytest.fixture()
def root(tmp_path):
    return write_h36m(tmp_path / "h36m", subjects=(9,), frames=2)


def _ann(root, kind, s=9):
    return Path(root) / "annotations" / f"Human36M_subject{s}_{kind}.json"


def _edit(root, kind, fn):
    p = _ann(root, kind)
    obj = json.loads(p.read_text())
    fn(obj)
    p.write_text(json.dumps(obj))
    return p


def _load(root, **kw):
    return Human36M(root, split="test", subjects=[9], subsample=1, use_cache=False, **kw)


def _set_joint(value):
    def fn(o):
        o["2"]["1"]["1"] = value
    return fn


def _first_image(key, value):
    def fn(o):
        o["images"][0][key] = value
    return fn


CASES = [
    # (id, kind, mutation, expected message fragment)
    ("joints_16x3", "joint_3d", _set_joint([[0.0, 0.0, 900.0]] * 16),
     'Human36M_subject9_joint_3d.json: ["2"]["1"]["1"]: expected 17×3 joints, got 16×3'),
    ("joints_17x2", "joint_3d", _set_joint([[0.0, 900.0]] * 17), "got 17×2"),
    ("joints_nan", "joint_3d", _set_joint([[float("nan"), 0.0, 900.0]] * 17),
     '["2"]["1"]["1"]: joints contains NaN or Inf'),
    ("joints_inf", "joint_3d", _set_joint([[float("inf"), 0.0, 900.0]] * 17), "NaN or Inf"),
    ("joints_string", "joint_3d", _set_joint("oops"), "as numbers"),
    ("joints_missing_frame", "joint_3d", lambda o: o["2"]["1"].pop("1"),
     '_joint_3d.json: ["2"]["1"]["1"]: missing key'),
    ("joints_missing_action", "joint_3d", lambda o: o.pop("5"), '_joint_3d.json: ["5"]: missing key'),
    ("joints_not_object", "joint_3d", lambda o: o.__setitem__("2", [1, 2]), 'expected an object'),
    ("images_missing", "data", lambda o: o.pop("images"), '_data.json: ["images"]: missing key'),
    ("annotations_not_list", "data", lambda o: o.__setitem__("annotations", {}),
     '["annotations"]: expected a list'),
    ("frame_idx_string", "data", _first_image("frame_idx", "0"),
     '["images"][0]["frame_idx"]: expected an integer'),
    ("cam_idx_missing", "data", lambda o: o["images"][0].pop("cam_idx"),
     '["images"][0]["cam_idx"]: missing key'),
    ("width_zero", "data", _first_image("width", 0), '["images"][0]["width"]: expected a positive'),
    ("subject_mismatch", "data", _first_image("subject", 5), "image of subject 5"),
    ("action_out_of_range", "data", _first_image("action_idx", 17), "action_idx must be in 2..16"),
    ("unknown_image_id", "data", lambda o: o["annotations"][0].__setitem__("image_id", 99999),
     '["annotations"][0]["image_id"]: image id 99999'),
    ("bbox_short", "data", lambda o: o["annotations"][0].__setitem__("bbox", [1, 2, 3]),
     '["annotations"][0]["bbox"]: expected 4 bbox values (x, y, w, h), got 3'),
    ("bbox_nan", "data", lambda o: o["annotations"][0].__setitem__("bbox", [1, 2, float("nan"), 4]),
     "NaN or Inf"),
    ("camera_missing", "camera", lambda o: o.pop("3"), '_camera.json: ["3"]: missing key (camera 3)'),
    ("camera_R_shape", "camera", lambda o: o["1"].__setitem__("R", [[1, 0, 0], [0, 1, 0]]),
     '["1"]["R"]: expected 3×3 rotation R, got 2×3'),
    ("camera_R_not_rotation", "camera", lambda o: o["1"].__setitem__("R", [[2, 0, 0], [0, 1, 0], [0, 0, 1]]),
     '["1"]["R"]: R is not a rotation matrix'),
    ("camera_t_inf", "camera", lambda o: o["2"].__setitem__("t", [0, float("inf"), 0]),
     '["2"]["t"]: translation t (mm) contains NaN or Inf'),
    ("camera_f_negative", "camera", lambda o: o["2"].__setitem__("f", [-1000, 1000]),
     '["2"]["f"]: focal lengths must be positive'),
    ("smpl_pose_short", "smpl_param", lambda o: o["2"]["1"]["0"].__setitem__("pose", [0.0] * 69),
     '_smpl_param.json: ["2"]["1"]["0"]["pose"]: expected 72 SMPL pose values, got 69'),
    ("smpl_trans_missing", "smpl_param", lambda o: o["5"]["1"]["1"].pop("trans"),
     '["5"]["1"]["1"]["trans"]: missing key'),
    ("smpl_shape_nan", "smpl_param", lambda o: o["5"]["1"]["1"].__setitem__("shape", [float("nan")] * 10),
     "NaN or Inf"),
    ("joints_float32_overflow", "joint_3d", _set_joint([[1e39, 0.0, 900.0]] * 17),
     '["2"]["1"]["1"]: joints holds 1e+39, beyond the float32 range'),
    ("camera_pixels_float32_overflow", "camera",
     lambda o: o["2"].update(f=[3.4e38, 3.4e38], c=[3.4e38, 3.4e38]), "out of the float32 range"),
    ("top_level_list", "camera", lambda o: None, None),  # placeholder replaced below
]
CASES = CASES[:-1]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_annotation_values(root, case):
    _, kind, fn, fragment = case
    path = _edit(root, kind, fn)
    with pytest.raises(DataError) as exc:
        _load(root)
    msg = str(exc.value)
    assert str(path) in msg, msg
    assert fragment in msg, msg
    assert "\n" not in msg
    assert isinstance(exc.value, HGNError) and isinstance(exc.value, ValueError)


@pytest.mark.parametrize("damage", ["truncated", "malformed", "empty", "binary", "top_list"])
def test_unparseable_json(root, damage):
    p = _ann(root, "joint_3d")
    text = p.read_text()
    if damage == "truncated":
        p.write_text(text[: len(text) // 2])
    elif damage == "malformed":
        p.write_text(text.replace(":", "=", 1))
    elif damage == "empty":
        p.write_text("")
    elif damage == "binary":
        p.write_bytes(b"\xff\xfe\x00garbage\x80")
    else:
        p.write_text("[1, 2, 3]")
    with pytest.raises(DataError) as exc:
        _load(root)
    assert str(p) in str(exc.value)
    if damage in ("truncated", "malformed", "empty"):
        assert "malformed or truncated JSON" in str(exc.value)


def test_missing_root_file_and_subject(root, tmp_path):
    with pytest.raises(DataError, match="data root not found"):
        Human36M(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"Human36M_subject11_data.json: file not found \(subject 11"):
        Human36M(root, split="test", subjects=[9, 11])
    _ann(root, "smpl_param").unlink()
    with pytest.raises(DataError, match="Human36M_subject9_smpl_param.json: file not found"):
        _load(root)
    assert len(_load(root, joints_only=True)) > 0              # SMPL file not needed then


def test_bad_arguments(root):
    with pytest.raises(DataError, match="split"):
        Human36M(root, split="val")
    with pytest.raises(DataError, match="protocol"):
        Human36M(root, split="test", protocol=3)
    with pytest.raises(DataError, match="subsample"):
        Human36M(root, split="test", subjects=[9], subsample=0)


def test_nothing_left_is_an_error(root):
    with pytest.raises(DataError, match="no samples left"):
        _load(root, skip=[(9, a, s) for a in (2, 5, 10, 13) for s in (1, 2)])


def test_joints_behind_camera(root):
    cams = json.loads(_ann(root, "camera").read_text())
    R, t = np.array(cams["1"]["R"]), np.array(cams["1"]["t"])
    behind = np.linalg.solve(R, np.array([0.0, 0.0, -500.0]) - t)   # world point at Z = -500
    _edit(root, "joint_3d", _set_joint([behind.tolist()] * 17))
    with pytest.raises(DataError, match=r'\["2"\]\["1"\]\["1"\]: joints behind camera'):
        _load(root)


# ------------------------------------------------------------------------------------------------
# fuzz: random corruptions → DataError or a valid data set, never another exception
# ------------------------------------------------------------------------------------------------
_BAD_VALUES = ["x", None, {}, [], [1, 2], True, 1e308, -1, float("nan"), float("inf"), [[1, 2, 3]],
               {"a": 1}, 0, 2 ** 70]


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:4]):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def _corrupt_json(p: Path, rng: random.Random):
    raw = p.read_bytes()
    mode = rng.choice(["truncate", "flip", "delete", "retype", "retype", "nan"])
    if mode == "truncate":
        p.write_bytes(raw[: rng.randrange(len(raw))])
        return
    if mode == "flip":
        b = bytearray(raw)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        p.write_bytes(bytes(b))
        return
    obj = json.loads(raw)
    paths = list(_paths(obj))
    path = rng.choice(paths)
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    if mode == "delete":
        del parent[path[-1]]
    elif mode == "retype":
        parent[path[-1]] = rng.choice(_BAD_VALUES)
    else:
        leaf_paths = [q for q in paths if isinstance(_get(obj, q), (int, float))
                      and not isinstance(_get(obj, q), bool)]
        q = rng.choice(leaf_paths)
        parent = obj
        for k in q[:-1]:
            parent = parent[k]
        parent[q[-1]] = rng.choice([float("nan"), float("inf"), -float("inf")])
    p.write_text(json.dumps(obj))


def _get(obj, path):
    for k in path:
        obj = obj[k]
    return obj


def test_fuzz_annotation_files(tmp_path):
    clean = write_h36m(tmp_path / "clean", subjects=(9,), frames=1)
    kinds = ["data", "camera", "joint_3d", "smpl_param"]
    originals = {k: _ann(clean, k).read_bytes() for k in kinds}
    rng = random.Random(1234)
    outcomes = {"error": 0, "ok": 0}
    deadline = time.monotonic() + 6.0
    trials = 0
    while trials < 400 and time.monotonic() < deadline:
        trials += 1
        for k in kinds:
            _ann(clean, k).write_bytes(originals[k])
        for k in rng.sample(kinds, rng.randint(1, 2)):
            _corrupt_json(_ann(clean, k), rng)
        try:
            ds = _load(clean)
            assert len(ds) > 0
            outcomes["ok"] += 1
        except DataError as exc:
            assert "annotations" in str(exc) or "Human36M" in str(exc), str(exc)
            outcomes["error"] += 1
    assert trials >= 50 and outcomes["error"] > trials // 3, (trials, outcomes)


def test_fuzz_videopose3d_files(tmp_path):
    p3, p2, pos3d, pos2d = write_videopose3d(tmp_path, subjects=("S9",), frames=3)
    orig = {p: p.read_bytes() for p in (p3, p2)}
    rng = np.random.default_rng(7)
    pyrng = random.Random(7)
    deadline = time.monotonic() + 3.0
    trials = errors = 0
    while trials < 150 and time.monotonic() < deadline:
        trials += 1
        for p, b in orig.items():
            p.write_bytes(b)
        mode = pyrng.choice(["truncate", "flip", "value", "value"])
        target = pyrng.choice([p3, p2])
        if mode == "truncate":
            target.write_bytes(orig[target][: pyrng.randrange(len(orig[target]))])
        elif mode == "flip":
            b = bytearray(orig[target])
            for _ in range(pyrng.randint(1, 8)):
                b[pyrng.randrange(len(b))] = pyrng.randrange(256)
            target.write_bytes(bytes(b))
        else:
            d3 = {s: dict(a) for s, a in pos3d.items()}
            d2 = {s: {k: list(v) for k, v in a.items()} for s, a in pos2d.items()}
            name = pyrng.choice(sorted(d3["S9"]))
            choice = pyrng.randrange(7)
            if choice == 0:
                d3["S9"][name] = d3["S9"][name][:, :20]
            elif choice == 1:
                bad = d2["S9"][name][0].copy()
                bad[0, 0, 0] = np.nan
                d2["S9"][name][0] = bad
            elif choice == 2:
                del d2["S9"][name]
            elif choice == 3:
                d2["S9"][name] = d2["S9"][name][:3]
            elif choice == 4:
                d3["S9"][name] = "not an array"
            elif choice == 5:
                d2["S9"][name][1] = d2["S9"][name][1][:1]
            else:
                d3["S9"]["Dancing"] = d3["S9"][name]
            np.savez(p3, positions_3d=d3)
            np.savez(p2, positions_2d=d2, metadata={"num_joints": 17})
        try:
            VideoPose3D(p3, p2, split="test", subjects=["S9"], subsample=1)
        except DataError:
            errors += 1
    assert trials >= 20 and errors > 0
