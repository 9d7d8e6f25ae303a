"""hgn_pyg.data: body model, Human3.6M loaders (Pose2Mesh JSON and VideoPose3D npz layouts),
the synthetic data set generator, camera geometry, the target cache and the PyG graph view
(:class:`PoseGraphDataset`)."""
from .augment import DetectorNoise, KeypointAugmentation, drop_keypoints
from .body_model import BodyModel, build_open_body_model, default_body_model_path, load_body_model
from .cache import cache_key, file_fingerprint, load_tensors, save_tensors
from .camera import (
    camera_to_world,
    normalize_pixels,
    project,
    quaternion_to_matrix,
    world_to_camera,
    world_to_camera_quat,
)
from .human36m import DEFAULT_SKIP, PROTOCOL_SUBJECTS, Human36M
from .input_2d import read_track_2d, with_input_2d
from .pose_dataset import ACTIONS, PoseDataset
from .pose_graph import PoseGraphDataset, RandomJointDropout, skeleton_template
from .videopose3d import H36M32_TO_17, H36M_CAMERAS, VideoPose3D, h36m_cameras

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
    "normalize_pixels",
    "quaternion_to_matrix",
    "world_to_camera_quat",
    "cache_key",
    "file_fingerprint",
    "load_tensors",
    "save_tensors",
]
