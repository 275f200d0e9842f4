"""What the Gradio app (``app.py``) does besides drawing widgets: settings and upload limits, choosing,
loading and caching weights, caching embedded sources, the app's temporary folders, and the render jobs.

Nothing here imports Gradio: ``app.py`` turns the ``X2FaceError``s raised here into ``gr.Error``s and
passes a ``tqdm``-tracking progress bar. Every job sits on ``X2FacePipeline`` (``x2face.pipeline``) and
the controls of ``x2face.control``; no model logic lives here.

    >>> settings = AppSettings.from_env()                  # X2FACE_WEIGHTS, X2FACE_DEVICE, ...
    >>> models = ModelCache(settings)
    >>> loaded = models.get(None)                          # the app's default weights, loaded once
    >>> sources = SourceCache(models)
    >>> with sources.get(None, ["me.jpg"]) as pipe:        # cropped and embedded once per photo set
    ...     frame = pipe.drive_pose(20, 0, 0)
    >>> result = animate_frames(pipe, "clip.mp4", job_dir(), seconds=5)
"""
from __future__ import annotations

import atexit
import contextvars
import hashlib
import math
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .errors import InputError, MediaError, NoFaceError, WeightsError
from .hub import training_summary  # noqa: F401  (re-exported: the app's weights panel and its tests use it)

#: Frame rate of generated (pose and audio driven) videos, as the paper's.
FPS = 25
#: Height of the side-by-side comparison frames (crops are upscaled to it so they are visible).
COMPARE_HEIGHT = 256
#: Side of the embedded face as shown for painting (sampled from the photo; the networks get the edit at the model's
#: size, sharp rendering at this one).
EDIT_DISPLAY = 512
#: Longest side of output video frames (paste-back into a large photo is downscaled to it).
MAX_OUTPUT_SIDE = 1280
#: The live tab's sharp face is at most this many pixels a side, for speed (``benchmarks/live_latency.py`` times it).
LIVE_SHARP_SIDE = 384
#: The live tab keeps its last results this long (JPEG in memory) for "Save the last ... as a video", at this rate.
LIVE_RECORD_SECONDS = 30
LIVE_RECORD_FPS = 10
#: Longest side of the pose tab's preview (sharp rendering makes it the face's size in the photo, up to 1024).
PREVIEW_SIDE = 512
#: The choices of the weights chooser.
WEIGHTS_SOURCES = ("bundled demo weights", "Hugging Face Hub repo", "local folder")


