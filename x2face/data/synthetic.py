"""A procedural talking-head world with exact ground truth for every control X2Face has.

VoxCeleb cannot be downloaded here, so x2face trains and measures on a world it can render itself:

* an **identity** (``identity(seed)``) is a textured 3-D head: an ellipsoid skull whose width, height
  and depth vary (the "fatter/longer" face shape the identity loss must keep), an ellipsoid nose
  that protrudes and occludes in profile, optional ears, and a UV texture map painted from the seed
  (skin, hair and hairline, eyes, brows, lips, optional beard and glasses) over a background. The UV
  map (``SyntheticWorld.texture``) is the ground truth for the *embedded face*;
* a **frame** (``FrameParams``) is a head pose (yaw, pitch, roll in degrees), a small translation and
  zoom, a mouth opening and an eye blink (0..1) and a light; ``SyntheticWorld.render`` ray-casts any
  identity at any frame, batched, in torch, on the CPU or a GPU, at any size 64-256 px;
* a **video** (``sample_video``) is a smooth random trajectory of all of these at 25 fps with a
  speech-like 16 kHz audio track that the mouth causes (silent when closed, louder and with a higher
  first formant as it opens, a pitch per identity, background noise), so audio predicts the mouth;
* ``SyntheticPairs`` is the torch ``Dataset`` of the training stages (sources and a driving frame of
  one video, and a driving frame of another identity), with a fast batched path.

Everything is deterministic from integer seeds (``torch.Generator`` throughout): the same seeds
give identical tensors, on any batch composition. Identities are split into disjoint seed ranges
(``SPLITS``).

Conventions
-----------
Images are float RGB in [0, 1], NCHW. Image coordinates are normalised like ``grid_sample`` with
``align_corners=True``: x and y in [-1, 1], x to the right, y down; pixel column ``(x + 1) / 2 * (S - 1)``.
The camera is orthographic. Head-local coordinates: x to the viewer's right (of a frontal face),
y up, z towards the camera; the head's centre is the origin. A head-local point ``p`` appears at

    world = R(yaw, pitch, roll) @ p,   x_img = zoom * world_x + tx,   y_img = -zoom * world_y + ty,

with ``R = Rz(-roll) @ Rx(-pitch) @ Ry(yaw)``: positive yaw turns the face to the image's right (the
nose moves right), positive pitch raises the face (the nose moves up), positive roll tilts the top of
the head to the image's right (clockwise on screen). Lengths are in image half-widths at zoom 1.

UV texture coordinates of a head-local point: ``u = atan2(x / width, z / depth) / pi`` (longitude; 0
is the front, +-1 the back) and ``v = -y / height`` (-1 the crown, 1 the chin), both in [-1, 1] and
laid out like ``grid_sample`` coordinates on a ``[3, T, T]`` texture (u along columns, v along rows).
Eyes and mouth are drawn over the texture at render time (they blink and open); everything else
on the head comes from the texture, so an edited texture is the ground truth for an edited face.
"""
from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import InputError

#: Disjoint identity-seed ranges. Every integer seed in a range is a different identity.
SPLITS: dict[str, range] = {
    "train": range(0, 1_000_000),
    "val": range(1_000_000, 1_100_000),
    "test": range(2_000_000, 2_100_000),
}

SAMPLE_RATE = 16_000  #: audio sample rate of ``sample_video``, Hz
FPS = 25  #: default frame rate of ``sample_video``
TEXTURE_SIZE = 256  #: side of the UV texture maps
POSE_LIMITS = (60.0, 30.0, 30.0)  #: |yaw|, |pitch|, |roll| limits of the videos, degrees
AMBIENT = 0.42  #: ambient light; a frame's ``light`` vector adds Lambert shading on top
VIDEO_SECONDS = 10.0  #: length of the videos ``SyntheticPairs`` draws its frames from
MIN_SIZE, MAX_SIZE = 16, 1024  #: render sizes accepted (64-256 is what x2face uses)

_MASK64 = (1 << 64) - 1
_SALT_IDENTITY, _SALT_TEXTURE, _SALT_BACKGROUND, _SALT_VIDEO, _SALT_AUDIO, _SALT_ITEM = 11, 12, 13, 14, 15, 16


def mix_seeds(*values: int) -> int:
    """Combine integers into one 63-bit seed (splitmix64 steps): nearby inputs give unrelated seeds."""
    h = 0x9E3779B97F4A7C15
    for value in values:
        h = (h ^ (int(value) & _MASK64)) & _MASK64
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK64
        h ^= h >> 31
    return h & ((1 << 63) - 1)


def _generator(*values: int) -> torch.Generator:
    return torch.Generator().manual_seed(mix_seeds(*values))


# ----------------------------------------------------------------------------------------------- frames
@dataclass
class FrameParams:
    """What changes from frame to frame, as batched float tensors on one device.

    Attributes:
        pose: [B, 3] (yaw, pitch, roll) in degrees (see the module docstring for the signs).
        translation: [B, 2] (x, y) image shift in normalised image units (1 = half the image).
        zoom: [B] scale (1 = the head at its natural size, 52-68 % of the image height; videos use
            1.15-1.4, so the head fills 60-95 % of the frame height, like a 1.6x VoxCeleb face crop).
        mouth: [B] mouth opening, 0 (closed) .. 1 (wide open).
        blink: [B] eye closure, 0 (open) .. 1 (closed).
        light: [B, 3] world-space vector towards the light (x right, y up, z towards the camera);
            its length is the strength of the Lambert term added to ``AMBIENT``.
    """

    pose: torch.Tensor
    translation: torch.Tensor
    zoom: torch.Tensor
    mouth: torch.Tensor
    blink: torch.Tensor
    light: torch.Tensor

    def __post_init__(self) -> None:
        shapes = {"pose": 3, "translation": 2, "zoom": None, "mouth": None, "blink": None, "light": 3}
        b = None
        for name, last in shapes.items():
            x = getattr(self, name)
            if not isinstance(x, torch.Tensor) or not x.is_floating_point():
                raise InputError(f"FrameParams.{name} must be a float tensor, got {type(x).__name__}")
            want_rank = 1 if last is None else 2
            if x.dim() != want_rank or (last is not None and x.shape[1] != last):
                want = "[B]" if last is None else f"[B, {last}]"
                raise InputError(f"FrameParams.{name} must have shape {want}, got {list(x.shape)}")
            if b is None:
                b = x.shape[0]
            elif x.shape[0] != b:
                raise InputError(f"FrameParams fields disagree on the batch size: {name} has {x.shape[0]}, expected {b}")

    def __len__(self) -> int:
        return self.pose.shape[0]

    @classmethod
    def neutral(cls, batch: int = 1, device: str | torch.device = "cpu", **overrides) -> "FrameParams":
        """``batch`` frontal frames: pose 0, no shift, zoom 1, mouth closed, eyes open, light from the
        upper left front. Keyword overrides (tensors or broadcastable values) replace fields."""
        z = torch.zeros(batch, device=device)
        fields = {
            "pose": torch.zeros(batch, 3, device=device),
            "translation": torch.zeros(batch, 2, device=device),
            "zoom": z + 1.0,
            "mouth": z.clone(),
            "blink": z.clone(),
            "light": torch.tensor([-0.25, 0.3, 0.45], device=device).expand(batch, 3).clone(),
        }
        for name, value in overrides.items():
            if name not in fields:
                raise InputError(f"FrameParams has no field {name!r}")
            fields[name] = torch.as_tensor(value, dtype=torch.float32, device=device).expand_as(fields[name]).clone()
        return cls(**fields)

    def to(self, device: str | torch.device) -> "FrameParams":
        """The same parameters on ``device``."""
        return FrameParams(**{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})

    def index(self, idx) -> "FrameParams":
        """Rows ``idx`` (a slice, index tensor or list) of every field."""
        return FrameParams(**{f.name: getattr(self, f.name)[idx] for f in dataclasses.fields(self)})

    def replace(self, **fields) -> "FrameParams":
        """A copy with some fields replaced (tensors of the same shapes)."""
        return dataclasses.replace(self, **fields)

    @staticmethod
    def cat(items: Sequence["FrameParams"]) -> "FrameParams":
        """Concatenate along the batch."""
        return FrameParams(**{f.name: torch.cat([getattr(p, f.name) for p in items]) for f in dataclasses.fields(FrameParams)})


# ------------------------------------------------------------------------------------------- identities
@dataclass(frozen=True)
class Identity:
    """One synthetic person, drawn from ``seed`` (see ``identity``).

    Geometry is in head-local units (image half-widths at zoom 1); feature positions are UV
    coordinates (``u`` longitude / pi, ``v = -y / height``); colours are RGB in [0, 1].
    """

    seed: int
    width: float  #: head semi-axis along x ("fatter")
    height: float  #: head semi-axis along y ("longer")
    depth: float  #: head semi-axis along z
    nose_center: tuple[float, float, float]  #: centre of the nose ellipsoid, head-local
    nose_radii: tuple[float, float, float]  #: semi-axes of the nose ellipsoid
    ears: bool
    ear_center: tuple[float, float, float]  #: right ear centre (the left one is mirrored in x)
    ear_radii: tuple[float, float, float]
    eye_u: float  #: |u| of the eye centres
    eye_v: float
    eye_w: float  #: eye half-width in u
    eye_h: float  #: eye half-height in v
    iris_u: float
    iris_v: float
    mouth_v: float
    mouth_w: float  #: mouth half-width in u
    lip_h: float  #: half-height of the closed lips in v
    open_h: float  #: extra half-height of the mouth gap when fully open, in v
    brow_gap: float
    brow_thick: float
    brow_arch: float
    face_u: float  #: half-width of the face oval in u
    hairline: float  #: v of the hairline at the middle of the forehead
    hair_bottom: float  #: v where the hair ends at the back
    bald: bool
    beard: float  #: beard density, 0 = none
    glasses: bool
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    lip: tuple[float, float, float]
    iris: tuple[float, float, float]
    glasses_color: tuple[float, float, float]
    voice_pitch: float  #: fundamental frequency of the voice, Hz
    voice_formant: float  #: scale of the voice's formant frequencies (vocal tract length)

    @property
    def nose_tip(self) -> tuple[float, float, float]:
        """Head-local position of the nose tip (the point of the face nearest the camera at pose 0)."""
        x, y, z = self.nose_center
        return (x, y, z + self.nose_radii[2])

    @property
    def shape(self) -> tuple[float, float, float]:
        """``(width, height, depth)`` of the head."""
        return (self.width, self.height, self.depth)


