"""Find the face in a user's photo or video and cut the square crop X2Face was trained on.

X2Face was trained on VoxCeleb face tracks: a face detector's box enlarged 1.6x around its centre,
resized to the model's size. Photos cropped any other way animate badly (the original release's
most common complaint), so everything the model sees goes through ``FaceCropper``:

    >>> cropper = FaceCropper(image_size=256)                    # scale 1.6, backend picked automatically
    >>> face = cropper.crop_image(photo)                         # FaceCrop: crop uint8 [256, 256, 3] RGB
    >>> track = cropper.track(frames)                            # video: one FaceCrop per frame, smoothed
    >>> for item in track: ...
    >>> track.report.summary()                                   # 'face found in 148/150 frames ...'
    >>> frame = paste_back(photo, generated, face.box)           # put a generated crop back, feathered

Backends (``DETECTORS``, picked by ``backend="auto"``, reported as ``FaceCrop.backend``):

* ``face-alignment``: S3FD boxes and 68 landmarks (3-D when its depth weights are present, which
  also gives a head pose), used only when the package is importable AND its weights are already in
  torch's hub cache; nothing is ever downloaded.
* ``opencv``: OpenCV's Haar cascades (shipped in ``x2face/cascades``; run by ``x2face.haar`` where OpenCV 5 lacks
  ``CascadeClassifier``), always available offline. A face must be found by
  two frontal cascades at once (``alt2`` and ``default``, the latter with a minimum confidence),
  which rejects the fur, grass and cartoon-animal boxes a single cascade returns; a profile
  cascade (both directions) is the fallback for turned heads.

Video tracking detects every ``detect_every`` frames (inside a window around the last face, which is
fast even on 4K frames), smooths the box's centre and size with dead-bands (so the crop neither
jitters nor "breathes") and interpolates between detections. While the face holds still the stride
doubles, up to ``max_gap`` frames; a stride whose crop moves, or whose frames change in the face window
more than a blend of its two ends explains (a nod and back), is split by detections in between down to
``detect_every``, so moving faces are tracked as densely as before and still ones cost a few detections.
Frames without a face are kept and reported (``FaceCrop.found`` False, the last box held), never an error.
"""
from __future__ import annotations

import copy
import glob
import hashlib
import importlib.util
import itertools
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .errors import FaceIndexError, InputError, MediaError, NoFaceError
from .media import to_rgb_array

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) in pixels, x1/y1 exclusive
#: Which face of several: "largest", an index from the left (0 = leftmost, -1 = rightmost) or an (x, y) pixel point.
FaceSelect = str | int | tuple[float, float]


