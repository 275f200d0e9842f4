"""Real face videos as X2Face training pairs: VoxCeleb-style folders, manifests, and cached face crops.

Where clips come from:

* **VoxCeleb layout** ``ROOT/identity/video/clip``, where a clip is a video file (VoxCeleb2:
  ``id00012/21Uxsk56VDQ/00001.mp4``) or a folder of pre-cropped frames (VoxCeleb1:
  ``id10001/1zcIwhmdeo4/00001/*.jpg``). Identities are split train/val/test by hashing their name
  (75/15/10 as in the paper, ``split_fractions``), so the splits never share a person.
* **A manifest** (``MANIFEST.tsv``, tab-separated, with at least the columns ``file``, ``kind``,
  ``identity``; ``split`` and ``path`` when present). ``kind == "video"`` rows are clips; ``photo``
  rows in one of ``frame_folders`` (default ``vox1-frames``) are pre-cropped frames, grouped into
  clips by identity and by the folder their ``path`` (else ``file``) names. The ``split`` column
  gives identity-disjoint splits; rows without one are split by hashing the identity.

Nothing under a folder named ``heldout`` is ever read: that data is for final measurement only.

Frames are sampled at ``fps`` frames per second (1 fps as in the paper for VoxCeleb-scale data),
cropped (``crop="face"``: ``x2face.faces.FaceCropper``'s VoxCeleb-style 1.6x crops; ``"center"``:
the central square; ``"none"``: the whole frame), resized to the model's size and cached as one
uint8 ``.npy`` per clip in ``cache_dir``, keyed by the clip's path, size, mtime and the crop
settings: a second run decodes nothing. Pre-cropped frame folders are only resized.

``RealVideoPairs`` yields the same dict as ``x2face.data.synthetic.SyntheticPairs``: ``sources``
(K frames of a clip), ``driving`` (another frame of the same clip), ``driving_other`` (a frame of
another identity), ``identity``/``identity_other`` (indices into ``identity_names``) and
``pose``/``pose_other`` (unknown for real video: NaN).
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, MediaError

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
CROPS = ("face", "center", "none")
SPLIT_NAMES = ("train", "val", "test")
CACHE_VERSION = 1


@dataclass
class Clip:
    """One video clip (a video file or an ordered list of frame images) of one identity.

    Attributes:
        key: unique name (path relative to its root or manifest).
        identity: the person's label; splits never share one.
        split: ``train``, ``val`` or ``test``.
        video: the video file, or None for a frame clip.
        frames: the frame image files in order (frame clips), else empty.
    """

    key: str
    identity: str
    split: str
    video: Path | None = None
    frames: list[Path] = field(default_factory=list)


def _refuse_heldout(path: Path) -> None:
    if "heldout" in Path(os.path.abspath(path)).parts:
        raise ConfigError(f"{path} is held-out evaluation data; x2face never trains or validates on it")


def hash_split(identity: str, fractions: tuple[float, float, float] | list[float] = (0.75, 0.15, 0.10)) -> str:
    """Identity-disjoint split by hashing the identity's name: ``train``/``val``/``test`` with ``fractions``."""
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise ConfigError(f"split fractions must be 3 non-negative numbers (train, val, test), got {fractions}")
    u = int(hashlib.sha1(identity.encode("utf-8")).hexdigest()[:12], 16) / 16**12  # uniform in [0, 1)
    total = float(sum(fractions))
    edge = 0.0
    for name, frac in zip(SPLIT_NAMES, fractions):
        edge += frac / total
        if u < edge:
            return name
    return SPLIT_NAMES[-1]


