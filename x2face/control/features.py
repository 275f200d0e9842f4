"""Audio features per video frame: what f_a->v (section 4.2 of the paper) regresses driving vectors from.

Every extractor maps a mono 16 kHz waveform to one feature vector per video frame, computed from the
0.2 s of sound centred on the frame (the frame "occurs half way through the 0.2 s audio signal"):

* ``"mfcc"``: the plain baseline: the 13 MFCC x 20 steps of the window, flattened cepstrum-major
  (``[c0 s0..s19, c1 s0..s19, ...]``), 260-D;
* ``"syncnet"`` / ``"syncnet-small"``: the learned audio stream of a SyncNet-style network
  (``x2face.control.audio_net``) on the same MFCC window, D-dimensional (256 = the paper's FC7).

Extractors are registered by name in ``FEATURES`` (name -> builder(dim)); ``X2FaceConfig.audio_features``
holds the name, and a learned extractor's weights travel inside the model's own weights
(``X2Face.audio.extractor``), so ``from_pretrained`` stays strict.

MFCCs follow ``python_speech_features.mfcc`` (what SyncNet's public code feeds its network, so
``syncnet_v2`` weights see what they were trained on): pre-emphasis 0.97, 25 ms rectangular frames
every 10 ms, 512-point power spectrum, 26 mel filters (0-8 kHz), log, orthonormal DCT-II, 13 cepstra,
lifter 22, c0 replaced by the log frame energy; on the waveform scaled to 16-bit integers. Two
deliberate differences: a power floor of ``POWER_FLOOR`` per bin (about the noise of one 16-bit
step) so digital silence gives finite, ordinary features instead of log(eps), and the steps sit on a
fixed 100 Hz grid (step ``k`` centred at ``0.005 + 0.01 k`` s) so any window can be cut from it and
long audio can be processed in chunks with identical results.

Timing: frame ``i`` at ``fps`` is at ``t = i / fps``; its window is the 20 steps centred on
``round(100 t) / 100`` s (steps ``round(100 t) - 10 .. round(100 t) + 9``, covering about
``t - 0.1 .. t + 0.1`` s); audio outside the waveform counts as silence.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, ClassVar, Iterator

import numpy as np
import torch
import torch.nn as nn

from ..errors import ConfigError, InputError
from .audio_net import NUM_CEPS, WINDOW_STEPS, AudioStream, audio_net_config

SAMPLE_RATE = 16_000  #: sample rate every extractor takes, Hz
STEP_RATE = 100  #: MFCC steps per second
HOP = SAMPLE_RATE // STEP_RATE  #: samples per step (10 ms)
FRAME = 400  #: samples per MFCC frame (25 ms)
NFFT = 512
NUM_FILTERS = 26
PREEMPHASIS = 0.97
LIFTER = 22
INT16 = 32768.0  #: the waveform is scaled to 16-bit integers before the MFCCs, as syncnet_python does
POWER_FLOOR = 1.0  #: added to every power-spectrum bin (16-bit units): the noise of about one integer step
WINDOW_SECONDS = WINDOW_STEPS / STEP_RATE  #: 0.2 s
DEFAULT_CHUNK_FRAMES = 500  #: frames per chunk when streaming (20 s at 25 fps)


# ------------------------------------------------------------------------------------------------ MFCC
def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=1)
def mel_filterbank() -> torch.Tensor:
    """Triangular mel filters as python_speech_features builds them: float32 [26, 257] (0 Hz .. 8 kHz)."""
    mels = np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), NUM_FILTERS + 2)
    bins = np.floor((NFFT + 1) * _mel_to_hz(mels) / SAMPLE_RATE).astype(int)
    fb = np.zeros((NUM_FILTERS, NFFT // 2 + 1))
    for j in range(NUM_FILTERS):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        for i in range(lo, mid):
            fb[j, i] = (i - lo) / (mid - lo)
        for i in range(mid, hi):
            fb[j, i] = (hi - i) / (hi - mid)
    return torch.from_numpy(fb).float()


@lru_cache(maxsize=1)
def _dct_lifter() -> torch.Tensor:
    """Orthonormal DCT-II rows 0..12 times the lifter: float32 [26, 13] (log filterbank -> liftered cepstra)."""
    n = np.arange(NUM_FILTERS)
    k = np.arange(NUM_CEPS)
    dct = np.cos(np.pi * (2 * n[:, None] + 1) * k[None, :] / (2 * NUM_FILTERS))  # [26, 13]
    dct *= np.where(k == 0, math.sqrt(1.0 / NUM_FILTERS), math.sqrt(2.0 / NUM_FILTERS))[None, :]
    lift = 1.0 + (LIFTER / 2.0) * np.sin(np.pi * k / LIFTER)
    return torch.from_numpy(dct * lift[None, :]).float()


def check_waveform(wav) -> np.ndarray:
    """Validate a waveform for the extractors: float mono [N] (numpy or torch), finite, N >= 1 -> float32 [N]."""
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().numpy()
    if not isinstance(wav, np.ndarray):
        raise InputError(f"audio must be a float array [N] at {SAMPLE_RATE} Hz, got {type(wav).__name__}")
    if wav.ndim != 1:
        raise InputError(f"audio must be mono [N] at {SAMPLE_RATE} Hz, got shape {list(wav.shape)} "
                         f"(use x2face.control.audio.prepare_audio for stereo or other rates)")
    if not np.issubdtype(wav.dtype, np.floating):
        raise InputError(f"audio must be float in [-1, 1], got dtype {wav.dtype}")
    if wav.shape[0] == 0:
        raise InputError("the audio is empty (no samples)")
    wav = wav.astype(np.float32, copy=False)
    if not np.isfinite(wav).all():
        raise InputError("the audio contains NaN or infinite samples")
    return wav


def mfcc_steps(wav: np.ndarray, first: int, count: int) -> torch.Tensor:
    """MFCCs of ``count`` steps of the fixed 100 Hz grid starting at step ``first`` (may be negative).

    Step ``k`` is the 25 ms frame centred at ``0.005 + 0.01 k`` s (samples ``160 k - 120 .. 160 k + 280``);
    samples outside the waveform are zeros.

    Args:
        wav: float32 [N] mono at 16 kHz in [-1, 1] (``check_waveform``).
        first: index of the first step.
        count: number of steps (>= 0).

    Returns:
        float32 [count, 13]: c0 = log frame energy, c1..c12 liftered cepstra (python_speech_features' scale).
    """
    if count <= 0:
        return torch.zeros(0, NUM_CEPS)
    lo = first * HOP - (FRAME // 2 - HOP // 2)  # first sample of step `first`
    hi = (first + count - 1) * HOP - (FRAME // 2 - HOP // 2) + FRAME  # one past the last sample
    n = wav.shape[0]
    seg = np.zeros(hi - lo + 1, dtype=np.float32)  # samples lo-1 .. hi-1: one extra for the pre-emphasis
    a, b = max(lo - 1, 0), min(hi, n)
    if b > a:
        seg[a - (lo - 1): b - (lo - 1)] = wav[a:b]
    x = torch.from_numpy(seg) * INT16
    y = x[1:] - PREEMPHASIS * x[:-1]  # [hi - lo]; y at sample 0 is x[0] (x[-1] = 0), as python_speech_features
    frames = y.unfold(0, FRAME, HOP)  # [count, 400]
    power = torch.fft.rfft(frames, n=NFFT).abs().square_() / NFFT + POWER_FLOOR  # [count, 257]
    energy = power.sum(1)  # [count]
    logfb = torch.log(power @ mel_filterbank().T)  # [count, 26]
    ceps = logfb @ _dct_lifter()  # [count, 13]
    ceps[:, 0] = torch.log(energy)
    return ceps


def num_frames_for(num_samples: int, fps: float = 25.0, sample_rate: int = SAMPLE_RATE) -> int:
    """Video frames that cover ``num_samples`` of audio: ``max(1, round(num_samples / sample_rate * fps))``."""
    if fps <= 0:
        raise InputError(f"fps must be positive, got {fps}")
    return max(1, int(math.floor(num_samples * fps / sample_rate + 0.5)))


def window_starts(frames: np.ndarray | range, fps: float) -> np.ndarray:
    """First grid step of each frame's window: ``round(100 * i / fps) - 10`` for frame indices ``frames`` (int64)."""
    i = np.asarray(frames, dtype=np.float64)
    return (np.floor(i * STEP_RATE / fps + 0.5) - WINDOW_STEPS // 2).astype(np.int64)


def mfcc_windows(wav, fps: float = 25.0, start: int = 0, count: int | None = None) -> torch.Tensor:
    """The MFCC window of each video frame ``start .. start + count - 1``.

    Args:
        wav: float [N] mono 16 kHz in [-1, 1].
        fps: video frame rate; frame ``i`` is at ``i / fps`` s.
        start: first frame.
        count: frames (default: up to ``num_frames_for(N, fps)``).

    Returns:
        float32 [count, 13, 20]: cepstra along dim 1, time (10 ms steps) along dim 2.
    """
    wav = check_waveform(wav)
    if count is None:
        count = max(0, num_frames_for(wav.shape[0], fps) - start)
    if count <= 0:
        return torch.zeros(0, NUM_CEPS, WINDOW_STEPS)
    starts = window_starts(range(start, start + count), fps)
    first, last = int(starts[0]), int(starts[-1]) + WINDOW_STEPS
    grid = mfcc_steps(wav, first, last - first)  # [K, 13]
    idx = torch.from_numpy(starts - first)[:, None] + torch.arange(WINDOW_STEPS)[None, :]  # [T, 20]
    return grid[idx].permute(0, 2, 1).contiguous()  # [T, 20, 13] -> [T, 13, 20]


# ------------------------------------------------------------------------------------------------ extractors
class AudioFeatures(nn.Module):
    """Waveform -> one feature vector per video frame. Subclasses implement ``encode``.

    Attributes:
        name: the registry name (``FEATURES``).
        learned: whether it has trained weights (they travel inside the X2Face weights).
        dim: feature size D.
    """

    name: ClassVar[str] = ""
    learned: ClassVar[bool] = False

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = int(dim)

    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        """windows: float [T, 13, 20] MFCC windows (``mfcc_windows``) -> features float [T, dim]."""
        raise NotImplementedError

    def _where(self) -> tuple[torch.device, torch.dtype]:
        p = next(self.parameters(), None)
        return (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)

    def iter_features(self, wav, fps: float = 25.0, num_frames: int | None = None,
                      chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> Iterator[np.ndarray]:
        """Stream the features of frames ``0 .. num_frames - 1`` in chunks (memory bounded by the chunk).

        Args:
            wav: float [N] mono 16 kHz in [-1, 1].
            fps: video frame rate.
            num_frames: frames to cover (default ``num_frames_for(N, fps)``); frames past the audio
                get the features of silence.
            chunk_frames: frames per yielded chunk.

        Yields:
            float32 [t, dim] arrays, ``t <= chunk_frames``, in frame order.
        """
        wav = check_waveform(wav)
        total = num_frames_for(wav.shape[0], fps) if num_frames is None else int(num_frames)
        if total < 1:
            raise InputError(f"num_frames must be >= 1, got {num_frames}")
        device, dtype = self._where()
        for start in range(0, total, max(1, int(chunk_frames))):
            count = min(chunk_frames, total - start)
            windows = mfcc_windows(wav, fps, start, count)
            with torch.inference_mode():
                out = torch.cat([self.encode(windows[i:i + 256].to(device, dtype))
                                 for i in range(0, count, 256)])  # [t, dim]
            yield out.float().cpu().numpy()

    def extract(self, wav, fps: float = 25.0, num_frames: int | None = None) -> np.ndarray:
        """All frames' features at once: float32 [T, dim] (see ``iter_features``)."""
        return np.concatenate(list(self.iter_features(wav, fps, num_frames)))

    def silence(self) -> np.ndarray:
        """Features of a window of digital silence: float32 [dim] (the audio feature of a still photo)."""
        return self.extract(np.zeros(FRAME, dtype=np.float32), fps=25.0, num_frames=1)[0]


class MFCCFeatures(AudioFeatures):
    """The baseline: the frame's 13 x 20 MFCC window flattened (260-D, cepstrum-major)."""

    name = "mfcc"
    learned = False

    def __init__(self, dim: int = NUM_CEPS * WINDOW_STEPS) -> None:
        if dim != NUM_CEPS * WINDOW_STEPS:
            raise ConfigError(f"MFCC features are {NUM_CEPS * WINDOW_STEPS}-D (13 MFCC x 20 steps); "
                              f"set audio_feature_dim = {NUM_CEPS * WINDOW_STEPS}, not {dim}")
        super().__init__(dim)

    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        return windows.reshape(windows.shape[0], -1)  # [T, 13, 20] -> [T, 260]


class SyncNetFeatures(AudioFeatures):
    """The learned features: a SyncNet-style ``AudioStream`` on the frame's MFCC window (its FC7)."""

    learned = True

    def __init__(self, dim: int = 256, variant: str = "syncnet") -> None:
        super().__init__(dim)
        self.variant = variant
        self.net = AudioStream(audio_net_config(variant, dim))

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.variant

    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        return self.net(windows.unsqueeze(1))  # [T, 13, 20] -> [T, 1, 13, 20] -> [T, dim]

    @classmethod
    def from_stream(cls, stream: AudioStream) -> "SyncNetFeatures":
        """Wrap a trained (or syncnet_v2) ``AudioStream`` of a named variant; its weights are copied."""
        name = stream.config.name
        if name not in _SYNCNET_VARIANTS:
            raise ConfigError(f"the audio network has widths no named variant has ({name!r}); x2face weights can "
                              f"only carry {', '.join(_SYNCNET_VARIANTS)} audio networks")
        feats = cls(stream.config.out_dim, name)
        reference = audio_net_config(name, stream.config.out_dim)
        if (stream.config.channels, stream.config.conv_out, stream.config.hidden) != \
                (reference.channels, reference.conv_out, reference.hidden):
            raise ConfigError(f"the audio network is called {name!r} but does not have its widths")
        feats.net.load_state_dict(stream.state_dict())
        return feats.eval()


_SYNCNET_VARIANTS = ("syncnet", "syncnet-small")

#: extractor name -> builder(dim) (``X2FaceConfig.audio_features`` names one of these)
FEATURES: dict[str, Callable[[int], AudioFeatures]] = {
    "mfcc": MFCCFeatures,
    "syncnet": lambda dim: SyncNetFeatures(dim, "syncnet"),
    "syncnet-small": lambda dim: SyncNetFeatures(dim, "syncnet-small"),
}

#: the natural feature size of each extractor (what ``fit-audio`` sets ``audio_feature_dim`` to)
DEFAULT_DIMS: dict[str, int] = {"mfcc": NUM_CEPS * WINDOW_STEPS, "syncnet": 256, "syncnet-small": 256}


def build_features(name: str, dim: int | None = None) -> AudioFeatures:
    """Build the extractor ``name`` (``FEATURES``) producing ``dim``-D features (default ``DEFAULT_DIMS``)."""
    if name not in FEATURES:
        raise ConfigError(f"unknown audio features {name!r}; choose one of {', '.join(FEATURES)}")
    return FEATURES[name](DEFAULT_DIMS[name] if dim is None else int(dim)).eval()


__all__ = ["AudioFeatures", "DEFAULT_DIMS", "FEATURES", "MFCCFeatures", "POWER_FLOOR", "SAMPLE_RATE", "STEP_RATE",
           "SyncNetFeatures", "WINDOW_SECONDS", "build_features", "check_waveform", "mel_filterbank", "mfcc_steps",
           "mfcc_windows", "num_frames_for", "window_starts"]
