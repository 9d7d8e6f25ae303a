"""PoseGraphDataset (the PyG view of the pose data), its processed cache and RandomJointDropout.

Samples are checked against the independent NumPy computation of tests/test_data_fixtures.py
(tolerance 2e-6, float32 rounding of the projection), the template against the joint set's bones.
"""
import logging
import os

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from hgn_pyg.data import PoseGraphDataset, RandomJointDropout, skeleton_template
from hgn_pyg.data import cache as _cache
from hgn_pyg.data.human36m import DEFAULT_SKIP
from hgn_pyg.errors import DataError
from hgn_pyg.graphs.skeleton import H36M

from test_data_fixtures import SUBJECTS, expected_samples, write_h36m, write_videopose3d


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_h36m(tmp_path_factory.mktemp("pg_h36m"))


def _template_edges():
    """Independent statement: every bone in both directions and one self loop per joint, sorted
    by (target, source), i.e. the nonzeros of the published adjacency ``A + I`` row by row."""
    pairs = {(a, b) for a, b in H36M.bones} | {(b, a) for a, b in H36M.bones}
    pairs |= {(j, j) for j in range(17)}
    return torch.tensor(sorted(pairs, key=lambda e: (e[1], e[0]))).t()


def test_template_order_and_types():
    t = skeleton_template()
    assert t.num_nodes == 17 and t.edge_index.shape == (2, 49)
    assert torch.equal(t.edge_index, _template_edges())
    assert torch.equal(t.edge_type, torch.arange(49))


def test_template_is_the_models_skeleton_graph():
    # the HGN skeleton layers are built on exactly this template (same columns, same order)
    from hgn_pyg.graphs.skeleton import skeleton_edges
    from hgn_pyg.graphs import skeleton_graph

    ei, n = skeleton_edges(skeleton_graph("h36m"))
    assert n == 17 and torch.equal(ei, _template_edges())


def test_samples_match_the_numpy_reference(root, tmp_path):
    ds = PoseGraphDataset(root, "train", subjects=SUBJECTS, subsample=2, cache_dir=tmp_path)
    rows = expected_samples(root, SUBJECTS, 2, set(DEFAULT_SKIP))
    assert len(ds) == len(rows) > 0
    X = torch.stack([ds[i].x for i in range(len(ds))]).double()        # [S, 17, 2]
    for inp, tgt, action, subject, _ in rows:
        err = (X - torch.from_numpy(inp)).abs().flatten(1).amax(1)
        k = int(err.argmin())
        assert float(err[k]) < 2e-6
        g = ds[k]
        assert g.x.shape == (17, 2) and g.y.shape == (17, 3) and g.x.dtype == torch.float32
        np.testing.assert_allclose(g.y.numpy(), tgt, atol=2e-6)
        assert g.subject.tolist() == [subject] and g.action.tolist() == [action]
        assert torch.equal(g.edge_index, _template_edges())
        assert torch.equal(g.edge_type, torch.arange(49))
        assert torch.equal(g.joint, torch.arange(17))


def test_dataloader_batches_like_pyg(root, tmp_path):
    ds = PoseGraphDataset(root, "test", subjects=[9], subsample=3, cache_dir=tmp_path)
    batch = next(iter(DataLoader(ds, batch_size=5)))
    assert batch.num_graphs == 5 and batch.x.shape == (85, 2) and batch.y.shape == (85, 3)
    assert batch.edge_index.shape == (2, 245) and batch.edge_type.shape == (245,)
    offsets = torch.arange(5).repeat_interleave(49) * 17
    assert torch.equal(batch.edge_index, _template_edges().repeat(1, 5) + offsets)
    assert torch.equal(batch.edge_type, torch.arange(49).repeat(5))
    assert batch.subject.tolist() == [9] * 5 and batch.action.shape == (5,)
    assert torch.equal(batch.batch, torch.arange(5).repeat_interleave(17))