def _lerp3(a, b, t) -> tuple[float, float, float]:
    return tuple(float(x + (y - x) * t) for x, y in zip(a, b))


_SKIN_DARK, _SKIN_LIGHT = (0.30, 0.19, 0.13), (0.95, 0.80, 0.70)
_HAIR = [(0.07, 0.06, 0.05), (0.25, 0.15, 0.08), (0.45, 0.28, 0.14), (0.80, 0.66, 0.40), (0.55, 0.22, 0.08),
         (0.62, 0.62, 0.62)]
_IRIS = [(0.25, 0.15, 0.07), (0.20, 0.40, 0.65), (0.30, 0.45, 0.25), (0.10, 0.08, 0.06)]


@lru_cache(maxsize=65536)
def identity(seed: int) -> Identity:
    """The identity drawn from ``seed`` (any int; ``SPLITS`` says which seeds are train/val/test)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"an identity seed must be an int, got {seed!r}")
    g = _generator(seed, _SALT_IDENTITY)
    r = torch.rand(48, generator=g, dtype=torch.float64).tolist()
    it = iter(r)

    def U(lo: float, hi: float) -> float:
        return lo + (hi - lo) * next(it)

    width, height, depth = U(0.36, 0.52), U(0.52, 0.68), U(0.42, 0.54)
    nose_y = U(-0.14, -0.02) * height
    nose_r = (U(0.055, 0.085), U(0.10, 0.15) * height / 0.6, U(0.09, 0.13))
    protrude = U(0.07, 0.12)
    surface_z = depth * math.sqrt(max(0.0, 1 - (nose_y / height) ** 2))
    nose_center = (0.0, nose_y, surface_z + protrude - nose_r[2])
    ears = next(it) < 0.75
    ear_y = U(0.0, 0.12) * height
    ear_r = (U(0.035, 0.05), U(0.10, 0.14) * height / 0.6, U(0.06, 0.08))
    ear_x = width * math.sqrt(max(0.0, 1 - (ear_y / height) ** 2)) * 0.93
    eye_v = U(-0.30, -0.16)
    eye_u = U(0.105, 0.135)
    eye_w = U(0.040, 0.050) * 0.45 / width
    eye_h = U(0.045, 0.060)
    iris_r = U(0.022, 0.027)
    mouth_v = U(0.36, 0.48)
    skin_t = next(it)
    skin = _lerp3(_SKIN_DARK, _SKIN_LIGHT, skin_t)
    skin = (skin[0] * U(0.97, 1.03), skin[1] * U(0.96, 1.02), skin[2] * U(0.94, 1.04))
    hair = _HAIR[int(next(it) * len(_HAIR)) % len(_HAIR)]
    shade = U(0.8, 1.2)
    hair = tuple(min(1.0, c * shade) for c in hair)
    lip = _lerp3(skin, (0.75, 0.28, 0.30), U(0.35, 0.65))
    iris = _IRIS[int(next(it) * len(_IRIS)) % len(_IRIS)]
    bald = next(it) < 0.12
    beard_draw, beard_amount = next(it), U(0.45, 0.9)
    glasses = next(it) < 0.25
    gray = U(0.05, 0.35)
    glasses_color = (gray, gray * U(0.8, 1.0), gray * U(0.6, 1.0))
    return Identity(
        seed=seed, width=width, height=height, depth=depth,
        nose_center=nose_center, nose_radii=nose_r,
        ears=ears, ear_center=(ear_x, ear_y, U(-0.06, 0.02)), ear_radii=ear_r,
        eye_u=eye_u, eye_v=eye_v, eye_w=eye_w, eye_h=eye_h,
        iris_u=iris_r / (math.pi * width), iris_v=iris_r / height,
        mouth_v=mouth_v, mouth_w=U(0.065, 0.095) * 0.45 / width, lip_h=U(0.018, 0.03), open_h=U(0.07, 0.11),
        brow_gap=U(0.03, 0.06), brow_thick=U(0.012, 0.025), brow_arch=U(0.0, 0.03),
        face_u=U(0.34, 0.40), hairline=U(-0.72, -0.42), hair_bottom=U(0.3, 0.85), bald=bald,
        beard=beard_amount if beard_draw < 0.25 else 0.0, glasses=glasses,
        skin=skin, hair=hair, lip=lip, iris=iris, glasses_color=glasses_color,
        voice_pitch=U(85.0, 255.0), voice_formant=U(0.85, 1.2),
    )


def _check_seeds(seeds, name: str = "identity_seeds") -> list[int]:
    if isinstance(seeds, torch.Tensor):
        seeds = seeds.tolist()
    if isinstance(seeds, int) or not isinstance(seeds, Iterable):
        raise InputError(f"{name} must be a list of int seeds, got {type(seeds).__name__}")
    seeds = list(seeds)
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int):
            raise InputError(f"{name} must hold ints, got {s!r}")
    return seeds


# ----------------------------------------------------------------------------------------- texture paint
def _soft(d: torch.Tensor, edge: float = 0.08) -> torch.Tensor:
    """Anti-aliased inside-ness of a normalised distance ``d`` (1 at the boundary): 1 inside, 0 outside."""
    return ((1.0 - d) / edge + 0.5).clamp(0.0, 1.0)


def _blend(a: torch.Tensor, b, w: torch.Tensor) -> torch.Tensor:
    """``a + w * (b - a)`` with broadcasting (b may be a number); faster than ``torch.lerp`` with a
    broadcast weight on a CPU."""
    return torch.addcmul(a, w, b - a)


def _per_id(ids: Sequence[Identity], name: str, device) -> torch.Tensor:
    """Field ``name`` of each identity: [N, 1, 1, 1] for scalars, [N, C, 1, 1] for tuples."""
    vals = [getattr(i, name) for i in ids]
    t = torch.tensor(vals, dtype=torch.float32, device=device)
    return t.reshape(len(ids), -1, 1, 1)  # [N] or [N, C] -> [N, C, 1, 1]


def _noise(gens: list[torch.Generator], shape: tuple[int, ...], size: tuple[int, int], device) -> torch.Tensor:
    """Per-identity Gaussian noise of ``shape`` (C, h, w), bicubically upsampled to ``size``: [N, C, H, W]."""
    n = torch.stack([torch.randn(shape, generator=g) for g in gens]).to(device)  # [N, C, h, w]
    if tuple(shape[1:]) == tuple(size):
        return n
    return F.interpolate(n, size=size, mode="bicubic", align_corners=False)


def _window(size: int, u0: float, u1: float, v0: float, v1: float, device):
    """Texel slices covering u in [u0, u1], v in [v0, v1] of a [T, T] map, and their (u, v) coordinates
    as [1, 1, 1, w] and [1, 1, h, 1] (``align_corners=True`` layout)."""
    c0, c1 = int(math.floor((u0 + 1) / 2 * (size - 1))), int(math.ceil((u1 + 1) / 2 * (size - 1))) + 1
    r0, r1 = int(math.floor((v0 + 1) / 2 * (size - 1))), int(math.ceil((v1 + 1) / 2 * (size - 1))) + 1
    c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, size), min(r1, size)
    step = 2.0 / (size - 1)
    u = (-1 + step * torch.arange(c0, c1, device=device, dtype=torch.float32)).view(1, 1, 1, -1)  # [w] -> [1, 1, 1, w]
    v = (-1 + step * torch.arange(r0, r1, device=device, dtype=torch.float32)).view(1, 1, -1, 1)  # [h] -> [1, 1, h, 1]
    return (slice(r0, r1), slice(c0, c1)), u, v


def paint_textures(ids: Sequence[Identity], size: int = TEXTURE_SIZE, device: str | torch.device = "cpu") -> torch.Tensor:
    """Paint the UV maps of ``ids`` (batched; a few ms per identity on a CPU).

    Large areas (skin, hair, ears, beard) are painted at half resolution and upsampled; the small
    features (eyes, brows, glasses, nostrils, lips) at full resolution in windows around them.

    Returns:
        float [N, 4, size, size] in [0, 1]: RGB albedo and, in channel 3, the face region (skin of the
        face oval below the hairline, where edits are measured).
    """
    n = len(ids)
    gens = [_generator(i.seed, _SALT_TEXTURE) for i in ids]
    h = size // 2
    low = _noise(gens, (1, 6, 12), (h, h), device)  # [N, 1, h, h] slow shading variation
    mid = _noise(gens, (1, 32, 64), (h, h), device)  # [N, 1, h, h] skin blotches
    streak = _noise(gens, (1, 12, 96), (h, h), device)  # [N, 1, h, h] hair strands (fast along u)
    fine = _noise(gens, (1, h, h), (h, h), device)  # [N, 1, h, h]
    P = lambda name: _per_id(ids, name, device)  # noqa: E731
    skin, hair = P("skin"), P("hair")
    width, height, depth = P("width"), P("height"), P("depth")

    # ---- half resolution: skin, cheeks, hair, ears, beard, face region
    u = torch.linspace(-1, 1, h, device=device).view(1, 1, 1, h)  # [1, 1, 1, h] longitude / pi
    v = torch.linspace(-1, 1, h, device=device).view(1, 1, h, 1)  # [1, 1, h, 1] -y / height
    au = u.abs()
    shade = 1.0 + 0.06 * low + 0.05 * mid + 0.02 * fine  # [N, 1, h, h]
    cheek = torch.exp(-(((au - 0.15) / 0.07) ** 2 + ((v - 0.12) / 0.12) ** 2))  # [1, 1, h, h]
    # [3] -> [1, 3, 1, 1]
    col = skin * shade * (1.0 + cheek * torch.tensor([0.10, -0.04, -0.04], device=device).view(1, 3, 1, 1))

    face_u, hairline, hair_bottom, bald = P("face_u"), P("hairline"), P("hair_bottom"), P("bald")
    oval = torch.sqrt((u / face_u) ** 2 + ((v - 0.18) / 0.88) ** 2)  # < 1 on the face
    in_face = _soft(oval, 0.06)
    line = hairline + 0.45 * (u / face_u) ** 2  # the hairline recedes to the sides
    above_line = ((line - v) / 0.03 + 0.5).clamp(0, 1)
    above_bottom = ((hair_bottom - v) / 0.04 + 0.5).clamp(0, 1)
    full = _blend(above_bottom, above_line, in_face)  # no seam at the oval's edge
    fringe = (1 - in_face) * above_bottom * ((v + 0.25) / 0.06 + 0.5).clamp(0, 1)  # bald: hair only low at the back
    hair_mask = _blend(full, fringe, bald)
    col = _blend(col, hair * (1.0 + 0.28 * streak + 0.06 * fine), hair_mask)
    face_region = in_face * (1 - hair_mask)

    # ears: a skin patch where the ear ellipsoids map (over the hair), a darker bowl inside
    ec, er, has_ears = P("ear_center"), P("ear_radii"), P("ears")
    ear_u = torch.atan2(ec[:, 0:1] / width, ec[:, 2:3] / depth) / math.pi
    d = torch.sqrt(((au - ear_u) / 0.07) ** 2 + ((v + ec[:, 1:2] / height) / (1.1 * er[:, 1:2] / height)) ** 2)
    col = _blend(col, skin * 0.97, has_ears * _soft(d, 0.15))
    col = _blend(col, skin * 0.7, has_ears * _soft(d / 0.45, 0.4))

    # beard and moustache, below the nose
    nc, nr = P("nose_center"), P("nose_radii")
    nos_v = -(nc[:, 1:2] - 0.7 * nr[:, 1:2]) / height
    below_nose = ((v - nos_v - 0.04) / 0.04 + 0.5).clamp(0, 1)
    beard = P("beard") * below_nose * _soft(oval, 0.08) * (0.75 + 0.25 * fine).clamp(0, 1) * (0.8 + 0.2 * streak).clamp(0, 1)
    col = _blend(col, hair * 0.85, beard.clamp(0, 1))

    tex = F.interpolate(torch.cat([col, face_region.expand(n, 1, h, h)], 1), size=(size, size), mode="bilinear",
                        align_corners=True)  # [N, 4, h, h] -> [N, 4, T, T]

    # ---- full resolution, in windows: nostrils and closed lips
    (rows, cols), u, v = _window(size, -0.2, 0.2, -0.15, 0.62, device)
    au = u.abs()
    col = tex[:, :3, rows, cols]
    nos_u = torch.atan2(0.45 * nr[:, 0:1] / width, nc[:, 2:3] / depth) / math.pi
    d = torch.sqrt(((au - nos_u) / (0.22 * nr[:, 0:1] / (math.pi * width))) ** 2
                   + ((v - nos_v) / (0.12 * nr[:, 1:2] / height)) ** 2)
    col = col * (1.0 - 0.585 * _soft(d, 0.3))  # 90 % of the way to 0.35 x
    col = _paint_lips(col, u, v - P("mouth_v"), P("mouth_w"), P("lip_h"), P("lip"))
    tex[:, :3, rows, cols] = col

    # ---- eyes (white, iris, pupil, lashes), brows, glasses
    (rows, cols), u, v = _window(size, -0.6, 0.6, -0.55, 0.02, device)
    au = u.abs()
    col = tex[:, :3, rows, cols]
    eye_u, eye_v, eye_w, eye_h = P("eye_u"), P("eye_v"), P("eye_w"), P("eye_h")
    du, dv = (au - eye_u) / eye_w, (v - eye_v) / eye_h
    d_eye = torch.sqrt(du**2 + dv**2)
    inside_eye = _soft(d_eye, 0.15)
    col = _blend(col, 0.93, inside_eye)
    d_iris = torch.sqrt(((au - eye_u) / P("iris_u")) ** 2 + ((v - eye_v) / P("iris_v")) ** 2)
    col = _blend(col, P("iris"), inside_eye * _soft(d_iris, 0.15))
    col = _blend(col, 0.03, inside_eye * _soft(d_iris / 0.45, 0.3))
    lash = ((d_eye - 1.0).abs() < 0.18).float() * (dv < 0.1).float()
    col = _blend(col, 0.08, 0.85 * lash)
    brow_v = eye_v - eye_h - P("brow_gap") - P("brow_arch") * (1 - ((au - eye_u) / (1.4 * eye_w)) ** 2)
    in_u = _soft(((au - eye_u) / (1.4 * eye_w)).abs(), 0.1)
    in_v = _soft(((v - brow_v) / P("brow_thick")).abs(), 0.3)
    brow_col = _blend(hair * 0.75, 0.12, bald)
    col = _blend(col, brow_col, 0.9 * in_u * in_v)
    glasses, gcol = P("glasses"), P("glasses_color")
    d_lens = torch.sqrt(((au - eye_u) / (2.0 * eye_w)) ** 2 + ((v - eye_v) / (2.3 * eye_h)) ** 2)
    col = _blend(col, col * 0.85 + 0.1, glasses * 0.5 * _soft(d_lens, 0.05))
    rim = _soft(((d_lens - 1.0).abs() / 0.1), 0.5)
    bridge = _soft(au / (eye_u - 1.9 * eye_w).clamp(min=1e-3), 0.05) * _soft(((v - eye_v + 0.3 * eye_h).abs() / 0.012), 0.4)
    arm = ((au - eye_u - 2.0 * eye_w) > 0).float() * (au < ear_u).float() * _soft(((v - eye_v + 0.5 * eye_h).abs() / 0.01), 0.4)
    col = _blend(col, gcol, glasses * torch.maximum(torch.maximum(rim, bridge), arm))
    tex[:, :3, rows, cols] = col
    return tex.clamp_(0, 1)


def _paint_lips(col, u, dv, mouth_w, lip_h, lip, gap_h=None) -> torch.Tensor:
    """Lips (and, when ``gap_h`` is given, the open mouth) over ``col``; ``dv`` = v - mouth_v.

    The same drawing paints closed lips into a texture and the moving mouth at render time.
    """
    du2 = (u / mouth_w) ** 2
    outer_h = lip_h if gap_h is None else lip_h + gap_h
    d_out = torch.sqrt(du2 + (dv / outer_h) ** 2)
    col = _blend(col, lip, _soft(d_out, 0.12))
    if gap_h is None:
        slit = _soft((dv.abs() / 0.006), 0.5) * _soft(d_out, 0.12)
        return _blend(col, lip * 0.3, slit)
    inner_h = (gap_h * 0.85).clamp(min=0.006)
    d_in = torch.sqrt(du2 / 0.92**2 + (dv / inner_h) ** 2)
    inner = _soft(d_in, 0.12)
    teeth = (dv < -0.35 * inner_h).float() * (gap_h > 0.02).float()
    # [3] -> [1, 3, 1, 1]
    mouth_col = _blend(torch.tensor([0.30, 0.06, 0.07], device=col.device).view(1, 3, 1, 1), 0.9, teeth)
    return _blend(col, mouth_col, inner)


def paint_backgrounds(ids: Sequence[Identity], size: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """Backgrounds of ``ids`` at ``size`` px: float [N, 3, size, size] in [0, 1] (a lit wall with blotches)."""
    gens = [_generator(i.seed, _SALT_BACKGROUND) for i in ids]
    params = torch.stack([torch.rand(10, generator=g) for g in gens]).to(device)  # [N, 10]
    low = _noise(gens, (3, 5, 5), (size, size), device)  # [N, 3, S, S]
    c1 = 0.15 + 0.75 * params[:, 0:3].view(-1, 3, 1, 1)  # [N, 3] -> [N, 3, 1, 1]
    c2 = 0.15 + 0.75 * params[:, 3:6].view(-1, 3, 1, 1)  # [N, 3] -> [N, 3, 1, 1]
    angle = (params[:, 6] * 2 * math.pi).view(-1, 1, 1, 1)  # [N] -> [N, 1, 1, 1]
    x = torch.linspace(-1, 1, size, device=device).view(1, 1, 1, size)  # [S] -> [1, 1, 1, S]
    y = torch.linspace(-1, 1, size, device=device).view(1, 1, size, 1)  # [S] -> [1, 1, S, 1]
    t = (0.5 + 0.35 * (x * torch.cos(angle) + y * torch.sin(angle))).clamp(0, 1)
    return (_blend(c1, c2, t) * (1.0 + 0.12 * low)).clamp(0, 1)


# --------------------------------------------------------------------------------------------- renderer
def rotation_matrices(pose: torch.Tensor) -> torch.Tensor:
    """pose [B, 3] (yaw, pitch, roll) degrees -> head-local-to-world rotations [B, 3, 3]."""
    yaw, pitch, roll = torch.deg2rad(pose.float()).unbind(-1)
    o, z = torch.ones_like(yaw), torch.zeros_like(yaw)
    cy, sy, cp, sp, cr, sr = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin(), roll.cos(), roll.sin()
    ry = torch.stack([cy, z, sy, z, o, z, -sy, z, cy], -1).view(-1, 3, 3)  # [B, 9] -> [B, 3, 3]
    rx = torch.stack([o, z, z, z, cp, sp, z, -sp, cp], -1).view(-1, 3, 3)  # Rx(-pitch)
    rz = torch.stack([cr, sr, z, -sr, cr, z, z, z, o], -1).view(-1, 3, 3)  # Rz(-roll)
    return rz @ rx @ ry


def project(points: torch.Tensor, params: FrameParams) -> torch.Tensor:
    """Head-local points [B, 3] -> normalised image coordinates [B, 2] (x right, y down, [-1, 1] across the image)."""
    world = (rotation_matrices(params.pose) @ points.unsqueeze(-1)).squeeze(-1)  # [B, 3, 1] -> [B, 3]
    x = params.zoom * world[:, 0] + params.translation[:, 0]
    y = -params.zoom * world[:, 1] + params.translation[:, 1]
    return torch.stack([x, y], dim=-1)


def _intersect(rows: torch.Tensor, X: torch.Tensor, Y: torch.Tensor, center: torch.Tensor,
               radii: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Front intersection of each pixel's ray with a head-local ellipsoid.

    The ray of pixel (X, Y) (world units) is ``R^T (X, Y, 0) + s * R^T (0, 0, -1)`` in head-local
    coordinates, so the quadratic's coefficients are polynomials in X and Y whose coefficients
    depend only on the frame: the per-pixel work is a handful of broadcast ops.

    Args:
        rows: [b, 3, 3] rotation R (local -> world); rows[:, i] is R^T e_i.
        X: [b, 1, S] world x of each column; Y: [b, S, 1] world y of each row.
        center, radii: [b, 3] the ellipsoid in head-local coordinates.

    Returns:
        (hit [b, S, S] bool, s [b, S, S] ray parameter of the nearer hit; smaller is nearer the camera).
    """
    ex, ey, d = rows[:, 0] / radii, rows[:, 1] / radii, -rows[:, 2] / radii  # [b, 3] in unit-sphere space
    k = -center / radii
    a = (d * d).sum(-1)
    bx, by, b0 = (ex * d).sum(-1), (ey * d).sum(-1), (k * d).sum(-1)
    uu, ww, uw = (ex * ex).sum(-1), (ey * ey).sum(-1), (ex * ey).sum(-1)
    uk, wk, kk = (ex * k).sum(-1), (ey * k).sum(-1), (k * k).sum(-1) - 1.0
    c = lambda t: t.view(-1, 1, 1)  # noqa: E731  [b] -> [b, 1, 1]
    # disc/4 = (b.X)^2 - a (|q0|^2 - 1), expanded in X and Y
    dx = (c(bx * bx - a * uu) * X + c(2 * (bx * b0 - a * uk))) * X  # [b, 1, S]
    dy = (c(by * by - a * ww) * Y + c(2 * (by * b0 - a * wk))) * Y + c(b0 * b0 - a * kk)  # [b, S, 1]
    disc = torch.addcmul(dx + dy, c(2 * (bx * by - a * uw)) * X, Y)  # [b, S, S]
    hit = disc > 0
    half_b = (c(bx) * X) + (c(by) * Y + c(b0))  # [b, S, S]
    s = (half_b + disc.clamp_(min=1e-12).sqrt_()).mul_(c(-1.0 / a))  # (sqrt of exact zeros is slow on CPUs)
    return hit, s


