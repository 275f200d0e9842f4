"""Photos, videos and audio in and out: what users upload, as arrays the pipeline takes, and back.

Everything streams: a video is read as an iterator of frames from an ``ffmpeg`` rawvideo pipe and
written the same way, so a 5-minute 720p clip needs a few frames of memory, not gigabytes. The
``ffmpeg`` binary is the one ``imageio-ffmpeg`` ships (the one moviepy uses too), so nothing but pip
packages is needed.

    >>> img = read_image("photo.jpg")                      # uint8 [H, W, 3] RGB, EXIF-rotated
    >>> reader = VideoReader("clip.mp4")                   # probes; refuses over-long or huge clips
    >>> with VideoWriter("out.mp4", reader.fps, audio="clip.mp4") as out:
    ...     for frame in reader:                           # uint8 [H, W, 3] RGB, constant frame rate
    ...         out.write(frame)
    >>> wav, sr = read_audio("speech.mp3", sr=16000)       # float32 [N] mono in [-1, 1]

Every problem with a file (unreadable, corrupt, unsupported, over a limit) raises ``MediaError``
with a one-line message for the user.
"""
from __future__ import annotations

import io
import math
import os
import re
import signal
import subprocess
import tempfile
import threading
import uuid
import warnings
from collections import deque
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np

from .errors import MediaError

PathLike = str | os.PathLike

#: File name endings read as photos (everything else is tried as a video). HEIC/HEIF (iPhones' default) need
#: pillow-heif (a requirement; ``register_image_formats``); AVIF is Pillow's own from 11.3.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".jfif", ".ppm", ".pgm",
                    ".heic", ".heif", ".avif")
#: Endings of the photo formats that only the pillow-heif plugin opens.
HEIF_EXTENSIONS = (".heic", ".heif")
#: Longest side of the frames ``VideoWriter`` takes (H.264 level 6.2 allows 8192).
MAX_VIDEO_SIDE = 8192
#: The largest frames x2face's videos hold: H.264 level 5.1's (4096 pixels a side, 4096x2304 pixels in all), what
#: the hardware decoders of phones and browsers play. Larger frames are scaled down into it (``playable_size``).
PLAYABLE_SIDE, PLAYABLE_PIXELS = 4096, 4096 * 2304
#: File name endings x2face writes videos to (H.264 in MP4, what every browser plays; or an animated GIF,
#: made from that MP4 with its own 256-colour palette, without sound).
VIDEO_OUT_EXTENSIONS = (".mp4", ".m4v", ".mov", ".gif")
#: Drawings x2face does not read (ffmpeg rasterises an SVG as a one-frame video, with no face a detector knows).
VECTOR_EXTENSIONS = (".svg", ".svgz", ".eps", ".ai", ".pdf")
#: Longest side of an animated GIF x2face writes (larger frames are scaled down: GIFs are for sharing).
MAX_GIF_SIDE = 800
#: Fastest rate of an animated GIF x2face writes: a GIF's frame delays are whole hundredths of a second, and
#: browsers show a delay under 2 as 10 (a 60 fps clip's GIF would play at a fifth of its speed there).
MAX_GIF_FPS = 50


