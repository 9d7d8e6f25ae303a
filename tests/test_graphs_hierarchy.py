"""GraphHierarchy / JointAssignment: slot-order graphs, pooling, coarse vertices, persistence."""
import pickle

import numpy as np
import pytest
import torch

from hgn_pyg.errors import GraphError
from hgn_pyg.graphs import GraphHierarchy, JointAssignment, mesh_hierarchy

from test_graphs_coarsening import icosphere, octahedron, strip_mesh, uv_sphere


@pytest.fixture(scope="module")
def hier():
    faces, n = uv_sphere(10, 14)  # 128 vertices
    return mesh_hierarchy(faces, n, levels=5)


def dense_P(clusters, n_coarse):
    """P_i of docs/published_model.md §1.3 built directly with NumPy: 0.5 per child of a pair, 1.0 for a singleton."""
    c = np.asarray(clusters)
    size = np.bincount(c, minlength=n_coarse)
    P = np.zeros((len(c), n_coarse))
    P[np.arange(len(c)), c] = 1.0 / size[c]
    return P


def test_attributes_and_level_data(hier):
    L = hier.num_levels - 1
    assert L == 5 and len(hier.levels) == L + 1 and len(hier.clusters) == L
    for i in range(L + 1):
        d = hier.levels[i]
        S, N = hier.num_slots[i], hier.num_real[i]
        assert d.num_nodes == S and d.real_mask.shape == (S,) and int(d.real_mask.sum()) == N
        perm, inv = hier.perms[i], hier.inv_perms[i]
        assert torch.equal(perm[inv], torch.arange(S)) and torch.equal(inv[perm], torch.arange(S))
        assert torch.equal(hier.real_slots(i), inv[:N])
        assert torch.equal(perm[hier.real_slots(i)], torch.arange(N))
        src, tgt = d.edge_index
        # sorted row-major by (target, source)
        key = tgt * S + src
        assert torch.all(key[1:] > key[:-1])
        # exactly the permuted adjacency pattern, fake slots isolated
        A = hier.adjacencies[i].toarray()
        dense = np.zeros((S, S))
        dense[:N, :N] = A
        pslot = perm.numpy()
        expect = np.zeros((S, S), bool)
        for s in range(S):
            for t in range(S):
                if pslot[s] < N and pslot[t] < N:
                    expect[s, t] = A[pslot[s], pslot[t]] != 0
        got = np.zeros((S, S), bool)
        got[tgt.numpy(), src.numpy()] = True
        assert np.array_equal(got, expect)
        assert not torch.any(~d.real_mask[src]) and not torch.any(~d.real_mask[tgt])
        if i > 0:
            assert torch.any(src == tgt)  # merges create self loops
        else:
            assert not torch.any(src == tgt)
    assert "GraphHierarchy" in repr(hier)


def test_pool_matrix_columns_sum_to_one(hier):
    for i in range(hier.num_levels - 1):
        P = hier.pool_matrix(i, dense=True, dtype=torch.float64)
        assert P.shape == (hier.num_real[i], hier.num_real[i + 1])
        assert torch.allclose(P.sum(0), torch.ones(hier.num_real[i + 1], dtype=torch.float64))
        assert set(P[P > 0].tolist()) <= {0.5, 1.0}
        assert np.array_equal(P.numpy(), dense_P(hier.clusters[i].numpy(), hier.num_real[i + 1]))
        Ps = hier.pool_matrix(i)
        assert Ps.is_sparse and torch.allclose(Ps.to_dense(), P.float())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_coarsen_vertices_equals_dense_product(hier, dtype):
    rng = np.random.default_rng(0)
    verts = rng.normal(size=(3, hier.num_real[0], 3))
    M = np.eye(hier.num_real[0])
    for level in range(hier.num_levels):
        if level > 0:
            M = M @ dense_P(hier.clusters[level - 1].numpy(), hier.num_real[level])
        expect = np.einsum("vc,bvd->bcd", M, verts)  # (P0 ... P_{l-1})^T verts
        x = torch.tensor(verts, dtype=dtype)
        out = hier.coarsen_vertices(x, level)
        assert out.dtype == dtype and out.shape == (3, hier.num_real[level], 3)
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        assert np.allclose(out.numpy(), expect, atol=tol)
        single = hier.coarsen_vertices(x[1], level)
        assert single.shape == (hier.num_real[level], 3) and torch.allclose(single, out[1])
    as_np = hier.coarsen_vertices(verts[0], 2)
    assert isinstance(as_np, np.ndarray) and as_np.shape == (hier.num_real[2], 3)
    with pytest.raises(GraphError, match="coarsen_vertices"):
        hier.coarsen_vertices(torch.zeros(5, 3), 1)
    with pytest.raises(GraphError, match="level"):
        hier.coarsen_vertices(x, hier.num_levels)