@dataclass
class Detection:
    """One face found by a detector.

    Attributes:
        box: the detector's face box (x0, y0, x1, y1) in image pixels, float.
        score: detector confidence (backend-specific scale; higher is surer).
        landmarks: float [68, 2] or [68, 3] (x, y[, z]) in image pixels, when the backend gives them.
        pose: (yaw, pitch, roll) in degrees, when the backend gives 3-D landmarks.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray | None = None
    pose: tuple[float, float, float] | None = None

    @property
    def side(self) -> float:
        return float(math.sqrt(max(self.box[2] - self.box[0], 1e-6) * max(self.box[3] - self.box[1], 1e-6)))

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2], dtype=np.float64)


@dataclass
class FaceCrop:
    """A face cut out of one photo or video frame.

    Attributes:
        crop: uint8 [S, S, 3] RGB, the square crop resized to the model's size (None only for video
            frames before any face was seen).
        box: the square crop box (x0, y0, x1, y1) in the original image's pixels; it may extend past
            the image (those pixels are padded). None when ``crop`` is None.
        found: a face was detected in (or tracked through) this frame; False when the box is held
            from an earlier frame.
        backend: the detector that found it (``"opencv"`` or ``"face-alignment"``).
        index: frame index in a video (0 for photos).
        face_box: the detector's (smoothed) face box, before enlarging.
        score: detector confidence at the last detection.
        pose: (yaw, pitch, roll) in degrees when the backend estimates it, else None.
        faces: faces the detector found in the photo (0 for video frames, where one face is tracked).
    """

    crop: np.ndarray | None
    box: Box | None
    found: bool
    backend: str
    index: int = 0
    face_box: Box | None = None
    score: float | None = None
    pose: tuple[float, float, float] | None = None
    faces: int = 0


# ----------------------------------------------------------------------------------------- detectors
class FaceDetector:
    """A face detector: ``detect(image, region, expected_side) -> list[Detection]``.

    Attributes:
        name: backend name as reported to users.
        box_scale: this detector's box side relative to a VoxCeleb detector box (so that
            ``FaceCropper(scale=1.6)`` gives VoxCeleb-like crops whichever backend runs).
        box_shift: vertical offset of the VoxCeleb box centre from this detector's box centre, in
            units of the box side (positive = down).
    """

    name = "base"
    box_scale = 1.0
    box_shift = 0.0

    def detect(self, image: np.ndarray, region: Box | None = None, expected_side: float | None = None) -> list[Detection]:
        """Faces in ``image`` (uint8 [H, W, 3] RGB), optionally only inside ``region`` (a pixel box; only its
        pixels are read) and about ``expected_side`` pixels wide (tracking). Boxes are returned in ``image``
        pixels. The same arguments give the same faces (``DetectionMemo`` relies on it)."""
        raise NotImplementedError


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class HaarDetector(FaceDetector):
    """OpenCV's Haar cascades (offline, no weights to fetch; the XML files ship in ``x2face/cascades``).

    They run in OpenCV's C++ ``CascadeClassifier`` where the installed OpenCV has one (4.x), else in
    ``x2face.haar`` (the same results; OpenCV 5 dropped the class, and face-alignment pulls OpenCV 5):
    its numba-compiled CPU scan where numba imports, else torch on ``device``. ``engine`` ("auto",
    "opencv", "numba" or "torch") picks, and keeps the choice.

    A frontal face counts when ``haarcascade_frontalface_alt2`` and ``haarcascade_frontalface_default``
    both find it (IoU >= 0.4) and the latter's confidence (``levelWeights``) is at least
    ``min_confidence``: on the project's photos this keeps every human face and drops the boxes a
    single cascade puts on dogs, cats, alpacas, fur and foliage. The returned box is the mean of the
    two. When no frontal face is found, ``haarcascade_profileface`` (and its mirror image) is tried,
    with confidence at least ``profile_confidence`` in a whole image (``min_confidence`` when tracking).
    """

    name = "opencv"
    # Calibrated on data/real/vox1-frames (VoxCeleb 1.6x crops): there the mean of the two frontal boxes
    # is 0.68 of the crop side (median), centred 0.031 of the crop above its centre; with these values
    # FaceCropper(scale=1.6) reproduces the VoxCeleb crops (see tests/test_faces.py).
    box_scale = 0.92
    box_shift = 0.046

    #: Longest side images are shrunk to before a full-frame search.
    max_side = 1024
    #: Smallest face searched for, in pixels at that size.
    min_face = 24
    #: Faces are rescaled to about this many pixels for a search around a known face.
    track_side = 90
    #: Longest side for the (slow) profile-cascade fallback.
    profile_side = 640

    def __init__(self, min_confidence: float = 2.0, profile: bool = True, profile_confidence: float = 3.0,
                 device: str = "cpu", engine: str = "auto") -> None:
        import cv2

        from .haar import cascade_path, compiled_available, load_cascade

        names = ["frontalface_alt2", "frontalface_default"] + (["profileface"] if profile else [])
        missing = [cascade_path(n) for n in names if not os.path.isfile(cascade_path(n))]
        if missing:
            raise MediaError(f"x2face's face cascades are missing ({', '.join(missing)}); reinstall x2face")
        if engine not in ("auto", "opencv", "numba", "torch"):
            raise MediaError(f"unknown cascade engine {engine!r}; choose auto, opencv, numba or torch")
        if engine == "opencv" and not hasattr(cv2, "CascadeClassifier"):
            raise MediaError(f"OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 dropped it); "
                             "use engine 'numba' or 'torch', or install opencv-python-headless<5")
        if engine == "numba" and not compiled_available():
            raise MediaError("numba is not installed (librosa installs it); use engine 'torch'")
        if engine in ("auto", "opencv") and hasattr(cv2, "CascadeClassifier"):  # OpenCV 4.x: its C++ cascade
            cascades = [cv2.CascadeClassifier(cascade_path(n)) for n in names]
            if any(c.empty() for c in cascades):
                raise MediaError("OpenCV could not load x2face's face cascades; reinstall opencv-python-headless<5")
            #: how the cascades run: "opencv" (C++), "numba" (x2face.haar's compiled CPU scan) or "torch"
            #: (x2face.haar on ``device``); the last two are for OpenCV 5 builds
            self.engine = "opencv"
        else:  # OpenCV 5 dropped CascadeClassifier: the same cascades evaluated by x2face.haar
            cascades = [load_cascade(n) for n in names]
            self.engine = "torch" if engine == "torch" or not compiled_available() else "numba"
        self.device = str(device)
        self._alt2, self._default = cascades[0], cascades[1]
        self._profile = cascades[2] if profile else None
        self.min_confidence = float(min_confidence)
        self.profile_confidence = float(profile_confidence)

    def _run(self, cascade, gray: np.ndarray, scale_factor: float, neighbors: int, min_size: int,
             max_size: int) -> list[tuple[np.ndarray, float]]:
        if self.engine == "opencv":
            boxes, _, weights = cascade.detectMultiScale3(
                gray, scaleFactor=scale_factor, minNeighbors=neighbors, minSize=(min_size, min_size),
                maxSize=(max_size, max_size), outputRejectLevels=True)
        else:
            boxes, weights = cascade.detect_multi_scale3(gray, scale_factor, neighbors, (min_size, min_size),
                                                         (max_size, max_size), device=self.device,
                                                         compiled=self.engine == "numba")
        out = []
        for (x, y, w, h), wt in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            out.append((np.array([x, y, x + w, y + h], dtype=np.float64), float(wt)))
        return out

    def detect(self, image: np.ndarray, region: Box | None = None, expected_side: float | None = None) -> list[Detection]:
        import cv2

        h, w = image.shape[:2]
        ox, oy = 0, 0
        if region is not None:
            x0, y0 = max(0, int(math.floor(region[0]))), max(0, int(math.floor(region[1])))
            x1, y1 = min(w, int(math.ceil(region[2]))), min(h, int(math.ceil(region[3])))
            if x1 - x0 < 8 or y1 - y0 < 8:
                return []
            image, ox, oy = image[y0:y1, x0:x1], x0, y0
        ih, iw = image.shape[:2]
        if expected_side:
            s = min(2.0, self.track_side / expected_side)
            min_size = max(self.min_face, int(self.track_side * 0.6))
            max_size = int(self.track_side * 1.6)
        else:
            s = min(1.0, self.max_side / max(ih, iw))
            min_size, max_size = self.min_face, int(max(ih, iw) * s)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if s != 1.0:
            gray = cv2.resize(gray, (max(1, round(iw * s)), max(1, round(ih * s))),
                              interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        gray = cv2.equalizeHist(gray)
        sf = 1.05 if expected_side else 1.1  # finer steps (1.05) add false positives on animals in a full search
        alt2 = self._run(self._alt2, gray, sf, 3, min_size, max_size)
        dets: list[Detection] = []
        gh, gw = gray.shape
        for box, _ in alt2:
            # confirm with the second cascade, searched only around this candidate (it is the slower one)
            side = box[2] - box[0]
            x0, y0 = int(max(0, box[0] - side / 2)), int(max(0, box[1] - side / 2))
            x1, y1 = int(min(gw, box[2] + side / 2)), int(min(gh, box[3] + side / 2))
            confirm = self._run(self._default, gray[y0:y1, x0:x1], sf, 3, max(self.min_face, int(side * 0.7)),
                                int(side * 1.45) + 1)
            best, best_iou = None, 0.4
            for box_d, wt_d in confirm:
                box_d = box_d + np.array([x0, y0, x0, y0], dtype=np.float64)
                iou = _iou(box, box_d)
                if iou >= best_iou and wt_d >= self.min_confidence:
                    best, best_iou = (box_d, wt_d), iou
            if best is not None:
                dets.append(Detection((box + best[0]) / 2, best[1]))
        dets = _drop_duplicates(dets)  # alt2 can put two overlapping boxes on one face: keep the larger
        if not dets and self._profile is not None:
            # turned heads: the profile cascade, and on the mirror image for the other side (at most
            # profile_side pixels: it is the slowest cascade and profiles are rarely small)
            ps = min(1.0, self.profile_side / max(gray.shape))
            pg = cv2.resize(gray, None, fx=ps, fy=ps, interpolation=cv2.INTER_AREA) if ps < 1 else gray
            pmin, pmax = max(self.min_face, int(min_size * ps)), max(self.min_face + 1, int(max_size * ps))
            gw = pg.shape[1]
            # in a whole image the profile cascade needs more confidence (it fires on clothes and hair)
            floor = self.min_confidence if expected_side else self.profile_confidence
            for flipped in (False, True):
                g = np.ascontiguousarray(pg[:, ::-1]) if flipped else pg
                for box, wt in self._run(self._profile, g, sf, 4, pmin, pmax):
                    if wt < floor:
                        continue
                    if flipped:
                        box = np.array([gw - box[2], box[1], gw - box[0], box[3]])
                    dets.append(Detection(box / ps, wt))
            dets = _nms(dets)
        for d in dets:
            d.box = d.box / s + np.array([ox, oy, ox, oy], dtype=np.float64)
        return dets


def _drop_duplicates(dets: list[Detection], iou: float = 0.3, cover: float = 0.7) -> list[Detection]:
    """Faces of ``dets`` that are not another view of a larger one (IoU >= ``iou``, or at least ``cover`` of
    the smaller box inside it), largest first: one detection per face, so faces can be counted."""
    keep: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.side):
        if all(_iou(d.box, k.box) < iou and _inside(d.box, k.box) < cover for k in keep):
            keep.append(d)
    return keep


def _inside(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of box ``a`` that lies inside box ``b``."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / max((a[2] - a[0]) * (a[3] - a[1]), 1e-9)


def _nms(dets: list[Detection], thresh: float = 0.3) -> list[Detection]:
    keep: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.score):
        if all(_iou(d.box, k.box) < thresh for k in keep):
            keep.append(d)
    return keep


# ---- face-alignment (optional)
_FA_WEIGHT_PATTERNS = {"detector": ("s3fd-*.pth",), "2d": ("2DFAN4*.zip", "2DFAN4*.pth*"),
                       "3d": ("3DFAN4*.zip", "3DFAN4*.pth*"), "depth": ("depth*.zip", "depth*.pth*")}


def _torch_hub_checkpoints() -> str:
    import torch

    return os.path.join(torch.hub.get_dir(), "checkpoints")


def face_alignment_weights() -> dict[str, str | None]:
    """Which face-alignment weight files are already on disk (torch hub cache); never downloads."""
    folder = _torch_hub_checkpoints()
    found = {}
    for key, patterns in _FA_WEIGHT_PATTERNS.items():
        hits = sorted(h for p in patterns for h in glob.glob(os.path.join(folder, p)))
        found[key] = hits[-1] if hits else None
    return found


def face_alignment_available() -> bool:
    """face-alignment is importable and its detector and landmark weights are on disk (checked without importing it)."""
    if importlib.util.find_spec("face_alignment") is None:
        return False
    weights = face_alignment_weights()
    return bool(weights["detector"] and (weights["2d"] or (weights["3d"] and weights["depth"])))


def head_pose_from_landmarks(points: np.ndarray) -> tuple[float, float, float]:
    """Rough head pose from 68 3-D landmarks (iBUG order; x right, y down, z away from the camera).

    The face's axes are taken from the outer eye corners (x) and the nose-bridge-to-chin line (y),
    and decomposed as ``R = R_roll @ R_pitch @ R_yaw`` (a frontal face is the identity).

    Returns:
        (yaw, pitch, roll) in degrees: yaw > 0 when the face turns towards the image's right, pitch > 0
        when it tilts up, roll > 0 when it leans clockwise in the image.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape != (68, 3):
        raise InputError(f"head pose needs 68 3-D landmarks [68, 3], got {list(p.shape)}")
    ex = p[45] - p[36]  # outer eye corners: image-left -> image-right
    ey = p[8] - p[27]  # nose bridge top -> chin
    ex = ex / (np.linalg.norm(ex) + 1e-9)
    ey = ey - ex * float(ex @ ey)
    ey = ey / (np.linalg.norm(ey) + 1e-9)
    ez = np.cross(ex, ey)  # face -> back of the head: (0, 0, 1) for a frontal face
    yaw = math.degrees(math.atan2(ex[2], ez[2]))
    pitch = math.degrees(math.asin(float(np.clip(-ey[2], -1.0, 1.0))))
    roll = math.degrees(math.atan2(-ey[0], ey[1]))
    return float(yaw), float(pitch), float(roll)


