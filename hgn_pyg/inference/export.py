"""Deployable lifters: a trained HGN written as an ONNX model or a ``torch.export`` program
(``.pt2``) with a dynamic batch, plus the metadata :class:`~hgn_pyg.inference.lifter.Lifter` needs,
and the readers that run such a file again (onnxruntime / ``torch.export.load``).

What is exported is :class:`LifterNet`: ``x [B, K, C]`` (the model input: normalised keypoints,
missing ones filled, the score channel for ``C = 3``; exactly what ``Lifter.prepare`` makes) ->
``joints [B, J, 3]`` followed by one ``[B, V_level, 3]`` per mesh level at its real vertices
(original cluster order). The pre-processing (keypoint format, image-size normalisation, missing
keypoints) and the post-processing (pelvis-relative joints) stay in the ``Lifter``, shared by
every backend, so an exported file lifts like its checkpoint.

The metadata (:func:`export_metadata`) is one JSON document: for ONNX the ``metadata_props`` entry
:data:`METADATA_KEY`, for ``.pt2`` the archive's extra file :data:`PT2_METADATA_FILE`::

    {"format": "hgn_pyg-lifter", "version": 1, "backend": "onnx" | "pt2",
     "joint_set": "h36m", "joint_names": [...17 names...],
     "input": {"keypoint_format": "h36m", "normalization": "uv / W * 2 - [1, H / W]",
               "channels": ["u", "v"]},
     "input_shape": ["batch", 17, 2],
     "output": {"units": "m", "frame": "camera", "root_relative": true, "root": 0},
     "outputs": ["joints", "mesh_level_8", "mesh_level_7"], "mesh_levels": [8, 7],
     "num_real": [46, 85], "source": "best.pth.tar", "hgn_pyg_version": "0.1.0",
     "torch_version": "2.13.0"}

Reading a file back runs no code from it: ONNX is a protobuf that onnxruntime interprets with its
own kernels; a ``.pt2`` archive is checked before ``torch.export.load`` sees it
(:func:`check_pt2_archive`: no pickled weights, constants or objects, sample inputs readable with
``torch.load(weights_only=True)``, every graph node an ``aten``/``prims`` operator or plain
arithmetic), because ``torch.export.load`` itself unpickles what an archive asks it to.

Every template :class:`~hgn_pyg.nn.SemGraphConv` is exported with the dense kernel (the one
every exporter and onnxruntime handle; what ``mode="auto"`` runs for the published graph sizes).
"""
from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, Tuple

import torch
from torch import Tensor, nn

from hgn_pyg.errors import CheckpointError, ConfigError

from .exported import (EXPORT_FORMAT, EXPORT_VERSION, FORMATS, METADATA_KEY, PT2_METADATA_FILE, SUFFIXES,
                       ExportedModel, _has_onnxruntime, check_metadata, check_pt2_archive, is_exported,
                       load_exported, read_metadata)

__all__ = ["FORMATS", "SUFFIXES", "EXPORT_FORMAT", "EXPORT_VERSION", "METADATA_KEY", "PT2_METADATA_FILE",
           "ONNX_EXPORTERS", "LifterNet", "ExportedModel", "export_lifter", "export_model", "export_metadata",
           "check_metadata", "load_exported", "read_metadata", "is_exported", "check_pt2_archive"]

log = logging.getLogger(__name__)

#: ONNX exporters: ``"dynamo"`` (``torch.onnx.export(dynamo=True)``, from ``torch.export``) or
#: ``"legacy"`` (the TorchScript-based ``dynamo=False`` exporter).
ONNX_EXPORTERS = ("dynamo", "legacy")
#: ONNX opset of the legacy exporter (the dynamo exporter picks its own).
LEGACY_OPSET = 17
#: Input name of the exported ONNX graph (the outputs are named by the metadata's ``outputs``).
INPUT_NAME = "keypoints"
#: Agreement of the written file with the eager model, checked after writing (metres).
EXPORT_ATOL = 1e-4