def clips_from_manifest(manifest: str | os.PathLike, frame_folders: Iterable[str] = ("vox1-frames",),
                        split_fractions: tuple[float, float, float] | list[float] = (0.75, 0.15, 0.10)) -> list[Clip]:
    """Clips listed in a ``MANIFEST.tsv`` (see the module docstring); files that do not exist are skipped."""
    manifest = Path(manifest)
    _refuse_heldout(manifest)
    if not manifest.is_file():
        raise ConfigError(f"no manifest at {manifest}")
    root = manifest.parent
    folders = set(frame_folders)
    with manifest.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if rows and not {"file", "kind", "identity"} <= set(rows[0]):
        raise ConfigError(f"{manifest} needs the columns file, kind, identity (has {', '.join(rows[0])})")
    clips: list[Clip] = []
    groups: dict[tuple[str, str], Clip] = {}
    for row in rows:
        split = (row.get("split") or "").strip() or hash_split(row["identity"], split_fractions)
        if split == "heldout":
            continue
        path = root / row["file"]
        if not path.is_file():
            continue
        if row["kind"] == "video":
            clips.append(Clip(key=row["file"], identity=row["identity"], split=split, video=path))
        elif row["kind"] == "photo" and Path(row["file"]).parts[0] in folders:
            folder = str(Path(row.get("path") or row["file"]).parent)
            clip = groups.setdefault((row["identity"], folder), Clip(key=f"{row['identity']}:{folder}",
                                                                     identity=row["identity"], split=split))
            clip.frames.append(path)
    for clip in groups.values():
        clip.frames.sort()
        clips.append(clip)
    return clips


def clips_from_voxceleb(root: str | os.PathLike,
                        split_fractions: tuple[float, float, float] | list[float] = (0.75, 0.15, 0.10)) -> list[Clip]:
    """Clips of a VoxCeleb-style tree ``ROOT/identity/video/clip`` (clip = video file or frame folder)."""
    root = Path(root)
    _refuse_heldout(root)
    if not root.is_dir():
        raise ConfigError(f"no VoxCeleb-style folder at {root}")
    clips = []
    for ident in sorted(p for p in root.iterdir() if p.is_dir()):
        split = hash_split(ident.name, split_fractions)
        for video in sorted(p for p in ident.iterdir() if p.is_dir()):
            for clip in sorted(video.iterdir()):
                key = str(clip.relative_to(root))
                if clip.is_file() and clip.suffix.lower() in VIDEO_SUFFIXES:
                    clips.append(Clip(key=key, identity=ident.name, split=split, video=clip))
                elif clip.is_dir():
                    frames = sorted(p for p in clip.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                    if frames:
                        clips.append(Clip(key=key, identity=ident.name, split=split, frames=frames))
    return clips


# ---------------------------------------------------------------------------------------------- decoding
def sample_indices(num_frames: int, native_fps: float, fps: float) -> list[int]:
    """Indices of the frames kept when sampling a ``native_fps`` video at ``fps``: the first frame of each
    1/fps-second bin (every frame when ``fps`` <= 0 or >= ``native_fps``)."""
    if fps <= 0 or native_fps <= 0 or fps >= native_fps:
        return list(range(num_frames))
    bins = [int(i * fps / native_fps + 1e-9) for i in range(num_frames)]
    return [i for i in range(num_frames) if i == 0 or bins[i] != bins[i - 1]]


def _iter_sampled_frames(path: Path, fps: float) -> Iterator[np.ndarray]:
    """uint8 [H, W, 3] RGB frames of a video sampled at ``fps`` (see ``sample_indices``), streamed through
    ``x2face.media``'s ffmpeg reader at the file's own rate."""
    from ..media import iter_video_frames, probe_video

    info = probe_video(path)
    if not info.has_video:
        raise MediaError(f"{path} has no video stream")
    native = float(info.fps)
    sampling = 0 < fps < native
    previous = None
    for i, frame in enumerate(iter_video_frames(path, max_seconds=24 * 3600.0)):
        b = int(i * fps / native + 1e-9) if sampling else i  # the 1/fps-second bin of frame i
        if b != previous:  # the first frame of each bin, as sample_indices
            previous = b
            yield frame


def _center_square(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return frame[top:top + s, left:left + s]


def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if frame.shape[0] == size and frame.shape[1] == size:
        return np.ascontiguousarray(frame)
    interp = cv2.INTER_AREA if frame.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(frame), (size, size), interpolation=interp)


def _face_crops(frames: Iterable[np.ndarray], size: int, fps: float) -> list[np.ndarray]:
    """VoxCeleb-style 1.6x face crops (``x2face.faces.FaceCropper``) of a clip's frames, tracked through the
    clip; frames where no face was found are dropped."""
    from ..faces import FaceCropper

    # sampled frames far apart in time: detect on each; dense frames: every 5th, tracked in between
    cropper = FaceCropper(image_size=size, detect_every=1 if 0 < fps <= 5 else 5)
    return [np.ascontiguousarray(item.crop) for item in cropper.track(frames) if item.found and item.crop is not None]


@lru_cache(maxsize=None)
def _crop_id(crop: str) -> str:
    """What the crops depend on besides the clip: the mode and, for faces, the detector backend."""
    if crop != "face":
        return crop
    from ..faces import make_detector

    return f"face:{type(make_detector('auto')).__name__}"


def decode_clip(clip: Clip, image_size: int, fps: float, crop: str) -> np.ndarray:
    """Sampled, cropped, resized frames of a clip -> uint8 [N, S, S, 3] RGB (N may be 0)."""
    if crop not in CROPS:
        raise ConfigError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")
    if clip.video is None:  # pre-cropped frames: only resize
        from PIL import Image

        out = []
        for p in clip.frames:
            try:
                with Image.open(p) as im:
                    out.append(_resize(np.asarray(im.convert("RGB")), image_size))
            except OSError:
                continue
        return np.stack(out) if out else np.zeros((0, image_size, image_size, 3), np.uint8)
    kept = _iter_sampled_frames(clip.video, fps)  # streamed: full-size frames are never all in memory
    if crop == "face":
        crops = _face_crops(kept, image_size, fps)
    elif crop == "center":
        crops = [_resize(_center_square(f), image_size) for f in kept]
    else:
        crops = [_resize(f, image_size) for f in kept]
    return np.stack(crops) if crops else np.zeros((0, image_size, image_size, 3), np.uint8)


def cache_key(clip: Clip, image_size: int, fps: float, crop: str) -> str:
    """Cache file stem of a clip's crops: changes when the file(s) or the crop settings change."""
    files = [clip.video] if clip.video is not None else clip.frames
    stats = []
    for p in files:
        st = p.stat()
        stats.append([os.path.abspath(p), st.st_size, st.st_mtime_ns])
    crop_id = _crop_id(crop) if clip.video is not None else "none"
    blob = json.dumps({"v": CACHE_VERSION, "files": stats, "size": image_size,
                       "fps": fps if clip.video is not None else None, "crop": crop_id})
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:20]


