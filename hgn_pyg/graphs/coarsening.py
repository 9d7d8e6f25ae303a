"""Heavy-edge-matching (HEM) mesh coarsening, exactly as the published HGN pipeline did it.

This module is the NumPy/SciPy core of :mod:`hgn_pyg.graphs` (docs/published_model.md §1.2):

* :func:`classic_argsort` -- the tie order of ``numpy.argsort`` as numpy <= 1.23 computed it on
  every CPU (an introsort), written out here so that the partitions do not depend on the CPU's
  SIMD sort. Degrees tie a lot and the tie order decides the graphs.
* :func:`faces_to_adjacency` -- the binary, symmetric vertex adjacency of a triangle mesh, with
  validation of the faces.
* :func:`hem_coarsen` -- ``levels`` rounds of greedy heavy-edge matching with the published score
  ``(2 W_ij + W_ii + W_jj) / (d_i + d_j + 1e-9)`` and both of its bookkeeping quirks.
* :func:`binary_tree_perms` -- the binary-tree slot orders (Defferrard et al., 2016) in which a
  cluster's children occupy two adjacent slots and fake nodes pad singletons.

Everything here is deterministic and CPU-independent; nothing calls ``np.argsort`` on data whose
ties matter.
"""
from __future__ import annotations

import logging
from typing import List, Sequence, Tuple

import numpy as np
import scipy.sparse as sp

from ..errors import GraphError

__all__ = [
    "SMALL_QUICKSORT",
    "classic_argsort",
    "faces_to_adjacency",
    "validate_faces",
    "hem_coarsen",
    "hem_one_level",
    "binary_tree_perms",
]

log = logging.getLogger(__name__)

#: numpy's constant: a partition with ``pr - pl <= SMALL_QUICKSORT`` (at most 16 elements) is
#: finished by insertion sort. It has been 15 since numarray, in numpy 1.x and 2.x alike.
SMALL_QUICKSORT = 15


# ---------------------------------------------------------------------------------------------
# classic introsort argsort
# ---------------------------------------------------------------------------------------------
def _sift_down(v: list, t: list, off: int, tmp: int, i: int, n: int) -> None:
    """Place index ``tmp`` into the 1-based max-heap ``t[off + 1 .. off + n]`` starting at node
    ``i``: children larger than ``tmp``'s key move up, the larger child first."""
    vt = v[tmp]
    j = i << 1
    while j <= n:
        if j < n and v[t[off + j]] < v[t[off + j + 1]]:
            j += 1
        if vt < v[t[off + j]]:
            t[off + i] = t[off + j]
            i = j
            j += j
        else:
            break
    t[off + i] = tmp


def _heapsort_segment(v: list, t: list, start: int, n: int) -> None:
    """Index heapsort of ``t[start:start+n]`` by the keys ``v`` (1-based sift-down, max-heap)."""
    off = start - 1  # heap element k (1-based) lives at t[off + k]
    for l in range(n >> 1, 0, -1):  # build the heap
        _sift_down(v, t, off, t[off + l], l, n)
    while n > 1:  # move the maximum to the end, re-heap the rest
        tmp = t[off + n]
        t[off + n] = t[off + 1]
        n -= 1
        _sift_down(v, t, off, tmp, 1, n)


