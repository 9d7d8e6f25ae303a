"""Property-based tests (hypothesis) for the graphs and nn stages (issue 7, item 3).

Everything is deterministic (``derandomize=True``): hypothesis draws the structure (mesh, graph,
sizes) and a seed for NumPy/torch generators that fill in the numbers. Budgets are small so the
file runs in well under a minute on a busy 2-core machine, with and without ``--no-extensions``.

Covered:

1. :func:`hgn_pyg.graphs.mesh_hierarchy` on random valid triangle meshes (random face subsets of a
   grid or of a subdivided icosahedron, randomly relabelled, unused vertices dropped): the
   invariants of docs/published_model.md §1.2-§1.3; invalid meshes always raise ``GraphError``.
2. :class:`hgn_pyg.nn.SemGraphConv` on random directed graphs: every kernel equal (forward and
   gradients) for every ``isolated`` option, equal to an independent dense statement of docs/published_model.md §2.1,
   and equivariant under node relabelling.
3. ``GraphHierarchy.pool/unpool`` and ``JointAssignment.pool/unpool`` against explicit means.
4. :class:`hgn_pyg.nn.GraphNonLocal` equivariance under node permutation.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hgn_pyg.errors import GraphError
from hgn_pyg.graphs import JointAssignment, classic_argsort, mesh_hierarchy
from hgn_pyg.nn import GraphNonLocal, SemGraphConv

_SETTINGS = dict(derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))


# =============================================================================================
# random meshes
# =============================================================================================
def _grid_faces(rows: int, cols: int) -> np.ndarray:
    """Triangulated ``rows x cols`` grid of quads (vertices ``(rows+1) * (cols+1)``)."""
    faces = []
    w = cols + 1
    for r in range(rows):
        for c in range(cols):
            a, b, d, e = r * w + c, r * w + c + 1, (r + 1) * w + c, (r + 1) * w + c + 1
            faces.append((a, b, e))
            faces.append((a, e, d))
    return np.asarray(faces, dtype=np.int64)


def _icosphere_faces(subdivisions: int) -> np.ndarray:
    """Faces of an icosahedron subdivided ``subdivisions`` times (midpoint split, 4 per face)."""
    faces = [
        (0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
        (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
        (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1),
    ]
    n = 12
    for _ in range(subdivisions):
        mid = {}

        def midpoint(a, b):
            nonlocal n
            key = (min(a, b), max(a, b))
            if key not in mid:
                mid[key] = n
                n += 1
            return mid[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.asarray(faces, dtype=np.int64)


_BASE_MESHES = {
    "grid": lambda size: _grid_faces(2 + size, 3 + size),
    "ico": lambda size: _icosphere_faces(min(size, 2)),
}


@st.composite
def random_meshes(draw, max_size: int = 3):
    """(faces [F, 3] int64, num_vertices) of a valid mesh: a random subset of a base mesh's faces,
    vertices relabelled by a random permutation, unused vertices dropped."""
    kind = draw(st.sampled_from(sorted(_BASE_MESHES)))
    size = draw(st.integers(0, max_size))
    base = _BASE_MESHES[kind](size)
    seed = draw(st.integers(0, 2**32 - 1))
    keep_frac = draw(st.sampled_from([0.15, 0.4, 0.7, 1.0]))
    rng = np.random.default_rng(seed)
    keep = rng.random(len(base)) < keep_frac
    keep[rng.integers(len(base))] = True  # at least one face
    faces = base[keep]
    used = np.unique(faces)
    relabel = np.full(base.max() + 1, -1, dtype=np.int64)
    relabel[used] = rng.permutation(len(used))
    faces = relabel[faces]
    # random face order and random rotation of each face's vertices (orientation kept)
    faces = faces[rng.permutation(len(faces))]
    shift = rng.integers(0, 3, size=len(faces))
    faces = np.stack([np.roll(f, s) for f, s in zip(faces, shift)])
    return faces, int(len(used))


def _adjacency_dense(h, i: int) -> np.ndarray:
    return h.adjacencies[i].toarray()


def _check_hierarchy(h, faces, nv, levels):
    L = levels
    assert h.num_levels == L + 1
    assert h.num_real[0] == nv
    assert len(h.clusters) == L and len(h.perms) == L + 1 and len(h.levels) == L + 1

    # level-0 graph: face edges, symmetric, binary, no self loops
    W0 = _adjacency_dense(h, 0)
    ref = np.zeros((nv, nv))
    for a, b, c in faces.tolist():
        for u, v in ((a, b), (b, c), (a, c)):
            ref[u, v] = ref[v, u] = 1.0
    np.testing.assert_array_equal(W0, ref)
    total = W0.sum()

    for i in range(L + 1):
        W = _adjacency_dense(h, i)
        n, S = h.num_real[i], h.num_slots[i]
        # weights conserved, graph symmetric
        assert W.sum() == pytest.approx(total, rel=0, abs=1e-9)
        np.testing.assert_array_equal(W, W.T)
        # perms are permutations of range(S); inverse consistent; slot counts halve
        perm = h.perms[i].numpy()
        inv = h.inv_perms[i].numpy()
        np.testing.assert_array_equal(np.sort(perm), np.arange(S))
        np.testing.assert_array_equal(inv[perm], np.arange(S))
        np.testing.assert_array_equal(h.real_slots(i).numpy(), inv[:n])
        assert S >= n
        if i < L:
            assert S == 2 * h.num_slots[i + 1]
        else:
            assert S == n
            np.testing.assert_array_equal(perm, np.arange(n))
        data = h.levels[i]
        assert data.num_nodes == S
        real = data.real_mask.numpy()
        np.testing.assert_array_equal(real, perm < n)
        # edge_index: slot order, sorted row-major by (target, source), no duplicates, symmetric
        src, tgt = data.edge_index.numpy()
        key = tgt.astype(np.int64) * S + src
        assert np.all(np.diff(key) > 0), "edge_index not strictly sorted by (target, source)"
        edges = set(zip(src.tolist(), tgt.tolist()))
        assert edges == {(t, s) for s, t in edges}
        # exactly the adjacency, mapped to slots; fake slots isolated
        rr, cc = np.nonzero(W)
        assert edges == set(zip(inv[cc].tolist(), inv[rr].tolist()))
        if len(src):
            assert real[src].all() and real[tgt].all(), "an edge touches a fake slot"
        # self loops exactly where a cluster merged two adjacent vertices or kept a looped
        # singleton (the only non-adjacent pair is the row-0 quirk's, checked below)
        loops = {s for s, t in edges if s == t}
        if i == 0:
            assert not loops
        else:
            c = h.clusters[i - 1].numpy()
            Wp = _adjacency_dense(h, i - 1)
            P = np.zeros((len(c), n))
            P[np.arange(len(c)), c] = 1.0
            inner = np.diagonal(P.T @ Wp @ P)  # weight inside each cluster
            assert loops == set(inv[np.flatnonzero(inner > 0)].tolist())

    for i in range(L):
        W = _adjacency_dense(h, i)
        c = h.clusters[i].numpy()
        n, n1 = h.num_real[i], h.num_real[i + 1]
        assert c.shape == (n,)
        counts = np.bincount(c, minlength=n1)
        assert counts.size == n1 and counts.min() >= 1 and counts.max() <= 2
        # each pair is an edge -- except the published row-0 walk quirk (docs/published_model.md §1.2): row 0 also
        # walks the first stored entry of row 1, so vertex 0 may be paired with that column.
        csr = h.adjacencies[i]
        quirk_col = int(csr.indices[csr.indptr[1]]) if n > 1 else -1
        pairs = np.sort(np.argsort(c, kind="stable").reshape(-1)[np.repeat(counts == 2, counts)]
                        .reshape(-1, 2), axis=1)
        for a, b in pairs.tolist():
            assert W[a, b] > 0 or (a == 0 and b == quirk_col), (i, a, b)
        # clusters numbered in visiting order: first appearances along rid are 0, 1, 2, ...
        rid = classic_argsort(W.sum(axis=0))
        seen = []
        for v in rid.tolist():
            if c[v] not in seen:
                seen.append(int(c[v]))
        assert seen == list(range(n1))
        # coarse W sums the weights between clusters
        P = np.zeros((n, n1))
        P[np.arange(n), c] = 1.0
        np.testing.assert_allclose(P.T @ W @ P, _adjacency_dense(h, i + 1), atol=1e-9)
        # binary tree: children of slot t are slots 2t, 2t+1, ascending vertex ids, fake after
        perm, perm1 = h.perms[i].numpy(), h.perms[i + 1].numpy()
        for t in range(h.num_slots[i + 1]):
            kids = perm[2 * t: 2 * t + 2]
            parent = perm1[t]
            if parent >= n1:
                assert (kids >= n).all()
                continue
            expect = np.flatnonzero(c == parent)
            if len(expect) == 2:
                np.testing.assert_array_equal(kids, expect)
            else:
                assert kids[0] == expect[0] and kids[1] >= n
        # pooling matrix: P_i[v, c] = 1/|c|, columns sum to 1
        Pm = h.pool_matrix(i, dense=True, dtype=torch.float64).numpy()
        assert Pm.shape == (n, n1)
        np.testing.assert_allclose(Pm.sum(axis=0), 1.0, atol=1e-12)
        assert set(np.unique(Pm).tolist()) <= {0.0, 0.5, 1.0}
        np.testing.assert_array_equal(np.count_nonzero(Pm, axis=1), 1)
        np.testing.assert_array_equal(Pm.argmax(axis=1), c)
        Ps = h.pool_matrix(i).to_dense().to(torch.float64).numpy()
        np.testing.assert_array_equal(Ps, Pm)


@settings(max_examples=30, **_SETTINGS)
@given(mesh=random_meshes(), levels=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_mesh_hierarchy_invariants(mesh, levels, seed):
    faces, nv = mesh
    h = mesh_hierarchy(faces, nv, levels=levels)
    _check_hierarchy(h, faces, nv, levels)

    # coarsen_vertices == dense product (P_0 ... P_{l-1})^T verts, with and without batch
    g = torch.Generator().manual_seed(seed)
    verts = torch.randn(2, nv, 3, generator=g, dtype=torch.float64)
    prod = torch.eye(nv, dtype=torch.float64)
    for lv in range(levels + 1):
        got = h.coarsen_vertices(verts, lv)
        torch.testing.assert_close(got, prod.T @ verts, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(h.coarsen_vertices(verts[0], lv), got[0])
        got_np = h.coarsen_vertices(verts[1].numpy(), lv)
        np.testing.assert_allclose(got_np, got[1].numpy(), atol=1e-12)
        if lv < levels:
            prod = prod @ h.pool_matrix(lv, dense=True, dtype=torch.float64)


@settings(max_examples=40, **_SETTINGS)
@given(mesh=random_meshes(max_size=2), levels=st.integers(1, 6), seed=st.integers(0, 2**16),
       batch=st.sampled_from([None, 1, 3]), channels=st.integers(1, 4))
def test_hierarchy_pool_unpool(mesh, levels, seed, batch, channels):
    faces, nv = mesh
    h = mesh_hierarchy(faces, nv, levels=levels)
    g = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)
    for i in range(levels):
        S, S1 = h.num_slots[i], h.num_slots[i + 1]
        real = h.levels[i].real_mask
        real1 = h.levels[i + 1].real_mask
        x = torch.randn(*lead, S, channels, generator=g, dtype=torch.float64)
        pooled = h.pool(x, i)
        assert pooled.shape == (*lead, S1, channels)
        # explicit mean over the real children of each slot
        for t in range(S1):
            kids = [s for s in (2 * t, 2 * t + 1) if real[s]]
            if kids:
                ref = x[..., kids, :].mean(-2)
            else:
                ref = torch.zeros_like(x[..., 0, :])
            torch.testing.assert_close(pooled[..., t, :], ref)
        # a coarse slot has a real child iff it is real
        has_child = real.view(-1, 2).any(1)
        assert torch.equal(has_child, real1)
        # unpool broadcasts the parent to real slots, 0 on fakes
        y = torch.randn(*lead, S1, channels, generator=g, dtype=torch.float64)
        up = h.unpool(y, i)
        assert up.shape == (*lead, S, channels)
        parent = torch.arange(S) // 2
        ref_up = y[..., parent, :] * real.view(-1, 1).to(y.dtype)
        torch.testing.assert_close(up, ref_up)
        # pool(unpool(y)) == y on real coarse slots, 0 on fake ones
        torch.testing.assert_close(h.pool(up, i), y * real1.view(-1, 1).to(y.dtype))
        # unpool(pool(x)) == x on real slots whose real children are equal (x constant per cluster)
        torch.testing.assert_close(h.unpool(h.pool(up, i), i), up)
        # float32 also works, same numbers
        torch.testing.assert_close(h.pool(x.float(), i), pooled.float())


@settings(max_examples=20, **_SETTINGS)
@given(mesh=random_meshes(max_size=2), levels=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_duplicate_faces_change_nothing(mesh, levels, seed):
    """Duplicate faces are an error by default; accepted on request they change nothing (edges
    counted once, docs/published_model.md §1.2): same hierarchy."""
    faces, nv = mesh
    rng = np.random.default_rng(seed)
    dup = faces[rng.integers(0, len(faces), size=1 + len(faces) // 2)]
    dup = dup[:, rng.permutation(3)]  # the same triangle listed in another vertex order
    more = np.concatenate([faces, dup])
    a = mesh_hierarchy(faces, nv, levels=levels)
    with pytest.raises(GraphError, match="same triangle"):
        mesh_hierarchy(more, nv, levels=levels)
    b = mesh_hierarchy(more, nv, levels=levels, allow_duplicate_faces=True)
    for i in range(levels + 1):
        assert (a.adjacencies[i] != b.adjacencies[i]).nnz == 0
        assert torch.equal(a.perms[i], b.perms[i])
        assert torch.equal(a.levels[i].edge_index, b.levels[i].edge_index)


@settings(max_examples=60, **_SETTINGS)
@given(mesh=random_meshes(max_size=1), kind=st.sampled_from(
    ["out_of_range", "negative", "isolated", "degenerate", "nan", "inf", "fractional", "shape"]),
    seed=st.integers(0, 2**16), levels=st.integers(1, 6))
def test_invalid_meshes_raise_graph_error(mesh, kind, seed, levels):
    faces, nv = mesh
    rng = np.random.default_rng(seed)
    k = int(rng.integers(len(faces)))
    c = int(rng.integers(3))
    bad = faces.copy()
    n_arg = nv
    if kind == "out_of_range":
        bad[k, c] = nv + int(rng.integers(0, 5))
    elif kind == "negative":
        bad[k, c] = -1 - int(rng.integers(0, 5))
    elif kind == "isolated":
        n_arg = nv + 1 + int(rng.integers(0, 3))
    elif kind == "degenerate":
        bad[k, c] = bad[k, (c + 1) % 3]
    elif kind in ("nan", "inf", "fractional"):
        bad = bad.astype(np.float64)
        bad[k, c] = {"nan": np.nan, "inf": np.inf, "fractional": bad[k, c] + 0.5}[kind]
    elif kind == "shape":
        bad = bad[:, :2]
    with pytest.raises(GraphError):
        mesh_hierarchy(bad, n_arg, levels=levels)


# =============================================================================================
# SemGraphConv
# =============================================================================================
@st.composite
def random_graphs(draw, max_nodes: int = 40):
    """(edge_index [2, E] (each edge once, columns shuffled), num_nodes, seed) of a random directed
    graph with optional self loops and some nodes without incoming edges. A template listing an
    edge twice is refused by SemGraphConv (tested in test_nn_sem_graph_conv.py)."""
    n = draw(st.integers(1, max_nodes))
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.sampled_from([0.0, 0.05, 0.2, 0.6]))
    loops = draw(st.sampled_from(["none", "some", "all"]))
    n_iso = draw(st.integers(0, n))
    rng = np.random.default_rng(seed)
    A = rng.random((n, n)) < density  # A[t, s]: edge s -> t
    np.fill_diagonal(A, {"none": False, "some": rng.random(n) < 0.5, "all": True}[loops])
    iso = rng.choice(n, size=min(n_iso, n), replace=False) if n_iso else []
    A[iso, :] = False  # nodes without incoming edges
    tgt, src = np.nonzero(A)
    order = rng.permutation(len(src))
    ei = np.stack([src[order], tgt[order]])
    return torch.from_numpy(ei.astype(np.int64)).reshape(2, -1), n, seed


def _make_conv(ei, n, cin, cout, isolated, mode, seed, bias=True):
    torch.manual_seed(seed)
    conv = SemGraphConv(cin, cout, ei, n, bias=bias, isolated=isolated, mode=mode)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        conv.edge_logits.data.copy_(torch.randn(conv.edge_logits.shape, generator=g))
        if conv.bias is not None:
            conv.bias.data.copy_(torch.randn(conv.bias.shape, generator=g))
    return conv


def _reference_sem_graph_conv(x, edge_index, n, weight, logits, bias, isolated):
    """docs/published_model.md §2.1 written densely in float64: logit ``k`` belongs to column ``k``
    of the template ``edge_index`` (its edge type),
    ``-9e15`` elsewhere, row softmax, ``out_i = S_ii h0_i + sum_{j != i} S_ij h1_j + b``; rows with
    no nonzero: uniform (published), own node only ("self") or nothing ("zero")."""
    x = x.double()
    W = weight.double()
    src, tgt = edge_index.tolist()
    pairs = list(zip(tgt, src))  # template column k = edge type k = logit k
    assert len(set(pairs)) == len(pairs) == logits.numel()
    L = torch.full((n, n), -9e15, dtype=torch.float64)
    for k, (t, s) in enumerate(pairs):
        L[t, s] = logits[k].double()
    has_row = torch.zeros(n, dtype=torch.bool)
    for t, _ in pairs:
        has_row[t] = True
    if isolated == "self":
        for i in range(n):
            if not has_row[i]:
                L[i, i] = 0.0
    S = torch.softmax(L, dim=1)
    if isolated == "zero":
        S[~has_row] = 0.0
    h0 = x @ W[0]
    h1 = x @ W[1]
    d = torch.diagonal(S)
    out = (S - torch.diag(d)) @ h1 + d.unsqueeze(-1) * h0
    if bias is not None:
        out = out + bias.double()
    return out


_MODES = ("dense", "sparse", "scatter", "auto")


@settings(max_examples=30, **_SETTINGS)
@given(graph=random_graphs(), batch=st.sampled_from([None, 1, 2, 3]),
       cin=st.integers(1, 8), cout=st.integers(1, 8),
       isolated=st.sampled_from(["zero", "self", "uniform"]), bias=st.booleans())
def test_sem_graph_conv_modes_agree(graph, batch, cin, cout, isolated, bias):
    ei, n, seed = graph
    g = torch.Generator().manual_seed(seed)
    shape = (n, cin) if batch is None else (batch, n, cin)
    x0 = torch.randn(*shape, generator=g)
    gout = torch.randn(*shape[:-1], cout, generator=g)
    base = _make_conv(ei, n, cin, cout, isolated, "dense", seed, bias)
    ref = _reference_sem_graph_conv(x0, ei, n, base.weight.detach(), base.edge_logits.detach(),
                                    None if base.bias is None else base.bias.detach(), isolated)
    results = {}
    for mode in _MODES:
        conv = _make_conv(ei, n, cin, cout, isolated, mode, seed, bias)
        conv.load_state_dict(base.state_dict())
        x = x0.clone().requires_grad_(True)
        out = conv(x)
        assert out.shape == (*shape[:-1], cout)
        (out * gout).sum().backward()
        grads = [x.grad] + [p.grad if p.grad is not None else torch.zeros_like(p)
                            for p in (conv.weight, conv.edge_logits)]
        if conv.bias is not None:
            grads.append(conv.bias.grad)
        results[mode] = (out.detach(), grads)
        torch.testing.assert_close(out.detach().double(), ref, atol=1e-5, rtol=1e-5,
                                   msg=lambda m: f"mode {mode} vs docs/published_model.md §2.1 reference: {m}")
    out_d, grads_d = results["dense"]
    for mode in _MODES[1:]:
        out_m, grads_m = results[mode]
        torch.testing.assert_close(out_m, out_d, atol=1e-5, rtol=1e-5)
        for name, gm, gd in zip(("x", "weight", "edge_logits", "bias"), grads_m, grads_d):
            torch.testing.assert_close(gm, gd, atol=1e-5, rtol=1e-5,
                                       msg=lambda m: f"grad {name}, {mode} vs dense: {m}")


@settings(max_examples=30, **_SETTINGS)
@given(graph=random_graphs(max_nodes=30), batch=st.sampled_from([None, 2]),
       cin=st.integers(1, 6), cout=st.integers(1, 6),
       isolated=st.sampled_from(["zero", "self", "uniform"]),
       mode=st.sampled_from(_MODES))
def test_sem_graph_conv_permutation_equivariance(graph, batch, cin, cout, isolated, mode):
    ei, n, seed = graph
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)  # old node v becomes perm[v]
    conv = _make_conv(ei, n, cin, cout, isolated, mode, seed)
    ei_p = perm[ei]
    conv_p = _make_conv(ei_p, n, cin, cout, isolated, mode, seed)
    # carry every edge's logit to the relabelled edge
    src, tgt = conv.edge_index
    key_p = perm[tgt] * n + perm[src]
    src_p, tgt_p = conv_p.edge_index
    pos = {int(k): i for i, k in enumerate((tgt_p * n + src_p).tolist())}
    idx = torch.tensor([pos[int(k)] for k in key_p.tolist()], dtype=torch.long)
    with torch.no_grad():
        conv_p.weight.copy_(conv.weight)
        conv_p.bias.copy_(conv.bias)
        conv_p.edge_logits.zero_()
        conv_p.edge_logits[idx] = conv.edge_logits
    shape = (n, cin) if batch is None else (batch, n, cin)
    x = torch.randn(*shape, generator=g)
    x_p = torch.empty_like(x)
    x_p[..., perm, :] = x
    out = conv(x)
    out_p = conv_p(x_p)
    torch.testing.assert_close(out_p[..., perm, :], out, atol=1e-5, rtol=1e-5)


# =============================================================================================
# JointAssignment
# =============================================================================================
@settings(max_examples=40, **_SETTINGS)
@given(slots=st.integers(1, 60), joints=st.integers(1, 20), seed=st.integers(0, 2**16),
       fake_frac=st.sampled_from([0.0, 0.3, 1.0]), batch=st.sampled_from([None, 1, 3]),
       channels=st.integers(1, 4))
def test_joint_assignment_pool_unpool(slots, joints, seed, fake_frac, batch, channels):
    rng = np.random.default_rng(seed)
    assign = rng.integers(0, joints, size=slots)
    assign[rng.random(slots) < fake_frac] = -1
    ja = JointAssignment(torch.from_numpy(assign), num_joints=joints)
    assert ja.num_slots == slots
    lead = () if batch is None else (batch,)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*lead, slots, channels, generator=g, dtype=torch.float64)
    pooled = ja.pool(x)
    assert pooled.shape == (*lead, joints, channels)
    for j in range(joints):
        members = np.flatnonzero(assign == j).tolist()
        ref = x[..., members, :].mean(-2) if members else torch.zeros_like(x[..., 0, :])
        torch.testing.assert_close(pooled[..., j, :], ref)
    y = torch.randn(*lead, joints, channels, generator=g, dtype=torch.float64)
    up = ja.unpool(y)
    assert up.shape == (*lead, slots, channels)
    for s in range(slots):
        ref = y[..., assign[s], :] if assign[s] >= 0 else torch.zeros_like(y[..., 0, :])
        torch.testing.assert_close(up[..., s, :], ref)
    # pool(unpool(y)) keeps joints that own slots and zeroes the others
    has = torch.from_numpy(np.bincount(assign[assign >= 0], minlength=joints) > 0)
    torch.testing.assert_close(ja.pool(up), y * has.view(-1, 1).to(y.dtype))


@settings(max_examples=15, **_SETTINGS)
@given(mesh=random_meshes(max_size=2), levels=st.integers(1, 4), joints=st.integers(1, 6),
       seed=st.integers(0, 2**16))
def test_hierarchy_joint_assignment(mesh, levels, joints, seed):
    """Random positive weights: every real slot gets a joint in range, fake slots -1."""
    faces, nv = mesh
    h = mesh_hierarchy(faces, nv, levels=levels)
    rng = np.random.default_rng(seed)
    w = rng.random((joints, nv)) + 1e-3
    for lv in range(levels + 1):
        ja = h.joint_assignment(w, lv)
        a = ja.assign
        real = h.levels[lv].real_mask
        assert a.shape == (h.num_slots[lv],)
        assert bool((a[~real] == -1).all()) and bool(((a[real] >= 0) & (a[real] < joints)).all())


# =============================================================================================
# GraphNonLocal
# =============================================================================================
@settings(max_examples=25, **_SETTINGS)
@given(n=st.integers(1, 30), batch=st.sampled_from([None, 1, 3]), channels=st.integers(2, 8),
       train=st.booleans(), seed=st.integers(0, 2**16))
def test_graph_non_local_permutation_equivariance(n, batch, channels, train, seed):
    if train and (batch or 1) * n < 2:
        return  # BatchNorm cannot train on a single value per channel
    # float64: equivariance is exact, and train-mode BatchNorm over a few nodes amplifies float32
    # summation-order rounding past any tight tolerance
    torch.manual_seed(seed)
    block = GraphNonLocal(channels).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # make the block non-trivial (fresh BN weight/bias are 0 -> identity)
        block.bn.weight.copy_(torch.randn(channels, generator=g))
        block.bn.bias.copy_(torch.randn(channels, generator=g))
        block.bn.running_mean.copy_(torch.randn(channels, generator=g))
        block.bn.running_var.copy_(torch.rand(channels, generator=g) + 0.5)
    block.train(train)
    shape = (n, channels) if batch is None else (batch, n, channels)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    perm = torch.randperm(n, generator=g)
    out = block(x)
    out_p = block(x[..., perm, :])
    torch.testing.assert_close(out_p, out[..., perm, :], atol=1e-9, rtol=1e-9)
    assert not torch.allclose(out, x)  # the block really did something
