"""Keypoint file readers: every format with a good file (values read back exactly) and malformed
files (one DataError naming the file and what is wrong); format detection."""
import json

import numpy as np
import pytest

from hgn_pyg.inference.keypoint_files import detect_format, read_keypoints
from hgn_pyg.errors import DataError

RNG = np.random.default_rng(0)


def _kp(t=3):
    return RNG.uniform(0, 500, size=(t, 17, 2))


def test_npy_and_npz_arrays(tmp_path):
    a = _kp(4)
    np.save(tmp_path / "a.npy", a)
    f = read_keypoints(tmp_path / "a.npy", "h36m")
    assert f.keypoint_format == "h36m" and len(f.tracks) == 1 and f.num_frames == 4
    np.testing.assert_array_equal(f.tracks[0].keypoints, a)
    assert f.tracks[0].scores is None and f.tracks[0].frames.tolist() == [0, 1, 2, 3]
    # [T, 17, 3] carries scores; one pose [17, 2] is one frame
    s = RNG.uniform(size=(4, 17))
    np.save(tmp_path / "b.npy", np.concatenate([a, s[..., None]], -1).astype(np.float32))
    f = read_keypoints(tmp_path / "b.npy", "coco")
    assert f.keypoint_format == "coco"
    np.testing.assert_allclose(f.tracks[0].scores, s, rtol=1e-6)
    np.save(tmp_path / "one.npy", a[0].astype(np.int32))
    assert read_keypoints(tmp_path / "one.npy", "h36m").tracks[0].keypoints.shape == (1, 17, 2)
    np.savez(tmp_path / "c.npz", keypoints=a, scores=s, keypoint_format="coco", normalized=False)
    assert detect_format(tmp_path / "c.npz") == "coco"
    f = read_keypoints(tmp_path / "c.npz")
    assert f.keypoint_format == "coco" and f.normalized is False
    np.testing.assert_array_equal(f.tracks[0].scores, s)
    np.savez(tmp_path / "d.npz", poses=a)  # the only array, any name
    np.testing.assert_array_equal(read_keypoints(tmp_path / "d.npz", "h36m").tracks[0].keypoints, a)


@pytest.mark.parametrize("arr,msg", [
    (np.zeros((3, 18, 2)), "18 joints per pose"),
    (np.zeros((3, 17, 4)), r"expected shape \[T, 17, 2\]"),
    (np.zeros((0, 17, 2)), r"expected shape"),
    (np.array(["a"] * 34).reshape(17, 2), "expected numbers"),
])
def test_bad_arrays(tmp_path, arr, msg):
    np.save(tmp_path / "x.npy", arr)
    with pytest.raises(DataError, match=msg) as e:
        read_keypoints(tmp_path / "x.npy", "h36m")
    assert "x.npy" in str(e.value)


def test_bad_array_files(tmp_path):
    (tmp_path / "t.npy").write_text("not numpy")
    with pytest.raises(DataError, match="t.npy: not a"):
        read_keypoints(tmp_path / "t.npy", "h36m")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="obj.npy"):
        read_keypoints(tmp_path / "obj.npy", "h36m")
    np.savez(tmp_path / "two.npz", a=_kp(), b=_kp())
    with pytest.raises(DataError, match="no 'keypoints' array"):
        read_keypoints(tmp_path / "two.npz", "h36m")
    np.savez(tmp_path / "sc.npz", keypoints=_kp(3), scores=np.zeros((2, 17)))
    with pytest.raises(DataError, match=r"scores: expected shape \[3, 17\]"):
        read_keypoints(tmp_path / "sc.npz", "h36m")
    with pytest.raises(DataError, match="not found"):
        read_keypoints(tmp_path / "nope.npy", "h36m")
    with pytest.raises(DataError, match="--format"):
        read_keypoints(tmp_path / "sc.npz", "openpose")