def test_processed_cache_hit_and_invalidation(root, tmp_path):
    kw = dict(subjects=[9], subsample=4, cache_dir=tmp_path / "c")
    a = PoseGraphDataset(root, "test", **kw)
    assert not a.cache_hit and a.cache_path.is_file() and a.cache_path.parent == tmp_path / "c"
    assert [p.name for p in (tmp_path / "c").iterdir()] == [a.cache_path.name]  # no temp files
    b = PoseGraphDataset(root, "test", **kw)
    assert b.cache_hit and len(a) == len(b)
    for i in (0, len(a) // 2, len(a) - 1):
        for key in ("x", "y", "edge_index", "edge_type", "joint", "subject", "action"):
            assert torch.equal(a[i][key], b[i][key])
    # other arguments, another pre_transform, force_reload: other file or a rebuild
    c = PoseGraphDataset(root, "test", subjects=[9], subsample=2, cache_dir=tmp_path / "c")
    assert not c.cache_hit and c.cache_path != a.cache_path and len(c) > len(a)
    d = PoseGraphDataset(root, "test", pre_transform=RandomJointDropout(0.5), **kw)
    assert not d.cache_hit and d.cache_path != a.cache_path
    assert not PoseGraphDataset(root, "test", force_reload=True, **kw).cache_hit
    assert not PoseGraphDataset(root, "test", use_cache=False, **kw).cache_path


def test_changed_input_file_gives_a_new_cache(tmp_path):
    data_root = write_h36m(tmp_path / "d", subjects=[9], frames=4)
    kw = dict(subjects=[9], subsample=1)
    a = PoseGraphDataset(data_root, "test", **kw)
    assert a.cache_path.parent == data_root / "processed"
    f = data_root / "annotations" / "Human36M_subject9_joint_3d.json"
    text = f.read_text()
    f.write_text(text.replace("[", "[ ", 1))          # same numbers, another file
    b = PoseGraphDataset(data_root, "test", **kw)
    assert not b.cache_hit and b.cache_path != a.cache_path


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])


def _garbage(path):
    path.write_bytes(b"not a torch file at all")


def _foreign(path):
    torch.save({"format": "something else", "tensors": {}}, path)


@pytest.mark.parametrize("spoil", [_truncate, _garbage, _foreign])
def test_unusable_processed_file_is_rebuilt(root, tmp_path, caplog, spoil):
    kw = dict(subjects=[9], subsample=4, cache_dir=tmp_path)
    a = PoseGraphDataset(root, "test", **kw)
    spoil(a.cache_path)
    with caplog.at_level(logging.WARNING):
        b = PoseGraphDataset(root, "test", **kw)
    assert not b.cache_hit and len(b) == len(a) and "ignoring" in caplog.text
    assert torch.equal(b[3].x, a[3].x)
    assert PoseGraphDataset(root, "test", **kw).cache_hit      # rewritten


def test_inconsistent_tensors_with_the_right_key_are_rebuilt(root, tmp_path, caplog):
    kw = dict(subjects=[9], subsample=4, cache_dir=tmp_path)
    a = PoseGraphDataset(root, "test", **kw)
    key = torch.load(a.cache_path, weights_only=True)["key"]
    good = torch.load(a.cache_path, weights_only=True)["tensors"]
    bad_cases = {
        "short slices": {**good, "slices.x": good["slices.x"][:-1]},
        "edge to another graph": {**good, "data.edge_index": good["data.edge_index"] + 17},
        "missing field": {k: v for k, v in good.items() if not k.endswith(".y")},
    }
    for name, tensors in bad_cases.items():
        _cache.save_tensors(a.cache_path, tensors, key)
        with caplog.at_level(logging.WARNING):
            b = PoseGraphDataset(root, "test", **kw)
        assert not b.cache_hit, name
        assert torch.equal(b[len(b) - 1].y, a[len(a) - 1].y), name


class _Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_hostile_pickles_are_never_executed(root, tmp_path):
    """A crafted processed file, and PyG's own pre_transform.pt/pre_filter.pt/data.pt names, in
    the processed folder: nothing runs (PyG 2.8 reads pre_transform.pt with weights_only=False)."""
    kw = dict(subjects=[9], subsample=4, cache_dir=tmp_path / "p")
    a = PoseGraphDataset(root, "test", **kw)
    marker = tmp_path / "pwned"
    for name in (a.cache_path.name, "pre_transform.pt", "pre_filter.pt", "data.pt"):
        torch.save({"format": "hgn_pyg.tensor_cache/1", "tensors": _Boom(str(marker))},
                   tmp_path / "p" / name)
    b = PoseGraphDataset(root, "test", **kw)
    c = PoseGraphDataset(root, "test", pre_transform=RandomJointDropout(0.1), **kw)
    assert not marker.exists()
    assert len(b) == len(a) and len(c) == len(a) and not b.cache_hit
    # positive control: the planted files do run code when unpickled without weights_only
    torch.load(tmp_path / "p" / "pre_transform.pt", weights_only=False)
    assert marker.exists()


