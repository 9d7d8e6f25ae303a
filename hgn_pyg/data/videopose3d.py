"""Human3.6M in the VideoPose3D ``.npz`` layout.

Files:

* ``data_3d_h36m.npz`` — ``positions_3d[subject][action]``: ``[frames, 32, 3]`` world joints in
  metres (the 32-joint Human3.6M mocap skeleton; a ``[frames, 17, 3]`` array is taken as already
  mapped);
* ``data_2d_h36m_gt.npz`` (or detections of the same layout, e.g. CPN) —
  ``positions_2d[subject][action]``: a list of ``[frames, 17, 2]`` pixel arrays, one per camera,
  and ``metadata`` (``num_joints`` … ).

Subject keys are ``"S1"`` …, action names carry sub-action suffixes (``"Walking 1"``) and a few
aliases (``"TakingPhoto"`` = Photo, ``"WalkingDog"`` = WalkDog); they map to :data:`ACTIONS`.
Sequences whose name starts with ``_`` (``_ALL``) are ignored.

Per frame and camera: the 17 joints ``[0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26,
27]`` of the 32 are taken into the camera, ``X_c = Rᵀ·(X_w − T)`` with ``R`` the camera's
orientation quaternion and ``T`` its position (the Human3.6M calibration, :data:`H36M_CAMERAS`);
targets are ``X_c − X_c[pelvis]`` (metres); inputs the 2D file's pixels normalised
``uv / w · 2 − (1, h / w)`` with the camera's resolution. When a 2D sequence is longer than the
3D one it is cut to the 3D length (detections often are); shorter is an error. No mesh targets.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..errors import DataError
from ..untrusted import load_npz
from .camera import normalize_pixels, quaternion_to_matrix, world_to_camera_quat
from .human36m import DEFAULT_SUBSAMPLE, protocol_subjects
from .actions import ACTIONS, parse_action
from .pose_dataset import PoseDataset
from .validate import as_array, data_error, first_bad_row, unwrap_object

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Indices of the 17 HGN joints (docs/published_model.md §1.1) in the 32-joint Human3.6M mocap skeleton.
H36M32_TO_17: Tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)

# Human3.6M camera calibration (public metadata distributed with the data set; physical
# constants). Intrinsics per camera slot 0..3 (the same four cameras for every subject):
# (id, resolution (w, h), focal (fx, fy) px, centre (cx, cy) px, radial k1..k3, tangential p1, p2).
_INTRINSICS = (
    ("54138969", (1000, 1002), (1145.0494384765625, 1143.7811279296875),
     (512.54150390625, 515.4514770507812),
     (-0.20709891617298126, 0.24777518212795258, -0.0030751503072679043),
     (-0.0009756988729350269, -0.00142447161488235)),
    ("55011271", (1000, 1000), (1149.6756591796875, 1147.5916748046875),
     (508.8486328125, 508.0649108886719),
     (-0.1942136287689209, 0.2404085397720337, 0.006819975562393665),
     (-0.0016190266469493508, -0.0027408944442868233)),
    ("58860488", (1000, 1000), (1149.1407470703125, 1148.7989501953125),
     (519.8158569335938, 501.40264892578125),
     (-0.2083381861448288, 0.25548800826072693, -0.0024604974314570427),
     (0.0014843869721516967, -0.0007599993259645998)),
    ("60457274", (1000, 1002), (1145.5113525390625, 1144.77392578125),
     (514.9682006835938, 501.88201904296875),
     (-0.198384091258049, 0.21832367777824402, -0.008947807364165783),
     (-0.0005872055771760643, -0.0018133620033040643)),
)
# Extrinsics per subject and camera slot: orientation quaternion (w, x, y, z) of the camera in the
# world, camera position in the world (mm).
_EXTRINSICS: Dict[str, Tuple[Tuple[Tuple[float, ...], Tuple[float, ...]], ...]] = {
    "S1": (
        ((0.1407056450843811, -0.1500701755285263, -0.755240797996521, 0.6223280429840088),
         (1841.1070556640625, 4955.28466796875, 1563.4454345703125)),
        ((0.6157187819480896, -0.764836311340332, -0.14833825826644897, 0.11794740706682205),
         (1761.278564453125, -5078.0068359375, 1606.2650146484375)),
        ((0.14651472866535187, -0.14647851884365082, 0.7653023600578308, -0.6094175577163696),
         (-1846.7777099609375, 5215.04638671875, 1491.972412109375)),
        ((0.5834008455276489, -0.7853162288665771, 0.14548823237419128, -0.14749594032764435),
         (-1794.7896728515625, -3722.698974609375, 1574.8927001953125)),
    ),
    "S5": (
        ((0.1467377245426178, -0.162370964884758, -0.7551892995834351, 0.6178938746452332),
         (2097.3916015625, 4880.94482421875, 1605.732421875)),
        ((0.6159758567810059, -0.7626792192459106, -0.15728192031383514, 0.1189815029501915),
         (2031.7008056640625, -5167.93310546875, 1612.923095703125)),
        ((0.14291371405124664, -0.12907841801643372, 0.7678384780883789, -0.6110143065452576),
         (-1620.5948486328125, 5171.65869140625, 1496.43701171875)),
        ((0.5920479893684387, -0.7814217805862427, 0.1274748593568802, -0.15036417543888092),
         (-1637.1737060546875, -3867.3173828125, 1547.033203125)),
    ),
    "S6": (
        ((0.1337897777557373, -0.15692396461963654, -0.7571090459823608, 0.6198879480361938),
         (1935.4517822265625, 4950.24560546875, 1618.0838623046875)),
        ((0.6147197484970093, -0.7628812789916992, -0.16174767911434174, 0.11819244921207428),
         (1969.803955078125, -5128.73876953125, 1632.77880859375)),
        ((0.1529948115348816, -0.13529130816459656, 0.7646096348762512, -0.6112781167030334),
         (-1769.596435546875, 5185.361328125, 1476.993408203125)),
        ((0.5916101336479187, -0.7804774045944214, 0.12832270562648773, -0.1561593860387802),
         (-1721.668701171875, -3884.13134765625, 1540.4879150390625)),
    ),
    "S7": (
        ((0.1435241848230362, -0.1631336808204651, -0.7548328638076782, 0.6188824772834778),
         (1974.512939453125, 4926.3544921875, 1597.8326416015625)),
        ((0.6141672730445862, -0.7638262510299683, -0.1596645563840866, 0.1177929937839508),
         (1937.0584716796875, -5119.7900390625, 1631.5665283203125)),
        ((0.14550060033798218, -0.12874816358089447, 0.7660516500473022, -0.6127139329910278),
         (-1741.8111572265625, 5208.24951171875, 1464.8245849609375)),
        ((0.5912848114967346, -0.7821764349937439, 0.12445473670959473, -0.15196487307548523),
         (-1734.7105712890625, -3832.42138671875, 1548.5830078125)),
    ),
    "S8": (
        ((0.14110587537288666, -0.15589867532253265, -0.7561917304992676, 0.619644045829773),
         (2150.65185546875, 4896.1611328125, 1611.9046630859375)),
        ((0.6169601678848267, -0.7647668123245239, -0.14846350252628326, 0.11158157885074615),
         (2219.965576171875, -5148.453125, 1613.0440673828125)),
        ((0.1471444070339203, -0.13377119600772858, 0.7670128345489502, -0.6100369691848755),
         (-1571.2215576171875, 5137.0185546875, 1498.1761474609375)),
        ((0.5927824378013611, -0.7825870513916016, 0.12147816270589828, -0.14631995558738708),
         (-1476.913330078125, -3896.7412109375, 1547.97216796875)),
    ),
    "S9": (
        ((0.15540587902069092, -0.15548215806484222, -0.7532095313072205, 0.6199594736099243),
         (2044.45849609375, 4935.1171875, 1481.2275390625)),
        ((0.618784487247467, -0.7634735107421875, -0.14132238924503326, 0.11933968216180801),
         (1990.959716796875, -5123.810546875, 1568.8048095703125)),
        ((0.13357827067375183, -0.1367100477218628, 0.7689454555511475, -0.6100738644599915),
         (-1670.9921875, 5211.98583984375, 1528.387939453125)),
        ((0.5879399180412292, -0.7823407053947449, 0.1427614390850067, -0.14794869720935822),
         (-1696.04345703125, -3827.099853515625, 1591.4127197265625)),
    ),
    "S11": (
        ((0.15232472121715546, -0.15442320704460144, -0.7547563314437866, 0.6191070079803467),
         (2098.440185546875, 4926.5546875, 1500.278564453125)),
        ((0.6189449429512024, -0.7600917220115662, -0.15300633013248444, 0.1255258321762085),
         (2083.182373046875, -4912.1728515625, 1561.07861328125)),
        ((0.14943228662014008, -0.15650227665901184, 0.7681233882904053, -0.6026304364204407),
         (-1609.8153076171875, 5177.3359375, 1537.896728515625)),
        ((0.5894251465797424, -0.7818877100944519, 0.13991211354732513, -0.14715361595153809),
         (-1590.738037109375, -3854.1689453125, 1578.017578125)),
    ),
}


def _camera_dict(intr: Tuple, extr: Tuple) -> Dict[str, Any]:
    cam_id, res, focal, center, radial, tangential = intr
    quat, pos = extr
    return {"id": cam_id, "res_w": res[0], "res_h": res[1],
            "focal_length": np.array(focal), "center": np.array(center),
            "radial_distortion": np.array(radial), "tangential_distortion": np.array(tangential),
            "orientation": np.array(quat), "translation": np.array(pos) / 1000.0}


def h36m_cameras() -> Dict[str, List[Dict[str, Any]]]:
    """The Human3.6M calibration: ``{"S1": [cam0, .., cam3], ...}`` (S1, S5–S9, S11).

    Each camera: ``id``, ``res_w``, ``res_h`` (px), ``focal_length`` ``[2]`` and ``center``
    ``[2]`` (px), ``radial_distortion`` ``[3]``, ``tangential_distortion`` ``[2]``,
    ``orientation`` ``[4]`` (unit quaternion w, x, y, z: camera → world rotation) and
    ``translation`` ``[3]`` (camera position in the world, **metres**). A fresh copy each call.
    """
    return {s: [_camera_dict(_INTRINSICS[k], extr) for k, extr in enumerate(cams)]
            for s, cams in _EXTRINSICS.items()}


#: Module-level view of :func:`h36m_cameras` (do not mutate; call the function for a copy).
H36M_CAMERAS = h36m_cameras()


def read_npz_dict(path: PathLike, key: str) -> Dict[str, Any]:
    """``{"value": path[key], "metadata": path["metadata"] or None}`` of a VideoPose3D ``.npz``
    (``positions_2d`` / ``positions_3d``: pickled dicts, read by the restricted
    :func:`hgn_pyg.untrusted.load_npz`, so no code runs): the one reader of VideoPose3D files, used
    by :class:`VideoPose3D`, :func:`hgn_pyg.data.input_2d.read_track_2d` and the lifter's
    :mod:`hgn_pyg.inference.keypoint_files`. ``path[key]`` must be a dict, else DataError."""
    npz = load_npz(path, keys=(key, "metadata"))  # the restricted reader: no code runs
    if key not in npz:
        raise DataError(f"{path}: [\"{key}\"]: missing key; not a VideoPose3D file")
    try:
        value = unwrap_object(npz[key])
    except Exception as exc:
        raise DataError(f"{path}: [\"{key}\"]: cannot read ({exc})") from None
    if not isinstance(value, Mapping):
        raise DataError(f"{path}: [\"{key}\"]: expected a dict of subjects, got "
                        f"{type(value).__name__}")
    out = {"value": value, "metadata": None}
    if npz.get("metadata") is not None:
        try:
            out["metadata"] = unwrap_object(npz["metadata"])
        except Exception:
            out["metadata"] = None
    return out


def _subject_key(s: Union[int, str]) -> str:
    return s if isinstance(s, str) and s.startswith("S") else f"S{int(s)}"


class VideoPose3D(PoseDataset):
    r"""Human3.6M from the VideoPose3D ``.npz`` files (same items as :class:`Human36M`, no meshes).

    Args:
        npz_3d: ``data_3d_h36m.npz``.
        npz_2d: ``data_2d_h36m_gt.npz`` or a detection file of the same layout (e.g. CPN).
        split: ``"train"`` or ``"test"``; subjects from ``protocol`` unless ``subjects`` is given
            (ints or ``"S9"``-style keys).
        subsample: keep frames whose index in the sequence is a multiple (default 5 train, 50 test).
        protocol: 1 or 2, as :class:`Human36M`.
        skip: ``(subject, sequence name)`` pairs to leave out, e.g. ``[("S9", "Greeting")]``;
            none by default (the VideoPose3D convention; Human36M's corrupt-sequence list is
            keyed by sub-action indices that these names do not carry).
        cameras: calibration in the layout of :func:`h36m_cameras` (default: Human3.6M's).
        camera_indices: which of the four cameras to use (default all).

    Items: ``input_2d [17, 2]``, ``joints_3d [17, 3]`` (metres, pelvis-relative, camera frame),
    ``action``, ``subject``; see :class:`~hgn_pyg.data.pose_dataset.PoseDataset`. Extra tensors:
    ``root_3d [N, 3]``, ``frame_info [N, 3]`` (subject, frame, camera), ``image_size [N, 2]``.
    """

    def __init__(
        self,
        npz_3d: PathLike,
        npz_2d: PathLike,
        split: str = "train",
        subjects: Optional[Iterable[Union[int, str]]] = None,
        subsample: Optional[int] = None,
        protocol: int = 2,
        skip: Iterable[Tuple[Union[int, str], str]] = (),
        cameras: Optional[Mapping[str, Sequence[Mapping[str, Any]]]] = None,
        camera_indices: Optional[Sequence[int]] = None,
    ):
        subjects = protocol_subjects(split, subjects, protocol, "VideoPose3D")
        self.subjects = tuple(_subject_key(s) for s in subjects)
        self.split = split
        self.subsample = int(DEFAULT_SUBSAMPLE[split] if subsample is None else subsample)
        if self.subsample < 1:
            raise DataError(f"VideoPose3D: subsample must be >= 1, got {subsample!r}")
        self.skip = {(_subject_key(s), str(a)) for s, a in skip}
        self.npz_3d, self.npz_2d = Path(npz_3d), Path(npz_2d)
        cams = cameras if cameras is not None else H36M_CAMERAS

        pos3d = read_npz_dict(self.npz_3d, "positions_3d")["value"]
        loaded2d = read_npz_dict(self.npz_2d, "positions_2d")
        pos2d, meta = loaded2d["value"], loaded2d["metadata"]
        if isinstance(meta, Mapping) and "num_joints" in meta:
            nj = meta["num_joints"]
            if not isinstance(nj, (int, np.integer)) or int(nj) != 17:
                raise DataError(f"{self.npz_2d}: [\"metadata\"][\"num_joints\"]: expected 17, "
                                f"got {nj!r}")

        cols: Dict[str, List[np.ndarray]] = {k: [] for k in (
            "input_2d", "joints_cam", "action", "subject", "frame_info", "image_size")}
        for s in self.subjects:
            for label, path, src in (("3D", self.npz_3d, pos3d), ("2D", self.npz_2d, pos2d)):
                if s not in src:
                    raise DataError(f"{path}: [\"positions_{label.lower()}\"][\"{s}\"]: missing "
                                    f"subject (file has {sorted(map(str, src))})")
            if s not in cams:
                raise DataError(f"VideoPose3D: no camera calibration for subject {s}")
            seqs3d, seqs2d = pos3d[s], pos2d[s]
            for path, seqs, label in ((self.npz_3d, seqs3d, "3d"), (self.npz_2d, seqs2d, "2d")):
                if not isinstance(seqs, Mapping):
                    raise data_error(path, [f"positions_{label}", s],
                                     f"expected a dict of actions, got {type(seqs).__name__}")
            subj_id = int(s[1:])
            subj_cams = list(cams[s])
            use_cams = range(len(subj_cams)) if camera_indices is None else camera_indices
            for name in seqs3d:
                if str(name).startswith("_"):
                    continue
                label = parse_action(name)
                k3 = ["positions_3d", s, name]
                if label is None:
                    raise data_error(self.npz_3d, k3, f"unknown action name (expected one of "
                                                      f"{list(ACTIONS)} with an optional number)")
                if (s, str(name)) in self.skip:
                    continue
                world = as_array(seqs3d[name], (-1, -1, 3), self.npz_3d, k3, "3D joints (frames×joints×3)")
                if world.shape[1] == 32:
                    world = world[:, list(H36M32_TO_17)]
                elif world.shape[1] != 17:
                    raise data_error(self.npz_3d, k3, f"expected 32 (or 17) joints, got "
                                                      f"{world.shape[1]}")
                k2 = ["positions_2d", s, name]
                if name not in seqs2d:
                    raise data_error(self.npz_2d, k2, "missing key (sequence of the 3D file)")
                views = seqs2d[name]
                if not isinstance(views, (list, tuple)) or len(views) != len(subj_cams):
                    raise data_error(self.npz_2d, k2, f"expected a list of {len(subj_cams)} "
                                                      f"camera arrays, got {_brief(views)}")
                frames = np.arange(0, len(world), self.subsample)
                for c in use_cams:
                    cam = subj_cams[c]
                    uv = as_array(views[c], (-1, 17, 2), self.npz_2d, k2 + [c], "2D joints")
                    if len(uv) < len(world):
                        raise data_error(self.npz_2d, k2 + [c], f"{len(uv)} frames of 2D joints "
                                         f"for {len(world)} frames of 3D joints")
                    w, h = float(cam["res_w"]), float(cam["res_h"])
                    xc = world_to_camera_quat(world[frames], cam["orientation"],
                                              cam["translation"])
                    n = len(frames)
                    with np.errstate(over="ignore", invalid="ignore"):
                        inp = normalize_pixels(uv[frames], np.full(n, w), np.full(n, h))
                    if first_bad_row(inp) is not None:
                        raise data_error(self.npz_2d, k2 + [c], "2D joints give normalised input "
                                         "beyond the float32 range (image size?)")
                    if first_bad_row(xc, xc - xc[:, :1]) is not None:
                        raise data_error(self.npz_3d, k3, f"3D joints in camera {c} are beyond "
                                         "the float32 range")
                    cols["input_2d"].append(inp)
                    cols["joints_cam"].append(xc)
                    cols["action"].append(np.full(n, label, dtype=np.int64))
                    cols["subject"].append(np.full(n, subj_id, dtype=np.int64))
                    cols["frame_info"].append(np.stack(
                        [np.full(n, subj_id), frames, np.full(n, c)], axis=1).astype(np.int64))
                    cols["image_size"].append(np.tile([w, h], (n, 1)))
        if not cols["action"] or sum(len(a) for a in cols["action"]) == 0:
            raise DataError(f"{self.npz_3d}: no samples for split {split!r} (subjects "
                            f"{list(self.subjects)})")
        cat = {k: np.concatenate(v, axis=0) for k, v in cols.items()}
        cam3 = cat["joints_cam"]
        tensors = {
            "input_2d": torch.from_numpy(cat["input_2d"]).float(),
            "joints_3d": torch.from_numpy(cam3 - cam3[:, :1]).float(),
            "root_3d": torch.from_numpy(cam3[:, 0]).float(),
            "action": torch.from_numpy(cat["action"]).long(),
            "subject": torch.from_numpy(cat["subject"]).long(),
            "frame_info": torch.from_numpy(cat["frame_info"]).long(),
            "image_size": torch.from_numpy(cat["image_size"]).float(),
        }
        log.info("VideoPose3D %s: %d samples", split, len(cat["action"]))
        super().__init__({k: t.contiguous() for k, t in tensors.items()}, ())


def _brief(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


__all__ = [
    "VideoPose3D",
    "H36M32_TO_17",
    "H36M_CAMERAS",
    "h36m_cameras",
    "quaternion_to_matrix",
    "world_to_camera_quat",
    "parse_action",
    "read_npz_dict",
]
