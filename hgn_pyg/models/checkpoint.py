"""Self-describing checkpoints: what inference needs, stored beside the weights, and a model
loaded from the checkpoint alone (no body-model file, no data).

A checkpoint of ours (``format: "hgn_pyg"``; the trainer's ``last/best.pth.tar`` and the file
``python -m hgn_pyg.convert`` writes) holds, from version 2 on, next to ``model`` and ``config``
(the resolved configuration; its ``MODEL`` section builds the network through
:func:`~hgn_pyg.models.factory.build_hgn`) the record of :func:`inference_record`::

    "joint_set": "h36m", "joint_names": [...]          the skeleton the model reads and predicts
    "input":  {"keypoint_format": "h36m", "normalization": "uv / W * 2 - [1, H / W]",
               "channels": ["u", "v"]}                 (pixels (u, v) in an image W x H)
    "output": {"units": "m", "frame": "camera", "root_relative": True, "root": 0}
    "hierarchy": GraphHierarchy.state_dict()           every level: graphs, slots, real-slot maps
    "mesh_faces": {level: LongTensor [F_l, 3]}         coarse-mesh triangles of the used levels
    "joint_regressor": Tensor [J, V]                   only for MODEL.fusion: pool
    "input_nodes": int                                 only for input keypoints of another set
                                                       (``DATASET.input_joint_set: coco``: the
                                                       model's learned input node map)

The whole hierarchy is stored (not only the used levels): ``fusion: pool`` reads the cluster maps
of the levels between them, and the level numbers in ``MODEL.mesh_levels`` stay valid.

Version-1 checkpoints of the trainer carry no graphs; pass ``hierarchy=`` (built from the body
model, as ``hgn_pyg.test`` does) to load them. The published ``final.pth.tar`` (``model_state_dict``
with the published names) loads through :meth:`HGN.from_official` when ``hierarchy=`` is given.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor

from hgn_pyg.errors import CheckpointError, ConfigError, GraphError
from hgn_pyg.graphs.hierarchy import GraphHierarchy
from hgn_pyg.graphs.skeleton import SKELETONS, skeleton_graph
from hgn_pyg.models.checkpoint_io import is_official_checkpoint, load_checkpoint_file, strip_module_prefix
from hgn_pyg.models.factory import build_model, model_options

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "INPUT_NORMALIZATION",
    "OUTPUT_CONVENTION",
    "OUTPUT_OPTIONS",
    "CheckpointInfo",
    "inference_record",
    "check_model_fields",
    "check_output_convention",
    "load_model",
    "load_model_state",
    "check_finite_weights",
]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "hgn_pyg"
#: 1: weights + config (+ ``hierarchy`` from convert); 2: + the :func:`inference_record` keys.
CHECKPOINT_VERSION = 2
#: How pixels ``(u, v)`` of an image ``W x H`` become model input (``hgn_pyg.data.camera``).
INPUT_NORMALIZATION = "uv / W * 2 - [1, H / W]"
#: What the joints a model predicts mean (Human3.6M convention of the training targets).
OUTPUT_CONVENTION = {"units": "m", "frame": "camera", "root_relative": True, "root": 0}
#: How the model's output is to be read, recorded by training (``TEST`` keys of the same names) and
#: followed by default by :class:`hgn_pyg.inference.Lifter`: ``symmetric_bones`` (equal left/right
#: bones, :func:`hgn_pyg.data.kinematics.symmetric_bones`), ``flip_test`` (the mean with the lifted
#: mirror image, :mod:`hgn_pyg.models.flip`). Absent means off.
OUTPUT_OPTIONS = ("symmetric_bones", "flip_test")


@dataclass
class CheckpointInfo:
    """What a checkpoint says about its model (see the module docstring)."""

    source: str
    layout: str  # "hgn_pyg" or "published"
    version: int
    joint_set: str = "h36m"
    joint_names: Tuple[str, ...] = ()
    input: Dict[str, Any] = field(default_factory=dict)
    output: Dict[str, Any] = field(default_factory=lambda: dict(OUTPUT_CONVENTION))
    mesh_levels: Tuple[int, ...] = ()
    mesh_faces: Dict[int, Tensor] = field(default_factory=dict)
    config: Dict[str, Any] = field(default_factory=dict)
    mean_pose: Optional[Tensor] = None


def _input_convention(joint_set: str, in_channels: int) -> Dict[str, Any]:
    channels = ["u", "v"] + (["score"] if in_channels >= 3 else [])
    return {"keypoint_format": joint_set, "normalization": INPUT_NORMALIZATION, "channels": channels}


def inference_record(model_section, hierarchy, faces=None, joint_regressor=None,
                     joint_set: str = "h36m", input_format: Optional[str] = None,
                     symmetric_bones: bool = False, flip_test: bool = False) -> Dict[str, Any]:
    """The keys a checkpoint needs for inference without a body model or data (module docstring).

    Args:
        model_section: the ``MODEL`` section (mapping or dataclass) the model was built from.
        hierarchy: its :class:`~hgn_pyg.graphs.GraphHierarchy`.
        faces: the level-0 mesh triangles ``[F, 3]`` (for the coarse-mesh faces), or ``None``.
        joint_regressor: vertex->joint weights ``[J, V]`` (stored for ``fusion: pool``).
        joint_set: name of the skeleton the model reads.
        input_format: the keypoint format of the input when it is not ``joint_set``'s own
            (:data:`hgn_pyg.data.keypoints.KEYPOINT_FORMATS`, e.g. ``"coco"`` for a model with a
            learned input node map, ``MODEL`` ``input_nodes``).
    """
    opts = dict(_as_mapping(model_section))
    levels = tuple(int(lv) for lv in opts.get("mesh_levels", (8, 7)))
    record: Dict[str, Any] = {
        "joint_set": joint_set,
        "joint_names": list(SKELETONS[joint_set].joint_names),
        "input": _input_convention(input_format or joint_set, int(opts.get("in_channels", 2))),
        "output": dict(OUTPUT_CONVENTION, **{k: True for k, on in (("symmetric_bones", symmetric_bones),
                                                                   ("flip_test", flip_test)) if on}),
        "hierarchy": hierarchy.state_dict(),
        "mesh_faces": {} if faces is None else {lv: hierarchy.coarsen_faces(faces, lv) for lv in levels},
    }
    if opts.get("input_nodes") is not None:
        record["input_nodes"] = int(opts["input_nodes"])
    if opts.get("fusion") == "pool" and joint_regressor is not None:
        record["joint_regressor"] = torch.as_tensor(joint_regressor, dtype=torch.float32).detach().cpu().clone()
    return record


def check_model_fields(ckpt: Mapping[str, Any], source: str = "checkpoint") -> None:
    """Check the types of the model/inference fields of one of our checkpoints (those present);
    raises :class:`CheckpointError` naming the field."""
    def bad(key: str, want: str) -> CheckpointError:
        v = ckpt[key]
        shown = (f"tensor {list(v.shape)} {v.dtype}" if isinstance(v, Tensor) else f"{type(v).__name__}")
        return CheckpointError(f"{source}: field {key!r} must be {want}, got {shown}")

    if "model" in ckpt and (not isinstance(ckpt["model"], Mapping)
                            or not all(isinstance(v, Tensor) for v in ckpt["model"].values())):
        raise bad("model", "a state dict (names -> tensors)")
    cfg = ckpt.get("config")
    if cfg is not None and (not isinstance(cfg, Mapping) or not isinstance(cfg.get("MODEL", {}), Mapping)):
        raise bad("config", "a dict of configuration sections with a MODEL mapping")
    if "hierarchy" in ckpt and not isinstance(ckpt["hierarchy"], Mapping):
        raise bad("hierarchy", "a GraphHierarchy state dict")
    faces = ckpt.get("mesh_faces")
    if faces is not None:
        if not isinstance(faces, Mapping) or not all(
                isinstance(k, int) and isinstance(v, Tensor) and v.dim() == 2 and v.shape[1] == 3
                and not v.is_floating_point() for k, v in faces.items()):
            raise bad("mesh_faces", "a dict level -> integer tensor [F, 3]")
    reg = ckpt.get("joint_regressor")
    if reg is not None and (not isinstance(reg, Tensor) or reg.dim() != 2 or not reg.is_floating_point()):
        raise bad("joint_regressor", "a float tensor [J, V]")
    js = ckpt.get("joint_set")
    if js is not None and (not isinstance(js, str) or js not in SKELETONS):
        raise CheckpointError(f"{source}: field 'joint_set' names an unknown skeleton {js!r}; "
                              f"known: {sorted(SKELETONS)}")
    for key in ("input", "output"):
        if key in ckpt and not isinstance(ckpt[key], Mapping):
            raise bad(key, "a dict")
    check_output_convention(ckpt.get("output") or {}, source)


def check_output_convention(output: Mapping[str, Any], source: str = "checkpoint") -> None:
    """The optional :data:`OUTPUT_OPTIONS` of ``output`` must be booleans (:class:`CheckpointError`)."""
    for key in OUTPUT_OPTIONS:
        flag = output.get(key, False)
        if not isinstance(flag, bool):
            raise CheckpointError(f"{source}: field 'output.{key}' must be true or false, "
                                  f"got {type(flag).__name__} {flag!r:.40}")


def check_finite_weights(model: torch.nn.Module, source: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` naming ``source`` and the first tensor when a floating-point
    parameter or buffer of ``model`` holds NaN or infinity (a corrupt file or a diverged run:
    its output would be NaN joints, or a failing SVD in PA-MPJPE)."""
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{source}: the weights hold NaN or infinite values ({name}); the checkpoint "
                                  "is corrupt or its training diverged")


