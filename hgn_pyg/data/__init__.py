"""hgn_pyg.data: body model, Human3.6M loaders (Pose2Mesh JSON and VideoPose3D npz layouts),
the Human3.6M camera calibration (:mod:`.h36m_calibration`), the synthetic data set generator
(:mod:`.synthetic`, its motions :mod:`.motions`), camera geometry, the target cache and the PyG
graph view (:class:`PoseGraphDataset`)."""
from .augment import DetectorNoise, KeypointAugmentation, drop_keypoints
from .body_model import BodyModel, build_open_body_model, default_body_model_path, load_body_model
from .cache import cache_key, file_fingerprint, load_tensors, save_tensors
from .camera import (
    camera_to_world,
    normalize_screen_coordinates,
    project,
    quaternion_to_matrix,
    world_to_camera,
    world_to_camera_quat,
)
from .human36m import DEFAULT_SKIP, PROTOCOL_SUBJECTS, Human36M
from .input_2d import read_track_2d, with_input_2d
from .pose_dataset import ACTIONS, PoseDataset
from .pose_graph import PoseGraphDataset, RandomJointDropout, skeleton_template
from .h36m_calibration import H36M_CAMERAS, h36m_cameras
from .videopose3d import H36M32_TO_17, VideoPose3D

__all__ = [
    "DetectorNoise",
    "KeypointAugmentation",
    "drop_keypoints",
    "read_track_2d",
    "with_input_2d",
    "ACTIONS",
    "DEFAULT_SKIP",
    "PROTOCOL_SUBJECTS",
    "Human36M",
    "PoseDataset",
    "PoseGraphDataset",
    "RandomJointDropout",
    "skeleton_template",
    "VideoPose3D",
    "H36M32_TO_17",
    "H36M_CAMERAS",
    "h36m_cameras",
    "BodyModel",
    "build_open_body_model",
    "default_body_model_path",
    "load_body_model",
    "world_to_camera",
    "camera_to_world",
    "project",
    "normalize_screen_coordinates",
    "quaternion_to_matrix",
    "world_to_camera_quat",
    "cache_key",
    "file_fingerprint",
    "load_tensors",
    "save_tensors",
]