class _Geometry:
    """Per-frame geometry tensors of a batch of identities (head, nose, ears), on one device."""

    def __init__(self, ids: Sequence[Identity], device) -> None:
        t = lambda vals: torch.tensor(vals, dtype=torch.float32, device=device)  # noqa: E731
        self.head = t([i.shape for i in ids])  # [B, 3]
        self.nose_c = t([i.nose_center for i in ids])
        self.nose_r = t([i.nose_radii for i in ids])
        self.ear_c = t([i.ear_center for i in ids])
        self.ear_r = t([i.ear_radii for i in ids])
        self.ears = t([float(i.ears) for i in ids])
        self.any_ears = any(i.ears for i in ids)

    def index(self, sl: slice) -> "_Geometry":
        g = object.__new__(_Geometry)
        for k in ("head", "nose_c", "nose_r", "ear_c", "ear_r", "ears"):
            setattr(g, k, getattr(self, k)[sl])
        g.any_ears = bool(g.ears.any())
        return g


class _Features:
    """Per-frame tensors of the features drawn at render time (eyes, mouth) and their colours."""

    NAMES = ("eye_u", "eye_v", "eye_w", "eye_h", "mouth_v", "mouth_w", "lip_h", "open_h", "skin", "lip")

    def __init__(self, ids: Sequence[Identity], device) -> None:
        for name in self.NAMES:
            setattr(self, name, _per_id(ids, name, device))  # [B, C, 1, 1]

    def index(self, sl: slice) -> "_Features":
        f = object.__new__(_Features)
        for name in self.NAMES:
            setattr(f, name, getattr(self, name)[sl])
        return f


