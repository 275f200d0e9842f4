"""Fit the controls of a trained X2Face: ``python -m x2face fit-pose`` and ``python -m x2face fit-audio``.

Both load a model, collect (label, driving vector) pairs by passing labelled frames through the
driving network, fit the linear maps of section 4 of the paper, and save a copy of the weights
with the maps inside (``save_pretrained``; ``config.pose_head`` / ``config.audio_head`` set) plus
``provenance.json`` saying what they were fitted on. The input weights are never overwritten unless
``--out`` names the same folder.

* Pose pairs: frames of the synthetic world's train identities with their true (yaw, pitch, roll),
  and, when face-alignment and its weights are on disk (x2face never downloads them), face crops of
  the real train clips with the pose of its 3-D landmarks.
* Audio pairs: synthetic train videos (the world's sound is made by the mouth) and, unless
  ``--real none``, the real train clips that have a sound track (face crops at 25 fps, each with the
  0.2 s of sound centred on it), so that real voices give driving vectors of the size synthetic ones do.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from ..errors import ConfigError, InputError, MediaError, WeightsError
from .audio import AudioMap, fit_audio_map
from .features import AudioFeatures, SyncNetFeatures, build_features, num_frames_for
from .pose import POSE_NAMES, PoseMaps, fit_pose_maps, pose_errors

#: default sizes of the fits (what ``fit-pose``/``fit-audio`` use without options)
POSE_FRAMES = 4000
POSE_VAL_FRAMES = 1000
AUDIO_VIDEOS = 32
AUDIO_SECONDS = 8.0
AUDIO_VAL_VIDEOS = 8
FPS = 25.0


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ model surgery
def with_heads(model, *, pose: PoseMaps | None = None, audio: AudioMap | None = None):
    """A copy of ``model`` with a pose head and/or an audio head set (the config updated to match).

    Args:
        model: an ``X2Face``.
        pose: fitted ``PoseMaps`` (replaces any pose head).
        audio: fitted ``AudioMap`` with its extractor (replaces any audio head); the config records
            its feature size and extractor name.

    Returns:
        a new ``X2Face`` (eval mode, on ``model``'s device and dtype) whose state is ``model``'s plus the heads.
    """
    from ..model import X2Face

    cfg = dataclasses.replace(model.config)
    if pose is not None:
        cfg.pose_head = True
    if audio is not None:
        if audio.extractor is None:
            raise ConfigError("the audio map does not name its features; fit it with an extractor")
        cfg.audio_head = True
        cfg.audio_feature_dim = audio.linear.in_features
        cfg.audio_features = audio.extractor.name
    p = next(model.parameters())
    out = X2Face(cfg)
    state = {k: v for k, v in model.state_dict().items()
             if not (pose is not None and k.startswith("pose.")) and not (audio is not None and k.startswith("audio."))}
    if pose is not None:
        state.update({f"pose.{k}": v for k, v in pose.state_dict().items()})
    if audio is not None:
        state.update({f"audio.{k}": v for k, v in audio.state_dict().items()})
    out.load_state_dict(state)
    out.check_inputs = model.check_inputs
    return out.to(p.device, p.dtype).eval()


def _check_out(weights: str, out: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse to write over anything but an explicitly named input folder or with --overwrite."""
    from ..hub import resolve

    out = Path(out).expanduser()
    where, _ = resolve(weights)
    same = out.exists() and Path(where).exists() and os.path.samefile(out, where)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not same and not overwrite:
        raise InputError(f"--out {out} exists and is not empty; pass --overwrite or choose another folder "
                         f"(the input weights are only replaced when --out names their folder)")
    return out


def save_with_provenance(model, out: Path, weights: str, section: str, info: dict[str, Any], command: str = "") -> None:
    """``save_pretrained`` + ``provenance.json`` (the input's provenance, with ``section`` added)."""
    from ..hub import read_provenance, write_provenance

    try:
        prov = read_provenance(weights)
    except WeightsError:
        prov = {}
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    prov = dict(prov)
    prov[section] = {**info, "from_weights": str(weights), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                     "command": command}
    write_provenance(out, prov)


@torch.inference_mode()
def driving_vectors(model, frames: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """frames float [N, 3, S, S] in [0, 1] (any device) -> driving vectors float32 [N, D] on the CPU."""
    p = next(model.parameters())
    out = [model.driving_vector(frames[i:i + batch].to(p.device, p.dtype)).float().cpu()
           for i in range(0, frames.shape[0], batch)]
    return torch.cat(out) if out else torch.zeros(0, model.config.vector_dim)


# ------------------------------------------------------------------------------------------------ pose data
def synthetic_pose_frames(num: int, image_size: int, seed: int, split: str = "train",
                          device: str | torch.device = "cpu", batch: int = 64,
                          identities: int = 512) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Frames of random identities of ``split`` at random times of random videos, with their poses.

    The identities are ``identities`` distinct seeds of ``split`` (each frame picks one), few enough for
    the world's texture cache to hold them all.

    Yields:
        (frames float [b, 3, S, S] in [0, 1] on ``device``, poses float [b, 3] degrees on the CPU).
    """
    from ..data.synthetic import SPLITS, Motion, SyntheticWorld, mix_seeds

    world = SyntheticWorld(image_size, device=device, cache_size=max(1024, identities))
    g = torch.Generator().manual_seed(mix_seeds(seed, 0x9057, *split.encode()))
    split_seeds = SPLITS[split]
    pool = [split_seeds[mix_seeds(seed, 0x9058, i) % len(split_seeds)] for i in range(max(1, identities))]
    for start in range(0, num, batch):
        b = min(batch, num - start)
        ids = [pool[int(i)] for i in torch.randint(0, len(pool), (b,), generator=g)]
        params = Motion.draw(b, g).at(torch.rand(b, 1, generator=g) * 10.0)  # one frame per video
        yield world.render(ids, params), params.pose.float()


def real_pose_frames(real_dir: str | os.PathLike, image_size: int, max_frames: int = 2000, fps: float = 2.0,
                     detector=None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Face crops of the real train clips and photos with the head pose of face-alignment's 3-D landmarks.

    Yields nothing when face-alignment or its 3-D weights are not on disk (checked, never downloaded).

    Args:
        detector: a ``x2face.faces.FaceDetector`` whose detections carry a pose (default: face-alignment
            with 3-D landmarks, when available).

    Yields:
        (crops float [b, 3, S, S] in [0, 1], poses float [b, 3] degrees).
    """
    from ..faces import FaceCropper, face_alignment_available, face_alignment_weights
    from ..media import iter_video_frames, read_image

    if detector is None:
        weights = face_alignment_weights()
        if not face_alignment_available() or not (weights.get("3d") and weights.get("depth")):
            return
        detector = "face-alignment"
    rows = _manifest_rows(real_dir)
    cropper = FaceCropper(image_size=image_size, backend=detector, detect_every=1)
    got = 0
    for row in rows:
        if row.get("split") != "train" or got >= max_frames:
            continue
        path = Path(real_dir) / row["file"]
        crops, poses = [], []
        try:
            if row.get("kind") == "video":
                items = cropper.track(iter_video_frames(path, seconds=30.0, fps=fps))
            elif row.get("kind") == "photo":
                items = [cropper.crop_image(read_image(path), path.name)]
            else:
                continue
            for item in items:
                if item.found and item.crop is not None and item.pose is not None:
                    crops.append(item.crop)
                    poses.append(item.pose)
        except MediaError:  # includes NoFaceError: photos of cats and cartoons are skipped
            continue
        if crops:
            x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0  # [b, S, S, 3] -> [b, 3, S, S]
            got += len(crops)
            yield x, torch.tensor(poses, dtype=torch.float32)


def _manifest_rows(real_dir: str | os.PathLike) -> list[dict[str, str]]:
    import csv

    manifest = Path(real_dir) / "MANIFEST.tsv"
    if "heldout" in Path(os.path.abspath(real_dir)).parts:
        raise InputError(f"{real_dir} is held-out evaluation data; x2face never fits on it")
    if not manifest.is_file():
        raise InputError(f"{real_dir} has no MANIFEST.tsv")
    with manifest.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def collect_pose_pairs(model, num: int, seed: int, split: str = "train", real_dir: str | os.PathLike | None = None,
                       device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor, dict[str, int]]:
    """(driving vectors [N, D], poses [N, 3] degrees, counts by source) for fitting the pose maps."""
    vs, ps = [], []
    counts = {"synthetic": 0, "real": 0}
    for frames, poses in synthetic_pose_frames(num, model.config.image_size, seed, split, device):
        vs.append(driving_vectors(model, frames))
        ps.append(poses)
        counts["synthetic"] += len(poses)
    if real_dir is not None:
        for frames, poses in real_pose_frames(real_dir, model.config.image_size):
            vs.append(driving_vectors(model, frames))
            ps.append(poses)
            counts["real"] += len(poses)
    return torch.cat(vs), torch.cat(ps), counts


def fit_pose_head(model, num: int = POSE_FRAMES, val: int = POSE_VAL_FRAMES, seed: int = 0,
                  real_dir: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
    """Fit the pose maps of ``model`` on synthetic (and real) frames -> (model with pose head, report dict)."""
    v, p, counts = collect_pose_pairs(model, num, seed, "train", real_dir, device)
    maps = fit_pose_maps(v, p)
    report: dict[str, Any] = {"frames": counts, "train_mae_deg": pose_errors(maps, v, p)}
    if val > 0:
        vv, pv, _ = collect_pose_pairs(model, val, seed, "val", None, device)
        report["val_mae_deg"] = pose_errors(maps, vv, pv)
        report["val_frames"] = len(pv)
    report["f_pv"] = "least squares on f_v->p's poses of the same vectors (BatchNorm holds their statistics)"
    return with_heads(model, pose=maps), report


# ------------------------------------------------------------------------------------------------ audio data
@dataclass
class AVClip:
    """One clip with sound for fitting or training audio features.

    Attributes:
        frames: float [T, 3, S, S] in [0, 1] frames at ``fps`` (frame i at i / fps s).
        valid: bool [T], frames where a face was found (all True for synthetic clips).
        wav: float32 [N] mono 16 kHz, starting at frame 0's time.
        fps: frame rate.
        name: where it came from.
        mouth: float [T] true mouth opening (synthetic clips), else None.
    """

    frames: torch.Tensor
    valid: torch.Tensor
    wav: np.ndarray
    fps: float
    name: str
    mouth: torch.Tensor | None = None


def synthetic_av_clips(num: int, seconds: float, image_size: int, seed: int, split: str = "train",
                       device: str | torch.device = "cpu") -> Iterator[AVClip]:
    """``num`` synthetic videos of distinct identities of ``split``, ``seconds`` long at 25 fps, with sound."""
    from ..data.synthetic import SPLITS, mix_seeds, sample_video

    seeds = SPLITS[split]
    frames = max(1, int(round(seconds * FPS)))
    for i in range(num):
        ident = seeds[mix_seeds(seed, 0xA0D10, i) % len(seeds)]
        video = sample_video(ident, mix_seeds(seed, 0xA0D11, i) % 1_000_000, frames, image_size, fps=FPS, device=device)
        yield AVClip(frames=video.frames, valid=torch.ones(frames, dtype=torch.bool), wav=video.audio.numpy(),
                     fps=FPS, name=f"synthetic:{ident}", mouth=video.params.mouth)


def real_av_clip(path: str | os.PathLike, image_size: int, fps: float = FPS, max_seconds: float = 30.0,
                 cache_dir: str | os.PathLike | None = None) -> AVClip | None:
    """A real clip's face crops at ``fps`` (VoxCeleb-style 1.6x, tracked) and its sound; None without sound or face.

    Results are cached in ``cache_dir`` (``.npz`` keyed by the file, its size and time and the settings).
    """
    from ..faces import FaceCropper
    from ..media import iter_video_frames, read_audio

    path = Path(path)
    if "heldout" in Path(os.path.abspath(path)).parts:
        raise InputError(f"{path} is held-out evaluation data; x2face never fits on it")
    cache = None
    if cache_dir is not None:
        st = path.stat()
        key = hashlib.sha1(json.dumps([os.path.abspath(path), st.st_size, st.st_mtime_ns, image_size, fps,
                                       max_seconds, 1]).encode()).hexdigest()[:20]
        cache = Path(cache_dir) / f"av-{key}.npz"
        if cache.is_file():
            with np.load(cache) as z:
                crops, valid, wav = z["crops"], z["valid"], z["wav"]
            return _av_from_arrays(crops, valid, wav, fps, str(path)) if crops.shape[0] else None
    try:
        wav, _ = read_audio(path, sr=16000, mono=True, seconds=max_seconds)
    except MediaError:
        wav = np.zeros(0, np.float32)
    crops = np.zeros((0, image_size, image_size, 3), np.uint8)
    valid = np.zeros(0, bool)
    if wav.shape[0] >= 16000 and np.abs(wav).max() > 1e-3:
        cropper = FaceCropper(image_size=image_size, detect_every=5)
        items = list(cropper.track(iter_video_frames(path, seconds=max_seconds, fps=fps)))
        n = min(len(items), num_frames_for(wav.shape[0], fps))
        if n and any(it.found for it in items[:n]):
            blank = np.zeros((image_size, image_size, 3), np.uint8)
            crops = np.stack([it.crop if it.crop is not None else blank for it in items[:n]])
            valid = np.array([bool(it.found and it.crop is not None) for it in items[:n]])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + f".tmp{os.getpid()}.npz")
        np.savez(tmp, crops=crops, valid=valid, wav=wav.astype(np.float32))
        os.replace(tmp, cache)
    return _av_from_arrays(crops, valid, wav, fps, str(path)) if crops.shape[0] else None


def _av_from_arrays(crops: np.ndarray, valid: np.ndarray, wav: np.ndarray, fps: float, name: str) -> AVClip:
    frames = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0  # [T, S, S, 3] -> [T, 3, S, S]
    return AVClip(frames=frames, valid=torch.from_numpy(valid.astype(bool)), wav=wav.astype(np.float32), fps=fps, name=name)


def real_av_clips(real_dir: str | os.PathLike, image_size: int, split: str = "train", fps: float = FPS,
                  cache_dir: str | os.PathLike | None = None) -> Iterator[AVClip]:
    """The clips of ``split`` in ``real_dir/MANIFEST.tsv`` that have sound and a face (see ``real_av_clip``)."""
    for row in _manifest_rows(real_dir):
        if row.get("kind") != "video" or row.get("split") != split or row.get("audio") == "false":
            continue
        clip = real_av_clip(Path(real_dir) / row["file"], image_size, fps, cache_dir=cache_dir)
        if clip is not None:
            yield clip


@dataclass
class AudioPairs:
    """(audio feature, driving vector) pairs of every valid frame of some clips (``collect_audio_pairs``).

    Attributes:
        features: {extractor name: float32 [N, F]}.
        vectors: float32 [N, D].
        groups: int64 [N], the clip of each pair.
        mouth: float32 [N], the true mouth opening (synthetic clips; NaN for real ones).
        counts: {"clips": ..., "frames": ...}.
    """

    features: dict[str, np.ndarray]
    vectors: np.ndarray
    groups: np.ndarray
    mouth: np.ndarray
    counts: dict[str, int]


def collect_audio_pairs(model, extractors: dict[str, AudioFeatures], clips: Iterable[AVClip]) -> AudioPairs:
    """Audio features (per extractor) and driving vectors of every valid frame of ``clips``."""
    feats: dict[str, list[np.ndarray]] = {k: [] for k in extractors}
    vecs: list[np.ndarray] = []
    groups: list[np.ndarray] = []
    mouth: list[np.ndarray] = []
    counts = {"clips": 0, "frames": 0}
    for clip in clips:
        keep = clip.valid.numpy()
        if not keep.any():
            continue
        t = clip.frames.shape[0]
        vecs.append(driving_vectors(model, clip.frames[torch.from_numpy(keep)]).numpy())
        for name, ex in extractors.items():
            feats[name].append(ex.extract(clip.wav, clip.fps, t)[keep])
        groups.append(np.full(int(keep.sum()), counts["clips"], np.int64))
        mouth.append(clip.mouth.numpy()[keep] if clip.mouth is not None else np.full(int(keep.sum()), np.nan))
        counts["clips"] += 1
        counts["frames"] += int(keep.sum())
    if not vecs:
        raise InputError("no (audio, frame) pairs to fit on")
    return AudioPairs({k: np.concatenate(v) for k, v in feats.items()}, np.concatenate(vecs), np.concatenate(groups),
                      np.concatenate(mouth).astype(np.float32), counts)


def within_clip_r2(amap: AudioMap, feats: np.ndarray, vecs: np.ndarray, groups: np.ndarray) -> float:
    """How much of the driving vectors' change within each clip the map explains (R^2 after removing
    each clip's mean from the vectors and the predictions: what driving by differences relies on)."""
    from .audio import _demean

    with torch.no_grad():
        pred = amap(torch.from_numpy(feats).float()).double().numpy()
    v, p = _demean(vecs.astype(np.float64), groups), _demean(pred, groups)
    return float(1.0 - ((v - p) ** 2).sum() / max(float((v**2).sum()), 1e-12))


def mouth_probe(amap: AudioMap, train: AudioPairs, val: AudioPairs, name: str = "f") -> dict[str, float]:
    """How much the driving vectors say about the mouth, and how much of it the sound recovers.

    A linear probe from driving vector to the true mouth opening is fitted on ``train``'s synthetic
    clips (within each clip) and applied, on ``val``'s synthetic clips, to the frames' own vectors
    (``vectors_r``: the most any audio map could carry) and to f_a->v's vectors (``audio_r``); both
    are within-clip Pearson r with the true opening.
    """
    from .audio import _demean

    def usable(pairs: AudioPairs) -> np.ndarray:
        return np.isfinite(pairs.mouth)

    t, v = usable(train), usable(val)
    if t.sum() < 10 or v.sum() < 10:
        return {}
    vt = _demean(train.vectors[t].astype(np.float64), train.groups[t])
    mt = _demean(train.mouth[t, None].astype(np.float64), train.groups[t])[:, 0]
    w = np.linalg.solve(vt.T @ vt + 1e-6 * np.trace(vt.T @ vt) / vt.shape[1] * np.eye(vt.shape[1]), vt.T @ mt)  # [D]
    with torch.no_grad():
        pred = amap(torch.from_numpy(val.features[name][v]).float()).double().numpy()
    mv = _demean(val.mouth[v, None].astype(np.float64), val.groups[v])[:, 0]
    own = _demean(val.vectors[v].astype(np.float64), val.groups[v]) @ w
    heard = _demean(pred, val.groups[v]) @ w

    def r(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a, b)[0, 1]) if a.std() > 1e-12 and b.std() > 1e-12 else 0.0

    return {"vectors_r": r(own, mv), "audio_r": r(heard, mv)}


def load_extractor(spec: str) -> AudioFeatures:
    """``--features``/``--audio-net`` -> an extractor: a registry name (``mfcc``), a ``train-audio``
    folder, or a syncnet_v2-style ``.model``/``.pth`` state dict."""
    from .audio_net import load_audio_net, load_syncnet_v2

    if os.path.isdir(spec):
        return SyncNetFeatures.from_stream(load_audio_net(spec).audio)
    if os.path.isfile(spec):
        return SyncNetFeatures.from_stream(load_syncnet_v2(spec))
    if spec == "mfcc":
        return build_features("mfcc")
    raise InputError(f"{spec!r} is neither 'mfcc', a train-audio folder nor a syncnet_v2 weights file "
                     f"(learned features need trained weights: run `python -m x2face train-audio` first)")


def fit_audio_head(model, extractor: AudioFeatures, *, videos: int = AUDIO_VIDEOS, seconds: float = AUDIO_SECONDS,
                   val_videos: int = AUDIO_VAL_VIDEOS, seed: int = 0, real_dir: str | os.PathLike | None = None,
                   cache_dir: str | os.PathLike | None = None, ridge: float = 0.0, within_clip: bool = True,
                   device: str | torch.device = "cpu") -> tuple[Any, dict[str, Any]]:
    """Fit f_a->v for ``extractor`` on synthetic (and real) clips -> (model with audio head, report dict).

    ``within_clip``: fit on the pairs' change within each clip (``fit_audio_map(groups=...)``)."""
    size = model.config.image_size
    clips: Iterable[AVClip] = synthetic_av_clips(videos, seconds, size, seed, "train", device)
    if real_dir is not None:
        clips = _chain(clips, real_av_clips(real_dir, size, "train", cache_dir=cache_dir))
    pairs = collect_audio_pairs(model, {"f": extractor}, clips)
    amap = fit_audio_map(pairs.features["f"], pairs.vectors, ridge=ridge, groups=pairs.groups if within_clip else None,
                         extractor=extractor.name)
    if extractor.learned:
        amap.extractor.load_state_dict(extractor.state_dict())
    report: dict[str, Any] = {"features": extractor.name, "feature_dim": extractor.dim, "pairs": pairs.counts,
                              "within_clip": within_clip, "ridge": ridge,
                              "train_r2": within_clip_r2(amap, pairs.features["f"], pairs.vectors, pairs.groups),
                              "r2_note": "share of the driving vectors' change within a clip that the map explains"}
    if val_videos > 0:
        val = collect_audio_pairs(model, {"f": extractor},
                                  synthetic_av_clips(val_videos, seconds, size, seed, "val", device))
        report["val_r2"] = within_clip_r2(amap, val.features["f"], val.vectors, val.groups)
        report["val_pairs"] = val.counts
        report["val_mouth_probe"] = mouth_probe(amap, pairs, val)
        report["val_mouth_probe_note"] = (
            "within-clip r with the true mouth opening of a linear probe (vector -> mouth, fitted on the train "
            "clips) applied to the val frames' own driving vectors (vectors_r: what the model's vectors say "
            "about the mouth, the most any audio map can carry) and to f_a->v's vectors (audio_r)")
    return with_heads(model, audio=amap), report


def mfcc_baseline(model, videos: int = AUDIO_VIDEOS, seconds: float = AUDIO_SECONDS, seed: int = 0) -> AudioMap:
    """The MFCC baseline f_a->v of ``model``: what ``fit-audio --features mfcc`` fits with the same settings
    (synthetic train clips only), fitted once and cached on the model object (not in its weights)."""
    cache = model.__dict__.setdefault("_x2face_mfcc_baselines", {})
    key = (videos, float(seconds), seed)
    if key not in cache:
        p = next(model.parameters())
        ex = build_features("mfcc")
        with torch.inference_mode(False):
            pairs = collect_audio_pairs(model, {"mfcc": ex}, synthetic_av_clips(videos, seconds, model.config.image_size,
                                                                                seed, "train", p.device))
            cache[key] = fit_audio_map(pairs.features["mfcc"], pairs.vectors, groups=pairs.groups,
                                       extractor="mfcc").to(p.device, p.dtype)
    return cache[key]


def _chain(*its: Iterable[AVClip]) -> Iterator[AVClip]:
    for it in its:
        yield from it


# ------------------------------------------------------------------------------------------------ CLI
def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="the X2Face weights: folder, Hub repo id or 'demo'")
    p.add_argument("--out", required=True, help="folder for the weights with the fitted maps (never the input's, "
                                                "unless named explicitly)")
    p.add_argument("--overwrite", action="store_true", help="replace the contents of an existing --out folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic frames (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")