def test_bad_arguments_and_missing_data(root, tmp_path):
    with pytest.raises(DataError, match="format"):
        PoseGraphDataset(root, format="json")
    with pytest.raises(DataError, match="split"):
        PoseGraphDataset(root, "val")
    with pytest.raises(DataError, match="subsample"):
        PoseGraphDataset(root, subsample=0)
    with pytest.raises(DataError, match="protocol"):
        PoseGraphDataset(root, protocol=3)
    with pytest.raises(DataError, match="data root not found"):
        PoseGraphDataset(tmp_path / "nowhere")
    with pytest.raises(DataError, match="Human36M_subject11_data.json"):
        PoseGraphDataset(root, "test", subjects=[11])
    assert not (tmp_path / "nowhere").exists()


def test_videopose3d_layout(tmp_path):
    p3, p2, pos3d, _ = write_videopose3d(tmp_path / "vp")
    from hgn_pyg.data import VideoPose3D

    ref = VideoPose3D(p3, p2, split="test", subjects=["S9"], subsample=5).tensors()
    ds = PoseGraphDataset(tmp_path / "vp", "test", format="videopose3d", subjects=["S9"], subsample=5)
    assert len(ds) == len(ref["action"]) > 0
    for i in (0, len(ds) - 1):
        assert torch.equal(ds[i].x, ref["input_2d"][i]) and torch.equal(ds[i].y, ref["joints_3d"][i])
        assert ds[i].subject.item() == 9
    assert PoseGraphDataset(tmp_path / "vp", "test", format="videopose3d", subjects=["S9"],
                            subsample=5).cache_hit


def test_joint_dropout_keeps_edge_types():
    t = skeleton_template()
    g = torch.Generator().manual_seed(0)
    drop = RandomJointDropout(0.4, generator=g)
    base = t.clone()
    base.x = torch.randn(17, 2)
    base.y = torch.randn(17, 3)
    base.joint = torch.arange(17)
    sizes = set()
    for _ in range(50):
        out = drop(base)
        j = out.joint
        sizes.add(int(j.numel()))
        assert 0 in j.tolist()                                   # the pelvis is kept
        assert torch.equal(out.x, base.x[j]) and torch.equal(out.y, base.y[j])
        # each remaining edge is the template edge its type names, between the same joints
        src, dst = j[out.edge_index[0]], j[out.edge_index[1]]
        assert torch.equal(t.edge_index[0, out.edge_type], src)
        assert torch.equal(t.edge_index[1, out.edge_type], dst)
        # the induced subgraph: every template edge between kept joints is there
        kept = torch.zeros(17, dtype=torch.bool)
        kept[j] = True
        expect = (kept[t.edge_index[0]] & kept[t.edge_index[1]]).nonzero().flatten()
        assert torch.equal(out.edge_type, expect)
        assert base.x.shape == (17, 2)                           # input untouched
    assert len(sizes) > 3                                        # topologies really vary
    assert RandomJointDropout(0.0)(base).edge_type.equal(torch.arange(49))
    with pytest.raises(ValueError, match="p must be"):
        RandomJointDropout(1.0)


def test_unwritable_cache_folder_is_a_warning(root, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    with caplog.at_level(logging.WARNING):
        ds = PoseGraphDataset(root, "test", subjects=[9], subsample=4, cache_dir=blocker / "sub")
    assert len(ds) > 0 and not ds.cache_hit and "could not write" in caplog.text
    assert blocker.read_text() == "in the way"


def test_direct_storage_equals_pyg_collate(root):
    """The arithmetic storage (no pre_transform) is exactly PyG's collate of per-sample Data
    objects built here from the reader's tensors."""
    from torch_geometric.data import Data, InMemoryDataset

    ds = PoseGraphDataset(root, "test", subjects=[9], subsample=3, use_cache=False)
    t = ds.reader_tensors()
    tmpl = _template_edges()
    items = [Data(x=t["input_2d"][i], edge_index=tmpl, y=t["joints_3d"][i],
                  edge_type=torch.arange(49), joint=torch.arange(17),
                  subject=t["subject"][i:i + 1], action=t["action"][i:i + 1])
             for i in range(len(t["action"]))]
    data, slices = InMemoryDataset.collate(items)
    assert set(slices) == set(ds.slices)
    for key in slices:
        assert torch.equal(slices[key], ds.slices[key]), key
        assert torch.equal(data[key], ds._data[key]), key
    # and the stored view gives back each sample
    for i in (0, len(items) - 1):
        for key in ("x", "y", "edge_index", "edge_type", "joint", "subject", "action"):
            assert torch.equal(ds[i][key], items[i][key]), key
