"""Helpers shared by several test modules (imported as ``helpers``: pytest puts ``tests/`` on ``sys.path``)."""
from __future__ import annotations

import importlib.util
import os
import wave
from pathlib import Path
from types import ModuleType

import numpy as np

from x2face.faces import Detection, FaceDetector


BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (not a package) as a module, running its top level."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_silence(path: Path, seconds: float, rate: int = 16000) -> Path:
    """A mono 16-bit WAV of digital silence (a muted microphone) at ``path``; returns ``path``."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(2 * round(seconds * rate)))
    return path


class WholeImage(FaceDetector):
    """A detector that reports one face filling the image (crops are then the whole image)."""

    name = "whole-image"

    def detect(self, image, region=None, expected_side=None, thorough=False):
        h, w = image.shape[:2]
        s = min(h, w) / 1.6
        return [Detection(np.array([(w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2]), 1.0)]


def best_lag(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """Lag of b relative to a in samples, and the normalised correlation at that lag."""
    import scipy.signal as ss

    n = min(len(a), len(b))
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    c = ss.correlate(b, a, mode="full", method="fft")
    k = int(np.argmax(c))
    return k - (n - 1), float(c[k] / np.sqrt((a ** 2).sum() * (b ** 2).sum()))


def ffmpeg_children() -> list[str]:
    """ffmpeg processes started by this process that are still there (Linux /proc)."""
    found = []
    for d in Path("/proc").glob("[0-9]*"):
        try:
            status = dict(ln.split(":", 1) for ln in (d / "status").read_text().splitlines() if ":" in ln)
        except OSError:
            continue
        if status.get("PPid", "").strip() == str(os.getpid()) and "ffmpeg" in status.get("Name", ""):
            found.append(f"{d.name} {status['Name'].strip()}")
    return found


def group_photo(real_dir: Path) -> np.ndarray:
    """Two people side by side, uint8 [320, 640, 3] RGB: a small face (Scarlett, 128 px) on the left and a
    large one (Anne, 256 px) on the right, on grey."""
    from x2face.media import read_image

    anne = read_image(real_dir / "photos/jixinya_EAMM__test_image_anne.png")  # 256 px
    scarlett = read_image(real_dir / "photos/jixinya_EAMM__test_image_scarlett.jpg")[::2, ::2]  # 128 px
    canvas = np.full((320, 640, 3), 128, np.uint8)
    canvas[0:128, 40:168] = scarlett
    canvas[40:296, 340:596] = anne
    return canvas


def group_clip(real_dir: Path, frames: int = 4) -> list[np.ndarray]:
    """Two people side by side, each moving on their own: ``frames`` uint8 [288, 648, 3] RGB frames, a GRID speaker
    (360 px wide) on the left and Donald Trump (a first-order-model demo clip, 288 px) on the right."""
    from PIL import Image

    from x2face.media import VideoReader

    left = VideoReader(real_dir / "clips/rizkiarm_LipNet__evaluation_samples_GRID_bbaf2n.mpg", seconds=1.0)
    right = VideoReader(real_dir / "clips/AliaksandrSiarohin_first-order-model__demo_old_04.mp4", seconds=1.0)
    pairs = list(zip(list(left), list(right)))[:frames]
    return [np.concatenate([a, np.asarray(Image.fromarray(b).resize((288, 288)))], axis=1) for a, b in pairs]
