"""The multi-scale mesh hierarchy of HGN (docs/published_model.md §1.2-§1.3) as PyTorch Geometric data.

:func:`mesh_hierarchy` coarsens a triangle mesh with the published heavy-edge matching and returns a
:class:`GraphHierarchy`: per level ``i`` the coarse graph in binary-tree slot order (a PyG ``Data``),
the clusters, the slot permutations, the pooling matrices, and scatter-based pooling between
levels. :class:`JointAssignment` ties a mesh level to a skeleton (each real slot belongs to one
joint) for scatter-based fusion between the two.

Conventions (used everywhere below):

* ``N_i = num_real[i]`` real vertices at level ``i`` (level 0 = the mesh), in *original* order
  (the order HEM produces, cluster ids in visiting order).
* ``S_i = num_slots[i] = 2 ** (levels - i) * N_levels`` slots in binary-tree order; slot ``s`` of
  level ``i`` holds vertex ``perms[i][s]`` (``>= N_i`` is a fake node); the two children of slot
  ``t`` of level ``i + 1`` are slots ``2t`` and ``2t + 1`` of level ``i``.
* ``inv_perms[i][v]`` is the slot of vertex ``v`` (length ``S_i``, fakes included).
"""
from __future__ import annotations

import copy
import logging
import os
from typing import List, NamedTuple, Optional, Sequence, Union

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor
from torch_geometric.data import Data

from ..errors import GraphError
from ..io import atomic_write
from .coarsening import binary_tree_perms, faces_to_adjacency, hem_coarsen

__all__ = ["GraphHierarchy", "JointAssignment", "ParentMap", "mesh_hierarchy"]

log = logging.getLogger(__name__)

_FORMAT = "hgn_pyg.GraphHierarchy"
_VERSION = 1


def _as_long(x) -> Tensor:
    if isinstance(x, Tensor):
        return x.detach().to(torch.long)
    return torch.as_tensor(np.asarray(x, dtype=np.int64))