class FaceAlignmentDetector(FaceDetector):
    """``face_alignment`` (Bulat & Tzimiropoulos): S3FD boxes + 68 landmarks (+ head pose with 3-D weights).

    Only built when ``face_alignment_available()``: its weights must already be in torch's hub cache.
    """

    name = "face-alignment"

    def __init__(self, device: str = "cpu") -> None:
        if not face_alignment_available():
            raise MediaError(
                "the face-alignment backend needs `pip install face-alignment` and its weights in "
                f"{_torch_hub_checkpoints()} (x2face never downloads them); use backend 'opencv'"
            )
        import face_alignment  # lazy: heavy, and only when its weights are present

        weights = face_alignment_weights()
        types = face_alignment.LandmarksType
        three_d = bool(weights["3d"] and weights["depth"])
        names = ("THREE_D", "_3D") if three_d else ("TWO_D", "_2D")  # current and pre-1.4 spellings
        kind = next(getattr(types, n) for n in names if hasattr(types, n))
        self._fa = face_alignment.FaceAlignment(kind, device=str(device), face_detector="sfd")
        self._three_d = three_d

    def detect(self, image: np.ndarray, region: Box | None = None, expected_side: float | None = None) -> list[Detection]:
        h, w = image.shape[:2]
        ox = oy = 0
        if region is not None:
            x0, y0 = max(0, int(region[0])), max(0, int(region[1]))
            x1, y1 = min(w, int(math.ceil(region[2]))), min(h, int(math.ceil(region[3])))
            if x1 - x0 < 8 or y1 - y0 < 8:
                return []
            image, ox, oy = np.ascontiguousarray(image[y0:y1, x0:x1]), x0, y0
        result = self._fa.get_landmarks_from_image(image, return_bboxes=True)
        landmarks, _, boxes = result if isinstance(result, tuple) else (result, None, None)
        if not landmarks:
            return []
        offset = np.array([ox, oy, ox, oy], dtype=np.float64)
        dets = []
        for i, pts in enumerate(landmarks):
            pts = np.asarray(pts, dtype=np.float64).copy()
            pts[:, 0] += ox
            pts[:, 1] += oy
            if boxes is not None and i < len(boxes):
                b = np.asarray(boxes[i], dtype=np.float64).reshape(-1)
                box, score = b[:4] + offset, float(b[4]) if b.shape[0] > 4 else 1.0
            else:
                box, score = np.array([*pts[:, :2].min(0), *pts[:, :2].max(0)]), 1.0
            pose = head_pose_from_landmarks(pts) if pts.shape[1] == 3 else None
            dets.append(Detection(box, score, pts, pose))
        return dets


#: backend name -> (is it usable here?, builder). "auto" takes the first usable one.
DETECTORS: dict[str, tuple[Callable[[], bool], Callable[..., FaceDetector]]] = {
    "face-alignment": (face_alignment_available, FaceAlignmentDetector),
    "opencv": (lambda: True, HaarDetector),
}


def available_backends() -> list[str]:
    """Backends usable on this machine, in the order ``"auto"`` tries them."""
    return [name for name, (usable, _) in DETECTORS.items() if usable()]


def make_detector(backend: str = "auto", device: str = "cpu") -> FaceDetector:
    """Build a detector by name (``"auto"``: face-alignment if its weights are on disk, else opencv), its
    network (face-alignment) or cascade search (opencv without ``CascadeClassifier``) on ``device``."""
    if backend == "auto":
        for name in available_backends():
            return DETECTORS[name][1](device=str(device))
        raise MediaError("no face detector is available")  # pragma: no cover - opencv always is
    if backend not in DETECTORS:
        raise MediaError(f"unknown face detector {backend!r}; choose auto or one of {', '.join(DETECTORS)}")
    return DETECTORS[backend][1](device=str(device))


# ----------------------------------------------------------------------------------------- crop & paste
_PAD_MODES = {"edge": "BORDER_REPLICATE", "reflect": "BORDER_REFLECT_101", "constant": "BORDER_CONSTANT"}


def crop_square(image: np.ndarray, box: Box, size: int, pad: str = "edge") -> np.ndarray:
    """Cut ``box`` (square, pixel coords, may extend past the image) out of uint8 [H, W, 3] and resize
    to uint8 [size, size, 3]; outside pixels are padded by ``pad`` ("edge", "reflect" or "constant" black)."""
    import cv2

    if pad not in _PAD_MODES:
        raise InputError(f"unknown pad mode {pad!r}; choose one of {', '.join(_PAD_MODES)}")
    h, w = image.shape[:2]
    n = max(1, int(round(box[2] - box[0])))
    ix0, iy0 = int(math.floor(box[0] + 0.5)), int(math.floor(box[1] + 0.5))
    sx0, sy0 = min(max(ix0, 0), w - 1), min(max(iy0, 0), h - 1)
    sx1, sy1 = max(min(ix0 + n, w), sx0 + 1), max(min(iy0 + n, h), sy0 + 1)
    patch = image[sy0:sy1, sx0:sx1]
    top, left = max(0, sy0 - iy0), max(0, sx0 - ix0)
    bottom, right = max(0, n - top - patch.shape[0]), max(0, n - left - patch.shape[1])
    if top or left or bottom or right:
        patch = cv2.copyMakeBorder(patch, top, bottom, left, right, getattr(cv2, _PAD_MODES[pad]), value=(0, 0, 0))
    patch = patch[:n, :n]
    interp = cv2.INTER_AREA if n > size else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(patch, (size, size), interpolation=interp))