@dataclass(frozen=True)
class Limits:
    """What x2face refuses to read, so that one upload cannot exhaust the machine.

    Attributes:
        max_seconds: longest video or audio accepted, in seconds (default 10 minutes).
        max_pixels: largest video frame accepted, width * height (default 16 MP: 4K and 5K pass, 8K not).
        max_image_pixels: largest photo accepted, width * height (default 40 MP), checked from the
            file header before anything is decoded.
    """

    max_seconds: float = 600.0
    max_pixels: int = 16_777_216
    max_image_pixels: int = 40_000_000

    def __post_init__(self) -> None:
        for name in ("max_seconds", "max_pixels", "max_image_pixels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise MediaError(f"Limits.{name} must be a positive number, got {value!r}")


DEFAULT_LIMITS = Limits()


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped by ``imageio-ffmpeg`` (``IMAGEIO_FFMPEG_EXE`` overrides it)."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a requirement
        raise MediaError("imageio-ffmpeg is not installed; `pip install imageio-ffmpeg`") from exc
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:  # pragma: no cover - broken install
        raise MediaError(f"no ffmpeg binary found: {exc}") from exc


def _name(path: PathLike) -> str:
    return os.path.basename(os.fspath(path)) or os.fspath(path)


def check_input_file(path: PathLike, what: str = "file") -> Path:
    """``path`` (``~`` expanded) when it is a regular file; a missing one, or one that is not a file (a folder, a
    pipe, a device such as /dev/zero), is a ``MediaError`` calling it a ``what``."""
    p = Path(os.fspath(path)).expanduser()
    if not p.is_file():
        raise MediaError(f"no such {what}: {p}" if not p.exists() else
                         f"{p} is not a file (a folder, a pipe or a device): give a {what}")
    return p


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    # ffmpeg's last line is usually the summary ("Error opening input files: ..."); the first the cause
    return (lines[-1] if lines else "no details")[:300]


def _why_stopped(proc: subprocess.Popen, tail: str) -> str:
    """Why an ffmpeg process ended early: the signal that stopped it (a ``kill``, or Ctrl-C reaching its process
    group but not x2face), else its last message line."""
    try:
        rc = proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        rc = None
    if rc is not None and rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return f"ffmpeg was stopped by {name} (from outside x2face)"
    return _first_line(tail)


# ----------------------------------------------------------------------------------------- images
_heif_lock = threading.Lock()
_heif_registered: bool | None = None


def register_image_formats() -> bool:
    """Let PIL (and so Gradio's image upload) open HEIC/HEIF photos, once per process.

    iPhones save photos as HEIC; ffmpeg decodes them only partly (tiles, rotation), so they are read as
    photos through pillow-heif's PIL plugin, which applies the HEIF rotation and resets EXIF orientation.
    Called by every image reader here and by ``app.py``; safe to call again.

    Returns:
        True when the plugin is registered, False when pillow-heif is not installed.
    """
    global _heif_registered
    with _heif_lock:
        if _heif_registered is None:
            try:
                from pillow_heif import register_heif_opener
            except ImportError:
                _heif_registered = False
            else:
                register_heif_opener()
                _heif_registered = True
        return _heif_registered


def unsupported_image(name: str) -> str:
    """The message for a file PIL cannot identify (named ``name``)."""
    if name.lower().endswith(HEIF_EXTENSIONS) and not register_image_formats():
        return f"{name} is a HEIC/HEIF photo, which needs the pillow-heif package (pip install pillow-heif); " \
               f"or save it as JPEG"
    return f"{name} is not an image x2face can read (JPEG, PNG, WebP, HEIC, AVIF, BMP, TIFF, GIF are supported)"


def _image_from_pil(im, name: str) -> np.ndarray:
    """A loaded PIL image in any mode -> uint8 [H, W, 3] RGB (alpha composited on white)."""
    from PIL import Image

    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(im)
        if mode == "F":
            arr = arr.astype(np.float32)
            scale = 1.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 1.0 / 255.0
            arr = np.clip(np.nan_to_num(arr) * scale * 255.0 + 0.5, 0, 255)
        else:
            arr = arr.astype(np.float64)
            peak = float(arr.max(initial=0.0))
            if peak > 255:  # 16-bit data (PIL keeps 16-bit grey as "I;16" or "I")
                arr = arr / 257.0
            arr = np.clip(arr + 0.5, 0, 255)
        grey = arr.astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)  # [H, W] -> [H, W, 3]
    if mode == "P" or mode == "PA":
        im = im.convert("RGBA")
    elif mode in ("LA", "La", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    if im.mode != "RGB":
        im = im.convert("RGB")
    arr = np.array(im)  # a writable copy (np.asarray of a PIL image is read-only)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:  # pragma: no cover - PIL guarantees RGB
        raise MediaError(f"{name}: unexpected decoded image {arr.shape} {arr.dtype}")
    return np.ascontiguousarray(arr)


def image_size(source: PathLike | bytes) -> tuple[int, int]:
    """(width, height) of an image from its header only (nothing is decoded), EXIF rotation ignored."""
    from PIL import Image, UnidentifiedImageError

    register_image_formats()
    name = "image" if isinstance(source, (bytes, bytearray)) else _name(source)
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(fp) as im:
                return im.size
    except Image.DecompressionBombError as exc:
        raise MediaError(f"{name} is too large to open safely") from exc
    except UnidentifiedImageError as exc:
        raise MediaError(unsupported_image(name)) from exc
    except (OSError, ValueError) as exc:
        raise MediaError(f"cannot read {name} as an image: {exc}") from exc


def read_image(source, *, max_pixels: int | None = None, limits: Limits | None = None) -> np.ndarray:
    """Read a photo the way a user means it.

    Args:
        source: a path, the file's bytes, a binary file object, a ``PIL.Image`` or an array
            (uint8/uint16/float [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]).
        max_pixels: refuse images with more pixels than this (default ``limits.max_image_pixels``).
            Checked from the header, before the pixels are decoded: a 20000x20000 PNG is refused
            in milliseconds without allocating 1.2 GB.
        limits: ``Limits`` to take the default from.

    Returns:
        uint8 [H, W, 3] RGB, rotated as its EXIF orientation says, transparency composited on
        white, grey and 16-bit images converted to 8-bit RGB.

    Raises:
        MediaError: missing, unreadable, corrupt or unsupported files, or too many pixels.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    register_image_formats()
    limit = int(max_pixels or (limits or DEFAULT_LIMITS).max_image_pixels)
    if isinstance(source, np.ndarray):
        return to_rgb_array(source, max_pixels=limit)
    if isinstance(source, Image.Image):
        if source.width * source.height > limit:
            raise MediaError(f"the image is {source.width}x{source.height}; the limit is {limit / 1e6:.0f} megapixels")
        return _image_from_pil(ImageOps.exif_transpose(source), "image")

    if isinstance(source, (bytes, bytearray, memoryview)):
        name, fp = "the uploaded image", io.BytesIO(bytes(source))
    elif hasattr(source, "read"):
        name, fp = getattr(source, "name", "the uploaded image"), source
    else:
        path = check_input_file(source, "photo")
        name = path.name
        _refuse_vector(path)
        fp = path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: we check the size ourselves
            with Image.open(fp) as im:
                w, h = im.size
                if w * h > limit:
                    raise MediaError(
                        f"{name} is {w}x{h} ({w * h / 1e6:.0f} megapixels); the limit is {limit / 1e6:.0f} megapixels: "
                        f"resize it first"
                    )
                if w < 1 or h < 1:
                    raise MediaError(f"{name} is empty ({w}x{h})")
                im.seek(0)  # first frame of animated GIF/WebP/TIFF
                im.load()
                im = ImageOps.exif_transpose(im)
                return _image_from_pil(im, name)
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:  # PIL refuses > 2 * MAX_IMAGE_PIXELS before we see the size
        m = re.search(r"\((\d+) pixels\)", str(exc))
        size = f" ({int(m.group(1)) / 1e6:.0f} megapixels)" if m else ""
        raise MediaError(f"{name} is too large{size}; the limit is {limit / 1e6:.0f} megapixels: resize it first") from exc
    except UnidentifiedImageError as exc:
        raise MediaError(unsupported_image(str(name))) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated or corrupt data
        raise MediaError(f"{name} is corrupt or truncated: {exc}") from exc


def to_rgb_array(image: np.ndarray, *, max_pixels: int | None = None) -> np.ndarray:
    """Any image array -> uint8 [H, W, 3] RGB.

    Accepts [H, W] (grey), [H, W, 1], [H, W, 3] (RGB) or [H, W, 4] (RGBA, composited on white);
    uint8, uint16 (scaled by 1/257), bool, or float in [0, 1].
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]  # [H, W] -> [H, W, 1]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise MediaError(f"an image must be [H, W], [H, W, 3] or [H, W, 4], got shape {list(arr.shape)}")
    if max_pixels is not None and arr.shape[0] * arr.shape[1] > max_pixels:
        raise MediaError(f"the image is {arr.shape[1]}x{arr.shape[0]}; the limit is {max_pixels / 1e6:.0f} megapixels")
    if arr.dtype == np.uint8:
        f = None
    elif arr.dtype == np.uint16:
        f = arr.astype(np.float32) / 65535.0
    elif arr.dtype == np.bool_:
        f = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.floating):
        f = np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0)
    else:
        raise MediaError(f"unsupported image dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")
    if f is not None:
        arr = (f * 255.0 + 0.5).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)  # [H, W, 1] -> [H, W, 3]
    elif arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0  # [H, W, 1]
        arr = (arr[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(arr)


def write_image(path: PathLike, image: np.ndarray) -> Path:
    """Write uint8 [H, W, 3] RGB to ``path`` (format from the extension), atomically."""
    from PIL import Image

    register_image_formats()
    path = Path(path)
    arr = to_rgb_array(image)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.partial{path.suffix}")
    try:
        Image.fromarray(arr).save(tmp, format=Image.registered_extensions().get(path.suffix.lower()))
        os.replace(tmp, path)
    except (OSError, ValueError, KeyError) as exc:
        tmp.unlink(missing_ok=True)
        raise MediaError(f"cannot write {path}: {exc}") from exc
    return path


def is_image_file(path: PathLike) -> bool:
    """Whether ``path`` names a photo (by its extension) rather than a video."""
    return os.fspath(path).lower().endswith(IMAGE_EXTENSIONS)


#: Image formats that can hold several frames (animated GIF, WebP and PNG): read as videos when they do.
ANIMATED_IMAGE_EXTENSIONS = (".gif", ".webp", ".png", ".apng")


def is_animated_image(path: PathLike) -> bool:
    """Whether ``path`` is an animated GIF, WebP or PNG (more than one frame), read from its header.

    Animated images are clips: ``VideoReader`` decodes them (ffmpeg reads all three). Unreadable files and
    files over PIL's decompression-bomb size answer False, so that reading them as a photo gives its
    message.
    """
    if not os.fspath(path).lower().endswith(ANIMATED_IMAGE_EXTENSIONS):
        return False
    from PIL import Image

    register_image_formats()
    try:
        with Image.open(path) as im:
            return bool(getattr(im, "is_animated", False))
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        return False


def is_still_image(path: PathLike) -> bool:
    """Whether a driving or source file is one photo (``is_image_file`` and not ``is_animated_image``) rather than
    a clip."""
    return is_image_file(path) and not is_animated_image(path)


# ----------------------------------------------------------------------------------------- probing
#: ffmpeg prints NTSC-style rates rounded; map them back to their exact fractions so long clips do not drift.
_NTSC = {"23.98": Fraction(24000, 1001), "29.97": Fraction(30000, 1001), "47.95": Fraction(48000, 1001),
         "59.94": Fraction(60000, 1001), "119.88": Fraction(120000, 1001), "14.99": Fraction(15000, 1001)}
_LAYOUT_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "3.0(back)": 3, "quad": 4, "quad(side)": 4,
                    "4.0": 4, "4.1": 5, "5.0": 5, "5.0(side)": 5, "5.1": 6, "5.1(side)": 6, "6.1": 7, "7.1": 8,
                    "7.1(wide)": 8, "7.1(wide-side)": 8, "downmix": 2}


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe_video`` learns from a file's header (nothing is decoded).

    Attributes:
        path: the file.
        width, height: frame size as displayed (rotation metadata applied, as ffmpeg decodes it).
        fps: frame rate (average rate for variable-rate files), as an exact fraction.
        duration: seconds, or None when the container does not say (e.g. browser-recorded webm).
        num_frames_estimate: ``round(duration * fps)`` or None.
        has_video: a real video stream (not just cover art) is present.
        has_audio: an audio stream is present.
        audio_rate: its sample rate in Hz (None without audio).
        audio_channels: its channel count (None without audio).
        video_codec, audio_codec: codec names as ffmpeg prints them.
        rotation: display rotation in degrees from the metadata (0 when none).
    """

    path: str
    width: int
    height: int
    fps: Fraction
    duration: float | None
    num_frames_estimate: int | None
    has_video: bool
    has_audio: bool
    audio_rate: int | None
    audio_channels: int | None
    video_codec: str | None
    audio_codec: str | None
    rotation: float = 0.0


def _run_ffmpeg_info(path: PathLike) -> str:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", os.fspath(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"ffmpeg took too long to read the header of {_name(path)}") from exc
    return proc.stderr.decode("utf-8", "replace")


def _parse_fps(text: str) -> Fraction | None:
    text = text.strip()
    if text in _NTSC:
        return _NTSC[text]
    mult = 1000 if text.endswith("k") else 1
    try:
        value = float(text.rstrip("k")) * mult
    except ValueError:
        return None
    if not (0 < value < 1000):
        return None
    return Fraction(value).limit_denominator(1001)


#: Animated images are read at a rate where every frame has a slot (``_animation_timing``), at most this.
MAX_ANIMATION_FPS = 50


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    """The position after a GIF's data sub-blocks starting at ``pos`` (each a length byte and that many bytes)."""
    while pos < len(data) and data[pos]:
        pos += data[pos] + 1
    return pos + 1


def _gif_durations(data: bytes) -> list[float] | None:
    """Each frame's delay in ms (its Graphic Control Extension's; 0 when none) from a GIF's blocks, or None."""
    flags, pos, delay, out = data[10], 13, 0, []
    if flags & 0x80:
        pos += 3 * 2 ** ((flags & 7) + 1)  # the global colour table
    while pos < len(data) and data[pos] != 0x3B:  # (0x3B: the trailer)
        if data[pos] == 0x21:  # an extension: 0xF9 is the Graphic Control Extension
            if data[pos + 1] == 0xF9 and data[pos + 2] >= 4:
                delay = int.from_bytes(data[pos + 4:pos + 6], "little") * 10  # centiseconds -> ms
            pos = _skip_sub_blocks(data, pos + 2)
            if pos > len(data):  # (a cut file: this extension did not end)
                break
        elif data[pos] == 0x2C:  # an image: descriptor, local colour table, LZW code size, data
            flags = data[pos + 9]
            pos += 10 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0) + 1
            pos = _skip_sub_blocks(data, pos)
            if pos > len(data):  # (a cut file: this image did not end)
                break
            out.append(float(delay))
            delay = 0
        else:
            return None
    return out