def _introsort_indices(v: list, stats: dict | None = None) -> list:
    """Return the classic introsort argsort of the comparable keys ``v`` (a Python list).

    ``v`` may hold anything ordered by ``<`` (ints, floats without NaN, or objects with
    ``__lt__``). ``stats`` (optional dict) receives ``"heapsort"`` (number of partitions finished
    by the heapsort fallback), ``"partitions"`` and ``"max_stack"``; only tests use it.
    """
    num = len(v)
    t = list(range(num))
    if num < 2:
        return t
    heapsorts = 0
    partitions = 0
    max_stack = 0
    stack: List[Tuple[int, int, int]] = []
    pl = 0
    pr = num - 1
    cdepth = (num.bit_length() - 1) * 2  # 2 * floor(log2(num))
    while True:
        if cdepth < 0:
            _heapsort_segment(v, t, pl, pr - pl + 1)
            heapsorts += 1
        else:
            while pr - pl > SMALL_QUICKSORT:
                partitions += 1
                # median of three, moving the median to pm and the extremes to pl / pr
                pm = pl + ((pr - pl) >> 1)
                if v[t[pm]] < v[t[pl]]:
                    t[pm], t[pl] = t[pl], t[pm]
                if v[t[pr]] < v[t[pm]]:
                    t[pr], t[pm] = t[pm], t[pr]
                if v[t[pm]] < v[t[pl]]:
                    t[pm], t[pl] = t[pl], t[pm]
                vp = v[t[pm]]
                pi = pl
                pj = pr - 1
                t[pm], t[pj] = t[pj], t[pm]
                while True:
                    pi += 1
                    while v[t[pi]] < vp:
                        pi += 1
                    pj -= 1
                    while vp < v[t[pj]]:
                        pj -= 1
                    if pi >= pj:
                        break
                    t[pi], t[pj] = t[pj], t[pi]
                pk = pr - 1
                t[pi], t[pk] = t[pk], t[pi]
                # push the larger partition, keep working on the smaller one
                cdepth -= 1
                if pi - pl < pr - pi:
                    stack.append((pi + 1, pr, cdepth))
                    pr = pi - 1
                else:
                    stack.append((pl, pi - 1, cdepth))
                    pl = pi + 1
                if len(stack) > max_stack:
                    max_stack = len(stack)
            # insertion sort of the small partition
            for pi in range(pl + 1, pr + 1):
                vi = t[pi]
                vpi = v[vi]
                pj = pi
                while pj > pl and vpi < v[t[pj - 1]]:
                    t[pj] = t[pj - 1]
                    pj -= 1
                t[pj] = vi
        if not stack:
            break
        pl, pr, cdepth = stack.pop()
    if stats is not None:
        stats["heapsort"] = heapsorts
        stats["partitions"] = partitions
        stats["max_stack"] = max_stack
    return t