def cache_clip(clip: Clip, image_size: int, fps: float, crop: str, cache_dir: str | os.PathLike) -> Path:
    """Decode, crop and cache a clip's frames once; returns the cache file (uint8 [N, S, S, 3] ``.npy``)."""
    cache_dir = Path(cache_dir)
    path = cache_dir / f"{cache_key(clip, image_size, fps, crop)}.npy"
    if not path.is_file():
        frames = decode_clip(clip, image_size, fps, crop)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            np.save(f, frames)
        os.replace(tmp, path)  # atomic: a killed run never leaves a half-written cache file
        meta = {"key": clip.key, "identity": clip.identity, "frames": int(frames.shape[0]), "fps": fps, "crop": crop}
        path.with_suffix(".json").write_text(json.dumps(meta) + "\n", encoding="utf-8")
    return path


def cached_frames(clip: Clip, image_size: int, fps: float, crop: str, cache_dir: str | os.PathLike) -> np.ndarray:
    """The clip's frames from the cache (memory-mapped uint8 [N, S, S, 3]), decoding and caching them once."""
    return np.load(cache_clip(clip, image_size, fps, crop, cache_dir), mmap_mode="r")


def prepare_cache(clips: list[Clip], image_size: int, fps: float, crop: str, cache_dir: str | os.PathLike,
                  rank: int = 0, world: int = 1, verbose: bool = True) -> list[str]:
    """Cache the crops of clips ``rank, rank + world, ...`` (each process of a run does its share).

    Returns the clips that could not be read, as ``"key: reason"`` lines (they are skipped, not fatal).
    """
    mine = clips[rank::world]
    failed = []
    tty = sys.stderr.isatty()
    for i, clip in enumerate(mine):
        if verbose and (tty or (i + 1) % max(1, len(mine) // 10) == 0 or i + 1 == len(mine)):
            print(f"\rclip crops cached: {i + 1}/{len(mine)}", end="" if tty else "\n", file=sys.stderr, flush=True)
        try:
            cache_clip(clip, image_size, fps, crop, cache_dir)
        except (MediaError, OSError, ValueError) as exc:
            failed.append(f"{clip.key}: {exc}")
    if verbose and mine and tty:
        print(file=sys.stderr)
    return failed


EXPORT_FOLDER = "frames"


def _safe_name(key: str) -> str:
    """A clip key as one folder name: letters, digits, ``-``, ``_``, ``.`` (others become ``_``)."""
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in key).strip("._")
    return name or "clip"


def export_crops(clips: list[Clip], image_size: int, fps: float, crop: str, cache_dir: str | os.PathLike,
                 out_dir: str | os.PathLike, quality: int = 95, verbose: bool = True) -> dict[str, int]:
    """Write the crops of ``clips`` as a self-contained data folder: ``out_dir/MANIFEST.tsv`` and
    ``out_dir/frames/<clip>/<n>.jpg`` (uint8 RGB, ``image_size`` square, JPEG ``quality``).

    The manifest keeps each clip's identity and split, so training on another machine (one without the
    videos, ``../shared`` or a face detector, e.g. a rented GPU) reads the same train/val clips with
    ``data.manifests = ["OUT/MANIFEST.tsv"]``, ``data.frame_folders = ["frames"]``. Crops come from (and
    fill) ``cache_dir``. ``out_dir`` must not exist yet: it is written beside and renamed into place.
    Returns ``{"clips": ..., "frames": ..., "bytes": ..., "failed": ["key: reason", ...]}``; clips without
    frames are left out, and so are clips that cannot be read (listed in ``failed``, as ``prepare_cache`` does).
    """
    from PIL import Image

    out = Path(out_dir)
    if out.exists():
        raise ConfigError(f"{out} exists; export-crops writes a new folder (remove it or choose another)")
    if not 1 <= int(quality) <= 100:
        raise ConfigError(f"JPEG quality must be 1..100, got {quality}")
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    rows, names, frames_total, failed = [], set(), 0, []
    for i, clip in enumerate(clips):
        try:
            frames = cached_frames(clip, image_size, fps, crop, cache_dir)  # uint8 [N, S, S, 3]
        except (MediaError, OSError, ValueError) as exc:
            failed.append(f"{clip.key}: {exc}")
            continue
        if frames.shape[0] == 0:
            continue
        name = _safe_name(clip.key)
        while name in names:  # two keys that differ only in unsafe characters
            name += "_"
        names.add(name)
        folder = tmp / EXPORT_FOLDER / name
        folder.mkdir(parents=True)
        for n, frame in enumerate(frames):
            rel = f"{EXPORT_FOLDER}/{name}/{n:05d}.jpg"
            Image.fromarray(np.ascontiguousarray(frame)).save(tmp / rel, quality=int(quality))
            rows.append({"file": rel, "kind": "photo", "identity": clip.identity, "split": clip.split,
                         "path": f"{name}/{n:05d}.jpg", "source": clip.key})
        frames_total += frames.shape[0]
        if verbose and ((i + 1) % max(1, len(clips) // 10) == 0 or i + 1 == len(clips)):
            print(f"clips exported: {i + 1}/{len(clips)}", file=sys.stderr, flush=True)
    tmp.mkdir(parents=True, exist_ok=True)
    with (tmp / "MANIFEST.tsv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "kind", "identity", "split", "path", "source"], delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"clips": len(names), "frames": frames_total, "bytes": size, "failed": failed}


# ---------------------------------------------------------------------------------------------- dataset
class RealVideoPairs(Dataset):
    """Source/driving pairs from real face clips of one split, as dicts like ``SyntheticPairs``'.

    Every item is a pure function of ``(seed, index)``; ``batch(n, generator)`` draws n items from a
    ``torch.Generator`` (the trainer seeds one per step, which makes ``--resume`` exact).

    Args:
        clips: clips of any splits (``clips_from_manifest`` / ``clips_from_voxceleb``).
        split: the split to use (``train``, ``val``, ``test``).
        image_size: side of the square frames, pixels.
        num_sources: K source frames per item.
        length: ``len()`` of the dataset (items are drawn, not enumerated).
        seed: base seed of ``__getitem__``.
        fps: frame sampling rate of videos (frames per second; <= 0 keeps all).
        crop: ``face``, ``center`` or ``none`` (videos; frame clips are pre-cropped).
        cache_dir: where the per-clip crops are cached.
        balance: ``identity`` (each person equally often) or ``frame`` (each frame equally often).
        verbose: show the progress of decoding clips that are not cached yet.

    Raises:
        ConfigError: fewer than two identities with at least two usable frames in the split.
    """

    def __init__(self, clips: list[Clip], split: str, image_size: int, num_sources: int = 1, length: int = 10_000,
                 seed: int = 0, fps: float = 1.0, crop: str = "face", cache_dir: str | os.PathLike = "runs/cache",
                 balance: str = "identity", verbose: bool = True) -> None:
        if balance not in ("identity", "frame"):
            raise ConfigError(f"balance must be 'identity' or 'frame', got {balance!r}")
        if num_sources < 1:
            raise ConfigError(f"num_sources must be >= 1, got {num_sources}")
        self.split, self.image_size, self.num_sources = split, image_size, num_sources
        self.length, self.seed, self.balance = length, seed, balance
        self.clips: list[Clip] = []
        self.paths: list[Path] = []
        self.skipped: list[str] = []
        sizes = []
        mine = [c for c in clips if c.split == split]
        if verbose:
            prepare_cache(mine, image_size, fps, crop, cache_dir)  # with progress; a no-op once cached
        for clip in mine:
            try:
                path = cache_clip(clip, image_size, fps, crop, cache_dir)
                n = int(np.load(path, mmap_mode="r").shape[0])
            except (MediaError, OSError, ValueError) as exc:
                self.skipped.append(f"{clip.key}: {exc}")
                continue
            if n < 2:
                self.skipped.append(f"{clip.key}: {n} usable frame(s)")
                continue
            self.clips.append(clip)
            self.paths.append(path)
            sizes.append(n)
        self.identity_names = sorted({c.identity for c in self.clips})
        if len(self.identity_names) < 2:
            raise ConfigError(f"the real '{split}' split has {len(self.identity_names)} identity(ies) with usable clips; "
                              f"pairs with another identity need at least 2 ({len(self.skipped)} clip(s) skipped)")
        index = {name: i for i, name in enumerate(self.identity_names)}
        self.clip_identity = np.array([index[c.identity] for c in self.clips])
        self.clips_of = [np.flatnonzero(self.clip_identity == i) for i in range(len(self.identity_names))]
        self.clip_sizes = np.array(sizes)
        self._frames: list[np.ndarray] | None = None

    @property
    def frames(self) -> list[np.ndarray]:
        """Per clip, its cached frames (memory-mapped uint8 [N, S, S, 3]; opened on first use in each process)."""
        if self._frames is None:
            self._frames = [np.load(p, mmap_mode="r") for p in self.paths]
        return self._frames

    def __getstate__(self) -> dict:  # DataLoader workers reopen the memory maps instead of copying the frames
        return {**self.__dict__, "_frames": None}

    def __len__(self) -> int:
        return self.length

    def describe(self) -> dict:
        """What the split holds: clips, identities, frames and skipped clips (for logs and provenance)."""
        return {"split": self.split, "clips": len(self.clips), "identities": len(self.identity_names),
                "frames": int(self.clip_sizes.sum()), "skipped": self.skipped}

    def _pick_clip(self, rng: np.random.Generator, exclude_identity: int | None = None) -> int:
        if self.balance == "identity":
            ids = np.arange(len(self.identity_names))
            if exclude_identity is not None:
                ids = ids[ids != exclude_identity]
            return int(rng.choice(self.clips_of[int(rng.choice(ids))]))
        sizes = self.clip_sizes.astype(np.float64)
        if exclude_identity is not None:
            sizes = np.where(self.clip_identity == exclude_identity, 0.0, sizes)
        return int(rng.choice(len(self.clips), p=sizes / sizes.sum()))

    def _sample(self, rng: np.random.Generator, drivers: int = 1) -> list[dict[str, np.ndarray | int]]:
        """``drivers`` items of one clip sharing their K source frames, each with its own driving frame and
        ``driving_other`` (one item: the paper's pair)."""
        c = self._pick_clip(rng)
        n = self.clip_sizes[c]
        k = self.num_sources
        # K sources and the driving frames of one clip; distinct frames when the clip has enough
        picks = rng.choice(n, size=k + drivers, replace=n < k + drivers)
        frames = self.frames[c]
        sources = np.stack([frames[i] for i in picks[:k]])  # [K, S, S, 3] uint8
        items = []
        for j in range(drivers):
            o = self._pick_clip(rng, exclude_identity=int(self.clip_identity[c]))
            other = int(rng.integers(self.clip_sizes[o]))
            items.append({
                "sources": sources,
                "driving": np.asarray(frames[picks[k + j]]),  # [S, S, 3] uint8
                "driving_other": np.asarray(self.frames[o][other]),  # [S, S, 3] uint8
                "identity": int(self.clip_identity[c]),
                "identity_other": int(self.clip_identity[o]),
            })
        return items

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """Item ``index`` (any int): float RGB [0, 1] ``sources`` [K, 3, S, S], ``driving`` and
        ``driving_other`` [3, S, S]; long ``identity``/``identity_other``; float ``pose``/``pose_other`` [3] = NaN."""
        items = self._sample(np.random.default_rng([self.seed, int(index) % 2**63]))
        return _to_tensors(items, batched=False)

    def batch(self, batch_size: int, generator: torch.Generator, drivers: int = 1) -> dict[str, torch.Tensor]:
        """``batch_size`` items drawn with ``generator`` -> the item keys with a leading batch dim [B, ...].

        ``drivers`` > 1: ``batch_size / drivers`` groups of ``drivers`` consecutive items from one clip that
        share their source frames, as ``SyntheticPairs.batch``; 1 draws exactly as before.
        """
        if isinstance(drivers, bool) or not isinstance(drivers, int) or drivers < 1 or batch_size % drivers:
            raise ConfigError(f"drivers must be an int >= 1 that divides the batch size {batch_size}, got {drivers!r}")
        seeds = torch.randint(0, 2**62, (batch_size // drivers,), generator=generator).tolist()
        items = [it for s in seeds for it in self._sample(np.random.default_rng([self.seed, s]), drivers)]
        return _to_tensors(items, batched=True)


def _images(array: np.ndarray) -> torch.Tensor:
    """uint8 [..., S, S, 3] -> float [..., 3, S, S] in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    return t.movedim(-1, -3).float().div_(255.0)  # [..., S, S, 3] -> [..., 3, S, S]


def _to_tensors(items: list[dict], batched: bool) -> dict[str, torch.Tensor]:
    out = {
        "sources": _images(np.stack([it["sources"] for it in items])),  # [B, K, 3, S, S]
        "driving": _images(np.stack([it["driving"] for it in items])),  # [B, 3, S, S]
        "driving_other": _images(np.stack([it["driving_other"] for it in items])),  # [B, 3, S, S]
        "identity": torch.tensor([it["identity"] for it in items], dtype=torch.long),
        "identity_other": torch.tensor([it["identity_other"] for it in items], dtype=torch.long),
        "pose": torch.full((len(items), 3), float("nan")),
        "pose_other": torch.full((len(items), 3), float("nan")),
    }
    if not batched:
        out = {k: v[0] for k, v in out.items()}
    return out


def load_clips(manifests: Iterable[str | os.PathLike] = (), voxceleb_roots: Iterable[str | os.PathLike] = (),
               frame_folders: Iterable[str] = ("vox1-frames",),
               split_fractions: tuple[float, float, float] | list[float] = (0.75, 0.15, 0.10)) -> list[Clip]:
    """All clips of some manifests and VoxCeleb-style roots (identities of different sources are kept apart
    only by their names: use distinct names)."""
    clips: list[Clip] = []
    for m in manifests:
        clips += clips_from_manifest(m, frame_folders, split_fractions)
    for r in voxceleb_roots:
        clips += clips_from_voxceleb(r, split_fractions)
    return clips


__all__ = ["Clip", "RealVideoPairs", "cache_clip", "cached_frames", "clips_from_manifest", "clips_from_voxceleb",
           "decode_clip", "export_crops", "hash_split", "load_clips", "prepare_cache", "sample_indices"]