def _png_durations(data: bytes) -> list[float]:
    """Each frame's delay in ms from an animated PNG's fcTL chunks (delay_num / delay_den s; den 0 means 100)."""
    pos, out = 8, []
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        if kind == b"fcTL" and length >= 26 and pos + 12 + length <= len(data):  # (a whole chunk)
            num, den = (int.from_bytes(data[pos + 28 + k:pos + 30 + k], "big") for k in (0, 2))
            out.append(1000.0 * num / (den or 100))
        pos += 12 + length
    return out


def _webp_durations(data: bytes) -> list[float]:
    """Each frame's duration in ms from an animated WebP's ANMF chunks."""
    pos, out = 12, []
    while pos + 8 <= len(data):
        kind, length = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if kind == b"ANMF" and length >= 16 and pos + 8 + length <= len(data):  # (a whole chunk)
            out.append(float(int.from_bytes(data[pos + 20:pos + 23], "little")))
        pos += 8 + length + (length & 1)
    return out


def _animation_timing(path: Path, fps: Fraction) -> tuple[Fraction, float | None]:
    """(rate, duration in seconds or None) to read an animated GIF, WebP or PNG at. The rate: one frame per
    shortest frame duration, at most ``MAX_ANIMATION_FPS``, so that no frame falls between two slots (any frame
    shown for at least 1 / rate covers a slot); ffmpeg's average rate (``fps``) dropped the short frames of a GIF
    that holds some frames longer than others. GIF delays under 20 ms count as 100 ms, as ffmpeg's GIF reader and
    browsers show them. The duration: the frames' sum. The durations are read from the file's blocks and chunks
    (nothing is decoded: milliseconds for any size); a file they cannot be read from keeps ``fps``."""
    try:
        data = path.read_bytes()
        if data[:6] in (b"GIF87a", b"GIF89a"):
            durations = [100.0 if ms < 20 else ms for ms in (_gif_durations(data) or [])]
        elif data[:8] == b"\x89PNG\r\n\x1a\n":
            durations = _png_durations(data)
        elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            durations = _webp_durations(data)
        else:
            durations = []
    except (OSError, IndexError):
        return fps, None
    if len(durations) < 2 or min(durations) <= 0:
        return fps, None
    rate = Fraction(1000 / min(durations)).limit_denominator(1001)
    return min(rate, Fraction(MAX_ANIMATION_FPS)), sum(durations) / 1000


def _refuse_vector(path: Path) -> None:
    if path.suffix.lower() in VECTOR_EXTENSIONS:
        raise MediaError(f"{path.name} is a vector drawing ({path.suffix[1:].upper()}), not a photo or a clip: "
                         f"export it as a PNG or JPEG first")


