"""Graphs of HGN: the skeleton (docs/published_model.md §1.1) and the coarsened mesh hierarchy (§1.2-§1.3).

* :func:`skeleton_graph` -- a joint set as a PyG ``Data`` (registry :data:`SKELETONS`).
* :func:`mesh_hierarchy` -- heavy-edge-matching coarsening of a triangle mesh into a
  :class:`GraphHierarchy` (per-level PyG ``Data`` in binary-tree slot order, pooling, ...).
* :mod:`hgn_pyg.graphs.coarsening` -- the NumPy/SciPy core (:func:`classic_argsort`,
  :func:`hem_coarsen`, :func:`binary_tree_perms`).
"""
from .coarsening import (
    binary_tree_perms,
    classic_argsort,
    faces_to_adjacency,
    hem_coarsen,
    validate_faces,
)
from .hierarchy import GraphHierarchy, JointAssignment, ParentMap, mesh_hierarchy
from .skeleton import COCO, COCO17, H36M, SKELETONS, JointSet, register_skeleton, skeleton_edges, skeleton_graph

__all__ = [
    "skeleton_graph",
    "skeleton_edges",
    "JointSet",
    "SKELETONS",
    "H36M",
    "COCO",
    "COCO17",
    "register_skeleton",
    "mesh_hierarchy",
    "GraphHierarchy",
    "JointAssignment",
    "ParentMap",
    "classic_argsort",
    "faces_to_adjacency",
    "validate_faces",
    "hem_coarsen",
    "binary_tree_perms",
]
