"""Pool/unpool fusion along a GraphHierarchy and a JointAssignment (float64, atol=rtol=1e-12).

Checked against an explicit loop over the clusters (perms / clusters / inv_perms,
docs/published_model.md §1.2) and against the graph objects' one-level ``pool``/``unpool``."""
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


def test_parent_map_composes_levels_and_joints(hierarchy):
    """The composed parent map between any two levels equals an explicit walk up the clusters
    (perms / clusters / inv_perms), and its weights give the level-by-level means; the joint
    assignment composes on top (mesh level 0 -> joints through the level-2 assignment)."""
    h = hierarchy
    for lo in range(h.num_levels):
        for hi in range(lo, h.num_levels):
            pm = h.parent_map(lo, hi)
            for s in range(h.num_slots[lo]):
                v = int(h.perms[lo][s])
                if v >= h.num_real[lo]:
                    assert int(pm.index[s]) == -1 and float(pm.weight[s]) == 0
                    continue
                for level in range(lo, hi):
                    v = int(h.clusters[level][v])
                assert int(pm.index[s]) == int(h.inv_perms[hi][v])
            real_parents = pm.index[pm.index >= 0].unique()
            sums = torch.zeros(h.num_slots[hi], dtype=torch.float64).index_add(
                0, pm.index.clamp(min=0), pm.weight)
            torch.testing.assert_close(sums[real_parents], torch.ones(real_parents.numel(),
                                                                      dtype=torch.float64))
    assignment = h.joint_assignment(torch.rand(4, h.num_real[0]), 2)
    to_joints = h.parent_map(0, 2).then(assignment.parent_map())
    x = torch.randn(3, h.num_slots[0], 2, dtype=torch.float64)
    step = assignment.pool(h.pool(h.pool(x, 0), 1))
    torch.testing.assert_close(to_joints.pool(x), step, **TOL)
    back = h.unpool(h.unpool(assignment.unpool(step), 1), 0)
    torch.testing.assert_close(to_joints.unpool(step), back, **TOL)
    with pytest.raises(GraphError, match="cannot feed"):
        h.parent_map(0, 1).then(assignment.parent_map())


@pytest.mark.parametrize("kind", ["up", "down", "joints", "slots"])
def test_fusion_on_pyg_batch_equals_each_graph(hierarchy, kind):
    """x [k*S, C] + batch (a DataLoader batch of k copies of the level graph with different
    features) gives every graph its own output and gradients (float32, 1e-5); unsorted or
    mis-sized batches are refused."""
    from torch_geometric.data import Data
    from torch_geometric.loader import DataLoader

    h = hierarchy
    torch.manual_seed(0)
    assignment = h.joint_assignment(torch.rand(4, h.num_real[0]), 1)
    fusion = {"up": HierarchyPoolFusion(3, h, 0, 2), "down": HierarchyPoolFusion(3, h, 2, 0),
              "joints": JointPoolFusion(3, assignment, "pool"),
              "slots": JointPoolFusion(3, assignment, "unpool")}[kind]
    graphs = [Data(x=torch.randn(fusion.in_nodes, 3), num_nodes=fusion.in_nodes) for _ in range(3)]
    batch = next(iter(DataLoader(graphs, batch_size=3)))
    x = batch.x.clone().requires_grad_()
    out = fusion(x, batch.batch)
    assert out.shape == (3 * fusion.out_nodes, 3)
    r = torch.randn(out.shape)
    params = list(fusion.parameters())
    got = torch.autograd.grad((out * r).sum(), params + [x])
    summed = [torch.zeros_like(p) for p in params]
    for i, d in enumerate(graphs):
        xi = d.x.clone().requires_grad_()
        alone = fusion(xi)
        rows = slice(i * fusion.out_nodes, (i + 1) * fusion.out_nodes)
        torch.testing.assert_close(out[rows], alone, atol=1e-5, rtol=1e-5)
        grads = torch.autograd.grad((alone * r[rows]).sum(), params + [xi])
        n = fusion.in_nodes
        torch.testing.assert_close(got[-1][i * n:(i + 1) * n], grads[-1], atol=1e-5, rtol=1e-5)
        summed = [a + b for a, b in zip(summed, grads[:-1])]
    for a, b in zip(got[:-1], summed):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    with pytest.raises(GraphError, match="must have"):
        fusion(batch.x[1:], batch.batch[1:])
    with pytest.raises(GraphError, match="sorted"):
        fusion(batch.x, batch.batch.flip(0))
