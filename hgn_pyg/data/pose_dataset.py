"""The pose data set base: contiguous tensors, an item by pure indexing, batches by one gather."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .actions import ACTIONS

__all__ = ["ACTIONS", "ROOT_JOINT", "NUM_JOINTS", "PoseDataset"]

#: Pelvis index of the 17-joint Human3.6M skeleton.
ROOT_JOINT = 0
NUM_JOINTS = 17


class PoseDataset(Dataset):
    r"""A pose data set held as contiguous tensors; an item is pure indexing.

    Item (``dataset[i]``), a dict:

    * ``input_2d`` ``[17, 2]`` float32 — normalised 2D joints;
    * ``joints_3d`` ``[17, 3]`` float32 — camera-frame joints relative to the pelvis, metres;
    * ``meshes`` — tuple of ``[num_real[level], 3]`` float32, one per mesh level (metres,
      relative to the ground-truth pelvis, original cluster order); *absent* when the data set
      has no mesh targets (so that torch's ``default_collate`` works either way);
    * ``action`` (int 0..14, :data:`ACTIONS`), ``subject`` (int);
    * ``score_2d`` ``[17]`` float32 — the confidence of each input keypoint (0 = missing, filled
      by the policy of :mod:`hgn_pyg.data.keypoints`); *absent* when the data set has none
      (ground-truth input: every keypoint certain), see :mod:`hgn_pyg.data.input_2d`.

    ``dataset[indices]`` with a list / LongTensor of indices returns the batched dict (the same
    keys with a leading batch dimension, ``action``/``subject`` as LongTensors) in one gather.
    ``__getitems__`` (used by DataLoader's batching) returns per-sample dicts made from one
    batched gather; the training and test loaders stack them with
    :func:`hgn_pyg.engine.build.collate` (:func:`hgn_pyg.engine.evaluator.make_loader`), and the
    training mean pose is :func:`hgn_pyg.engine.build.train_mean_pose`.
    """

    #: Tensor names every subclass stores (``meshes_<k>`` are added per mesh level).
    _REQUIRED = ("input_2d", "joints_3d", "action", "subject")

    def __init__(self, tensors: Mapping[str, torch.Tensor], mesh_levels: Sequence[int] = ()):
        super().__init__()
        missing = [k for k in self._REQUIRED if k not in tensors]
        if missing:
            raise DataError(f"{type(self).__name__}: internal tensors missing {missing}")
        self._tensors: Dict[str, torch.Tensor] = dict(tensors)
        self.mesh_levels: Tuple[int, ...] = tuple(int(level) for level in mesh_levels)
        self._input = self._tensors["input_2d"]
        self._joints = self._tensors["joints_3d"]
        self._meshes: Tuple[torch.Tensor, ...] = tuple(
            self._tensors[f"meshes_{k}"] for k in range(len(self.mesh_levels)))
        self._score: Optional[torch.Tensor] = self._tensors.get("score_2d")
        self._action_t = self._tensors["action"]
        self._subject_t = self._tensors["subject"]
        self._action: List[int] = self._action_t.tolist()
        self._subject: List[int] = self._subject_t.tolist()

    # -- size and items ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._action)

    @property
    def has_meshes(self) -> bool:
        """Whether items carry mesh targets."""
        return len(self._meshes) > 0

    @property
    def num_joints(self) -> int:
        return int(self._joints.shape[1])

    def __getitem__(self, index: Any) -> Dict[str, Any]:
        if isinstance(index, (int, np.integer)):
            item = {
                "input_2d": self._input[index],
                "joints_3d": self._joints[index],
                "action": self._action[index],
                "subject": self._subject[index],
            }
            if self._meshes:
                item["meshes"] = tuple(m[index] for m in self._meshes)
            if self._score is not None:
                item["score_2d"] = self._score[index]
            return item
        return self.batch(index)

    def batch(self, indices: Any) -> Dict[str, Any]:
        """The batched dict for ``indices`` (list, range, NumPy array or LongTensor)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        out = {
            "input_2d": self._input.index_select(0, idx),
            "joints_3d": self._joints.index_select(0, idx),
            "action": self._action_t.index_select(0, idx),
            "subject": self._subject_t.index_select(0, idx),
        }
        if self._meshes:
            out["meshes"] = tuple(m.index_select(0, idx) for m in self._meshes)
        if self._score is not None:
            out["score_2d"] = self._score.index_select(0, idx)
        return out

    def __getitems__(self, indices: Sequence[int]) -> List[Dict[str, Any]]:
        b = self.batch(indices)
        n = len(b["action"])
        cols = [b["input_2d"].unbind(0), b["joints_3d"].unbind(0), b["action"].tolist(),
                b["subject"].tolist()]
        items = [{"input_2d": cols[0][k], "joints_3d": cols[1][k], "action": cols[2][k],
                  "subject": cols[3][k]} for k in range(n)]
        if self._meshes:
            per_level = [m.unbind(0) for m in b["meshes"]]
            for k in range(n):
                items[k]["meshes"] = tuple(level[k] for level in per_level)
        if self._score is not None:
            for k, row in enumerate(b["score_2d"].unbind(0)):
                items[k]["score_2d"] = row
        return items

    # -- whole-data access ---------------------------------------------------------------------
    def tensors(self) -> Dict[str, torch.Tensor]:
        """All stored tensors by name (shared storage, not copies): ``input_2d [N,17,2]``,
        ``joints_3d [N,17,3]``, ``meshes_<k> [N,R_k,3]``, ``action [N]``, ``subject [N]`` and
        per-subclass extras (Human36M: ``frame_info [N,5]`` = subject, action_idx,
        subaction_idx, frame_idx, cam_idx; ``root_3d [N,3]`` camera-frame pelvis in metres;
        ``focal [N,2]``, ``center [N,2]``, ``image_size [N,2]`` (w, h) in pixels)."""
        return dict(self._tensors)

    def action_counts(self) -> Dict[str, int]:
        """Number of samples per action name."""
        counts = torch.bincount(self._action_t, minlength=len(ACTIONS)).tolist()
        return {name: int(c) for name, c in zip(ACTIONS, counts)}