class LifterNet(nn.Module):
    """What is exported: ``x [B, K, C]`` -> ``(joints [B, J, 3], mesh [B, V_l, 3] per mesh level at
    its real vertices)``, the tensors a :class:`~hgn_pyg.inference.lifter.Lifter` reads."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        out = self.model(x)
        return (out.joints,) + tuple(self.model.real_meshes(out))


def _pin_dense(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode whose template SemGraphConv layers run the dense kernel."""
    from hgn_pyg.nn import SemGraphConv

    model = copy.deepcopy(model).cpu().eval()
    for m in model.modules():
        if isinstance(m, SemGraphConv) and m.num_nodes is not None:
            m.mode = "dense"
    return model


def export_metadata(model: nn.Module, info, backend: str) -> Dict[str, Any]:
    """The metadata document of an exported ``model`` (module docstring) from its checkpoint
    ``info`` (:class:`~hgn_pyg.models.checkpoint.CheckpointInfo`)."""
    import hgn_pyg
    from hgn_pyg.models.checkpoint import OUTPUT_CONVENTION, _input_convention

    k = model.num_nodes[1] if model.input_nodes is None else model.input_nodes
    joint_set = str(getattr(info, "joint_set", None) or "h36m")
    meta = {
        "format": EXPORT_FORMAT, "version": EXPORT_VERSION, "backend": backend,
        "joint_set": joint_set,
        "joint_names": list(getattr(info, "joint_names", ()) or ()),
        "input": dict(getattr(info, "input", None) or _input_convention(joint_set, model.in_channels)),
        "input_shape": ["batch", int(k), int(model.in_channels)],
        "output": dict(getattr(info, "output", None) or OUTPUT_CONVENTION),
        "outputs": ["joints"] + [f"mesh_level_{lv}" for lv in model.mesh_levels],
        "mesh_levels": [int(lv) for lv in model.mesh_levels],
        "num_real": [int(n) for n in model.num_real],
        "source": os.path.basename(str(getattr(info, "source", "") or "")),
        "hgn_pyg_version": hgn_pyg.__version__, "torch_version": torch.__version__.split("+")[0],
    }
    if not meta["joint_names"]:
        from hgn_pyg.graphs.skeleton import SKELETONS

        meta["joint_names"] = list(SKELETONS[joint_set].joint_names)
    return meta