@lru_cache(maxsize=8)
def feather_mask(size: int, feather: float = 0.15, width: float = 0.80, height: float = 0.92) -> np.ndarray:
    """Soft elliptical mask, float32 [size, size] in [0, 1]: 1 on the face, 0 at the crop's border.

    The ellipse spans ``width`` x ``height`` of the crop (a 1.6x crop has the face in its central
    62%, so the defaults keep forehead, chin and cheeks) and fades to 0 over ``feather`` of its radius.
    Cached (read-only): pasting a video back into one photo uses the same mask for every frame.
    """
    if size < 1:
        raise InputError(f"mask size must be >= 1, got {size}")
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)  # [size, size] each
    r = np.sqrt(((xx - c) / (width * size / 2)) ** 2 + ((yy - c) / (height * size / 2)) ** 2)
    f = max(float(feather), 1e-3)
    t = np.clip((1.0 - r) / f, 0.0, 1.0)
    mask = t * t * (3.0 - 2.0 * t)  # smoothstep
    mask.setflags(write=False)
    return mask


def paste_back(frame: np.ndarray, generated: np.ndarray, box: Box, *, feather: float = 0.15,
               hide_black: bool = True) -> np.ndarray:
    """Put a generated face crop back into the full-resolution image it was cut from.

    Args:
        frame: uint8 [H, W, 3] RGB, the original photo or frame (not modified).
        generated: uint8 [S, S, 3] RGB (or float in [0, 1]), the model's output for the crop ``box``.
        box: the square crop box (x0, y0, x1, y1) in ``frame`` pixels (``FaceCrop.box``), may extend
            past the frame.
        feather: width of the soft edge, as a fraction of the mask's radius.
        hide_black: leave the original where the generated face is pure black (X2Face renders 0
            where it samples outside the embedded face).

    Returns:
        uint8 [H, W, 3]: a copy of ``frame`` with the face region blended in (same size as ``frame``).
    """
    import cv2

    frame = to_rgb_array(frame)
    gen = to_rgb_array(generated)
    h, w = frame.shape[:2]
    n = max(1, int(round(box[2] - box[0])))
    ix0, iy0 = int(math.floor(box[0] + 0.5)), int(math.floor(box[1] + 0.5))
    sx0, sy0, sx1, sy1 = max(ix0, 0), max(iy0, 0), min(ix0 + n, w), min(iy0 + n, h)
    out = frame.copy()
    if sx1 <= sx0 or sy1 <= sy0:
        return out
    interp = cv2.INTER_CUBIC if n > gen.shape[0] else cv2.INTER_AREA
    big = cv2.resize(gen, (n, n), interpolation=interp)  # [n, n, 3]
    mask = feather_mask(n, feather)
    if hide_black:
        valid = ((gen[..., 0] | gen[..., 1] | gen[..., 2]) != 0).astype(np.float32)  # [S, S] (max over 3 is slow)
        valid = cv2.resize(cv2.erode(valid, np.ones((3, 3), np.uint8)), (n, n), interpolation=cv2.INTER_LINEAR)
        mask = mask * valid
    cy0, cx0 = sy0 - iy0, sx0 - ix0
    m = np.ascontiguousarray(mask[cy0:cy0 + sy1 - sy0, cx0:cx0 + sx1 - sx0], dtype=np.float32)  # [h', w']
    region = np.ascontiguousarray(out[sy0:sy1, sx0:sx1])
    src = np.ascontiguousarray(big[cy0:cy0 + sy1 - sy0, cx0:cx0 + sx1 - sx0])
    if hasattr(cv2, "blendLinear"):  # (m * src + (1 - m) * region) rounded: 3x faster than the NumPy below
        out[sy0:sy1, sx0:sx1] = cv2.blendLinear(src, region, m, 1.0 - m)
    else:
        r = region.astype(np.float32)
        out[sy0:sy1, sx0:sx1] = np.clip(r + m[..., None] * (src.astype(np.float32) - r) + 0.5, 0, 255).astype(np.uint8)
    return out


# ----------------------------------------------------------------------------------------- cropper
@dataclass
class TrackReport:
    """What happened while tracking a video.

    Attributes:
        frames: frames seen.
        found: frames with a face (detected, or between two detections).
        missing: indices of frames without a face (their crop is held from the last face, or None).
        detections: detector runs.
        refinements: detections added inside a stride because the face moved there.
        backend: detector backend.
        faces: faces tracked together (``GroupTrack``: a frame counts as found when every one was).
    """

    frames: int = 0
    found: int = 0
    missing: list[int] = field(default_factory=list)
    detections: int = 0
    refinements: int = 0
    backend: str = ""
    faces: int = 1

    def missing_spans(self) -> list[tuple[int, int]]:
        """Missing frames as inclusive (first, last) index ranges."""
        spans: list[tuple[int, int]] = []
        for i in self.missing:
            if spans and spans[-1][1] == i - 1:
                spans[-1] = (spans[-1][0], i)
            else:
                spans.append((i, i))
        return spans

    def summary(self) -> str:
        what = "face" if self.faces == 1 else f"all {self.faces} faces"
        text = f"{what} found in {self.found}/{self.frames} frames"
        if self.missing:
            spans = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in self.missing_spans()[:5])
            more = " ..." if len(self.missing_spans()) > 5 else ""
            text += f" ({'none' if self.faces == 1 else 'not all'} in frames {spans}{more})"
        return text

    def nothing_found(self, name: str) -> str:
        """The message for a video ``name`` in which no frame had its face (``found == 0``)."""
        checked = f"{self.frames} frame{'s' if self.frames != 1 else ''} checked"
        if self.faces == 1:
            return f"no human face found in {name} ({checked})"
        return (f"{name} never shows {self.faces} faces at once ({checked}): with every driving "
                f"face, each face of the group photo is driven by the clip's face in its place from the left; pick "
                f"one driving face instead")


def check_select(select: object) -> None:
    """Raise ``InputError`` unless ``select`` is a ``FaceSelect``."""
    ok = select == "largest" or (isinstance(select, int) and not isinstance(select, bool)) or (
        isinstance(select, (tuple, list)) and len(select) == 2
        and all(isinstance(v, (int, float)) and math.isfinite(v) for v in select))
    if not ok:
        raise InputError(f"select must be 'largest', a face index or an (x, y) point, got {select!r}")


#: The source choice that animates every face of a group photo (``X2FacePipeline.set_source(face=EVERY_FACE)``).
EVERY_FACE = "all"


def parse_face_select(text: str, option: str = "--face", every: bool = False) -> FaceSelect:
    """A face choice as typed on the command line: ``largest``, an index from the left (``0`` =
    leftmost, ``-1`` = rightmost) or ``X,Y`` (the face nearest to that pixel of the photo); with ``every``,
    also ``all`` (``EVERY_FACE``: every face of a group photo)."""
    value = str(text).strip()
    if value == "largest" or every and value == EVERY_FACE:
        return value
    try:
        if "," in value:
            x, y = (float(v) for v in value.split(","))
            select: FaceSelect = (x, y)
        else:
            select = int(value)
        check_select(select)
        return select
    except (ValueError, InputError):
        also = "'all', " if every else ""
        raise InputError(f"{option} must be 'largest', {also}a face index from the left (0 = leftmost) or an X,Y "
                         f"pixel point, got {text!r}") from None


