"""Reading exported lifters (written by :mod:`hgn_pyg.inference.export`): the metadata, the checks
that keep a hostile file from running code, and :class:`ExportedModel`, which runs one through
onnxruntime (``.onnx``) or ``torch.export.load`` (``.pt2``).

ONNX is a protobuf that onnxruntime interprets with its own kernels. A ``.pt2`` archive is checked
before ``torch.export.load`` sees it (:func:`check_pt2_archive`), because ``torch.export.load``
itself unpickles what an archive asks it to and resolves graph targets by attribute path under
``torch`` (``torch.os.system`` would be a callable).
"""
from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from hgn_pyg.errors import CheckpointError, ConfigError
from hgn_pyg.models.checkpoint import check_output_convention

__all__ = ["FORMATS", "SUFFIXES", "EXPORT_FORMAT", "EXPORT_VERSION", "METADATA_KEY", "PT2_METADATA_FILE",
           "ExportedModel", "check_metadata", "load_exported", "read_metadata", "is_exported",
           "check_pt2_archive"]

#: Export formats and the file suffix of each.
FORMATS = ("onnx", "pt2")
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2"}
EXPORT_FORMAT = "hgn_pyg-lifter"
EXPORT_VERSION = 1
#: ONNX ``metadata_props`` key holding the metadata JSON.
METADATA_KEY = "hgn_pyg"
#: Extra file of a ``.pt2`` archive holding the metadata JSON.
PT2_METADATA_FILE = "hgn_pyg.json"
#: Largest metadata document read back (a hostile file may claim anything).
MAX_METADATA_BYTES = 1 << 20

# graph-node targets a .pt2 archive may name (torch.export.load resolves any attribute path under
# ``torch``, ``math`` or ``_operator``: ``torch.os.system`` would be a callable, so allow-list)
_PT2_TARGET = re.compile(r"^torch\.ops\.(aten|prims)\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+$")
_PT2_OPERATORS = frozenset(f"_operator.{n}" for n in (
    "getitem", "add", "sub", "mul", "floordiv", "truediv", "mod", "neg", "pow", "eq", "ne", "lt", "le", "gt",
    "ge", "and_", "or_", "not_"))
_PT2_SYM = frozenset(("torch.sym_int", "torch.sym_float", "torch.sym_max", "torch.sym_min", "torch.sym_not",
                      "torch.sym_sqrt", "torch._sym_sqrt", "torch.sym_ite"))


def check_metadata(meta: Any, source: str) -> Dict[str, Any]:
    """Validate a metadata document read from a file; returns it. Raises :class:`CheckpointError`
    naming the file and the key at fault."""
    from hgn_pyg.data.keypoints import KEYPOINT_FORMATS
    from hgn_pyg.graphs.skeleton import SKELETONS

    def fail(key: str, want: str) -> CheckpointError:
        got = meta.get(key, "<missing>") if isinstance(meta, Mapping) else meta
        shown = repr(got)
        return CheckpointError(f"{source}: exported-lifter metadata {key!r} must be {want}, got "
                               f"{shown[:80] + ('…' if len(shown) > 80 else '')}")

    if not isinstance(meta, Mapping):
        raise CheckpointError(f"{source}: exported-lifter metadata must be a JSON object, got "
                              f"{type(meta).__name__}")
    if meta.get("format") != EXPORT_FORMAT:
        raise fail("format", repr(EXPORT_FORMAT))
    if not isinstance(meta.get("version"), int) or not 1 <= meta["version"] <= EXPORT_VERSION:
        raise fail("version", f"an integer in [1, {EXPORT_VERSION}] (written by a newer hgn_pyg?)")
    if meta.get("backend") not in FORMATS:
        raise fail("backend", f"one of {FORMATS}")
    if meta.get("joint_set") not in SKELETONS:
        raise fail("joint_set", f"one of {sorted(SKELETONS)}")
    num_joints = len(SKELETONS[meta["joint_set"]].joint_names)
    names = meta.get("joint_names")
    if not (isinstance(names, list) and len(names) == num_joints and all(isinstance(n, str) for n in names)):
        raise fail("joint_names", f"a list of {num_joints} strings")
    inp = meta.get("input")
    if not (isinstance(inp, Mapping) and inp.get("keypoint_format") in KEYPOINT_FORMATS
            and isinstance(inp.get("channels"), list) and inp["channels"] in (["u", "v"], ["u", "v", "score"])):
        raise fail("input", f"an object with keypoint_format in {tuple(KEYPOINT_FORMATS)} and channels "
                            "['u', 'v'] or ['u', 'v', 'score']")
    shape = meta.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and shape[0] == "batch"
            and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape[1:])
            and shape[2] == len(inp["channels"])):
        raise fail("input_shape", "['batch', K, C] with C the number of input channels")
    if not isinstance(meta.get("output"), Mapping):
        raise fail("output", "an object")
    check_output_convention(meta["output"], source)
    levels, real = meta.get("mesh_levels"), meta.get("num_real")
    if not (isinstance(levels, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in levels)):
        raise fail("mesh_levels", "a list of integers")
    if not (isinstance(real, list) and len(real) == len(levels)
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in real)):
        raise fail("num_real", f"a list of {len(levels)} positive integers (one per mesh level)")
    outs = meta.get("outputs")
    if not (isinstance(outs, list) and len(outs) == 1 + len(levels) and all(isinstance(o, str) for o in outs)):
        raise fail("outputs", f"a list of {1 + len(levels)} names (joints, then one per mesh level)")
    return dict(meta)


