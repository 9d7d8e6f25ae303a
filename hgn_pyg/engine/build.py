"""Build the pieces of an experiment from a :class:`~hgn_pyg.config.Config`.

The functions here connect the earlier stages (graphs → nn → models → data) the
way the configuration says: make the synthetic set when asked, load the body
model, build (or read from cache) the mesh hierarchy, the data sets, the model
and the loss.  They hold no state of their own.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from hgn_pyg.data import synthetic
from hgn_pyg.data.body_model import default_body_model_path, load_body_model
from hgn_pyg.data.human36m import Human36M
from hgn_pyg.data.input_2d import INPUT_FORMATS, with_input_2d
from hgn_pyg.data.videopose3d import VideoPose3D
from hgn_pyg.engine.losses import HGNLoss
from hgn_pyg.errors import ConfigError, DataError
from hgn_pyg.graphs.hierarchy import GraphHierarchy, mesh_hierarchy
from hgn_pyg.graphs.skeleton import SKELETONS
from hgn_pyg.io import file_lock, remove_stale_temps
from hgn_pyg.models import build_hgn, load_model
from hgn_pyg.models.checkpoint import inference_record, load_model_state

if TYPE_CHECKING:
    from hgn_pyg.config import Config

__all__ = [
    "resolve_device",
    "ensure_dataset",
    "synthetic_identity",
    "body_model_path",
    "cache_dir",
    "load_body",
    "build_hierarchy",
    "build_datasets",
    "build_dataset",
    "build_model",
    "build_loss",
    "model_from_checkpoint",
    "model_record",
    "load_state",
    "subsample_dataset",
    "collate",
    "Batch",
]

log = logging.getLogger(__name__)


def resolve_device(spec: str) -> torch.device:
    """``"auto"`` → CUDA when available else CPU; ``"cuda"`` without a GPU raises :class:`ConfigError`."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"EXPERIMENT.device: {spec!r} requested but CUDA is not available")
    return dev