def _coco_results(frames=3, people=1, track=False, scores=True):
    out = []
    for t in range(frames):
        for p in range(people):
            kp = np.concatenate([RNG.uniform(0, 500, (17, 2)), RNG.uniform(size=(17, 1))], 1)
            d = {"image_id": 100 + t, "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 0.9}
            if track:
                d["track_id"] = 7 + p
            out.append(d)
    return out


def test_coco_results_json(tmp_path):
    res = _coco_results(frames=3, people=2)
    (tmp_path / "r.json").write_text(json.dumps(res[::-1]))  # order does not matter
    assert detect_format(tmp_path / "r.json") == "coco"
    f = read_keypoints(tmp_path / "r.json")
    assert f.keypoint_format == "coco" and len(f.tracks) == 2 and f.num_frames == 6
    t0 = f.tracks[0]
    assert t0.frames.tolist() == [100, 101, 102]
    # without track ids, the i-th detection of a frame is person i (in file order: reversed here)
    first = np.array(res[5]["keypoints"]).reshape(17, 3)
    np.testing.assert_array_equal(t0.keypoints[2], first[:, :2])
    np.testing.assert_array_equal(t0.scores[2], first[:, 2])
    # with track ids: grouped by them
    (tmp_path / "t.json").write_text(json.dumps(_coco_results(frames=4, people=2, track=True)))
    f = read_keypoints(tmp_path / "t.json", "coco")
    assert [t.name for t in f.tracks] == ["track 7", "track 8"] and all(len(t.frames) == 4 for t in f.tracks)


def test_coco_annotation_file_gives_image_sizes(tmp_path):
    res = _coco_results(frames=2)
    doc = {"images": [{"id": 100, "width": 640, "height": 480}, {"id": 101, "width": 1280, "height": 720}],
           "annotations": res}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    f = read_keypoints(tmp_path / "a.json")
    assert f.tracks[0].image_size.tolist() == [[640, 480], [1280, 720]]
    doc["annotations"][1]["image_id"] = 5
    (tmp_path / "b.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"annotations\[1\]: image_id 5 is not in 'images'"):
        read_keypoints(tmp_path / "b.json")


@pytest.mark.parametrize("mutate,msg", [
    (lambda r: r[0].update(keypoints=[1, 2, 3]), r"results\[0\].keypoints: expected 51 numbers"),
    (lambda r: r[1].pop("image_id"), r"results\[1\]: expected an object with 'image_id'"),
    (lambda r: r[0].update(keypoints=["x"] * 51), r"results\[0\].keypoints: expected numbers"),
    (lambda r: r[0].update(image_id=[1]), r"results\[0\].image_id: expected an integer"),
    (lambda r: r.__setitem__(1, dict(r[1], track_id=None)) or r[0].update(track_id=1), "without a track_id"),
    (lambda r: [d.update(track_id=1) for d in r] and [d.update(image_id=3) for d in r], "appears twice in frame 3"),
])
def test_bad_coco_json(tmp_path, mutate, msg):
    res = _coco_results(frames=3)
    mutate(res)
    (tmp_path / "r.json").write_text(json.dumps(res))
    with pytest.raises(DataError, match=msg) as e:
        read_keypoints(tmp_path / "r.json", "coco")
    assert "r.json" in str(e.value)


def test_bad_json_files(tmp_path):
    (tmp_path / "x.json").write_text("[1, 2")
    with pytest.raises(DataError, match=r"x.json: malformed or truncated JSON at line 1"):
        read_keypoints(tmp_path / "x.json")
    (tmp_path / "e.json").write_text("[]")
    with pytest.raises(DataError, match="neither COCO"):
        read_keypoints(tmp_path / "e.json")
    with pytest.raises(DataError, match="results: empty"):
        read_keypoints(tmp_path / "e.json", "coco")
    (tmp_path / "o.json").write_text('{"foo": 1}')
    with pytest.raises(DataError, match="without 'annotations'"):
        read_keypoints(tmp_path / "o.json")
    (tmp_path / "b.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DataError, match="not a UTF-8"):
        read_keypoints(tmp_path / "b.json")
    with pytest.raises(DataError, match="JSON files are COCO or MMPose"):
        read_keypoints(tmp_path / "e.json", "h36m")


def _mm_instance(track=None):
    d = {"keypoints": RNG.uniform(0, 500, (17, 2)).tolist(), "keypoint_scores": RNG.uniform(size=17).tolist(),
         "bbox": [[0, 0, 10, 10]], "bbox_score": 0.9}
    if track is not None:
        d["track_id"] = track
    return d


def test_mmpose_layouts(tmp_path):
    video = [{"frame_id": t, "instances": [_mm_instance(), _mm_instance()]} for t in range(3)]
    (tmp_path / "v.json").write_text(json.dumps(video))
    assert detect_format(tmp_path / "v.json") == "mmpose"
    f = read_keypoints(tmp_path / "v.json")
    assert f.keypoint_format == "coco" and len(f.tracks) == 2 and f.tracks[1].frames.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(f.tracks[1].keypoints[2], np.array(video[2]["instances"][1]["keypoints"]))
    np.testing.assert_array_equal(f.tracks[0].scores[0], np.array(video[0]["instances"][0]["keypoint_scores"]))
    image = [_mm_instance(), _mm_instance(), _mm_instance()]
    (tmp_path / "i.json").write_text(json.dumps(image))
    f = read_keypoints(tmp_path / "i.json")
    assert len(f.tracks) == 3 and f.num_frames == 3
    demo = {"meta_info": {"dataset_name": "coco"},
            "instance_info": [{"frame_id": t, "instances": [_mm_instance(track=4)]} for t in range(5)]}
    (tmp_path / "d.json").write_text(json.dumps(demo))
    f = read_keypoints(tmp_path / "d.json")
    assert [t.name for t in f.tracks] == ["track 4"] and len(f.tracks[0].frames) == 5


@pytest.mark.parametrize("doc,msg", [
    ([{"frame_id": 0, "instances": [{"keypoints": [[1, 2]] * 16}]}], r"\[0\].instances\[0\].keypoints: expected \[17, 2\]"),
    ([{"frame_id": 0, "instances": [dict(_mm_instance(), keypoint_scores=[1] * 3)]}], "expected 17 scores"),
    ([{"frame_id": 0, "instances": 5}], r"\[0\].instances: expected a list"),
    ([{"frame_id": 0, "instances": []}], "no instances"),
    ({"instance_info": 3}, "'instance_info' list"),
    ([{"frame_id": 0, "instances": [{"bbox": []}]}], "expected an instance object with 'keypoints'"),
    ([{"foo": 1}], "expected a list of instances"),
])
def test_bad_mmpose(tmp_path, doc, msg):
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=msg):
        read_keypoints(tmp_path / "m.json", "mmpose")


def _vp3d(tmp_path, name="vp.npz", layout="coco", positions=None, video_meta=True, scores=False):
    a = _kp(5)
    if scores:
        a = np.concatenate([a, RNG.uniform(size=(5, 17, 1))], -1)
    positions = positions if positions is not None else {"walk.mp4": {"custom": [a.astype(np.float32)]}}
    meta = {"layout_name": layout, "num_joints": 17,
            "keypoints_symmetry": [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]]}
    if video_meta:
        meta["video_metadata"] = {"walk.mp4": {"w": 1920, "h": 1080}}
    np.savez_compressed(tmp_path / name, positions_2d=positions, metadata=meta)
    return tmp_path / name, a


def test_videopose3d(tmp_path):
    path, a = _vp3d(tmp_path, scores=True)
    assert detect_format(path) == "videopose3d"
    f = read_keypoints(path)
    assert f.keypoint_format == "coco" and [t.name for t in f.tracks] == ["walk.mp4/custom/0"]
    t = f.tracks[0]
    np.testing.assert_allclose(t.keypoints, a[..., :2], rtol=1e-6)
    np.testing.assert_allclose(t.scores, a[..., 2], rtol=1e-6)
    assert t.image_size.tolist() == [[1920, 1080]] * 5
    # the ground-truth 2D file of VideoPose3D: subject -> action -> cameras, H36M layout
    gt = {"S9": {"Walking": [_kp(4), _kp(6)]}, "S11": {"Eating": [_kp(2)]}}
    path, _ = _vp3d(tmp_path, "gt.npz", layout="h36m", positions=gt, video_meta=False)
    f = read_keypoints(path)
    assert f.keypoint_format == "h36m" and [len(t.frames) for t in f.tracks] == [4, 6, 2]
    assert f.tracks[0].image_size is None


def test_bad_videopose3d(tmp_path):
    path, _ = _vp3d(tmp_path, layout="mpii")
    with pytest.raises(DataError, match="layout_name: 'mpii'"):
        read_keypoints(path)
    path, _ = _vp3d(tmp_path, "b.npz", positions={"v": {"custom": [np.zeros((3, 15, 2))]}})
    with pytest.raises(DataError, match=r"positions_2d\['v'\]\['custom'\]\[0\]: 15 joints"):
        read_keypoints(path)
    np.savez(tmp_path / "c.npz", other=np.zeros(3))
    with pytest.raises(DataError, match="no 'positions_2d'"):
        read_keypoints(tmp_path / "c.npz", "videopose3d")
    with pytest.raises(DataError, match="reads a VideoPose3D .npz"):
        read_keypoints(tmp_path / "c.npz".replace(".npz", ".npy") if False else _json(tmp_path), "videopose3d")


def _json(tmp_path):
    (tmp_path / "j.json").write_text("[]")
    return tmp_path / "j.json"


def test_hostile_videopose3d_runs_nothing(tmp_path):
    """A VideoPose3D file is a pickle: a crafted one must be refused, never executed."""
    import os

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    np.savez(tmp_path / "evil.npz", positions_2d=np.array([Evil()], dtype=object), metadata={"layout_name": "coco"})
    with pytest.raises(DataError) as e:
        read_keypoints(tmp_path / "evil.npz")
    assert "evil.npz" in str(e.value)
    assert not marker.exists()


def test_detect_format_says_why(tmp_path):
    np.save(tmp_path / "a.npy", _kp())
    with pytest.raises(DataError, match="H36M or COCO order: give --format h36m or --format coco"):
        detect_format(tmp_path / "a.npy")
    (tmp_path / "a.csv").write_text("1,2")
    with pytest.raises(DataError, match="unknown keypoint file type '.csv'"):
        read_keypoints(tmp_path / "a.csv")