def test_pool_unpool_in_slot_order(hier):
    torch.manual_seed(0)
    for i in range(hier.num_levels - 1):
        S0, S1 = hier.num_slots[i], hier.num_slots[i + 1]
        x = torch.randn(2, S0, 4, dtype=torch.float64)
        y = hier.pool(x, i)
        assert y.shape == (2, S1, 4) and hier.pool(x[0], i).shape == (S1, 4)
        assert hier.unpool(y, i).shape == (2, S0, 4) and hier.unpool(y[0], i).shape == (S0, 4)
        # pooling real features in slot order == P_i^T in original order
        xo = torch.randn(hier.num_real[i], 4, dtype=torch.float64)
        xs = torch.full((S0, 4), 1e6, dtype=torch.float64)  # garbage in fake slots must be ignored
        xs[hier.real_slots(i)] = xo
        P = hier.pool_matrix(i, dense=True, dtype=torch.float64)
        ys = hier.pool(xs, i)
        assert torch.allclose(ys[hier.real_slots(i + 1)], P.t() @ xo)
        fake_parent = ~hier.levels[i + 1].real_mask
        assert torch.all(ys[fake_parent] == 0)
        # unpool broadcasts the parent (slot s // 2) to real children, zeros on fakes
        u = hier.unpool(ys, i)
        real = hier.levels[i].real_mask
        assert torch.equal(u[real], ys[torch.arange(S0)[real] // 2])
        assert torch.all(u[~real] == 0)
    with pytest.raises(GraphError):
        hier.pool(torch.zeros(3, 4), 0)
    with pytest.raises(GraphError):
        hier.pool(torch.zeros(hier.num_slots[-1], 4), hier.num_levels - 1)


def test_children_share_parent_slot(hier):
    # slot s of level i is a child of slot s // 2 of level i + 1
    for i in range(hier.num_levels - 1):
        p, q = hier.perms[i], hier.perms[i + 1]
        for s in range(hier.num_slots[i]):
            if p[s] < hier.num_real[i]:
                assert hier.clusters[i][p[s]] == q[s // 2]
            else:
                assert s % 2 == 1 or p[s + 1] >= hier.num_real[i]  # fakes come after real siblings


def test_save_load_roundtrip_and_validation(hier, tmp_path):
    path = tmp_path / "h.pt"
    hier.save(path)
    h2 = GraphHierarchy.load(path)
    assert h2.num_real == hier.num_real and h2.num_slots == hier.num_slots
    for a, b in zip(hier.perms + hier.clusters, h2.perms + h2.clusters):
        assert torch.equal(a, b)
    for a, b in zip(hier.levels, h2.levels):
        assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.real_mask, b.real_mask)
    # corrupted: perms no longer a permutation
    state = hier.state_dict()
    state["perms"][1] = state["perms"][1].clone()
    state["perms"][1][0] = state["perms"][1][1]
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(GraphError, match=r"bad\.pt.*perms\[1\]"):
        GraphHierarchy.load(tmp_path / "bad.pt")
    # corrupted: a cluster with three children
    state = hier.state_dict()
    c = state["clusters"][0].clone()
    c[c == 1] = 0
    state["clusters"][0] = c
    torch.save(state, tmp_path / "bad2.pt")
    with pytest.raises(GraphError, match="bad2.pt"):
        GraphHierarchy.load(tmp_path / "bad2.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(GraphError, match="not a saved GraphHierarchy"):
        GraphHierarchy.load(tmp_path / "other.pt")
    with pytest.raises(GraphError, match="no such"):
        GraphHierarchy.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(GraphError, match="cannot read"):
        GraphHierarchy.load(tmp_path / "junk.pt")


def test_to_device_returns_moved_copy(hier):
    h = hier.to("cpu")
    assert h is not hier and h.device.type == "cpu"
    x = torch.randn(hier.num_slots[1], 2)
    assert torch.equal(h.pool(x, 1), hier.pool(x, 1))
    if torch.cuda.is_available():  # pragma: no cover - exercised on GPU machines
        g = hier.to("cuda")
        assert g.levels[2].edge_index.is_cuda
        assert torch.allclose(g.pool(x.cuda(), 1).cpu(), hier.pool(x, 1))


def test_to_networkx(hier):
    import networkx as nx

    for level in (0, 3):
        g = hier.to_networkx(level)
        A = hier.adjacencies[level]
        assert g.number_of_nodes() == hier.num_slots[level]
        n_undirected = (A.nnz + (A.diagonal() != 0).sum()) // 2
        assert g.number_of_edges() == n_undirected
        fakes = [s for s, d in g.nodes(data=True) if not d["real"]]
        assert all(g.degree(s) == 0 for s in fakes)
        go = hier.to_networkx(level, order="original")
        assert go.number_of_nodes() == hier.num_real[level]
        relabel = {s: d["vertex"] for s, d in g.nodes(data=True) if d["real"]}
        sub = nx.relabel_nodes(g.subgraph(relabel), relabel)
        assert {frozenset(e) for e in sub.edges()} == {frozenset(e) for e in go.edges()}
        assert all(go.nodes[v]["slot"] == int(hier.inv_perms[level][v]) for v in go.nodes)
    with pytest.raises(GraphError):
        hier.to_networkx(0, order="bogus")


def test_joint_assignment(hier, tmp_path):
    rng = np.random.default_rng(3)
    J, V = 5, hier.num_real[0]
    W = rng.random((J, V))
    level = 3
    ja = hier.joint_assignment(W, level)
    S = hier.num_slots[level]
    assert isinstance(ja, JointAssignment) and ja.assign.shape == (S,)
    real = hier.levels[level].real_mask
    assert torch.all(ja.assign[~real] == -1) and torch.all(ja.assign[real] >= 0)
    # each real node takes the argmax of its coarsened weights
    Wl = hier.coarsen_vertices(torch.tensor(W.T), level).numpy().T
    assert np.array_equal(ja.assign[hier.real_slots(level)].numpy(), Wl.argmax(0))
    # torch weights and level-sized weights give the same
    assert torch.equal(hier.joint_assignment(torch.tensor(W), level).assign, ja.assign)
    assert torch.equal(hier.joint_assignment(Wl, level).assign, ja.assign)
    x = torch.randn(2, S, 3)
    pj = ja.pool(x)
    assert pj.shape == (2, J, 3)
    for j in range(J):
        sel = ja.assign == j
        expect = x[:, sel].mean(1) if sel.any() else torch.zeros(2, 3)
        assert torch.allclose(pj[:, j], expect, atol=1e-6)
    u = ja.unpool(pj)
    assert u.shape == (2, S, 3) and torch.all(u[:, ~real] == 0)
    assert torch.equal(u[:, real], pj[:, ja.assign[real]])
    assert ja.pool(x[0]).shape == (J, 3) and ja.unpool(pj[0]).shape == (S, 3)
    # a joint without slots pools to 0
    ja2 = JointAssignment(torch.tensor([0, 0, -1, 2]), num_joints=4)
    out = ja2.pool(torch.ones(4, 2))
    assert torch.equal(out, torch.tensor([[1.0, 1.0], [0, 0], [1, 1], [0, 0]]))
    # picklable, movable
    ja3 = pickle.loads(pickle.dumps(ja))
    assert torch.equal(ja3.assign, ja.assign) and torch.equal(ja.to("cpu").assign, ja.assign)
    assert "JointAssignment" in repr(ja)


def test_joint_assignment_sparse_weights_bfs(hier):
    # a regressor-like weight matrix: only two vertices carry weight; everything else is reached
    # through the level graph (nearest assigned node wins)
    J, V = 2, hier.num_real[0]
    W = np.zeros((J, V))
    W[0, 0] = 1.0
    W[1, V - 1] = 1.0
    ja = hier.joint_assignment(W, 0)
    real = hier.levels[0].real_mask
    a = ja.assign[hier.real_slots(0)].numpy()
    assert a[0] == 0 and a[V - 1] == 1 and set(a.tolist()) == {0, 1}
    import networkx as nx

    g = hier.to_networkx(0, order="original")
    d0 = nx.single_source_shortest_path_length(g, 0)
    d1 = nx.single_source_shortest_path_length(g, V - 1)
    for v in range(V):
        if d0[v] < d1[v]:
            assert a[v] == 0
        elif d1[v] < d0[v]:
            assert a[v] == 1
    assert torch.all(ja.assign[~real] == -1)
    with pytest.raises(GraphError, match="positive"):
        hier.joint_assignment(np.zeros((2, V)), 1)
    with pytest.raises(GraphError, match="weights must be"):
        hier.joint_assignment(np.ones((2, 7)), 1)


def test_small_meshes_end_to_end():
    for faces, n in (strip_mesh(), octahedron(), icosphere(1)):
        h = mesh_hierarchy(faces, n, levels=3)
        verts = torch.randn(n, 3, dtype=torch.float64)
        c = h.coarsen_vertices(verts, 3)
        # the coarsest level's slot-order pooling of the real vertices equals coarsen_vertices
        x = torch.zeros(h.num_slots[0], 3, dtype=torch.float64)
        x[h.real_slots(0)] = verts
        for i in range(3):
            x = h.pool(x, i)
        assert torch.allclose(x[h.real_slots(3)], c)


def test_constructor_validation():
    faces, n = strip_mesh()
    h = mesh_hierarchy(faces, n, levels=2)
    with pytest.raises(GraphError, match="perms"):
        GraphHierarchy(h.adjacencies, h.clusters, h.perms[:-1])
    bad = [p.clone() for p in h.perms]
    bad[0] = bad[0].flip(0)  # still a permutation, but children no longer under their cluster
    with pytest.raises(GraphError, match="clusters"):
        GraphHierarchy(h.adjacencies, h.clusters, bad)