def _call_with_supported(fn, *args, **kwargs):
    """Call ``fn`` with the keyword arguments its signature accepts (others are logged and dropped)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return fn(*args, **kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return fn(*args, **kwargs)
    use = {k: v for k, v in kwargs.items() if k in params}
    dropped = sorted(set(kwargs) - set(use))
    if dropped:
        log.debug("%s does not take %s; not passed", getattr(fn, "__name__", fn), dropped)
    return fn(*args, **use)


def _synthetic_kwargs(cfg: Config, body_path: Optional[Path]) -> Dict[str, Any]:
    """The keyword arguments of :func:`hgn_pyg.data.synthetic.generate` the config asks for."""
    kwargs: Dict[str, Any] = dict(cfg.SYNTHETIC.options)
    if cfg.SYNTHETIC.frames:
        kwargs["frames"] = cfg.SYNTHETIC.frames
    kwargs["seed"] = cfg.SYNTHETIC.seed
    kwargs.setdefault("subjects", sorted(set(cfg.DATASET.train_subjects) | set(cfg.DATASET.test_subjects)))
    if cfg.DATASET.body_model_path:
        kwargs.setdefault("body_model_path", body_path if body_path is not None else body_model_path(cfg))
    return kwargs


def synthetic_identity(cfg: Config, body_path: Path, body=None) -> Dict[str, Any]:
    """:func:`hgn_pyg.data.synthetic.dataset_identity` of the synthetic set ``cfg`` describes."""
    kw = _synthetic_kwargs(cfg, body_path)
    body = body if body is not None else load_body(cfg)
    actions = kw.get("actions") or sorted(synthetic.ACTION_NAMES)
    try:
        return synthetic.dataset_identity(kw.get("frames", synthetic.DEFAULT_FRAMES), kw["seed"], kw["subjects"],
                                          actions, Path(body_path).name, body.version or "external")
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{cfg.source}: SYNTHETIC.options: {exc}") from None


def _folder_identity(root: Path) -> Optional[Dict[str, Any]]:
    try:
        return synthetic.manifest_identity(json.loads((root / "SYNTHETIC.json").read_text()))
    except (OSError, ValueError):
        return None


def _holds_data(root: Path) -> bool:
    return root.is_dir() and any(root.iterdir())


def ensure_dataset(cfg: Config, is_main: bool = True, body_path: Optional[Path] = None, body=None) -> Path:
    """The data root to read: ``DATASET.root``, or with ``SYNTHETIC.generate_if_missing`` a folder
    holding the synthetic set this config describes.

    A synthetic folder is used only when its ``SYNTHETIC.json`` records the same parameters
    (:func:`synthetic_identity`); on a mismatch the set goes to ``<root>-<key>`` (key: a hash of
    the parameters) instead, so data made with other parameters are never reused silently and
    never overwritten. A folder without ``SYNTHETIC.json`` that holds files is taken as the user's
    own data. Generation (main process only; call it on rank 0 before a barrier) goes to a
    temporary sibling folder renamed into place, under a lock, so an interrupted generation
    never leaves half a data set and several processes starting at once make it once.
    """
    root = cfg.data_root()
    if not cfg.SYNTHETIC.generate_if_missing:
        if not root.exists():
            raise ConfigError(f"{cfg.source}: DATASET.root: data folder {str(root)!r} does not exist")
        return root
    body_path = body_path if body_path is not None else body_model_path(cfg)
    want = synthetic_identity(cfg, body_path, body)
    found = _folder_identity(root)
    if _holds_data(root) and found is None:
        return root  # the user's own data
    if found is not None and found != want:
        key = hashlib.blake2b(repr(sorted(want.items())).encode(), digest_size=4).hexdigest()
        keyed = root.with_name(f"{root.name}-{key}")
        differ = ", ".join(f"{k} {found.get(k)!r} -> {v!r}" for k, v in want.items() if found.get(k) != v)
        log.warning("%s holds a synthetic set made with other parameters (%s); using %s", root, differ, keyed)
        root = keyed
    if _folder_identity(root) == want or not is_main:
        return root

    root.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(root.parent / f".{root.name}.lock"):
        if _folder_identity(root) == want:  # made by another process while we waited
            return root
        if _holds_data(root):
            raise ConfigError(f"{cfg.source}: DATASET.root: {str(root)!r} holds files but no matching "
                              "SYNTHETIC.json; move them or choose another DATASET.root")
        remove_stale_temps(root.parent, name=root.name)
        kwargs = _synthetic_kwargs(cfg, body_path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=str(root.parent)))
        log.info("generating the synthetic set in %s (%s)", root, ", ".join(f"{k}={v}" for k, v in kwargs.items()))
        try:
            _call_with_supported(synthetic.generate, tmp, **kwargs)
            if root.exists():
                root.rmdir()  # empty (checked above)
            os.replace(tmp, root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return root


def body_model_path(cfg: Config) -> Path:
    """``DATASET.body_model_path``, or the embedded open body model (built on first use)."""
    if cfg.DATASET.body_model_path:
        p = Path(os.path.expanduser(cfg.DATASET.body_model_path))
        if not p.is_file():
            raise ConfigError(f"{cfg.source}: DATASET.body_model_path: file {str(p)!r} does not exist")
        return p

    return Path(default_body_model_path())


def load_body(cfg: Config):
    """The :class:`hgn_pyg.data.body_model.BodyModel` the config names."""
    return load_body_model(body_model_path(cfg))


def cache_dir(cfg: Config) -> Path:
    """``DATASET.cache_dir``, or ``<data root>/cache``: the hierarchy and target caches."""
    if cfg.DATASET.cache_dir:
        return Path(os.path.expanduser(cfg.DATASET.cache_dir))
    return cfg.data_root() / "cache"


def build_hierarchy(cfg: Config, body=None, cache: bool = True):
    """The mesh hierarchy of the body model's faces (``MODEL.hierarchy_levels`` levels).

    Cached as ``<cache_dir>/hierarchy_<hash>.pt`` keyed by the faces and the level count.
    """
    body = body if body is not None else load_body(cfg)
    faces = np.ascontiguousarray(np.asarray(body.faces, dtype=np.int64))
    nv = int(body.num_vertices)
    levels = int(cfg.MODEL.hierarchy_levels)
    key = hashlib.blake2b(faces.tobytes() + f"{nv}/{levels}".encode(), digest_size=8).hexdigest()
    path = cache_dir(cfg) / f"hierarchy_{key}.pt"
    if cache and path.is_file():
        try:
            return GraphHierarchy.load(path)
        except Exception as exc:  # a stale/corrupt cache file is rebuilt
            log.warning("cannot read cached hierarchy %s (%s); rebuilding", path, exc)
    h = mesh_hierarchy(faces, nv, levels=levels)
    if cache:
        try:
            h.save(path)  # atomic
        except OSError as exc:  # read-only data folder: fine, just slower next time
            log.warning("cannot cache the hierarchy at %s (%s)", path, exc)
    return h


def subsample_dataset(ds: Dataset, max_samples: int) -> Dataset:
    """At most ``max_samples`` items, evenly spread over ``ds`` (deterministic); 0 = all."""
    n = len(ds)
    if not max_samples or max_samples >= n:
        return ds
    idx = np.unique(np.round(np.linspace(0, n - 1, max_samples)).astype(np.int64))
    return Subset(ds, idx.tolist())


def build_dataset(cfg: Config, split: str, hierarchy=None, body_path: Optional[Path] = None) -> Dataset:
    """One split (``"train"`` or ``"test"``) of the configured data set, sample caps applied."""
    d = cfg.DATASET
    root = cfg.data_root()
    subjects = list(d.train_subjects if split == "train" else d.test_subjects)
    subsample = d.train_subsample if split == "train" else d.test_subsample
    caches = cache_dir(cfg)
    if d.format == "h36m":
        ds = _call_with_supported(
            Human36M, root, split=split, subjects=subjects, subsample=subsample, hierarchy=hierarchy,
            mesh_levels=tuple(cfg.MODEL.mesh_levels), body_model_path=body_path if hierarchy is not None else None,
            cache_dir=caches)
    else:
        ds = _call_with_supported(VideoPose3D, root / d.npz_3d, root / d.npz_2d, split=split, subjects=subjects,
                                  subsample=subsample, cache_dir=caches)
    if d.format == "h36m" and (d.input_joint_set != "h36m" or not d.use_gt_input):
        ds = with_input_2d(ds, root, d.input_joint_set, None if d.use_gt_input else root / d.npz_2d)
    cap = cfg.TRAIN.max_train_samples if split == "train" else cfg.TEST.max_samples
    ds = subsample_dataset(ds, cap)
    if len(ds) == 0:
        raise DataError(f"{root}: the {split} split is empty (subjects {subjects}, subsample {subsample})")
    return ds


def build_datasets(cfg: Config, hierarchy=None, body_path: Optional[Path] = None) -> Tuple[Dataset, Dataset]:
    """``(train, test)`` data sets."""
    return (build_dataset(cfg, "train", hierarchy, body_path), build_dataset(cfg, "test", hierarchy, body_path))


def _joint_weights(cfg: Config, body):
    """Vertex→joint weights ``[J, V]`` for ``fusion: pool`` (the body model's joint regressor)."""
    reg = getattr(body, "h36m_regressor", None)
    if reg is None:
        raise ConfigError(f"{cfg.source}: MODEL.fusion: 'pool' needs a body model with a joint regressor")
    return reg


def build_model(cfg: Config, hierarchy, body=None) -> torch.nn.Module:
    """An :class:`hgn_pyg.models.HGN` as ``MODEL`` describes it (:func:`hgn_pyg.models.build_hgn`)."""
    reg = _joint_weights(cfg, body if body is not None else load_body(cfg)) if cfg.MODEL.fusion == "pool" else None
    return build_hgn(model_section(cfg), hierarchy, joint_regressor=reg)


def model_section(cfg: Config) -> Dict[str, Any]:
    """``MODEL`` as a dict, plus ``input_nodes`` (a learned input node map) when the input keypoints
    are another joint set than the skeleton's (``DATASET.input_joint_set``)."""
    section = dataclasses.asdict(cfg.MODEL)
    if cfg.DATASET.input_joint_set != "h36m":
        section["input_nodes"] = SKELETONS[cfg.DATASET.input_joint_set].num_joints
    return section


def model_record(cfg: Config, hierarchy, body=None) -> Dict[str, Any]:
    """The inference record a checkpoint of this configuration carries
    (:func:`hgn_pyg.models.checkpoint.inference_record`: graphs, coarse-mesh faces, conventions)."""
    body = body if body is not None else load_body(cfg)
    reg = getattr(body, "h36m_regressor", None) if cfg.MODEL.fusion == "pool" else None
    return inference_record(model_section(cfg), hierarchy, faces=np.asarray(body.faces, dtype=np.int64),
                            joint_regressor=reg, input_format=INPUT_FORMATS[cfg.DATASET.input_joint_set],
                            symmetric_bones=cfg.TEST.symmetric_bones, flip_test=cfg.TEST.flip_test)


def test_options(cfg: Config) -> Dict[str, Any]:
    """The keyword arguments of :func:`hgn_pyg.engine.evaluator.evaluate` that ``TEST`` sets:
    ``symmetric_bones`` and, with ``TEST.flip_test``, ``flip_pairs`` (the left/right pairs of the
    input keypoints and of the predicted joints)."""
    pairs = None
    if cfg.TEST.flip_test:
        pairs = (SKELETONS[cfg.DATASET.input_joint_set].flip_pairs, SKELETONS[cfg.DATASET.target_joint_set].flip_pairs)
    return {"symmetric_bones": cfg.TEST.symmetric_bones, "flip_pairs": pairs}


def build_loss(cfg: Config, hierarchy):
    """The docs/published_model.md §4 loss reading predictions at the hierarchy's real slots."""
    js = SKELETONS[cfg.DATASET.target_joint_set]
    return HGNLoss.from_hierarchy(hierarchy, cfg.MODEL.mesh_levels, joint_weight=cfg.TRAIN.joint_loss_weight,
                                  mesh_weights=cfg.TRAIN.mesh_loss_weights,
                                  symmetry_weight=cfg.TRAIN.symmetry_loss_weight, parents=js.parents,
                                  flip_pairs=js.flip_pairs)


def model_from_checkpoint(ckpt: Dict[str, Any], cfg: Config, hierarchy, body=None, path: str = "checkpoint"):
    """A model with the weights of ``ckpt`` (:func:`hgn_pyg.models.load_model`): ours
    (with its stored graphs and MODEL section when it has them, else ``hierarchy``) or the
    published layout (``model_state_dict``, through :meth:`hgn_pyg.models.HGN.from_official` with
    ``cfg.MODEL``'s levels and kernel options). Raises :class:`CheckpointError` naming the
    mismatching keys and shapes."""
    reg = None
    if cfg.MODEL.fusion == "pool" and "joint_regressor" not in ckpt:
        reg = _joint_weights(cfg, body if body is not None else load_body(cfg))
    model, _ = load_model(ckpt, hierarchy=hierarchy, joint_regressor=reg, source=path, model_section=cfg.MODEL)
    return model.train()


def load_state(model: torch.nn.Module, state: Dict[str, Tensor], path: str) -> None:
    """:func:`hgn_pyg.models.checkpoint.load_model_state` (every key and shape checked first)."""
    load_model_state(model, state, path)


@dataclass
class Batch:
    """A collated batch: ``input_2d [B, J, 2]``, ``joints_3d [B, J, 3]``, ``meshes`` (tuple of
    ``[B, V_k, 3]`` or ``None``), ``action [B]``, ``subject [B]``, ``score_2d [B, J]`` (``None``:
    every input keypoint certain)."""

    input_2d: Tensor
    joints_3d: Tensor
    meshes: Optional[Tuple[Tensor, ...]]
    action: Tensor
    subject: Tensor
    score_2d: Optional[Tensor] = None

    def to(self, device, non_blocking: bool = False) -> "Batch":
        mv = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return Batch(mv(self.input_2d), mv(self.joints_3d),
                     tuple(mv(m) for m in self.meshes) if self.meshes is not None else None,
                     self.action, self.subject,
                     mv(self.score_2d) if self.score_2d is not None else None)

    def __len__(self) -> int:
        return int(self.input_2d.shape[0])


def collate(items: Sequence[Dict[str, Any]]) -> Batch:
    """Stack data-set items (dicts with the keys of the published loaders) into a :class:`Batch`.

    Mesh targets are kept only when every item has them.
    """
    def stack(key):
        return torch.stack([torch.as_tensor(it[key], dtype=torch.float32) for it in items])

    meshes = None
    ms = [it.get("meshes") for it in items]
    if all(m is not None and len(m) > 0 for m in ms):
        meshes = tuple(torch.stack([torch.as_tensor(m[k], dtype=torch.float32) for m in ms])
                       for k in range(len(ms[0])))
    action = torch.tensor([int(it.get("action", -1)) for it in items], dtype=torch.long)
    subject = torch.tensor([int(it.get("subject", -1)) for it in items], dtype=torch.long)
    score = stack("score_2d") if all(it.get("score_2d") is not None for it in items) else None
    return Batch(stack("input_2d"), stack("joints_3d"), meshes, action, subject, score)


def train_mean_pose(ds: Dataset, batch_size: int = 1024) -> Tensor:
    """Mean of the training set's root-relative 3D joints ``[J, 3]`` (the mean-pose baseline)."""
    total, count = None, 0
    for b in DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate):
        j = b.joints_3d.double()
        j = j - j[:, :1]
        s = j.sum(0)
        total = s if total is None else total + s
        count += j.shape[0]
    if not count:
        raise DataError("the training set is empty: no mean pose")
    return (total / count).float()
