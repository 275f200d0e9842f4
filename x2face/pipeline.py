"""``X2FacePipeline``: photos and frames in, animated frames out; what the CLI and the app share.

    >>> pipe = X2FacePipeline.from_pretrained("demo")         # or X2FacePipeline(model)
    >>> info = pipe.set_source(["me.jpg", "me2.jpg"])         # crop + embed once (several = multi-frame embedding)
    >>> for out in pipe.drive_frames(VideoReader("clip.mp4")):  # uint8 RGB frames of the driving face
    ...     out.image                                         # uint8 [S, S, 3]: the source face moving like the driver
    >>> for out in pipe.drive_frames(frames, paste_back=True):
    ...     out.image                                         # uint8 [H, W, 3]: the source photo, its face animated

X2Face animates the SOURCE face: each output frame shows the source identity in the pose and
expression of the driving frame. With ``paste_back`` the generated face goes back into the source
photo at full resolution (feathered), so the output keeps the photo's framing.

Numpy/PIL in and out. The source is embedded once by the model itself (fp32 eager, with its
confidence); the per-frame work (driving frames, rendering pose/audio vectors, the source vector)
goes through ``x2face.fast.FastDriver`` by default: BatchNorm folded, channels_last, bf16 networks
with fp32 sampling on CUDA and on CPUs with AMX (fp32 on other CPUs), ``torch.compile`` and CUDA
graphs on CUDA, all under ``torch.inference_mode``, within ``x2face.fast.TOLERANCE`` of the fp32
eager model. ``X2FacePipeline(model, fast=False)`` runs the plain eager model instead (the reference).
Pipelines of the same model share one ``FastDriver`` (compiled once, CUDA graphs captured once).
The pipeline holds no state between sources except the cached source (crops, embedded face and its edits,
source vector).
"""
from __future__ import annotations

import copy
import functools
import inspect
import itertools
import math
import os
import queue
import threading
import warnings
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ConfigError, FaceIndexError, InputError, NoFaceError
from .faces import (EVERY_FACE, FaceCrop, FaceCropper, FaceSelect, GroupCrop, check_select, crop_square,
                    describe_select, paste_back)
from .media import Limits, VideoReader, is_still_image, probe_video, read_image, to_rgb_array
from .model import X2Face
from .warp import identity_grid, warp

#: A photo as the pipeline takes it: a path, an array (uint8 [H, W, 3] RGB or any layout
#: ``media.to_rgb_array`` reads) or a PIL image (``Any`` keeps PIL out of the import).
ImageLike = Union[np.ndarray, str, os.PathLike, Any]

#: What ``drive_frames`` outputs for a frame without a face (see ``X2FacePipeline.drive_frames``).
ON_MISSING = ("hold", "source", "skip")

#: The largest ``motion_scale`` of relative motion (``RelativeMotion``).
MAX_MOTION_SCALE = 4.0

#: Sharp paste-back renders the face at its photo's resolution up to this many pixels a side.
SHARP_MAX_SIDE = 1024

#: Sharp rendering also keeps this share of the crop box's side around it on every side, so that where the warps
#: sample just past the box they find the photo, not black.
SHARP_MARGIN = 0.25

#: A source video contributes frames from this many of its first seconds (``X2FacePipeline.set_source``).
SOURCE_VIDEO_SECONDS = 60.0


def spread(n: int, k: int) -> list[int]:
    """At most ``k`` indices into ``n`` items, spread evenly with the first and the last included (fewer when
    ``n < k``): the frames ``set_source`` takes from a clip."""
    return sorted({round(i * (n - 1) / max(k - 1, 1)) for i in range(k)})


@dataclass
class SourceInfo:
    """The cached source of an ``X2FacePipeline``.

    Attributes:
        crops: uint8 [S, S, 3] RGB face crop of each source photo.
        boxes: crop box (x0, y0, x1, y1) of each crop in its photo's pixels.
        names: how each photo is called in messages (file name or "photo N").
        photo: the first source photo at full resolution, uint8 [H, W, 3] RGB (paste-back target).
        embedded: the embedded face, float [1, 3, S, S] in [0, 1] on the model's device and dtype.
        confidence: per-pixel log sampling weight of the embedding, float [1, 1, S, S].
        backend: face detector backend that cropped them.
        pose: (yaw, pitch, roll) of the first photo in degrees when the detector estimates it.
        faces: faces found in each photo (a group photo: more than one; 0 for a video's frames).
        select: which face was taken where there were several (``FaceCropper``'s ``select``).
        sharp: each crop box again at its photo's own resolution (at least the model's size, at most
            ``SHARP_MAX_SIDE``), uint8 [R, R, 3]: what ``drive_frames(sharp=True)`` samples.
        surround: for each ``sharp`` crop, (the box with ``SHARP_MARGIN`` of its side added on every side at the
            same resolution, uint8 [B, B, 3]; the box's side n and the margin q, in photo pixels): what sharp
            rendering samples, so that the photo, not black, shows where the warps reach past the box.
    """

    crops: list[np.ndarray]
    boxes: list[tuple[float, float, float, float]]
    names: list[str]
    photo: np.ndarray
    embedded: torch.Tensor
    confidence: torch.Tensor
    backend: str
    pose: tuple[float, float, float] | None = None
    faces: list[int] = field(default_factory=list)
    select: FaceSelect = "largest"
    sharp: list[np.ndarray] = field(default_factory=list)
    surround: list[tuple[np.ndarray, int, int]] = field(default_factory=list)

    def group_photos(self) -> str:
        """Which source photos had several faces and which was taken, e.g. "group.jpg: the largest of 3
        faces"; "" when every photo had one."""
        return "; ".join(f"{n}: {describe_select(self.select, k)}" for n, k in zip(self.names, self.faces) if k > 1)


@dataclass
class _SharpMaps:
    """What sharp rendering samples, made once per source (``X2FacePipeline._sharp_source``)."""

    fields: torch.Tensor  # float32 [K, 3, S, S]: channels 0-1 the embedding grid (x, y), 2 the frame's share
    crops: torch.Tensor  # float32 [K, 3, B, B] in [0, 1]: the sharp crops with their margins (SourceInfo.surround)
    embedded: torch.Tensor  # the embedded face they reproduce [1, 3, S, S]; an edit is the difference to it
    side: int  # R: the side of the sharp face (the first crop box's, at most the side asked for)
    scale: torch.Tensor  # float32 [K, 1, 1, 1]: normalised units of the S-pixel crop -> of each B-pixel crop
    shift: torch.Tensor  # float32 [K, 1, 1, 1]: ... plus this (the same along x and y)


@dataclass
class _EditLayer:
    """The edits drawn on the embedded face at their own resolution, for sharp rendering (``add_edit_layer``)."""

    layer: torch.Tensor  # float32 [1, 4, E, E] in [0, 1]: RGB premultiplied by alpha, then alpha
    embedded: torch.Tensor  # the (model-size) embedded face the layer is drawn into; stale once that is replaced
    base: torch.Tensor  # the embedded face under the layer (sharp rendering adds its difference to the unedited)
    shrunk: dict[int, torch.Tensor] = field(default_factory=dict)  # the layer antialiased down to smaller faces

    def at(self, side: int) -> torch.Tensor:
        """The layer for a face ``side`` pixels wide: as is, or shrunk to it (a fine stroke is not aliased away)."""
        if self.layer.shape[-1] <= side:
            return self.layer
        if side not in self.shrunk:
            self.shrunk[side] = _resize_layer(self.layer, side)
        return self.shrunk[side]


@dataclass(frozen=True)
class EditState:
    """A snapshot of the embedded face and its edits (``X2FacePipeline.edit_state``/``restore_edit``)."""

    embedded: torch.Tensor
    edit: _EditLayer | None
    others: tuple["EditState", ...] = ()  # the other faces' of a group photo (set_source(face="all"))


@dataclass
class DrivenFrame:
    """One output frame of ``X2FacePipeline.drive_frames``.

    Attributes:
        image: uint8 RGB output: [S, S, 3] (the generated crop) or [H, W, 3] (pasted into the source photo).
        index: index of the driving frame it answers.
        found: a face was found in the driving frame (False: held or source frame, see ``on_missing``).
        driving_crop: uint8 [S, S, 3] crop of the driving face (None before any face was seen).
        generated: uint8 [S, S, 3], the generated crop itself (also with paste-back; None when not found).
    """

    image: np.ndarray
    index: int
    found: bool
    driving_crop: np.ndarray | None
    generated: np.ndarray | None


