"""Skeleton graphs (docs/published_model.md §1.1) as PyTorch Geometric ``Data`` objects.

A :class:`JointSet` describes a joint set (names, bones, left/right flip pairs, root); the registry
:data:`SKELETONS` maps a name to one. :func:`skeleton_graph` turns a joint set into a ``Data`` with
``edge_index`` holding every bone in both directions, without self loops, sorted row-major by
``(target, source)`` (``edge_index[1]`` is the target = adjacency row, ``edge_index[0]`` the source
= adjacency column), which is the order in which the published SemGraphConv enumerated the
nonzeros of its adjacency (the self loops it adds are the layer's business, not the graph's).
New joint sets can be registered with :func:`register_skeleton` without changing callers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import add_self_loops, coalesce, remove_self_loops

from ..errors import GraphError

__all__ = ["JointSet", "SKELETONS", "register_skeleton", "skeleton_graph", "H36M", "COCO", "COCO17",
           "skeleton_edges"]


@dataclass(frozen=True)
class JointSet:
    """An immutable description of a skeleton.

    Attributes:
        name: registry key.
        joint_names: ``J`` names, in joint order.
        bones: ``J - 1`` (for a tree) undirected ``(a, b)`` pairs.
        flip_pairs: ``(left/right)`` joint pairs swapped by a horizontal flip.
        root: index of the root joint.
    """

    name: str
    joint_names: Tuple[str, ...]
    bones: Tuple[Tuple[int, int], ...]
    flip_pairs: Tuple[Tuple[int, int], ...]
    root: int = 0
    _parents: Tuple[int, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self):
        j = len(self.joint_names)
        if j == 0:
            raise GraphError(f"joint set {self.name!r} has no joints")
        for a, b in tuple(self.bones) + tuple(self.flip_pairs):
            if not (0 <= a < j and 0 <= b < j) or a == b:
                raise GraphError(f"joint set {self.name!r}: pair ({a}, {b}) is invalid for {j} joints")
        if not 0 <= self.root < j:
            raise GraphError(f"joint set {self.name!r}: root {self.root} outside [0, {j})")
        if len({frozenset(b) for b in self.bones}) != len(self.bones):
            raise GraphError(f"joint set {self.name!r} lists a bone twice")
        object.__setattr__(self, "_parents", tuple(self._compute_parents()))

    def _compute_parents(self) -> List[int]:
        j = len(self.joint_names)
        nbrs: List[List[int]] = [[] for _ in range(j)]
        for a, b in self.bones:
            nbrs[a].append(b)
            nbrs[b].append(a)
        parents = [-2] * j
        parents[self.root] = -1
        queue = [self.root]
        for u in queue:
            for w in sorted(nbrs[u]):
                if parents[w] == -2:
                    parents[w] = u
                    queue.append(w)
        if -2 in parents:
            missing = [i for i, p in enumerate(parents) if p == -2]
            raise GraphError(f"joint set {self.name!r}: joints {missing} are not connected to the root")
        return parents

    @property
    def num_joints(self) -> int:
        """Number of joints ``J``."""
        return len(self.joint_names)

    @property
    def parents(self) -> Tuple[int, ...]:
        """Parent of every joint along the bone tree rooted at :attr:`root` (root's parent is -1)."""
        return self._parents


#: Human3.6M 17-joint skeleton of docs/published_model.md §1.1 (bones in the spec's order).
H36M = JointSet(
    name="h36m",
    joint_names=(
        "Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso", "Neck",
        "Nose", "Head", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist",
    ),
    bones=(
        (0, 7), (7, 8), (8, 9), (9, 10), (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16),
        (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6),
    ),
    flip_pairs=((1, 4), (2, 5), (3, 6), (14, 11), (15, 12), (16, 13)),
    root=0,
)

#: COCO's 17 keypoints plus a pelvis (mid-hip, 17) and a neck (mid-shoulder, 18), rooted at the pelvis.
COCO = JointSet(
    name="coco",
    joint_names=(
        "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow",
        "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle",
        "R_Ankle", "Pelvis", "Neck",
    ),
    bones=(
        (17, 11), (11, 13), (13, 15), (17, 12), (12, 14), (14, 16), (17, 18), (18, 5), (5, 7),
        (7, 9), (18, 6), (6, 8), (8, 10), (18, 0), (0, 1), (1, 3), (0, 2), (2, 4),
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    root=17,
)

#: COCO's 17 keypoints as a detector writes them, with the 19 links of the COCO keypoint annotation
#: (``categories[0]["skeleton"]``, made 0-based). The links form cycles (hips-shoulders quad, face),
#: so :attr:`JointSet.parents` is a breadth-first spanning tree from the root, the left hip.
COCO17 = JointSet(
    name="coco17",
    joint_names=COCO.joint_names[:17],
    bones=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
        (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),
    flip_pairs=COCO.flip_pairs,
    root=11,
)

#: Registry of joint sets by name (add more with :func:`register_skeleton`).
SKELETONS: Dict[str, JointSet] = {"h36m": H36M, "coco": COCO, "coco17": COCO17}


def register_skeleton(joint_set: JointSet, overwrite: bool = False) -> None:
    """Add ``joint_set`` to :data:`SKELETONS` under ``joint_set.name``."""
    if joint_set.name in SKELETONS and not overwrite:
        raise GraphError(f"a skeleton named {joint_set.name!r} is already registered")
    SKELETONS[joint_set.name] = joint_set


def skeleton_graph(name: str = "h36m") -> Data:
    """The skeleton ``name`` as a PyG ``Data``.

    Returns:
        ``Data`` with ``edge_index`` LongTensor ``[2, 2 * num_bones]`` (every bone in both
        directions, no self loops, sorted by ``(target, source)``), ``num_nodes = J``,
        ``joint_names`` (list[str], ``J``), ``parents`` LongTensor ``[J]`` (root's parent -1),
        ``flip_pairs`` LongTensor ``[P, 2]``, ``bones`` LongTensor ``[num_bones, 2]`` and ``root``
        (int). For "h36m": ``edge_index [2, 32]``, ``J = 17``, ``flip_pairs [6, 2]``.
    """
    if isinstance(name, JointSet):
        js = name
    else:
        try:
            js = SKELETONS[str(name).lower()]
        except KeyError:
            raise GraphError(
                f"unknown skeleton {name!r}; known: {sorted(SKELETONS)}"
            ) from None
    pairs = sorted({(b, a) for a, b in js.bones} | {(a, b) for a, b in js.bones}, key=lambda e: (e[1], e[0]))
    edge_index = torch.tensor(pairs, dtype=torch.long).t().contiguous()  # row 0 source, row 1 target
    return Data(
        edge_index=edge_index,
        num_nodes=js.num_joints,
        joint_names=list(js.joint_names),
        parents=torch.tensor(js.parents, dtype=torch.long),
        flip_pairs=torch.tensor(js.flip_pairs, dtype=torch.long).view(-1, 2),
        bones=torch.tensor(js.bones, dtype=torch.long).view(-1, 2),
        root=int(js.root),
        skeleton=js.name,
    )


def skeleton_edges(skeleton) -> Tuple[Tensor, int]:
    """The skeleton's edges with one self loop per joint (docs/published_model.md §1.1), sorted
    by (target, source): the published order of the edge logits."""
    num_nodes = int(skeleton.num_nodes)
    edge_index, _ = remove_self_loops(torch.as_tensor(skeleton.edge_index, dtype=torch.long))
    edge_index, _ = add_self_loops(edge_index, num_nodes=num_nodes)
    return coalesce(edge_index, num_nodes=num_nodes, sort_by_row=False), num_nodes
