"""The four Human3.6M cameras: the published calibration of every subject's capture session.

Source: the Human3.6M calibration (Ionescu et al., TPAMI 2014) as published in VideoPose3D's
``common/h36m_dataset.py`` (Pavllo et al., CVPR 2019, facebookresearch/VideoPose3D): per camera
the intrinsics (resolution, focal length and principal point in pixels, radial k1..k3 and
tangential p1, p2 distortion) and per subject (S1, S5, S6, S7, S8, S9, S11) the extrinsics
(orientation quaternion w, x, y, z of the camera in the world, i.e. camera -> world, and the
camera position in the world in mm; world z up, mm). These are public facts written as numbers.

Two views of the same numbers:

* :func:`h36m_cameras` / :data:`H36M_CAMERAS`: VideoPose3D's dict layout (used by
  :mod:`hgn_pyg.data.videopose3d`), translation in metres;
* :func:`pose2mesh_camera`: the ``{R, t (mm), f, c}`` layout of the Human3.6M/Pose2Mesh
  annotation files (``X_c = R·X + t``, so ``R = Q(q)ᵀ`` and ``t = −R·T`` for the quaternion ``q``
  and position ``T``), used by the synthetic set (:mod:`hgn_pyg.data.synthetic`).

Distortion is listed but the synthetic set projects without it (the annotation layout has no
distortion; Human3.6M's is below 1 % of the radius near the image centre).
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from .camera import quaternion_to_matrix

__all__ = ["H36M_CAMERAS", "CALIBRATED_SUBJECTS", "IMAGE_SIZES", "h36m_cameras",
           "pose2mesh_camera", "calibration_subject"]

# Intrinsics per camera slot 0..3 (the same four cameras for every subject):
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


#: Subjects with a published calibration (Human3.6M subject numbers).
CALIBRATED_SUBJECTS: Tuple[int, ...] = tuple(int(s[1:]) for s in _EXTRINSICS)
#: Image size (width, height) of camera ``cam_idx`` 1..4.
IMAGE_SIZES: Dict[int, Tuple[int, int]] = {k + 1: tuple(intr[1]) for k, intr in enumerate(_INTRINSICS)}


def calibration_subject(subject: int) -> int:
    """The calibrated subject whose cameras ``subject`` uses: itself when calibrated, otherwise
    one of :data:`CALIBRATED_SUBJECTS` chosen by ``subject`` modulo their count."""
    subject = int(subject)
    if subject in CALIBRATED_SUBJECTS:
        return subject
    return CALIBRATED_SUBJECTS[subject % len(CALIBRATED_SUBJECTS)]


def pose2mesh_camera(subject: int, cam_idx: int) -> Dict[str, List]:
    """Camera ``cam_idx`` (1..4) of ``subject`` (see :func:`calibration_subject`) in the
    annotation layout: ``{"R": 3x3, "t": [3] mm, "f": [2] px, "c": [2] px}`` with
    ``X_c = R·X_w + t`` (world and camera points in mm)."""
    if int(cam_idx) not in IMAGE_SIZES:
        raise ValueError(f"cam_idx must be 1..4, got {cam_idx}")
    quat, pos = _EXTRINSICS[f"S{calibration_subject(subject)}"][int(cam_idx) - 1]
    _, _, focal, center, _, _ = _INTRINSICS[int(cam_idx) - 1]
    R = quaternion_to_matrix(np.asarray(quat)).T
    t = -R @ np.asarray(pos, dtype=np.float64)
    return {"R": R.tolist(), "t": t.tolist(), "f": list(focal), "c": list(center)}