def load_model_state(model: torch.nn.Module, state: Mapping[str, Tensor], source: str = "checkpoint") -> None:
    """``model.load_state_dict(state)`` after checking every key and shape; a mismatch raises one
    :class:`CheckpointError` listing the shape mismatches, missing and unexpected keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and hasattr(state[k], "shape")
              and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:4]) + (" …" if len(shapes) > 4 else ""))
        if missing:
            parts.append(f"missing {missing[:4]}" + (" …" if len(missing) > 4 else ""))
        if unexpected:
            parts.append(f"unexpected {unexpected[:4]}" + (" …" if len(unexpected) > 4 else ""))
        raise CheckpointError(f"{source}: checkpoint does not fit this model (another architecture or graph?): "
                              + "; ".join(parts))
    model.load_state_dict(state)


def _as_mapping(section) -> Mapping[str, Any]:
    if section is None:
        return {}
    return dataclasses.asdict(section) if dataclasses.is_dataclass(section) else section


def _model_section(ckpt: Mapping[str, Any]) -> Dict[str, Any]:
    cfg = ckpt.get("config") or {}
    return dict(cfg.get("MODEL") or {})


def load_model(model_cls: type, checkpoint, map_location=None, hierarchy=None, joint_regressor=None,
               source: Optional[str] = None, model_section: Optional[Mapping[str, Any]] = None):
    """A model and its :class:`CheckpointInfo` from a checkpoint alone; the model is in eval mode.
    The model class is an argument (this module does not import :mod:`hgn_pyg.models.hgn`, which
    imports it): call :func:`hgn_pyg.models.load_model` or :meth:`HGN.from_checkpoint`.

    Args:
        model_cls: the model class (:class:`~hgn_pyg.models.HGN`).
        checkpoint: a path, or a checkpoint dict already read.
        map_location: device to put the model on (default: CPU).
        hierarchy: graphs for checkpoints that carry none (version 1 of the trainer, the
            published layout); ignored when the checkpoint has its own.
        joint_regressor: for ``fusion: pool`` checkpoints without one.
        model_section: for the published layout, a ``MODEL`` section giving the options the file
            cannot say (``mesh_levels``, ``mode``, ``isolated``); ours use their stored section.

    Returns:
        ``(model, info)``.

    Raises:
        CheckpointError: one line naming the file and what is missing or does not fit.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        source = source or os.fspath(checkpoint)
        ckpt = load_checkpoint_file(checkpoint)
    else:
        ckpt = checkpoint
    source = source or "checkpoint"
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"{source}: expected a dict, got {type(ckpt).__name__}")

    if is_official_checkpoint(ckpt):
        if hierarchy is None:
            raise CheckpointError(
                f"{source}: a published checkpoint carries no graphs; make a self-describing file with "
                "`python -m hgn_pyg.convert --official FILE --mesh SMPL_MODEL --out model.pt`, or pass hierarchy=")
        opts = {k: v for k, v in model_options(model_cls, model_section or {}).items()
                if k not in ("in_channels", "hidden_channels", "out_channels", "num_layers", "fusion")}
        try:
            model = model_cls.from_official(ckpt, skeleton_graph("h36m"), hierarchy, source=source, **opts)
        except (KeyError, RuntimeError, ValueError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f"{source}: does not fit the published HGN on this mesh hierarchy: {exc}") from None
        info = CheckpointInfo(source, "published", 0, "h36m", tuple(SKELETONS["h36m"].joint_names),
                              _input_convention("h36m", model.in_channels), mesh_levels=tuple(model.mesh_levels))
        return model.to(map_location or "cpu").eval(), info

    if not isinstance(ckpt.get("model"), Mapping):
        raise CheckpointError(f"{source}: neither an hgn_pyg checkpoint ('model') nor the published layout "
                              f"('model_state_dict'); top-level keys: {sorted(map(str, ckpt))[:10]}")
    if ckpt.get("format", CHECKPOINT_FORMAT) != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{source}: unknown checkpoint format {ckpt.get('format')!r}")
    check_model_fields(ckpt, source)
    if "hierarchy" in ckpt:
        try:
            hierarchy = GraphHierarchy.from_state_dict(dict(ckpt["hierarchy"]), source=f"{source} (hierarchy)")
        except GraphError as exc:
            raise CheckpointError(str(exc)) from None
    elif hierarchy is None:
        raise CheckpointError(
            f"{source}: written before checkpoints carried their graphs (version {ckpt.get('version', 1)}); "
            "evaluate it with `python -m hgn_pyg.test --config CONFIG --checkpoint FILE`, or pass hierarchy=")
    section = _model_section(ckpt) or dict(_as_mapping(model_section))
    joint_set = ckpt.get("joint_set", "h36m")
    if ckpt.get("input_nodes") is not None:  # input keypoints of another set: the input node map
        if isinstance(ckpt["input_nodes"], bool) or not isinstance(ckpt["input_nodes"], int):
            raise CheckpointError(f"{source}: field 'input_nodes' must be an int, got {ckpt['input_nodes']!r}")
        section = dict(section, input_nodes=int(ckpt["input_nodes"]))
    reg = ckpt.get("joint_regressor", joint_regressor)
    try:
        model = build_model(model_cls, section, hierarchy, joint_regressor=reg, skeleton=joint_set)
    except (ConfigError, GraphError) as exc:
        raise CheckpointError(f"{source}: its stored MODEL section does not build a model: {exc}") from None
    load_model_state(model, strip_module_prefix(ckpt["model"], source), source)
    info = CheckpointInfo(
        source=source, layout=CHECKPOINT_FORMAT, version=int(ckpt.get("version", 1)), joint_set=joint_set,
        joint_names=tuple(ckpt.get("joint_names") or SKELETONS[joint_set].joint_names),
        input=dict(ckpt.get("input") or _input_convention(joint_set, model.in_channels)),
        output=dict(ckpt.get("output") or OUTPUT_CONVENTION), mesh_levels=tuple(model.mesh_levels),
        mesh_faces=dict(ckpt.get("mesh_faces") or {}), config=dict(ckpt.get("config") or {}),
        mean_pose=ckpt.get("mean_pose"))
    return model.to(map_location or "cpu").eval(), info