def ordinal(n: int) -> str:
    """1 -> "1st", 2 -> "2nd", 11 -> "11th", 23 -> "23rd"."""
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def describe_select(select: FaceSelect, faces: int) -> str:
    """How a choice among ``faces`` faces reads in a summary: "the largest of 3 faces", "the 2nd from the left
    of 3 faces" (index 1), "the rightmost of 3 faces" (index 2 or -1), "the face nearest (x, y) of 3"."""
    if select == "largest":
        return f"the largest of {faces} faces"
    if select == EVERY_FACE:
        return f"all {faces} faces"
    if isinstance(select, int):
        i = select % faces if faces else select
        if i == 0 or i == faces - 1:
            return f"the {'leftmost' if i == 0 else 'rightmost'} of {faces} faces"
        return f"the {ordinal(i + 1)} from the left of {faces} faces"
    return f"the face nearest ({select[0]:g}, {select[1]:g}) of {faces}"


#: Detector calls a ``FaceCropper`` remembers by default (``DetectionMemo``): a 10 min clip tracked at the default
#: stride makes about 3,000.
REMEMBER_CALLS = 10000


class DetectionMemo:
    """The detector's answers for the frames it has seen, by their content: a clip tracked again (another photo
    driven by it, relative motion's reference found in a first pass, the app run again on the same clip) costs a
    hash per detector call instead of a detection.

    A call is remembered under (the SHA-1 of the frame's pixels in the search region, or of all of them, its shape
    and dtype, the region, the expected side), so a frame that differs in any pixel the detector reads is searched
    afresh; a detector gives the same faces for the same arguments (and reads only the region's pixels, as
    ``FaceDetector.detect`` says), so the tracks are the same as without. At most ``size`` calls are kept, the
    least recently used dropped first (under 1 KB each with the Haar detector, a few KB with face-alignment's
    landmarks); safe to share between threads. The memo belongs to one detector: given another, it forgets what
    it holds.
    """

    def __init__(self, size: int = 10000) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InputError(f"a detection memo holds an int >= 1 of calls, got {size!r}")
        self.size = size
        self.hits = self.misses = 0
        self._calls: OrderedDict[tuple, tuple[Detection, ...]] = OrderedDict()
        self._detector: FaceDetector | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._calls)

    @staticmethod
    def _digest(image: np.ndarray, region: Box | None) -> bytes:
        """SHA-1 of the pixels a detector reads (those of ``region``, with a pixel more on every side, or all), with
        the image's shape and dtype."""
        data = image
        if region is not None:
            h, w = image.shape[:2]
            x0, y0 = max(0, math.floor(region[0]) - 1), max(0, math.floor(region[1]) - 1)
            x1, y1 = min(w, math.ceil(region[2]) + 1), min(h, math.ceil(region[3]) + 1)
            data = image[y0:max(y0, y1), x0:max(x0, x1)]
        data = np.ascontiguousarray(data)
        return hashlib.sha1(data.data, usedforsecurity=False).digest() + repr((image.shape, image.dtype.str)).encode()

    def detect(self, detector: FaceDetector, image: np.ndarray, region: Box | None = None,
               expected_side: float | None = None) -> list[Detection]:
        """``detector.detect(image, region, expected_side)``, remembered (a fresh copy of each ``Detection``)."""
        base = detector.detector if isinstance(detector, _SharedDetections) else detector
        key = (self._digest(image, region), None if region is None else tuple(map(float, region)),
               None if expected_side is None else float(expected_side))
        with self._lock:
            if self._detector is not base:
                self._calls.clear()
                self._detector = base
            found = self._calls.get(key)
            if found is not None:
                self._calls.move_to_end(key)
                self.hits += 1
        if found is None:
            found = tuple(detector.detect(image, region, expected_side))
            with self._lock:
                self.misses += 1
                if self._detector is base:
                    self._calls[key] = found
                    while len(self._calls) > self.size:
                        self._calls.popitem(last=False)
        return [copy.deepcopy(d) for d in found]

    def clear(self) -> None:
        """Forget every call."""
        with self._lock:
            self._calls.clear()