def _setup(args) -> tuple[Any, torch.device, Path]:
    from ..hub import load_model, pick_device

    if args.threads:
        from ..fast import check_threads

        torch.set_num_threads(check_threads(args.threads))
    out = _check_out(args.weights, args.out, args.overwrite)
    device = pick_device(args.device)
    model = load_model(args.weights, device=device)
    return model, device, out


def _real_dir(value: str | None) -> Path | None:
    if value in (None, "", "none"):
        return None
    if value == "auto":  # the shared folder beside the project (X2FACE_SHARED overrides), when it is there
        from ..hub import REPO_ROOT

        d = Path(os.environ.get("X2FACE_SHARED", REPO_ROOT.parent / "shared")) / "data" / "real"
        return d if (d / "MANIFEST.tsv").is_file() else None
    d = Path(value)
    if not (d / "MANIFEST.tsv").is_file():
        raise InputError(f"--real {value}: no MANIFEST.tsv there")
    return d


def main_fit_pose(argv: list[str]) -> int:
    """``python -m x2face fit-pose --weights W --out OUT``: fit f_v->p and f_p->v (section 4.1)."""
    p = argparse.ArgumentParser(prog="python -m x2face fit-pose",
                                description="Fit the pose maps f_v->p (L1) and f_p->v of a trained model on "
                                            "pose-labelled frames and save a copy of the weights with them.")
    _common(p)
    p.add_argument("--frames", type=int, default=POSE_FRAMES, help=f"synthetic train frames (default {POSE_FRAMES})")
    p.add_argument("--val-frames", type=int, default=POSE_VAL_FRAMES, help="synthetic val frames to report the error on")
    p.add_argument("--real", default="auto", help="real clips folder (MANIFEST.tsv) whose train faces are used when "
                                                   "face-alignment's 3-D weights are on disk; 'none' to skip (default auto)")
    args = p.parse_args(argv)
    if args.frames < 16:
        raise InputError("--frames must be at least 16")
    model, device, out = _setup(args)
    t0 = time.perf_counter()
    real = _real_dir(args.real)
    fitted, report = fit_pose_head(model, args.frames, args.val_frames, args.seed, real, device)
    if real is not None and report["frames"]["real"] == 0:
        report["real_note"] = "no real frames: face-alignment or its 3-D weights are not on disk"
    report["seconds"] = round(time.perf_counter() - t0, 1)
    save_with_provenance(fitted, out, args.weights, "pose_head", report, "python -m x2face fit-pose " + " ".join(argv))
    _log(json.dumps(report, indent=2))
    print(f"wrote {out} (pose head; val MAE "
          + ", ".join(f"{k} {report.get('val_mae_deg', report['train_mae_deg'])[k]:.2f}" for k in POSE_NAMES) + " deg)")
    return 0