def _order_keys(a: np.ndarray) -> list:
    """Integer keys with exactly the order of numpy's ``less`` on ``a`` (NaN last, -0.0 == 0.0)."""
    if a.dtype.kind in "biu":
        return a.tolist()  # Python ints: exact for every width, uint64 >= 2**63 included
    if a.dtype.kind != "f":
        raise GraphError(f"classic_argsort: expected a real numeric array, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    nan = np.isnan(a)
    finite_keys = np.unique(a[~nan]) if nan.any() else None
    if finite_keys is None:
        # no NaN: the values themselves compare exactly like numpy's less
        return a.tolist()
    keys = np.searchsorted(finite_keys, a).astype(np.int64)
    keys[nan] = len(finite_keys)  # NaN sorts after everything and ties with NaN
    return keys.tolist()


def classic_argsort(a, _stats: dict | None = None) -> np.ndarray:
    """Argsort in the order of numpy <= 1.23's default ``np.argsort`` (``kind='quicksort'``).

    That routine is an introsort over an index array: median-of-3 quicksort partitions (Hoare
    scans that stop on keys equal to the pivot), partitions with ``pr - pl <= 15`` (at most 16
    elements) finished by insertion sort, the larger partition pushed on a stack, and a depth
    budget of ``2 * floor(log2(n))``, checked only when a partition is popped, after which that
    partition is heapsorted (1-based index heap). Equal keys therefore come out in a specific,
    deterministic but unstable order, which this function reproduces exactly (NaN sorts last).
    numpy >= 1.25 may use SIMD sorts on AVX2/AVX-512 CPUs that break ties differently; this code
    never calls ``np.argsort`` for the tie order.

    Args:
        a: 1-D array-like of real numbers ``[N]`` (float or integer).

    Returns:
        ``np.ndarray[int64]`` of shape ``[N]``, a permutation of ``range(N)``.

    Pure Python; ~10-30 ms for 7,000 keys.
    """
    arr = np.asarray(a)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise GraphError(f"classic_argsort: expected a 1-D array, got shape {tuple(arr.shape)}")
    order = _introsort_indices(_order_keys(arr), _stats)
    return np.asarray(order, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# mesh -> adjacency
# ---------------------------------------------------------------------------------------------
def validate_faces(faces, num_vertices: int, allow_duplicate_faces: bool = False) -> np.ndarray:
    """Check a triangle list and return it as ``np.ndarray[int64]`` of shape ``[F, 3]``.

    Raises :class:`~hgn_pyg.errors.GraphError` (naming the first offending face / vertices) when
    ``faces`` is not an ``[F, 3]`` integer array (NaN or fractional entries included), when an index
    is outside ``[0, num_vertices)``, when a face repeats a vertex (degenerate triangle) or when a
    vertex of ``range(num_vertices)`` belongs to no face (isolated vertices break HEM's row
    bookkeeping), and when a triangle appears twice (in any vertex order) unless
    ``allow_duplicate_faces=True`` -- a repeated face makes the mesh non-manifold and usually
    means a broken file; when allowed, it changes nothing (edges are counted once).
    """
    if hasattr(faces, "detach"):  # torch tensor
        faces = faces.detach().cpu().numpy()
    try:
        f = np.asarray(faces)
    except Exception as exc:  # ragged lists and the like
        raise GraphError(f"faces must be an [F, 3] integer array ({exc})") from exc
    if f.dtype == object:
        raise GraphError("faces must be an [F, 3] integer array, got a ragged/object array")
    if f.ndim != 2 or f.shape[1] != 3:
        raise GraphError(f"faces must be an [F, 3] integer array, got shape {tuple(f.shape)}")
    if f.shape[0] == 0:
        raise GraphError("faces is empty (shape [0, 3]); a mesh needs at least one triangle")
    if f.dtype.kind == "f":
        bad = np.argwhere(~np.isfinite(f))
        if len(bad):
            k = int(bad[0, 0])
            raise GraphError(f"faces contain NaN/inf (first at face {k}: {f[k].tolist()})")
        frac = np.argwhere(f != np.round(f))
        if len(frac):
            k = int(frac[0, 0])
            raise GraphError(f"faces contain non-integer indices (first at face {k}: {f[k].tolist()})")
        raise GraphError(f"faces must have an integer dtype, got {f.dtype}")
    if f.dtype.kind not in "iu":
        raise GraphError(f"faces must have an integer dtype, got {f.dtype}")
    if isinstance(num_vertices, (bool, np.bool_)) or not isinstance(num_vertices, (int, np.integer)):
        raise GraphError(f"num_vertices must be an int, got {num_vertices!r}")
    num_vertices = int(num_vertices)
    if num_vertices < 3:
        raise GraphError(f"num_vertices must be >= 3, got {num_vertices}")
    if f.dtype.kind == "u" and f.dtype.itemsize >= 8 and f.max() > np.iinfo(np.int64).max:
        raise GraphError("faces hold indices beyond int64")
    f = f.astype(np.int64)
    out = (f < 0) | (f >= num_vertices)
    if out.any():
        k, c = (int(x) for x in np.argwhere(out)[0])
        raise GraphError(
            f"face {k} {f[k].tolist()} has vertex index {int(f[k, c])} outside [0, {num_vertices}) "
            f"({int(out.any(axis=1).sum())} faces out of range)"
        )
    degen = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])
    if degen.any():
        k = int(np.flatnonzero(degen)[0])
        raise GraphError(
            f"face {k} {f[k].tolist()} is degenerate (repeats a vertex); "
            f"{int(degen.sum())} degenerate faces in all"
        )
    if not allow_duplicate_faces and len(f) > 1:
        key = np.sort(f, axis=1)
        order = np.lexsort(key.T[::-1])
        same = np.all(key[order[1:]] == key[order[:-1]], axis=1)
        if same.any():
            k = int(np.flatnonzero(same)[0])
            a, b = sorted((int(order[k]), int(order[k + 1])))
            raise GraphError(
                f"faces {a} {f[a].tolist()} and {b} {f[b].tolist()} are the same triangle; "
                f"{int(same.sum())} duplicate faces in all (pass allow_duplicate_faces=True to "
                f"accept them: they do not change the graph)"
            )
    used = np.zeros(num_vertices, dtype=bool)
    used[f.ravel()] = True
    if not used.all():
        iso = np.flatnonzero(~used)
        shown = iso[:10].tolist()
        more = "" if len(iso) <= 10 else f" ... ({len(iso)} in all)"
        raise GraphError(
            f"mesh has isolated vertices (in no face): {shown}{more}; remove them or fix num_vertices"
        )
    return f


def faces_to_adjacency(faces, num_vertices: int,
                       allow_duplicate_faces: bool = False) -> sp.csr_matrix:
    """Binary symmetric adjacency of a triangle mesh (docs/published_model.md §1.2).

    ``W[a, b] = W[b, a] = 1`` for every face edge ``(v0, v1), (v1, v2), (v0, v2)``, duplicates
    counted once, no self loops.

    Args:
        faces: ``[F, 3]`` integer array (numpy, list or torch tensor).
        num_vertices: ``V``; every vertex must belong to a face.

    Returns:
        ``scipy.sparse.csr_matrix`` ``[V, V]``, float64, canonical (sorted, no duplicates).
    """
    f = validate_faces(faces, num_vertices, allow_duplicate_faces)
    n = int(num_vertices)
    a = np.concatenate([f[:, 0], f[:, 1], f[:, 0]])
    b = np.concatenate([f[:, 1], f[:, 2], f[:, 2]])
    rows = np.concatenate([a, b])
    cols = np.concatenate([b, a])
    key = np.sort(rows * n + cols)  # row-major; duplicate edges are adjacent
    if len(key) > 1:
        key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    rows = key // n
    cols = key % n
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    W = sp.csr_matrix((np.ones(len(key)), cols.astype(np.int32), indptr.astype(np.int32)), shape=(n, n))
    W.has_sorted_indices = True
    return W


