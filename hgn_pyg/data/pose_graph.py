r"""The pose data as a PyTorch Geometric data set: one skeleton graph per sample.

:class:`PoseGraphDataset` is a :class:`~torch_geometric.data.InMemoryDataset` over the samples
that :class:`~hgn_pyg.data.Human36M` (Pose2Mesh JSON layout: real Human3.6M or the synthetic
set) or :class:`~hgn_pyg.data.VideoPose3D` (``.npz`` layout) read, so a plain
:class:`torch_geometric.loader.DataLoader` batches them like any other PyG graphs.

Each sample is a :class:`~torch_geometric.data.Data` with

* ``x`` ``[17, 2]`` — the normalised 2D joints (the network input of HGN);
* ``y`` ``[17, 3]`` — camera-frame 3D joints relative to the pelvis, metres (HGN's target);
* ``edge_index`` ``[2, 49]`` and ``edge_type`` ``[49]`` — the skeleton template of
  :func:`skeleton_template`: the 16 bones in both directions and one self loop per joint, sorted
  by (target, source) — the order in which :class:`~hgn_pyg.models.HGN` builds its skeleton
  layers (the nonzeros of the published ``A + I``, row by row) — and
  ``edge_type = arange(49)``: edge ``i`` has type ``i``, the column of that edge in the template;
* ``joint`` ``[17]`` — the Human3.6M joint index of each node (``arange(17)`` until a transform
  such as :class:`RandomJointDropout` removes joints);
* ``subject`` ``[1]`` and ``action`` ``[1]`` (action 0..14, :data:`~hgn_pyg.data.ACTIONS`).

The ``edge_type`` convention is what lets one set of learnable edge weights serve a batch of
different graphs: a :class:`~hgn_pyg.nn.SemGraphConv` built on the template
(``SemGraphConv(C, C', t.edge_index, t.num_nodes)``) gives template column ``i`` the logit ``i``,
and the typed layer (``SemGraphConv(C, C', num_edge_types=t.num_edges)`` called with
``edge_type``) gives every edge the logit of its type, so both read the same weights, also on
skeletons with joints removed, whose remaining edges keep their types.

**The processed cache.** The samples are stored once under ``cache_dir`` (default
``root/processed``) in a file whose name carries a key: a hash of the input files' fingerprints
(size, modification time, content hash), the split, subjects, subsampling, template and
``pre_transform``. A changed input gives another file; an unreadable, foreign or inconsistent file
is logged and rebuilt, never an error. The file is written atomically
(:func:`hgn_pyg.data.cache.save_tensors` through :mod:`hgn_pyg.io`) and holds tensors only; it
is read with ``torch.load(weights_only=True)`` and nothing else, so no file under ``root`` can
execute code. That is why this class does its processing in its constructor rather than through
PyG's ``process()``/``load()``: PyG 2.8 reads ``processed/pre_transform.pt`` with
``torch.load(weights_only=False)`` before ``process()``, and its ``fs.torch_load`` retries a
refused file with ``weights_only=False``; either would run pickled code from a crafted file.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset
from torch_geometric.transforms import BaseTransform
from torch_geometric.utils import subgraph

from ..errors import DataError
from ..graphs import skeleton_edges, skeleton_graph
from . import cache as _cache
from .human36m import DEFAULT_SKIP, DEFAULT_SUBSAMPLE, NUM_JOINTS, PROTOCOL_SUBJECTS, Human36M, annotation_path
from .videopose3d import VideoPose3D

log = logging.getLogger(__name__)

__all__ = ["FORMATS", "PoseGraphDataset", "RandomJointDropout", "skeleton_template"]

PathLike = Union[str, os.PathLike]

#: Input layouts: ``"h36m"`` (Pose2Mesh-style ``root/annotations/*.json``, real or synthetic),
#: ``"videopose3d"`` (``root/data_3d_h36m.npz`` + ``root/data_2d_h36m_gt.npz``).
FORMATS: Tuple[str, ...] = ("h36m", "videopose3d")
#: Bumped whenever the stored layout or the meaning of a field changes (gives new cache keys).
PROCESSED_VERSION = 1
_NODE_KEYS = ("x", "y", "joint")


def skeleton_template(name: str = "h36m") -> Data:
    """The skeleton graph every sample carries: ``edge_index [2, E]`` (bones in both directions
    and one self loop per joint, in :class:`~hgn_pyg.models.HGN`'s own order, which it takes
    from the model), ``edge_type = arange(E)`` and ``num_nodes``. Human3.6M: 17 joints, E = 49."""
    edge_index, num_nodes = skeleton_edges(skeleton_graph(name))
    edge_index = edge_index.contiguous()
    return Data(edge_index=edge_index, edge_type=torch.arange(edge_index.size(1)),
                num_nodes=num_nodes)


class PoseGraphDataset(InMemoryDataset):
    r"""Human3.6M-layout pose data (real or synthetic) as PyG graphs, one per sample.

    Args:
        root: the data root: holds ``annotations/Human36M_subject{S}_*.json`` (``format="h36m"``,
            e.g. the folder written by ``python -m hgn_pyg.data.synthetic --out DIR``) or the
            VideoPose3D ``.npz`` files (``format="videopose3d"``).
        split: ``"train"`` or ``"test"``.
        format: one of :data:`FORMATS`. (default: ``"h36m"``)
        subjects: subject numbers (default: from ``protocol``, as the readers).
        subsample: keep every ``subsample``-th frame (default 5 for train, 50 for test).
        protocol: 1 or 2, see :class:`~hgn_pyg.data.Human36M`. (default: ``2``)
        npz_3d, npz_2d: the VideoPose3D file names inside ``root``.
        cache_dir: where the processed file goes (default: ``root/processed``).
        transform: applied to each sample on access (e.g. :class:`RandomJointDropout`).
        pre_transform: applied to each sample once, before caching; its ``repr`` is part of the
            cache key.
        force_reload: rebuild the processed file even when a valid one exists.
        use_cache: read and write the processed file (``False``: build in memory only).

    The samples are the readers' samples (same filters and order), so the training and test
    splits are exactly those of ``hgn_pyg.train`` with the same subjects and subsampling. Fields
    of each sample: see :mod:`hgn_pyg.data.pose_graph`.

    Raises:
        DataError: a missing or malformed input file, named with its key (from the readers), or
            a bad argument.
    """

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        *,
        format: str = "h36m",
        subjects: Optional[Iterable[Union[int, str]]] = None,
        subsample: Optional[int] = None,
        protocol: int = 2,
        npz_3d: str = "data_3d_h36m.npz",
        npz_2d: str = "data_2d_h36m_gt.npz",
        cache_dir: Optional[PathLike] = None,
        transform: Optional[Callable[[Data], Data]] = None,
        pre_transform: Optional[Callable[[Data], Data]] = None,
        force_reload: bool = False,
        use_cache: bool = True,
    ) -> None:
        if format not in FORMATS:
            raise DataError(f"PoseGraphDataset: format must be one of {FORMATS}, got {format!r}")
        if split not in ("train", "test"):
            raise DataError(f"PoseGraphDataset: split must be 'train' or 'test', got {split!r}")
        if protocol not in PROTOCOL_SUBJECTS:
            raise DataError(f"PoseGraphDataset: protocol must be one of {sorted(PROTOCOL_SUBJECTS)}, "
                            f"got {protocol!r}")
        self.split = split
        self.format = format
        self.subjects: Tuple[Union[int, str], ...] = tuple(
            PROTOCOL_SUBJECTS[protocol][split] if subjects is None else subjects)
        self.subsample = int(DEFAULT_SUBSAMPLE[split] if subsample is None else subsample)
        if self.subsample < 1:
            raise DataError(f"PoseGraphDataset: subsample must be >= 1, got {subsample!r}")
        self.protocol = int(protocol)
        self.npz_3d, self.npz_2d = npz_3d, npz_2d
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        # No process()/download() methods on purpose (module docstring): PyG's base class then
        # touches no file, and the processing below reads and writes only our own cache format.
        super().__init__(str(root), transform=transform, pre_transform=pre_transform,
                         pre_filter=None, log=False, force_reload=force_reload)
        self.template = skeleton_template()
        self.cache_path: Optional[Path] = None
        self.cache_hit = False

        files = self.input_files()
        stored: Optional[Dict[str, Tensor]] = None
        key = None
        if use_cache:
            key = self._cache_key(files)
            self.cache_path = self.processed_dir_path / self._file_name(key)
            if not force_reload:
                loaded = _cache.load_tensors(self.cache_path, key)
                if loaded is not None:
                    stored = loaded["tensors"]
                    if not self._restore(stored):
                        log.warning("ignoring processed file %s: its tensors are inconsistent",
                                    self.cache_path)
                        stored = None
                    else:
                        self.cache_hit = True
                        log.info("PoseGraphDataset %s: %d graphs from %s", split, len(self),
                                 self.cache_path)
        if stored is None:
            self.data, self.slices = self._build()
            if use_cache:
                try:
                    _cache.save_tensors(self.cache_path, self._flatten(), key,
                                        meta={"split": split, "format": format,
                                              "subjects": [str(s) for s in self.subjects]})
                except OSError as exc:
                    log.warning("could not write the processed file %s (%s); continuing without",
                                self.cache_path, exc)

    # -- where things are ----------------------------------------------------------------------
    @property
    def raw_dir(self) -> str:
        return str(Path(self.root) / "annotations") if self.format == "h36m" else str(self.root)

    @property
    def raw_file_names(self) -> Sequence[str]:
        return [p.name for p in self.input_files()]

    @property
    def processed_dir(self) -> str:
        return str(self._cache_dir if self._cache_dir is not None else Path(self.root) / "processed")

    @property
    def processed_dir_path(self) -> Path:
        return Path(self.processed_dir)

    @property
    def processed_file_names(self) -> Sequence[str]:
        return [self.cache_path.name] if self.cache_path is not None else []

    def input_files(self) -> Tuple[Path, ...]:
        """The files the samples are read from (their fingerprints key the cache)."""
        root = Path(self.root)
        if self.format == "videopose3d":
            return (root / self.npz_3d, root / self.npz_2d)
        kinds = ("data", "camera", "joint_3d", "smpl_param")
        return tuple(annotation_path(root, int(s), k) for s in self.subjects for k in kinds)

    def _file_name(self, key: str) -> str:
        subj = "-".join(str(s) for s in self.subjects)
        return f"pose_graph_{self.format}_{self.split}_S{subj}_{key[:16]}.pt"

    # -- building ------------------------------------------------------------------------------
    def _cache_key(self, files: Sequence[Path]) -> str:
        parts: Dict[str, Any] = {
            "dataset": "PoseGraphDataset",
            "version": PROCESSED_VERSION,
            "format": self.format,
            "split": self.split,
            "subjects": [str(s) for s in self.subjects],
            "subsample": self.subsample,
            "skip": [list(s) for s in DEFAULT_SKIP] if self.format == "h36m" else [],
            "template": _cache.array_digest([self.template.edge_index]),
            "pre_transform": repr(self.pre_transform),
        }
        if self.format == "h36m" and not (Path(self.root) / "annotations").is_dir():
            raise DataError(f"{self.root}: data root not found (expected a folder 'annotations' "
                            f"with Human36M_subject*_*.json)")
        for path in files:
            if not path.is_file():
                raise DataError(f"{path}: file not found (subjects {[str(s) for s in self.subjects]} "
                                f"are in the {self.split!r} split)")
        parts["files"] = {p.name: _cache.file_fingerprint(p) for p in files}
        return _cache.cache_key(parts)

    def _reader(self):
        if self.format == "videopose3d":
            root = Path(self.root)
            return VideoPose3D(root / self.npz_3d, root / self.npz_2d, split=self.split,
                               subjects=self.subjects, subsample=self.subsample)
        return Human36M(self.root, split=self.split, subjects=[int(s) for s in self.subjects],
                        subsample=self.subsample, use_cache=False)

    def _build(self) -> Tuple[Data, Dict[str, Tensor]]:
        """``(data, slices)``, InMemoryDataset's storage of all samples."""
        t = self.reader_tensors()
        x, y, subject, action = t["input_2d"], t["joints_3d"], t["subject"], t["action"]
        if x.shape[1:] != (NUM_JOINTS, 2) or y.shape[1:] != (NUM_JOINTS, 3):
            raise DataError(f"{self.root}: expected {NUM_JOINTS} joints, got inputs "
                            f"{tuple(x.shape)} and targets {tuple(y.shape)}")
        if self.pre_transform is None:
            return self._stack(x, y, subject, action)
        data, slices = self.collate([self.pre_transform(d) for d in self._samples(x, y, subject, action)])
        if slices is None:  # PyG gives no slices for a one-sample list
            slices = {k: torch.tensor([0, v.size(data.__cat_dim__(k, v))])
                      for k, v in data.to_dict().items()}
        return data, slices

    def _samples(self, x: Tensor, y: Tensor, subject: Tensor, action: Tensor):
        edge_index, edge_type = self.template.edge_index, self.template.edge_type
        joint = torch.arange(NUM_JOINTS)
        for i in range(x.size(0)):
            yield Data(x=x[i], y=y[i], edge_index=edge_index, edge_type=edge_type, joint=joint,
                       subject=subject[i:i + 1], action=action[i:i + 1])

    def _stack(self, x: Tensor, y: Tensor, subject: Tensor,
               action: Tensor) -> Tuple[Data, Dict[str, Tensor]]:
        """What :meth:`collate` makes of :meth:`_samples`, built directly: every sample has the
        template's topology, so the slices are arithmetic (no Data object per sample; real
        Human3.6M has 300k training samples)."""
        n, j = x.size(0), NUM_JOINTS
        edge_index, edge_type = self.template.edge_index, self.template.edge_type
        e = edge_index.size(1)
        node, edge, graph = (torch.arange(0, n * k + 1, k) for k in (j, e, 1))
        data = Data(x=x.reshape(n * j, 2), edge_index=edge_index.repeat(1, n), y=y.reshape(n * j, 3),
                    edge_type=edge_type.repeat(n), joint=torch.arange(j).repeat(n),
                    subject=subject.clone(), action=action.clone())
        slices = {"x": node, "edge_index": edge, "y": node, "edge_type": edge, "joint": node,
                  "subject": graph, "action": graph}
        return data, slices

    def reader_tensors(self) -> Dict[str, Tensor]:
        """The reader's tensors (``input_2d [N, 17, 2]``, ``joints_3d [N, 17, 3]``, ``subject``,
        ``action``, ...): :meth:`~hgn_pyg.data.PoseDataset.tensors` of a fresh read."""
        return self._reader().tensors()

    # -- the processed file --------------------------------------------------------------------
    def _flatten(self) -> Dict[str, Tensor]:
        out = {f"data.{k}": v for k, v in self._data.to_dict().items() if isinstance(v, Tensor)}
        out.update({f"slices.{k}": v for k, v in self.slices.items()})
        return out

    def _restore(self, tensors: Dict[str, Tensor]) -> bool:
        """Set ``data``/``slices`` from a loaded file; ``False`` when they do not fit together."""
        data = {k[5:]: v for k, v in tensors.items() if k.startswith("data.")}
        slices = {k[7:]: v for k, v in tensors.items() if k.startswith("slices.")}
        need = {"x", "y", "edge_index", "edge_type", "joint", "subject", "action"}
        if not need <= set(data) or set(data) != set(slices):
            return False
        n = None
        for k, s in slices.items():
            if s.dim() != 1 or s.dtype != torch.long or s.numel() < 2 or s[0] != 0:
                return False
            if n is None:
                n = s.numel()
            if s.numel() != n or bool((s[1:] < s[:-1]).any()):
                return False
            dim = -1 if k == "edge_index" else 0
            if data[k].dim() == 0 or int(s[-1]) != data[k].size(dim):
                return False
        nodes = slices["x"].diff()
        ei = data["edge_index"]
        if ei.dim() != 2 or ei.size(0) != 2 or ei.dtype != torch.long:
            return False
        # every graph's edges point at its own nodes
        counts = slices["edge_index"].diff()
        owner = torch.repeat_interleave(nodes, counts)
        if ei.numel() and (bool((ei < 0).any()) or bool((ei >= owner).any())):
            return False
        self.data = Data.from_dict(data)
        self.slices = slices
        return True