def main_fit_audio(argv: list[str]) -> int:
    """``python -m x2face fit-audio --weights W --out OUT (--audio-net DIR | --features mfcc)``: fit f_a->v (section 4.2)."""
    p = argparse.ArgumentParser(prog="python -m x2face fit-audio",
                                description="Fit f_a->v (least squares from audio features to driving vectors) on "
                                            "(audio, frame) pairs and save a copy of the weights with it.")
    _common(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--audio-net", help="learned features: a `train-audio` folder or a syncnet_v2-style weights file")
    src.add_argument("--features", choices=["mfcc"], help="the MFCC baseline features")
    p.add_argument("--videos", type=int, default=AUDIO_VIDEOS, help=f"synthetic train videos (default {AUDIO_VIDEOS})")
    p.add_argument("--seconds", type=float, default=AUDIO_SECONDS, help=f"seconds per video (default {AUDIO_SECONDS:g})")
    p.add_argument("--val-videos", type=int, default=AUDIO_VAL_VIDEOS, help="synthetic val videos to report R^2 on")
    p.add_argument("--real", default="auto", help="also fit on the real train clips with sound in this folder "
                                                   "(MANIFEST.tsv); 'auto' (default): ../shared/data/real when "
                                                   "present; 'none': synthetic clips only")
    p.add_argument("--cache", default="runs/cache/audio", help="cache of the real clips' face crops")
    p.add_argument("--ridge", type=float, default=0.0, help="L2 penalty relative to N (default 0: OLS as the paper)")
    p.add_argument("--pooled", action="store_true", help="fit on the pairs as they are instead of their change "
                                                         "within each clip (one intercept for all clips)")
    args = p.parse_args(argv)
    if args.videos < 1 or args.seconds <= 0:
        raise InputError("--videos must be >= 1 and --seconds > 0")
    extractor = load_extractor(args.audio_net or args.features)
    model, device, out = _setup(args)
    extractor = extractor.to(device)
    t0 = time.perf_counter()
    fitted, report = fit_audio_head(model, extractor, videos=args.videos, seconds=args.seconds,
                                    val_videos=args.val_videos, seed=args.seed, real_dir=_real_dir(args.real),
                                    cache_dir=args.cache, ridge=args.ridge, within_clip=not args.pooled,
                                    device=device)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    report["audio_net"] = args.audio_net or ""
    save_with_provenance(fitted, out, args.weights, "audio_head", report, "python -m x2face fit-audio " + " ".join(argv))
    _log(json.dumps(report, indent=2))
    probe = report.get("val_mouth_probe") or {}
    print(f"wrote {out} (audio head on {extractor.name} features; val within-clip R^2 {report.get('val_r2', float('nan')):.3f}; "
          f"mouth probe r: vectors {probe.get('vectors_r', float('nan')):.3f}, from audio {probe.get('audio_r', float('nan')):.3f})")
    return 0


__all__ = ["AVClip", "AudioPairs", "collect_audio_pairs", "collect_pose_pairs", "driving_vectors", "fit_audio_head", "fit_pose_head",
           "load_extractor", "main_fit_audio", "main_fit_pose", "mfcc_baseline", "mouth_probe", "real_av_clip", "real_av_clips", "real_pose_frames",
           "synthetic_av_clips", "synthetic_pose_frames", "with_heads", "within_clip_r2"]