# ---------------------------------------------------------------------------------------------
# heavy-edge matching
# ---------------------------------------------------------------------------------------------
def _canonical_csr(W, what: str = "W") -> sp.csr_matrix:
    if not sp.issparse(W):
        W = np.asarray(W)
        if W.ndim != 2:
            raise GraphError(f"{what} must be a square matrix, got shape {tuple(W.shape)}")
    W = sp.csr_matrix(W, dtype=np.float64, copy=True)
    if W.shape[0] != W.shape[1]:
        raise GraphError(f"{what} must be square, got shape {W.shape}")
    W.sum_duplicates()
    W.eliminate_zeros()
    W.sort_indices()
    if W.nnz and not np.all(np.isfinite(W.data)):
        raise GraphError(f"{what} holds NaN/inf weights")
    return W


def hem_one_level(W: sp.csr_matrix, rid: Sequence[int], weights: Sequence[float]) -> np.ndarray:
    """One round of the published greedy heavy-edge matching (docs/published_model.md §1.2).

    Args:
        W: canonical CSR ``[N, N]`` (sorted column indices, no explicit zeros, no empty row).
        rid: visiting order ``[N]`` (a permutation of ``range(N)``).
        weights: degree weights ``d`` ``[N]``.

    Returns:
        ``cluster_id`` ``np.ndarray[int64]`` ``[N]``: cluster of each vertex, ids in visiting order.

    The walk of row ``i`` covers ``rowlength[i]`` stored entries from the row's first one, where
    row 0 is counted one too many (it also walks the first entry of row 1) and the last row one
    too few; ``W_ii`` is the first stored value of row ``i``. The score of an unmarked neighbour
    ``j`` is ``((2 W_ij + W_ii) + W_jj) / ((d_i + d_j) + 1e-9)`` in float64; a strictly larger score
    than the running best (starting at 0.0) replaces it.
    """
    n = W.shape[0]
    indptr = W.indptr.tolist()
    cols = W.indices.tolist()
    vals = W.data.tolist()
    deg = [float(x) for x in np.asarray(weights, dtype=np.float64).ravel().tolist()]
    first = [vals[indptr[r]] for r in range(n)]
    length = [indptr[r + 1] - indptr[r] for r in range(n)]
    if n > 1:
        length[0] += 1
        length[n - 1] -= 1
    marked = [False] * n
    cid = [0] * n
    count = 0
    for tid in rid:
        if marked[tid]:
            continue
        marked[tid] = True
        wmax = 0.0
        best = -1
        rs = indptr[tid]
        wii = first[tid]
        di = deg[tid]
        for k in range(rs, rs + length[tid]):
            nid = cols[k]
            if marked[nid]:
                continue  # scores 0.0, never > wmax >= 0.0
            tval = (2.0 * vals[k] + wii + first[nid]) / (di + deg[nid] + 1e-9)
            if tval > wmax:
                wmax = tval
                best = nid
        cid[tid] = count
        if best > -1:
            cid[best] = count
            marked[best] = True
        count += 1
    return np.asarray(cid, dtype=np.int64)


