"""Typed experiment configuration: YAML files, validation and ``--set`` overrides.

A configuration is a :class:`Config` made of one dataclass per YAML section.  The
section and key names of the published HGN / Pose2Mesh configs are kept
(``DATASET.train_list``, ``TRAIN.end_epoch``, ``TEST.vis`` …) so a user of the
published repository feels at home; the keys hgn_pyg needs on top (data root,
body model path, fusion kind, seed, device, output root …) live beside them.

Loading is strict: an unknown section or key (with the closest valid name as a
suggestion), a value of the wrong type, an out-of-range value or a missing data
root raise :class:`hgn_pyg.errors.ConfigError` naming the file and the key.
Nothing is global: every function returns a new object, and values are parsed
with ``yaml.safe_load`` (never ``eval``).

Example::

    cfg = load_config("configs/hgn_synthetic.yaml", overrides=["TRAIN.lr=0.0005"])
    cfg.TRAIN.lr          # 0.0005
    cfg.to_yaml()         # the full, resolved configuration
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import yaml

from hgn_pyg.data.augment import INPUT_CHANNELS
from hgn_pyg.data.input_2d import INPUT_JOINT_SETS, joint_set_name
from hgn_pyg.data.pose_graph import FORMATS
from hgn_pyg.engine.optim import OPTIMIZERS, SCHEDULERS
from hgn_pyg.errors import ConfigError
from hgn_pyg.io import atomic_write_text
from hgn_pyg.models.hgn import FUSIONS, min_num_layers
from hgn_pyg.nn.sem_graph_conv import ISOLATED, MODES

__all__ = [
    "DatasetConfig",
    "SyntheticConfig",
    "ModelConfig",
    "TrainConfig",
    "AugConfig",
    "TestConfig",
    "ExperimentConfig",
    "Config",
    "load_config",
    "config_from_dict",
    "parse_override",
    "apply_overrides",
    "check_paths",
]


@dataclass
class DatasetConfig:
    """``DATASET`` section: which data, where, and how it is read.

    Published keys: ``train_list``, ``test_list``, ``input_joint_set``,
    ``target_joint_set``, ``workers``, ``use_gt_input``.  Ours: ``root`` (the
    dataset folder; relative paths are taken from the current directory
    and recorded absolute in the experiment's config.yaml),
    ``format`` (``"h36m"``: Pose2Mesh-style ``annotations/*.json``;
    ``"videopose3d"``: the ``.npz`` pair), ``body_model_path`` (an SMPL ``.pkl``/``.npz``;
    empty = the embedded open body model), subjects, subsampling and
    the target cache folder (empty = ``<root>/cache``).

    2D input (:mod:`hgn_pyg.data.input_2d`): ``input_joint_set`` ``"h36m"`` (the projected
    Human3.6M-17 joints) or ``"coco17"`` (the COCO-17 keypoints of the same frames, h36m format;
    the model learns their mapping to the joints); ``use_gt_input: false`` reads the 2D input
    from ``npz_2d`` (VideoPose3D's 2D layout, e.g. CPN detections) aligned to the Pose2Mesh
    frames (h36m format; the videopose3d format always reads ``npz_2d``). The joint sets are named
    as in :data:`hgn_pyg.graphs.SKELETONS`; the published spellings ``human36`` and ``coco`` are
    accepted and resolved to ``h36m`` and ``coco17`` when the configuration is loaded
    (:data:`hgn_pyg.data.input_2d.LEGACY_JOINT_SET_NAMES`).
    """

    train_list: List[str] = field(default_factory=lambda: ["Human36M"])
    test_list: List[str] = field(default_factory=lambda: ["Human36M"])
    input_joint_set: str = "h36m"
    target_joint_set: str = "h36m"
    workers: int = 0
    use_gt_input: bool = True
    root: str = "datasets/synthetic"
    format: str = "h36m"
    body_model_path: str = ""
    train_subjects: List[int] = field(default_factory=lambda: [1, 5, 6, 7, 8])
    test_subjects: List[int] = field(default_factory=lambda: [9, 11])
    train_subsample: int = 5
    test_subsample: int = 50
    cache_dir: str = ""
    npz_3d: str = "data_3d_h36m.npz"
    npz_2d: str = "data_2d_h36m_gt.npz"


@dataclass
class SyntheticConfig:
    """``SYNTHETIC`` section: make the synthetic set in ``DATASET.root`` when it is missing.

    A root holding a synthetic set made with other parameters (its ``SYNTHETIC.json``) is not
    reused: the set is made in ``<root>-<key>`` instead (:func:`hgn_pyg.engine.build.ensure_dataset`).

    ``generate_if_missing`` turns the automatic generation on; ``frames`` and
    ``seed`` are passed to :func:`hgn_pyg.data.synthetic.generate`, and
    ``options`` holds any further keyword arguments of that function.
    """

    generate_if_missing: bool = False
    frames: int = 0
    seed: int = 0
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    """``MODEL`` section: the HGN network.

    ``fusion``: ``"official"`` (dense learned transfer maps, the published model)
    or ``"pool"`` (pooling along the hierarchy).  ``mesh_levels``: the hierarchy
    levels of the mesh branches 2, 3, ..., coarse to fine (strictly decreasing);
    ``[8, 7]`` is the published model (SMPL: 48 and 96 slots), ``[]`` the
    skeleton-only network, ``[8, 7, 6, 5]`` adds 192 and 384 slots
    (docs/published_model.md §10).  ``num_layers``: layers of the skeleton branch;
    at least ``len(mesh_levels) + 1`` when there are two or more mesh levels (the
    finest branch must pass through a layer).
    ``hierarchy_levels``: how many times the mesh is coarsened.
    ``dropout``: ``null`` (the published model) or a probability.
    ``in_channels``: 2 (``x, y``, the published input) or 3 (``x, y, score``).
    """

    name: str = "HGN"
    hidden_channels: int = 128
    num_layers: int = 4
    mesh_levels: List[int] = field(default_factory=lambda: [8, 7])
    hierarchy_levels: int = 9
    fusion: str = "official"
    dropout: Optional[float] = None
    in_channels: int = 2
    mode: str = "auto"
    isolated: str = "uniform"
    weight_path: str = ""


@dataclass
class TrainConfig:
    """``TRAIN`` section: optimisation (docs/published_model.md §4).

    Epochs run over ``range(begin_epoch, end_epoch)`` (``end_epoch`` excluded).
    ``scheduler: "step"`` multiplies the learning rate by ``lr_factor`` at every
    epoch listed in ``lr_step`` (counted from ``begin_epoch``; stepped once per
    epoch after training).  Loss: ``joint_loss_weight · MSE(joints) +
    Σ mesh_loss_weights[k] · MSE(mesh_k)`` with one weight per ``MODEL.mesh_levels``
    entry, in that order (``null``: 1 for every level; all zeros: no mesh
    constraint); ``symmetry_loss_weight`` adds the left/right bone-length term of
    :class:`~hgn_pyg.engine.losses.HGNLoss` (``0``: the published loss); ``grad_clip`` is the gradient-norm
    limit (``0`` = none); ``max_train_samples`` caps the training set (``0`` = all).
    """

    batch_size: int = 64
    shuffle: bool = True
    begin_epoch: int = 0
    end_epoch: int = 151
    scheduler: str = "step"
    lr: float = 1e-3
    lr_step: List[int] = field(default_factory=lambda: list(range(20, 141, 20)))
    lr_factor: float = 0.9
    optimizer: str = "adam"
    weight_decay: float = 0.0
    print_freq: int = 100
    joint_loss_weight: float = 100.0
    mesh_loss_weights: Optional[List[float]] = None
    symmetry_loss_weight: float = 0.0
    grad_clip: float = 1.0
    max_train_samples: int = 0
    eval_every: int = 1


@dataclass
class AugConfig:
    """``AUG`` section: training-time augmentation of the 2D input.

    ``noise_std``: standard deviation of Gaussian noise added to the normalised 2D
    input (``0`` = none, the published recipe with ground-truth 2D input).
    Detector-like corruption (:class:`hgn_pyg.data.augment.DetectorNoise`; all ``0`` = off):
    ``detector_noise`` (per-joint Gaussian noise level relative to the person's box; 0.25
    imitates a good detector), ``outlier_prob`` / ``outlier_scale`` (gross errors),
    ``swap_prob`` (left/right swaps per pair), ``missing_prob`` (missing joints per joint).
    Keypoint dropout: a frame loses 1..``max_dropped`` random joints with probability
    ``keypoint_dropout``. Missing joints are filled as at inference
    (:mod:`hgn_pyg.data.keypoints`).
    Generalisation augmentation (:class:`hgn_pyg.data.augment.PoseViewAugmentation`, applied
    before the 2D corruption above; ``0`` = off): ``pose_prob`` — probability of new bone lengths
    (``body_scale`` [low, high] stature factor, ``bone_scale`` per left/right pair and
    ``bone_scale_side`` per single bone, standard deviations); ``view_prob`` — probability of a
    virtual camera (``yaw``, ``tilt`` half-ranges and ``elevation`` [low, high] in degrees,
    ``distance`` [low, high] metres, ``focal`` [low, high] as ``2 f / W``, ``offset`` the largest
    normalised distance of the pelvis's image from the centre); the 2D input is re-projected from
    the changed 3D target.
    """

    noise_std: float = 0.0
    detector_noise: float = 0.0
    outlier_prob: float = 0.0
    outlier_scale: float = 0.3
    swap_prob: float = 0.0
    missing_prob: float = 0.0
    keypoint_dropout: float = 0.0
    max_dropped: int = 3
    pose_prob: float = 0.0
    body_scale: List[float] = field(default_factory=lambda: list(_pose_view_default("body_scale")))
    bone_scale: float = field(default_factory=lambda: _pose_view_default("bone_scale"))
    bone_scale_side: float = field(default_factory=lambda: _pose_view_default("bone_scale_side"))
    view_prob: float = 0.0
    yaw: float = field(default_factory=lambda: _pose_view_default("yaw"))
    tilt: float = field(default_factory=lambda: _pose_view_default("tilt"))
    elevation: List[float] = field(default_factory=lambda: list(_pose_view_default("elevation")))
    distance: List[float] = field(default_factory=lambda: list(_pose_view_default("distance")))
    focal: List[float] = field(default_factory=lambda: list(_pose_view_default("focal")))
    offset: float = field(default_factory=lambda: _pose_view_default("offset"))


def _pose_view_default(key: str):
    """A default of the pose/view augmentation; the values live with it
    (:data:`hgn_pyg.data.augment.POSE_VIEW_DEFAULTS`)."""
    from hgn_pyg.data.augment import POSE_VIEW_DEFAULTS

    return POSE_VIEW_DEFAULTS[key]


@dataclass
class TestConfig:
    """``TEST`` section: evaluation.

    Published keys: ``batch_size``, ``shuffle``, ``weight_path`` (a checkpoint to
    evaluate when ``hgn_pyg.test`` gets no ``--checkpoint``), ``vis`` (write 3D pose
    PNGs and coarse-mesh OBJ files).  ``vis_samples``: how many test samples to draw;
    ``max_samples`` caps the test set (``0`` = all).  ``symmetric_bones``: evaluate the poses
    with equal left and right bones (:func:`hgn_pyg.data.kinematics.symmetric_bones` on the
    network's output), and record in the checkpoint that lifting should do the same
    (:class:`hgn_pyg.inference.Lifter`'s default for it; ``False``: the published protocol, the
    network's output as it is).  ``flip_test``: evaluate the mean of the network's answer and the
    mirrored answer for the mirrored input (:mod:`hgn_pyg.models.flip`), and record in the
    checkpoint that lifting should do the same (``False``: the published protocol).
    """

    batch_size: int = 64
    shuffle: bool = False
    weight_path: str = ""
    vis: bool = False
    vis_samples: int = 4
    max_samples: int = 0
    symmetric_bones: bool = False
    flip_test: bool = False


@dataclass
class ExperimentConfig:
    """``EXPERIMENT`` section: seed, device and where runs are written.

    ``device``: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    ``output_root``: runs go to ``<output_root>/exp_<UTC timestamp>/``.
    ``progress``: show tqdm progress bars.
    """

    seed: int = 0
    device: str = "auto"
    output_root: str = "experiment"
    progress: bool = True
    log_level: str = "INFO"


@dataclass
class Config:
    """A full experiment configuration (one attribute per YAML section).

    ``source`` records the file it was read from (used in error messages; not
    written back to YAML).
    """

    DATASET: DatasetConfig = field(default_factory=DatasetConfig)
    SYNTHETIC: SyntheticConfig = field(default_factory=SyntheticConfig)
    MODEL: ModelConfig = field(default_factory=ModelConfig)
    TRAIN: TrainConfig = field(default_factory=TrainConfig)
    AUG: AugConfig = field(default_factory=AugConfig)
    TEST: TestConfig = field(default_factory=TestConfig)
    EXPERIMENT: ExperimentConfig = field(default_factory=ExperimentConfig)
    source: str = field(default="<defaults>", compare=False, repr=False)

    def to_dict(self) -> Dict[str, Any]:
        """Plain nested dict of all sections (no ``source``)."""
        return {s: dataclasses.asdict(getattr(self, s)) for s in SECTIONS}

    def to_yaml(self) -> str:
        """The resolved configuration as YAML text (round-trips through :func:`load_config`)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write :meth:`to_yaml` to ``path`` atomically (temporary file, then rename)."""
        atomic_write_text(path, self.to_yaml())

    def data_root(self) -> Path:
        """``DATASET.root`` as a :class:`~pathlib.Path` (relative to the current directory)."""
        return Path(os.path.expanduser(self.DATASET.root))

    def __repr__(self) -> str:
        return f"Config(source={self.source!r})"


SECTIONS = ("DATASET", "SYNTHETIC", "MODEL", "TRAIN", "AUG", "TEST", "EXPERIMENT")
_SECTION_TYPES = {f.name: f.type for f in dataclasses.fields(Config) if f.name in SECTIONS}
_HINTS_CACHE: Dict[type, Dict[str, Any]] = {}


def _section_class(name: str) -> type:
    return typing.get_type_hints(Config)[name]


def _hints(cls: type) -> Dict[str, Any]:
    if cls not in _HINTS_CACHE:
        _HINTS_CACHE[cls] = typing.get_type_hints(cls)
    return _HINTS_CACHE[cls]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is None:
        return getattr(tp, "__name__", str(tp))
    args = typing.get_args(tp)
    if origin is Union:
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_name(a) for a in args)}]"


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widened to float)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    bad = ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if tp is Any:
        return value
    if origin is Union:
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError:
                pass
        raise bad
    if origin in (list, List, tuple):
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise bad
        inner = args[0] if args else Any
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise bad
        return {str(k): v for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise bad  # pragma: no cover - every annotation above is handled


def _unknown(kind: str, name: str, valid: Sequence[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    if not close:  # case-insensitive second chance (``lr_Step`` → ``lr_step``)
        low = {v.lower(): v for v in valid}
        close = difflib.get_close_matches(name.lower(), list(low), n=1, cutoff=0.5)
        close = [low[c] for c in close]
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(valid)}"
    return ConfigError(f"{where}: unknown {kind} {name!r}{hint}")


def _build_section(name: str, data: Any, source: str, base: Any = None) -> Any:
    cls = _section_class(name)
    where = f"{source}: {name}"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a section must be a mapping of keys, got {type(data).__name__}")
    hints = _hints(cls)
    obj = copy.deepcopy(base) if base is not None else cls()
    for key, value in data.items():
        key = str(key)
        if key not in hints:
            raise _unknown("key", f"{name}.{key}", [f"{name}.{k}" for k in hints], f"{source}")
        setattr(obj, key, _coerce(value, hints[key], f"{where}.{key}"))
    return obj


def config_from_dict(data: Any, source: str = "<dict>", base: Optional[Config] = None) -> Config:
    """Build and validate a :class:`Config` from a nested mapping (as read from YAML).

    Sections or keys left out keep their defaults (or the values of ``base``).
    Raises :class:`ConfigError` naming ``source`` and the offending key.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    cfg = copy.deepcopy(base) if base is not None else Config()
    for name, body in data.items():
        name = str(name)
        if name not in SECTIONS:
            raise _unknown("section", name, SECTIONS, source)
        setattr(cfg, name, _build_section(name, body, source, getattr(cfg, name)))
    cfg.source = source
    # one spelling of the joint sets: the published names are resolved here
    cfg.DATASET.input_joint_set = joint_set_name(cfg.DATASET.input_joint_set)
    cfg.DATASET.target_joint_set = joint_set_name(cfg.DATASET.target_joint_set)
    validate(cfg)
    return cfg


def _choice(value: str, choices: Sequence[str], where: str) -> None:
    if value not in choices:
        raise ConfigError(f"{where}: invalid value {value!r}; expected one of {', '.join(map(repr, choices))}")


def validate(cfg: Config) -> None:
    """Check value ranges and choices; raise :class:`ConfigError` naming the key at fault.

    The allowed values come from the modules that use them (the layer's modes, the model's
    fusions, the readers' formats, the trainer's optimizers and schedulers).
    """
    src = cfg.source
    d, m, t, a, s, x, e = cfg.DATASET, cfg.MODEL, cfg.TRAIN, cfg.AUG, cfg.SYNTHETIC, cfg.TEST, cfg.EXPERIMENT

    def positive(value: Union[int, float], key: str, allow_zero: bool = False) -> None:
        if value < 0 or (value == 0 and not allow_zero):
            need = ">= 0" if allow_zero else "> 0"
            raise ConfigError(f"{src}: {key}: invalid value {value!r}; must be {need}")

    _choice(d.format, FORMATS, f"{src}: DATASET.format")
    _choice(d.input_joint_set, INPUT_JOINT_SETS, f"{src}: DATASET.input_joint_set")
    if d.input_joint_set != "h36m" and d.format != "h36m":
        raise ConfigError(f"{src}: DATASET.input_joint_set: {d.input_joint_set!r} needs DATASET.format "
                          f"'h36m' (the COCO keypoints come with the Pose2Mesh-layout annotations)")
    if not d.use_gt_input and d.input_joint_set != "h36m":
        raise ConfigError(f"{src}: DATASET.use_gt_input: false reads Human3.6M-17 keypoints from "
                          f"DATASET.npz_2d; DATASET.input_joint_set must be 'h36m'")
    _choice(d.target_joint_set, ("h36m",), f"{src}: DATASET.target_joint_set")
    if not d.root:
        raise ConfigError(f"{src}: DATASET.root: must name the dataset folder")
    positive(d.workers, "DATASET.workers", allow_zero=True)
    positive(d.train_subsample, "DATASET.train_subsample")
    positive(d.test_subsample, "DATASET.test_subsample")
    if not d.train_subjects:
        raise ConfigError(f"{src}: DATASET.train_subjects: must list at least one subject")
    if not d.test_subjects:
        raise ConfigError(f"{src}: DATASET.test_subjects: must list at least one subject")
    positive(s.frames, "SYNTHETIC.frames", allow_zero=True)

    _choice(m.name, ("HGN",), f"{src}: MODEL.name")
    _choice(m.fusion, FUSIONS, f"{src}: MODEL.fusion")
    _choice(m.mode, MODES, f"{src}: MODEL.mode")
    _choice(m.isolated, ISOLATED, f"{src}: MODEL.isolated")
    positive(m.hidden_channels, "MODEL.hidden_channels")
    if m.hidden_channels % 2:
        raise ConfigError(f"{src}: MODEL.hidden_channels: invalid value {m.hidden_channels}; must be even "
                          "(the non-local block uses C/2 inner channels)")
    positive(m.hierarchy_levels, "MODEL.hierarchy_levels")
    for lvl in m.mesh_levels:
        if not 0 <= lvl <= m.hierarchy_levels:
            raise ConfigError(f"{src}: MODEL.mesh_levels: level {lvl} outside 0..MODEL.hierarchy_levels "
                              f"({m.hierarchy_levels})")
    if any(a <= b for a, b in zip(m.mesh_levels, m.mesh_levels[1:])):
        raise ConfigError(f"{src}: MODEL.mesh_levels: levels go from coarse to fine, i.e. strictly decreasing "
                          f"level numbers (published: [8, 7]), got {m.mesh_levels}")
    need = min_num_layers(len(m.mesh_levels))
    if m.num_layers < need:
        raise ConfigError(f"{src}: MODEL.num_layers: invalid value {m.num_layers}; {len(m.mesh_levels)} mesh "
                          f"levels {m.mesh_levels} need at least {need} layers (the finest branch joins after "
                          f"layer {need - 1}; docs/published_model.md §10)")
    if m.in_channels not in INPUT_CHANNELS:
        raise ConfigError(f"{src}: MODEL.in_channels: invalid value {m.in_channels}; expected one of "
                          f"{', '.join(map(str, INPUT_CHANNELS))} (x, y[, score])")
    if m.dropout is not None and not 0.0 <= m.dropout < 1.0:
        raise ConfigError(f"{src}: MODEL.dropout: invalid value {m.dropout}; must be null or in [0, 1)")

    positive(t.batch_size, "TRAIN.batch_size")
    positive(t.begin_epoch, "TRAIN.begin_epoch", allow_zero=True)
    if t.end_epoch <= t.begin_epoch:
        raise ConfigError(f"{src}: TRAIN.end_epoch: invalid value {t.end_epoch}; must be greater than "
                          f"TRAIN.begin_epoch ({t.begin_epoch})")
    _choice(t.scheduler, SCHEDULERS, f"{src}: TRAIN.scheduler")
    _choice(t.optimizer, OPTIMIZERS, f"{src}: TRAIN.optimizer")
    positive(t.lr, "TRAIN.lr")
    positive(t.lr_factor, "TRAIN.lr_factor")
    positive(t.weight_decay, "TRAIN.weight_decay", allow_zero=True)
    if sorted(t.lr_step) != list(t.lr_step) or any(v <= 0 for v in t.lr_step):
        raise ConfigError(f"{src}: TRAIN.lr_step: invalid value {t.lr_step}; must be increasing positive epochs")
    positive(t.print_freq, "TRAIN.print_freq")
    positive(t.joint_loss_weight, "TRAIN.joint_loss_weight", allow_zero=True)
    positive(t.symmetry_loss_weight, "TRAIN.symmetry_loss_weight", allow_zero=True)
    if t.mesh_loss_weights is not None and (len(t.mesh_loss_weights) != len(m.mesh_levels)
                                            or any(w < 0 for w in t.mesh_loss_weights)):
        raise ConfigError(f"{src}: TRAIN.mesh_loss_weights: invalid value {t.mesh_loss_weights}; expected "
                          f"{len(m.mesh_levels)} non-negative weight(s), one per MODEL.mesh_levels entry "
                          f"{m.mesh_levels} (or null: 1 each)")
    positive(t.grad_clip, "TRAIN.grad_clip", allow_zero=True)
    positive(t.max_train_samples, "TRAIN.max_train_samples", allow_zero=True)
    positive(t.eval_every, "TRAIN.eval_every")
    positive(a.noise_std, "AUG.noise_std", allow_zero=True)
    positive(a.detector_noise, "AUG.detector_noise", allow_zero=True)
    positive(a.outlier_scale, "AUG.outlier_scale", allow_zero=True)
    for key in ("outlier_prob", "swap_prob", "missing_prob", "keypoint_dropout"):
        if not 0.0 <= getattr(a, key) <= 1.0:
            raise ConfigError(f"{src}: AUG.{key}: invalid value {getattr(a, key)!r}; must be in [0, 1]")
    if not 0 <= a.max_dropped <= 17:
        raise ConfigError(f"{src}: AUG.max_dropped: invalid value {a.max_dropped!r}; must be in 0..17")
    for key in ("pose_prob", "view_prob"):
        if not 0.0 <= getattr(a, key) <= 1.0:
            raise ConfigError(f"{src}: AUG.{key}: invalid value {getattr(a, key)!r}; must be in [0, 1]")
    for key in ("bone_scale", "bone_scale_side", "yaw", "tilt", "offset"):
        positive(getattr(a, key), f"AUG.{key}", allow_zero=True)
    for key, low_positive in (("body_scale", True), ("elevation", False), ("distance", True), ("focal", True)):
        r = getattr(a, key)
        if len(r) != 2 or r[0] > r[1] or (low_positive and r[0] <= 0):
            need = "[low, high] with 0 < low <= high" if low_positive else "[low, high] with low <= high"
            raise ConfigError(f"{src}: AUG.{key}: invalid value {r!r}; must be {need}")
    if not (-90.0 < a.elevation[0] and a.elevation[1] < 90.0):
        raise ConfigError(f"{src}: AUG.elevation: invalid value {a.elevation!r}; must lie in (-90, 90) degrees")
    positive(x.batch_size, "TEST.batch_size")
    positive(x.vis_samples, "TEST.vis_samples", allow_zero=True)
    positive(x.max_samples, "TEST.max_samples", allow_zero=True)
    positive(e.seed, "EXPERIMENT.seed", allow_zero=True)
    dev = e.device
    if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise ConfigError(f"{src}: EXPERIMENT.device: invalid value {dev!r}; expected 'auto', 'cpu', "
                          "'cuda' or 'cuda:N'")
    _choice(e.log_level.upper(), ("DEBUG", "INFO", "WARNING", "ERROR"), f"{src}: EXPERIMENT.log_level")
    if not e.output_root:
        raise ConfigError(f"{src}: EXPERIMENT.output_root: must name a folder")


#: Most YAML nodes a configuration may expand to (aliases counted each time they are used): a
#: "billion laughs" file of a few lines would otherwise expand to gigabytes.
MAX_YAML_NODES = 100_000


def safe_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load(text)`` with alias expansion limited to :data:`MAX_YAML_NODES` nodes.

    Raises:
        yaml.YAMLError: malformed YAML. ConfigError: too many nodes after alias expansion, or
            nesting deeper than Python's recursion limit.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        budget = [MAX_YAML_NODES]
        sizes: Dict[int, Optional[int]] = {}

        def size(n: yaml.Node) -> int:  # expanded size, memoised per shared (aliased) node
            if id(n) in sizes:
                if sizes[id(n)] is None:
                    raise ConfigError(f"{where}: a YAML alias refers to a node that contains it "
                                      f"(line {n.start_mark.line + 1})")
                return sizes[id(n)]
            sizes[id(n)] = None  # in progress
            total = 1
            if isinstance(n, yaml.SequenceNode):
                total += sum(size(c) for c in n.value)
            elif isinstance(n, yaml.MappingNode):
                total += sum(size(k) + size(v) for k, v in n.value)
            sizes[id(n)] = total
            if total > budget[0]:
                raise ConfigError(f"{where}: the YAML expands to more than {MAX_YAML_NODES} values "
                                  "(aliases nested too deeply?)")
            return total

        size(node)
        return loader.construct_document(node)
    except RecursionError:  # e.g. --set KEY=[[[[...]]]] thousands deep
        raise ConfigError(f"{where}: the YAML is nested too deeply") from None
    finally:
        loader.dispose()


def parse_override(text: str) -> tuple:
    """Split ``"SECTION.key=value"`` into ``(section, key, value)``; ``value`` is YAML-parsed.

    ``TRAIN.lr=1e-4`` → ``("TRAIN", "lr", 0.0001)``; ``MODEL.mesh_levels=[8,7]`` → a list.
    """
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected SECTION.key=value")
    lhs, rhs = text.split("=", 1)
    if lhs.count(".") != 1:
        raise ConfigError(f"--set {text!r}: expected SECTION.key=value (one dot between section and key)")
    section, key = (p.strip() for p in lhs.split("."))
    shown = repr(text) if len(text) <= 120 else f"{text[:60]!r}... ({len(text)} characters)"
    try:
        value = safe_yaml(rhs, f"--set {shown}") if rhs.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {shown}: value is not valid YAML ({exc.__class__.__name__})") from None
    if isinstance(value, str) and value.lower().endswith(tuple("0123456789")):
        # YAML 1.1 reads "1e-4" as a string; accept it as the number it obviously is.
        try:
            value = float(value)
        except ValueError:
            pass
    return section, key, value


def apply_overrides(cfg: Config, overrides: Sequence[str]) -> Config:
    """Return a copy of ``cfg`` with ``--set SECTION.key=value`` overrides applied and validated."""
    data: Dict[str, Dict[str, Any]] = {}
    for text in overrides or ():
        section, key, value = parse_override(text)
        data.setdefault(section, {})[key] = value
    if not data:
        return cfg
    source = f"{cfg.source} (with --set)"
    out = config_from_dict(data, source=source, base=cfg)
    return out


def _fix_yaml_floats(node: Any) -> Any:
    # YAML 1.1 (PyYAML) reads "1e-3" (no dot) as a string; treat such strings as floats.
    if isinstance(node, dict):
        return {k: _fix_yaml_floats(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_fix_yaml_floats(v) for v in node]
    if isinstance(node, str):
        try:
            if any(c.isdigit() for c in node) and ("e" in node.lower()) and node.strip()[0] in "+-.0123456789":
                return float(node)
        except ValueError:
            return node
    return node


def load_config(
    path: Union[str, os.PathLike],
    overrides: Optional[Sequence[str]] = None,
    check_data: bool = False,
) -> Config:
    """Read a YAML config, apply ``overrides`` (``["SECTION.key=value", ...]``) and validate it.

    With ``check_data`` the data root must exist (or be generated on demand:
    ``SYNTHETIC.generate_if_missing``), see :func:`check_paths`.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = safe_yaml(path.read_text(), str(path))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError(f"{path}: the YAML is nested too deeply") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    cfg = config_from_dict(_fix_yaml_floats(data), source=str(path))
    cfg = apply_overrides(cfg, overrides or [])
    cfg.source = str(path)
    if check_data:
        check_paths(cfg)
    return cfg


def check_paths(cfg: Config) -> None:
    """Raise :class:`ConfigError` when ``DATASET.root`` (or ``DATASET.body_model_path``) is missing.

    A missing root is fine when ``SYNTHETIC.generate_if_missing`` is on (it will be generated).
    """
    root = cfg.data_root()
    if not root.exists() and not cfg.SYNTHETIC.generate_if_missing:
        raise ConfigError(f"{cfg.source}: DATASET.root: data folder {str(root)!r} does not exist "
                          "(set DATASET.root, or SYNTHETIC.generate_if_missing: true to make a synthetic set)")
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{cfg.source}: DATASET.root: {str(root)!r} is not a folder")
    bm = cfg.DATASET.body_model_path
    if bm and not Path(os.path.expanduser(bm)).is_file():
        raise ConfigError(f"{cfg.source}: DATASET.body_model_path: body model file {bm!r} does not exist "
                          "(leave it empty to use the embedded open body model)")