@dataclass
class Surface:
    """What a pixel sees (``SyntheticWorld.surface``).

    Attributes:
        mask: bool [B, 1, S, S], pixels on the head (skull, nose or ears).
        uv: float [B, 2, S, S] texture coordinates (u, v) of those pixels (0 elsewhere).
        face: bool [B, 1, S, S], head pixels inside the identity's face region (below the hairline).
        shading: float [B, 1, S, S], the light factor (ambient + Lambert; 0 off the head).
    """

    mask: torch.Tensor
    uv: torch.Tensor
    face: torch.Tensor
    shading: torch.Tensor


class SyntheticWorld:
    """Renders identities at frames, batched, on one device.

    Args:
        image_size: default side of rendered frames in pixels (64-256 is what x2face uses).
        device: where textures are cached and frames rendered.
        cache_size: textures kept (uint8, 256 KiB each); backgrounds are cached per size too.
        chunk_pixels: frames are rendered in chunks of about this many pixels (keeps the working set
            in cache on a CPU; larger is better on a GPU).
    """

    def __init__(self, image_size: int = 128, device: str | torch.device = "cpu", cache_size: int = 1024,
                 chunk_pixels: int | None = None) -> None:
        self.image_size = _check_size(image_size)
        self.device = torch.device(device)
        self.texture_size = TEXTURE_SIZE
        self.cache_size = int(cache_size)
        self.float_cache_size = min(self.cache_size, 128)
        if chunk_pixels is None:
            chunk_pixels = 1 << 16 if self.device.type == "cpu" else 1 << 24
        self.chunk_pixels = int(chunk_pixels)
        self._textures: OrderedDict[int, torch.Tensor] = OrderedDict()  # seed -> uint8 [4, T, T]
        self._float_textures: OrderedDict[int, torch.Tensor] = OrderedDict()  # seed -> float [3, T, T], recent ones
        self._backgrounds: OrderedDict[tuple[int, int], torch.Tensor] = OrderedDict()  # (seed, S) -> uint8 [3, S, S]

    # -------------------------------------------------------------------------------- caches
    def _cached(self, cache: OrderedDict, keys: list, make, channels: slice = slice(None)) -> torch.Tensor:
        """Stack cached uint8 tensors for ``keys`` (making the missing ones in one batch) as float [B, C, ., .]."""
        missing = list(dict.fromkeys(k for k in keys if k not in cache))
        if missing:
            made = (make(missing) * 255.0).round_().to(torch.uint8)
            for k, x in zip(missing, made):
                cache[k] = x
        unique = list(dict.fromkeys(keys))
        stack = torch.stack([cache[k][channels] for k in unique])  # [U, C, ., .]
        for k in unique:
            cache.move_to_end(k)
        while len(cache) > max(self.cache_size, len(unique)):
            cache.popitem(last=False)
        if len(unique) == len(keys) and unique == keys:
            return stack.float().div_(255.0)
        pos = {k: i for i, k in enumerate(unique)}
        index = torch.tensor([pos[k] for k in keys], device=stack.device)
        return stack.index_select(0, index).float().div_(255.0)  # [B, C, ., .]

    def _texture_channels(self, seeds: list[int], channels: slice) -> torch.Tensor:
        return self._cached(self._textures, seeds,
                            lambda miss: paint_textures([identity(s) for s in miss], self.texture_size, self.device),
                            channels)

    def _texture_list(self, seeds: list[int]) -> list[torch.Tensor]:
        """Float [3, T, T] UV maps, one per seed (shared tensors; a small float cache of recent seeds
        saves converting the uint8 store on every render)."""
        need = [s for s in dict.fromkeys(seeds) if s not in self._float_textures]
        if need:  # paints the missing ones and refreshes the others in the uint8 store, in one batch
            for s, t in zip(need, self._texture_channels(need, slice(0, 3))):
                self._float_textures[s] = t
        out = {}
        for s in dict.fromkeys(seeds):
            self._float_textures.move_to_end(s)
            out[s] = self._float_textures[s]
        while len(self._float_textures) > max(self.float_cache_size, len(out)):
            self._float_textures.popitem(last=False)
        return [out[s] for s in seeds]

    def texture(self, identity_seeds: Sequence[int]) -> torch.Tensor:
        """The UV maps of the identities: float [B, 3, T, T] in [0, 1], RGB (T = ``texture_size``)."""
        return torch.stack(self._texture_list(_check_seeds(identity_seeds)))

    def face_region_uv(self, identity_seeds: Sequence[int]) -> torch.Tensor:
        """The face region of each identity in UV space: float [B, 1, T, T] in [0, 1]."""
        return self._texture_channels(_check_seeds(identity_seeds), slice(3, 4))

    def background(self, identity_seeds: Sequence[int], size: int | None = None) -> torch.Tensor:
        """The identities' backgrounds: float [B, 3, S, S] in [0, 1]."""
        size = self.image_size if size is None else _check_size(size)
        seeds = _check_seeds(identity_seeds)
        return self._cached(self._backgrounds, [(s, size) for s in seeds],
                            lambda miss: paint_backgrounds([identity(s) for s, _ in miss], size, self.device))

    # -------------------------------------------------------------------------------- rendering
    def _prepare(self, identity_seeds, params: FrameParams, shape_from, size):
        seeds = _check_seeds(identity_seeds)
        if not isinstance(params, FrameParams):
            raise InputError(f"params must be a FrameParams, got {type(params).__name__}")
        if len(seeds) != len(params):
            raise InputError(f"{len(seeds)} identity seeds but {len(params)} frames in params; give one seed per frame")
        if len(seeds) == 0:
            raise InputError("nothing to render: identity_seeds is empty")
        geo_seeds = seeds if shape_from is None else _check_seeds(shape_from, "shape_from")
        if len(geo_seeds) != len(seeds):
            raise InputError(f"shape_from has {len(geo_seeds)} seeds, expected one per frame ({len(seeds)})")
        size = self.image_size if size is None else _check_size(size)
        params = params.to(self.device)
        ids = [identity(s) for s in seeds]
        geo = _Geometry([identity(s) for s in geo_seeds], self.device)
        return seeds, ids, geo, params, size

    def _chunks(self, n: int, size: int) -> list[slice]:
        step = max(1, self.chunk_pixels // (size * size))
        return [slice(i, min(n, i + step)) for i in range(0, n, step)]

    def _cast(self, geo: _Geometry, params: FrameParams, size: int):
        """Ray-cast one chunk -> (part [b,S,S] int: -1 none, 0 skull, 1 nose, 2/3 ears; p local xyz; shading)."""
        b = len(params)
        dev = self.device
        rows = rotation_matrices(params.pose)  # [b, 3, 3]
        lin = torch.linspace(-1.0, 1.0, size, device=dev)
        zoom = params.zoom.view(b, 1, 1)  # [b] -> [b, 1, 1]
        X = (lin.view(1, 1, size) - params.translation[:, 0].view(b, 1, 1)) / zoom  # [b, 1, S]
        Y = (params.translation[:, 1].view(b, 1, 1) - lin.view(1, size, 1)) / zoom  # [b, S, 1]
        zeros = torch.zeros_like(geo.head)
        hit, s = _intersect(rows, X, Y, zeros, geo.head)
        part = torch.where(hit, 0, -1).to(torch.int8)
        s = torch.where(hit, s, torch.full_like(s, float("inf")))
        parts = [(1, geo.nose_c, geo.nose_r, None)]
        if geo.any_ears:
            mirror = torch.tensor([-1.0, 1.0, 1.0], device=dev)
            parts += [(2, geo.ear_c, geo.ear_r, geo.ears), (3, geo.ear_c * mirror, geo.ear_r, geo.ears)]
        for k, center, radii, enabled in parts:
            h2, s2 = _intersect(rows, X, Y, center, radii)
            nearer = h2 & (s2 < s)
            if enabled is not None:
                nearer &= enabled.view(b, 1, 1) > 0  # [b] -> [b, 1, 1]
            s = torch.where(nearer, s2, s)
            part = torch.where(nearer, torch.tensor(k, dtype=torch.int8, device=dev), part)
        s = torch.where(part >= 0, s, torch.zeros_like(s))
        d = -rows[:, 2]  # [b, 3] ray direction, head-local
        # per-frame scalars [b] -> [b, 1, 1]
        p = [torch.addcmul(X * rows[:, 0, i].view(b, 1, 1) + Y * rows[:, 1, i].view(b, 1, 1), s, d[:, i].view(b, 1, 1))
             for i in range(3)]  # 3 x [b, S, S] head-local hit points
        # Lambert: n = (p - centre) / radii^2 of the part hit; light in head-local coordinates
        light = (rows.transpose(1, 2) @ params.light.unsqueeze(-1)).squeeze(-1)  # [b, 3]
        centers = [zeros, geo.nose_c] + ([geo.ear_c, geo.ear_c * mirror] if geo.any_ears else [])
        radii = [geo.head, geo.nose_r] + ([geo.ear_r, geo.ear_r] if geo.any_ears else [])
        shade = None
        for k, (center, rad) in enumerate(zip(centers, radii)):
            if k > 0 and not bool((part == k).any()):
                continue
            inv = (1.0 / rad**2)
            # per-frame scalars [b] -> [b, 1, 1]
            n = [(p[i] - center[:, i].view(b, 1, 1)) * inv[:, i].view(b, 1, 1) for i in range(3)]
            # per-frame scalars [b] -> [b, 1, 1]
            dot = n[0] * light[:, 0].view(b, 1, 1) + n[1] * light[:, 1].view(b, 1, 1) + n[2] * light[:, 2].view(b, 1, 1)
            norm = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).clamp_(min=1e-12).rsqrt_()
            lam = (dot * norm).clamp_(min=0.0)
            shade = lam if shade is None else torch.where(part == k, lam, shade)
        return part, p, shade + AMBIENT

    @staticmethod
    def _uv(p: list[torch.Tensor], head: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = head.shape[0]
        a, h, c = (head[:, i].view(b, 1, 1) for i in range(3))  # [b] -> [b, 1, 1] each
        u = torch.atan2(p[0] / a, p[2] / c).mul_(1.0 / math.pi)
        v = p[1] / h
        return u, v.neg_()

    def render(self, identity_seeds: Sequence[int], params: FrameParams, texture: torch.Tensor | None = None,
               shape_from: Sequence[int] | None = None, size: int | None = None) -> torch.Tensor:
        """Render identities at frames.

        Args:
            identity_seeds: one identity seed per frame (len B).
            params: ``FrameParams`` of B frames.
            texture: optional float [B, 3, T', T'] UV maps in [0, 1] replacing the identities' own (an
                edited texture gives the ground truth of an edit). Eyes and mouth are still drawn over it.
            shape_from: optional B identity seeds whose head geometry (width, height, depth, nose,
                ears) is used with these identities' textures and features.
            size: output side in pixels (default ``image_size``).

        Returns:
            float [B, 3, S, S] RGB in [0, 1] on ``self.device``.
        """
        seeds, ids, geo, params, size = self._prepare(identity_seeds, params, shape_from, size)
        b = len(seeds)
        if texture is None:
            textures = self._texture_list(seeds)
            tex = None
        else:
            if not isinstance(texture, torch.Tensor) or texture.dim() != 4 or texture.shape[:2] != (b, 3) \
                    or texture.shape[2] != texture.shape[3] or not texture.is_floating_point():
                got = list(texture.shape) if isinstance(texture, torch.Tensor) else type(texture).__name__
                raise InputError(f"texture must be a float tensor [B={b}, 3, T, T], got {got}")
            tex = texture.to(self.device, torch.float32)
        bg = self.background(seeds, size)
        feats = _Features(ids, self.device)
        out = torch.empty(b, 3, size, size, device=self.device)
        for sl in self._chunks(b, size):
            t = textures[sl] if tex is None else tex[sl]  # b x [3, T, T] (cached, not copied) or [b, 3, T, T]
            out[sl] = self._render_chunk(geo.index(sl), feats.index(sl), params.index(sl), t, bg[sl], size)
        return out

    def _render_chunk(self, geo: _Geometry, f: _Features, params: FrameParams, tex, bg: torch.Tensor,
                      size: int) -> torch.Tensor:
        b = len(params)
        part, p, shade = self._cast(geo, params, size)
        u, v = self._uv(p, geo.head)
        grid = torch.stack([u, v], dim=-1)  # [b, S, S, 2]
        if isinstance(tex, torch.Tensor):
            albedo = F.grid_sample(tex, grid, mode="bilinear", padding_mode="border", align_corners=True)  # [b, 3, S, S]
        else:  # one cached texture per frame: sampling each in place beats stacking 768 KiB maps
            albedo = torch.empty(b, 3, size, size, device=grid.device)
            for j, t in enumerate(tex):
                albedo[j] = F.grid_sample(t[None], grid[j:j + 1], mode="bilinear", padding_mode="border",
                                          align_corners=True)[0]  # [1, 3, S, S] -> [3, S, S]
        u4, v4 = u.unsqueeze(1), v.unsqueeze(1)  # [b, 1, S, S]
        au = u4.abs()
        # the mouth: lips around a gap that opens with params.mouth (drawn only in the rows it can reach)
        gap = f.open_h * params.mouth.view(b, 1, 1, 1)  # [b] -> [b, 1, 1, 1]
        dv = v4 - f.mouth_v
        rows = _row_span((dv.abs() < 1.2 * (f.lip_h + gap) + 0.01) & (au < 1.2 * f.mouth_w))
        if rows is not None:
            albedo[:, :, rows] = _paint_lips(albedo[:, :, rows], u4[:, :, rows], dv[:, :, rows], f.mouth_w, f.lip_h,
                                             f.lip, gap_h=gap)
        # the eyes: lids come down from the top with params.blink (nothing to draw when no eye blinks)
        if bool((params.blink > 0).any()):
            rows = _row_span(((au - f.eye_u).abs() < 1.2 * f.eye_w) & ((v4 - f.eye_v).abs() < 1.2 * f.eye_h))
            if rows is not None:
                du = (au[:, :, rows] - f.eye_u) / f.eye_w
                dv = (v4[:, :, rows] - f.eye_v) / f.eye_h
                inside = _soft(torch.sqrt(du * du + dv * dv), 0.15)
                # blink [b] -> [b, 1, 1, 1]
                lid = ((2.0 * params.blink.view(b, 1, 1, 1) - 1.0 - dv) / 0.15).clamp_(0, 1) * inside
                patch = albedo[:, :, rows]
                albedo[:, :, rows] = torch.addcmul(patch, lid, f.skin * 0.85 - patch)
        frame = (albedo * shade.unsqueeze(1)).clamp_(0.0, 1.0)
        on = (part >= 0).unsqueeze(1).to(frame.dtype)  # [b, 1, S, S]
        return torch.addcmul(bg, on, frame - bg)  # frame on the head, background elsewhere (faster than where)

    def surface(self, identity_seeds: Sequence[int], params: FrameParams, shape_from: Sequence[int] | None = None,
                size: int | None = None) -> Surface:
        """Which pixels show the head, and which texture point each shows (see ``Surface``)."""
        seeds, ids, geo, params, size = self._prepare(identity_seeds, params, shape_from, size)
        b = len(seeds)
        region = self.face_region_uv(seeds)  # [B, 1, T, T]
        mask = torch.empty(b, 1, size, size, dtype=torch.bool, device=self.device)
        uv = torch.empty(b, 2, size, size, device=self.device)
        face = torch.empty_like(mask)
        shading = torch.empty(b, 1, size, size, device=self.device)
        for sl in self._chunks(b, size):
            part, p, shade = self._cast(geo.index(sl), params.index(sl), size)
            u, v = self._uv(p, geo.head[sl])
            on = part >= 0  # [b, S, S]
            mask[sl, 0] = on
            uv[sl] = torch.stack([u, v], 1) * on.unsqueeze(1)  # [b, 2, S, S]
            f = F.grid_sample(region[sl], torch.stack([u, v], -1), mode="bilinear", padding_mode="border",
                              align_corners=True)  # [b, 1, S, S]
            face[sl] = (f > 0.5) & on.unsqueeze(1)
            shading[sl, 0] = shade * on
        return Surface(mask=mask, uv=uv, face=face, shading=shading)

    def head_points(self, identity_seeds: Sequence[int], params: FrameParams, shape_from: Sequence[int] | None = None,
                    size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Which part of the head each pixel shows and where on it, from the ray caster (what ``render`` draws).

        Returns:
            (part int8 [B, S, S]: -1 background, 0 skull, 1 nose, 2 and 3 the ears; head-local 3-D points
            float [B, S, S, 3] (x, y, z in the head's own frame, so one point of the head has the same
            coordinates in every pose; background pixels hold the ray's point at depth 0)).
        """
        seeds, _, geo, params, size = self._prepare(identity_seeds, params, shape_from, size)
        b = len(seeds)
        part = torch.empty(b, size, size, dtype=torch.int8, device=self.device)
        xyz = torch.empty(b, size, size, 3, device=self.device)
        for sl in self._chunks(b, size):
            part[sl], p, _ = self._cast(geo.index(sl), params.index(sl), size)
            xyz[sl] = torch.stack(p, -1)  # 3 x [b, S, S] -> [b, S, S, 3]
        return part, xyz

    def face_mask(self, identity_seeds: Sequence[int], params: FrameParams, shape_from: Sequence[int] | None = None,
                  region: str = "head", size: int | None = None) -> torch.Tensor:
        """Pixels on the head (``region="head"``) or on the face region (``"face"``): float [B, 1, S, S] in {0, 1}."""
        if region not in ("head", "face"):
            raise InputError(f"region must be 'head' or 'face', got {region!r}")
        surf = self.surface(identity_seeds, params, shape_from=shape_from, size=size)
        return (surf.mask if region == "head" else surf.face).float()


def _row_span(mask: torch.Tensor) -> slice | None:
    """The rows (dim 2) of mask [b, 1, S, S] holding any True, as a slice; None when there are none."""
    rows = torch.nonzero(mask.any(dim=3).any(dim=1).any(dim=0))[:, 0]  # [b, 1, S, S] -> [S] -> indices
    if len(rows) == 0:
        return None
    return slice(int(rows[0]), int(rows[-1]) + 1)


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not (MIN_SIZE <= size <= MAX_SIZE):
        raise InputError(f"image size must be an int between {MIN_SIZE} and {MAX_SIZE} px, got {size!r}")
    return size


def paint_overlay(texture: torch.Tensor, overlay: torch.Tensor, center: tuple[float, float],
                  half_size: tuple[float, float]) -> torch.Tensor:
    """Paint an RGBA overlay into UV maps (ground truth of an edit).

    Args:
        texture: float [B, 3, T, T] UV maps in [0, 1].
        overlay: float [4, h, w] RGBA in [0, 1] (straight alpha).
        center: (u, v) of the overlay's centre in UV coordinates.
        half_size: (half width in u, half height in v) of the overlay.

    Returns:
        float [B, 3, T, T]: ``texture * (1 - a) + rgb * a``.
    """
    b, _, t, _ = texture.shape
    lin = torch.linspace(-1, 1, t, device=texture.device)
    gu = (lin - center[0]) / half_size[0]
    gv = (lin - center[1]) / half_size[1]
    grid = torch.stack(torch.meshgrid(gu, gv, indexing="xy"), -1).unsqueeze(0)  # [1, T, T, 2]
    rgba = F.grid_sample(overlay.unsqueeze(0).to(texture), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=True)  # [1, 4, T, T]
    alpha = rgba[:, 3:]
    return texture * (1 - alpha) + rgba[:, :3] * alpha


# -------------------------------------------------------------------------------------------- motion
@dataclass
class Motion:
    """Random smooth trajectories of N videos, evaluable at any time (closed form, so any frame of a
    video can be drawn without rendering the ones before it).

    Pose, translation, zoom and light are sums of slow sinusoids (pose folded back at the limits);
    the mouth follows syllables (3-5.5 per second) gated by talking / pausing; blinks come every few
    seconds. All tensors are [N, ...] on the CPU.
    """

    pose_base: torch.Tensor  # [N, 3] degrees
    pose_amp: torch.Tensor  # [N, 3, J]
    pose_freq: torch.Tensor  # [N, 3, J] Hz
    pose_phase: torch.Tensor  # [N, 3, J]
    shift: torch.Tensor  # [N, 3] base translation x, y and zoom
    shift_amp: torch.Tensor  # [N, 3]
    shift_freq: torch.Tensor  # [N, 3]
    shift_phase: torch.Tensor  # [N, 3]
    light_dir: torch.Tensor  # [N, 3] base (azimuth, elevation, strength)
    light_phase: torch.Tensor  # [N, 2]
    talk: torch.Tensor  # [N, 3] gate frequency, phase, bias
    syllable: torch.Tensor  # [N, 4] rate, phase, wobble phase, wobble frequency
    loud: torch.Tensor  # [N, 2] frequency, phase of the syllables' loudness
    blink_rate: torch.Tensor  # [N, 3] rate, phase, wobble phase
    vowel: torch.Tensor  # [N, 4] F2 trajectory: frequencies, phases
    noise_level: torch.Tensor  # [N]

    @classmethod
    def draw(cls, n: int, generator: torch.Generator, components: int = 3) -> "Motion":
        """Draw ``n`` videos' trajectories from ``generator`` (a fixed number of draws per video)."""
        r = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
        lim = torch.tensor(POSE_LIMITS)
        j = components
        return cls(
            # Each video swings widely around a pose near frontal (within 20 % of the limits): source and
            # driving frames of one video then differ by tens of degrees, which is what teaches X2Face
            # to frontalise (with a video's own base pose far from frontal and small swings around it,
            # "copy the source" is a deep trap for stage I).
            pose_base=(2 * r(n, 3) - 1) * lim * 0.2,
            pose_amp=r(n, 3, j) * (lim * torch.tensor([0.875, 0.75, 0.625])).view(1, 3, 1) / j * 2,  # [3] -> [1, 3, 1]
            pose_freq=0.04 + 0.4 * r(n, 3, j),
            pose_phase=2 * math.pi * r(n, 3, j),
            shift=torch.stack([0.12 * r(n) - 0.06, 0.12 * r(n) - 0.06, 1.15 + 0.25 * r(n)], -1),
            shift_amp=r(n, 3) * torch.tensor([0.03, 0.03, 0.03]),
            shift_freq=0.05 + 0.3 * r(n, 3),
            shift_phase=2 * math.pi * r(n, 3),
            light_dir=torch.stack([r(n) * 120 - 60, r(n) * 60 - 10, 0.35 + 0.3 * r(n)], -1),
            light_phase=2 * math.pi * r(n, 2),
            talk=torch.stack([0.08 + 0.2 * r(n), 2 * math.pi * r(n), 1.1 * r(n) - 0.3], -1),
            syllable=torch.stack([3.0 + 2.5 * r(n), r(n), 2 * math.pi * r(n), 0.3 + 0.6 * r(n)], -1),
            loud=torch.stack([0.3 + 0.8 * r(n), 2 * math.pi * r(n)], -1),
            blink_rate=torch.stack([0.15 + 0.25 * r(n), r(n), 2 * math.pi * r(n)], -1),
            vowel=torch.cat([0.4 + 1.2 * r(n, 2), 2 * math.pi * r(n, 2)], -1),
            noise_level=0.002 + 0.008 * r(n),
        )

    def __len__(self) -> int:
        return self.pose_base.shape[0]

    def index(self, idx) -> "Motion":
        return Motion(**{f.name: getattr(self, f.name)[idx] for f in dataclasses.fields(self)})

    def mouth(self, t: torch.Tensor) -> torch.Tensor:
        """t [N, T] seconds -> mouth opening [N, T] in [0, 1]."""
        tk = self.talk
        gate = torch.sigmoid(8.0 * (torch.sin(2 * math.pi * tk[:, 0:1] * t + tk[:, 1:2]) + tk[:, 2:3]))
        sy = self.syllable
        phase = sy[:, 0:1] * t + sy[:, 1:2] + 0.25 * torch.sin(2 * math.pi * sy[:, 3:4] * t + sy[:, 2:3])
        syl = 0.5 - 0.5 * torch.cos(2 * math.pi * phase)
        loud = 0.6 + 0.4 * torch.sin(2 * math.pi * self.loud[:, 0:1] * t + self.loud[:, 1:2])
        return (1.15 * gate * syl * loud - 0.04).clamp(0.0, 1.0)

    def blink(self, t: torch.Tensor) -> torch.Tensor:
        """t [N, T] seconds -> eye closure [N, T] in [0, 1] (blinks of 0.2-0.5 s every 2.5-7 s)."""
        br = self.blink_rate
        phase = br[:, 0:1] * t + br[:, 1:2] + 0.15 * torch.sin(2 * math.pi * 0.13 * t + br[:, 2:3])
        frac = phase - torch.floor(phase)
        return (1.0 - (frac - 0.05).abs() / 0.05).clamp(0.0, 1.0).pow(0.7)

    def vowel_f2(self, t: torch.Tensor) -> torch.Tensor:
        """t [N, T] -> second formant [N, T] in Hz (before the identity's formant scale)."""
        vw = self.vowel
        return (1500.0 + 450.0 * torch.sin(2 * math.pi * vw[:, 0:1] * t + vw[:, 2:3])
                + 250.0 * torch.sin(2 * math.pi * vw[:, 1:2] * t + vw[:, 3:4]))

    def at(self, t: torch.Tensor) -> FrameParams:
        """t [N, T] seconds -> FrameParams of N*T frames (row-major: video 0's T frames first)."""
        n, k = t.shape
        lim = torch.tensor(POSE_LIMITS).view(1, 3, 1)  # [3] -> [1, 3, 1]
        waves = (self.pose_amp.unsqueeze(-1) * torch.sin(
            # t [N, T] -> [N, 1, 1, T]
            2 * math.pi * self.pose_freq.unsqueeze(-1) * t.view(n, 1, 1, k) + self.pose_phase.unsqueeze(-1))).sum(2)
        x = self.pose_base.unsqueeze(-1) + waves  # [N, 3, T] unfolded
        pose = lim - (torch.remainder(x + lim, 4 * lim) - 2 * lim).abs()  # fold into [-lim, lim]: a mirror at the limits
        sh = self.shift.unsqueeze(-1) + self.shift_amp.unsqueeze(-1) * torch.sin(
            2 * math.pi * self.shift_freq.unsqueeze(-1) * t.view(n, 1, k) + self.shift_phase.unsqueeze(-1))  # [N, 3, T]
        az = torch.deg2rad(self.light_dir[:, 0:1] + 15 * torch.sin(0.4 * t + self.light_phase[:, 0:1]))
        el = torch.deg2rad(self.light_dir[:, 1:2] + 10 * torch.sin(0.3 * t + self.light_phase[:, 1:2]))
        strength = self.light_dir[:, 2:3]
        light = torch.stack([torch.sin(az) * torch.cos(el), torch.sin(el), torch.cos(az) * torch.cos(el)], -1)
        light = light * strength.unsqueeze(-1)  # [N, T, 3]
        return FrameParams(
            pose=pose.permute(0, 2, 1).reshape(n * k, 3),  # [N, 3, T] -> [N*T, 3]
            translation=sh[:, :2].permute(0, 2, 1).reshape(n * k, 2),  # [N, 2, T] -> [N*T, 2]
            zoom=sh[:, 2].reshape(n * k),  # [N, T] -> [N*T]
            mouth=self.mouth(t).reshape(n * k),  # [N, T] -> [N*T]
            blink=self.blink(t).reshape(n * k),  # [N, T] -> [N*T]
            light=light.reshape(n * k, 3),  # [N, T, 3] -> [N*T, 3]
        )


def synthesize_audio(ident: Identity, motion: Motion, seconds: float, generator: torch.Generator,
                     sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """The speech-like sound of one video (``motion`` of length 1) made by its mouth.

    A glottal source at the identity's pitch (with intonation) is shaped by formants: F1 rises from
    about 280 Hz (closed) to 850 Hz (open) with the mouth opening, F2 wanders like vowels, F3 is fixed;
    loudness grows with the opening and is zero when the mouth is closed. Background noise is added.

    Returns:
        float32 [round(seconds * sample_rate)] in [-1, 1].
    """
    n = int(round(seconds * sample_rate))
    t = torch.arange(n, dtype=torch.float64).div_(sample_rate).float().view(1, n)  # [1, N]
    m = motion.mouth(t)[0]  # [N]
    ph = motion.vowel[0]
    f0 = ident.voice_pitch * (1.0 + 0.07 * torch.sin(2 * math.pi * 0.35 * t[0] + ph[2]) + 0.03 * torch.sin(2 * math.pi * 1.7 * t[0] + ph[3]))
    phase = torch.cumsum(f0.double() / sample_rate, 0).remainder(1.0).float() * (2 * math.pi)  # [N]
    fs = ident.voice_formant
    f1 = fs * (280.0 + 570.0 * m)
    f2 = fs * motion.vowel_f2(t)[0]
    f3 = fs * 2600.0
    harmonics = int(3800.0 // ident.voice_pitch)
    out = torch.zeros(n)
    for k in range(1, harmonics + 1):  # a few dozen harmonics, each vectorised over time
        fk = k * f0
        env = (1.0 / (1.0 + ((fk - f1) / 90.0) ** 2) + 0.6 / (1.0 + ((fk - f2) / 130.0) ** 2)
               + 0.25 / (1.0 + ((fk - f3) / 200.0) ** 2)) / (1.0 + fk / 1200.0)
        out += env * torch.sin(k * phase)
    gain = 0.35 * ((m - 0.02) / 0.98).clamp(min=0.0).pow(0.8)
    out = out * gain / max(1.0, harmonics**0.5 / 2)
    out += float(motion.noise_level[0]) * torch.randn(n, generator=generator)
    return out.clamp_(-1.0, 1.0)


# -------------------------------------------------------------------------------------------- videos
@dataclass
class SyntheticVideo:
    """A rendered video of one identity (``sample_video``).

    Attributes:
        frames: float [T, 3, S, S] RGB in [0, 1].
        params: ``FrameParams`` of the T frames (CPU).
        audio: float32 [N] mono audio in [-1, 1] at ``sample_rate`` (empty without audio).
        sample_rate: audio samples per second (16000).
        fps: frames per second.
        identity_seed, video_seed: what it was drawn from.
    """

    frames: torch.Tensor
    params: FrameParams
    audio: torch.Tensor
    sample_rate: int
    fps: float
    identity_seed: int
    video_seed: int


_WORLDS: dict[tuple[int, str], SyntheticWorld] = {}


def _world(size: int, device) -> SyntheticWorld:
    key = (size, str(torch.device(device)))
    if key not in _WORLDS:
        _WORLDS[key] = SyntheticWorld(size, device=device, cache_size=64)
    return _WORLDS[key]


def video_motion(identity_seed: int, video_seed: int) -> Motion:
    """The trajectories of video ``video_seed`` of identity ``identity_seed`` (length-1 ``Motion``)."""
    return Motion.draw(1, _generator(identity_seed, video_seed, _SALT_VIDEO))


def sample_video(identity_seed: int, video_seed: int, num_frames: int, image_size: int, fps: float = FPS,
                 with_audio: bool = True, device: str | torch.device = "cpu",
                 world: SyntheticWorld | None = None, with_frames: bool = True) -> SyntheticVideo:
    """Render ``num_frames`` frames (from t = 0) of a video of one identity, and its audio.

    Args:
        identity_seed: which identity.
        video_seed: which video of it (trajectories and noise).
        num_frames: T >= 1.
        image_size: frame side in pixels.
        fps: frame rate; frame i is at ``i / fps`` seconds.
        with_audio: synthesise the audio track (T / fps seconds).
        device: where the frames are rendered (ignored when ``world`` is given).
        world: a ``SyntheticWorld`` to reuse (its texture cache).
        with_frames: render the frames (False: ``frames`` is empty [0, 3, S, S]; params and audio only).

    Returns:
        a ``SyntheticVideo``; frames on the world's device, params and audio on the CPU.
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise InputError(f"num_frames must be a positive int, got {num_frames!r}")
    if not (isinstance(fps, (int, float)) and fps > 0):
        raise InputError(f"fps must be positive, got {fps!r}")
    if isinstance(identity_seed, bool) or not isinstance(identity_seed, int):
        raise InputError(f"identity_seed must be an int, got {identity_seed!r}")
    size = _check_size(image_size)
    world = world if world is not None else _world(size, device)
    motion = video_motion(identity_seed, video_seed)
    t = (torch.arange(num_frames, dtype=torch.float64) / fps).float().view(1, num_frames)  # [T] -> [1, T]
    params = motion.at(t)
    frames = torch.zeros(0, 3, size, size, device=world.device)
    if with_frames:
        frames = torch.cat([world.render([identity_seed] * len(params.index(sl)), params.index(sl), size=size)
                            for sl in (slice(i, i + 64) for i in range(0, num_frames, 64))])
    audio = torch.zeros(0)
    if with_audio:
        audio = synthesize_audio(identity(identity_seed), motion, num_frames / fps,
                                 _generator(identity_seed, video_seed, _SALT_AUDIO))
    return SyntheticVideo(frames=frames, params=params, audio=audio, sample_rate=SAMPLE_RATE, fps=float(fps),
                          identity_seed=identity_seed, video_seed=video_seed)


# ------------------------------------------------------------------------------------------- dataset
class SyntheticPairs(Dataset):
    """Training pairs from the synthetic world.

    Item ``i`` (deterministic from ``seed`` and ``i``) is a dict:

    * ``"sources"`` float [K, 3, S, S] and ``"driving"`` float [3, S, S]: K + 1 frames at random times
      of one video of one identity (K = ``num_sources``);
    * ``"driving_other"`` float [3, S, S]: a frame of a video of another identity of the same split;
    * ``"identity"``, ``"identity_other"``: long scalars, the identity seeds;
    * ``"pose"``, ``"pose_other"``: float [3] (yaw, pitch, roll) in degrees of the two driving frames.

    ``batch(batch_size, generator)`` returns the same keys batched (a leading B), rendered in one go
    on the world's device: what training loops should call.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (``SPLITS``).
        image_size: frame side in pixels.
        num_sources: K >= 1 source frames per item.
        length: ``len(dataset)``.
        seed: seed of the items.
        device: where ``batch`` renders (items from ``__getitem__`` are on the CPU for DataLoaders).
        video_seconds: the videos are this long; frames are drawn uniformly within them.
        identities: use only the first N identities of the split (None: all). A small pool stays in
            the texture cache (painting a new identity costs a few ms on a CPU).
    """

    def __init__(self, split: str, image_size: int, num_sources: int = 1, length: int = 10_000, seed: int = 0,
                 device: str | torch.device = "cpu", video_seconds: float = VIDEO_SECONDS,
                 identities: int | None = None) -> None:
        if split not in SPLITS:
            raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        if identities is not None and (isinstance(identities, bool) or not isinstance(identities, int)
                                       or not 2 <= identities <= len(SPLITS[split])):
            raise InputError(f"identities must be an int between 2 and {len(SPLITS[split])}, got {identities!r}")
        if isinstance(num_sources, bool) or not isinstance(num_sources, int) or num_sources < 1:
            raise InputError(f"num_sources must be an int >= 1, got {num_sources!r}")
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise InputError(f"length must be an int >= 1, got {length!r}")
        self.split = split
        self.seeds = SPLITS[split] if identities is None else SPLITS[split][:identities]
        self.image_size = _check_size(image_size)
        self.num_sources, self.length, self.seed = num_sources, length, int(seed)
        self.video_seconds = float(video_seconds)
        self.device = torch.device(device)
        self._world: SyntheticWorld | None = None
        self._cpu_world: SyntheticWorld | None = None

    def __len__(self) -> int:
        return self.length

    def __getstate__(self) -> dict:  # DataLoader workers build their own worlds (texture caches)
        return {**self.__dict__, "_world": None, "_cpu_world": None}

    @property
    def world(self) -> SyntheticWorld:
        """The ``SyntheticWorld`` ``batch`` renders with (on ``device``)."""
        if self._world is None:
            self._world = SyntheticWorld(self.image_size, device=self.device,
                                         cache_size=max(1024, min(len(self.seeds), 4096)))
        return self._world

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not -self.length <= i < self.length:
            raise IndexError(f"index {i} out of range for a dataset of {self.length}")
        i = i % self.length
        if self._cpu_world is None:
            self._cpu_world = self.world if self.device.type == "cpu" else SyntheticWorld(self.image_size, cache_size=256)
        item = self._draw(1, _generator(self.seed, i, _SALT_ITEM), self._cpu_world)
        return {k: v[0] for k, v in item.items()}

    def batch(self, batch_size: int, generator: torch.Generator, drivers: int = 1) -> dict[str, torch.Tensor]:
        """``batch_size`` fresh items drawn from ``generator``, batched, on ``device`` (see the class docstring).

        ``drivers`` > 1 draws ``batch_size / drivers`` groups of ``drivers`` consecutive items that share one
        video and its source frames (the same ``sources`` values), each with its own driving frame and its own
        ``driving_other``: a training step can then embed each group's sources once. 1 draws exactly as before.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be an int >= 1, got {batch_size!r}")
        _check_drivers(batch_size, drivers)
        return self._draw(batch_size, generator, self.world, drivers=drivers)

    def draw(self, batch_size: int, generator: torch.Generator, world: SyntheticWorld | None = None,
             drivers: int = 1) -> tuple[dict[str, torch.Tensor], dict[str, FrameParams]]:
        """Like ``batch`` but also returns the frame parameters: ``{"sources": [B*K], "driving": [B],
        "driving_other": [B]}`` (sources ordered item-major)."""
        _check_drivers(batch_size, drivers)
        return self._draw(batch_size, generator, world or self.world, with_params=True, drivers=drivers)

    def _draw(self, b: int, g: torch.Generator, world: SyntheticWorld, with_params: bool = False, drivers: int = 1):
        k, n_ids, d = self.num_sources, len(self.seeds), drivers
        m = b // d  # groups: one video, K source frames and d driving frames each (d = 1: one pair per video)
        first = torch.randint(0, n_ids, (m,), generator=g)
        other = (first.repeat_interleave(d) + torch.randint(1, n_ids, (b,), generator=g)) % n_ids  # never the same
        ids = [self.seeds[int(x)] for x in first]
        others = [self.seeds[int(x)] for x in other]
        motion, motion_other = Motion.draw(m, g), Motion.draw(b, g)
        times = torch.rand(m, k + d, generator=g) * self.video_seconds  # [M, K+d]: sources, then driving
        t_other = torch.rand(b, 1, generator=g) * self.video_seconds
        params = motion.at(times)  # M*(K+d) frames, group-major
        params_other = motion_other.at(t_other)
        all_params = FrameParams.cat([params, params_other])
        seeds = [s for s in ids for _ in range(k + d)] + others
        frames = world.render(seeds, all_params)  # [M*(K+d) + B, 3, S, S]
        s = self.image_size
        own = frames[: m * (k + d)].view(m, k + d, 3, s, s)  # [M*(K+d), 3, S, S] -> [M, K+d, 3, S, S]
        pose = params.pose.view(m, k + d, 3)  # [M*(K+d), 3] -> [M, K+d, 3]
        dev = world.device
        item = {
            "sources": own[:, :k].repeat_interleave(d, 0),  # [M, K, 3, S, S] -> [B, K, 3, S, S]
            "driving": own[:, k:].reshape(b, 3, s, s),  # [M, d, 3, S, S] -> [B, 3, S, S]
            "driving_other": frames[m * (k + d):],
            "identity": torch.tensor(ids, dtype=torch.long, device=dev).repeat_interleave(d),
            "identity_other": torch.tensor(others, dtype=torch.long, device=dev),
            "pose": pose[:, k:].reshape(b, 3).to(dev),  # [M, d, 3] -> [B, 3]
            "pose_other": params_other.pose.to(dev),
        }
        if not with_params:
            return item
        group = torch.arange(b) // d  # item i's group
        src_idx = (group[:, None] * (k + d) + torch.arange(k)).flatten()  # [B*K], item-major
        drv_idx = group * (k + d) + k + torch.arange(b) % d
        return item, {"sources": params.index(src_idx), "driving": params.index(drv_idx), "driving_other": params_other}


def _check_drivers(batch_size: int, drivers: int) -> None:
    """``drivers`` must be an int >= 1 that divides ``batch_size``."""
    if isinstance(drivers, bool) or not isinstance(drivers, int) or drivers < 1 or batch_size % drivers:
        raise InputError(f"drivers must be an int >= 1 that divides the batch size {batch_size}, got {drivers!r}")

__all__ = ["AMBIENT", "FPS", "FrameParams", "Identity", "Motion", "POSE_LIMITS", "SAMPLE_RATE", "SPLITS", "Surface",
           "SyntheticPairs", "SyntheticVideo", "SyntheticWorld", "TEXTURE_SIZE", "identity", "mix_seeds",
           "paint_backgrounds", "paint_overlay", "paint_textures", "project", "rotation_matrices", "sample_video",
           "synthesize_audio", "video_motion"]
