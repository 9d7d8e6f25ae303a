"""Inference: 2D keypoints in, 3D joints out, from a checkpoint alone. Never imports the trainer.

* :class:`Lifter` / :class:`LiftResult` -- a model and its conventions from a checkpoint
  (:mod:`hgn_pyg.inference.lifter`).
* :func:`read_keypoints` -- 2D keypoint files (H36M/COCO arrays, COCO and MMPose JSON, VideoPose3D
  npz; :mod:`hgn_pyg.inference.keypoint_files`).
* :func:`render_gif` / :func:`render_contact_sheet` -- pictures of the 2D input beside the 3D skeleton.
* The keypoint conventions (COCO-17 -> H36M-17, the missing-keypoint policy) that training uses as
  well live in :mod:`hgn_pyg.data.keypoints` and are re-exported here.
"""
from hgn_pyg.data.keypoints import DEFAULT_MIN_SCORE, KEYPOINT_FORMATS, apply_missing_policy, to_h36m

from .keypoint_files import FILE_FORMATS, KeypointFile, KeypointTrack, detect_format, read_keypoints
from .lifter import Lifter, LiftResult
from .render import render_contact_sheet, render_gif

__all__ = [
    "Lifter",
    "LiftResult",
    "read_keypoints",
    "detect_format",
    "KeypointFile",
    "KeypointTrack",
    "FILE_FORMATS",
    "KEYPOINT_FORMATS",
    "DEFAULT_MIN_SCORE",
    "apply_missing_policy",
    "to_h36m",
    "render_gif",
    "render_contact_sheet",
]