def hem_coarsen(W, levels: int) -> Tuple[List[sp.csr_matrix], List[np.ndarray]]:
    """Coarsen a graph ``levels`` times with the published heavy-edge matching (docs/published_model.md §1.2).

    At each level ``rid = classic_argsort(column sums of W)``; the degree weights are the column
    sums minus the diagonal at level 0 and the column sums later on; the coarse graph sums the
    weights between clusters (pairs merged inside a cluster become self loops).

    Args:
        W: ``[N0, N0]`` symmetric sparse (or dense) adjacency with no empty row (float weights).
        levels: number of coarsening rounds (>= 0).

    Returns:
        ``(graphs, clusters)``: ``graphs`` is a list of ``levels + 1`` canonical CSR float64
        matrices (``graphs[0]`` is ``W``), ``graphs[i]`` of shape ``[N_i, N_i]``; ``clusters[i]`` is
        ``np.ndarray[int64]`` ``[N_i]`` mapping each vertex of level ``i`` to its cluster (vertex of
        level ``i + 1``).
    """
    if isinstance(levels, (bool, np.bool_)) or not isinstance(levels, (int, np.integer)) or levels < 0:
        raise GraphError(f"levels must be a non-negative int, got {levels!r}")
    W = _canonical_csr(W)
    n = W.shape[0]
    if n == 0:
        raise GraphError("W is empty (0 vertices)")
    rowlen = np.diff(W.indptr)
    if (rowlen == 0).any():
        empty = np.flatnonzero(rowlen == 0)
        raise GraphError(
            f"W has rows without any entry (isolated vertices): {empty[:10].tolist()}"
            + ("" if len(empty) <= 10 else f" ... ({len(empty)} in all)")
        )
    graphs = [W]
    clusters: List[np.ndarray] = []
    colsum = np.asarray(W.sum(axis=0), dtype=np.float64).ravel()
    weights = colsum - W.diagonal()
    rid = classic_argsort(colsum)
    for level in range(int(levels)):
        cid = hem_one_level(W, rid.tolist(), weights)
        clusters.append(cid)
        coo_rows = np.repeat(np.arange(W.shape[0]), np.diff(W.indptr))
        n_new = int(cid.max()) + 1
        W = sp.csr_matrix((W.data, (cid[coo_rows], cid[W.indices])), shape=(n_new, n_new))
        W.sum_duplicates()
        W.eliminate_zeros()
        W.sort_indices()
        graphs.append(W)
        colsum = np.asarray(W.sum(axis=0), dtype=np.float64).ravel()
        weights = colsum
        rid = classic_argsort(colsum)
        log.debug("HEM level %d: %d -> %d vertices", level, len(cid), n_new)
    return graphs, clusters


def binary_tree_perms(clusters: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Binary-tree slot orders for a coarsening (Defferrard et al., 2016; docs/published_model.md §1.2).

    Walking from the coarsest level down, each slot of level ``i + 1`` is expanded into two slots of
    level ``i``: the cluster's children in ascending vertex order, then one fake node when it has a
    single child; a fake node (or a cluster without children) expands into two fakes. Fake ids at
    level ``i`` count up from ``len(clusters[i])``. The coarsest order is ``range(num clusters)``.

    Args:
        clusters: ``levels`` arrays, ``clusters[i]`` ``[N_i]`` (vertex of level i -> cluster id).

    Returns:
        ``levels + 1`` arrays ``perms[i]`` ``np.ndarray[int64]`` ``[S_i]`` with
        ``S_i = 2 ** (levels - i) * N_levels``; ``perms[i][s]`` is the vertex at slot ``s``
        (``>= N_i`` means fake). With no clusters, returns ``[]``.
    """
    if len(clusters) == 0:
        return []
    cl = [np.asarray(c, dtype=np.int64).ravel() for c in clusters]
    n_last = int(cl[-1].max()) + 1 if len(cl[-1]) else 0
    perms: List[List[int]] = [list(range(n_last))]
    for i in range(len(cl) - 1, -1, -1):
        parent = cl[i]
        n_i = len(parent)
        n_par = perms[-1]
        # children of every cluster, ascending vertex order
        n_clusters = int(parent.max()) + 1 if n_i else 0
        order = np.argsort(parent, kind="stable").tolist()  # stable: vertices ascending per cluster
        counts = np.bincount(parent, minlength=n_clusters).tolist()
        if max(counts, default=0) > 2:
            bad = int(np.argmax(np.asarray(counts) > 2))
            raise GraphError(f"cluster {bad} at level {i + 1} has {counts[bad]} children (at most 2 allowed)")
        starts = [0] * (n_clusters + 1)
        for c in range(n_clusters):
            starts[c + 1] = starts[c] + counts[c]
        fake = n_i
        layer: List[int] = []
        for p in n_par:
            if p < n_clusters:
                k = counts[p]
                s = starts[p]
            else:
                k = 0
            if k == 2:
                layer.append(order[s])
                layer.append(order[s + 1])
            elif k == 1:
                layer.append(order[s])
                layer.append(fake)
                fake += 1
            else:
                layer.append(fake)
                layer.append(fake + 1)
                fake += 2
        perms.append(layer)
    return [np.asarray(p, dtype=np.int64) for p in perms[::-1]]
