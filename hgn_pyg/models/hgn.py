r"""HGN: the hierarchical graph network for 3D human pose (docs/published_model.md §3, §10).

Branch 1 works on the skeleton (17 joints), branches 2, 3, ... on levels of a coarsened body mesh
(:class:`~hgn_pyg.graphs.GraphHierarchy`; levels 8 and 7 — 48 and 96 slots on SMPL — by
default, the published model). Every branch stacks "layers" (a residual graph-conv block followed
by a graph non-local block); between layers the branches exchange features *sequentially*
following the schedule of :func:`fusion_schedule` (each update reads the branches already updated
in the same stage, as the published model does). The schedule is data; :meth:`HGN.forward` is
one loop over it.
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from hgn_pyg.errors import ConfigError
from hgn_pyg.graphs.skeleton import skeleton_edges
from hgn_pyg.models.checkpoint import load_model as _load_model
from hgn_pyg.models.factory import build_model, model_options
from hgn_pyg.models.official import (infer_official_channels, load_official_state_dict, read_checkpoint,
                                     to_official_state_dict)
from hgn_pyg.nn import (
    GraphConvBlock,
    GraphNonLocal,
    HierarchyPoolFusion,
    JointPoolFusion,
    NodeTransfer,
    ResidualGraphConvBlock,
    SemGraphConv,
)

__all__ = ["HGN", "HGNOutput", "FusionStage", "fusion_schedule", "branch_birth_layer", "min_num_layers",
           "PUBLISHED_SCHEDULE", "skeleton_edges", "hgn_options", "build_hgn", "load_model"]

log = logging.getLogger(__name__)

FUSIONS = ("official", "pool")


class HGNOutput(NamedTuple):
    """What :class:`HGN` returns.

    Attributes:
        joints: ``[B, J, 3]`` 3D joints (skeleton order).
        meshes: one ``[B, S_k, 3]`` coarse mesh per mesh level, in ``mesh_levels`` order (branches
            2, 3, ...), in slot order (fake slots included; read the real vertices with
            :meth:`HGN.real_meshes`). Empty for the skeleton-only network.
    """

    joints: Tensor
    meshes: Tuple[Tensor, ...]


@dataclass(frozen=True)
class FusionStage:
    """One fusion stage of the schedule.

    Attributes:
        stage: the published stage number (suffix of the ``fc_{from}_{to}_{stage}`` maps).
        after_layer: the layer index ``k`` whose branch layers run just before this stage
            (0: right after the input block).
        updates: ``(target, sources)`` pairs applied in this order; ``target`` becomes
            ``target + sum(T_{s -> target}(s))`` (or just the sum when ``target`` does not exist
            yet); sources are read in their current (possibly already updated) state.
    """

    stage: int
    after_layer: int
    updates: Tuple[Tuple[int, Tuple[int, ...]], ...]


def branch_birth_layer(branch: int) -> int:
    """The layer after which mesh branch ``branch`` (2, 3, ...) is created (docs/published_model.md
    §10): branch 2 right after the input block ("layer 0"), branch ``b >= 3`` after layer ``b - 1``
    (so branch 3 after layer 2, as published)."""
    if branch < 2:
        raise ValueError(f"branch {branch} is not a mesh branch (mesh branches are 2, 3, ...)")
    return 0 if branch == 2 else branch - 1


def min_num_layers(num_mesh: int) -> int:
    """The fewest layers with which every branch passes through at least one layer:
    ``1`` for zero or one mesh branch, else ``num_mesh + 1`` (the finest branch is created after
    layer ``num_mesh``)."""
    if num_mesh < 0:
        raise ValueError(f"num_mesh must be >= 0, got {num_mesh}")
    return 1 if num_mesh <= 1 else num_mesh + 1


def fusion_schedule(num_layers: int = 4, num_mesh: int = 2) -> Tuple[FusionStage, ...]:
    """The sequential fusion schedule for ``num_layers`` layers and ``num_mesh`` mesh branches
    (docs/published_model.md §3 and §10; published: 4 layers, 2 mesh branches, stages 1..5).

    Stage ``k + 1`` follows layer ``k`` (stage 1 follows the input block). In it, every branch
    that already exists takes, in branch order, the transfers from all the other existing
    branches (reading the ones already updated); then the branch created after layer ``k``
    (:func:`branch_birth_layer`), if any, is made as the sum of the transfers from all existing
    branches. For ``num_mesh = 2`` this is exactly the published schedule: stage 1 creates
    branch 2; after layer 1 branches 1 and 2 exchange; after layer 2 they exchange and create
    branch 3; after every later layer all three exchange (1 from 2, 3; 2 from 1, 3; 3 from 1, 2).

    Raises:
        ConfigError: ``num_layers`` below :func:`min_num_layers` (a branch would pass through no
            layer).
    """
    num_mesh = int(num_mesh)
    need = min_num_layers(num_mesh)
    if num_layers < need:
        raise ConfigError(
            f"HGN: num_layers must be >= {need} for {num_mesh} mesh branch(es) (the finest branch "
            f"is created after layer {need - 1} and must pass through at least one layer), got "
            f"{num_layers}")
    births = {branch_birth_layer(b): b for b in range(2, num_mesh + 2)}
    alive = [1]
    stages = []
    for k in range(0, num_layers + 1):
        updates = []
        if k > 0 and len(alive) > 1:  # exchange among the existing branches, in branch order
            updates = [(t, tuple(s for s in alive if s != t)) for t in alive]
        if k in births:  # then the new branch, from all existing ones
            updates.append((births[k], tuple(alive)))
            alive.append(births[k])
        if k > 0 or updates:  # every layer k >= 1 has a stage (possibly empty: skeleton only)
            stages.append(FusionStage(k + 1, k, tuple(updates)))
    return tuple(stages)


#: The published schedule (4 layers, 2 mesh branches, stages 1..5).
PUBLISHED_SCHEDULE: Tuple[FusionStage, ...] = fusion_schedule(4, 2)


def _branch_layers(schedule: Sequence[FusionStage]) -> List[Tuple[int, Tuple[int, ...]]]:
    """``(k, branches that exist before layer k)`` for every layer k of the schedule."""
    alive = {1}
    out = []
    for st in schedule:
        if st.after_layer > 0:
            out.append((st.after_layer, tuple(sorted(alive))))
        alive.update(t for t, _ in st.updates)
    return out


class HGN(nn.Module):
    r"""Hierarchical Graph Network (HGN, BMVC 2021) built from PyG layers.

    .. math::
        h^{(1)} = \mathrm{GraphConvBlock}_{J}(x),\quad
        h^{(b)} \leftarrow \mathrm{NonLocal}(\mathrm{ResBlock}(h^{(b)})),\quad
        h^{(t)} \leftarrow h^{(t)} + \textstyle\sum_{s} T^{(k)}_{s \to t}(h^{(s)})

    with the layer/fusion order of :func:`fusion_schedule` (for ``mesh_levels=(8, 7)``
    :data:`PUBLISHED_SCHEDULE`, the published model) and one output
    :class:`~hgn_pyg.nn.SemGraphConv` (``C → 3``) per branch.

    Args:
        skeleton: PyG ``Data`` of the joint graph (``edge_index`` without self loops; a self loop
            per joint is added, docs/published_model.md §1.1).
        hierarchy: :class:`~hgn_pyg.graphs.GraphHierarchy` of the body mesh.
        mesh_levels: hierarchy levels of the mesh branches 2, 3, ..., coarse to fine (strictly
            decreasing level numbers); default ``(8, 7)``: 48 and 96 slots on SMPL, the published
            model. Any length: ``()`` is the skeleton-only network (SemGCN with non-local
            blocks), ``(8, 7, 6, 5)`` adds 192- and 384-slot branches (docs/published_model.md
            §10). Their graphs are used as they are (self loops only where merges made them;
            fake slots isolated).
        hidden_channels: ``C`` (128).
        num_layers: layers of branch 1 (4). Mesh branch ``b`` joins after layer
            :func:`branch_birth_layer` ``(b)`` and runs the layers after it; at least
            :func:`min_num_layers` ``(len(mesh_levels))`` layers.
        dropout: dropout of the conv blocks (``None`` as published).
        fusion: ``"official"`` — learned node-mixing maps :class:`~hgn_pyg.nn.NodeTransfer`, one
            per ``(from, to, stage)`` (docs/published_model.md §2.4; loads the published
            checkpoint when ``mesh_levels`` has two levels);
            ``"pool"`` — scatter mean-pooling/broadcast along the hierarchy and the
            skeleton↔mesh ``joint_assignment`` followed by a ``Linear(C, C)`` (graph-size
            independent, far fewer parameters).
        joint_assignment: needed for ``fusion="pool"``: vertex→joint weights ``[J, V]`` (numpy
            or torch; e.g. a joint regressor or transposed skinning weights), or one
            :class:`~hgn_pyg.graphs.JointAssignment` per mesh level (a sequence in
            ``mesh_levels`` order or a ``{level: assignment}`` mapping).
        mode: kernel of every :class:`~hgn_pyg.nn.SemGraphConv` (``"auto"``, ``"dense"``,
            ``"sparse"``, ``"scatter"``).
        in_channels: input features per joint (2).
        out_channels: output features per node (3).
        isolated: how a SemGraphConv treats nodes without edges (fake slots): ``"uniform"`` is
            the published behaviour (attend to all nodes with weight ``1/N``).
        input_nodes: ``None`` (the input is the skeleton's own ``J`` joints, as published) or the
            number ``K`` of input keypoints of another set (e.g. 17 COCO keypoints): a learned
            node map :class:`~hgn_pyg.nn.NodeTransfer` ``K → J`` (``input_map``) takes them to the
            joints before the input block.

    Shapes:
        - **input:** ``x [B, J, in_channels]`` (or ``[J, in_channels]``; ``K`` instead of ``J``
          with ``input_nodes``).
        - **output:** :class:`HGNOutput` ``(joints [B, J, 3], meshes=([B, S_2, 3], ...))``, one
          mesh per mesh level in slot order.
    """

    def __init__(
        self,
        skeleton,
        hierarchy,
        mesh_levels: Sequence[int] = (8, 7),
        hidden_channels: int = 128,
        num_layers: int = 4,
        dropout: Optional[float] = None,
        fusion: str = "official",
        joint_assignment: Any = None,
        mode: str = "auto",
        in_channels: int = 2,
        out_channels: int = 3,
        isolated: str = "uniform",
        input_nodes: Optional[int] = None,
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ConfigError(f"HGN: fusion must be one of {FUSIONS}, got {fusion!r}")
        mesh_levels = tuple(int(lv) for lv in mesh_levels)
        if any(a <= b for a, b in zip(mesh_levels, mesh_levels[1:])):
            raise ConfigError(
                f"HGN: mesh_levels must go from coarse to fine, i.e. strictly decreasing level "
                f"numbers (published: (8, 7)), got {mesh_levels}")
        if mesh_levels and hierarchy is None:
            raise ConfigError(f"HGN: mesh_levels {mesh_levels} need a mesh hierarchy")
        for lv in mesh_levels:
            if not 0 <= lv < hierarchy.num_levels:
                raise ConfigError(
                    f"HGN: mesh level {lv} does not exist; the hierarchy has levels "
                    f"0..{hierarchy.num_levels - 1} (build it with more coarsening levels)")
        if hidden_channels < 2:
            raise ConfigError(f"HGN: hidden_channels must be >= 2, got {hidden_channels}")
        self.mesh_levels = mesh_levels
        self.hidden_channels = int(hidden_channels)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.num_layers = int(num_layers)
        self.dropout = dropout
        self.fusion = fusion
        self.mode = mode
        self.isolated = isolated
        self.schedule = fusion_schedule(num_layers, len(mesh_levels))
        self.branches: Tuple[int, ...] = tuple(range(1, len(mesh_levels) + 2))

        joint_edges, num_joints = skeleton_edges(skeleton)
        graphs = {1: (joint_edges, num_joints)}
        for branch, lv in zip(self.branches[1:], mesh_levels):
            data = hierarchy.levels[lv]
            graphs[branch] = (data.edge_index, int(data.num_nodes))
        self.num_nodes: Dict[int, int] = {b: n for b, (_, n) in graphs.items()}
        self.num_edges: Dict[int, int] = {}
        self.num_real: Tuple[int, ...] = tuple(int(hierarchy.num_real[lv]) for lv in mesh_levels)
        for i, lv in enumerate(mesh_levels):
            self.register_buffer(f"_real_slots_{i}", hierarchy.real_slots(lv).detach().cpu().clone(),
                                 persistent=False)

        c = self.hidden_channels
        conv_kw = dict(mode=mode, isolated=isolated)

        def graph_kw(branch: int) -> Dict[str, Any]:
            ei, n = graphs[branch]
            return dict(edge_index=ei, num_nodes=n)

        self.input_nodes = None if input_nodes is None else int(input_nodes)
        self.input_map = None if input_nodes is None else NodeTransfer(self.input_nodes, num_joints)
        self.input_block = GraphConvBlock(in_channels, c, **graph_kw(1), dropout=dropout, **conv_kw)
        self.layers = nn.ModuleDict()
        for k, branches in _branch_layers(self.schedule):
            for b in branches:
                self.layers[f"{b}_{k}"] = nn.Sequential(OrderedDict(
                    residual=ResidualGraphConvBlock(c, c, **graph_kw(b), dropout=dropout, **conv_kw),
                    non_local=GraphNonLocal(c),
                ))
        assignments = (self._joint_assignments(joint_assignment, hierarchy)
                       if fusion == "pool" and mesh_levels else None)
        self.transfers = nn.ModuleDict()
        self._plan: List[Tuple[Tuple[Tuple[int, str], ...],
                               Tuple[Tuple[int, Tuple[Tuple[int, str], ...]], ...]]] = []
        layer_of = dict(_branch_layers(self.schedule))
        for st in self.schedule:
            layer_keys = tuple((b, f"{b}_{st.after_layer}") for b in layer_of.get(st.after_layer, ()))
            updates = []
            for tgt, srcs in st.updates:
                keys = []
                for src in srcs:
                    key = f"{src}_{tgt}_{st.stage}"
                    self.transfers[key] = self._make_transfer(src, tgt, hierarchy, assignments)
                    keys.append((src, key))
                updates.append((tgt, tuple(keys)))
            self._plan.append((layer_keys, tuple(updates)))
        self.heads = nn.ModuleList(
            SemGraphConv(c, out_channels, **graph_kw(b), bias=True, **conv_kw) for b in self.branches)
        for b in self.branches:
            self.num_edges[b] = int(self.heads[b - 1].num_edges)

    # ------------------------------------------------------------------ construction helpers
    def _joint_assignments(self, joint_assignment: Any, hierarchy) -> Dict[int, Any]:
        if joint_assignment is None:
            raise ConfigError(
                "HGN(fusion='pool') needs joint_assignment: vertex->joint weights [J, V] (e.g. the "
                "body model's joint regressor) or one JointAssignment per mesh level")
        if isinstance(joint_assignment, Mapping):
            out = {int(lv): joint_assignment[lv] for lv in joint_assignment}
        elif isinstance(joint_assignment, (list, tuple)) and all(
                hasattr(a, "unpool") for a in joint_assignment):
            if len(joint_assignment) != len(self.mesh_levels):
                raise ConfigError(
                    f"HGN: {len(joint_assignment)} joint assignments for mesh levels {self.mesh_levels}")
            out = dict(zip(self.mesh_levels, joint_assignment))
        else:
            out = {lv: hierarchy.joint_assignment(joint_assignment, lv) for lv in self.mesh_levels}
        for lv in self.mesh_levels:
            if lv not in out:
                raise ConfigError(f"HGN: no joint assignment for mesh level {lv}")
            a = out[lv]
            if a.num_slots != hierarchy.num_slots[lv] or a.num_joints != self.num_nodes[1]:
                raise ConfigError(
                    f"HGN: the joint assignment of level {lv} maps {a.num_slots} slots to "
                    f"{a.num_joints} joints; expected {hierarchy.num_slots[lv]} slots and "
                    f"{self.num_nodes[1]} joints")
        return out

    def _level_of(self, branch: int) -> Optional[int]:
        return None if branch == 1 else self.mesh_levels[branch - 2]

    def _make_transfer(self, src: int, tgt: int, hierarchy, assignments) -> nn.Module:
        if self.fusion == "official":
            return NodeTransfer(self.num_nodes[src], self.num_nodes[tgt])
        c = self.hidden_channels
        ls, lt = self._level_of(src), self._level_of(tgt)
        if ls is None:
            return JointPoolFusion(c, assignments[lt], direction="unpool")
        if lt is None:
            return JointPoolFusion(c, assignments[ls], direction="pool")
        return HierarchyPoolFusion(c, hierarchy, ls, lt)

    # ------------------------------------------------------------------ public API
    @property
    def real_slots(self) -> Tuple[Tensor, ...]:
        """Per mesh branch, the slot of each real vertex in original cluster order
        (``hierarchy.real_slots(level)``): where the loss reads the predictions
        (docs/published_model.md §1.3)."""
        return tuple(getattr(self, f"_real_slots_{i}") for i in range(len(self.mesh_levels)))

    def real_meshes(self, output: Union[HGNOutput, Sequence[Tensor]]) -> Tuple[Tensor, ...]:
        """The predicted coarse meshes at their real vertices, original cluster order: one
        ``[B, num_real[level], 3]`` per mesh level."""
        meshes = output.meshes if isinstance(output, HGNOutput) else output
        return tuple(m.index_select(-2, idx) for m, idx in zip(meshes, self.real_slots))

    def reset_parameters(self) -> None:
        """Re-initialise every layer in place (published initialisation)."""
        if self.input_map is not None:
            self.input_map.reset_parameters()
        self.input_block.reset_parameters()
        for layer in self.layers.values():
            for module in layer:
                module.reset_parameters()
        for module in self.transfers.values():
            module.reset_parameters()
        for head in self.heads:
            head.reset_parameters()

    def forward(self, x: Tensor) -> HGNOutput:
        squeeze = x.dim() == 2
        if squeeze:
            x = x.unsqueeze(0)
        k = self.num_nodes[1] if self.input_nodes is None else self.input_nodes
        if x.dim() != 3 or x.size(1) != k or x.size(2) != self.in_channels:
            raise ValueError(
                f"HGN: expected x of shape [B, {k}, {self.in_channels}], got {list(x.shape)}")
        if self.input_map is not None:
            x = self.input_map(x)
        h: Dict[int, Tensor] = {1: self.input_block(x)}
        for layer_keys, updates in self._plan:
            for b, key in layer_keys:
                h[b] = self.layers[key](h[b])
            for tgt, sources in updates:
                acc = h.get(tgt)
                for src, key in sources:
                    y = self.transfers[key](h[src])
                    acc = y if acc is None else acc + y
                h[tgt] = acc
        outs = [head(h[b]) for head, b in zip(self.heads, self.branches)]
        if squeeze:
            outs = [o[0] for o in outs]
        return HGNOutput(outs[0], tuple(outs[1:]))

    # ------------------------------------------------------------------ published checkpoints
    @classmethod
    def from_official(cls, checkpoint, skeleton, hierarchy, source: Optional[str] = None,
                      **kwargs) -> "HGN":
        """Build an HGN and load the published checkpoint into it.

        Args:
            checkpoint: path of ``final.pth.tar``, the loaded file (a dict with
                ``model_state_dict``) or a bare state dict; keys may carry a ``module.`` prefix.
            skeleton, hierarchy: the graphs (the hierarchy built from the neutral SMPL faces with
                9 levels for the published checkpoint).
            source: name of the checkpoint in error messages (default: the path).
            **kwargs: other :class:`HGN` arguments (``mesh_levels``, ``mode``, ...);
                ``in/hidden/out_channels`` default to the checkpoint's.

        Returns:
            The model (in training mode, like any new module; call ``.eval()`` for inference).

        Raises:
            CheckpointError: unreadable file, missing/unexpected keys, wrong shapes, or ``e``
                lengths that do not match the graphs (all offending keys named at once).
        """
        if source is None and isinstance(checkpoint, (str, os.PathLike)):
            source = os.fspath(checkpoint)
        state = read_checkpoint(checkpoint, source)
        if kwargs.get("fusion", "official") != "official":
            raise ConfigError("HGN.from_official: the published checkpoint needs fusion='official'")
        for name, value in infer_official_channels(state).items():
            kwargs.setdefault(name, value)
        model = cls(skeleton, hierarchy, **kwargs)
        load_official_state_dict(model, state, source)
        return model

    @classmethod
    def from_checkpoint(cls, path, map_location=None, **kwargs) -> "HGN":
        """The model of one of our checkpoints, in eval mode, from the file alone (no body model, no
        data): see :func:`load_model` (``kwargs``: ``hierarchy=`` for checkpoints without graphs)."""
        return _load_model(cls, path, map_location=map_location, **kwargs)[0]

    def to_official_state_dict(self) -> "OrderedDict[str, Tensor]":
        """This model's weights under the published names and shapes (inverse of
        :meth:`from_official`; loadable by the published model and by
        :class:`~hgn_pyg.models.dense_reference.DenseHGN`)."""
        return to_official_state_dict(self)

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        meshes = "".join(
            f"mesh_{b}=level {lv} ({self.num_real[i]}/{self.num_nodes[b]} slots), "
            for i, (b, lv) in enumerate(zip(self.branches[1:], self.mesh_levels)))
        edges = ", ".join(str(self.num_edges[b]) for b in self.branches)
        return (f"{self.__class__.__name__}(joints={self.num_nodes[1]}, {meshes}"
                f"edges=({edges}), hidden={self.hidden_channels}, layers={self.num_layers}, "
                f"fusion={self.fusion}, mode={self.mode}, parameters={n})")


def hgn_options(model_section) -> Dict[str, Any]:
    """The entries of a ``MODEL`` section (a mapping or the config dataclass) that are :class:`HGN`
    constructor arguments (:func:`hgn_pyg.models.factory.model_options`)."""
    return model_options(HGN, model_section)


def build_hgn(model_section, hierarchy, joint_regressor=None, skeleton="h36m") -> HGN:
    """An :class:`HGN` as ``model_section`` describes it, on ``hierarchy``
    (:func:`hgn_pyg.models.factory.build_model`): the training pipeline and checkpoint loading
    both build through it, so every model option a configuration gains reaches both."""
    return build_model(HGN, model_section, hierarchy, joint_regressor=joint_regressor, skeleton=skeleton)


def load_model(checkpoint, map_location=None, hierarchy=None, joint_regressor=None, source=None,
               model_section=None):
    """An :class:`HGN` and its :class:`~hgn_pyg.models.checkpoint.CheckpointInfo` from a checkpoint
    alone, in eval mode (:func:`hgn_pyg.models.checkpoint.load_model`)."""
    return _load_model(HGN, checkpoint, map_location=map_location, hierarchy=hierarchy,
                       joint_regressor=joint_regressor, source=source, model_section=model_section)
