"""Pool/unpool fusion along a GraphHierarchy and a JointAssignment (float64, atol=rtol=1e-12).

Checked twice: against the graph objects' own ``pool``/``unpool`` and against an explicit loop
over the clusters (perms / clusters / inv_perms, HGN_SPEC §1.2)."""
import pickle

import pytest
import torch

from hgn_pyg.errors import GraphError
from hgn_pyg.nn import HierarchyPoolFusion, JointPoolFusion

graphs = pytest.importorskip("hgn_pyg.graphs")
TOL = dict(atol=1e-12, rtol=1e-12)


@pytest.fixture(scope="module")
def hierarchy():
    side = 7
    faces = []
    for r in range(side - 1):
        for c in range(side - 1):
            v = r * side + c
            faces += [(v, v + 1, v + side), (v + 1, v + side + 1, v + side)]
    h = graphs.mesh_hierarchy(faces, side * side, levels=3)
    assert any(not bool(m.all()) for m in (lv.real_mask for lv in h.levels))  # has fakes
    return h


def _loop_pool(h, x, level):
    """Explicit mean over real children, cluster by cluster, in slot order."""
    S_up = h.num_slots[level + 1]
    out = torch.zeros(x.shape[0], S_up, x.shape[-1], dtype=x.dtype)
    members = {}
    for s in range(h.num_slots[level]):
        v = int(h.perms[level][s])
        if v < h.num_real[level]:
            parent = int(h.inv_perms[level + 1][int(h.clusters[level][v])])
            members.setdefault(parent, []).append(s)
    for p, slots in members.items():
        out[:, p] = x[:, slots].mean(1)
    return out, members


def _linear(fusion, y):
    return y @ fusion.lin.weight.t() + fusion.lin.bias


@pytest.mark.parametrize("src,dst", [(0, 1), (1, 2), (0, 2), (0, 3)])
def test_hierarchy_pool(hierarchy, src, dst):
    h = hierarchy
    torch.manual_seed(0)
    fusion = HierarchyPoolFusion(4, h, src, dst, out_channels=3).double()
    x = torch.randn(2, h.num_slots[src], 4, dtype=torch.float64, requires_grad=True)
    ref = x
    for level in range(src, dst):
        ref = h.pool(ref, level)
    torch.testing.assert_close(fusion.resample(x), ref, **TOL)
    loop = x
    for level in range(src, dst):
        loop, _ = _loop_pool(h, loop, level)
    torch.testing.assert_close(fusion.resample(x), loop, **TOL)
    out = fusion(x)
    assert out.shape == (2, h.num_slots[dst], 3)
    torch.testing.assert_close(out, _linear(fusion, ref), **TOL)
    torch.testing.assert_close(fusion(x[0]), out[0], **TOL)
    gx, = torch.autograd.grad(out.sum(), x)
    fake = ~h.levels[src].real_mask
    assert torch.all(gx[:, fake] == 0)  # fake slots never feed the means


@pytest.mark.parametrize("src,dst", [(1, 0), (2, 1), (3, 0)])
def test_hierarchy_unpool(hierarchy, src, dst):
    h = hierarchy
    torch.manual_seed(0)
    fusion = HierarchyPoolFusion(3, h, src, dst).double()
    x = torch.randn(2, h.num_slots[src], 3, dtype=torch.float64)
    ref = x
    for level in range(src - 1, dst - 1, -1):
        ref = h.unpool(ref, level)
    torch.testing.assert_close(fusion.resample(x), ref, **TOL)
    _, members = _loop_pool(h, x.new_zeros(1, h.num_slots[dst], 1), dst) if src == dst + 1 \
        else (None, None)
    if members is not None:  # one level: every real child copies its parent exactly
        for p, slots in members.items():
            for s in slots:
                torch.testing.assert_close(fusion.resample(x)[:, s], x[:, p], **TOL)
    assert torch.all(fusion.resample(x)[:, ~h.levels[dst].real_mask] == 0)
    torch.testing.assert_close(fusion(x), _linear(fusion, ref), **TOL)


def test_joint_pool_fusion(hierarchy):
    h = hierarchy
    torch.manual_seed(0)
    weights = torch.rand(4, h.num_real[0])
    assignment = h.joint_assignment(weights, 2)
    S, J = h.num_slots[2], assignment.num_joints
    pool = JointPoolFusion(5, assignment, "pool").double()
    unpool = JointPoolFusion(5, assignment, "unpool", out_channels=2).double()
    x = torch.randn(3, S, 5, dtype=torch.float64)
    torch.testing.assert_close(pool.resample(x), assignment.pool(x), **TOL)
    loop = torch.zeros(3, J, 5, dtype=torch.float64)
    for j in range(J):
        slots = (assignment.assign == j).nonzero().view(-1)
        if slots.numel():
            loop[:, j] = x[:, slots].mean(1)
    torch.testing.assert_close(pool.resample(x), loop, **TOL)
    torch.testing.assert_close(pool(x), _linear(pool, loop), **TOL)
    xj = torch.randn(3, J, 5, dtype=torch.float64)
    torch.testing.assert_close(unpool.resample(xj), assignment.unpool(xj), **TOL)
    assert unpool(xj).shape == (3, S, 2)
    assert "pool: 14 -> 4 nodes" in repr(pool)


def test_fusion_state_device_and_errors(hierarchy):
    h = hierarchy
    fusion = HierarchyPoolFusion(4, h, 1, 2)
    assert set(fusion.state_dict()) == {"lin.weight", "lin.bias"}
    fusion2 = pickle.loads(pickle.dumps(fusion))
    x = torch.randn(h.num_slots[1], 4)
    torch.testing.assert_close(fusion2(x), fusion(x))
    assert repr(fusion).startswith("HierarchyPoolFusion(4, 4, level 1 (28) -> 2 (14))")
    with pytest.raises(GraphError):
        HierarchyPoolFusion(4, h, 1, 1)
    with pytest.raises(GraphError):
        HierarchyPoolFusion(4, h, 0, 9)
    with pytest.raises(ValueError, match=r"\[2, 27, 4\]"):
        fusion(torch.randn(2, 27, 4))
    with pytest.raises(ValueError, match="direction"):
        JointPoolFusion(4, h.joint_assignment(torch.rand(3, h.num_real[0]), 1), "up")
