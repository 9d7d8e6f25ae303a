"""Skeleton graphs (docs/published_model.md §1.1)."""
import pytest
import torch

from hgn_pyg.errors import GraphError
from hgn_pyg.graphs import SKELETONS, JointSet, register_skeleton, skeleton_graph

SPEC_BONES = [(0, 7), (7, 8), (8, 9), (9, 10), (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16),
              (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6)]


def test_h36m_graph():
    g = skeleton_graph("h36m")
    assert g.num_nodes == 17 and g.edge_index.shape == (2, 32) and g.edge_index.dtype == torch.long
    src, tgt = g.edge_index
    assert not torch.any(src == tgt)
    key = (tgt * 17 + src).tolist()
    assert key == sorted(key) and len(set(key)) == 32  # row-major (target, source), no duplicates
    pairs = set(zip(src.tolist(), tgt.tolist()))
    assert pairs == {(a, b) for a, b in SPEC_BONES} | {(b, a) for a, b in SPEC_BONES}
    assert g.joint_names[0] == "Pelvis" and g.joint_names[10] == "Head" and len(g.joint_names) == 17
    assert g.root == 0 and g.parents.tolist() == [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]
    assert g.flip_pairs.tolist() == [[1, 4], [2, 5], [3, 6], [14, 11], [15, 12], [16, 13]]
    assert g.bones.tolist() == [list(b) for b in SPEC_BONES]
    # the first targets: node 0's neighbours 1, 4, 7 in ascending source order
    assert g.edge_index[:, :3].tolist() == [[1, 4, 7], [0, 0, 0]]


def test_coco_and_registry():
    g = skeleton_graph("coco")
    assert g.num_nodes == 19 and g.edge_index.shape == (2, 36) and g.root == 17
    assert g.parents[17] == -1 and (g.parents >= -1).all()
    assert set(SKELETONS) >= {"h36m", "coco"}
    with pytest.raises(GraphError, match="unknown skeleton"):
        skeleton_graph("nope")
    js = JointSet("tiny3", ("a", "b", "c"), ((0, 1), (1, 2)), ((0, 2),), root=1)
    register_skeleton(js)
    try:
        t = skeleton_graph("tiny3")
        assert t.parents.tolist() == [1, -1, 1] and t.edge_index.shape == (2, 4)
        with pytest.raises(GraphError, match="already registered"):
            register_skeleton(js)
    finally:
        SKELETONS.pop("tiny3")


def test_bad_joint_sets():
    with pytest.raises(GraphError):
        JointSet("x", ("a", "b"), ((0, 2),), ())
    with pytest.raises(GraphError, match="not connected"):
        JointSet("x", ("a", "b", "c"), ((0, 1),), ())
    with pytest.raises(GraphError, match="twice"):
        JointSet("x", ("a", "b"), ((0, 1), (1, 0)), ())