# ---------------------------------------------------------------------- writing
def export_model(model: nn.Module, info, fmt: str, out, exporter: str = "dynamo",
                 check: bool = True) -> Path:
    """Write ``model`` (an :class:`~hgn_pyg.models.HGN`) and its metadata to ``out`` (atomically).

    Args:
        info: its :class:`~hgn_pyg.models.checkpoint.CheckpointInfo` (joint set, input convention).
        fmt: ``"onnx"`` or ``"pt2"``.
        exporter: for ONNX, ``"dynamo"`` or ``"legacy"`` (:data:`ONNX_EXPORTERS`).
        check: read the written file back (:func:`load_exported`) and compare it with the eager
            model on random inputs at batch 1 and 5 (max abs difference <= :data:`EXPORT_ATOL`
            metres; skipped for ONNX when onnxruntime is not installed).

    Raises:
        ConfigError: unknown format/exporter, or ONNX without the ``onnx`` package.
        CheckpointError: the written file disagrees with the eager model.
    """
    from hgn_pyg.io import atomic_write_bytes

    if fmt not in FORMATS:
        raise ConfigError(f"export: format must be one of {FORMATS}, got {fmt!r}")
    if exporter not in ONNX_EXPORTERS:
        raise ConfigError(f"export: exporter must be one of {ONNX_EXPORTERS}, got {exporter!r}")
    out = Path(out)
    net = LifterNet(_pin_dense(model)).eval()
    meta = export_metadata(model, info, fmt)
    k, c = meta["input_shape"][1:]
    example = torch.randn(2, k, c, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_file = Path(tmp) / f"model{SUFFIXES[fmt]}"
        if fmt == "pt2":
            _write_pt2(net, example, meta, tmp_file)
        else:
            _write_onnx(net, example, meta, tmp_file, exporter)
        data = tmp_file.read_bytes()
    atomic_write_bytes(out, data)
    if check:
        _check_written(net, out, meta, fmt)
    return out


def export_lifter(checkpoint, fmt: str = "onnx", out=None, exporter: str = "dynamo", check: bool = True) -> Path:
    """Export the lifter of ``checkpoint`` (an hgn_pyg checkpoint, trained or converted) as
    ``fmt`` (``"onnx"`` or ``"pt2"``) to ``out`` (default: the checkpoint's name with the
    format's suffix); see :func:`export_model`. Returns the path written."""
    from hgn_pyg.inference.lifter import Lifter

    if fmt not in FORMATS:
        raise ConfigError(f"export: format must be one of {FORMATS}, got {fmt!r}")
    if is_exported(checkpoint):
        raise ConfigError(f"{checkpoint}: already an exported lifter; export from the checkpoint it came from")
    lifter = Lifter.from_checkpoint(checkpoint, device="cpu")
    if out is None:
        out = Path(os.fspath(checkpoint)).with_suffix(SUFFIXES[fmt])
    return export_model(lifter.model, lifter.info, fmt, out, exporter=exporter, check=check)


def _dynamic_batch():
    return {"x": {0: torch.export.Dim("batch", min=1, max=1 << 20)}}


def _write_pt2(net: LifterNet, example: Tensor, meta: Dict[str, Any], path: Path) -> None:
    ep = torch.export.export(net, (example,), dynamic_shapes=_dynamic_batch())
    torch.export.save(ep, str(path), extra_files={PT2_METADATA_FILE: json.dumps(meta)})


def _write_onnx(net: LifterNet, example: Tensor, meta: Dict[str, Any], path: Path, exporter: str) -> None:
    try:
        import onnx
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package: pip install 'hgn_pyg[onnx]'") from None
    outputs = list(meta["outputs"])
    if exporter == "legacy":
        axes = {INPUT_NAME: {0: "batch"}, **{o: {0: "batch"} for o in outputs}}
        with warnings.catch_warnings():  # TracerWarnings of the shape checks (constant for a fixed K, C)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(net, (example,), str(path), dynamo=False, input_names=[INPUT_NAME],
                              output_names=outputs, dynamic_axes=axes, opset_version=LEGACY_OPSET)
    else:
        try:
            import onnxscript  # noqa: F401
        except ImportError:
            raise ConfigError("the dynamo ONNX exporter needs onnxscript: pip install 'hgn_pyg[onnx]' "
                              "(or exporter='legacy')") from None
        program = torch.onnx.export(net, (example,), dynamo=True, input_names=[INPUT_NAME],
                                    output_names=outputs, dynamic_shapes=_dynamic_batch(), verbose=False)
        program.save(str(path))
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    proto.producer_name = "hgn_pyg"
    onnx.save(proto, str(path))


def _check_written(net: LifterNet, path: Path, meta: Dict[str, Any], fmt: str) -> None:
    if fmt == "onnx" and not _has_onnxruntime():
        log.warning("%s: onnxruntime is not installed; the exported model was not compared with the eager one",
                    path)
        return
    exported = load_exported(path)
    gen = torch.Generator().manual_seed(1)
    for batch in (1, 5):
        x = torch.randn(batch, *meta["input_shape"][1:], generator=gen)
        with torch.no_grad():
            want = net(x)
        got = exported(x)
        diff = max(float((a - b).abs().max()) for a, b in zip(want, got))
        if not diff <= EXPORT_ATOL:
            raise CheckpointError(f"{path}: the exported model differs from the eager one by {diff:.3g} "
                                  f"(> {EXPORT_ATOL:g}) at batch {batch}")