class FaceCropper:
    """Square VoxCeleb-style face crops of photos and videos.

    Args:
        image_size: side of the crops, in pixels (the model's ``config.image_size``).
        scale: crop side / face box side; 1.6 reproduces VoxCeleb's crops, on which X2Face was trained.
        detect_every: in videos, run the detector at least every N frames where the face moves, and
            interpolate between.
        max_gap: the longest stride between detections while the face holds still (frames; at most
            ``MAX_PENDING_BYTES`` of frames are held). ``max_gap <= detect_every``: a fixed stride.
        backend: ``"auto"``, ``"opencv"`` or ``"face-alignment"`` (see ``DETECTORS``), or a
            ``FaceDetector`` instance.
        select: which face when there are several: ``"largest"``, an index counted from the left of
            the image (0 = leftmost), or an (x, y) pixel point (the face nearest to it).
        pad: how crop boxes past the image edge are filled: ``"edge"``, ``"reflect"`` or ``"constant"``.
        smooth_center, smooth_size: per-detection smoothing factors (0..1, 1 = no smoothing).
        deadband_center, deadband_size: changes smaller than these (fractions of the face size) are
            ignored, so the crop does not jitter or breathe.
        device: where a detector that can use one runs (face-alignment's networks; the opencv
            backend's cascades when OpenCV lacks ``CascadeClassifier``).
        remember: how many detector calls to remember by the frames' content (``DetectionMemo``), so that tracking
            a clip again, or finding the face of a photo again, costs no detection; 0: none (``memo`` None);
            None: ``REMEMBER_CALLS``.
    """

    def __init__(self, image_size: int = 256, scale: float = 1.6, detect_every: int = 5, max_gap: int = 20,
                 backend: str | FaceDetector = "auto", select: FaceSelect = "largest",
                 pad: str = "edge", smooth_center: float = 0.6, smooth_size: float = 0.3,
                 deadband_center: float = 0.015, deadband_size: float = 0.05, device: str = "cpu",
                 remember: int | None = None) -> None:
        if not isinstance(image_size, int) or image_size < 8:
            raise InputError(f"image_size must be an int >= 8, got {image_size!r}")
        if not 1.0 <= float(scale) <= 4.0:
            raise InputError(f"scale must be between 1 and 4, got {scale}")
        if not isinstance(detect_every, int) or detect_every < 1:
            raise InputError(f"detect_every must be an int >= 1, got {detect_every!r}")
        if not isinstance(max_gap, int) or max_gap < 1:
            raise InputError(f"max_gap must be an int >= 1, got {max_gap!r}")
        if pad not in _PAD_MODES:
            raise InputError(f"unknown pad mode {pad!r}; choose one of {', '.join(_PAD_MODES)}")
        check_select(select)
        self.image_size = image_size
        self.scale = float(scale)
        self.detect_every = detect_every
        self.max_gap = max(max_gap, detect_every)
        self.detector = backend if isinstance(backend, FaceDetector) else make_detector(backend, device)
        self.select = select
        self.pad = pad
        self.smooth_center, self.smooth_size = float(smooth_center), float(smooth_size)
        self.deadband_center, self.deadband_size = float(deadband_center), float(deadband_size)
        remember = REMEMBER_CALLS if remember is None else remember
        if isinstance(remember, bool) or not isinstance(remember, int) or remember < 0:
            raise InputError(f"remember must be an int >= 0, got {remember!r}")
        self.memo = DetectionMemo(remember) if remember else None

    @property
    def backend(self) -> str:
        """Name of the detector in use."""
        return self.detector.name

    # -------------------------------------------------------------- geometry
    def crop_box(self, face_box: Box | np.ndarray) -> Box:
        """Detector face box -> the square crop box (``scale`` x the VoxCeleb-equivalent box)."""
        b = np.asarray(face_box, dtype=np.float64)
        side = math.sqrt(max(b[2] - b[0], 1e-6) * max(b[3] - b[1], 1e-6))
        return self._box_from_state(np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, side]))

    def _find(self, image: np.ndarray, region: Box | None = None, expected_side: float | None = None
              ) -> list[Detection]:
        """``self.detector.detect``, through ``self.memo`` when there is one."""
        if self.memo is None:
            return self.detector.detect(image, region, expected_side)
        return self.memo.detect(self.detector, image, region, expected_side)

    def _box_from_state(self, state: np.ndarray) -> Box:
        cx, cy, side = state
        d = self.detector
        half = self.scale * d.box_scale * side / 2
        cy = cy + d.box_shift * side
        return (float(cx - half), float(cy - half), float(cx + half), float(cy + half))

    def _choose(self, dets: list[Detection], what: str, select: FaceSelect | None = None) -> Detection:
        sel = self.select if select is None else select
        if sel == "largest":
            return max(dets, key=lambda d: d.side)
        if isinstance(sel, int):
            ordered = sorted(dets, key=lambda d: d.center[0])
            if not -len(ordered) <= sel < len(ordered):
                n, where = len(ordered), (f"{ordinal(sel + 1)} from the left" if sel >= 0 else
                                          f"{ordinal(-sel)} from the right")
                raise FaceIndexError(f"{what} has {n} face{'s' if n != 1 else ''}: there is no {where} (face index "
                                     f"{sel}; 0 = leftmost, -1 = rightmost)")
            return ordered[sel]
        point = np.asarray(sel, dtype=np.float64)
        return min(dets, key=lambda d: float(np.linalg.norm(d.center - point)) / d.side)

    # -------------------------------------------------------------- photos
    def detect(self, image: np.ndarray) -> list[Detection]:
        """All faces in a photo (uint8 [H, W, 3] RGB), largest first."""
        image = to_rgb_array(image)
        return sorted(self._find(image), key=lambda d: -d.side)

    def crop_image(self, image: np.ndarray, name: str = "the photo", select: FaceSelect | None = None) -> FaceCrop:
        """Crop the face of a photo.

        Args:
            image: uint8 [H, W, 3] RGB (other layouts converted by ``media.to_rgb_array``).
            name: how the photo is called in error messages.
            select: which face when there are several (as the constructor's ``select``; None: that one).

        Returns:
            ``FaceCrop`` with ``crop`` uint8 [S, S, 3] RGB and ``box`` in ``image`` pixels.

        Raises:
            NoFaceError: "no human face found in <name>" (animals, cartoons of animals, empty images),
                or a face index past the faces found.
        """
        image = to_rgb_array(image)
        dets = self.detect(image)
        if not dets:
            raise NoFaceError(
                f"no human face found in {name} (use a photo where one face is clearly visible, "
                f"roughly frontal and at least {HaarDetector.min_face * 2} pixels wide)"
            )
        if select is not None:
            check_select(select)
        det = self._choose(dets, name, select)
        box = self.crop_box(det.box)
        crop = crop_square(image, box, self.image_size, self.pad)
        return FaceCrop(crop, box, True, self.backend, 0, tuple(map(float, det.box)), det.score, det.pose, len(dets))

    # -------------------------------------------------------------- videos
    def track(self, frames: Iterable[np.ndarray], select: FaceSelect | None = None) -> "FaceTrack":
        """Track one face through video frames (uint8 [H, W, 3] RGB each); iterate the result for one
        ``FaceCrop`` per frame, in order (``found`` False where the face was lost), then read its ``report``.
        ``select`` picks the face where faces are first seen (None: the cropper's ``select``)."""
        return FaceTrack(self, frames, select)

    def track_every(self, frames: Iterable[np.ndarray], count: int) -> "GroupTrack":
        """Track ``count`` faces of a clip of several people through its frames (uint8 [H, W, 3] RGB each): the
        ``count`` largest faces of the first frame that shows that many, from the left, each followed on its own.
        Iterate the result for one ``GroupCrop`` per frame, in order; then read its ``report``."""
        return GroupTrack(self, frames, count)


@dataclass
class GroupCrop:
    """The faces of one frame of a clip of several people (``FaceCropper.track_every``).

    Attributes:
        faces: one ``FaceCrop`` per tracked face, from the left (as first seen); each ``found`` on its own.
    """

    faces: list[FaceCrop]

    @property
    def index(self) -> int:
        """Frame index in the video."""
        return self.faces[0].index

    @property
    def found(self) -> bool:
        """Whether any of the faces was found in this frame."""
        return any(f.found for f in self.faces)

    @property
    def crop(self) -> np.ndarray | None:
        """The first found face's crop, uint8 [S, S, 3] RGB (None when none was found)."""
        return next((f.crop for f in self.faces if f.found), None)