def is_exported(path) -> bool:
    """Whether ``path`` names an exported lifter (by its suffix: ``.onnx`` or ``.pt2``)."""
    return isinstance(path, (str, os.PathLike)) and Path(os.fspath(path)).suffix.lower() in SUFFIXES.values()


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    for fmt, s in SUFFIXES.items():
        if s == suffix:
            return fmt
    raise CheckpointError(f"{path}: not an exported lifter (suffix {suffix!r}; expected "
                          f"{' or '.join(SUFFIXES.values())})")


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _parse_metadata(text: Any, source: str) -> Dict[str, Any]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str) or len(text) > MAX_METADATA_BYTES:
        raise CheckpointError(f"{source}: exported-lifter metadata missing or larger than "
                              f"{MAX_METADATA_BYTES} bytes")
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"{source}: exported-lifter metadata is not valid JSON ({exc})") from None
    return check_metadata(meta, source)


def check_pt2_archive(path) -> Tuple[str, Dict[str, Any]]:
    """Check that the ``.pt2`` archive at ``path`` holds nothing that ``torch.export.load`` would
    unpickle or call beyond tensor operators, and read its metadata (:data:`PT2_METADATA_FILE`).

    Returns:
        ``(prefix, metadata)``: the archive's top folder and the validated metadata.

    Raises:
        CheckpointError: not a zip archive, no program, pickled payloads, a legacy (pickled)
            layout, sample inputs that need pickle beyond tensors, a graph node calling anything
            but an ``aten``/``prims`` operator or arithmetic, missing or invalid metadata.
    """
    src = os.fspath(path)
    if not zipfile.is_zipfile(src):
        raise CheckpointError(f"{src}: not a torch.export .pt2 archive (not a zip file)")
    try:
        with zipfile.ZipFile(src) as zf:
            names = zf.namelist()
            programs = [n for n in names if re.fullmatch(r"[^/]+/models/[^/]+\.json", n)]
            if len(programs) != 1 or not programs[0].endswith("/models/model.json"):
                raise CheckpointError(f"{src}: a .pt2 lifter holds exactly one program models/model.json, "
                                      f"found {[p.split('/', 1)[1] for p in programs][:4]}")
            prefix = programs[0].split("/", 1)[0]
            legacy = [n for n in names if n.endswith(("/data/weights/model.pt", "/data/constants/model.pt"))]
            if legacy:
                raise CheckpointError(f"{src}: legacy (pickled) .pt2 layout {legacy[0]!r} refused; "
                                      "re-export the model")
            for kind in ("weights", "constants"):
                cfg_name = f"{prefix}/data/{kind}/model_{kind}_config.json"
                if cfg_name not in names:
                    raise CheckpointError(f"{src}: missing {cfg_name.split('/', 1)[1]}")
                cfg = json.loads(zf.read(cfg_name))
                for fqn, payload in (cfg.get("config") or {}).items():
                    pname = str(payload.get("path_name", ""))
                    if payload.get("use_pickle") or not pname.startswith(("weight_", "tensor_")):
                        raise CheckpointError(f"{src}: {kind} entry {fqn!r} ({pname}) is a pickled object; "
                                              "an exported lifter holds plain tensors only")
            _check_sample_inputs(zf, prefix, src)
            doc = json.loads(zf.read(programs[0]))
            _check_pt2_nodes(doc, src)
            meta_name = f"{prefix}/extra/{PT2_METADATA_FILE}"
            if meta_name not in names:
                raise CheckpointError(f"{src}: no {PT2_METADATA_FILE} in the archive's extra files: not "
                                      "written by hgn-export")
            info = zf.getinfo(meta_name)
            if info.file_size > MAX_METADATA_BYTES:
                raise CheckpointError(f"{src}: {PT2_METADATA_FILE} larger than {MAX_METADATA_BYTES} bytes")
            meta = _parse_metadata(zf.read(meta_name), src)
    except (zipfile.BadZipFile, ValueError, KeyError, AttributeError, TypeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{src}: damaged .pt2 archive ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return prefix, meta


def _check_sample_inputs(zf: zipfile.ZipFile, prefix: str, src: str) -> None:
    import io

    for name in zf.namelist():
        if name.startswith(f"{prefix}/data/sample_inputs/"):
            data = zf.read(name)
            if not data:
                continue
            try:  # torch.export.load falls back to weights_only=False when this fails
                torch.load(io.BytesIO(data), weights_only=True)
            except Exception as exc:  # noqa: BLE001 - any refusal means: not plain tensors
                raise CheckpointError(f"{src}: sample inputs {name.split('/', 1)[1]!r} hold more than "
                                      f"tensors ({type(exc).__name__}); refused") from None


def _check_pt2_nodes(doc: Mapping[str, Any], src: str) -> None:
    graph = doc["graph_module"]["graph"]
    if graph.get("custom_obj_values"):
        raise CheckpointError(f"{src}: the program holds custom objects; refused")
    for node in graph["nodes"]:
        target = node.get("target")
        if not isinstance(target, str) or not (_PT2_TARGET.match(target) or target in _PT2_OPERATORS
                                               or target in _PT2_SYM):
            raise CheckpointError(f"{src}: graph node calls {str(target)[:80]!r}, not a tensor operator; "
                                  "refused")


def read_metadata(path) -> Dict[str, Any]:
    """The validated metadata of the exported lifter at ``path`` (no model is built; ONNX needs
    the ``onnx`` package or onnxruntime)."""
    path = Path(os.fspath(path))
    if not path.is_file():
        raise CheckpointError(f"{path}: exported lifter not found")
    if _format_of(path) == "pt2":
        return check_pt2_archive(path)[1]
    try:
        import onnx
    except ImportError:
        return load_exported(path).meta
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError
        raise CheckpointError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise CheckpointError(f"{path}: no {METADATA_KEY!r} metadata: not written by hgn-export")
    return _parse_metadata(props[METADATA_KEY], str(path))


class ExportedModel:
    """An exported lifter ready to run: ``model(x [B, K, C] float32 tensor)`` -> ``(joints
    [B, J, 3], real meshes ...)`` as float32 CPU tensors (:class:`LifterNet`'s outputs).

    Attributes: ``path``, ``meta`` (validated metadata), ``backend`` (``"onnx"``/``"pt2"``),
    ``in_channels``, ``input_nodes`` (``K``), ``mesh_levels``.
    """

    def __init__(self, path: Path, meta: Dict[str, Any], run: Callable[[Tensor], Sequence[Tensor]]) -> None:
        self.path, self.meta, self._run = path, meta, run
        self.backend = meta["backend"]
        self.input_nodes, self.in_channels = meta["input_shape"][1:]
        self.mesh_levels = tuple(meta["mesh_levels"])
        self.num_real = tuple(meta["num_real"])

    def __call__(self, x: Tensor) -> Tuple[Tensor, ...]:
        if x.dim() != 3 or tuple(x.shape[1:]) != (self.input_nodes, self.in_channels):
            raise ValueError(f"{self.path}: expected input [B, {self.input_nodes}, {self.in_channels}], "
                             f"got {list(x.shape)}")
        outs = tuple(self._run(x.detach().to("cpu", torch.float32).contiguous()))
        if len(outs) != 1 + len(self.mesh_levels):
            raise CheckpointError(f"{self.path}: the model returned {len(outs)} outputs; its metadata names "
                                  f"{1 + len(self.mesh_levels)}")
        return outs

    def info(self):
        """A :class:`~hgn_pyg.models.checkpoint.CheckpointInfo` built from the metadata."""
        from hgn_pyg.models.checkpoint import CheckpointInfo

        m = self.meta
        return CheckpointInfo(source=str(self.path), layout=f"exported-{self.backend}", version=int(m["version"]),
                              joint_set=m["joint_set"], joint_names=tuple(m["joint_names"]), input=dict(m["input"]),
                              output=dict(m["output"]), mesh_levels=self.mesh_levels)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.path.name}, backend={self.backend}, "
                f"input=[B, {self.input_nodes}, {self.in_channels}], mesh_levels={self.mesh_levels})")