def probe_video(path: PathLike) -> VideoInfo:
    """Read a media file's header with ffmpeg: size, frame rate, duration, audio.

    Works for any container ffmpeg reads (mp4, mov, webm, mkv, avi, mpg, ...), also audio-only files
    (``has_video`` False, width = height = 0).

    Raises:
        MediaError: the file is missing or ffmpeg cannot read it.
    """
    p = check_input_file(path)
    _refuse_vector(p)
    text = _run_ffmpeg_info(p)
    if "Input #0" not in text:
        raise MediaError(f"cannot read {p.name}: not a video or audio file ffmpeg understands ({_first_line(text)})")

    duration = None
    m = re.search(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)", text)
    if m:
        duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
        if duration <= 0:
            duration = None

    # split into stream blocks: a "Stream #0:N" line and the indented lines below it
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if re.match(r"\s*Stream #\d+:\d+", line):
            blocks.append([line])
        elif blocks and line.startswith("      "):
            blocks[-1].append(line)
        elif blocks and not line.startswith("    "):
            blocks.append([])  # end of the stream list
    video = audio = None
    for block in blocks:
        if not block:
            continue
        head = block[0]
        if video is None and re.search(r": Video: ", head) and "(attached pic)" not in head:
            video = block
        elif audio is None and re.search(r": Audio: ", head):
            audio = block

    width = height = 0
    fps = Fraction(25)
    vcodec = acodec = None
    rotation = 0.0
    if video is not None:
        head = video[0]
        vcodec = re.search(r"Video: ([\w-]+)", head).group(1)
        m = re.search(r", (\d{1,5})x(\d{1,5})\b", head)
        if m:
            width, height = int(m.group(1)), int(m.group(2))
        m_fps = re.search(r", ([\d.]+k?) fps", head)
        m_tbr = re.search(r", ([\d.]+k?) tbr", head)
        parsed = _parse_fps(m_fps.group(1)) if m_fps else None
        if parsed is None and m_tbr:
            parsed = _parse_fps(m_tbr.group(1))
        if parsed is not None:
            fps = parsed
        m = re.search(r"rotation of (-?\d+(?:\.\d+)?) degrees", "\n".join(video), re.IGNORECASE)
        if m:
            rotation = float(m.group(1))
            if round(abs(rotation)) % 180 == 90:
                width, height = height, width  # ffmpeg auto-rotates while decoding
    rate = channels = None
    if audio is not None:
        head = audio[0]
        acodec = re.search(r"Audio: ([\w-]+)", head).group(1)
        m = re.search(r", (\d+) Hz", head)
        rate = int(m.group(1)) if m else None
        m = re.search(r" Hz, ([^,]+)", head)
        if m:
            layout = m.group(1).strip()
            m2 = re.match(r"(\d+) channels", layout)
            channels = int(m2.group(1)) if m2 else _LAYOUT_CHANNELS.get(layout, 2)
    has_video = video is not None and width > 0 and height > 0
    if has_video and vcodec in ("gif", "webp", "webp_anim", "apng"):
        fps, length = _animation_timing(p, fps)
        duration = duration or length  # (ffmpeg gives none for animated WebP and PNG)
    if video is None and audio is None:
        raise MediaError(f"{p.name} has neither a video nor an audio stream")
    frames = int(round(duration * float(fps))) if (duration is not None and has_video) else None
    return VideoInfo(str(p), width, height, fps, duration, frames, has_video, audio is not None, rate, channels,
                     vcodec, acodec, rotation)


def check_start(start: float, duration: float | None, name: str) -> float:
    """``start`` (seconds into a file of ``duration`` seconds, None: unknown) as a float, refused when it is not a
    finite number >= 0 or is not before the file's end."""
    if isinstance(start, bool) or not isinstance(start, (int, float, Fraction)) or not 0 <= start < math.inf:
        raise MediaError(f"the start must be a number of seconds >= 0, got {start!r}")
    if duration is not None and start >= duration:
        raise MediaError(f"{name} is {_fmt_seconds(duration)} long: a start at {float(start):g} s is past its end")
    return float(start)


#: seconds before a start that are decoded and dropped by timestamp: a fast seek (``-ss`` before ``-i``) goes to
#: this much before the start, since in some containers (MPEG program streams) it lands a few frames late
SEEK_MARGIN = 3.0


def _seek(start: float) -> tuple[list[str], float]:
    """ffmpeg input options that seek to ``SEEK_MARGIN`` before ``start``, and the seconds then left to drop."""
    skip = min(float(start), SEEK_MARGIN)
    before = float(start) - skip
    return (["-ss", f"{before:.6f}"] if before > 0 else []), skip


def _audio_skip(skip: float) -> str:
    """An ffmpeg audio filter dropping the first ``skip`` seconds, sample-exact (the empty string for none)."""
    return f"atrim=start={skip:.6f},asetpts=PTS-STARTPTS," if skip > 0 else ""


def part_length(duration: float | None, seconds: float | None = None, start: float = 0.0) -> float | None:
    """Seconds read of a file of ``duration`` seconds (None: unknown) from ``start``, at most ``seconds``."""
    left = None if duration is None else max(0.0, duration - start)
    if seconds is None:
        return left
    return seconds if left is None else min(left, seconds)


def check_video_limits(info: VideoInfo, limits: Limits | None = None, seconds: float | None = None,
                       start: float = 0.0) -> None:
    """Refuse a video over ``limits`` (duration: the part that will be read, ``seconds`` from ``start`` when
    given) or a ``start`` past its end."""
    limits = limits or DEFAULT_LIMITS
    name = _name(info.path)
    if not info.has_video:
        raise MediaError(f"{name} has no video stream")
    check_start(start, info.duration, name)
    if info.width * info.height > limits.max_pixels:
        raise MediaError(
            f"{name} is {info.width}x{info.height}; the limit is {limits.max_pixels / 1e6:.1f} megapixels per frame: "
            f"downscale it first"
        )
    length = part_length(info.duration, seconds, start)
    if length is not None and length > limits.max_seconds + 1e-6:
        raise MediaError(
            f"{name} is {_fmt_seconds(length)} long; the limit is {_fmt_seconds(limits.max_seconds)} "
            f"(raise it with --max-seconds or animate part of it with --seconds and --start)"
        )


def capped_fps(fps: float | Fraction, max_fps: float | None) -> Fraction:
    """The rate to read a clip of ``fps`` at so that it is at most ``max_fps``: the clip's own rate, or it divided by
    the least whole number that brings it there, so that frames are dropped evenly (60 -> 30, 50 -> 25, 59.94 ->
    29.97, 120 -> 30 for a cap of 30). ``max_fps`` None: no cap.

    Raises:
        MediaError: ``max_fps`` is not a positive number.
    """
    rate = Fraction(fps).limit_denominator(1001)
    if max_fps is None:
        return rate
    if isinstance(max_fps, bool) or not isinstance(max_fps, (int, float, Fraction)) or not 0 < max_fps < math.inf:
        raise MediaError(f"the frame-rate cap must be a positive number, got {max_fps!r}")
    step = max(1, math.ceil(float(rate) / float(max_fps) - 1e-6))
    return rate / step