# ============================================================================================ settings
def parse_file_size(text: str | int) -> int:
    """``"200mb"``, ``"1gb"``, ``"500kb"``, ``"1024"`` or an int -> bytes (what Gradio's ``max_file_size`` takes)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        s = str(text).strip().lower().replace(" ", "")
        units = {"tb": 1024**4, "gb": 1024**3, "mb": 1024**2, "kb": 1024, "b": 1}
        mult = 1
        for unit, m in units.items():
            if s.endswith(unit):
                s, mult = s[: -len(unit)], m
                break
        try:
            value = int(float(s) * mult)
        except ValueError:
            raise InputError(f"a file size must look like 200mb, 1gb or 500kb, got {text!r}") from None
    if value <= 0:
        raise InputError(f"a file size must be positive, got {text!r}")
    return value


@dataclass
class AppSettings:
    """How the app runs; ``python app.py --help`` sets them, ``from_env`` reads the ``X2FACE_*`` variables.

    Attributes:
        weights: the default weights spec (``x2face.hub``: None/"demo" = bundled demo weights, a folder,
            or ``owner/repo[@rev]``).
        device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, ``cuda:1`` ...
        max_file_size: largest upload in bytes (refused by Gradio before anything is decoded).
        max_upload_seconds: longest video or audio accepted (read from the file's header).
        max_seconds: most seconds of a clip or recording one job animates (the UI's slider range).
        default_seconds: the slider's starting value.
        max_image_pixels: largest photo accepted (checked from the header before decoding).
        max_pixels: largest video frame accepted (width * height).
        concurrency: render jobs running at once (others wait in the queue); previews have their own lane.
        queue_size: jobs that may wait; more are refused with "the queue is full".
        allow_local_weights: whether the weights chooser may load a folder on the server.
        cache_minutes: the app's own outputs and Gradio's cache are deleted after this long.
        batch_size: frames per model call.
        max_fps: driving clips of a higher frame rate are read at their rate divided by the least whole number that
            brings it within this (``media.capped_fps``: a 60 fps phone clip at 30), which halves the work and keeps
            the motion and the sound in step.
    """

    weights: str | None = None
    device: str = "auto"
    max_file_size: int = 200 * 1024**2
    max_upload_seconds: float = 600.0
    max_seconds: float = 30.0
    default_seconds: float = 5.0
    max_image_pixels: int = 40_000_000
    max_pixels: int = 16_777_216
    concurrency: int = 1
    queue_size: int = 20
    allow_local_weights: bool = True
    cache_minutes: int = 60
    batch_size: int = 16
    max_fps: float = 30.0

    def __post_init__(self) -> None:
        if self.weights is not None and not str(self.weights).strip():
            self.weights = None
        self.max_file_size = parse_file_size(self.max_file_size)
        for name in ("max_upload_seconds", "max_seconds", "default_seconds", "max_fps"):
            if not math.inf > float(getattr(self, name)) > 0:
                raise InputError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        self.max_seconds = min(float(self.max_seconds), float(self.max_upload_seconds))
        self.default_seconds = min(float(self.default_seconds), self.max_seconds)
        for name in ("concurrency", "queue_size", "cache_minutes", "batch_size", "max_image_pixels", "max_pixels"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)!r}")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "AppSettings":
        """Settings from ``X2FACE_WEIGHTS``, ``X2FACE_DEVICE``, ``X2FACE_APP_MAX_FILE_SIZE``,
        ``X2FACE_APP_MAX_SECONDS``, ``X2FACE_APP_MAX_FPS``, ``X2FACE_APP_CONCURRENCY`` and
        ``X2FACE_APP_LOCAL_WEIGHTS`` (0/1);
        on a Hugging Face Space (``SPACE_ID`` set) local folders are off unless that says 1."""
        env = dict(os.environ if env is None else env)
        kw: dict[str, Any] = {}
        if env.get("X2FACE_WEIGHTS"):
            kw["weights"] = env["X2FACE_WEIGHTS"]
        if env.get("X2FACE_DEVICE"):
            kw["device"] = env["X2FACE_DEVICE"]
        if env.get("X2FACE_APP_MAX_FILE_SIZE"):
            kw["max_file_size"] = env["X2FACE_APP_MAX_FILE_SIZE"]
        for key, name, cast in (("X2FACE_APP_MAX_SECONDS", "max_seconds", float),
                                ("X2FACE_APP_MAX_FPS", "max_fps", float),
                                ("X2FACE_APP_CONCURRENCY", "concurrency", int)):
            if env.get(key):
                try:
                    kw[name] = cast(env[key])
                except ValueError:
                    raise InputError(f"{key} must be a number, got {env[key]!r}") from None
        local = env.get("X2FACE_APP_LOCAL_WEIGHTS")
        kw["allow_local_weights"] = (local == "1") if local in ("0", "1") else not env.get("SPACE_ID")
        return cls(**kw)

    def limits(self):
        """The ``x2face.media.Limits`` uploads are checked against."""
        from .media import Limits

        return Limits(max_seconds=self.max_upload_seconds, max_pixels=self.max_pixels,
                      max_image_pixels=self.max_image_pixels)

    def clamp_seconds(self, seconds: float | None) -> float:
        """The seconds a job animates: the UI's value, within (0, ``max_seconds``]."""
        if seconds is None:
            return self.default_seconds
        try:
            s = float(seconds)
        except (TypeError, ValueError):
            raise InputError(f"seconds must be a number, got {seconds!r}") from None
        if not math.isfinite(s) or s <= 0:
            raise InputError(f"seconds must be positive, got {seconds!r}")
        return min(s, self.max_seconds)

    @staticmethod
    def start(start: float | None) -> float:
        """Seconds into a clip or recording a job starts at: the UI's value (None or empty: 0), a number >= 0."""
        if start is None or start == "":
            return 0.0
        try:
            s = float(start)
        except (TypeError, ValueError):
            raise InputError(f"the start must be a number of seconds, got {start!r}") from None
        if not 0 <= s < math.inf:
            raise InputError(f"the start must be a number of seconds >= 0, got {start!r}")
        return s


# ============================================================================================ temp folders
class TempSpace:
    """The app's own temporary folder: ``jobs/`` for outputs (one folder per job) and ``gradio/`` for
    Gradio's cache (uploads and served files). Job folders older than ``max_age_s`` are deleted when a
    new job starts, and the whole folder when the process exits.

    Args:
        root: the folder (default: a new ``x2face-app-*`` folder in the system's temp folder).
        max_age_s: age after which a job's outputs are deleted.
    """

    def __init__(self, root: str | os.PathLike | None = None, max_age_s: float = 3600.0) -> None:
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="x2face-app-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.jobs = self.root / "jobs"
        self.jobs.mkdir(exist_ok=True)
        self.gradio = self.root / "gradio"
        self.max_age_s = float(max_age_s)
        self._lock = threading.Lock()

    def job_dir(self) -> Path:
        """A new, empty folder for one job's outputs (old ones are swept first)."""
        self.sweep()
        path = self.jobs / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:10]}"
        path.mkdir(parents=True)
        return path

    def sweep(self, max_age_s: float | None = None) -> int:
        """Delete job folders older than ``max_age_s`` (default ``self.max_age_s``); returns how many."""
        age = self.max_age_s if max_age_s is None else float(max_age_s)
        now = time.time()
        removed = 0
        with self._lock:
            if not self.jobs.is_dir():
                return 0
            for child in self.jobs.iterdir():
                try:
                    if now - child.stat().st_mtime >= age:
                        shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    def contains(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` lies inside this folder (after resolving links)."""
        try:
            Path(path).resolve().relative_to(self.root.resolve())
            return True
        except ValueError:
            return False

    def cleanup(self) -> None:
        """Delete the whole folder."""
        shutil.rmtree(self.root, ignore_errors=True)


_TEMP: TempSpace | None = None
_TEMP_LOCK = threading.Lock()


def app_temp(max_age_s: float = 3600.0) -> TempSpace:
    """The process's ``TempSpace`` (created on first use, deleted at exit). Also points Gradio's cache
    (``GRADIO_TEMP_DIR``) into it unless that is already set, so the app serves files from its own
    temporary folders only: call this before importing gradio."""
    global _TEMP
    with _TEMP_LOCK:
        if _TEMP is None:
            _TEMP = TempSpace(max_age_s=max_age_s)
            atexit.register(_TEMP.cleanup)
            if not os.environ.get("GRADIO_TEMP_DIR"):
                _TEMP.gradio.mkdir(exist_ok=True)
                os.environ["GRADIO_TEMP_DIR"] = str(_TEMP.gradio)
        return _TEMP


def job_dir() -> Path:
    """A fresh output folder inside the app's temporary folder."""
    return app_temp().job_dir()


# ============================================================================================ weights
def weights_spec(source: str, value: str | None, settings: AppSettings) -> str:
    """The weights chooser's (choice, text) -> an ``x2face.hub`` weights spec.

    Args:
        source: one of ``WEIGHTS_SOURCES``.
        value: the Hub repo id (``owner/name[@revision]``) or the folder, for those choices.

    Raises:
        WeightsError: an empty or malformed repo id, a missing folder, or a folder while local
            folders are switched off.
    """
    text = (value or "").strip()
    if source == WEIGHTS_SOURCES[0]:
        return "demo"
    if source == WEIGHTS_SOURCES[1]:
        repo = text.partition("@")[0]
        parts = repo.split("/")
        if len(parts) != 2 or not all(parts) or any(c.isspace() for c in text) or text.startswith((".", "/", "~")) \
                or len(repo) > MAX_REPO_ID:
            shown = text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)"
            raise WeightsError(f"a Hub repo id looks like owner/name or owner/name@revision, got {shown!r}")
        return text
    if source == WEIGHTS_SOURCES[2]:
        if not settings.allow_local_weights:
            raise WeightsError("loading weights from a folder on the server is switched off here; "
                               "use a Hugging Face Hub repo id")
        if not text:
            raise WeightsError("give the folder that holds config.json and model.safetensors")
        folder = Path(os.path.expanduser(text))
        if not folder.is_dir():
            raise WeightsError(f"no such folder: {text}")
        return str(folder.resolve())
    raise WeightsError(f"choose the weights from {', '.join(WEIGHTS_SOURCES)}, got {source!r}")


#: The longest Hub repo id (owner/name) the chooser takes (the Hub allows 96 characters a name).
MAX_REPO_ID = 140


def chooser_default(spec: str | None) -> tuple[str, str]:
    """The weights chooser's initial (choice, text) for the app's default weights spec."""
    if spec is None or str(spec) in ("", "demo"):
        return WEIGHTS_SOURCES[0], ""
    s = str(spec)
    if os.path.exists(s) or s.startswith((".", "/", "~")):
        return WEIGHTS_SOURCES[2], s
    return WEIGHTS_SOURCES[1], s


def device_label(device) -> str:
    """``"GPU (NVIDIA H100, cuda:0)"`` or ``"CPU (no CUDA GPU found)"`` / ``"CPU"``."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"GPU ({torch.cuda.get_device_name(index)}, cuda:{index})"
    return "CPU" if torch.cuda.is_available() else "CPU (no CUDA GPU found)"


#: what the weights panel adds for the shipped demo weights, so nobody mistakes them for X2Face's quality
SHIPPED_DEMO_NOTE = ("**Quality:** these are the small smoke-test weights the repository ships (trained for an hour on "
                     "a 2-core CPU): expect a blurred face that follows the driving head only a little and a mouth "
                     "that does not follow speech. For real use, load trained or converted weights under "
                     "*Choose weights* (README: *The bundled demo model*).")


@dataclass
class LoadedWeights:
    """A loaded model and what the app says about it.

    Attributes:
        spec: the weights spec it was loaded from (``x2face.hub``).
        model: the ``X2Face`` (eval mode, on ``device``).
        device: the torch device.
        where: the folder or Hub repo it came from.
        provenance: its ``provenance.json`` (empty when there is none).
    """

    spec: str
    model: Any
    device: Any
    where: str
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def has_pose(self) -> bool:
        return getattr(self.model, "pose", None) is not None

    @property
    def has_audio(self) -> bool:
        audio = getattr(self.model, "audio", None)
        return audio is not None and audio.extractor is not None

    def markdown(self) -> str:
        """What is loaded, what it was trained on, which controls it has and where it runs."""
        cfg = self.model.config
        params = self.model.num_parameters()["total"]
        pose = "yes" if self.has_pose else "no (fit one: `python -m x2face fit-pose`)"
        audio = f"yes ({cfg.audio_features} features)" if self.has_audio else \
            "no (fit one: `python -m x2face fit-audio`)"
        name = "bundled demo weights" if self.spec in ("", "demo") else "weights"
        return (f"**Loaded:** {name} `{self.where}` ({cfg.image_size} px, {params / 1e6:.2f} M parameters)  \n"
                f"**Trained on:** {training_summary(self.provenance)}  \n"
                f"**Pose control:** {pose}; **audio control:** {audio}  \n"
                f"**Running on:** {device_label(self.device)}"
                + (f"  \n{SHIPPED_DEMO_NOTE}" if self.is_shipped_demo else ""))

    @property
    def is_shipped_demo(self) -> bool:
        """Whether these are the smoke-test weights this repository ships (``assets/x2face-demo``)."""
        from .hub import SHIPPED_DEMO_DIR

        try:
            return Path(self.where).resolve() == SHIPPED_DEMO_DIR.resolve()
        except (OSError, ValueError):
            return False


def missing_weights_markdown(error: Exception) -> str:
    """What the weights panel says when the weights cannot be loaded (e.g. no bundled demo weights yet)."""
    return (f"**No weights loaded:** {error}  \n"
            "Choose a Hugging Face Hub repo id or a local folder above (a folder from `python -m x2face train` "
            "or `python -m x2face convert-original`), or start the app with `--weights`.")


class ModelCache:
    """Load weights once per (spec, the location it resolves to, device) and keep the most recent ``capacity`` models.

    Args:
        settings: the app's settings (default weights and device).
        capacity: models kept in memory at once.
    """

    def __init__(self, settings: AppSettings, capacity: int = 2) -> None:
        self.settings = settings
        self.capacity = max(1, int(capacity))
        self._models: OrderedDict[tuple[str, str, str], LoadedWeights] = OrderedDict()
        self._lock = threading.Lock()

    def spec(self, spec: str | None) -> str:
        """None (the session has chosen nothing) -> the app's default weights spec."""
        if spec is None or str(spec) == "":
            return self.settings.weights or "demo"
        return str(spec)

    def get(self, spec: str | None = None) -> LoadedWeights:
        """The model for a weights spec (None: the app's default), loading it on first use.

        Raises:
            WeightsError: the weights cannot be found or read (e.g. no bundled demo weights yet).
        """
        from .hub import load_model, pick_device, read_provenance, resolve

        spec = self.spec(spec)
        device = pick_device(self.settings.device)
        where, revision = resolve(spec)
        key = (spec, f"{where}@{revision}", str(device))  # "demo" names whatever folder it resolves to now
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            try:
                model = load_model(spec, device=device)
            except WeightsError:
                raise
            except (OSError, ValueError) as exc:  # e.g. a Hub repo that does not exist, or offline
                raise WeightsError(f"cannot load weights {spec!r}: {exc}") from exc
            loaded = LoadedWeights(spec, model, device, where if revision is None else f"{where}@{revision}",
                                   read_provenance(spec))
            self._models[key] = loaded
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return loaded


# ============================================================================================ sources
def file_digest(path: str | os.PathLike) -> str:
    """SHA-1 of a file's bytes (what identifies an uploaded photo in the source cache)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def as_paths(files: Any) -> list[str]:
    """Gradio's file values (a path, a list of paths, dicts with ``path``/``name``, file objects) -> paths."""
    if files is None:
        return []
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    out = []
    for f in files:
        if f is None:
            continue
        if isinstance(f, dict):
            f = f.get("path") or f.get("name")
        elif isinstance(f, (tuple, list)) and f:  # gallery items (path, caption)
            f = f[0]
        elif hasattr(f, "name") and not isinstance(f, (str, os.PathLike)):
            f = f.name
        if f:
            out.append(os.fspath(f))
    return out


class _Entry:
    """One cached pipeline (None until its source is set) and the lock its users hold."""

    def __init__(self) -> None:
        self.pipe = None
        self.lock = threading.Lock()


class SourceCache:
    """Pipelines with their source photos cropped and embedded, kept per (weights, photos).

    A pose slider move then costs one driving pass: the embedding of the photo is computed on the
    first request and reused. ``get`` holds the entry's lock while the caller uses the pipeline, so
    two users of the same photo never interleave (the edit tab changes the embedded face and puts
    it back before releasing it).

    Args:
        models: the ``ModelCache``.
        capacity: pipelines kept (each holds its first photo at full resolution for paste-back).
    """

    def __init__(self, models: ModelCache, capacity: int = 4) -> None:
        self.models = models
        self.capacity = max(1, int(capacity))
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def get(self, spec: str | None, photos: Any, face: str | None = "largest", *, wait: bool = True
            ) -> Iterator[Any]:
        """``with cache.get(spec, photos) as pipe:`` an ``X2FacePipeline`` whose source is ``photos``
        (paths; several photos of one person are embedded together; a clip of the person gives four of
        its frames, ``X2FacePipeline.set_source``); ``face`` picks the face in a photo of several people
        (a ``FACE_CHOICES`` value: "largest", or an index from the left, "0" = leftmost, "-1" = rightmost; or
        "all", every face of one group photo: ``X2FacePipeline.set_source(face="all")``). ``wait`` False (the
        previews): while a render holds the cached pipeline, a pipeline of its own is made for the caller (an
        embedding more, well under a second) instead of waiting for the render to end.

        Raises:
            InputError: no photo given, or a face choice that is none of those; MediaError: unreadable or too
            large photos; NoFaceError: a photo without a human face (named in the message), or fewer faces
            than the index chosen; WeightsError: weights that cannot load.
        """
        from .faces import FaceCropper, parse_face_select
        from .media import image_size, is_still_image
        from .pipeline import X2FacePipeline

        paths = as_paths(photos)
        if not paths:
            raise InputError("upload a photo of a face first")
        select = parse_face_select(face or "largest", "the face choice", every=True)
        settings = self.models.settings
        limit = settings.max_image_pixels
        for p in paths:
            if not is_still_image(p):  # a clip of the person: its frames are the photos (set_source)
                check_duration(p, settings.max_upload_seconds)
                continue
            w, h = image_size(p)  # from the header: nothing is decoded yet
            if w * h > limit:
                raise MediaError(f"{Path(p).name} is {w}x{h} ({w * h / 1e6:.0f} megapixels); the limit here is "
                                 f"{limit / 1e6:.0f} megapixels: resize it first")
        loaded = self.models.get(spec)
        # (the names too: the crops are captioned with them, and the same photo of another visitor's is not named
        # after this one's file)
        key = (loaded.spec, loaded.where, str(loaded.device), tuple((file_digest(p), Path(p).name) for p in paths),
               select)
        with self._lock:
            entry = self._entries.setdefault(key, _Entry())
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        def made() -> Any:
            pipe = X2FacePipeline(loaded.model, cropper=FaceCropper(loaded.model.config.image_size), sharp=True)
            pipe.set_source(paths, limits=settings.limits(), face=select)
            return pipe

        if not wait and entry.pipe is not None and not entry.lock.acquire(blocking=False):
            yield made()  # (busy: a render of this photo; not cached)
            return
        if wait or entry.pipe is None:
            entry.lock.acquire()
        try:
            if entry.pipe is None:
                entry.pipe = made()
            yield entry.pipe
        finally:
            entry.lock.release()

    def clear(self) -> None:
        """Forget every cached source."""
        with self._lock:
            self._entries.clear()


# ============================================================================================ media
def check_duration(path: str | os.PathLike, limit: float):
    """Refuse a video or audio file longer than ``limit`` seconds, from its header (nothing is decoded).

    Returns the file's ``x2face.media.VideoInfo`` (its ``duration`` is None when the header does not
    say, e.g. a browser recording: then reading stops at the limit).
    """
    from .media import probe_video

    info = probe_video(path)
    if info.duration is not None and info.duration > limit + 1e-6:
        raise MediaError(f"{Path(path).name} is {info.duration:.1f} s long; the limit here is {limit:.0f} s "
                         f"(cut it shorter first)")
    return info


def open_clip(path: str | os.PathLike, *, seconds: float | None, limits=None, max_fps: float | None = None,
              start: float = 0.0):
    """A ``media.VideoReader`` for a driving clip from ``start`` seconds into it, checked against ``limits`` from its
    header first, at most ``max_fps`` frames per second (``media.capped_fps``).

    Returns:
        (reader, note): ``note`` is "" at the clip's own rate from its start, else e.g. " from 12 s" and/or
        " (every 2nd frame of a 60 fps clip)".
    """
    from .faces import ordinal
    from .media import VideoReader, capped_fps, probe_video

    info = check_duration(path, limits.max_seconds) if limits is not None else probe_video(path)
    fps = capped_fps(info.fps, max_fps)
    reader = VideoReader(path, seconds=seconds, limits=limits, info=info, fps=fps, start=start)
    step = round(info.fps / fps)
    note = f" from {start:g} s" if start else ""
    note += f" (every {ordinal(step)} frame of a {float(info.fps):.3g} fps clip)" if step > 1 else ""
    return reader, note


#: least height of the live tab's picture (driving crop | result): smaller results are enlarged to it
LIVE_HEIGHT = 256


def preview(frame: np.ndarray) -> np.ndarray:
    """A live preview (the pose sliders') at most ``PREVIEW_SIDE`` a side: every slider move sends one."""
    return fit_frame(frame, PREVIEW_SIDE)


def fit_frame(frame: np.ndarray, max_side: int = MAX_OUTPUT_SIDE) -> np.ndarray:
    """Downscale a uint8 [H, W, 3] RGB frame so its longest side is at most ``max_side`` (else as is)."""
    from .media import fit_side

    return fit_side(frame, max_side)


def display_face(face: np.ndarray, size: int = EDIT_DISPLAY) -> np.ndarray:
    """A face-sized picture (uint8 [S, S, 3], e.g. the confidence map) upscaled to ``size`` (as is when S >= size)."""
    if face.shape[0] >= size:
        return face
    import cv2

    return cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)


#: While a render job runs: its stop flag (``app.py`` sets it when the job is cancelled or its tab closed). The
#: render loops (``_progress``) stop at their next frame once it is set, instead of running on for a result nobody
#: will see.
STOP: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("x2face_stop", default=None)


class JobCancelled(Exception):
    """The render's job was stopped (``STOP``): its partial outputs are deleted as on any error."""


class SessionJobs:
    """The stop flags (``STOP``) of the render jobs each browser session has running, so that a session that ends
    (its tab closed or reloaded: Gradio's ``unload``, within its heartbeat of 15 s) stops its renders too; Gradio
    drops its queued jobs itself but lets a running one run on."""

    def __init__(self) -> None:
        self._jobs: dict[str, set[threading.Event]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def running(self, session: str | None, stop: threading.Event) -> Iterator[None]:
        """While the block runs, ``stop`` is one of ``session``'s (None: no session, e.g. a test: not kept)."""
        if session is None:
            yield
            return
        with self._lock:
            self._jobs.setdefault(session, set()).add(stop)
        try:
            yield
        finally:
            with self._lock:
                jobs = self._jobs.get(session, set())
                jobs.discard(stop)
                if not jobs:
                    self._jobs.pop(session, None)

    def stop(self, session: str | None) -> int:
        """Set the stop flag of each job ``session`` has running; returns how many."""
        with self._lock:
            jobs = list(self._jobs.pop(session, ())) if session is not None else []
        for stop in jobs:
            stop.set()
        return len(jobs)


def _progress(iterable: Iterable, total: int | None, desc: str):
    """A tqdm bar over ``iterable`` (the app tracks tqdm for its progress bar with ETA), ending at the next item
    once the job's ``STOP`` flag is set (``JobCancelled``)."""
    from tqdm.auto import tqdm

    bar = tqdm(iterable, total=total, desc=desc, unit="frame", leave=False)
    stop = STOP.get()
    return bar if stop is None else _until(bar, stop)


def _until(items: Iterable, stop: threading.Event) -> Iterator:
    for item in items:
        if stop.is_set():
            raise JobCancelled("the job was cancelled")
        yield item


@dataclass
class JobResult:
    """What a render job made.

    Attributes:
        video: the result MP4 (None for a single driving photo).
        comparison: side-by-side MP4 (source | driving | result, or before | after).
        still: an image result (a driving photo's side-by-side, or the edited embedded face).
        frames: frames written; seconds: video length; elapsed: wall time of the job.
        summary: one line for the user.
    """

    video: Path | None = None
    comparison: Path | None = None
    still: Path | None = None
    frames: int = 0
    seconds: float = 0.0
    elapsed: float = 0.0
    summary: str = ""


def result_name(*words: str) -> str:
    """A download's file name from what made it: ``result_name("anne.jpg", "driven-by", "clip.mp4")`` ->
    ``"anne-driven-by-clip"`` (file extensions dropped, only letters of any script, digits, ``_`` and ``-`` kept, each
    name cut to 40 characters), so that results saved from the browser say what they are."""
    import re

    parts = [re.sub(r"[^\w-]+", "_", Path(str(w)).stem if "." in str(w) else str(w)).strip("_")[:40]
             for w in words]
    return "-".join(p for p in parts if p) or "result"


def _source_name(pipe) -> str:
    return pipe.source.names[0] if pipe.source.names else "photo"


def _rate(frames: int, elapsed: float) -> str:
    return f"{elapsed:.1f} s ({frames / max(elapsed, 1e-9):.1f} frames/s)"


def animate_frames(pipe, driving: str | os.PathLike, out_dir: Path, *, seconds: float, paste_back: bool = False,
                   keep_audio: bool = True, limits=None, batch_size: int = 16, relative: bool = False,
                   motion_scale: float = 1.0, driving_face: str = "largest", max_fps: float | None = None,
                   start: float = 0.0, reference: str = "first") -> JobResult:
    """Animate ``pipe``'s source with a driving clip or photo (the frame-driven tab).

    Args:
        pipe: an ``X2FacePipeline`` with its source set.
        driving: a video (any format ffmpeg reads, also browser webcam recordings) or a photo.
        out_dir: where the result and its side-by-side go, named after the photo and the clip (``result_name``).
        seconds: animate only ``seconds`` of the clip (from ``start``).
        paste_back: output the source photo with the face pasted in (else the model-size crop).
        keep_audio: copy the clip's sound into the result.
        limits: ``x2face.media.Limits`` for the clip.
        relative: relative motion (``pipeline.RelativeMotion``): the source keeps its pose and head shape and
            moves as the clip's face moves from its first frame with a face.
        motion_scale: with ``relative``, how much of that motion the source makes (1 = as much).
        driving_face: which face drives when the clip or photo shows several people (a ``FACE_CHOICES`` value, or
            "all": each face of a group photo, the source with every face, by the clip's face in its place).
        max_fps: read a clip of a higher frame rate at a divisor of it within this (``open_clip``; None: as is).
        start: begin this many seconds into the clip (its sound too).
        reference: with ``relative``, the frame the motion counts from: ``"first"`` or ``"best"`` (posed most like
            the photo; ``X2FacePipeline.drive_frames``).

    Returns:
        ``JobResult`` with ``video`` + ``comparison`` (a clip) or ``still`` (a driving photo).

    Raises:
        NoFaceError: no face in the driving photo or in any frame of the clip; MediaError: an
        unreadable or over-limit clip; InputError: relative motion asked of a driving photo.
    """
    from .faces import parse_face_select
    from .media import VideoWriter, is_still_image, read_image, write_image
    from .pipeline import motion_note, side_by_side

    t0 = time.perf_counter()
    select = parse_face_select(driving_face or "largest", "the driving face", every=True)
    src = pipe.source
    name = Path(driving).name
    if is_still_image(driving):
        if relative:
            raise InputError("relative motion follows a driving video's face as it moves: use a clip, or untick it")
        if start:
            raise InputError("a driving photo has no time to start at: set Start at to 0, or use a clip")
        image = read_image(driving, limits=limits)
        d = next(pipe.drive_frames([image], paste_back=paste_back, on_missing="source", driving_face=select))
        if not d.found:
            raise NoFaceError(pipe.last_report.nothing_found(f"the driving photo {name}"))
        still = write_image(out_dir / f"{result_name(_source_name(pipe), 'driven-by', name)}.png",
                            side_by_side(src.crops[0], d.driving_crop, fit_frame(d.image), height=COMPARE_HEIGHT))
        elapsed = time.perf_counter() - t0
        return JobResult(still=still, frames=1, elapsed=elapsed,
                         summary=f"driven by the photo {name}: face found; {elapsed:.1f} s")
    reader, rate_note = open_clip(driving, seconds=seconds, limits=limits, max_fps=max_fps, start=start)
    audio = driving if (keep_audio and reader.info.has_audio) else None
    stem = result_name(_source_name(pipe), "driven-by", name)
    video, comparison = out_dir / f"{stem}.mp4", out_dir / f"{stem}-side-by-side.mp4"
    sound = dict(audio=audio, audio_start=start)
    with VideoWriter(video, reader.fps, **sound) as out, VideoWriter(comparison, reader.fps, **sound) as cmp:
        driven = pipe.drive_frames(reader, paste_back=paste_back, batch_size=batch_size, relative=relative,
                                   motion_scale=motion_scale, driving_face=select, reference=reference)
        for d in _progress(driven, reader.num_frames_estimate, "animating"):
            out.write(fit_frame(d.image))
            result = d.generated if d.generated is not None else (d.image if not paste_back else src.crops[0])
            cmp.write(side_by_side(src.crops[0], d.driving_crop, result, height=COMPARE_HEIGHT))
        report = pipe.last_report
        if report is None or report.found == 0:
            raise NoFaceError(report.nothing_found(name) if report else f"no human face found in {name}")
    elapsed = time.perf_counter() - t0
    sound = ", with its sound" if audio is not None else (", no sound in the clip" if keep_audio else "")
    motion = f" ({motion_note(motion_scale, pipe.last_reference, float(reader.fps), start)})" if relative \
        else ""
    return JobResult(video, comparison, None, out.frames, out.duration, elapsed,
                     f"{report.summary()} of {name}{motion}; {out.duration:.1f} s at {float(reader.fps):.3g} fps"
                     f"{rate_note}{sound}; {_rate(out.frames, elapsed)}")


def write_frames(frames: Iterable[np.ndarray], path: Path, total: int, desc: str, *, fps: float | Fraction = FPS,
                 audio: str | os.PathLike | None = None, audio_start: float = 0.0) -> tuple[Path, int, float]:
    """Write generated frames to an MP4 with a progress bar (``audio`` from ``audio_start`` seconds in);
    returns (path, frames, seconds)."""
    from .media import VideoWriter

    with VideoWriter(path, fps, audio=audio, audio_start=audio_start) as out:
        for frame in _progress(frames, total, desc):
            out.write(fit_frame(frame))
    return path, out.frames, out.duration


#: The head motions of the pose tab's video: name -> axis (a sweep) or None (to the sliders' pose and back).
POSE_MOTIONS = {"yaw sweep (turn left and right)": "yaw", "pitch sweep (nod)": "pitch", "roll sweep (tilt)": "roll",
                "to the sliders' pose and back": None}


def animate_pose(pipe, motion: str, out_dir: Path, *, seconds: float, target: Sequence[float] = (0.0, 0.0, 0.0),
                 amplitude: float | None = None, paste_back: bool = False, batch_size: int = 16) -> JobResult:
    """A head-motion video of ``pipe``'s source (the pose tab's button).

    Args:
        motion: a key of ``POSE_MOTIONS``: a sweep of one angle (from the source's own pose to
            +amplitude, -amplitude and back, the paper's Fig. 6) or a move to ``target`` and back.
        seconds: length of the video.
        target: (yaw, pitch, roll) in degrees for the move.
        amplitude: sweep amplitude in degrees (default ``x2face.control.pose.SWEEP_AMPLITUDE``).

    Raises:
        WeightsError: the weights have no pose head (the message says how to fit one).
    """
    from .control.pose import drive_poses, pose_path, source_pose

    if motion not in POSE_MOTIONS:
        raise InputError(f"choose the motion from: {', '.join(POSE_MOTIONS)}")
    t0 = time.perf_counter()
    n = max(2, int(round(seconds * FPS)))
    axis = POSE_MOTIONS[motion]
    if axis is not None:
        frames = pipe.pose_sweep(axis, amplitude, n, paste_back=paste_back)
    else:
        start = source_pose(pipe)
        half = max(1, (n - 1) // 2)
        poses = pose_path(start, [tuple(target), start], frames_per_move=half, hold=max(0, n - 1 - 2 * half))
        frames, n = drive_poses(pipe, poses, paste_back=paste_back, batch_size=batch_size), poses.shape[0]
    video, count, length = write_frames(frames, out_dir / f"{result_name(_source_name(pipe), axis or 'pose')}.mp4", n,
                                        "rendering poses")
    elapsed = time.perf_counter() - t0
    return JobResult(video, frames=count, seconds=length, elapsed=elapsed,
                     summary=f"{motion}: {length:.1f} s at {FPS} fps; {_rate(count, elapsed)}")


def animate_audio(pipe, audio: str | os.PathLike, out_dir: Path, *, seconds: float, limits=None,
                  paste_back: bool = False, batch_size: int = 16, start: float = 0.0) -> JobResult:
    """Make ``pipe``'s source speak a recording (the audio tab): an MP4 at 25 fps with that sound (``seconds`` of it
    from ``start`` seconds in).

    Raises:
        WeightsError: the weights have no audio head; MediaError: an unreadable or over-long recording.
    """
    t0 = time.perf_counter()
    if limits is not None:
        check_duration(audio, limits.max_seconds)
    drive = pipe.drive_audio(os.fspath(audio), seconds=seconds, paste_back=paste_back, batch_size=batch_size,
                             start=start)
    path = out_dir / f"{result_name(_source_name(pipe), 'speaking', Path(audio).name)}.mp4"
    video, count, length = write_frames(drive.frames, path, drive.num_frames, "speaking",
                                        fps=drive.fps, audio=audio, audio_start=start)
    elapsed = time.perf_counter() - t0
    note = drive.note()  # "" unless the recording is silent
    sound = f"with its sound; {note}" if note else "with its sound"
    return JobResult(video, frames=count, seconds=length, elapsed=elapsed,
                     summary=f"{Path(audio).name}{f' from {start:g} s' if start else ''}: {length:.1f} s at "
                             f"{drive.fps:g} fps {sound}; "
                             f"{_rate(count, elapsed)}")


def live_step(sources: "SourceCache", spec: str | None, photo: Any, frame: np.ndarray,
              session: Any = None, paste_back: bool = False, face: str = "largest",
              relative: bool = False, motion_scale: float = 1.0, driving_face: str = "largest",
              recording: LiveRecording | None = None) -> tuple[np.ndarray, Any, str]:
    """One webcam frame of the live tab: the photo's face driven by it.

    Args:
        sources: the app's source cache (the photo is embedded once, as in the other tabs).
        spec: the session's weights spec; photo: the photo's path.
        frame: uint8 [H, W, 3] RGB from the browser's webcam.
        session: the ``pipeline.LiveSession`` of the previous frames (None at the start, or after the photo,
            the weights, ``paste_back``, ``relative`` or ``motion_scale`` changed: a new one is made).
        paste_back: show the whole photo with the face pasted in (at most ``MAX_OUTPUT_SIDE`` a side).
        face: which face of a photo of several people (``SourceCache.get``).
        relative: relative motion from the first webcam frame with a face (``pipeline.RelativeMotion``), with
            ``motion_scale`` as much motion.
        driving_face: which face at the webcam drives (a ``FACE_CHOICES`` value, or "all": each face of a group
            photo, the source with every face, by the face in its place).
        recording: a ``LiveRecording`` the result (the photo driven, as shown) is added to.

    Returns:
        (driving crop | result side by side, uint8 RGB; the session; a one-line status).
    """
    from .faces import parse_face_select

    select = parse_face_select(driving_face or "largest", "the driving face", every=True)
    with sources.get(spec, photo, face) as pipe:
        options = dict(paste_back=paste_back, relative=relative, motion_scale=motion_scale, driving_face=select)
        if session is None or session.pipe is not pipe or any(getattr(session, k) != v for k, v in options.items()):
            session = pipe.live(**options, sharp=LIVE_SHARP_SIDE)  # sharp, at most this size: fast enough
        out = session.step(frame)
        group = group_note(pipe)
    what = "face" if session.faces == 1 else f"all {session.faces} faces"
    note = f"{what} in {session.found} of {session.frames} webcam frames" + ("" if out.found else "; no face now")
    note += group
    result = fit_frame(out.image)  # (once: the picture and the recording share it)
    picture = live_picture(out, result)
    if recording is not None:
        recording.add(result)
        note += f"; the last {recording.duration:.1f} s kept for Save"
    return picture, session, note


#: The app's choice of a face in a photo of several people: (label, ``SourceCache.get``'s ``face``).
FACE_CHOICES = [("the largest", "largest"), ("the leftmost", "0"),
                *((f"the {n} from the left", str(i)) for i, n in enumerate(("2nd", "3rd", "4th", "5th", "6th"), 1)),
                ("the rightmost", "-1")]


def group_note(pipe: Any) -> str:
    """" The photo shows several people: group.jpg: the largest of 3 faces (pick another under Face)." for a
    pipeline whose source photos show several people, else ""."""
    note = pipe.source.group_photos()
    return f". The photo shows several people: {note} (pick another under Face)." if note else ""


class LiveRecording:
    """The live tab's results of the last ``seconds``, kept as JPEGs with the time each arrived, to save as a video.

    Args:
        seconds: how much is kept (older frames are dropped as new ones come).
        clock: seconds, monotonic (``time.monotonic``; tests pass their own).

    A frame of another size than the last (paste-back turned on or off, another photo) starts the recording anew.
    The stream adds while the Save button may read: a lock keeps the two apart.
    """

    def __init__(self, seconds: float = LIVE_RECORD_SECONDS, clock=time.monotonic) -> None:
        self.seconds = float(seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self.frames: deque[tuple[float, bytes]] = deque()
        self.size: tuple[int, int] | None = None  # (width, height)

    def add(self, image: np.ndarray) -> None:
        """Keep ``image`` (uint8 [H, W, 3] RGB), stamped now."""
        import cv2

        ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:  # pragma: no cover - (OpenCV encodes any uint8 RGB image)
            return
        h, w = image.shape[:2]
        with self._lock:
            if (w, h) != self.size:
                self.frames.clear()
                self.size = (w, h)
            now = self._clock()
            self.frames.append((now, jpeg.tobytes()))
            while now - self.frames[0][0] > self.seconds:
                self.frames.popleft()

    @property
    def duration(self) -> float:
        """Seconds from the first frame kept to the last."""
        return self.frames[-1][0] - self.frames[0][0] if self.frames else 0.0

    def save(self, path: Path, fps: float = LIVE_RECORD_FPS) -> tuple[Path, int]:
        """Write the frames kept to an MP4 at ``fps``, each slot showing the last frame that had arrived by then
        (the webcam's own pace, however unevenly frames came). Returns (path, frames written).

        Raises:
            InputError: nothing recorded yet.
        """
        import cv2

        from .media import VideoWriter

        with self._lock:
            frames = list(self.frames)
        if not frames:
            raise InputError("nothing recorded yet: choose a photo and start the webcam, then save")
        t0 = frames[0][0]
        slots = int(math.floor((frames[-1][0] - t0) * fps + 1e-6)) + 1
        j, shown, image = 0, -1, None
        with VideoWriter(path, fps) as out:
            for k in range(slots):
                while j + 1 < len(frames) and frames[j + 1][0] <= t0 + k / fps + 1e-9:
                    j += 1
                if j != shown:
                    data = np.frombuffer(frames[j][1], np.uint8)
                    image, shown = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1], j  # BGR -> RGB
                out.write(image)
        return path, slots


def save_live(recording: LiveRecording | None, out_dir: Path) -> JobResult:
    """The live tab's "Save" button: the recording's frames as ``live-HHMMSS.mp4`` in ``out_dir``.

    Raises:
        InputError: no recording (the webcam was not started with a photo).
    """
    t0 = time.perf_counter()
    video, count = (recording or LiveRecording()).save(out_dir / f"live-{time.strftime('%H%M%S')}.mp4")
    return JobResult(video, frames=count, seconds=count / LIVE_RECORD_FPS, elapsed=time.perf_counter() - t0,
                     summary=f"the last {count / LIVE_RECORD_FPS:.1f} s of the live result, at {LIVE_RECORD_FPS} fps")


def live_picture(out: Any, result: np.ndarray | None = None) -> np.ndarray:
    """The live tab's picture of a ``pipeline.DrivenFrame``: driving crop | result (at most ``MAX_OUTPUT_SIDE``),
    at least ``LIVE_HEIGHT`` high, uint8 RGB (``result``: ``fit_frame(out.image)`` where the caller has it)."""
    from .pipeline import side_by_side

    result = fit_frame(out.image) if result is None else result
    return side_by_side(out.driving_crop, result, height=max(result.shape[0], LIVE_HEIGHT))


def video_gif(video: str | os.PathLike, out_dir: Path, max_seconds: float) -> str:
    """A looping GIF (no sound, at most ``media.MAX_GIF_SIDE`` a side) of a result video, in ``out_dir``; a video
    longer than ``max_seconds`` (what one job renders) is refused, and one whose header has no length is cut there.

    Raises:
        MediaError: the video cannot be read, or is too long.
    """
    from .media import make_gif

    check_duration(video, max_seconds)
    return str(make_gif(video, Path(out_dir) / f"{Path(video).stem}.gif", seconds=max_seconds))


def edit_member(pipe: Any, edit_face: str | None) -> int | None:
    """The face of the source an edit goes on (``X2FacePipeline.edit_embedded_face``'s ``face``): None for every face
    (``edit_face`` "all" or None, or a source of one face), else ``edit_face``'s index from the left ("0", "-1").

    Raises:
        InputError: an index the source does not have, or not an index.
    """
    from .faces import EVERY_FACE

    if edit_face in (None, EVERY_FACE) or len(pipe.sources) == 1:
        return None
    try:
        face = int(edit_face)
    except (TypeError, ValueError):
        raise InputError(f"the face to edit must be 'all' or an index from the left, got {edit_face!r}") from None
    pipe.member(face)  # (refuses a face the photo does not have)
    return face


def painting_canvas(pipe: Any, edit_face: str | None = "all") -> tuple[dict, np.ndarray, str]:
    """The editing tab's canvas for ``pipe``'s source: (an ``ImageEditor`` value with the embedded face to paint on,
    sampled from the photo at ``EDIT_DISPLAY``; its confidence map, uint8 RGB; what the paint goes on, for the
    tab's note). With every face of a group photo: the face ``edit_face`` picks (``edit_member``), or the leftmost
    face's, the paint then going on every face."""
    from .faces import describe_select

    face = edit_member(pipe, edit_face)
    target = pipe.member(face)
    embedded = target.embedded_face(EDIT_DISPLAY)  # sampled from the photo: paint keeps its detail
    confidence = display_face(target.confidence_map()[:, :, None].repeat(3, axis=2))
    n = len(pipe.sources)
    what = "" if n == 1 else " (the leftmost face's: the paint goes on every face)" if face is None else \
        f" ({describe_select(face, n)}: the paint goes on that face only)"
    return {"background": embedded, "layers": [], "composite": embedded}, confidence, what


def painted_layer(pipe, painting: Any) -> np.ndarray | None:
    """The edit painted on the displayed embedded face (``embedded_face(EDIT_DISPLAY)``) as an RGBA layer, or None when
    nothing was painted.

    Args:
        pipe: the pipeline whose embedded face was shown.
        painting: an ``ImageEditor`` value (dict with ``background``, ``layers``, ``composite``) or a
            painted image, at any size. Paint is what differs from the editor's own ``background``
            (so the lossy encoding of the picture on its way to the browser and back is not paint),
            or from the displayed embedded face when there is no background.
    """
    from .control.edit import as_float_image, edit_layer, flatten_painting

    if painting is None:
        return None
    if isinstance(painting, dict) and painting.get("composite") is None and not painting.get("layers"):
        return None
    shown = as_float_image(pipe.embedded_face(EDIT_DISPLAY), (3,), "embedded face")

    def flat(image: Any) -> np.ndarray:
        """An image or editor value -> float RGB at the displayed size (transparency over the face)."""
        first = image
        if isinstance(image, dict):
            first = image["composite"] if image.get("composite") is not None else image.get("background")
        same = first is not None and as_float_image(first).shape[:2] == shown.shape[:2]
        out = flatten_painting(image, shown if same else None)
        if out.shape[:2] != shown.shape[:2]:
            import cv2

            out = cv2.resize(out, (shown.shape[1], shown.shape[0]), interpolation=cv2.INTER_AREA)
        return out

    background = painting.get("background") if isinstance(painting, dict) else None
    base = flat(background) if background is not None else shown
    layer = edit_layer(base, flat(painting))
    return layer if float(layer[:, :, 3].max()) > 0 else None


def edit_video(pipe, driving: str | os.PathLike, out_dir: Path, *, seconds: float, painting: Any = None,
               overlay: Any = None, position: Sequence[float] = (0.5, 0.5), scale: float = 0.25, limits=None,
               batch_size: int = 16, relative: bool = False, motion_scale: float = 1.0,
               driving_face: str = "largest", edit_face: str = "all",
               max_fps: float | None = None, start: float = 0.0, reference: str = "first") -> JobResult:
    """Edit ``pipe``'s embedded face (paint and/or an overlay picture) and drive it with a clip (the edit tab;
    ``relative``, ``motion_scale``: relative motion, ``driving_face``: which face of the clip drives, ``max_fps``:
    the clip's frame-rate cap, ``start``: seconds into the clip, ``reference``: where relative motion counts from,
    as in ``animate_frames``; ``edit_face``: with every face of a group photo, the one the edit goes on, see
    ``edit_member``; the paint is on that face's embedded face, as ``painting_canvas`` showed it).

    The embedded face is put back as it was afterwards (the pipeline is shared through ``SourceCache``).

    Returns:
        ``JobResult``: ``still`` = the embedded face before | after the edit, ``video`` = the edited
        face driven by the clip, ``comparison`` = driving | unedited | edited, side by side (both with the clip's
        sound, where it has one).

    Raises:
        InputError: neither paint nor an overlay; NoFaceError: no face in the clip.
    """
    from .faces import parse_face_select
    from .media import VideoWriter, write_image
    from .pipeline import motion_note, side_by_side

    t0 = time.perf_counter()
    select = parse_face_select(driving_face or "largest", "the driving face", every=True)
    face = edit_member(pipe, edit_face)
    target = pipe.member(face)
    layer = painted_layer(target, painting)
    if layer is None and overlay is None:
        raise InputError("paint on the embedded face or choose an overlay picture first")
    original = pipe.edit_state()
    name = Path(driving).name
    try:
        before = target.embedded_face(COMPARE_HEIGHT)
        if layer is not None:
            pipe.edit_embedded_face(face=face, layer=layer)
        if overlay is not None:
            pipe.edit_embedded_face(face=face, overlay=overlay, position=tuple(position), scale=float(scale))
        after = target.embedded_face(COMPARE_HEIGHT)
        edited = pipe.edit_state()
        stem = result_name(_source_name(pipe), "edited-driven-by", name)
        still = write_image(out_dir / f"{result_name(_source_name(pipe), 'embedded-before-after')}.png",
                            side_by_side(before, after))
        reader, rate_note = open_clip(driving, seconds=seconds, limits=limits, max_fps=max_fps, start=start)
        video, comparison = out_dir / f"{stem}.mp4", out_dir / f"{stem}-before-after.mp4"
        # pass 1: the unedited face, keeping its frames (the clip is at most max_seconds long)
        pipe.restore_edit(original)
        motion = dict(relative=relative, motion_scale=motion_scale, driving_face=select, reference=reference)
        driven = pipe.drive_frames(reader, batch_size=batch_size, **motion)
        plain = [(d.driving_crop, d.image) for d in _progress(driven, reader.num_frames_estimate, "unedited")]
        if pipe.last_report is None or pipe.last_report.found == 0:
            raise NoFaceError(pipe.last_report.nothing_found(name) if pipe.last_report else
                              f"no human face found in {name}")
        # pass 2: the edited face, with the clip's sound
        pipe.restore_edit(edited)
        sound = dict(audio=driving if reader.info.has_audio else None, audio_start=start)
        with VideoWriter(video, reader.fps, **sound) as out, VideoWriter(comparison, reader.fps, **sound) as cmp:
            for (crop, plain_frame), d in zip(plain, _progress(pipe.drive_frames(reader, batch_size=batch_size,
                                                                                 **motion), len(plain), "edited")):
                out.write(d.image)
                cmp.write(side_by_side(crop, plain_frame, d.image, height=COMPARE_HEIGHT))
        report = pipe.last_report
    finally:
        pipe.restore_edit(original)
    elapsed = time.perf_counter() - t0
    what = " and ".join(w for w, on in (("paint", layer is not None), ("an overlay", overlay is not None)) if on)
    with_motion = f" with {motion_note(motion_scale, pipe.last_reference, float(reader.fps), start)}" if relative \
        else ""
    return JobResult(video, comparison, still, out.frames, out.duration, elapsed,
                     f"edit ({what}) driven by {name}{with_motion}: "
                     f"{report.summary()}; {out.duration:.1f} s at {float(reader.fps):.3g} fps{rate_note}; "
                     f"{_rate(2 * out.frames, elapsed)}")


__all__ = ["AppSettings", "COMPARE_HEIGHT", "EDIT_DISPLAY", "FACE_CHOICES", "FPS", "JobResult", "LIVE_HEIGHT",
           "LIVE_RECORD_FPS", "LIVE_RECORD_SECONDS", "LIVE_SHARP_SIDE", "LiveRecording", "LoadedWeights",
           "ModelCache", "POSE_MOTIONS", "PREVIEW_SIDE", "SHIPPED_DEMO_NOTE", "SourceCache", "TempSpace",
           "WEIGHTS_SOURCES", "animate_audio", "animate_frames", "animate_pose", "app_temp", "as_paths",
           "check_duration", "chooser_default", "device_label", "display_face", "edit_member", "edit_video",
           "file_digest", "fit_frame", "group_note", "job_dir", "live_picture", "live_step",
           "missing_weights_markdown", "open_clip", "painted_layer", "painting_canvas", "parse_file_size", "preview",
           "result_name", "save_live", "training_summary", "video_gif", "weights_spec", "write_frames"]
