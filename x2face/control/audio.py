"""Drive a face with a voice: the audio map f_a->v and the vector arithmetic of section 4.2 of the paper.

f_a->v is an ordinary-least-squares affine map from per-frame audio features
(``x2face.control.features``: the learned SyncNet-style features or the MFCC baseline) to driving
vectors, fitted on (audio, frame) pairs (``python -m x2face fit-audio``, ``fit_audio_map``) after
standardising the features. A face is then driven "with itself", its driving vector moved by the sound:

    v_drv = v_src + f_a->v(a_drv) - f_a->v(a_src) + f_p->v(p_audio) - f_p->v(p_src)
    p_src = f_v->p(v_src),  p_audio = f_v->p(f_a->v(a_drv))

(the pose term in the difference form, because of the BatchNorm in f_p->v; it needs the pose head
and is skipped without one). ``a_src`` is the audio feature of the source frame; a still photo has
no sound, so it is the feature of silence (``AudioFeatures.silence``): the mouth of the photo is
taken to be closed, and silence gives back the source vector exactly (except under the "paper" pose
correction, which also turns the head to the pose f_v->p reads in f_a->v's prediction).

Two choices of the paper are settings here (``AudioDriveSettings``; see ``docs/controls.md``), and
the defaults differ from the paper's, for reasons that hold whatever the model:

* ``normalise``: the paper fitted on standardised features but applied the map to raw ones ("no
  normalisation ... amplifies the signal"); ``normalise=False`` does that. Least-squares weights on
  correlated features are large and cancel each other only for inputs scaled as in the fit, so raw
  features can blow the audio term up (in development, by orders of magnitude beyond the driving
  vectors' size): the default applies the map as fitted (``True``).
* ``pose_correction`` (``POSE_CORRECTIONS``): ``"paper"`` is the formula above. With f_p->v fitted as
  ``fit-pose`` does (``f_v->p(f_p->v(a) - f_p->v(b)) = a - b``) it gives
  ``f_v->p(v_drv) = p_audio + [pose change of the audio term]``: it replaces the source's pose by the
  (roughly average) pose read in f_a->v's prediction and keeps the audio term's own pose change. The
  paper says the term is there "to remove this [pose] information"; ``"keep-source"`` (default) does
  exactly that: ``f_v->p(v_drv) = p_src``, the source keeps its head pose and only the sound moves
  the face. ``"none"`` drops the term.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn

from ..errors import ConfigError, InputError, WeightsError
from .features import (
    DEFAULT_CHUNK_FRAMES,
    FEATURES,
    SAMPLE_RATE,
    AudioFeatures,
    build_features,
    check_waveform,
    num_frames_for,
)


class AudioMap(nn.Module):
    """f_a->v: an affine map from (standardised) audio features to driving vectors, and the extractor.

    Fitted by ordinary least squares on (audio feature, driving vector) pairs (``fit_audio_map``);
    ``feature_mean`` and ``feature_std`` are the statistics of the features it was fitted on.

    Args:
        feature_dim: size of the audio features.
        vector_dim: size of the driving vector.
        features: name of the feature extractor (``x2face.control.features.FEATURES``) or "" for
            none; a learned extractor's network is a submodule (``extractor``), so its weights are
            saved and loaded with the model's.
    """

    def __init__(self, feature_dim: int = 256, vector_dim: int = 128, features: str = "") -> None:
        super().__init__()
        self.linear = nn.Linear(feature_dim, vector_dim)
        self.register_buffer("feature_mean", torch.zeros(feature_dim))
        self.register_buffer("feature_std", torch.ones(feature_dim))
        self.extractor: AudioFeatures | None = build_features(features, feature_dim) if features else None

    def forward(self, features: torch.Tensor, normalise: bool = True) -> torch.Tensor:
        """features: float [B, feature_dim] -> driving vectors float [B, vector_dim].

        ``normalise=True`` applies the map as fitted; ``False`` skips the standardisation (the
        paper's way of driving: the same weights on raw features).
        """
        x = features.to(self.linear.weight.dtype)
        if normalise:
            x = (x - self.feature_mean) / self.feature_std
        return self.linear(x)

    def delta(self, features: torch.Tensor, reference: torch.Tensor, normalise: bool = True) -> torch.Tensor:
        """``f_a->v(features) - f_a->v(reference)``: float [B, F] and [1 or B, F] -> float [B, vector_dim]
        (the bias and the feature mean cancel)."""
        d = (features - reference).to(self.linear.weight.dtype)
        if normalise:
            d = d / self.feature_std
        return d @ self.linear.weight.T


def _demean(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """x [N, K] minus the mean of its group (``groups`` [N] ints) per row."""
    _, inv = np.unique(groups, return_inverse=True)
    sums = np.zeros((inv.max() + 1, x.shape[1]))
    np.add.at(sums, inv, x)
    counts = np.bincount(inv).astype(np.float64)[:, None]
    return x - (sums / counts)[inv]


def fit_audio_map(features: np.ndarray | torch.Tensor, vectors: np.ndarray | torch.Tensor, *, ridge: float = 0.0,
                  groups: np.ndarray | None = None, extractor: str = "") -> AudioMap:
    """Ordinary least squares from standardised audio features to driving vectors.

    Args:
        features: float [N, F] audio features (one per frame).
        vectors: float [N, D] driving vectors of the same frames.
        ridge: optional L2 penalty, relative to N (0 = plain OLS, as the paper).
        groups: optional int [N], the clip of each pair: the weights are then fitted on the pairs
            minus their clip's means (OLS with one intercept per clip), so they describe how the vector
            changes with the sound within a video, not how voices and faces differ between people:
            what driving by differences, ``f(a_drv) - f(a_src)``, uses. The bias is the overall one.
        extractor: the extractor name to record in the map (a fresh, untrained network for learned
            ones: copy the trained weights in afterwards, as ``fit-audio`` does).

    Returns:
        an ``AudioMap`` (eval mode, CPU, float32): ``map(f) ~ v``.
    """
    a = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor) else features, dtype=np.float64)
    v = np.asarray(vectors.detach().cpu() if isinstance(vectors, torch.Tensor) else vectors, dtype=np.float64)
    if a.ndim != 2 or v.ndim != 2 or a.shape[0] != v.shape[0]:
        raise InputError(f"features [N, F] and vectors [N, D] must have the same N, got {list(a.shape)} and {list(v.shape)}")
    if a.shape[0] < 2:
        raise InputError(f"fitting f_a->v needs at least 2 pairs, got {a.shape[0]}")
    if not (np.isfinite(a).all() and np.isfinite(v).all()):
        raise InputError("the audio features or driving vectors contain NaN or infinite values")
    if groups is not None and np.asarray(groups).shape != (a.shape[0],):
        raise InputError(f"groups must be [N] = [{a.shape[0]}], got {list(np.asarray(groups).shape)}")
    mean = a.mean(0)
    std = a.std(0)
    std = np.where(std > 1e-6 * max(1.0, float(np.abs(mean).max())), std, 1.0)  # constant features: leave as is
    xs = (a - mean) / std  # [N, F]
    if groups is not None:
        x, y = _demean(xs, np.asarray(groups)), _demean(v, np.asarray(groups))  # within-clip variation only
    else:
        x, y = np.concatenate([xs, np.ones((a.shape[0], 1))], 1), v  # [N, F+1] with the intercept
    if ridge > 0:
        reg = ridge * a.shape[0] * np.eye(x.shape[1])
        if groups is None:
            reg[-1, -1] = 0.0
        coef = np.linalg.solve(x.T @ x + reg, x.T @ y)  # [F(+1), D]
    else:
        coef = np.linalg.lstsq(x, y, rcond=None)[0]  # [F(+1), D]
    w = coef[: a.shape[1]]  # [F, D]
    bias = coef[-1] if groups is None else v.mean(0) - xs.mean(0) @ w
    amap = AudioMap(a.shape[1], v.shape[1], extractor)
    with torch.no_grad():
        amap.linear.weight.copy_(torch.from_numpy(w.T))
        amap.linear.bias.copy_(torch.from_numpy(bias))
        amap.feature_mean.copy_(torch.from_numpy(mean))
        amap.feature_std.copy_(torch.from_numpy(std))
    return amap.eval()


# ------------------------------------------------------------------------------------------------ formula
def _correction_paper(model, v_src, v, amap, a_drv, normalise):
    p_src = model.pose.vector_to_pose(v_src)
    p_audio = model.pose.vector_to_pose(amap(a_drv, normalise=normalise))
    return v + model.pose.pose_to_vector(p_audio) - model.pose.pose_to_vector(p_src).expand_as(v)


def _correction_keep(model, v_src, v, amap, a_drv, normalise):
    p_src = model.pose.vector_to_pose(v_src).expand(v.shape[0], 3)
    return model.pose.repose(v, p_src)


def _correction_none(model, v_src, v, amap, a_drv, normalise):
    return v


#: pose correction name -> fn(model, v_src, v_src + audio term, AudioMap, a_drv, normalise) -> v_drv
POSE_CORRECTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "paper": _correction_paper,
    "keep-source": _correction_keep,
    "none": _correction_none,
}


#: Largest scale of the audio term ``AudioDriveSettings.gain`` takes.
MAX_AUDIO_GAIN = 10.0


@dataclass
class AudioDriveSettings:
    """How audio moves the driving vector (see the module docstring and docs/controls.md).

    Attributes:
        normalise: apply f_a->v to standardised features (True, default) or raw ones (False, the paper's choice).
        pose_correction: a key of ``POSE_CORRECTIONS`` (ignored when the model has no pose head):
            ``"keep-source"`` (default), ``"paper"`` (the printed formula) or ``"none"``.
        gain: scale of the audio term ``f_a->v(a_drv) - f_a->v(a_src)`` (1 = the formula; 0 to ``MAX_AUDIO_GAIN``:
            far past it the vectors leave anything the decoder was trained on).
    """

    normalise: bool = True
    pose_correction: str = "keep-source"
    gain: float = 1.0

    def __post_init__(self) -> None:
        if self.pose_correction not in POSE_CORRECTIONS:
            raise ConfigError(f"unknown pose correction {self.pose_correction!r}; choose one of {', '.join(POSE_CORRECTIONS)}")
        if not (isinstance(self.gain, (int, float)) and 0.0 <= self.gain <= MAX_AUDIO_GAIN):  # (NaN too)
            raise ConfigError(f"the audio gain must be from 0 to {MAX_AUDIO_GAIN:g}, got {self.gain!r}")


def audio_vectors(model, v_src: torch.Tensor, a_drv: torch.Tensor, a_src: torch.Tensor,
                  settings: AudioDriveSettings | None = None, amap: AudioMap | None = None) -> torch.Tensor:
    """Driving vectors for audio features by the formula of section 4.2.

    Args:
        model: an ``X2Face`` with an audio head (``model.audio``); its pose head is used when present.
        v_src: float [1, D] driving vector of the source frame.
        a_drv: float [T, F] audio features of the frames to generate.
        a_src: float [F] or [1, F] audio feature of the source frame (silence for a photo).
        settings: ``AudioDriveSettings`` (default: the documented defaults).
        amap: the f_a->v to use (default ``model.audio``).

    Returns:
        float [T, D] driving vectors, on ``v_src``'s device and dtype.
    """
    s = settings or AudioDriveSettings()
    amap = model.audio if amap is None else amap
    if amap is None:
        raise WeightsError("these weights have no audio head; fit one with `python -m x2face fit-audio`")
    dev, dt = v_src.device, v_src.dtype
    a_drv = torch.as_tensor(a_drv).to(dev, amap.linear.weight.dtype)
    a_src = torch.as_tensor(a_src).to(dev, amap.linear.weight.dtype).reshape(1, -1)  # [F] -> [1, F]
    if a_drv.dim() != 2 or a_drv.shape[1] != amap.linear.in_features or a_src.shape[1] != amap.linear.in_features:
        raise InputError(f"audio features must be [T, {amap.linear.in_features}], got {list(a_drv.shape)} and {list(a_src.shape)}")
    v_src = v_src.reshape(1, -1).to(amap.linear.weight.dtype)  # [1, D]
    v = v_src + s.gain * amap.delta(a_drv, a_src, normalise=s.normalise)  # [T, D]
    if model.pose is not None:
        v = POSE_CORRECTIONS[s.pose_correction](model, v_src, v, amap, a_drv, s.normalise)
    return v.to(dev, dt)


# ------------------------------------------------------------------------------------------------ waveforms
def prepare_audio(audio, sample_rate: int | None = None, *, max_seconds: float | None = None,
                  seconds: float | None = None, start: float = 0.0) -> np.ndarray:
    """Any audio a user gives -> float32 [N] mono at 16 kHz in [-1, 1].

    Args:
        audio: a path (wav of any bit depth, mp3, m4a, webm/opus, flac, ogg or a video's sound track:
            read by ``x2face.media.read_audio``), or samples: float/int numpy or torch [N], [C, N] or
            [N, C] (C <= 8 channels, averaged); integer samples are scaled by their type's range.
        sample_rate: the rate of an array (required for arrays; ignored for files).
        max_seconds: refuse longer audio (default: ``x2face.media``'s limit, 10 minutes).
        seconds: keep only ``seconds`` seconds (longer files are then not refused).
        start: begin this many seconds into the audio.

    Returns:
        float32 [N] mono 16 kHz samples, clipped to [-1, 1].

    Raises:
        MediaError: unreadable or over-long files; InputError: arrays of the wrong shape, type or rate.
    """
    from ..media import DEFAULT_LIMITS, check_start, read_audio

    limit = float(max_seconds if max_seconds is not None else DEFAULT_LIMITS.max_seconds)
    if isinstance(audio, (str, os.PathLike)):
        wav, _ = read_audio(audio, sr=SAMPLE_RATE, mono=True, max_seconds=limit, seconds=seconds, start=start)
        return check_waveform(np.clip(wav, -1.0, 1.0))
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    if not isinstance(audio, np.ndarray):
        raise InputError(f"audio must be a file path or an array of samples, got {type(audio).__name__}")
    if sample_rate is None or isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or not 1000 <= int(sample_rate) <= 384_000:
        raise InputError(f"an audio array needs its sample rate (1000-384000 Hz), got {sample_rate!r}")
    x = audio
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    elif not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"audio samples must be numbers, got dtype {x.dtype}")
    if x.ndim == 2:
        if x.shape[0] <= 8 and x.shape[1] > x.shape[0]:
            x = x.mean(axis=0)  # [C, N] -> [N]
        elif x.shape[1] <= 8:
            x = x.mean(axis=1)  # [N, C] -> [N]
        else:
            raise InputError(f"audio must be [N], [C, N] or [N, C] with at most 8 channels, got {list(x.shape)}")
    elif x.ndim != 1:
        raise InputError(f"audio must be [N], [C, N] or [N, C], got shape {list(x.shape)}")
    x = np.nan_to_num(x.astype(np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    if x.shape[0] == 0:
        raise InputError("the audio is empty (no samples)")
    x = x[int(round(check_start(start, x.shape[0] / int(sample_rate), "the audio") * int(sample_rate))):]
    if seconds is not None:
        x = x[: max(1, int(round(seconds * int(sample_rate))))]
    if x.shape[0] / int(sample_rate) > limit + 1e-6:
        raise InputError(f"the audio is {x.shape[0] / int(sample_rate):.1f} s long; the limit is {limit:.0f} s")
    if int(sample_rate) != SAMPLE_RATE:
        import soxr

        x = np.asarray(soxr.resample(x, int(sample_rate), SAMPLE_RATE, quality="HQ"), dtype=np.float32)
    return check_waveform(np.clip(x, -1.0, 1.0))


# ------------------------------------------------------------------------------------------------ driving
def model_extractor(model, features: str | AudioFeatures | None = None, amap: AudioMap | None = None) -> AudioFeatures:
    """The feature extractor to drive ``model`` with: its audio head's own (default), or one given."""
    if isinstance(features, AudioFeatures):
        return features
    amap = model.audio if amap is None else amap
    if amap is None:
        raise WeightsError("these weights have no audio head; fit one with `python -m x2face fit-audio`")
    if amap.extractor is None:
        raise WeightsError("these weights' audio head does not name its audio features (config.audio_features); "
                           "refit it with `python -m x2face fit-audio`")
    if features not in (None, amap.extractor.name):
        raise WeightsError(f"the audio head was fitted on {amap.extractor.name!r} features, not {features!r}")
    return amap.extractor


def iter_audio_vectors(model, v_src: torch.Tensor, wav: np.ndarray, *, fps: float = 25.0,
                       num_frames: int | None = None, source_feature: np.ndarray | None = None,
                       settings: AudioDriveSettings | None = None, extractor: AudioFeatures | None = None,
                       chunk_frames: int = DEFAULT_CHUNK_FRAMES, amap: AudioMap | None = None) -> Iterator[torch.Tensor]:
    """Stream the driving vectors of an audio track in chunks (memory bounded by ``chunk_frames``).

    Args:
        model: ``X2Face`` with an audio head.
        v_src: float [1, D] driving vector of the source frame.
        wav: float32 [N] mono 16 kHz (``prepare_audio``).
        fps: frame rate of the video to make.
        num_frames: frames (default ``num_frames_for(N, fps)``).
        source_feature: float [F] audio feature of the source frame (default: silence).
        settings: ``AudioDriveSettings``.
        extractor: features to use (default the audio map's).
        amap: the f_a->v to use (default ``model.audio``).

    Yields:
        float [t, D] driving vectors, frame order, on ``v_src``'s device.
    """
    ex = model_extractor(model, extractor, amap)
    a_src = ex.silence() if source_feature is None else np.asarray(source_feature, dtype=np.float32)
    for feats in ex.iter_features(wav, fps, num_frames, chunk_frames):
        yield audio_vectors(model, v_src, torch.from_numpy(feats), torch.from_numpy(a_src), settings, amap)


@dataclass
class AudioDrive:
    """What ``drive_audio`` returns.

    Attributes:
        frames: iterator of uint8 [H, W, 3] RGB frames (what the pipeline's ``drive_vectors`` makes), ``fps`` per second.
        audio: float32 [N] mono 16 kHz samples the frames follow (mux them into the video).
        sample_rate: 16000.
        fps: frame rate.
        num_frames: how many frames ``frames`` yields (covers the audio).
        settings: the ``AudioDriveSettings`` used.
    """

    frames: Iterator[np.ndarray]
    audio: np.ndarray
    sample_rate: int
    fps: float
    num_frames: int
    settings: AudioDriveSettings = field(default_factory=AudioDriveSettings)

    @property
    def silent(self) -> bool:
        """The audio never rises above ``SILENT_PEAK`` (-60 dBFS): the face keeps the photo's mouth throughout."""
        return not float(np.abs(self.audio).max(initial=0.0)) >= SILENT_PEAK

    def note(self) -> str:
        """A line for the user when the result will not move (silent audio), else ""."""
        if not self.silent:
            return ""
        return "the recording is silent (peak below -60 dBFS), so the face keeps the photo's mouth"


#: peak amplitude (full scale 1) under which a recording counts as silent: -60 dBFS, below a quiet room's noise
SILENT_PEAK = 10 ** (-60 / 20)


def drive_audio(pipeline, audio, sample_rate: int | None = None, *, fps: float = 25.0,
                settings: AudioDriveSettings | None = None, source_audio=None, paste_back: bool = False,
                batch_size: int = 16, seconds: float | None = None, start: float = 0.0,
                chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> AudioDrive:
    """Make the pipeline's source face speak ``audio``.

    Args:
        pipeline: an ``X2FacePipeline`` with a source set (``set_source``) and a model with an audio head.
        audio: a file path (any rate, mono or stereo, wav/mp3/m4a/webm/...) or samples with ``sample_rate``.
        sample_rate: rate of an array (ignored for files).
        fps: frame rate of the result (25 as the paper).
        settings: ``AudioDriveSettings``.
        source_audio: the sound of the source frame (path or samples at ``sample_rate``; its middle
            0.2 s window is used); default: silence (a photo).
        paste_back: frames are the source photo with the face pasted in (else model-size crops).
        batch_size: frames per model call.
        seconds: use only ``seconds`` of the audio.
        start: begin this many seconds into the audio.
        chunk_frames: frames per processing chunk (memory bound: audio of any length streams).

    Returns:
        ``AudioDrive``: a lazy iterator over ``num_frames`` frames at ``fps``, and the 16 kHz audio.
        Silence is not an error: it gives the source face with its mouth as in the photo (unchanged
        unless the "paper" pose correction turns the head).
    """
    model = pipeline.model
    ex = model_extractor(model)
    wav = prepare_audio(audio, sample_rate, seconds=seconds, start=start)
    if wav.shape[0] < SAMPLE_RATE / fps:
        name = Path(os.fspath(audio)).name if isinstance(audio, (str, os.PathLike)) else "the audio"
        raise InputError(f"{name} holds {1000 * wav.shape[0] / SAMPLE_RATE:.0f} ms of sound"
                         f"{f' from {start:g} s' if start else ''}: less than one video frame ({1000 / fps:.0f} ms)")
    total = num_frames_for(wav.shape[0], fps)
    source_feature = None
    if source_audio is not None:
        src_wav = prepare_audio(source_audio, sample_rate)
        mid = num_frames_for(src_wav.shape[0], fps) // 2
        source_feature = ex.extract(src_wav, fps, mid + 1)[mid]
    settings = settings or AudioDriveSettings()
    v_src = pipeline.source_vector()

    def frames() -> Iterator[np.ndarray]:
        for vectors in iter_audio_vectors(model, v_src, wav, fps=fps, num_frames=total, source_feature=source_feature,
                                          settings=settings, extractor=ex, chunk_frames=chunk_frames):
            yield from pipeline.drive_vectors(vectors, paste_back=paste_back, batch_size=batch_size)

    return AudioDrive(frames=frames(), audio=wav, sample_rate=SAMPLE_RATE, fps=float(fps), num_frames=total,
                      settings=settings)


# ------------------------------------------------------------------------------------------------ evaluation
def drive_from_audio(model, sources: torch.Tensor, audio, sample_rate: int, fps: float, num_frames: int,
                     features: str, settings: AudioDriveSettings | None = None) -> torch.Tensor | None:
    """Audio-driven frames as tensors (what ``x2face.evaluate``'s ``audio_mouth_r`` measures).

    Args:
        model: ``X2Face`` (eval mode).
        sources: float [1, K, 3, S, S] in [0, 1]; the first frame is driven with itself.
        audio: float [N] mono samples at ``sample_rate``.
        fps, num_frames: the frames to make.
        features: ``"learned"`` (the model's audio head when its features are learned) or ``"mfcc"``
            (the model's head when it was fitted on MFCCs, else the baseline map ``fit-audio
            --features mfcc`` would fit, fitted here once and cached on the model object:
            ``x2face.control.fit.mfcc_baseline``).
        settings: ``AudioDriveSettings``.

    Returns:
        float [num_frames, 3, S, S] generated frames, or None when the model has no map for ``features``.
    """
    amap = getattr(model, "audio", None)
    head = amap if amap is not None and amap.extractor is not None else None
    if features == "learned":
        chosen = head if head is not None and head.extractor.learned else None
    elif features == "mfcc":
        if head is not None and head.extractor.name == "mfcc":
            chosen = head
        else:
            from .fit import mfcc_baseline

            chosen = mfcc_baseline(model)
    else:
        raise ConfigError(f"features must be 'learned' or 'mfcc', got {features!r}")
    if chosen is None:
        return None
    wav = prepare_audio(np.asarray(audio, dtype=np.float32), int(sample_rate))
    v_src = model.driving_vector(sources[:, 0])  # [1, D]
    vectors = torch.cat(list(iter_audio_vectors(model, v_src, wav, fps=fps, num_frames=num_frames,
                                                settings=settings, amap=chosen)))  # [T, D]
    embedded = model.embed(sources)  # [1, 3, S, S]
    return torch.cat([model.render(embedded, vectors[i:i + 32]) for i in range(0, len(vectors), 32)])


__all__ = ["AudioDrive", "AudioDriveSettings", "AudioMap", "FEATURES", "MAX_AUDIO_GAIN", "POSE_CORRECTIONS",
           "audio_vectors", "drive_audio", "drive_from_audio", "fit_audio_map", "iter_audio_vectors", "model_extractor",
           "prepare_audio"]