def _to_tensor(crops: Sequence[np.ndarray], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 [S, S, 3] crops -> float [N, 3, S, S] in [0, 1] on ``device``/``dtype``."""
    arr = np.stack(crops)  # [N, S, S, 3]
    t = torch.from_numpy(arr).to(device=device).permute(0, 3, 1, 2)  # [N, S, S, 3] -> [N, 3, S, S]
    return t.to(dtype=dtype).div_(255.0)


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """float [N, 3, S, S] in [0, 1] -> uint8 [N, S, S, 3] RGB (numpy, CPU)."""
    x = images.detach().float().clamp(0.0, 1.0).mul_(255.0).add_(0.5)  # not in place: never touch the cache
    return x.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()  # [N, 3, S, S] -> [N, S, S, 3]


# ---------------------------------------------------------------------------------------------- the fast path
def fast_unsupported(model: X2Face) -> str | None:
    """Why ``FastDriver`` would not compute ``model``'s function, or None when it would.

    ``FastDriver`` rebuilds the driving and embedding networks from their layers (BatchNorm folded),
    so it only stands for the stock ``DrivingNetwork``/``EmbeddingNetwork`` and ``X2Face.render``/
    ``driving_vector``: not for subclasses, methods replaced on an instance, or forward hooks.
    """
    from .nets import DrivingNetwork, EmbeddingNetwork

    for name in ("render", "driving_vector"):
        if getattr(type(model), name) is not getattr(X2Face, name) or name in vars(model):
            return f"X2Face.{name} is replaced on this model"
    for name, cls in (("driving", DrivingNetwork), ("embedding", EmbeddingNetwork)):
        net = getattr(model, name)
        if type(net) is not cls:
            return f"model.{name} is a {type(net).__name__}, not a {cls.__name__}"
        for sub_name, sub in net.named_modules(prefix=f"model.{name}"):
            replaced = [k for k, v in vars(sub).items()
                        if callable(v) and not isinstance(v, nn.Module) and hasattr(type(sub), k)]
            if replaced:
                return f"{sub_name}.{replaced[0]} is replaced on this model"
            if sub._forward_hooks or sub._forward_pre_hooks:
                return f"{sub_name} has forward hooks"
    return None


def resolve_precision(precision: str | torch.dtype, device: torch.device, model_dtype: torch.dtype) -> torch.dtype:
    """The ``FastDriver`` compute dtype for ``precision``.

    ``"auto"``: the model's own dtype when the caller put it in bf16/fp16; else bf16 on CUDA GPUs that
    support it and on CPUs with AMX (measured faster there: docs/speed.md, ``benchmarks/cpu_dtype.py``),
    float32 elsewhere (``x2face.fast.resolve_dtype``). Otherwise ``"fp32"``, ``"bf16"``, ``"fp16"`` or a
    torch dtype.
    """
    from .fast import resolve_dtype

    if isinstance(precision, str) and precision == "auto" and model_dtype in (torch.bfloat16, torch.float16):
        return model_dtype
    return resolve_dtype(precision, device)


def _sharp_cap(sharp: bool | int) -> int:
    """A render's ``sharp`` (True, or an int cap on the side) -> the most pixels a side of the sharp face."""
    return SHARP_MAX_SIDE if sharp is True else int(sharp)


def _in_margin(i: float, s: int, n: int, q: int, b: int) -> float:
    """Where pixel ``i`` of an S-pixel crop of an n-pixel box lies in the B-pixel crop of the box with q photo
    pixels added on every side, in normalised (align_corners) units: -1 and 1 are the end pixels' centres."""
    photo = q + (i + 0.5) * n / s  # photo pixels from the margin's corner (the S crop's pixels are n / S wide)
    return 2.0 * (photo * b / (n + 2 * q) - 0.5) / (b - 1) - 1.0


def _resize_layer(layer: torch.Tensor, side: int) -> torch.Tensor:
    """float [1, 4, h, w] premultiplied RGBA -> [1, 4, side, side] (bilinear, antialiased when shrinking)."""
    if tuple(layer.shape[-2:]) == (side, side):
        return layer
    return F.interpolate(layer, size=(side, side), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


class _SharedDriver:
    """A ``FastDriver`` shared by the pipelines of one model, the lock its users hold around a call,
    and the pipeline tensor whose embedded face its cache holds (``face``)."""

    def __init__(self, driver) -> None:
        self.driver = driver
        self.lock = threading.Lock()
        self.face: torch.Tensor | None = None


#: (model id, device, dtype, compile, cuda_graphs, weights stamp) -> the driver pipelines share. Weak
#: values: a driver lives as long as a pipeline uses it (and keeps its model, so the id stays unique).
_SHARED: "weakref.WeakValueDictionary[tuple, _SharedDriver]" = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def _weights_stamp(model: X2Face) -> tuple:
    """Changes when the networks' weights are replaced or changed in place (a shared driver is then stale)."""
    tensors = itertools.chain(model.driving.parameters(), model.driving.buffers(),
                              model.embedding.parameters(), model.embedding.buffers())
    # inference tensors (a model built under inference_mode) have no version counter; they cannot change in place
    return tuple((t.data_ptr(), -1 if t.is_inference() else t._version) for t in tensors)


def _shared_driver(model: X2Face, device: torch.device, dtype: torch.dtype, compile: bool,
                   cuda_graphs: bool) -> _SharedDriver:
    from .fast import FastDriver

    key = (id(model), str(device), dtype, compile, cuda_graphs, _weights_stamp(model))
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        if shared is None or shared.driver.reference is not model:
            driver = FastDriver(model, device, dtype, compile=compile, cuda_graphs=cuda_graphs, check_inputs=False)
            shared = _SHARED[key] = _SharedDriver(driver)
        return shared


# ---------------------------------------------------------------------------------------------- overlap
_DONE = object()
_POLL_S = 0.05


class _Stages:
    """Three overlapping stages for ``drive_frames(overlap=True)``: a thread iterates the face track
    (decode + crop), a thread drives batches of crops, and the caller's thread composes (paste-back)
    and consumes (encodes). Bounded queues between them; the first error in any stage stops all of
    them and is raised in the caller's thread; ``close`` stops and joins the threads."""

    def __init__(self, track, frames: Iterable, batch_size: int,
                 drive: Callable[[list[FaceCrop]], list[Any]]) -> None:
        self.track, self.frames, self.batch_size, self.drive = track, frames, batch_size, drive
        self.crops: queue.Queue = queue.Queue(maxsize=2 * batch_size)
        self.batches: queue.Queue = queue.Queue(maxsize=2)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._guard, args=(fn,), name=f"x2face-{name}", daemon=True)
                        for name, fn in (("crop", self._crop), ("drive", self._drive))]
        for t in self.threads:
            t.start()

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the caller's thread
            self.errors.append(exc)
            self.stop.set()

    def _put(self, q: queue.Queue, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue) -> Any:
        while True:
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                if self.stop.is_set():
                    return _DONE

    def _crop(self) -> None:  # decode + crop (the frames' iterator runs here, so it is closed here)
        try:
            for fc in self.track:
                if not self._put(self.crops, fc):
                    return
            self._put(self.crops, _DONE)
        finally:
            self.track.close()

    def _drive(self) -> None:  # the networks, one batch of crops at a time (batches as without overlap)
        batch: list[FaceCrop] = []
        while True:
            fc = self._get(self.crops)
            if fc is not _DONE:
                batch.append(fc)
            if batch and (fc is _DONE or len(batch) >= self.batch_size):
                if self.stop.is_set() or not self._put(self.batches, (batch, self.drive(batch))):
                    return
                batch = []
            if fc is _DONE:
                self._put(self.batches, _DONE)
                return

    def __iter__(self) -> Iterator[tuple[list[FaceCrop], list[np.ndarray | None]]]:
        while True:
            item = self._get(self.batches)
            if self.errors:
                raise self.errors[0]
            if item is _DONE:
                return
            yield item

    def close(self) -> None:
        """Stop every stage and wait for the threads (the crop thread closes the track and its frames)."""
        self.stop.set()
        crop = self.threads[0]
        crop.join(timeout=2)
        if crop.is_alive():  # still waiting for a frame: stop the source (a VideoReader kills its ffmpeg)
            close = getattr(self.frames, "close", None)
            if close is not None and not inspect.isgenerator(self.frames):
                close()
        for t in self.threads:
            t.join(timeout=30)


def side_by_side(*images: np.ndarray | None, height: int | None = None, gap: int = 4) -> np.ndarray:
    """Join images left to right at one height (e.g. ``side_by_side(source_crop, driving_crop, result)``).

    Args:
        images: uint8 [H_i, W_i, 3] RGB each; None gives a black square placeholder.
        height: output height (default: the tallest image's).
        gap: white pixels between images.

    Returns:
        uint8 [height, W, 3] RGB.
    """
    import cv2

    real = [to_rgb_array(im) for im in images if im is not None]
    if not real:
        raise InputError("side_by_side needs at least one image")
    h = int(height or max(im.shape[0] for im in real))
    parts = []
    for im in images:
        if im is None:
            parts.append(np.zeros((h, h, 3), np.uint8))
            continue
        im = to_rgb_array(im)
        w = max(1, round(im.shape[1] * h / im.shape[0]))
        interp = cv2.INTER_AREA if im.shape[0] > h else cv2.INTER_CUBIC
        parts.append(cv2.resize(im, (w, h), interpolation=interp) if im.shape[0] != h else im)
    spacer = np.full((h, gap, 3), 255, np.uint8)
    out = [parts[0]]
    for p in parts[1:]:
        out += [spacer, p]
    return np.concatenate(out, axis=1)  # [h, sum(W_i) + gaps, 3]