class RandomJointDropout(BaseTransform):
    r"""Remove each joint with probability ``p`` (the induced subgraph): a batch of such samples
    mixes skeleton topologies.

    The remaining edges keep their ``edge_type`` (:func:`torch_geometric.utils.subgraph` with
    ``edge_attr=edge_type``), so a typed :class:`~hgn_pyg.nn.SemGraphConv` still gives each bone
    its own learnt weight. Node-level fields ``x``, ``y`` and ``joint`` are subset alike; ``joint``
    tells which Human3.6M joints remain. (A fixed-topology model such as HGN keeps all 17 nodes
    and fills missing joints instead: :func:`hgn_pyg.data.keypoints.apply_missing_policy`.)

    Args:
        p: drop probability per joint, in ``[0, 1)``. (default: ``0.2``)
        keep: joints never dropped. (default: ``(0,)``, the pelvis, the origin of ``y``)
        generator: a :class:`torch.Generator` for reproducible drops (default: torch's global).
    """

    def __init__(self, p: float = 0.2, keep: Sequence[int] = (0,),
                 generator: Optional[torch.Generator] = None) -> None:
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"RandomJointDropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.keep = tuple(int(k) for k in keep)
        self.generator = generator

    def forward(self, data: Data) -> Data:
        n = int(data.num_nodes)
        mask = torch.rand(n, generator=self.generator) >= self.p
        if self.keep:
            mask[torch.as_tensor(self.keep, dtype=torch.long)] = True
        if not bool(mask.any()):
            mask[0] = True
        edge_index, edge_type = subgraph(mask, data.edge_index, edge_attr=data.edge_type,
                                         relabel_nodes=True, num_nodes=n)
        out = data.clone()
        out.edge_index, out.edge_type = edge_index, edge_type
        out.num_nodes = int(mask.sum())  # an explicit num_nodes must follow the subset
        for key in _NODE_KEYS:
            if key in out:
                out[key] = out[key][mask]
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p}, keep={self.keep})"