def _check_node_dim(x: Tensor, expected: int, what: str) -> None:
    if not isinstance(x, Tensor):
        raise GraphError(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in (2, 3) or x.shape[-2] != expected:
        raise GraphError(
            f"{what}: expected a tensor [{expected}, C] or [B, {expected}, C], got {list(x.shape)}"
        )


class ParentMap(NamedTuple):
    """A many-to-one map from ``num_fine`` nodes to ``num_coarse`` nodes with pooling weights:
    the one home of pooling (fine -> coarse) and broadcasting (coarse -> fine) in this package.

    Attributes:
        index: LongTensor ``[num_fine]``: coarse node of each fine node, ``-1`` for none.
        weight: float64 ``[num_fine]``: weight of each fine node in its coarse node's pooled
            value (0 where ``index`` is -1); a mean when the weights of a coarse node sum to 1.
        num_coarse: number of coarse nodes.

    ``pool``: ``out_c = sum_{s: index[s] = c} weight[s] x_s``; ``unpool``: ``out_s = x_{index[s]}``
    (0 where ``index[s] = -1``). Both take ``[S, C]``, ``[B, S, C]`` or a PyG batch
    ``[k*S, C]`` of ``k`` graphs with ``batch [k*S]``, like ``torch_geometric.nn.pool``.
    """

    index: Tensor
    weight: Tensor
    num_coarse: int

    @property
    def num_fine(self) -> int:
        return int(self.index.numel())

    def then(self, other: "ParentMap") -> "ParentMap":
        """The composed map: this one, then ``other`` (whose fine nodes are this one's coarse
        nodes); weights multiply."""
        if other.num_fine != self.num_coarse:
            raise GraphError(f"ParentMap.then: {self.num_coarse} coarse nodes cannot feed a map "
                             f"of {other.num_fine} fine nodes")
        ok = self.index >= 0
        up = other.index.to(self.index.device)[self.index.clamp(min=0)]
        index = torch.where(ok, up, -1)
        w = other.weight.to(self.weight.device)[self.index.clamp(min=0)]
        weight = torch.where(index >= 0, self.weight * w, 0.0)
        return ParentMap(index, weight, other.num_coarse)

    def pool(self, x: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        """Weighted sum of the fine nodes of every coarse node (0 for a coarse node without)."""
        xb, restore = _per_graph(x, self.num_fine, batch, "pool")
        real = (self.index >= 0).nonzero().view(-1).to(x.device)
        w = self.weight.to(device=x.device, dtype=x.dtype)[real].unsqueeze(-1)
        out_shape = list(xb.shape)
        out_shape[-2] = self.num_coarse
        out = xb.new_zeros(out_shape).index_add_(
            -2, self.index.to(x.device)[real], xb.index_select(-2, real) * w)
        return restore(out)

    def unpool(self, x: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        """Every fine node takes its coarse node's features (0 where it has none)."""
        xb, restore = _per_graph(x, self.num_coarse, batch, "unpool")
        mask = (self.index >= 0).to(device=x.device, dtype=x.dtype).unsqueeze(-1)
        return restore(xb.index_select(-2, self.index.clamp(min=0).to(x.device)) * mask)

    def to(self, device) -> "ParentMap":
        return ParentMap(self.index.to(device), self.weight.to(device), self.num_coarse)


def _per_graph(x: Tensor, n: int, batch: Optional[Tensor], what: str):
    """``x`` as ``[.., n, C]`` and the function restoring a result to ``x``'s layout: a PyG
    batch ``[k*n, C]`` (``batch`` given) becomes ``[k, n, C]``."""
    if batch is None:
        _check_node_dim(x, n, what)
        return x, lambda out: out
    if not isinstance(x, Tensor) or x.dim() != 2 or batch.shape != x.shape[:1]:
        raise GraphError(f"{what}: a PyG batch needs x [N, C] and batch [N], got x "
                         f"{tuple(getattr(x, 'shape', ()))} and batch {tuple(batch.shape)}")
    k = int(batch.max()) + 1 if batch.numel() else 0
    if x.size(0) != k * n or not bool((torch.bincount(batch, minlength=k) == n).all()):
        raise GraphError(f"{what}: every graph of the batch must have {n} nodes (this map's "
                         f"graph), got {torch.bincount(batch).tolist()}")
    order = batch.argsort(stable=True)
    if not bool((order == torch.arange(order.numel(), device=order.device)).all()):
        raise GraphError(f"{what}: batch must be sorted (graphs stored one after another)")
    return x.reshape(k, n, x.size(1)), lambda out: out.reshape(-1, out.size(-1))


class GraphHierarchy:
    """Coarsened mesh graphs of HGN, level 0 (the mesh) to ``levels`` (the coarsest).

    Build with :func:`mesh_hierarchy` (from faces) or :meth:`from_adjacency` (from a sparse
    adjacency). Plain object holding tensors; ``.to(device)`` returns a moved copy.

    Attributes:
        num_levels: number of graphs, ``levels + 1`` (indices ``0 .. levels``).
        num_real: ``N_i`` per level (list[int]).
        num_slots: ``S_i`` per level (list[int]); ``S_i = 2 * S_{i+1}``.
        clusters: ``levels`` LongTensors, ``clusters[i]`` ``[N_i]``: cluster (vertex of level
            ``i + 1``) of each vertex of level ``i``, original order (the reference's "parents").
        perms: ``levels + 1`` LongTensors ``[S_i]``: vertex at each slot (``>= N_i`` = fake).
        inv_perms: ``levels + 1`` LongTensors ``[S_i]``: slot of each vertex (fakes included).
        levels: ``levels + 1`` PyG ``Data`` in slot order: ``edge_index [2, E_i]`` (row 0 source =
            adjacency column, row 1 target = adjacency row, sorted row-major by (target, source),
            self loops created by merges kept, fake slots isolated), ``num_nodes = S_i``,
            ``real_mask`` BoolTensor ``[S_i]``, ``edge_weight`` float ``[E_i]`` (the summed HEM
            weights; the published model only uses the pattern).
        adjacencies: ``levels + 1`` scipy CSR float64 ``[N_i, N_i]`` (original order).
    """

    def __init__(self, adjacencies: Sequence[sp.spmatrix], clusters: Sequence, perms: Sequence):
        self.adjacencies: List[sp.csr_matrix] = [sp.csr_matrix(a, dtype=np.float64) for a in adjacencies]
        n_lv = len(self.adjacencies)
        if n_lv == 0:
            raise GraphError("GraphHierarchy needs at least one graph")
        if len(clusters) != n_lv - 1 or len(perms) != n_lv:
            raise GraphError(
                f"GraphHierarchy: {n_lv} graphs need {n_lv - 1} cluster arrays and {n_lv} perms, "
                f"got {len(clusters)} and {len(perms)}"
            )
        self.num_levels = n_lv
        self.num_real = [int(a.shape[0]) for a in self.adjacencies]
        # bookkeeping is done in NumPy (torch's small-tensor indexing is slow on busy CPUs)
        cl_np = [_as_long(c).cpu().numpy().reshape(-1) for c in clusters]
        pm_np = [_as_long(p).cpu().numpy().reshape(-1) for p in perms]
        self.num_slots = [int(p.size) for p in pm_np]
        self._validate(cl_np, pm_np)
        inv_np = []
        for p in pm_np:
            inv = np.empty_like(p)
            inv[p] = np.arange(p.size)
            inv_np.append(inv)
        self.clusters = [torch.from_numpy(c.copy()) for c in cl_np]
        self.perms = [torch.from_numpy(p.copy()) for p in pm_np]
        self.inv_perms = [torch.from_numpy(q) for q in inv_np]
        self.levels = [self._level_data(i, pm_np[i], inv_np[i]) for i in range(n_lv)]
        self._build_pooling(cl_np, pm_np)

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_adjacency(cls, W, levels: int = 9) -> "GraphHierarchy":
        """Coarsen a sparse adjacency ``W [N, N]`` ``levels`` times (docs/published_model.md §1.2)."""
        graphs, clusters = hem_coarsen(W, levels)
        perms = binary_tree_perms(clusters) if clusters else [np.arange(graphs[0].shape[0])]
        return cls(graphs, clusters, perms)

    def _validate(self, clusters: List[np.ndarray], perms: List[np.ndarray]) -> None:
        L = self.num_levels - 1
        for i, a in enumerate(self.adjacencies):
            if a.shape[0] != a.shape[1]:
                raise GraphError(f"adjacency of level {i} is not square: {a.shape}")
        for i, c in enumerate(clusters):
            if c.size != self.num_real[i]:
                raise GraphError(f"clusters[{i}] must have shape [{self.num_real[i]}], got {c.shape}")
            if c.size and (int(c.min()) < 0 or int(c.max()) >= self.num_real[i + 1]):
                raise GraphError(f"clusters[{i}] holds ids outside [0, {self.num_real[i + 1]})")
            counts = np.bincount(c, minlength=self.num_real[i + 1])
            if counts.size and (int(counts.min()) < 1 or int(counts.max()) > 2):
                raise GraphError(f"clusters[{i}]: every cluster must have 1 or 2 children")
        for i, p in enumerate(perms):
            if not np.array_equal(np.sort(p), np.arange(p.size)):
                raise GraphError(f"perms[{i}] is not a permutation of range({p.size})")
            if p.size < self.num_real[i]:
                raise GraphError(f"perms[{i}] has {p.size} slots for {self.num_real[i]} real vertices")
            if i < L and p.size != 2 * perms[i + 1].size:
                raise GraphError(f"perms[{i}] must have twice the slots of perms[{i + 1}]")
        # the binary tree: slot s of level i is a child of slot s // 2 of level i + 1
        for i in range(L):
            p, q = perms[i], perms[i + 1]
            real = p < self.num_real[i]
            parent_vertex = q[np.arange(p.size) // 2]
            if not np.array_equal(parent_vertex[real], clusters[i][p[real]]):
                raise GraphError(f"perms[{i}] / perms[{i + 1}] do not place children under their clusters")

    def _level_data(self, i: int, perm: np.ndarray, inv: np.ndarray) -> Data:
        a = self.adjacencies[i].tocoo()
        tgt = inv[a.row]
        src = inv[a.col]
        order = np.lexsort((src, tgt))  # row-major by (target, source)
        edge_index = torch.from_numpy(np.stack([src[order], tgt[order]]).astype(np.int64))
        real_mask = torch.from_numpy(perm < self.num_real[i])
        return Data(
            edge_index=edge_index,
            edge_weight=torch.from_numpy(a.data[order].astype(np.float32)),
            num_nodes=self.num_slots[i],
            real_mask=real_mask,
            level=i,
        )

    def _inv_np(self, i: int) -> np.ndarray:
        return self.inv_perms[i].cpu().numpy()

    def _build_pooling(self, clusters: List[np.ndarray], perms: List[np.ndarray]) -> None:
        # per level i < L: weight of each slot of level i in the mean of its parent slot s // 2
        self._child_weight: List[Tensor] = []
        for i in range(self.num_levels - 1):
            mask = (perms[i] < self.num_real[i]).astype(np.float64).reshape(-1, 2)
            cnt = mask.sum(1, keepdims=True)
            w = (mask / np.maximum(cnt, 1.0)).reshape(-1)  # 0 where the slot is fake
            self._child_weight.append(torch.from_numpy(w))
        # level-0 vertex -> vertex of level l, and the product of the 1/size factors
        idx = np.arange(self.num_real[0], dtype=np.int64)
        wt = np.ones(self.num_real[0], dtype=np.float64)
        self._flat_index: List[Tensor] = [torch.from_numpy(idx)]
        self._flat_weight: List[Tensor] = [torch.from_numpy(wt)]
        for i in range(self.num_levels - 1):
            size = np.bincount(clusters[i], minlength=self.num_real[i + 1]).astype(np.float64)
            idx = clusters[i][idx]
            wt = wt / size[idx]
            self._flat_index.append(torch.from_numpy(idx))
            self._flat_weight.append(torch.from_numpy(wt))

    # ------------------------------------------------------------------ accessors
    @property
    def device(self) -> torch.device:
        """Device of the hierarchy's tensors."""
        return self.perms[0].device

    def real_slots(self, i: int) -> Tensor:
        """``inv_perms[i][:N_i]`` (LongTensor ``[N_i]``): slot of each real vertex, original order.

        The loss reads the network's slot-order prediction at these slots (docs/published_model.md §1.3).
        """
        self._check_level(i)
        return self.inv_perms[i][: self.num_real[i]]

    def pool_matrix(self, i: int, dense: bool = False, dtype: torch.dtype = torch.float32) -> Tensor:
        """Pooling matrix ``P_i`` of docs/published_model.md §1.3, ``[N_i, N_{i+1}]``, original order.

        ``P_i[v, c] = 1 / |c|`` when vertex ``v`` of level ``i`` belongs to cluster ``c`` (0.5 for a
        pair, 1.0 for a singleton); every column sums to 1. Sparse COO unless ``dense``.
        """
        self._check_level(i, coarse=False)
        c = self.clusters[i].cpu().numpy()
        size = np.bincount(c, minlength=self.num_real[i + 1]).astype(np.float64)
        vals = torch.from_numpy(1.0 / size[c]).to(dtype)
        idx = torch.from_numpy(np.stack([np.arange(c.size), c]))
        shape = (self.num_real[i], self.num_real[i + 1])
        P = torch.sparse_coo_tensor(idx, vals, shape, check_invariants=False).coalesce()
        P = P.to(self.device)
        return P.to_dense() if dense else P

    def coarsen_vertices(self, verts: Tensor, level: int) -> Tensor:
        """Coarse vertex positions (docs/published_model.md §1.3): ``(P_0 ... P_{level-1})^T verts``.

        Args:
            verts: ``[N_0, D]`` or ``[B, N_0, D]`` (level-0 order; float32 or float64; any D,
                usually 3). NumPy arrays are accepted and give NumPy back.
            level: target level ``0 .. levels``.

        Returns:
            ``[N_level, D]`` / ``[B, N_level, D]`` in original cluster order (each cluster is the
            mean of its two children at every step), same dtype/device as ``verts``.
        """
        self._check_level(level)
        as_numpy = isinstance(verts, np.ndarray)
        x = torch.from_numpy(verts) if as_numpy else verts
        _check_node_dim(x, self.num_real[0], "coarsen_vertices")
        if not x.is_floating_point():
            raise GraphError(f"coarsen_vertices: expected floating vertices, got {x.dtype}")
        out = ParentMap(self._flat_index[level], self._flat_weight[level],
                        self.num_real[level]).pool(x)
        return out.numpy() if as_numpy else out

    def coarsen_faces(self, faces, level: int) -> Tensor:
        """The triangles of the level-0 mesh ``faces [F, 3]`` carried to ``level``.

        Every vertex is replaced by its cluster at each step; a triangle whose corners merge is
        dropped, and a triangle listed again (the same three clusters in any order) is kept once,
        in its first orientation. Gives a surface for OBJ output of the coarse meshes.

        Returns:
            LongTensor ``[F_level, 3]`` of level-``level`` vertex ids (original cluster order, the
            order of :meth:`coarsen_vertices` and of :meth:`~hgn_pyg.models.HGN.real_meshes`).
        """
        self._check_level(level)
        f = np.asarray(faces.cpu().numpy() if isinstance(faces, Tensor) else faces)
        if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
            raise GraphError(f"coarsen_faces: expected integer faces [F, 3], got {f.dtype} {list(f.shape)}")
        if f.size and (int(f.min()) < 0 or int(f.max()) >= self.num_real[0]):
            raise GraphError(f"coarsen_faces: faces hold vertex ids outside [0, {self.num_real[0]})")
        f = f.astype(np.int64)
        for i in range(level):
            f = self.clusters[i].cpu().numpy()[f]
            f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
            _, first = np.unique(np.sort(f, axis=1), axis=0, return_index=True)
            f = f[np.sort(first)]
        return torch.from_numpy(np.ascontiguousarray(f))

    def parent_map(self, source_level: int, target_level: int) -> ParentMap:
        """The slots of the finer of two levels mapped to those of the coarser (slot order).

        Slot ``s`` of level ``i`` lies under slot ``s >> (j - i)`` of level ``j > i``; its weight
        is the product of the ``1 / |real children|`` of every one-level mean on the way, so
        pooling with it equals :meth:`pool` applied level by level. Fake slots have index -1.
        ``source_level`` and ``target_level`` may come in either order (the map always goes from
        fine to coarse; use ``.pool`` or ``.unpool``).
        """
        lo, hi = sorted((int(source_level), int(target_level)))
        self._check_level(lo)
        self._check_level(hi)
        dev = self._child_weight[0].device if self._child_weight else self.device
        slots = torch.arange(self.num_slots[lo], device=dev)
        weight = torch.ones(self.num_slots[lo], dtype=torch.float64, device=dev)
        for level in range(lo, hi):
            weight = weight * self._child_weight[level][slots >> (level - lo)]
        if hi == lo:
            weight = self.levels[lo].real_mask.to(device=dev, dtype=torch.float64)
        index = torch.where(weight > 0, slots >> (hi - lo), -1)
        return ParentMap(index, weight, self.num_slots[hi])

    def pool(self, x: Tensor, i: int, batch: Optional[Tensor] = None) -> Tensor:
        """Mean-pool slot features from level ``i`` to level ``i + 1``.

        Args:
            x: ``[S_i, C]``, ``[B, S_i, C]`` in slot order, or a PyG batch ``[k*S_i, C]`` with
                ``batch``.

        Returns:
            ``[S_{i+1}, C]`` / ``[B, S_{i+1}, C]`` / ``[k*S_{i+1}, C]``: each slot is the mean of
            its real children (fake children are excluded; a slot without a real child gets 0).
        """
        self._check_level(i, coarse=False)
        return self.parent_map(i, i + 1).pool(x, batch)

    def unpool(self, x: Tensor, i: int, batch: Optional[Tensor] = None) -> Tensor:
        """Broadcast slot features from level ``i + 1`` back to level ``i``: every real slot
        gets its parent's features, fake slots 0 (shapes as :meth:`pool`, reversed)."""
        self._check_level(i, coarse=False)
        return self.parent_map(i, i + 1).unpool(x, batch)

    def joint_assignment(self, weights, level: int) -> "JointAssignment":
        """Assign every real slot of ``level`` to one joint (see :class:`JointAssignment`).

        Args:
            weights: ``[J, N_0]`` (vertex -> joint weights of the mesh: a joint regressor, or
                skinning weights transposed) or ``[J, N_level]``; numpy or torch.
            level: mesh level.

        The weights are coarsened like vertices (a cluster averages its children); a node takes the
        joint with its largest positive weight (the first one on ties); nodes without any positive
        weight take the joint of the nearest assigned node along the level's graph (multi-source
        BFS in ascending node order). Raises GraphError if a connected component has no weight.
        """
        self._check_level(level)
        W = weights.detach().cpu().to(torch.float64).numpy() if isinstance(weights, Tensor) else np.asarray(
            weights, dtype=np.float64
        )
        if W.ndim != 2 or W.shape[1] not in (self.num_real[0], self.num_real[level]):
            raise GraphError(
                f"joint_assignment: weights must be [J, {self.num_real[0]}] (mesh vertices) or "
                f"[J, {self.num_real[level]}] (level {level}), got {tuple(W.shape)}"
            )
        if not np.all(np.isfinite(W)):
            raise GraphError("joint_assignment: weights contain NaN/inf")
        if W.shape[1] == self.num_real[0]:
            Wl = self.coarsen_vertices(torch.from_numpy(np.ascontiguousarray(W.T)), level).numpy().T
        else:
            Wl = W
        n = self.num_real[level]
        best = Wl.argmax(axis=0)
        has = Wl.max(axis=0) > 0
        joint = np.where(has, best, -1).astype(np.int64)
        if not has.any():
            raise GraphError("joint_assignment: no vertex has a positive weight for any joint")
        if not has.all():
            A = self.adjacencies[level]
            indptr, indices = A.indptr, A.indices
            frontier = np.flatnonzero(has).tolist()
            while frontier:
                nxt = []
                for u in frontier:
                    for v in indices[indptr[u]: indptr[u + 1]].tolist():
                        if joint[v] < 0:
                            joint[v] = joint[u]
                            nxt.append(v)
                frontier = sorted(nxt)
            if (joint < 0).any():
                bad = np.flatnonzero(joint < 0)
                raise GraphError(
                    f"joint_assignment: level-{level} vertices {bad[:10].tolist()} are in components "
                    "with no positive weight for any joint"
                )
        assign = np.full(self.num_slots[level], -1, dtype=np.int64)
        assign[self._inv_np(level)[:n]] = joint[:n]
        return JointAssignment(torch.from_numpy(assign), num_joints=W.shape[0]).to(self.device)

    # ------------------------------------------------------------------ utilities
    def to(self, device: Union[str, torch.device]) -> "GraphHierarchy":
        """A copy with every tensor on ``device`` (the scipy adjacencies stay on the host)."""
        new = copy.copy(self)
        mv = lambda ts: [t.to(device) for t in ts]  # noqa: E731
        new.clusters = mv(self.clusters)
        new.perms = mv(self.perms)
        new.inv_perms = mv(self.inv_perms)
        new.levels = [d.to(device) for d in self.levels]
        new._child_weight = mv(self._child_weight)
        new._flat_index = mv(self._flat_index)
        new._flat_weight = mv(self._flat_weight)
        return new

    def state_dict(self) -> dict:
        """Plain tensors describing the hierarchy (what :meth:`save` writes)."""
        adj = []
        for a in self.adjacencies:
            a = a.tocsr()
            adj.append(
                {
                    "indptr": torch.from_numpy(a.indptr.astype(np.int64)),
                    "indices": torch.from_numpy(a.indices.astype(np.int64)),
                    "data": torch.from_numpy(a.data.astype(np.float64)),
                    "n": int(a.shape[0]),
                }
            )
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "adjacencies": adj,
            "clusters": [c.cpu().clone() for c in self.clusters],
            "perms": [p.cpu().clone() for p in self.perms],
        }

    @classmethod
    def from_state_dict(cls, state: dict, source: str = "state dict") -> "GraphHierarchy":
        """Rebuild (and validate) a hierarchy from :meth:`state_dict`'s output."""
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise GraphError(f"{source}: not a saved GraphHierarchy (missing format tag {_FORMAT!r})")
        if state.get("version") != _VERSION:
            raise GraphError(f"{source}: unsupported GraphHierarchy version {state.get('version')!r}")
        for key in ("adjacencies", "clusters", "perms"):
            if not isinstance(state.get(key), (list, tuple)):
                raise GraphError(f"{source}: key {key!r} missing or not a list")
        adjs = []
        for i, d in enumerate(state["adjacencies"]):
            try:
                n = int(d["n"])
                a = sp.csr_matrix(
                    (d["data"].numpy(), d["indices"].numpy(), d["indptr"].numpy()), shape=(n, n)
                )
                a.check_format(full_check=True)
            except Exception as exc:
                raise GraphError(f"{source}: adjacencies[{i}] is malformed ({exc})") from exc
            adjs.append(a)
        try:
            return cls(adjs, list(state["clusters"]), list(state["perms"]))
        except GraphError as exc:
            raise GraphError(f"{source}: {exc}") from None

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write the hierarchy with ``torch.save`` (plain tensors, loadable with weights_only)."""
        state = self.state_dict()
        atomic_write(path, lambda fh: torch.save(state, fh))

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "GraphHierarchy":
        """Read a hierarchy written by :meth:`save`; validates it (raises GraphError naming the file)."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise GraphError(f"{path}: no such GraphHierarchy file")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise GraphError(f"{path}: cannot read GraphHierarchy ({exc})") from exc
        return cls.from_state_dict(state, source=path)

    def to_networkx(self, level: int, order: str = "slot"):
        """The graph of ``level`` as an undirected ``networkx.Graph``.

        ``order="slot"``: nodes are slots ``0 .. S_i - 1`` (fake slots included, isolated) with
        node attributes ``vertex`` (original id, -1 for fakes) and ``real``; ``order="original"``:
        nodes are the real vertices ``0 .. N_i - 1`` with attribute ``slot``. Edges carry
        ``weight``; self loops created by merges are kept.
        """
        import networkx as nx

        self._check_level(level)
        if order not in ("slot", "original"):
            raise GraphError(f"to_networkx: order must be 'slot' or 'original', got {order!r}")
        a = self.adjacencies[level].tocoo()
        g = nx.Graph(level=level)
        perm = self.perms[level].cpu().numpy()
        inv = self._inv_np(level)
        n = self.num_real[level]
        if order == "slot":
            for s, v in enumerate(perm.tolist()):
                g.add_node(s, vertex=v if v < n else -1, real=v < n)
            g.add_edges_from(
                (int(inv[r]), int(inv[c]), {"weight": float(w)}) for r, c, w in zip(a.row, a.col, a.data)
            )
        else:
            for v in range(n):
                g.add_node(v, slot=int(inv[v]))
            g.add_edges_from((int(r), int(c), {"weight": float(w)}) for r, c, w in zip(a.row, a.col, a.data))
        return g

    def _check_level(self, i: int, coarse: bool = True) -> None:
        hi = self.num_levels - 1 if coarse else self.num_levels - 2
        if not isinstance(i, (int, np.integer)) or not 0 <= i <= hi:
            raise GraphError(f"level {i!r} outside [0, {hi}]")

    def __repr__(self) -> str:
        parts = ", ".join(f"{r}/{s}" for r, s in zip(self.num_real, self.num_slots))
        return f"GraphHierarchy(levels={self.num_levels - 1}, real/slots=[{parts}])"


class JointAssignment:
    """Tie between a mesh level (slot order) and a skeleton: each real slot belongs to one joint.

    Attributes:
        assign: LongTensor ``[S]`` -- joint of each slot, -1 for fake slots.
        num_joints: ``J``.
        counts: float tensor ``[J]`` -- number of slots of each joint.

    ``pool``:   ``[.., S, C] -> [.., J, C]``, ``out_j = mean_{s: assign[s] = j} x_s`` (0 if none).
    ``unpool``: ``[.., J, C] -> [.., S, C]``, ``out_s = x_{assign[s]}`` (0 for fake slots).
    Plain object of tensors (picklable).
    """

    def __init__(self, assign: Tensor, num_joints: int):
        a = _as_long(assign).cpu().numpy().reshape(-1)
        if a.size and (int(a.min()) < -1 or int(a.max()) >= num_joints):
            raise GraphError(f"JointAssignment: assign values must lie in [-1, {num_joints})")
        self.num_joints = int(num_joints)
        real = np.flatnonzero(a >= 0)
        self.assign = torch.from_numpy(a.copy())
        self.counts = torch.from_numpy(np.bincount(a[real], minlength=self.num_joints).astype(np.float32))

    @property
    def num_slots(self) -> int:
        """Number of slots ``S``."""
        return int(self.assign.numel())

    def parent_map(self) -> ParentMap:
        """Slots -> joints with mean weights ``1 / |slots of the joint|`` (fake slots -1)."""
        cnt = self.counts.to(torch.float64).clamp(min=1)
        weight = torch.where(self.assign >= 0, 1.0 / cnt.to(self.assign.device)[
            self.assign.clamp(min=0)], 0.0)
        return ParentMap(self.assign, weight, self.num_joints)

    def pool(self, x: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        """Mean over the slots of each joint: ``[.., S, C]`` -> ``[.., J, C]`` (0 if none)."""
        return self.parent_map().pool(x, batch)

    def unpool(self, x: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        """Each slot takes its joint's features: ``[.., J, C]`` -> ``[.., S, C]`` (fake slots 0)."""
        return self.parent_map().unpool(x, batch)

    def to(self, device: Union[str, torch.device]) -> "JointAssignment":
        """A copy with every tensor on ``device``."""
        new = copy.copy(self)
        for name in ("assign", "counts"):
            setattr(new, name, getattr(self, name).to(device))
        return new

    def __repr__(self) -> str:
        return f"JointAssignment(slots={self.num_slots}, joints={self.num_joints})"


def mesh_hierarchy(faces, num_vertices: int, levels: int = 9,
                   allow_duplicate_faces: bool = False) -> GraphHierarchy:
    """Build HGN's mesh hierarchy from triangle faces (docs/published_model.md §1.2-§1.3).

    Args:
        faces: ``[F, 3]`` integer array (numpy, list or torch), every vertex in some face, no
            degenerate faces, no triangle twice.
        num_vertices: ``N_0``.
        levels: coarsening rounds (9 for HGN: levels 7 and 8 feed the network).
        allow_duplicate_faces: accept a triangle listed twice (it changes nothing; by default
            it is reported as an error, as it usually means a broken mesh file).

    Returns:
        :class:`GraphHierarchy` with ``levels + 1`` graphs. On SMPL (6,890 vertices) level 7 has
        96 slots (83 real) and level 8 has 48 slots (45 real).

    Raises:
        GraphError: malformed faces (see :func:`~hgn_pyg.graphs.coarsening.validate_faces`).
    """
    W = faces_to_adjacency(faces, num_vertices, allow_duplicate_faces)
    h = GraphHierarchy.from_adjacency(W, levels)
    log.debug("mesh hierarchy: %r", h)
    return h