class X2FacePipeline:
    """Animate a source face with driving frames, driving vectors, or an edited embedded face.

    Args:
        model: an ``X2Face`` (put it on its device and dtype first; it is switched to eval mode).
        device, dtype: where to run and the model's dtype (default: the model's own).
        cropper: the ``FaceCropper`` for source and driving faces (default: one at the model's
            ``image_size``, scale 1.6, backend "auto").
        fast: run the per-frame work through ``x2face.fast.FastDriver`` (True), the plain eager
            model (False: the fp32 reference when the model is fp32), or ``"auto"`` (default):
            FastDriver unless the model's networks are not the stock ones (``fast_unsupported``),
            then eager, with the reason in ``fast_note``.
        precision: FastDriver's compute dtype: ``"auto"`` (default: the model's dtype if it is
            bf16/fp16, else bf16 on CUDA and on CPUs with AMX, fp32 on other CPUs), ``"fp32"``,
            ``"bf16"``, ``"fp16"`` or a torch dtype. Sampling is always fp32.
        compile, cuda_graphs: FastDriver's ``torch.compile`` and CUDA graphs (None: on CUDA only).
            Each batch size is compiled and captured on its first use (seconds, once per process).

    Outputs of the fast path are within ``self.fast.tolerance`` (max) and ``self.fast.mean_tolerance``
    (mean) of the fp32 eager model on images in [0, 1] (``x2face.fast.TOLERANCE``; fp32: 1e-4).
    """

    def __init__(self, model: X2Face, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                 cropper: FaceCropper | None = None, *, fast: bool | str = "auto",
                 precision: str | torch.dtype = "auto", compile: bool | None = None,
                 cuda_graphs: bool | None = None, sharp: bool = False) -> None:
        if not isinstance(model, X2Face):
            raise InputError(f"X2FacePipeline takes an X2Face model, got {type(model).__name__}")
        if fast not in (True, False, "auto"):
            raise ConfigError(f"fast must be True, False or 'auto', got {fast!r}")
        param = next(model.parameters())
        self.device = torch.device(device) if device is not None else param.device
        self.dtype = dtype or param.dtype
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.image_size = model.config.image_size
        self.cropper = cropper or FaceCropper(self.image_size, device=str(self.device))
        if self.cropper.image_size != self.image_size:
            raise InputError(f"the cropper makes {self.cropper.image_size}px crops but the model takes {self.image_size}px")
        self.source: SourceInfo | None = None
        self._source_vector: torch.Tensor | None = None
        self._sharp_maps: dict[int, _SharpMaps] = {}  # by the side of the sharp face
        self._unedited: torch.Tensor | None = None  # the embedded face as set_source made it
        self._edit: _EditLayer | None = None  # edits at their own resolution (add_edit_layer)
        self._group: list[X2FacePipeline] = []  # set_source(face="all"): a pipeline for each other face
        self.sharp = bool(sharp)  # the default of every render (drive_frames, drive_vectors, live)
        self.last_report = None  # faces.TrackReport of the last drive_frames call
        self.last_reference: list[int] | None = None  # per face, the reference frame of drive_frames(reference="best")
        self._shared: _SharedDriver | None = None
        self.fast_note = "fast=False: the eager model" if fast is False else ""
        if fast is not False:
            self._shared = self._make_fast(fast, precision, compile, cuda_graphs)

    def _make_fast(self, fast: bool | str, precision: str | torch.dtype, compile: bool | None,
                   cuda_graphs: bool | None) -> _SharedDriver | None:
        why = fast_unsupported(self.model)
        if why is not None:
            if fast is True:
                raise ConfigError(f"the fast path cannot run this model: {why}; use fast=False")
            self.fast_note = f"eager: {why}"
            return None
        on_cuda = self.device.type == "cuda"
        dtype = resolve_precision(precision, self.device, self.dtype)
        try:
            shared = _shared_driver(self.model, self.device, dtype, on_cuda if compile is None else bool(compile),
                                    on_cuda if cuda_graphs is None else bool(cuda_graphs))
        except ConfigError:
            raise
        except Exception as exc:  # a bug or an unusual machine: keep working, eagerly, and say why
            if fast is True:
                raise
            warnings.warn(f"X2FacePipeline: the fast path failed to start, running eagerly ({exc})", RuntimeWarning,
                          stacklevel=3)
            self.fast_note = f"eager: the fast path failed to start ({type(exc).__name__}: {exc})"
            return None
        self.fast_note = "FastDriver " + ", ".join(f"{k}={v}" for k, v in shared.driver.features.items()
                                                   if k in ("dtype", "compile", "cuda_graphs"))
        return shared

    @property
    def fast(self):
        """The ``x2face.fast.FastDriver`` doing the per-frame work (shared with other pipelines of the same
        model), or None on the eager path (``fast_note`` says why)."""
        return self._shared.driver if self._shared is not None else None

    @classmethod
    def from_pretrained(cls, weights: str | os.PathLike | None = None, device: str | torch.device | None = "auto",
                        dtype: torch.dtype = torch.float32, *, fast: bool | str = "auto",
                        precision: str | torch.dtype = "auto", sharp: bool = False,
                        **cropper_kwargs) -> "X2FacePipeline":
        """Load weights (``x2face.hub`` spec: None/"demo", a folder, or ``owner/repo[@rev]``) into a pipeline.

        ``fast``, ``precision`` and ``sharp`` are the constructor's; ``cropper_kwargs`` go to ``FaceCropper``
        (``backend``, ``scale``, ``detect_every``, ``select`` ...).
        """
        from .hub import load_model

        model = load_model(weights, device=device, dtype=dtype)
        cropper_kwargs.setdefault("device", str(next(model.parameters()).device))
        cropper = FaceCropper(model.config.image_size, **cropper_kwargs)
        return cls(model, cropper=cropper, fast=fast, precision=precision, sharp=sharp)

    # ------------------------------------------------------------------ model calls
    def _run(self, fn, *args):
        """Call a model method under inference mode with input checks off (the pipeline built the tensors)."""
        check = self.model.check_inputs
        self.model.check_inputs = False
        try:
            with torch.inference_mode():
                return fn(*args)
        finally:
            self.model.check_inputs = check

    def _run_fast(self, method: str, x: torch.Tensor) -> torch.Tensor:
        """``FastDriver.<method>(x)`` with the shared driver's cache holding this pipeline's embedded face."""
        shared = self._shared
        with shared.lock:
            if method not in ("driving_vector", "driving_grids", "vector_grids"):  # these need no face
                face = self._require_source().embedded
                if shared.face is not face:  # another source, an edit, a reset, or another pipeline's face
                    shared.driver.set_embedded(face.float())
                    shared.face = face
            return getattr(shared.driver, method)(x)

    def _crops_in(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 [S, S, 3] crops -> uint8 [N, 3, S, S] on the device (a quarter of float's bytes to copy)."""
        x = torch.from_numpy(np.stack(crops))  # [N, S, S, 3]
        if self.device.type == "cuda":
            x = x.pin_memory()
        return x.to(self.device, non_blocking=True).permute(0, 3, 1, 2)  # [N, S, S, 3] -> [N, 3, S, S]

    def _vectors(self, crops: Sequence[np.ndarray], motion: "RelativeMotion | None" = None) -> torch.Tensor:
        """uint8 [S, S, 3] driving crops -> driving vectors float [N, D] (``motion``: moved by their change from a
        reference instead)."""
        if self._shared is not None:
            v = self._run_fast("driving_vector", self._crops_in(crops))  # float32 [N, D]
        else:
            v = self._run(self.model.driving_vector, _to_tensor(crops, self.device, self.dtype))  # [N, D]
        return v if motion is None else motion(v)

    def _vector_grids(self, vectors: torch.Tensor) -> torch.Tensor:
        """float [N, D] driving vectors -> the grids that sample the embedded face, float [N, S, S, 2]."""
        if self._shared is not None:
            return self._run_fast("vector_grids", vectors.to(self.device, torch.float32))
        return self._run(self.model.driving_grid, vectors.to(device=self.device, dtype=self.dtype))

    def _drive_crops(self, crops: Sequence[np.ndarray], motion: "RelativeMotion | None" = None) -> np.ndarray:
        """uint8 [S, S, 3] driving crops -> uint8 [N, S, S, 3] generated crops of the cached source (``motion``:
        moved by the driving vectors' change from a reference instead)."""
        if self._shared is not None and motion is None:
            return _to_uint8(self._run_fast("drive", self._crops_in(crops)))  # the fused path
        return self._render(self._vectors(crops, motion))  # [N, D] -> [N, S, S, 3]

    def _generate(self, crops: Sequence[np.ndarray], motion: "RelativeMotion | None" = None,
                  sharp: bool | int = False) -> list[tuple[np.ndarray, np.ndarray]]:
        """Driving crops -> per crop (generated uint8 [S, S, 3], what is output or pasted back: the same, or with
        ``sharp`` the face sampled from the sharp source crops, uint8 [R, R, 3]; an int ``sharp`` caps R)."""
        if not sharp:
            return [(g, g) for g in self._drive_crops(crops, motion)]
        if self._shared is not None and motion is None:
            grids = self._run_fast("driving_grids", self._crops_in(crops))  # float32 [N, S, S, 2], in one pass
        else:
            grids = self._vector_grids(self._vectors(crops, motion))  # [N, S, S, 2]
        small = _to_uint8(warp(self._require_source().embedded.expand(len(crops), -1, -1, -1), grids))
        return list(zip(small, self._render_sharp(grids, _sharp_cap(sharp))))

    def _sharp_source(self, side: int = SHARP_MAX_SIDE) -> _SharpMaps:
        """The embedding's maps and the sharp crops as tensors, at most ``side`` a side (made on first use)."""
        src = self._require_source()
        r = self._sharp_side(side)
        if r not in self._sharp_maps:
            sources = _to_tensor(src.crops, self.device, self.dtype).unsqueeze(0)  # [K, 3, S, S] -> [1, K, 3, S, S]
            grids, shares = self._run(self.model.embedding_maps, sources)  # [1, K, S, S, 2], [1, K, 1, S, S]
            fields = torch.cat([grids[0].permute(0, 3, 1, 2).float(), shares[0]], 1)  # [K, 2 + 1, S, S]
            _, n0, q0 = src.surround[0]
            b = max(1, round(r * (n0 + 2 * q0) / n0))  # the margins' side at the sharp face's resolution
            crops, ends = [], []
            for image, n, q in src.surround:
                c = _to_tensor([image], self.device, torch.float32)  # [1, 3, B_k, B_k]
                crops.append(c if c.shape[-1] == b else F.interpolate(c, size=(b, b), mode="bilinear",
                                                                      antialias=True))  # [1, 3, B, B]
                ends.append([_in_margin(i, self.image_size, n, q, b) for i in (0, self.image_size - 1)])
            ends_t = torch.tensor(ends, device=self.device, dtype=torch.float32).view(-1, 2, 1, 1, 1)  # [K, 2, 1, 1, 1]
            scale, shift = (ends_t[:, 1] - ends_t[:, 0]) / 2, (ends_t[:, 1] + ends_t[:, 0]) / 2  # [K, 1, 1, 1] each
            self._sharp_maps[r] = _SharpMaps(fields, torch.cat(crops), self._unedited, r, scale, shift)
        return self._sharp_maps[r]

    def _render_sharp(self, grids: torch.Tensor, side: int = SHARP_MAX_SIDE) -> list[np.ndarray]:
        """Driving grids float [N, S, S, 2] -> faces uint8 [R, R, 3]: the sharp source crops (with their margins)
        sampled through both warps composed (the embedding's, then the driving one) instead of the model-size
        embedded face; then the edit layers through the driving warp at their own resolution (``add_edit_layer``),
        or the (model-size) difference of an embedded face set by hand. R is at most ``side``."""
        maps = self._sharp_source(side)
        embedded = self._require_source().embedded
        k, r, s = maps.crops.shape[0], maps.side, self.image_size
        layer = self._edit if self._edit is not None and self._edit.embedded is embedded else None
        under = layer.base if layer is not None else embedded  # what the sharp crops plus a difference stand for
        edit = None if under is maps.embedded else under.float() - maps.embedded.float()  # [1, 3, S, S]
        if layer is not None:
            paint_layer = layer.at(r)  # [1, 4, E, E], E <= R
            e = paint_layer.shape[-1]
            layer_scale = (1.0 - 1.0 / s) / (1.0 - 1.0 / e)  # as ``scale``, for the E-pixel layer
        out = []
        with torch.inference_mode():
            for g in grids.float():  # one frame at a time (R may be 1024): [S, S, 2]
                f = warp(maps.fields, g.expand(k, s, s, 2))  # [K, 3, S, S]: the maps where this frame samples them
                # [K, 3, S, S] -> [K, 3, R, R]; align_corners=False puts each of the R pixels where it lies in the box
                f = F.interpolate(f, size=(r, r), mode="bilinear", align_corners=False)
                where = f[:, :2].permute(0, 2, 3, 1) * maps.scale + maps.shift  # [K, 2, R, R] -> [K, R, R, 2]
                face = f[:, 2:3] * warp(maps.crops, where)  # [K, 3, R, R]: each source's share
                if k > 1:
                    face = face.sum(0, keepdim=True)  # [K, 3, R, R] -> [1, 3, R, R]
                if edit is not None:
                    face = face + F.interpolate(warp(edit, g[None]), size=(r, r), mode="bilinear", align_corners=False)
                if layer is not None:  # the edits drawn at their own resolution, "over" the face
                    up = F.interpolate(g.permute(2, 0, 1)[None], size=(r, r), mode="bilinear",
                                       align_corners=False)  # [S, S, 2] -> [1, 2, S, S] -> [1, 2, R, R]
                    paint = warp(paint_layer, up.permute(0, 2, 3, 1) * layer_scale)  # [1, 4, R, R]
                    face = face * (1.0 - paint[:, 3:]) + paint[:, :3]
                out.append(_to_uint8(face)[0])
        return out

    @property
    def sharp_side(self) -> int:
        """Side in pixels of the sharp face (the first source face's size in its photo, between the model's size
        and ``SHARP_MAX_SIDE``): what sharp rendering outputs, and the resolution edits are kept at."""
        return self._sharp_side(SHARP_MAX_SIDE)

    def _sharp_side(self, cap: int) -> int:
        """The sharp face's side with at most ``cap`` pixels (never under the model's size)."""
        return max(self.image_size, min(self._require_source().sharp[0].shape[0], int(cap)))

    def _require_source(self) -> SourceInfo:
        if self.source is None:
            raise InputError("no source face yet: call set_source(photos) first")
        return self.source

    # ------------------------------------------------------------------ source
    def set_source(self, images: ImageLike | Sequence[ImageLike], *, video_frames: int = 4,
                   limits: Limits | None = None, face: FaceSelect | None = None) -> SourceInfo:
        """Crop and embed the source face (once); several photos of one person are embedded together.

        Args:
            images: a photo or a list of photos of the same person: paths, PIL images or arrays
                (uint8 [H, W, 3] RGB, or any layout ``media.to_rgb_array`` takes). A path to a video (or an
                animated GIF/WebP/PNG) of the person stands for ``video_frames`` of its frames, spread evenly
                over the frames of its first ``SOURCE_VIDEO_SECONDS`` seconds where a face is found (the
                paper's multi-frame embedding from one clip).
            video_frames: frames taken from each source video (>= 1).
            limits: ``media.Limits`` for source videos (default ``media.DEFAULT_LIMITS``).
            face: which face of a group photo: "largest", an index from the left (0 = leftmost) or an
                (x, y) pixel point (``FaceCropper``'s ``select``); None: the cropper's own ``select``, which
                also picks the driving face. ``"all"`` (``faces.EVERY_FACE``, one photo): every face; the
                leftmost is this pipeline's source (``SourceInfo``), and ``drive_frames`` and ``live`` animate
                all of them with the same driving face and paste each back into the photo; ``drive_vectors``
                (pose, audio) moves each face by the same change from its own driving vector, and an edit goes on
                every face.

        Returns:
            the new ``SourceInfo`` (also ``self.source``); a video's frames are named "clip.mp4 at 2.5 s".

        Raises:
            NoFaceError: "no human face found in <photo>" naming the photo (or the video), or a face index
                past the faces in a photo.
            MediaError: an unreadable or too large photo or video.
        """
        if isinstance(images, (str, os.PathLike, np.ndarray)) or not isinstance(images, Sequence):
            images = [images]
        if len(images) == 0:
            raise InputError("set_source needs at least one photo")
        if isinstance(video_frames, bool) or not isinstance(video_frames, int) or video_frames < 1:
            raise InputError(f"video_frames must be a whole number >= 1, got {video_frames!r}")
        if face == EVERY_FACE:
            return self._set_every_face(images, limits)
        select = self.cropper.select if face is None else face
        check_select(select)
        crops, boxes, names, counts, sharp, surround, first, pose = [], [], [], [], [], [], None, None
        for i, item in enumerate(images):
            is_path = isinstance(item, (str, os.PathLike))
            if is_path and not is_still_image(item):
                faces = self._video_faces(item, video_frames, limits, select)
            else:
                if is_path:
                    name = Path(item).name
                else:
                    name = f"source photo {i + 1}" if len(images) > 1 else "the source photo"
                photo = read_image(item)
                found = self.cropper.crop_image(photo, name, select)
                faces = [(name, photo, found, self._sharp_crop(photo, found.box))]
            for name, photo, found, (big, around) in faces:
                crops.append(found.crop)
                sharp.append(big)
                surround.append(around)
                boxes.append(found.box)
                names.append(name)
                counts.append(found.faces)
                if first is None:
                    first, pose = photo, found.pose
        sources = _to_tensor(crops, self.device, self.dtype).unsqueeze(0)  # [K, 3, S, S] -> [1, K, 3, S, S]
        emb = self._run(self.model.embed_with_confidence, sources)
        self.source = SourceInfo(crops, boxes, names, first, emb.face, emb.confidence, self.cropper.backend, pose,
                                 counts, select, sharp, surround)
        self._sharp_maps = {}
        self._unedited = emb.face  # sharp rendering adds what an edit changes from this
        self._edit = None
        self._source_vector = None
        self._group = []
        return self.source

    def _set_every_face(self, images: Sequence[ImageLike], limits: Limits | None) -> SourceInfo:
        """``set_source(face="all")``: the leftmost face here, each other face in a copy of this pipeline (the same
        model, cropper and fast driver; its own source)."""
        if len(images) != 1 or isinstance(images[0], (str, os.PathLike)) and not is_still_image(images[0]):
            raise InputError("every face (face='all') is for one group photo: several photos, or a video, show one "
                             "person; choose a face for them")
        info = self.set_source(images, limits=limits, face=0)
        group = []
        for i in range(1, info.faces[0]):
            other = copy.copy(self)  # set_source replaces every per-source attribute of the copy
            other.set_source([info.photo], limits=limits, face=i)  # the photo decoded once, and shared
            other.source.names, other.source.photo = info.names, info.photo
            group.append(other)
        self._group = group
        info.select = EVERY_FACE
        return info

    @property
    def sources(self) -> list[SourceInfo]:
        """Every face the pipeline animates: ``[self.source]``, or with ``set_source(face="all")`` one ``SourceInfo``
        per face of the group photo, from the left."""
        return [m._require_source() for m in self._members]

    def _sharp_crop(self, image: np.ndarray, box: tuple[float, float, float, float],
                    ) -> tuple[np.ndarray, tuple[np.ndarray, int, int]]:
        """``box`` of ``image`` at its own resolution (at least the model's size, at most ``SHARP_MAX_SIDE``),
        uint8 [R, R, 3], and the same with ``SHARP_MARGIN`` around it (``SourceInfo.surround``'s entry)."""
        n = max(1, int(round(box[2] - box[0])))  # the box's side in photo pixels, as crop_square takes it
        side = max(self.image_size, min(n, SHARP_MAX_SIDE))
        q = int(math.ceil(SHARP_MARGIN * n))  # whole photo pixels, so the margin's pixels line up with the box's
        around = (box[0] - q, box[1] - q, box[2] + q, box[3] + q)
        big = crop_square(image, around, max(1, round(side * (n + 2 * q) / n)), self.cropper.pad)
        return crop_square(image, box, side, self.cropper.pad), (big, n, q)

    def _video_faces(self, path: str | os.PathLike, count: int, limits: Limits | None,
                     select: FaceSelect) -> list[tuple[str, np.ndarray | None, FaceCrop, tuple]]:
        """Up to ``count`` (name, frame, FaceCrop, ``_sharp_crop``'s pair) of a source video: three candidates per
        wanted frame are decoded evenly over its first ``SOURCE_VIDEO_SECONDS`` s, and ``count`` of those with a face
        are taken evenly (first and last included). Only the first frame is kept at full resolution (the paste-back
        target); the others carry None."""
        info = probe_video(path)
        span = min(info.duration or SOURCE_VIDEO_SECONDS, SOURCE_VIDEO_SECONDS)
        fps = min(float(info.fps), 3 * count / max(span, 1e-3))
        reader = VideoReader(path, seconds=span, fps=fps, limits=limits, info=info)
        found: list[tuple[str, np.ndarray | None, FaceCrop, tuple]] = []
        short: FaceIndexError | None = None
        for j, frame in enumerate(reader):
            name = f"{Path(path).name} at {j / float(reader.fps):.1f} s"
            try:
                face = self.cropper.crop_image(frame, name, select)
            except FaceIndexError as exc:
                short = exc
                continue
            except NoFaceError:
                continue
            sharp = self._sharp_crop(frame, face.box)  # (crop, surround)
            found.append((name, frame if not found else None, replace(face, faces=0), sharp))
        if not found and short is not None:
            raise short
        if not found:
            raise NoFaceError(f"no human face found in {Path(path).name} ({reader.frames_read} frames checked; use a "
                              f"clip where one face is clearly visible)")
        return [found[k] for k in spread(len(found), count)]

    def embedded_face(self, side: int | None = None) -> np.ndarray:
        """The cached embedded face, with its edits, as uint8 RGB.

        Args:
            side: None: the model's own embedded face, [S, S, 3] (edit it and hand it to ``set_embedded_face``).
                A number of pixels: the embedded face sampled from the full-resolution source photos (as sharp
                rendering does), at most ``sharp_side`` pixels and resized to exactly [side, side, 3]. Paint on it
                at that size and give it to ``edit_embedded_face(painted=...)``: the paint keeps its detail in sharp
                renders.
        """
        src = self._require_source()
        if side is None:
            return _to_uint8(src.embedded)[0]
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or not 16 <= side <= 4096:
            raise InputError(f"side must be a whole number of pixels from 16 to 4096, got {side!r}")
        s = self.image_size
        itself = identity_grid(1, s, s, device=self.device)  # [1, S, S, 2]: the embedded face, unmoved
        still = self._render_sharp(itself, int(side))[0]  # uint8 [R, R, 3], R at most sharp_side
        if still.shape[0] == side:
            return still
        import cv2

        shrink = still.shape[0] > side
        return cv2.resize(still, (int(side), int(side)), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)

    def set_embedded_face(self, image: np.ndarray | torch.Tensor) -> None:
        """Replace the cached embedded face (texture editing: the edit then follows the driving head).

        It replaces the edit layers too (``add_edit_layer``, what ``edit_embedded_face`` uses): sharp rendering then
        adds this face's difference to the unedited one at the model's size. With every face of a group photo as
        the source it is the leftmost face's (the others keep theirs; ``add_edit_layer`` edits them all).

        Args:
            image: uint8 [S, S, 3] RGB or float [S, S, 3] in [0, 1] (numpy), or a float tensor
                [3, S, S] / [1, 3, S, S] in [0, 1].
        """
        src = self._require_source()
        s = self.image_size
        if isinstance(image, torch.Tensor):
            t = image.detach()
            if t.dim() == 3:
                t = t.unsqueeze(0)  # [3, S, S] -> [1, 3, S, S]
            if tuple(t.shape) != (1, 3, s, s) or not t.is_floating_point():
                raise InputError(f"the embedded face tensor must be float [1, 3, {s}, {s}] in [0, 1], got "
                                 f"{t.dtype} {list(t.shape)}")
            t = t.clamp(0.0, 1.0)
        else:
            arr = np.asarray(image)
            if arr.shape[:2] != (s, s):
                raise InputError(f"the embedded face must be {s}x{s} (the model's size), got {list(arr.shape)}")
            t = _to_tensor([to_rgb_array(arr)], self.device, self.dtype)  # [1, 3, S, S]
        src.embedded = t.to(device=self.device, dtype=self.dtype)

    def source_vector(self) -> torch.Tensor:
        """Driving vector of the first source crop, float [1, vector_dim] on the model's device and dtype
        (pose and audio controls move the source by editing this vector and rendering with ``drive_vectors``)."""
        src = self._require_source()
        if self._source_vector is None:
            if self._shared is not None:
                v = self._run_fast("driving_vector", self._crops_in(src.crops[:1]))  # float32 [1, D]
                self._source_vector = v.to(self.dtype)
            else:
                x = _to_tensor(src.crops[:1], self.device, self.dtype)  # [1, 3, S, S]
                self._source_vector = self._run(self.model.driving_vector, x)
        return self._source_vector.clone()

    # ------------------------------------------------------------------ controls (x2face.control)
    def confidence_map(self) -> np.ndarray:
        """The embedded face's confidence as uint8 [S, S] (brighter = more source evidence), for display."""
        from .control.edit import confidence_image

        return confidence_image(self._require_source().confidence)

    def reset_embedded_face(self) -> None:
        """Undo edits: the embedded face as ``set_source`` made it (every face's, for a group photo)."""
        self._require_source().embedded = self._unedited
        self._edit = None
        for other in self._group:
            other.reset_embedded_face()

    @property
    def _members(self) -> tuple["X2FacePipeline", ...]:
        """The pipeline of each face it animates, from the left: this one, and with ``set_source(face="all")`` one
        for each other face of the group photo."""
        return (self, *self._group)

    def member(self, face: int | None) -> "X2FacePipeline":
        """The pipeline of one face of a group photo (``set_source(face="all")``): 0 the leftmost (this pipeline),
        -1 the rightmost; its ``embedded_face``, ``sharp_side`` and ``source`` are that face's. Edit one face with
        ``edit_embedded_face(face=...)``: this pipeline's own edits go on every face. None (an edit of every face):
        this pipeline, whose embedded face is the one such edits are made on."""
        if face is None:
            return self
        members = self._members
        if isinstance(face, bool) or not isinstance(face, int) or not -len(members) <= face < len(members):
            raise InputError(f"the source has {len(members)} face{'s' if len(members) != 1 else ''}: there is no "
                             f"face {face!r} (0 = leftmost, -1 = rightmost)")
        return members[face]

    def add_edit_layer(self, layer: np.ndarray, face: int | None = None) -> None:
        """Draw an RGBA layer over the embedded face (what ``edit_embedded_face`` does with an edit).

        The networks get it at the model's size; sharp rendering keeps it at its own size E, so a sticker or
        paint made at the sharp face's size (``embedded_face(side)``) stays crisp. Layers added one after another
        stack. With every face of a group photo as the source, the layer goes on each face's embedded face (they
        line up across people, as the paper's edits do), or with ``face`` on that face's alone (``member``).

        Args:
            layer: float [E, E, 4] in [0, 1] (or uint8), straight (not premultiplied) alpha, the embedded face's
                square at any size (a non-square layer is stretched onto it).
            face: None: every face; an index from the left (0 = leftmost, -1 = rightmost): that face only.
        """
        from .control.edit import as_float_image

        self._require_source()
        lay = as_float_image(layer, (4,), "layer")  # float32 [h, w, 4]
        for m in self._members if face is None else (self.member(face),):
            m._add_layer(lay)

    def _add_layer(self, lay: np.ndarray) -> None:
        """``add_edit_layer`` on this pipeline's own face: ``lay`` float32 [h, w, 4], straight alpha."""
        from .control.edit import apply_layer

        src = self._require_source()
        before, old = src.embedded, self._edit
        self.set_embedded_face(apply_layer(self.embedded_face(), lay))
        e = max(*lay.shape[:2], self.image_size)  # at least the model's size (E = 1 cannot be sampled)
        t = torch.from_numpy(lay).permute(2, 0, 1)[None].to(self.device)  # [h, w, 4] -> [1, 4, h, w]
        pre = torch.cat([t[:, :3] * t[:, 3:], t[:, 3:]], 1)  # [1, 4, h, w], premultiplied
        if old is not None and old.embedded is before:  # stack over the earlier layers, at the finer size
            e = max(e, old.layer.shape[-1])
            under = _resize_layer(old.layer, e)
            pre = _resize_layer(pre, e)
            pre = pre + under * (1.0 - pre[:, 3:])  # [1, 4, E, E]: straight "over" in premultiplied form
            base = old.base
        else:
            pre, base = _resize_layer(pre, e), before
        self._edit = _EditLayer(pre, src.embedded, base)

    def edit_state(self) -> EditState:
        """The embedded face and its edits as they are now (``restore_edit`` puts them back)."""
        return EditState(self._require_source().embedded, self._edit, tuple(m.edit_state() for m in self._group))

    def restore_edit(self, state: EditState) -> None:
        """Put back the embedded face and edits of an ``edit_state()`` of the same source."""
        self._require_source().embedded = state.embedded
        self._edit = state.edit
        for other, theirs in zip(self._group, state.others):
            other.restore_edit(theirs)

    def edit_embedded_face(self, face: int | None = None, **edit) -> np.ndarray:
        """Draw on the embedded face (``x2face.control.edit.apply_edit``: ``overlay=`` RGBA at ``position=``,
        ``scale=``; ``painted=`` a painted copy; or ``layer=`` an earlier edit); returns the edit's RGBA layer.
        With every face of a group photo as the source the edit goes on every face, or with ``face`` (an index
        from the left) on that one alone, sized and painted on its own embedded face."""
        from .control.edit import apply_edit

        return apply_edit(self, face=face, **edit)

    def drive_pose(self, yaw: float, pitch: float, roll: float, *, paste_back: bool = False) -> np.ndarray:
        """The source at head pose (yaw, pitch, roll) in degrees, uint8 RGB (``x2face.control.pose.drive_pose``)."""
        from .control.pose import drive_pose

        return drive_pose(self, yaw, pitch, roll, paste_back=paste_back)

    def pose_sweep(self, axis: str = "yaw", amplitude: float | None = None, num_frames: int = 75, *,
                   paste_back: bool = False) -> Iterator[np.ndarray]:
        """Frames of the source turning along one axis (``x2face.control.pose.pose_sweep``)."""
        from .control.pose import pose_sweep

        return pose_sweep(self, axis, amplitude, num_frames, paste_back=paste_back)

    def drive_audio(self, audio, sample_rate: int | None = None, **options):
        """Make the source speak ``audio`` (a file or samples): an ``AudioDrive`` with 25 fps frames and the
        16 kHz audio (``x2face.control.audio.drive_audio``)."""
        from .control.audio import drive_audio

        return drive_audio(self, audio, sample_rate, **options)

    # ------------------------------------------------------------------ driving
    def _render(self, vectors: torch.Tensor) -> np.ndarray:
        """float [B, D] vectors -> uint8 [B, S, S, 3] generated crops of the cached source."""
        src = self._require_source()
        if self._shared is not None:
            return _to_uint8(self._run_fast("render_vectors", vectors.to(device=self.device, dtype=torch.float32)))
        out = self._run(self.model.render, src.embedded, vectors.to(device=self.device, dtype=self.dtype))
        return _to_uint8(out)

    def _compose(self, generated: np.ndarray, paste: bool) -> np.ndarray:
        if not paste:
            return generated
        src = self._require_source()
        return paste_back(src.photo, generated, src.boxes[0])

    def _pastes(self, paste_back: bool) -> bool:
        """Whether output is pasted back: as asked, and always with every face of a group photo as the source."""
        return paste_back or self._require_source().select == EVERY_FACE

    def _source_frame(self, paste: bool, sharp: bool = False) -> np.ndarray:
        src = self._require_source()
        return src.photo.copy() if paste else (src.sharp[0] if sharp else src.crops[0]).copy()

    def drive_vectors(self, vectors: torch.Tensor | np.ndarray, *, paste_back: bool = False,
                      batch_size: int = 16, sharp: bool | None = None) -> Iterator[np.ndarray]:
        """Render the source at given driving vectors (pose and audio controls end here).

        Args:
            vectors: float [N, vector_dim] (tensor or array); [vector_dim] is taken as N = 1.
            paste_back: output the source photo with the face pasted in, instead of the crop.
            batch_size: vectors per model call.
            sharp: the face at the photo's resolution (``drive_frames``); None: the pipeline's ``sharp``.

        Yields:
            uint8 RGB frames, [S, S, 3] ([R, R, 3] with ``sharp``) or (paste_back) [H, W, 3], one per vector. With
            every face of a group photo as the source, the photo (paste-back is implied) with each face moved by
            the same change from its own driving vector as ``vectors`` make from the leftmost face's
            (``source_vector``): a pose or a voice moves everyone alike.
        """
        self._require_source()
        v = torch.as_tensor(vectors)
        if v.dim() == 1:
            v = v.unsqueeze(0)  # [D] -> [1, D]
        dim = self.model.config.vector_dim
        if v.dim() != 2 or v.shape[1] != dim or not v.is_floating_point():
            raise InputError(f"vectors must be float [N, {dim}], got {v.dtype} {list(v.shape)}")
        sharp = bool(self.sharp if sharp is None else sharp)
        for i in range(0, v.shape[0], max(1, int(batch_size))):
            chunk = v[i:i + batch_size]
            if self._group:
                change = chunk.to(self.device, torch.float32) - self.source_vector().float()  # [n, D]
                yield from self._paste_every([m._faces(m.source_vector().float() + change, sharp)
                                              for m in self._members])
                continue
            for g in self._faces(chunk, sharp):  # uint8 [R, R, 3] each (sharp) or [S, S, 3]
                yield self._compose(g, self._pastes(paste_back))

    def drive_frames(self, frames: Iterable[np.ndarray], *, paste_back: bool = False, batch_size: int = 16,
                     on_missing: str = "hold", overlap: bool = False, relative: bool = False,
                     motion_scale: float = 1.0, sharp: bool | None = None,
                     driving_face: FaceSelect | None = None, reference: str | int = "first") -> Iterator[DrivenFrame]:
        """Animate the source with a driving video.

        Args:
            frames: driving frames, uint8 [H, W, 3] RGB each (e.g. a ``media.VideoReader``), streamed.
            paste_back: output the source photo at full resolution with the generated face pasted
                in (feathered) instead of the generated crop.
            batch_size: driving crops per model call.
            on_missing: frames without a driving face: ``"hold"`` repeats the last output (the
                unanimated source before the first face), ``"source"`` shows the unanimated
                source, ``"skip"`` drops the frame (the output then has fewer frames than the input).
            overlap: decode + crop the frames in one thread and run the networks in another, while
                the caller's thread pastes back and consumes the output (e.g. encodes it); bounded
                queues, the same frames as without. Meant for a GPU (the CPU stages then run beside
                it); on a busy 2-core CPU it gave no consistent gain (docs/speed.md). An error in any
                stage stops all of them and comes out here; closing the generator stops them too.
            relative: relative motion (``RelativeMotion``): the source keeps its own pose and shape and
                moves as the driving face moves from the first frame where a face is found, instead of
                taking the driving face's pose (and, through the driving vector, some of its shape).
            motion_scale: with ``relative``, how much of the driving face's motion the source makes (0 none,
                1 as much, 2 twice as much; at most ``MAX_MOTION_SCALE``).
            reference: with ``relative``, the driving frame the motion counts from: ``"first"`` with a face,
                ``"best"``, the one posed most like the source (``best_references``), or a frame index (the first
                frame with a face from there on). For the last two the frames are read twice, so they must be a
                ``VideoReader``, a list or another iterable that starts again, not an iterator. The frames chosen,
                per face, are ``self.last_reference``.
            sharp: render the face at its size in the source photo, R = ``SourceInfo.sharp[0]``'s side (at
                least the model's size, at most ``SHARP_MAX_SIDE``), by sampling the full-resolution source
                through the model's two warps, composed, instead of the model-size output (enlarged when
                pasted back): the photo's detail stays. ``image`` is then [R, R, 3] (or the photo);
                ``generated`` is still the model-size output. Edits of the embedded face are drawn at their own
                resolution (``add_edit_layer``). None: the pipeline's ``sharp``.
            driving_face: which face drives when the frames show several people ("largest", an index from the
                left, an (x, y) point), picked where faces are first seen and then followed; None: the
                cropper's ``select``. ``"all"`` (``faces.EVERY_FACE``, with every face of a group photo as the
                source): each face of the photo is driven by the clip's face in its place, the N largest faces
                of the first frame that shows N, from the left, each followed on its own (``GroupTrack``); a
                face whose driver is lost holds its last render, and a frame counts as found where any is.

        With every face of a group photo as the source (``set_source(face="all")``) each frame is the photo with
        every face animated (``paste_back`` is implied) and ``generated`` is the leftmost face's render.

        Yields:
            ``DrivenFrame`` per driving frame, in order. The tracking report is ``self.last_report``
            (updated as frames go).
        """
        if on_missing not in ON_MISSING:
            raise InputError(f"on_missing must be one of {', '.join(ON_MISSING)}, got {on_missing!r}")
        self._require_source()
        motions = self._face_motions(relative, motion_scale)
        each = self._each_driver(driving_face)
        self.last_reference = None
        at = reference if isinstance(reference, int) and not isinstance(reference, bool) else None
        if reference not in ("first", "best") and (at is None or at < 0):
            raise InputError(f"reference must be 'first', 'best' or a frame index >= 0, got {reference!r}")
        if reference != "first":
            if not relative:
                raise InputError(f"reference={reference!r} picks relative motion's reference frame: pass "
                                 f"relative=True")
            if each:
                raise InputError(f"reference={reference!r} is for one driving face (or every face driven alike), "
                                 f"not each face by its own")
            if iter(frames) is frames:
                raise InputError(f"reference={reference!r} reads the frames twice: pass a VideoReader or a list, not "
                                 f"an iterator")
            refs = self.best_references(frames, driving_face=driving_face, batch_size=batch_size, at=at)
            for motion, (_, vector) in zip(motions, refs):
                motion.reference = vector
            self.last_reference = [index for index, _ in refs]
        if each:
            track = self.cropper.track_every(frames, len(self.sources))
        else:
            track = self.cropper.track(frames, driving_face)
        self.last_report = track.report
        bs = max(1, int(batch_size))
        sharp = bool(self.sharp if sharp is None else sharp)
        paste_back = self._pastes(paste_back)
        pasted = bool(self._group) or each  # the drive function gives the photo with every face pasted back
        if each:
            drive = functools.partial(self._drive_each, motions=motions, sharp=sharp, held=[None] * len(motions))
        elif self._group:  # every face of a group photo: rendered together and pasted back
            drive = functools.partial(self._drive_every, motions=motions, sharp=sharp)
        else:
            drive = functools.partial(self._drive_batch, motion=motions[0], sharp=sharp)
        if overlap:
            stages = _Stages(track, frames, bs, drive)
            batches, close = iter(stages), stages.close
        else:
            batches, close = self._batches(track, bs, drive), track.close
        last: np.ndarray | None = None
        try:
            for batch, generated in batches:
                for fc, g in zip(batch, generated):
                    if fc.found:
                        last = g[1] if pasted else self._compose(g[1], paste_back)
                        yield DrivenFrame(last, fc.index, True, fc.crop, g[0])
                    elif on_missing == "skip":
                        continue
                    else:
                        held = on_missing == "hold" and last is not None
                        image = last if held else self._source_frame(paste_back, sharp)
                        yield DrivenFrame(image, fc.index, False, fc.crop, None)
        finally:
            close()

    def best_references(self, frames: Iterable[np.ndarray], *, driving_face: FaceSelect | None = None,
                        batch_size: int = 16, at: int | None = None) -> list[tuple[int, torch.Tensor]]:
        """For each face the pipeline animates (one, or every face of a group photo), the driving frame posed most
        like it: the one whose driving vector is nearest (Euclidean) that face's own (``source_vector``).
        Relative motion from there (``drive_frames(relative=True, reference="best")``) keeps the source as it is
        where the driving face is posed as the source is, wherever that is in the clip, not only at its start.

        Args:
            frames: driving frames, uint8 [H, W, 3] RGB (read once here).
            driving_face, batch_size: as ``drive_frames``'.
            at: instead, the first frame with a face at index ``at`` or later, for every face (the reading stops
                there).

        Returns:
            Per face, (frame index, that frame's driving vector float32 [1, D]).

        Raises:
            NoFaceError: no frame (at ``at`` or later) shows a face.
        """
        self._require_source()
        track = self.cropper.track(frames, driving_face)
        indices: list[int] = []
        vectors: list[torch.Tensor] = []
        try:
            for batch, _ in self._batches(track, max(1, int(batch_size)), lambda b: b):
                found = [fc for fc in batch if fc.found and (at is None or fc.index >= at)]
                if found:
                    vectors.append(self._vectors([fc.crop for fc in found]).float().cpu())  # [n, D]
                    indices += [fc.index for fc in found]
                if at is not None and indices:
                    break
        finally:
            track.close()
        if not indices:
            where = "the driving frames" + (f" from frame {at} on" if at else "")
            raise NoFaceError(track.report.nothing_found(where))
        v = torch.cat(vectors)  # [N, D]
        refs = []
        for member in self._members:
            i = 0 if at is not None else int((v - member.source_vector().float().cpu()).norm(dim=1).argmin())
            refs.append((indices[i], v[i:i + 1].clone()))  # ([N, D] - [1, D] -> [N]) -> [1, D]
        return refs

    def live(self, *, paste_back: bool = False, relative: bool = False, motion_scale: float = 1.0,
             sharp: bool | int | None = None, driving_face: FaceSelect | None = None) -> "LiveSession":
        """A session that drives the source with frames arriving one at a time (a webcam): ``step(frame)``
        answers each frame at once (``relative``, ``motion_scale``, ``sharp``, ``driving_face``: as
        ``drive_frames``'s, from the first frame with a face on; an int ``sharp`` caps the sharp face's side, for
        speed; with every face of a group photo as the source, each is driven and pasted back). See
        ``LiveSession``."""
        return LiveSession(self, paste_back=paste_back, relative=relative, motion_scale=motion_scale,
                           sharp=self.sharp if sharp is None else sharp, driving_face=driving_face)

    def relative_motion(self, scale: float = 1.0) -> "RelativeMotion":
        """A fresh ``RelativeMotion`` for this source (its reference is the next driving face it sees)."""
        return RelativeMotion(self.source_vector().float(), scale=scale)

    def _motion(self, relative: bool, motion_scale: float) -> "RelativeMotion | None":
        """``drive_frames``' and ``live``'s ``relative`` and ``motion_scale`` -> a fresh ``RelativeMotion`` or None."""
        if not relative and motion_scale != 1.0:
            raise InputError("motion_scale scales relative motion: pass relative=True with it")
        return self.relative_motion(motion_scale) if relative else None

    def _face_motions(self, relative: bool, motion_scale: float) -> list["RelativeMotion | None"]:
        """``_motion`` for each face the pipeline animates (``sources``: one, or every face of a group photo)."""
        return [m._motion(relative, motion_scale) for m in self._members]

    def _drive_batch(self, batch: list[FaceCrop], motion: "RelativeMotion | None" = None,
                     sharp: bool = False) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """``_generate``'s (generated, to paste) pairs for a batch of tracked frames (None where no face was found)."""
        found = [fc.crop for fc in batch if fc.found]
        generated = iter(self._generate(found, motion, sharp) if found else [])
        return [next(generated) if fc.found else None for fc in batch]

    def _drive_every(self, batch: list[FaceCrop], motions: list["RelativeMotion | None"],
                     sharp: bool | int = False) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """``_drive_batch`` with every face of a group photo as the source: each face is rendered from the same
        driving vectors (moved by its own relative motion) and pasted back; per frame (the leftmost face's
        render, the photo with every face animated), None where no driving face was found (an int ``sharp``
        caps the sharp faces' side)."""
        found = [fc.crop for fc in batch if fc.found]
        if not found:
            return [None] * len(batch)
        vectors = self._vectors(found)  # float [N, D]: once for every face
        renders = [m._faces(vectors if motion is None else motion(vectors), sharp)
                   for m, motion in zip(self._members, motions)]
        rendered = iter(zip(renders[0], self._paste_every(renders)))
        return [next(rendered) if fc.found else None for fc in batch]

    def _each_driver(self, driving_face: FaceSelect | None) -> bool:
        """Whether ``driving_face`` asks for a driving face for each face of the group photo (``"all"``); refused
        unless every face of the photo is the source."""
        if driving_face != EVERY_FACE:
            return False
        if self._require_source().select != EVERY_FACE:
            raise InputError("each driving face drives the face of a group photo in its place: set the source "
                             "with every face (face='all'; in the app, 'every face' under Face), or pick one driving "
                             "face")
        return True

    def _drive_each(self, batch: list[GroupCrop], motions: list["RelativeMotion | None"], sharp: bool,
                    held: list[np.ndarray | None]) -> list[tuple[np.ndarray | None, np.ndarray] | None]:
        """``_drive_every`` with a driving face for each face of the group photo (``GroupCrop``s of
        ``driving_face="all"``): face j is rendered from the j-th driving face's vectors (moved by its own relative
        motion). A face whose driver was not found holds its last render in ``held`` (updated here, across
        batches; None: the photo's own face). Per frame (the leftmost face's render, the photo with every face
        pasted back), None where no driving face was found."""
        found = [[g.faces[j].crop for g in batch if g.faces[j].found] for j in range(len(motions))]
        crops = [c for face in found for c in face]
        every = self._vectors(crops).split([len(f) for f in found]) if crops else []  # one call: [n_j, D] each
        renders = []  # per face of the photo: a face per frame, or None
        for j, (m, motion) in enumerate(zip(self._members, motions)):
            vectors = every[j] if found[j] else None  # float [n_j, D]
            faces = iter(m._faces(vectors if motion is None else motion(vectors), sharp) if found[j] else [])
            column = []
            for g in batch:
                if g.faces[j].found:
                    held[j] = next(faces)
                column.append(held[j])
            renders.append(column)
        return [(renders[0][k], photo) if g.found else None
                for k, (g, photo) in enumerate(zip(batch, self._paste_every(renders)))]

    def _faces(self, vectors: torch.Tensor, sharp: bool | int) -> list[np.ndarray]:
        """float [N, D] driving vectors -> N uint8 faces of this source: [R, R, 3] with ``sharp`` (an int caps R),
        else [S, S, 3]."""
        if sharp:
            return self._render_sharp(self._vector_grids(vectors), _sharp_cap(sharp))
        return list(self._render(vectors))

    def _paste_every(self, renders: list[list[np.ndarray | None]]) -> list[np.ndarray]:
        """Each face's N renders (every face of a group photo, from the left) -> N uint8 [H, W, 3] photos with every
        face pasted back (a None render leaves the photo's own face)."""
        out = []
        for faces in zip(*renders):  # one frame: a face per member
            photo = self.source.photo
            for m, face in zip(self._members, faces):
                if face is not None:
                    photo = paste_back(photo, face, m.source.boxes[0])
            out.append(photo)
        return out

    @staticmethod
    def _batches(track, batch_size: int, drive: Callable[[list[FaceCrop]], list[Any]],
                 ) -> Iterator[tuple[list[FaceCrop], list[Any]]]:
        """(tracked frames, generated crops) per batch of ``batch_size`` frames, in this thread."""
        batch: list[FaceCrop] = []
        for fc in track:
            batch.append(fc)
            if len(batch) >= batch_size:
                yield batch, drive(batch)
                batch = []
        if batch:
            yield batch, drive(batch)


def motion_note(scale: float = 1.0, reference: Sequence[int] | None = None, fps: float | None = None,
                start: float = 0.0, best: bool = True) -> str:
    """How relative motion reads in a summary: "relative motion from its first face" ("... x2 ..." when scaled;
    with ``reference``, ``X2FacePipeline.last_reference``: "... from frame 37 (1.48 s), posed most like the
    photo" (``best``; else without the reason), the time in the file: ``start`` + frame / ``fps``)."""
    note = "relative motion" + (f" x{scale:g}" if scale != 1.0 else "")
    if not reference:
        return note + " from its first face"
    frames = list(dict.fromkeys(reference))  # (the faces of a group photo may pick the same frame: named once)
    at = ", ".join(f"{i}" + (f" ({start + i / fps:.2f} s)" if fps else "") for i in frames)
    return note + f" from frame{'s' if len(frames) > 1 else ''} {at}" + (", posed most like the photo" if best
                                                                        else "")


class RelativeMotion:
    """Relative motion: driving vectors move the source by their change from a reference driving face,
    ``v = v_source + (v_t - v_reference)``, the vector arithmetic the paper uses for pose and audio (section
    4). The driving vector carries the driving face's pose and some of its shape (``shape_leakage`` in
    ``x2face.evaluate``); the difference of two frames of one driving face keeps its motion and drops what is
    constant, its shape, so the source keeps its own pose and shape. Works best when the reference frame
    shows the driving face as the source photo shows its own (``cross_relative_l1`` measures that case).

    Args:
        source: the source's own driving vector, float [1, D] (``X2FacePipeline.source_vector``).
        reference: the reference driving vector [1, D]; None: the first vector it is called with.
        scale: how much of the motion the source makes, ``v_source + scale * (v_t - v_reference)``: 0 none, 1 as
            much as the driving face, 2 twice as much (0 .. ``MAX_MOTION_SCALE``; past 1 the vectors leave what
            the model was trained on, so large values distort).
    """

    def __init__(self, source: torch.Tensor, reference: torch.Tensor | None = None, scale: float = 1.0) -> None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.0 <= scale <= MAX_MOTION_SCALE:
            raise InputError(f"the motion scale must be a number from 0 to {MAX_MOTION_SCALE:g}, got {scale!r}")
        self.source = source.float()
        self.reference = None if reference is None else reference.float()
        self.scale = float(scale)

    def __call__(self, vectors: torch.Tensor) -> torch.Tensor:
        """float [N, D] driving vectors, in order -> float32 [N, D] vectors that move the source."""
        v = vectors.float()
        if self.reference is None:
            self.reference = v[:1].clone()
        return self.source.to(v.device) + self.scale * (v - self.reference.to(v.device))


class _Inbox:
    """An endless frame iterator fed one frame at a time (``LiveSession``'s tracker reads from it)."""

    def __init__(self) -> None:
        self.frame: np.ndarray | None = None

    def __iter__(self) -> "_Inbox":
        return self

    def __next__(self) -> np.ndarray:
        if self.frame is None:  # the tracker asks for a frame only after step() gave one
            raise StopIteration
        frame, self.frame = self.frame, None
        return frame


class LiveSession:
    """Drive a pipeline's source with frames that arrive one at a time, e.g. from a webcam.

    Each ``step(frame)`` returns that frame's result before the next frame exists: the face is detected in
    every frame (near the last box, so it is cheap) and the crop box smoothed as in a video
    (``FaceCropper``'s deadbands), with no look-ahead. Frames without a face repeat the last result (the
    unanimated source before the first face). One session per stream; ``step`` is serialised by a lock.

        >>> live = pipe.live()
        >>> out = live.step(webcam_frame)        # DrivenFrame: .image uint8 RGB, .found, .driving_crop
    """

    def __init__(self, pipe: X2FacePipeline, *, paste_back: bool = False, relative: bool = False,
                 motion_scale: float = 1.0, sharp: bool | int = False, driving_face: FaceSelect | None = None) -> None:
        pipe._require_source()
        pipe._each_driver(driving_face)  # (refused unless every face of a group photo is the source)
        self.driving_face = driving_face
        self._motions = pipe._face_motions(relative, motion_scale)  # their reference: the first frame with a face
        self._held: list[np.ndarray | None] = [None] * len(self._motions)  # driving_face="all": each face's last
        self.pipe = pipe
        self.paste_back = paste_back  # as asked (``_pastes``: every face of a group photo is always pasted back)
        self.relative = relative
        self.motion_scale = float(motion_scale)
        self.sharp = sharp if isinstance(sharp, int) and not isinstance(sharp, bool) else bool(sharp)
        self.cropper = copy.copy(pipe.cropper)  # the pipeline's detector, crop and smoothing settings ...
        self.cropper.detect_every = self.cropper.max_gap = 1  # ... with a detection in every frame
        self.cropper.memo = None  # (webcam frames never come twice: nothing to remember)
        self._inbox = _Inbox()
        self._track = self._new_track()
        self._last: np.ndarray | None = None
        self._lock = threading.Lock()

    def _new_track(self):
        """A tracker (``FaceTrack``, or ``GroupTrack`` with every driving face) on the frames ``step`` receives."""
        if self.driving_face == EVERY_FACE:
            return self.cropper.track_every(self._inbox, len(self._motions))
        return self.cropper.track(self._inbox, self.driving_face)

    @property
    def frames(self) -> int:
        """Frames stepped so far."""
        return self._track.report.frames

    @property
    def found(self) -> int:
        """Frames with a face so far (with every driving face, ``driving_face="all"``: with all of them)."""
        return self._track.report.found

    @property
    def faces(self) -> int:
        """Driving faces followed: 1, or with every driving face the group photo's number of faces."""
        return self._track.report.faces

    def step(self, frame: np.ndarray) -> DrivenFrame:
        """The source driven by one frame.

        Args:
            frame: uint8 [H, W, 3] RGB (other layouts converted by ``media.to_rgb_array``).

        Returns:
            ``DrivenFrame``: ``image`` uint8 [S, S, 3] (or [H, W, 3] pasted back into the source photo).
        """
        with self._lock:
            self._inbox.frame = to_rgb_array(frame)
            try:
                fc = next(self._track)
            except StopIteration:  # an error in an earlier step ended the tracker: start a fresh one
                self._track = self._new_track()
                fc = next(self._track)
            if fc.found and isinstance(fc, GroupCrop):  # a driving face for each face of the group photo
                generated, self._last = self.pipe._drive_each([fc], self._motions, self.sharp, self._held)[0]
                return DrivenFrame(self._last, fc.index, True, fc.crop, generated)
            if fc.found and self.pipe._group:  # every face of a group photo, pasted back
                generated, self._last = self.pipe._drive_every([fc], self._motions, self.sharp)[0]
                return DrivenFrame(self._last, fc.index, True, fc.crop, generated)
            if fc.found:
                generated, pasted = self.pipe._generate([fc.crop], self._motions[0], self.sharp)[0]
                self._last = self.pipe._compose(pasted, self.pipe._pastes(self.paste_back))
                return DrivenFrame(self._last, fc.index, True, fc.crop, generated)
            image = self._last if self._last is not None else \
                self.pipe._source_frame(self.pipe._pastes(self.paste_back), self.sharp)
            return DrivenFrame(image, fc.index, False, fc.crop, None)


__all__ = ["DrivenFrame", "EditState", "LiveSession", "MAX_MOTION_SCALE", "ON_MISSING", "RelativeMotion",
           "SHARP_MAX_SIDE", "SourceInfo", "X2FacePipeline", "fast_unsupported", "motion_note", "resolve_precision",
           "side_by_side"]