def load_exported(path, threads: Optional[int] = None) -> ExportedModel:
    """Open the exported lifter at ``path`` (``.onnx``: onnxruntime, ``.pt2``: ``torch.export.load``)
    after validating its metadata; ``threads``: onnxruntime intra-op threads (default: torch's).

    Raises:
        CheckpointError: missing/garbled file, missing or invalid metadata, a ``.pt2`` archive that
            would run code (:func:`check_pt2_archive`), an input/output signature that does not
            match the metadata.
        ConfigError: ``.onnx`` without onnxruntime installed.
    """
    path = Path(os.fspath(path))
    fmt = _format_of(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: exported lifter not found")
    if fmt == "pt2":
        return _load_pt2(path)
    return _load_onnx(path, threads)


def _load_pt2(path: Path) -> ExportedModel:
    _prefix, meta = check_pt2_archive(path)
    if meta["backend"] != "pt2":
        raise CheckpointError(f"{path}: metadata says backend {meta['backend']!r} in a .pt2 archive")
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001 - deserialisation errors have many types
        raise CheckpointError(f"{path}: cannot load the torch.export program ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    module = program.module()

    def run(x: Tensor) -> Sequence[Tensor]:
        with torch.no_grad():
            return module(x)

    return ExportedModel(path, meta, run)


def _load_onnx(path: Path, threads: Optional[int]) -> ExportedModel:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError(f"{path}: running an ONNX lifter needs onnxruntime: pip install 'hgn_pyg[onnx]'") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise CheckpointError(f"{path}: not a readable ONNX model ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise CheckpointError(f"{path}: no {METADATA_KEY!r} metadata: not written by hgn-export")
    meta = _parse_metadata(props[METADATA_KEY], str(path))
    if meta["backend"] != "onnx":
        raise CheckpointError(f"{path}: metadata says backend {meta['backend']!r} in an ONNX file")
    inputs, outputs = session.get_inputs(), session.get_outputs()
    want = meta["input_shape"][1:]
    if len(inputs) != 1 or len(inputs[0].shape) != 3 or list(inputs[0].shape[1:]) != want:
        raise CheckpointError(f"{path}: the ONNX graph takes {[(i.name, i.shape) for i in inputs]}; its metadata "
                              f"says one input [batch, {want[0]}, {want[1]}]")
    if len(outputs) != len(meta["outputs"]):
        raise CheckpointError(f"{path}: the ONNX graph has {len(outputs)} outputs; its metadata names "
                              f"{len(meta['outputs'])}")
    name = inputs[0].name

    def run(x: Tensor) -> List[Tensor]:
        return [torch.from_numpy(o) for o in session.run(None, {name: x.numpy()})]

    return ExportedModel(path, meta, run)