class FaceTrack(Iterator[FaceCrop]):
    """Iterator of ``FaceCrop``s for the frames of a video, with a ``TrackReport`` (see ``FaceCropper.track``).

    Detection runs every ``detect_every`` frames inside a window around the face (the whole frame
    when the face is lost, then on every frame until it is found again). The box state
    (centre x, centre y, face side) is smoothed at each detection with dead-bands and interpolated
    linearly between detections; so frames are held back until the next detection (at most
    ``detect_every`` frames in memory).
    """

    def __init__(self, cropper: FaceCropper, frames: Iterable[np.ndarray], select: FaceSelect | None = None,
                 *, group: int | None = None) -> None:
        if select is not None:
            check_select(select)
        if group is not None and not (isinstance(select, int) and 0 <= select < group):
            raise InputError(f"a face of a group of {group} is picked by its index from the left, got {select!r}")
        self.cropper = cropper
        self.select = cropper.select if select is None else select
        self.group = group  # one of ``group`` faces (``GroupTrack``): see ``_measure``
        self.report = TrackReport(backend=cropper.backend)
        self._gen = self._run(iter(frames))

    def __iter__(self) -> "FaceTrack":
        return self

    def __next__(self) -> FaceCrop:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    # state: float64 [3] = (centre x, centre y, face side) in frame pixels
    def _measure(self, frame: np.ndarray, state: np.ndarray | None) -> Detection | None:
        c = self.cropper
        self.report.detections += 1
        if state is not None:
            cx, cy, side = state
            r = 1.1 * side
            dets = c._find(frame, (cx - r, cy - r, cx + r, cy + r), expected_side=side)
            if self.group is not None:  # never a neighbour that the window reaches
                dets = self._stay(dets, state)
            if dets:
                return min(dets, key=lambda d: float(np.linalg.norm(d.center - state[:2])))
        dets = c._find(frame)
        if self.group is not None:
            return self._group_face(dets, state)
        if not dets:
            return None
        if state is None:
            return c._choose(dets, "the video", self.select)
        # lost before: prefer the face nearest to where it was, among faces of similar size
        return min(dets, key=lambda d: float(np.linalg.norm(d.center - state[:2])) / state[2]
                   + abs(math.log(d.side / state[2])))

    def _group_face(self, dets: list[Detection], state: np.ndarray | None) -> Detection | None:
        """This track's face among a whole frame's detections, as one of ``group`` faces: first, the ``select``-th
        from the left of the ``group`` largest, in a frame with at least that many (so that every face of the
        group is picked in the same frame, and a small false detection does not shift the order); once seen,
        only a face near where it was lost (``_stay``), never a neighbour."""
        if state is None:
            if len(dets) < self.group:
                return None
            largest = sorted(dets, key=lambda d: -d.side)[: self.group]
            return sorted(largest, key=lambda d: d.center[0])[self.select]
        near = self._stay(dets, state)
        return min(near, key=lambda d: float(np.linalg.norm(d.center - state[:2]))) if near else None

    @classmethod
    def _stay(cls, dets: list[Detection], state: np.ndarray) -> list[Detection]:
        """The detections that may be a group track's face: within ``GROUP_REACH`` face sides of where it was, of a
        similar size (two heads side by side have their face centres about a face side or more apart)."""
        return [d for d in dets if cls._near(state, d, reach=GROUP_REACH, size=0.5)]

    @staticmethod
    def _near(state: np.ndarray | None, det: Detection, reach: float = 0.5, size: float = 0.3) -> bool:
        """Is ``det`` the same face as ``state``: within ``reach`` face sides of it, and its size within ``size`` of
        the state's in log ratio (by default within half a face of it, within 30% of its size)?"""
        if state is None:
            return False
        dist = float(np.linalg.norm(det.center - state[:2]))
        return dist < reach * state[2] and abs(math.log(det.side / state[2])) < size

    def _smooth(self, state: np.ndarray | None, det: Detection) -> np.ndarray:
        c = self.cropper
        z = np.array([*det.center, det.side], dtype=np.float64)
        if state is None:
            return z
        side = state[2]
        d = z[:2] - state[:2]
        dist = float(np.linalg.norm(d))
        dead = c.deadband_center * side
        center = state[:2] + (c.smooth_center * d * (dist - dead) / dist if dist > dead else 0.0)
        r = math.log(z[2] / side)
        r = math.copysign(max(abs(r) - c.deadband_size, 0.0), r)
        return np.array([center[0], center[1], side * math.exp(c.smooth_size * r)])

    def _emit(self, index: int, frame: np.ndarray, state: np.ndarray | None, found: bool,
              det: Detection | None) -> FaceCrop:
        c = self.cropper
        self.report.frames += 1
        if found:
            self.report.found += 1
        else:
            self.report.missing.append(index)
        if state is None:
            return FaceCrop(None, None, False, c.backend, index)
        box = c._box_from_state(state)
        cx, cy, side = state
        face_box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        crop = crop_square(frame, box, c.image_size, c.pad)
        return FaceCrop(crop, box, found, c.backend, index, face_box,
                        det.score if det else None, det.pose if det else None)

    def _run(self, frames: Iterator[np.ndarray]) -> Iterator[FaceCrop]:
        try:
            yield from self._track(frames)
        finally:  # stop the frame source (e.g. an ffmpeg decoder) when the consumer stops early
            close = getattr(frames, "close", None)
            if close is not None:
                close()

    def _track(self, frames: Iterator[np.ndarray]) -> Iterator[FaceCrop]:
        c = self.cropper
        every = gap = c.detect_every  # gap: the current stride between detections
        pending: list[tuple[int, np.ndarray]] = []  # frames after the last detection, awaiting the next
        state: np.ndarray | None = None  # smoothed box at the last detection with a face
        state_idx = -1
        key_frame: np.ndarray | None = None  # the frame of that detection
        last_det: Detection | None = None
        lost = True  # no face yet: detect on every frame
        for index, frame in enumerate(frames):
            frame = to_rgb_array(frame)
            if not lost and index - state_idx < gap:
                pending.append((index, frame))
                continue
            det = self._measure(frame, state)
            if det is not None:
                if lost:  # after a gap, carry on smoothly if the face is back where it was; else start afresh
                    keys, split = [(index, frame, self._smooth(state if self._near(state, det) else None, det),
                                    True, det)], True
                else:
                    keys, split = self._stride(state_idx, state, last_det, key_frame, pending, index, frame, det)
                for j, f, st, found, d in keys:
                    yield self._emit(j, f, st, found, d)
                pending.clear()
                state, state_idx, key_frame, last_det, lost = keys[-1][2], index, frame, det, False
                gap = every if split else min(2 * gap, self._longest_gap(frame))
                continue
            # the face was lost somewhere since the last detection: look at each held frame
            for j, f, st, found, dj in self._each(state, pending):
                if found:
                    state, state_idx, key_frame, last_det = st, j, f, dj
                yield self._emit(j, f, st, found, dj)
            pending.clear()
            lost, gap = True, every
            yield self._emit(index, frame, state, False, None)
        if pending:  # the video ended between two detections: close with a detection on its last frame
            j_last, f_last = pending[-1]
            det = self._measure(f_last, state)
            if det is not None:
                keys, _ = self._stride(state_idx, state, last_det, key_frame, pending[:-1], j_last, f_last, det)
                for j, f, st, found, d in keys:
                    yield self._emit(j, f, st, found, d)
            else:
                for j, f in pending:
                    yield self._emit(j, f, state, True, last_det)

    def _longest_gap(self, frame: np.ndarray) -> int:
        c = self.cropper
        return max(c.detect_every, min(c.max_gap, MAX_PENDING_BYTES // max(frame.nbytes, 1)))

    def _stride(self, i0: int, s0: np.ndarray, d0: Detection | None, f0: np.ndarray,
                seg: list[tuple[int, np.ndarray]], i1: int, f1: np.ndarray, det1: Detection,
                ) -> tuple[list[tuple[int, np.ndarray, np.ndarray, bool, Detection | None]], bool]:
        """Boxes for the frames ``seg`` between two detections (at ``i0``: state ``s0``, frame ``f0``; at
        ``i1``: ``det1`` in ``f1``) and for ``i1``: [(index, frame, state, found, detection)], and whether the
        stride was split by detections in between."""
        thumbs = None
        if len(seg) >= self.cropper.detect_every:  # longer than the fixed stride: check it
            thumbs = [window_thumbnail(f, s0) for f in [f0, *(f for _, f in seg), f1]]
        return self._split(i0, s0, d0, seg, i1, f1, det1, thumbs)

    def _split(self, i0, s0, d0, seg, i1, f1, det1, thumbs):
        s1 = self._smooth(s0, det1)
        k = self._where_to_split(s0, s1, thumbs) if thumbs is not None and len(seg) >= self.cropper.detect_every \
            else None
        if k is not None:
            jm, fm = seg[k]
            dm = self._measure(fm, s0)
            self.report.refinements += 1
            if dm is None:  # no face where the window changed: look at every frame of the stride, as when lost
                inner = self._each(s0, seg, missed=k)
                return inner + [(i1, f1, self._smooth(inner[-1][2], det1), True, det1)], True
            # thumbs: [i0, *seg, i1] -> [i0, seg[:k], jm] and [jm, seg[k+1:], i1]
            left, _ = self._split(i0, s0, d0, seg[:k], jm, fm, dm, thumbs[:k + 2])
            right, _ = self._split(jm, left[-1][2], dm, seg[k + 1:], i1, f1, det1, thumbs[k + 1:])
            return left + right, True
        out = [(j, f, s0 + (j - i0) / (i1 - i0) * (s1 - s0), True, d0) for j, f in seg]
        return out + [(i1, f1, s1, True, det1)], False

    def _each(self, state: np.ndarray | None, seg: list[tuple[int, np.ndarray]], missed: int | None = None
              ) -> list[tuple[int, np.ndarray, np.ndarray | None, bool, Detection | None]]:
        """Detect on every frame of ``seg`` (the face went missing among them; ``seg[missed]`` is known to show
        none), carrying the smoothed box through: [(index, frame, state, found, detection)] as ``_stride``'s."""
        out = []
        for n, (j, f) in enumerate(seg):
            dj = self._measure(f, state) if n != missed else None
            if dj is not None:
                state = self._smooth(state, dj)
            out.append((j, f, state, dj is not None, dj))
        return out

    @staticmethod
    def _where_to_split(s0: np.ndarray, s1: np.ndarray, thumbs: list[np.ndarray]) -> int | None:
        """Index into the stride's inner frames to detect at, or None: the middle when the crop moved over the
        stride by more than ``STRIDE_MOVE``, else the frame whose face window a blend of the two ends explains
        worst, if any is off by more than ``STRIDE_CHANGE``."""
        n = len(thumbs) - 1
        moved = max(float(np.linalg.norm(s1[:2] - s0[:2])) / s0[2], abs(math.log(s1[2] / s0[2])))
        if moved > STRIDE_MOVE:
            return (n - 1) // 2
        a, b = thumbs[0], thumbs[-1]
        devs = [float(np.abs(t - (a + (i / n) * (b - a))).mean()) for i, t in enumerate(thumbs[1:-1], 1)]
        k = int(np.argmax(devs))
        return k if devs[k] > STRIDE_CHANGE else None


#: how far (in face sides) a face of a group clip may be from where it was to be taken for it (``FaceTrack._stay``)
GROUP_REACH = 0.75
#: the most frame data a video tracker holds between two detections (its stride shrinks for big frames)
MAX_PENDING_BYTES = 256 * 2**20
#: a stride is split in the middle when its crop moves more than this (centre, or log side, / face side) ...
STRIDE_MOVE = 0.03
#: ... and where a frame's face window differs from the blend of the stride's
#: two ends by more than this (mean absolute difference of 16x16 grey thumbnails in [0, 1])
STRIDE_CHANGE = 0.04


class _SharedDetections(FaceDetector):
    """A detector whose whole-frame detections are shared: the tracks of a ``GroupTrack`` look for their faces in
    the same frames (each one, until every face is first seen, and after it loses its face), so each frame is
    searched once. Remembers the last ``keep`` frames it searched (holding them, so that their ids stay theirs;
    tracks that search whole frames are lost, and a lost track reads no further ahead than the frame it searches,
    so they search the same frame within a step of each other)."""

    def __init__(self, detector: FaceDetector, keep: int = 4) -> None:
        self.detector, self.keep = detector, keep
        self.name, self.box_scale, self.box_shift = detector.name, detector.box_scale, detector.box_shift
        self._seen: dict[int, tuple[np.ndarray, list[Detection]]] = {}

    def detect(self, image: np.ndarray, region: Box | None = None, expected_side: float | None = None) -> list[Detection]:
        if region is not None or expected_side is not None:
            return self.detector.detect(image, region, expected_side)
        hit = self._seen.get(id(image))
        if hit is not None and hit[0] is image:
            return list(hit[1])
        dets = self.detector.detect(image)
        self._seen[id(image)] = (image, dets)
        while len(self._seen) > self.keep:
            self._seen.pop(next(iter(self._seen)))  # the oldest (dicts keep their order)
        return list(dets)


class GroupTrack(Iterator[GroupCrop]):
    """``GroupCrop``s for the frames of a clip of several people (see ``FaceCropper.track_every``): one
    ``FaceTrack`` per face over the same frames, in step. Frames before the first that shows every face have
    none found. ``report`` counts a frame as found when every face was, and adds up the detector runs."""

    def __init__(self, cropper: FaceCropper, frames: Iterable[np.ndarray], count: int) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InputError(f"the number of faces to track must be an int >= 1, got {count!r}")
        self.count = count
        self.frames = frames
        copies = itertools.tee(iter(frames), count)  # each track reads every frame (held at most a stride apart)
        shared = copy.copy(cropper)  # the cropper's settings, with each frame searched once for all the tracks
        shared.detector = _SharedDetections(cropper.detector)
        self.tracks = [FaceTrack(shared, f, i, group=count) for i, f in enumerate(copies)]
        self.report = TrackReport(backend=cropper.backend, faces=count)
        self._done = False

    def __iter__(self) -> "GroupTrack":
        return self

    def __next__(self) -> GroupCrop:
        if self._done:  # ended, or a track raised: over, as a generator is (reads no frame)
            raise StopIteration
        try:
            faces = [next(t) for t in self.tracks]
        except BaseException:
            self._done = True
            raise
        r = self.report
        r.frames += 1
        if all(f.found for f in faces):
            r.found += 1
        else:
            r.missing.append(faces[0].index)
        r.detections = sum(t.report.detections for t in self.tracks)
        r.refinements = sum(t.report.refinements for t in self.tracks)
        return GroupCrop(faces)

    def close(self) -> None:
        """Stop the tracks and the frame source (e.g. an ffmpeg decoder)."""
        for t in self.tracks:
            t.close()
        close = getattr(self.frames, "close", None)
        if close is not None:
            close()


def window_thumbnail(frame: np.ndarray, state: np.ndarray, size: int = 16) -> np.ndarray:
    """The face window (box side x side around the centre of ``state`` = (cx, cy, side)) of an RGB uint8
    [H, W, 3] frame as a float32 [size, size] grey thumbnail in [0, 1] (green channel, area-averaged)."""
    import cv2

    cx, cy, side = state
    h, w = frame.shape[:2]
    x0, x1 = int(np.clip(cx - side / 2, 0, w - 1)), int(np.clip(cx + side / 2, 1, w))
    y0, y1 = int(np.clip(cy - side / 2, 0, h - 1)), int(np.clip(cy + side / 2, 1, h))
    patch = np.ascontiguousarray(frame[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1), 1])
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def box_motion(boxes: Sequence[Box]) -> np.ndarray:
    """Frame-to-frame motion of crop boxes, relative to their size: float [N-1], the largest of the
    centre displacement and the side change between consecutive boxes, divided by the box side."""
    b = np.asarray(boxes, dtype=np.float64)  # [N, 4]
    if b.ndim != 2 or b.shape[0] < 2:
        return np.zeros(0)
    side = np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))  # [N]
    center = (b[:, :2] + b[:, 2:]) / 2  # [N, 2]
    move = np.linalg.norm(np.diff(center, axis=0), axis=1)  # [N-1]
    grow = np.abs(np.diff(side))  # [N-1]
    return np.maximum(move, grow) / side[:-1]


__all__ = ["DETECTORS", "EVERY_FACE", "REMEMBER_CALLS", "Detection", "DetectionMemo", "FaceAlignmentDetector",
           "FaceCrop", "FaceCropper", "FaceDetector", "FaceSelect", "FaceTrack", "HaarDetector", "TrackReport",
           "available_backends", "box_motion", "check_select", "crop_square", "describe_select",
           "face_alignment_available", "face_alignment_weights", "feather_mask", "head_pose_from_landmarks",
           "make_detector", "ordinal", "parse_face_select", "paste_back"]
