"""Heavy-edge matching (docs/published_model.md §1.2): hand-checked meshes, an independent re-statement of the
spec compared on random meshes, binary-tree perms, and face validation."""
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial import Delaunay

from hgn_pyg.errors import GraphError
from hgn_pyg.graphs import (
    binary_tree_perms,
    classic_argsort,
    faces_to_adjacency,
    hem_coarsen,
    mesh_hierarchy,
)


# ----------------------------------------------------------------------------- mesh makers
def strip_mesh():
    # 0-2-4
    # |/|/|
    # 1-3-5
    return np.array([[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]), 6


def octahedron():
    # 0=+x 1=-x 2=+y 3=-y 4=+z 5=-z; every vertex touches all but its opposite
    f = [[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]]
    return np.array(f), 6


def grid_mesh(rows, cols, diag_flip=False):
    idx = np.arange(rows * cols).reshape(rows, cols)
    faces = []
    for r in range(rows - 1):
        for c in range(cols - 1):
            a, b, d, e = idx[r, c], idx[r, c + 1], idx[r + 1, c], idx[r + 1, c + 1]
            if diag_flip and (r + c) % 2:
                faces += [[a, b, d], [b, e, d]]
            else:
                faces += [[a, b, e], [a, e, d]]
    return np.array(faces), rows * cols


def uv_sphere(nlat, nlon):
    def idx(i, j):
        return 1 + (i - 1) * nlon + (j % nlon)

    n = 2 + (nlat - 1) * nlon
    south = n - 1
    faces = [[0, idx(1, j), idx(1, j + 1)] for j in range(nlon)]
    for i in range(1, nlat - 1):
        for j in range(nlon):
            faces += [[idx(i, j), idx(i + 1, j), idx(i + 1, j + 1)],
                      [idx(i, j), idx(i + 1, j + 1), idx(i, j + 1)]]
    faces += [[south, idx(nlat - 1, j + 1), idx(nlat - 1, j)] for j in range(nlon)]
    return np.array(faces), n


def icosphere(subdiv):
    t = (1 + 5 ** 0.5) / 2
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
         (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
         (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5),
         (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    nv = len(v)
    for _ in range(subdiv):
        mid = {}
        nf = []

        def m(a, b):
            nonlocal nv
            k = (min(a, b), max(a, b))
            if k not in mid:
                mid[k] = nv
                nv += 1
            return mid[k]

        for a, b, c in f:
            ab, bc, ca = m(a, b), m(b, c), m(c, a)
            nf += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        f = nf
    return np.array(f), nv


def compact(faces):
    """Drop unreferenced vertices (renumbering in ascending order)."""
    used = np.unique(faces)
    remap = np.full(faces.max() + 1, -1)
    remap[used] = np.arange(len(used))
    return remap[faces], len(used)


def random_meshes():
    rng = np.random.default_rng(2024)
    meshes = []
    base_f, _ = icosphere(2)  # 162 vertices, 320 faces
    for keep in (0.3, 0.6, 0.9):
        for _ in range(2):
            sel = base_f[rng.random(len(base_f)) < keep]
            meshes.append(compact(sel))
    uf, _ = uv_sphere(9, 13)
    for keep in (0.5, 0.8):
        meshes.append(compact(uf[rng.random(len(uf)) < keep]))
    for n in (12, 40, 90, 200):
        pts = rng.random((n, 2))
        meshes.append(compact(Delaunay(pts).simplices.astype(np.int64)))
    ipts = rng.integers(0, 12, size=(300, 2)).astype(float)  # many collinear/cocircular points
    ipts = np.unique(ipts, axis=0)
    meshes.append(compact(Delaunay(ipts).simplices.astype(np.int64)))
    # tie-heavy regular meshes
    meshes += [grid_mesh(5, 7), grid_mesh(8, 8, diag_flip=True), uv_sphere(6, 10), uv_sphere(12, 16),
               icosphere(1), icosphere(3), strip_mesh(), octahedron()]
    # shuffled vertex labels of a regular mesh
    f, n = icosphere(2)
    relabel = rng.permutation(n)
    meshes.append((relabel[f], n))
    return meshes


# ----------------------------------------------------------------------------- the re-statement
def reference_hem(faces, n, levels):
    """docs/published_model.md §1.2 written out literally, on dense matrices (slow, readable)."""
    W = np.zeros((n, n))
    for a, b, c in faces:
        for i, j in ((a, b), (b, c), (a, c)):
            W[i, j] = W[j, i] = 1.0  # duplicates counted once, no self loops
    graphs = [W]
    parents = []
    degree = W.sum(axis=0) - np.diag(W)
    rid = classic_argsort(W.sum(axis=0))
    for _ in range(levels):
        N = W.shape[0]
        rr, cc = np.nonzero(W)  # row-major, columns ascending inside a row
        vv = W[rr, cc]
        # row bookkeeping exactly as the published loop counted it
        rowstart = np.zeros(N, int)
        rowlength = np.zeros(N, int)
        count = 0
        oldval = rr[0]
        for ii in range(len(rr)):
            rowlength[count] += 1
            if rr[ii] > oldval:
                oldval = rr[ii]
                rowstart[count + 1] = ii
                count += 1
        marked = np.zeros(N, bool)
        cluster_id = np.zeros(N, int)
        clustercount = 0
        for tid in rid:
            if marked[tid]:
                continue
            wmax = 0.0
            rs = rowstart[tid]
            marked[tid] = True
            best = -1
            for jj in range(rowlength[tid]):
                nid = cc[rs + jj]
                if marked[nid]:
                    tval = 0.0
                else:
                    Wij = vv[rs + jj]
                    Wii = vv[rowstart[tid]]
                    Wjj = vv[rowstart[nid]]
                    di = degree[tid]
                    dj = degree[nid]
                    tval = (2.0 * Wij + Wii + Wjj) / (di + dj + 1e-9)
                if tval > wmax:
                    wmax = tval
                    best = nid
            cluster_id[tid] = clustercount
            if best > -1:
                cluster_id[best] = clustercount
                marked[best] = True
            clustercount += 1
        parents.append(cluster_id)
        C = np.zeros((N, clustercount))
        C[np.arange(N), cluster_id] = 1.0
        W = C.T @ W @ C  # weights summed between clusters, merged pairs -> self loops
        graphs.append(W)
        degree = W.sum(axis=0)
        rid = classic_argsort(W.sum(axis=0))
    return graphs, parents


def reference_perms(parents):
    """Defferrard et al.'s binary-tree ordering, literally."""
    indices = [list(range(max(parents[-1]) + 1))]
    for parent in parents[::-1]:
        fake = len(parent)
        layer = []
        for i in indices[-1]:
            kids = list(np.where(parent == i)[0])
            assert len(kids) <= 2
            if len(kids) == 1:
                kids.append(fake)
                fake += 1
            elif len(kids) == 0:
                kids += [fake, fake + 1]
                fake += 2
            layer.extend(kids)
        indices.append(layer)
    return [np.array(x) for x in indices[::-1]]


# ----------------------------------------------------------------------------- hand-checked
def test_strip_by_hand():
    faces, n = strip_mesh()
    graphs, clusters = hem_coarsen(faces_to_adjacency(faces, n), 3)
    # Level 0: degrees [2,3,4,4,3,2]; 6 keys -> insertion sort (stable): rid = [0,5,1,4,2,3].
    # Every W = 1, so the score is 4 / (d_i + d_j).
    # Rows: r0 [1,2] r1 [0,2,3] r2 [0,1,3,4] r3 [1,2,4,5] r4 [2,3,5] r5 [3,4].
    # visit 0: walks 1 (4/5), 2 (4/6) and -- quirk -- row 1's first entry (col 0, itself) -> {0,1}
    # visit 5: the last row walks one entry too few: only col 3 (4/6) -> {5,3}
    #          (without the quirk col 4 would win with 4/5)
    # visit 4: 2 (4/7), 3 marked, 5 marked -> {4,2}
    assert clusters[0].tolist() == [0, 0, 2, 1, 2, 1]
    # Level 1: W1 = [[2,1,2],[1,2,3],[2,3,2]], column sums (= degrees) [5,6,7], rid [0,1,2]
    assert graphs[1].toarray().tolist() == [[2, 1, 2], [1, 2, 3], [2, 3, 2]]
    # visit 0: W00 = 2; j=1: (2+2+1)/11 = .4545, j=2: (4+2+2)/12 = .667 -> {0,2}
    # visit 1: first stored value of row 1 is W10 = 1 (not the diagonal); all neighbours marked -> {1}
    assert clusters[1].tolist() == [0, 1, 0]
    # Level 2: W2 = [[8,4],[4,2]], sums [12,6] -> rid [1,0]; row 1 walks only W10 (last-row quirk):
    # (2*4 + 4 + 8) / (6 + 12) > 0 -> {1,0}
    assert graphs[2].toarray().tolist() == [[8, 4], [4, 2]]
    assert clusters[2].tolist() == [0, 0]
    assert graphs[3].toarray().tolist() == [[18]]
    perms = binary_tree_perms(clusters)
    # level 2: cluster 0 -> children [0, 1]; level 1: 0 -> [0, 2], 1 -> [1] + fake 3;
    # level 0: 0 -> [0,1], 2 -> [2,4], 1 -> [3,5], fake 3 -> fakes 6, 7
    assert [p.tolist() for p in perms] == [[0, 1, 2, 4, 3, 5, 6, 7], [0, 2, 1, 3], [0, 1], [0]]


def test_octahedron_by_hand():
    faces, n = octahedron()
    graphs, clusters = hem_coarsen(faces_to_adjacency(faces, n), 3)
    # all degrees 4 -> rid = [0..5]; every score 4/8 -> first walked unmarked neighbour wins.
    # visit 0 -> {0,2}; visit 1 (row [2,3,4,5], 2 marked) -> {1,3};
    # visit 4: 0,1,2,3 all marked -> {4}; visit 5 (walks only 0,1,2: last-row quirk) -> {5}
    assert clusters[0].tolist() == [0, 1, 0, 1, 2, 3]
    assert graphs[1].toarray().tolist() == [[2, 2, 2, 2], [2, 2, 2, 2], [2, 2, 0, 0], [2, 2, 0, 0]]
    # Level 1: sums [8,8,4,4] -> stable insertion sort rid [2,3,0,1]
    # visit 2: row [0,1], W_ii = W20 = 2: j=0 (4+2+2)/12, j=1 same score -> first wins -> {2,0}
    # visit 3: last row walks only col 0 (marked) -> {3}; visit 1: everything marked -> {1}
    assert clusters[1].tolist() == [0, 2, 0, 1]
    assert graphs[2].toarray().tolist() == [[6, 2, 4], [2, 0, 2], [4, 2, 2]]
    # Level 2: sums [12,4,8] -> rid [1,2,0]; visit 1 (W_ii = W10 = 2): j=0 (4+2+6)/16 = .75,
    # j=2 (4+2+4)/12 = .833 -> {1,2}; visit 0 -> {0}
    assert clusters[2].tolist() == [1, 0, 0]
    assert graphs[3].toarray().tolist() == [[6, 6], [6, 6]]
    perms = binary_tree_perms(clusters)
    # level 2: 0 -> [1,2], 1 -> [0] + fake 3
    # level 1: 1 -> [3]+f4, 2 -> [1]+f5, 0 -> [0,2], f3 -> f6,f7
    # level 0: 3 -> [5]+f6, f4 -> f7,f8, 1 -> [1,3], f5 -> f9,f10, 0 -> [0,2], 2 -> [4]+f11,
    #          f6 -> f12,f13, f7 -> f14,f15
    assert [p.tolist() for p in perms] == [
        [5, 6, 7, 8, 1, 3, 9, 10, 0, 2, 4, 11, 12, 13, 14, 15],
        [3, 4, 1, 5, 0, 2, 6, 7],
        [1, 2, 0, 3],
        [0, 1],
    ]


def test_triangle_singletons_and_fakes_by_hand():
    graphs, clusters = hem_coarsen(faces_to_adjacency([[0, 1, 2]], 3), 2)
    # visit 0: j=1 scores 4/4 -> {0,1}; visit 2: last row walks only col 0 (marked) -> {2}
    # Level 1: W1 = [[2,2],[2,0]], sums [4,2] -> rid [1,0]; row 1 has one stored entry and, as the
    # last row, walks none -> {1}; row 0 sees only itself / marked -> {0}. Nothing merges.
    assert clusters[0].tolist() == [0, 0, 1]
    assert clusters[1].tolist() == [1, 0]
    perms = binary_tree_perms(clusters)
    assert [p.tolist() for p in perms] == [[2, 3, 4, 5, 0, 1, 6, 7], [1, 2, 0, 3], [0, 1]]


# ----------------------------------------------------------------------------- vs re-statement
@pytest.mark.parametrize("case", range(len(random_meshes())))
def test_matches_reference_restatement(case):
    faces, n = random_meshes()[case]
    levels = 6
    ref_graphs, ref_parents = reference_hem(faces, n, levels)
    graphs, clusters = hem_coarsen(faces_to_adjacency(faces, n), levels)
    for i in range(levels):
        assert np.array_equal(clusters[i], ref_parents[i]), f"level {i}"
    for i in range(levels + 1):
        assert np.array_equal(graphs[i].toarray(), ref_graphs[i]), f"graph {i}"
    perms = binary_tree_perms(clusters)
    ref = reference_perms(ref_parents)
    assert len(perms) == len(ref) == levels + 1
    for p, q in zip(perms, ref):
        assert np.array_equal(p, q)


def test_face_order_orientation_and_duplicates_do_not_matter():
    faces, n = icosphere(2)
    rng = np.random.default_rng(5)
    h0 = mesh_hierarchy(faces, n, levels=5)
    shuffled = faces[rng.permutation(len(faces))]
    rolled = np.roll(shuffled, 1, axis=1)[:, ::-1]  # other orientation / starting vertex
    dup = np.concatenate([rolled, faces[:50], faces[:50, ::-1]])
    with pytest.raises(GraphError, match="same triangle"):  # duplicates are an error by default
        mesh_hierarchy(dup, n, levels=5)
    for f in (shuffled, rolled, dup):
        h = mesh_hierarchy(f, n, levels=5, allow_duplicate_faces=True)
        for a, b in zip(h0.clusters, h.clusters):
            assert np.array_equal(a.numpy(), b.numpy())
        for a, b in zip(h0.perms, h.perms):
            assert np.array_equal(a.numpy(), b.numpy())


# ----------------------------------------------------------------------------- properties
def test_structural_properties():
    for faces, n in random_meshes()[::3] + [uv_sphere(20, 24)]:
        levels = 7
        graphs, clusters = hem_coarsen(faces_to_adjacency(faces, n), levels)
        perms = binary_tree_perms(clusters)
        for i, c in enumerate(clusters):
            counts = np.bincount(c)
            assert counts.min() >= 1 and counts.max() <= 2
            assert len(c) == graphs[i].shape[0] and counts.size == graphs[i + 1].shape[0]
            # cluster ids in visiting order: the first vertex of each id appears in id order
            assert graphs[i + 1].shape[0] == c.max() + 1
        for i, p in enumerate(perms):
            assert sorted(p.tolist()) == list(range(len(p)))
            if i < levels:
                assert len(p) == 2 * len(perms[i + 1])
        for i in range(levels + 1):
            g = graphs[i]
            assert abs(g - g.T).max() == 0  # stays symmetric
            assert g.sum() == graphs[0].sum()  # total weight preserved


def test_slot_counts_on_closed_mesh():
    faces, n = uv_sphere(40, 50)
    h = mesh_hierarchy(faces, n, levels=9)
    assert h.num_levels == 10
    assert all(h.num_slots[i] == 2 * h.num_slots[i + 1] for i in range(9))
    assert h.num_slots[9] == h.num_real[9]
    assert all(h.num_real[i] <= h.num_slots[i] for i in range(10))


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "faces, n, match",
    [
        (np.array([[0, 1, 2, 3]]), 4, r"\[F, 3\]"),
        (np.array([0, 1, 2]), 3, r"\[F, 3\]"),
        (np.zeros((0, 3), int), 3, "empty"),
        (np.array([[0.0, 1.0, np.nan]]), 3, "NaN"),
        (np.array([[0.0, 1.0, 2.5]]), 3, "non-integer"),
        (np.array([[0.0, 1.0, 2.0]]), 3, "integer dtype"),
        (np.array([[0, 1, 2], [1, 2, 3]]), 3, r"face 1 \[1, 2, 3\].*vertex index 3"),
        (np.array([[0, 1, 2], [-1, 1, 2]]), 3, r"face 1 .*-1"),
        (np.array([[0, 1, 2], [2, 2, 3]]), 4, r"face 1 \[2, 2, 3\] is degenerate"),
        (np.array([[0, 1, 2]]), 5, r"isolated vertices.*\[3, 4\]"),
        ([[0, 1], [2]], 3, "F, 3"),
    ],
)
def test_bad_faces_raise(faces, n, match):
    with pytest.raises(GraphError, match=match):
        mesh_hierarchy(faces, n, levels=2)


def test_graph_error_is_value_error_and_other_inputs():
    with pytest.raises(ValueError):
        faces_to_adjacency(np.array([[0, 0, 1]]), 2)
    with pytest.raises(GraphError, match="levels"):
        hem_coarsen(faces_to_adjacency(*strip_mesh()), -1)
    with pytest.raises(GraphError, match="isolated"):
        hem_coarsen(sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0.0]])), 1)
    with pytest.raises(GraphError, match="square"):
        hem_coarsen(sp.csr_matrix(np.ones((2, 3))), 1)
    # torch and list faces are accepted
    import torch

    f, n = strip_mesh()
    a = faces_to_adjacency(torch.from_numpy(f), n)
    b = faces_to_adjacency(f.tolist(), n)
    assert (a != b).nnz == 0 and a.dtype == np.float64 and a.has_sorted_indices


def test_levels_zero_and_collapse():
    f, n = strip_mesh()
    graphs, clusters = hem_coarsen(faces_to_adjacency(f, n), 0)
    assert len(graphs) == 1 and clusters == [] and binary_tree_perms(clusters) == []
    h = mesh_hierarchy(f, n, levels=0)
    assert h.num_levels == 1 and h.perms[0].tolist() == list(range(6))
    # coarsening past a single vertex keeps singletons (each level doubles the slots)
    h = mesh_hierarchy(f, n, levels=6)
    assert h.num_real[-1] == 1 and h.num_slots == [64, 32, 16, 8, 4, 2, 1]