def _fmt_seconds(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 120:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"


# ----------------------------------------------------------------------------------------- decoding
class _StderrTail:
    """Drain a subprocess's stderr in a thread (so it can never block the pipe) and keep its tail."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: deque[str] = deque(maxlen=20)
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.lines.append(raw.decode("utf-8", "replace").rstrip())
        stream.close()

    def text(self) -> str:
        self._thread.join(timeout=5)
        return "\n".join(self.lines)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass
    for stream in (proc.stdout, proc.stdin):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass


class VideoReader:
    """Stream a video's frames as uint8 [H, W, 3] RGB arrays at a constant frame rate.

    Reads through an ffmpeg rawvideo pipe: memory stays at a few frames whatever the length.
    Variable-frame-rate files (phones, webcams, browser recordings) come out at a constant rate
    (``fps``, the file's average rate unless given), with frames duplicated or dropped by
    timestamp, so frame ``i`` is the picture shown at ``i / fps`` seconds from the file's start
    and stays in sync with the file's audio.

    Args:
        path: the video file (any format ffmpeg reads: mp4, mov, webm, mkv, avi, mpg, gif, ...).
        seconds: read only ``seconds`` seconds (None: all).
        fps: output frame rate (None: the file's).
        limits: refuse files over ``limits.max_seconds`` (of the part read) or ``limits.max_pixels``
            before decoding; files whose header gives no duration are stopped once they pass it.
        start: begin this many seconds into the file: frame ``i`` is the picture shown at ``start + i / fps``
            (to within a frame of the file's own).

    Attributes:
        info: the ``VideoInfo`` from the header.
        fps: the output frame rate (a ``Fraction``).
        width, height: frame size.
        frames_read: frames yielded by the last iteration.

    Iterating starts one ffmpeg process; breaking out of the loop (or ``close()``) stops it.
    """

    def __init__(self, path: PathLike, *, seconds: float | None = None, fps: float | Fraction | None = None,
                 limits: Limits | None = None, info: VideoInfo | None = None, start: float = 0.0) -> None:
        self.limits = limits or DEFAULT_LIMITS
        self.info = info or probe_video(path)
        if seconds is not None and not seconds > 0:
            raise MediaError(f"seconds must be positive, got {seconds}")
        self.seconds = seconds
        check_video_limits(self.info, self.limits, seconds, start)
        self.start = float(start)
        self.fps = Fraction(fps).limit_denominator(1001) if fps is not None else self.info.fps
        if not 0 < self.fps <= 240:
            raise MediaError(f"unsupported frame rate {float(self.fps):.3f} fps")
        self.width, self.height = self.info.width, self.info.height
        self.frames_read = 0
        self._proc: subprocess.Popen | None = None

    @property
    def num_frames_estimate(self) -> int | None:
        """Frames this reader will yield, from the header (None when the header gives no duration)."""
        length = part_length(self.info.duration, self.seconds, self.start)
        return None if length is None else max(1, int(round(length * float(self.fps))))

    def _command(self) -> list[str]:
        # the fps filter with round=up gives slot i the last frame whose timestamp is at most i / fps: the picture on
        # screen then (``-r`` with cfr picks up to one output frame early, badly so when it drops frames); slots
        # before the first frame repeat it (start_time=0)
        # with a start, a fast seek goes to SEEK_MARGIN before it (timestamps then count from there) and the rest is
        # shifted before 0, where the fps filter drops it
        rate = f"{self.fps.numerator}/{self.fps.denominator}"
        seek, skip = _seek(self.start)
        shift = f"setpts=PTS-{skip:.6f}/TB," if skip > 0 else ""
        cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", *seek, "-i", self.info.path, "-map", "0:v:0", "-an", "-sn",
               "-dn", "-vf", f"{shift}fps=fps={rate}:round=up:start_time=0", "-fps_mode", "passthrough"]
        # stop at the container's duration too: constant-rate output would otherwise repeat a final frame
        # whose duration the container does not store (e.g. variable-rate Matroska/WebM)
        length = part_length(self.info.duration, self.seconds, self.start)
        if length is not None:
            cmd += ["-t", f"{length:.6f}"]
        return cmd + ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._frames()

    def _frames(self) -> Iterator[np.ndarray]:
        w, h = self.width, self.height
        nbytes = w * h * 3
        max_frames = int(math.ceil(self.limits.max_seconds * float(self.fps))) + 1
        name = _name(self.info.path)
        proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, bufsize=0)
        self._proc = proc
        tail = _StderrTail(proc.stderr)
        self.frames_read = 0
        try:
            while True:
                buf = bytearray(nbytes)
                view = memoryview(buf)
                got = 0
                while got < nbytes:
                    n = proc.stdout.readinto(view[got:])
                    if not n:
                        break
                    got += n
                if got < nbytes:
                    break
                if self.frames_read >= max_frames:
                    raise MediaError(
                        f"{name} is longer than the limit of {_fmt_seconds(self.limits.max_seconds)} "
                        f"(raise it with --max-seconds or animate part of it with --seconds)"
                    )
                self.frames_read += 1
                yield np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3)  # [H*W*3] -> [H, W, 3]
        finally:
            _stop(proc)
            self._proc = None
        if self.frames_read == 0:
            detail = _first_line(tail.text()) if proc.returncode not in (0, None) else "no frames decoded"
            if self.start > 0 and proc.returncode in (0, None):  # (a header without a duration: no check before)
                raise MediaError(f"{name} has no frames after {self.start:g} s: it is shorter than that")
            raise MediaError(f"cannot decode {name}: {detail}")

    def close(self) -> None:
        """Stop a running decode (iteration ends)."""
        if self._proc is not None:
            _stop(self._proc)


def iter_video_frames(path: PathLike, *, seconds: float | None = None, fps: float | Fraction | None = None,
                      limits: Limits | None = None, max_seconds: float | None = None,
                      max_pixels: int | None = None, start: float = 0.0) -> Iterator[np.ndarray]:
    """Frames of a video as uint8 [H, W, 3] RGB, streamed (see ``VideoReader``).

    ``max_seconds`` / ``max_pixels`` override the fields of ``limits``.
    """
    limits = limits or DEFAULT_LIMITS
    if max_seconds is not None:
        limits = replace(limits, max_seconds=max_seconds)
    if max_pixels is not None:
        limits = replace(limits, max_pixels=max_pixels)
    return iter(VideoReader(path, seconds=seconds, fps=fps, limits=limits, start=start))


# ----------------------------------------------------------------------------------------- audio
def _resample(x: np.ndarray, rate: int, sr: int) -> np.ndarray:
    """x: float32 [N, C] at ``rate`` -> float32 [M, C] at ``sr`` (soxr, high quality)."""
    if rate == sr or x.shape[0] == 0:
        return x
    import soxr

    return np.asarray(soxr.resample(x, rate, sr, quality="HQ"), dtype=np.float32).reshape(-1, x.shape[1])


def _read_with_soundfile(path: Path, max_seconds: float, seconds: float | None, start: float = 0.0,
                         mono: bool = False) -> tuple[np.ndarray, int] | None:
    """WAV/FLAC/OGG/MP3 through libsndfile: float32 [N, C] at the native rate (None: not its format, or ``mono`` of
    more than two channels, which ffmpeg mixes down by their layout)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, TypeError):
        return None
    if info.frames <= 0 or info.samplerate <= 0 or (mono and info.channels > 2):
        return None
    check_start(start, info.duration, path.name)
    length = part_length(info.duration, seconds, start)
    if length > max_seconds + 1e-6:
        raise MediaError(f"{path.name} is {_fmt_seconds(length)} long; the limit is {_fmt_seconds(max_seconds)}")
    frames = -1 if seconds is None else int(round(seconds * info.samplerate))
    try:
        data, rate = sf.read(str(path), frames=frames, start=int(round(start * info.samplerate)), dtype="float32",
                             always_2d=True)  # [N, C]
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise MediaError(f"{path.name} is corrupt: {exc}") from exc
    return data, int(rate)


def _read_with_ffmpeg(path: Path, max_seconds: float, seconds: float | None, start: float = 0.0,
                      mono: bool = False) -> tuple[np.ndarray, int]:
    """Any audio track ffmpeg reads (m4a, webm/opus, mpg, mp4, ...): float32 [N, C] at the native rate (``mono``
    with more than two channels: [N, 1], mixed down by ffmpeg from the channel layout, so that a 5.1 film's voice
    in the centre channel keeps its level; a plain mean would leave a sixth of it)."""
    info = probe_video(path)
    if not info.has_audio:
        raise MediaError(f"{path.name} has no audio track")
    check_start(start, info.duration, path.name)
    length = part_length(info.duration, seconds, start)
    if length is not None and length > max_seconds + 1e-6:
        raise MediaError(f"{path.name} is {_fmt_seconds(length)} long; the limit is {_fmt_seconds(max_seconds)}")
    rate = info.audio_rate or 48000
    channels = info.audio_channels or 2
    if mono and channels > 2:
        channels = 1
    seek, skip = _seek(start)
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", *seek, "-i", str(path), "-map", "0:a:0", "-vn", "-sn", "-dn",
           "-ac", str(channels), "-ar", str(rate)]
    if skip > 0:
        cmd += ["-af", _audio_skip(skip).rstrip(",")]
    if seconds is not None:
        cmd += ["-t", f"{seconds:.6f}"]
    cmd += ["-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
    cap = int((max_seconds + 1.0) * rate) * channels * 4
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    tail = _StderrTail(proc.stderr)
    chunks, total = [], 0
    try:
        while True:
            chunk = proc.stdout.read(1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > cap:
                raise MediaError(f"{path.name} is longer than the limit of {_fmt_seconds(max_seconds)}")
            chunks.append(chunk)
        proc.wait(timeout=60)
    finally:
        _stop(proc)
    raw = b"".join(chunks)
    if not raw:
        raise MediaError(f"cannot decode the audio of {path.name}: {_first_line(tail.text())}")
    usable = len(raw) // (4 * channels) * (4 * channels)
    data = np.frombuffer(raw[:usable], dtype="<f4").reshape(-1, channels)  # [N*C] -> [N, C]
    return data.astype(np.float32), rate


def read_audio(path: PathLike, sr: int | None = 16000, *, mono: bool = True, seconds: float | None = None,
               max_seconds: float | None = None, limits: Limits | None = None,
               start: float = 0.0) -> tuple[np.ndarray, int]:
    """Read speech or any audio track at its native rate, then resample.

    Args:
        path: wav (8-32 bit, float, WAVE_FORMAT_EXTENSIBLE), flac, ogg, mp3, m4a/aac, webm/opus, or the
            audio track of a video (mp4, mov, mpg, webm, ...).
        sr: output sample rate in Hz (None: keep the file's rate).
        mono: one channel: stereo averaged, more channels mixed down by their layout (ffmpeg's downmix).
        seconds: read only ``seconds`` seconds.
        max_seconds: refuse longer audio (default ``limits.max_seconds``; the part read counts).
        start: begin this many seconds into the file.

    Returns:
        ``(samples, sr)``: float32 [N] (mono) or [C, N] in [-1, 1], and the sample rate.

    Raises:
        MediaError: no audio, unreadable or corrupt file, or over the limit.
    """
    p = check_input_file(path, "audio file")
    limit = float(max_seconds if max_seconds is not None else (limits or DEFAULT_LIMITS).max_seconds)
    got = _read_with_soundfile(p, limit, seconds, start, mono)
    if got is None:
        got = _read_with_ffmpeg(p, limit, seconds, start, mono)
    data, rate = got
    if data.shape[0] == 0:
        raise MediaError(f"{p.name} contains no audio samples")
    data = np.nan_to_num(data, nan=0.0, posinf=1.0, neginf=-1.0)
    if mono and data.shape[1] > 1:
        data = data.mean(axis=1, keepdims=True)  # [N, C] -> [N, 1]
    if sr is not None:
        data = _resample(data, rate, int(sr))
        rate = int(sr)
    data = np.clip(data, -1.0, 1.0).astype(np.float32)
    return (data[:, 0] if mono else np.ascontiguousarray(data.T)), rate  # [N, 1] -> [N] or [N, C] -> [C, N]


# ----------------------------------------------------------------------------------------- writing
def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name the same file (resolving links; False when either does not exist)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(os.fspath(a)) == os.path.abspath(os.fspath(b))


def check_output_path(out: PathLike, inputs: Iterable[PathLike] = (), *, overwrite: bool = False,
                      extensions: tuple[str, ...] | None = None, kind: str | None = None,
                      option: str = "--out") -> Path:
    """Refuse an output path that is one of the inputs, exists (unless ``overwrite``), has a wrong extension
    (``kind``: why those extensions, the start of that message, e.g. "this gives a video") or lies in a folder that
    is missing or cannot be written (read-only); ``option`` is the option that names it, for the messages."""
    out = Path(os.fspath(out)).expanduser()
    for item in inputs:
        if item is not None and not isinstance(item, (bytes, np.ndarray)) and same_file(out, item):
            raise MediaError(f"the output {out} is one of the inputs; choose another {option} (inputs are never "
                             f"overwritten)")
    if out.is_dir():  # (before the extension: "/tmp/" is a folder, not a file named "tmp")
        raise MediaError(f"{out} is a folder: give a file name in it, e.g. {out / ('out' + (extensions or ('',))[0])}")
    if extensions is not None and out.suffix.lower() not in extensions:
        raise MediaError(f"{kind + ', so ' if kind else ''}the output must end in {' or '.join(extensions)}, "
                         f"got {out.name}")
    if out.exists() and not overwrite:
        raise MediaError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.exists():
        raise MediaError(f"the folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK):
        raise MediaError(f"cannot write in the folder {out.parent} (it is read-only, or not yours): choose another "
                         f"{option}")
    return out


class VideoWriter:
    """Write uint8 RGB frames to an H.264 MP4 that browsers play, with an audio track in sync (or to a GIF).

    Frames are piped to ffmpeg (libx264, yuv420p, BT.709, ``+faststart``) as they come; odd sizes
    lose their last row/column (yuv420p needs even sizes), and frames larger than H.264 level 5.1 allows (what
    phones and browsers decode in hardware) are scaled down into it (``playable_size``). With ``audio``, a
    second quick pass muxes it in (AAC), trimmed or padded with silence to exactly ``frames / fps`` seconds, from its
    time ``audio_start``: the driving clip's own track stays in sync because ``VideoReader`` puts frame ``i`` at
    ``start + i / fps`` of the same clock. Output goes to a temporary file beside ``path`` and is renamed
    on success, so a failed run never leaves a broken file or clobbers anything.

    A ``.gif`` path gets an animated GIF that loops, made from the finished H.264 video in two more ffmpeg
    passes (a palette of the whole clip, then the frames mapped to it with ordered dithering, so memory stays
    constant), scaled down to ``MAX_GIF_SIDE`` pixels a side; GIFs hold no sound, so ``audio`` is ignored.

    Args:
        path: output ``.mp4`` (``.m4v``/``.mov`` also work) or ``.gif``.
        fps: frame rate (float or Fraction).
        audio: None, a media file with an audio track (e.g. the driving clip, a wav), or a float
            array [N] / [C, N] in [-1, 1] with ``audio_sr``.
        audio_sr: sample rate of an audio array.
        audio_start: seconds into the audio (a file's or an array's) where the video's time 0 is (``VideoReader``'s
            ``start``).
        crf, preset: x264 quality (0-51; 18: visually lossless, lower is better and bigger) and speed.
        max_side: scale frames down so that their longest side is at most this (None: only into
            ``playable_size``'s limits).

    Use as a context manager: ``with VideoWriter(...) as w: w.write(frame)``; an exception inside
    the block deletes the partial output.
    """

    def __init__(self, path: PathLike, fps: float | Fraction, *, audio: PathLike | np.ndarray | None = None,
                 audio_sr: int | None = None, crf: int = 18, preset: str = "veryfast",
                 max_side: int | None = None, audio_start: float = 0.0) -> None:
        self.path = Path(os.fspath(path)).expanduser()
        if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
            raise MediaError(f"the x264 quality (crf) must be an int from 0 to 51, got {crf!r}")
        if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 16):
            raise MediaError(f"the largest side must be an int of at least 16 pixels, got {max_side!r}")
        self.max_side = max_side
        self.fps = Fraction(fps).limit_denominator(1001)
        if not 0 < self.fps <= 240:
            raise MediaError(f"unsupported frame rate {float(self.fps):.3f} fps")
        if isinstance(audio, np.ndarray) and not audio_sr:
            raise MediaError("an audio array needs its sample rate (audio_sr)")
        self.gif = self.path.suffix.lower() == ".gif"
        self.audio = None if self.gif else audio
        self.audio_sr = audio_sr
        self.audio_start = check_start(audio_start, None, "the audio")
        self.crf, self.preset = int(crf), preset
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (width, height) of the frames written
        token = uuid.uuid4().hex[:8]
        self._video_tmp = self.path.with_name(f".{self.path.stem}.{token}.video.mp4")
        self._final_tmp = self.path.with_name(f".{self.path.stem}.{token}.partial{self.path.suffix or '.mp4'}")
        self._proc: subprocess.Popen | None = None
        self._tail: _StderrTail | None = None
        self._closed = False

    # -------------------------------------------------------------- frames
    def _start(self, width: int, height: int) -> None:
        if width < 2 or height < 2:
            raise MediaError(f"frames of {width}x{height} are too small for a video")
        if max(width, height) > MAX_VIDEO_SIDE:
            raise MediaError(f"frames of {width}x{height} are too large for an H.264 video browsers play "
                             f"(at most {MAX_VIDEO_SIDE} pixels a side): use a smaller photo")
        self.size = (width, height)
        w, h = playable_size(width, height, self.max_side)
        fit = f"scale={w}:{h}:flags=area" if (w, h) != (width // 2 * 2, height // 2 * 2) else \
            "crop=trunc(iw/2)*2:trunc(ih/2)*2"
        vf = f"{fit},scale=out_color_matrix=bt709:out_range=tv,format=yuv420p"
        cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
               "-r", f"{self.fps.numerator}/{self.fps.denominator}", "-i", "pipe:0",
               "-an", "-vf", vf, "-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf),
               "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
               "-movflags", "+faststart", str(self._video_tmp)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._tail = _StderrTail(self._proc.stderr)

    def write(self, frame: np.ndarray) -> None:
        """Append one frame: uint8 [H, W, 3] RGB (other dtypes/channels converted by ``to_rgb_array``)."""
        if self._closed:
            raise MediaError("this VideoWriter is closed")
        frame = frame if (frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3) else to_rgb_array(frame)
        h, w = frame.shape[:2]
        if self._proc is None:
            self._start(w, h)
        elif (w, h) != self.size:
            raise MediaError(f"frame {self.frames} is {w}x{h}, the video is {self.size[0]}x{self.size[1]}")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        except (BrokenPipeError, OSError) as exc:
            raise MediaError(f"the video encoder stopped: {_why_stopped(self._proc, self._tail.text())}") from exc
        self.frames += 1

    @property
    def duration(self) -> float:
        """Seconds written so far (``frames / fps``)."""
        return self.frames / float(self.fps)

    # -------------------------------------------------------------- finishing
    def _audio_input(self, workdir: Path) -> tuple[list[str], float]:
        """ffmpeg input options for the audio, and the seconds to drop from its start (``_audio_skip``)."""
        if isinstance(self.audio, np.ndarray):
            import soundfile as sf

            wav = workdir / "audio.wav"
            data = np.asarray(self.audio, dtype=np.float32)
            data = data[:, None] if data.ndim == 1 else data.T  # [N] -> [N, 1]; [C, N] -> [N, C]
            data = data[int(round(self.audio_start * int(self.audio_sr))):]
            sf.write(str(wav), np.clip(data, -1, 1), int(self.audio_sr), subtype="FLOAT")
            return ["-i", str(wav)], 0.0
        seek, skip = _seek(self.audio_start)
        return [*seek, "-i", os.fspath(self.audio)], skip

    def _mux(self) -> None:
        """Mux the audio in. A file whose track ffmpeg decodes but cannot encode as it is (e.g. a float WAV with
        samples that are not numbers) is read by ``read_audio``, which cleans them, and muxed from that."""
        error = self._mux_once()
        if error is not None and not isinstance(self.audio, np.ndarray):
            try:
                data, rate = read_audio(self.audio, None, mono=False, start=self.audio_start,
                                        seconds=self.duration + 1.0, max_seconds=math.inf)
            except MediaError:
                data = None
            if data is not None:
                self.audio, self.audio_sr, self.audio_start = data, rate, 0.0
                error = self._mux_once()
        if error is not None:
            raise MediaError(f"cannot add the audio track: {error}")

    def _mux_once(self) -> str | None:
        """One muxing pass; returns ffmpeg's first error line, or None."""
        with tempfile.TemporaryDirectory(prefix="x2face-mux-") as tmp:
            audio, skip = self._audio_input(Path(tmp))
            cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(self._video_tmp), *audio,
                   "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-af", f"{_audio_skip(skip)}apad", "-c:a", "aac",
                   "-b:a", "160k",
                   "-ar", "48000", "-t", f"{self.duration:.6f}", "-movflags", "+faststart", str(self._final_tmp)]
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
        return None if proc.returncode == 0 else _first_line(proc.stderr.decode("utf-8", "replace"))

    @property
    def output_size(self) -> tuple[int, int] | None:
        """(width, height) of the file's frames: the frames' size with even sides (H.264), scaled down to
        ``playable_size`` where larger, and for a GIF to at most ``MAX_GIF_SIDE``; None before the first frame."""
        if self.size is None:
            return None
        w, h = playable_size(*self.size, self.max_side)
        return gif_size(w, h) if self.gif else (w, h)

    def close(self) -> Path:
        """Finish the file (encode, mux audio, rename into place) and return its path."""
        if self._closed:
            return self.path
        self._closed = True
        try:
            if self._proc is None:
                raise MediaError(f"no frames to write to {self.path.name}")
            self._proc.stdin.close()
            rc = self._proc.wait()
            if rc != 0:
                raise MediaError(f"the video encoder failed: {_why_stopped(self._proc, self._tail.text())}")
            if self.gif:
                make_gif(self._video_tmp, self._final_tmp, size=self.output_size)
                self._video_tmp.unlink(missing_ok=True)
            elif self.audio is not None:
                self._mux()
                self._video_tmp.unlink(missing_ok=True)
            else:
                os.replace(self._video_tmp, self._final_tmp)
            os.replace(self._final_tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Stop encoding and delete the partial files (the output path is left untouched)."""
        self._closed = True
        if self._proc is not None:
            _stop(self._proc)
        self._video_tmp.unlink(missing_ok=True)
        self._final_tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def fit_side(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale a uint8 [H, W, C] image (area averaging, aspect ratio kept) so that its longest side is at most
    ``max_side``; smaller images, and ``max_side`` None, as they are."""
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return image
    import cv2

    s = max_side / max(h, w)
    return cv2.resize(image, (max(2, round(w * s)), max(2, round(h * s))), interpolation=cv2.INTER_AREA)


def playable_size(width: int, height: int, max_side: int | None = None) -> tuple[int, int]:
    """(width, height) of the H.264 video made from frames of ``width`` x ``height``: even sides (yuv420p), scaled
    down (aspect ratio kept) to at most ``PLAYABLE_SIDE`` a side (or ``max_side``, when smaller) and
    ``PLAYABLE_PIXELS`` in all."""
    side = PLAYABLE_SIDE if max_side is None else min(PLAYABLE_SIDE, max_side)
    scale = min(1.0, side / max(width, height), math.sqrt(PLAYABLE_PIXELS / (width * height)))
    if scale >= 1.0:
        return width // 2 * 2, height // 2 * 2
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def gif_size(width: int, height: int, max_side: int = MAX_GIF_SIDE) -> tuple[int, int]:
    """(width, height) of the GIF made from frames of ``width`` x ``height``: scaled to at most ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, round(width * scale)), max(2, round(height * scale))


def gif_fps(fps: float | Fraction) -> Fraction:
    """The rate of the GIF made from a ``fps`` video: ``capped_fps(fps, MAX_GIF_FPS)`` (every k-th frame above it:
    60 fps -> 30, 240 -> 48)."""
    return capped_fps(fps, MAX_GIF_FPS)


def make_gif(video: PathLike, out: PathLike, *, size: tuple[int, int] | None = None,
             seconds: float | None = None) -> Path:
    """An animated GIF that loops, from a video file: two ffmpeg passes (a 256-colour palette of the whole
    clip, then the frames mapped to it with ordered dithering), so memory stays constant. No sound. A video faster
    than ``MAX_GIF_FPS`` gives every k-th frame (``gif_fps``), so that the GIF plays at the video's speed.

    Args:
        video: any video ffmpeg reads (x2face's MP4s).
        out: the GIF to write (replaced; written in place: ``VideoWriter`` renames it afterwards).
        size: (width, height) of the GIF; default the video's, scaled by ``gif_size``.
        seconds: only the video's first ``seconds`` (None: all of it).

    Raises:
        MediaError: an unreadable video or a failed pass.
    """
    info = probe_video(video)
    if not info.has_video:
        raise MediaError(f"{_name(video)} has no video track")
    if size is None:
        size = gif_size(info.width, info.height)
    scale = f"scale={size[0]}:{size[1]}:flags=lanczos"
    rate = gif_fps(info.fps) if info.fps else None
    if rate is not None and rate != Fraction(info.fps).limit_denominator(1001):
        scale = f"fps={rate.numerator}/{rate.denominator},{scale}"
    with tempfile.TemporaryDirectory(prefix="x2face-gif-") as tmp:
        palette = str(Path(tmp) / "palette.png")
        cut = ["-t", f"{float(seconds):.6f}"] if seconds is not None else []
        passes = [[*cut, "-i", os.fspath(video), "-vf", f"{scale},palettegen=stats_mode=full", palette],
                  [*cut, "-i", os.fspath(video), "-i", palette, "-lavfi",
                   f"{scale}[v];[v][1:v]paletteuse=dither=bayer:bayer_scale=4", "-loop", "0", "-f", "gif",
                   os.fspath(out)]]
        for args in passes:
            proc = subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", *args],
                                  stdin=subprocess.DEVNULL, capture_output=True)
            if proc.returncode != 0:
                raise MediaError(f"cannot make the GIF: {_first_line(proc.stderr.decode('utf-8', 'replace'))}")
    return Path(out)


def write_video(frames: Iterable[np.ndarray], path: PathLike, fps: float | Fraction, *,
                audio: PathLike | np.ndarray | None = None, audio_sr: int | None = None, **kwargs) -> Path:
    """Write an iterable of uint8 [H, W, 3] RGB frames to an MP4 (see ``VideoWriter``); returns the path."""
    with VideoWriter(path, fps, audio=audio, audio_sr=audio_sr, **kwargs) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.path


def decode_check(path: PathLike) -> tuple[bool, str]:
    """Decode a whole file with ffmpeg (video and audio) and report ``(ok, errors)``: does it play to the end?"""
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", os.fspath(path), "-f", "null", "-"]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    errors = proc.stderr.decode("utf-8", "replace").strip()
    return proc.returncode == 0 and not errors, errors


__all__ = ["ANIMATED_IMAGE_EXTENSIONS", "DEFAULT_LIMITS", "HEIF_EXTENSIONS", "IMAGE_EXTENSIONS", "Limits",
           "MAX_GIF_SIDE", "PLAYABLE_PIXELS", "PLAYABLE_SIDE", "VideoInfo", "VideoReader", "VideoWriter",
           "check_input_file", "check_output_path", "check_video_limits", "decode_check", "ffmpeg_exe", "fit_side",
           "gif_fps", "gif_size", "image_size", "is_animated_image", "is_image_file", "is_still_image",
           "iter_video_frames", "make_gif", "playable_size", "probe_video", "read_audio", "read_image",
           "register_image_formats", "same_file", "to_rgb_array", "unsupported_image", "write_image", "write_video"]
