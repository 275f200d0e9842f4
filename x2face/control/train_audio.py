"""``python -m x2face train-audio``: train the SyncNet-style audio features self-supervised, by synchronisation.

As SyncNet was trained (Chung & Zisserman 2016), the audio stream learns from nothing but videos
with sound: for a 5-frame crop of the lower face, the audio window centred on its middle frame must
match it better than windows of the same clip shifted by 3-15 frames (0.12-0.6 s) and than the
other clips' windows in the batch (a softmax over cosine similarities with a learned temperature).
What the mouth does is what the sound says, so the audio features end up describing the mouth:
what f_a->v needs.

Clips: videos of the synthetic world's train identities (their sound is made by the mouth; fast to
render) and, unless ``--real none``, the real train clips with sound in ``../shared/data/real``
(``x2face.control.fit.real_av_clips``; face crops cached in ``--cache``). Audio is augmented with a
random gain (c0 shifted). The result is ``OUT/audio_net.safetensors`` + ``audio_net.json``
(``x2face.control.audio_net.save_audio_net``), with the sync accuracy on synthetic val videos, and
``OUT/train.csv``. ``python -m x2face fit-audio --audio-net OUT`` then fits f_a->v on its features.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, InputError, WeightsError
from .audio_net import AUDIO_NETS, SyncNet, audio_net_config, load_syncnet_v2, save_audio_net
from .features import AudioFeatures, SyncNetFeatures, build_features, mfcc_windows
from .fit import AVClip, _real_dir, real_av_clips, synthetic_av_clips

#: lower half of a VoxCeleb-style face crop (and of a synthetic frame): rows, columns as fractions
LIP_ROWS, LIP_COLS = (0.50, 0.80), (0.20, 0.80)


@dataclass
class AudioTrainConfig:
    """Settings of ``train-audio`` (the architecture is ``AudioNetConfig``, saved with the weights).

    Attributes:
        net: audio network variant (``AUDIO_NETS``: ``syncnet`` or ``syncnet-small``).
        out_dim: feature size (256: the paper's FC7).
        steps, batch, lr: Adam steps, anchors per batch, learning rate.
        negatives: shifted windows of the same clip per anchor.
        min_shift, max_shift: their offsets in frames (either sign).
        videos, seconds, render_size: synthetic train clips, their length and render size.
        real_fraction: share of anchors from real clips (when there are any).
        val_videos: synthetic val clips for the sync accuracy.
        seed: seed of everything random.
    """

    net: str = "syncnet-small"
    out_dim: int = 256
    steps: int = 800
    batch: int = 32
    lr: float = 1e-3
    negatives: int = 4
    min_shift: int = 3
    max_shift: int = 15
    videos: int = 96
    seconds: float = 8.0
    render_size: int = 96
    real_fraction: float = 0.25
    val_videos: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 2 or self.negatives < 0 or self.videos < 1:
            raise ConfigError("steps >= 1, batch >= 2, negatives >= 0 and videos >= 1 are needed")
        if not 1 <= self.min_shift <= self.max_shift:
            raise ConfigError(f"need 1 <= min_shift <= max_shift, got {self.min_shift}, {self.max_shift}")
        if not 0 <= self.real_fraction <= 1:
            raise ConfigError(f"real_fraction must be in [0, 1], got {self.real_fraction}")


def lip_crops(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Lower-face crops: frames float [T, 3, S, S] in [0, 1] -> uint8 [T, 3, h, w] (``size`` = (h, w))."""
    s = frames.shape[-1]
    r0, r1 = int(round(LIP_ROWS[0] * s)), int(round(LIP_ROWS[1] * s))
    c0, c1 = int(round(LIP_COLS[0] * s)), int(round(LIP_COLS[1] * s))
    region = frames[:, :, r0:r1, c0:c1].float().cpu()
    out = F.interpolate(region, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return (out.clamp(0, 1) * 255 + 0.5).to(torch.uint8)


@dataclass
class SyncClip:
    """One clip ready for sync training: lip crops uint8 [T, 3, h, w], valid bool [T], windows float [T, 13, 20]."""

    lips: torch.Tensor
    valid: torch.Tensor
    windows: torch.Tensor
    name: str

    def anchors(self, frames: int) -> torch.Tensor:
        """Indices i whose lip window (i - frames//2 .. i + frames//2) is all valid: long [M]."""
        v = self.valid.float()[None, None]  # [1, 1, T]
        ok = F.max_pool1d(1 - v, frames, 1, frames // 2)[0, 0] < 0.5 if v.shape[-1] >= frames else torch.zeros(0, dtype=torch.bool)
        idx = torch.nonzero(ok[: v.shape[-1]]).flatten()
        half = frames // 2
        return idx[(idx >= half) & (idx < v.shape[-1] - half)]


def make_sync_clip(clip: AVClip, lip_size: tuple[int, int]) -> SyncClip:
    """AVClip -> SyncClip (lip crops and one MFCC window per frame)."""
    t = clip.frames.shape[0]
    return SyncClip(lips=lip_crops(clip.frames, lip_size), valid=clip.valid.clone(),
                    windows=mfcc_windows(clip.wav, clip.fps, 0, t), name=clip.name)


class SyncBatches:
    """Draws training batches (lip stacks, positive and shifted audio windows) from a pool of clips."""

    def __init__(self, clips: list[SyncClip], cfg: AudioTrainConfig, frames: int) -> None:
        self.clips = [c for c in clips if len(c.anchors(frames)) > 0]
        if not self.clips:
            raise InputError("no clip is long enough for sync training")
        self.cfg, self.frames = cfg, frames
        self.anchor_idx = [c.anchors(frames) for c in self.clips]
        sizes = torch.tensor([len(a) for a in self.anchor_idx], dtype=torch.float64)
        self.weights = sizes / sizes.sum()

    def draw(self, batch: int, g: torch.Generator, gain_db: float = 6.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (lips float [B, F, 3, h, w], audio float [B, 1 + K, 13, 20] (positive first), clip index [B])."""
        c = self.cfg
        half = self.frames // 2
        which = torch.multinomial(self.weights, batch, replacement=True, generator=g)
        lips, audio = [], []
        for ci in which.tolist():
            clip, anchors = self.clips[ci], self.anchor_idx[ci]
            i = int(anchors[torch.randint(0, len(anchors), (1,), generator=g)])
            t = clip.windows.shape[0]
            shifts = torch.randint(c.min_shift, c.max_shift + 1, (c.negatives,), generator=g)
            signs = torch.where(torch.rand(c.negatives, generator=g) < 0.5, -1, 1)
            js = (i + shifts * signs).clamp(0, t - 1)
            js = torch.where((js - i).abs() < c.min_shift, (i - shifts * signs).clamp(0, t - 1), js)  # flip at the ends
            lips.append(clip.lips[i - half:i + half + 1])
            audio.append(clip.windows[torch.cat([torch.tensor([i]), js])])
        lips_t = torch.stack(lips).float() / 255.0  # [B, F, 3, h, w]
        audio_t = torch.stack(audio).clone()  # [B, 1+K, 13, 20]
        gain = (torch.rand(batch, 1, generator=g) * 2 - 1) * gain_db  # dB, one per anchor
        audio_t[:, :, 0, :] += (2.0 * math.log(10.0) / 20.0 * gain)[:, :, None]  # c0 = log energy: + 2 ln(gain)
        return lips_t, audio_t, which


def sync_loss(net: SyncNet, lips: torch.Tensor, audio: torch.Tensor, log_scale: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax cross-entropy of each lip stack over its own positive window, its shifted windows and
    the other anchors' positives (cosine similarity x exp(log_scale)).

    Args:
        lips: float [B, F, 3, h, w]; audio: float [B, 1 + K, 13, 20] (positive first).

    Returns:
        (loss scalar, accuracy scalar: the positive scored highest).
    """
    b, n = audio.shape[:2]
    a = F.normalize(net.audio(audio.reshape(b * n, 1, *audio.shape[2:])), dim=1).reshape(b, n, -1)  # [B, 1+K, D]
    v = F.normalize(net.lip(lips), dim=1)  # [B, D]
    own = (a * v[:, None]).sum(-1)  # [B, 1+K]
    cross = v @ a[:, 0].T  # [B, B]: other anchors' positives
    scale = log_scale.exp().clamp(max=100.0)
    eye = torch.eye(b, dtype=torch.bool, device=v.device)
    logits = torch.cat([own * scale, (cross * scale).masked_fill(eye, float("-inf"))], 1)  # mask after scaling: finite grads
    target = torch.zeros(b, dtype=torch.long, device=v.device)
    loss = F.cross_entropy(logits, target)
    acc = (logits.argmax(1) == 0).float().mean()
    return loss, acc


@torch.no_grad()
def sync_accuracy(net: SyncNet, clips: list[SyncClip], frames: int, offsets: int = 15, per_clip: int = 24,
                  seed: int = 0, tolerance: int = 1) -> float:
    """Share of anchors whose best-matching audio window, among the windows shifted by -``offsets`` ..
    ``offsets`` frames, is within ``tolerance`` frames of the in-sync one (SyncNet's +-1 frame criterion)."""
    net.eval()
    g = torch.Generator().manual_seed(seed)
    half = frames // 2
    hits = total = 0
    p = next(net.parameters())
    for clip in clips:
        anchors = clip.anchors(frames)
        anchors = anchors[(anchors >= offsets) & (anchors < clip.windows.shape[0] - offsets)]
        if len(anchors) == 0:
            continue
        pick = anchors[torch.randperm(len(anchors), generator=g)[:per_clip]]
        lips = torch.stack([clip.lips[i - half:i + half + 1] for i in pick.tolist()]).float().div(255).to(p)
        v = F.normalize(net.lip(lips), dim=1)  # [M, D]
        idx = pick[:, None] + torch.arange(-offsets, offsets + 1)[None]  # [M, 2o+1]
        w = clip.windows[idx.flatten()].to(p)  # [M*(2o+1), 13, 20]
        a = F.normalize(net.audio(w[:, None]), dim=1).reshape(len(pick), 2 * offsets + 1, -1)  # [M, 2o+1, D]
        best = (a * v[:, None]).sum(-1).argmax(1)
        hits += int(((best - offsets).abs() <= tolerance).sum())
        total += len(pick)
    return hits / max(total, 1)


def feature_mouth_probe(extractors: dict[str, AudioFeatures], train: list[AVClip], val: list[AVClip]
                        ) -> dict[str, float]:
    """Within-clip Pearson r between the true mouth opening of ``val`` clips and a linear probe (ridge, fitted
    on ``train`` clips) from each extractor's features: how much of the mouth the sound features carry."""
    from .audio import _demean

    def stack(ex, clips):
        f = np.concatenate([ex.extract(c.wav, c.fps, c.frames.shape[0]) for c in clips]).astype(np.float64)
        m = np.concatenate([c.mouth.numpy() for c in clips]).astype(np.float64)[:, None]
        g = np.concatenate([np.full(c.frames.shape[0], i) for i, c in enumerate(clips)])
        return f, m, g

    out = {}
    for name, ex in extractors.items():
        (ft, mt, gt), (fv, mv, gv) = stack(ex, train), stack(ex, val)
        mu, sd = ft.mean(0), ft.std(0) + 1e-6
        xt, xv = _demean((ft - mu) / sd, gt), _demean((fv - mu) / sd, gv)
        w = np.linalg.solve(xt.T @ xt + 1e-2 * len(xt) * np.eye(xt.shape[1]), xt.T @ _demean(mt, gt))
        out[name] = float(np.corrcoef((xv @ w)[:, 0], _demean(mv, gv)[:, 0])[0, 1])
    return out


def build_pool(clips: Iterable[AVClip], lip_size: tuple[int, int], label: str) -> list[SyncClip]:
    pool = []
    t0 = time.perf_counter()
    for clip in clips:
        pool.append(make_sync_clip(clip, lip_size))
    print(f"  {label}: {len(pool)} clips, {sum(int(c.valid.sum()) for c in pool)} frames "
          f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return pool


def train_audio_net(cfg: AudioTrainConfig, out: Path, *, real_dir: Path | None = None, cache_dir: str = "runs/cache/audio",
                    device: torch.device = torch.device("cpu"), init: str | None = None,
                    log_every: int = 25) -> dict[str, Any]:
    """Train a ``SyncNet`` by synchronisation and save it to ``out``; returns the summary."""
    torch.manual_seed(cfg.seed)
    if init:
        stream = load_syncnet_v2(init)
        if stream.config.name == "custom":
            raise WeightsError(f"--init {init}: its widths are not those of a named audio network "
                               f"({', '.join(AUDIO_NETS)}), so they could not travel with x2face weights")
        net_cfg = dataclasses.replace(audio_net_config(stream.config.name), out_dim=stream.config.out_dim)
        net = SyncNet(net_cfg)
        net.audio.load_state_dict(stream.state_dict())
    else:
        net = SyncNet(audio_net_config(cfg.net, cfg.out_dim))
    net = net.to(device)
    lip_size = tuple(net.config.lip_size)
    frames = net.config.lip_frames
    print("building the clip pool:", file=sys.stderr, flush=True)
    synth = build_pool(synthetic_av_clips(cfg.videos, cfg.seconds, cfg.render_size, cfg.seed, "train"), lip_size,
                       "synthetic train")
    real = build_pool(real_av_clips(real_dir, 128, "train", cache_dir=cache_dir), lip_size, "real train") \
        if real_dir is not None else []
    val = build_pool(synthetic_av_clips(cfg.val_videos, cfg.seconds, cfg.render_size, cfg.seed, "val"), lip_size,
                     "synthetic val")
    sources = [(SyncBatches(synth, cfg, frames), 1.0 - (cfg.real_fraction if real else 0.0))]
    if real:
        sources.append((SyncBatches(real, cfg, frames), cfg.real_fraction))
    log_scale = torch.nn.Parameter(torch.tensor(math.log(10.0), device=device))
    opt = torch.optim.Adam(list(net.parameters()) + [log_scale], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    g = torch.Generator().manual_seed(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "train.csv").open("w", newline="")
    writer = csv.writer(log)
    writer.writerow(["step", "loss", "accuracy", "lr", "seconds"])
    t0 = time.perf_counter()
    run_loss = run_acc = 0.0
    net.train()
    try:
        for step in range(1, cfg.steps + 1):
            parts = []
            for batches, share in sources:
                n = int(round(cfg.batch * share))
                if n >= 2:
                    parts.append(batches.draw(n, g))
            lips = torch.cat([p[0] for p in parts]).to(device)
            audio = torch.cat([p[1] for p in parts]).to(device)
            loss, acc = sync_loss(net, lips, audio, log_scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            run_loss += float(loss.detach())
            run_acc += float(acc)
            if step % log_every == 0 or step == cfg.steps:
                k = log_every if step % log_every == 0 else step % log_every
                row = [step, run_loss / k, run_acc / k, sched.get_last_lr()[0], round(time.perf_counter() - t0, 1)]
                writer.writerow(row)
                log.flush()
                print(f"  step {step}/{cfg.steps}: loss {row[1]:.3f}, batch accuracy {row[2]:.3f} ({row[4]:.0f} s)",
                      file=sys.stderr, flush=True)
                run_loss = run_acc = 0.0
    finally:
        log.close()
    net.eval()
    acc_val = sync_accuracy(net.cpu(), val, frames, seed=cfg.seed)
    probe_train = list(synthetic_av_clips(16, cfg.seconds, 64, cfg.seed + 1, "train"))
    probe_val = list(synthetic_av_clips(cfg.val_videos, cfg.seconds, 64, cfg.seed, "val"))
    probe = feature_mouth_probe({net.config.name: SyncNetFeatures.from_stream(net.audio), "mfcc": build_features("mfcc")},
                                probe_train, probe_val)
    info = {"train": dataclasses.asdict(cfg), "val_sync_accuracy": acc_val,
            "val_sync_accuracy_exact": sync_accuracy(net, val, frames, seed=cfg.seed, tolerance=0),
            "val_feature_mouth_r": probe,
            "val_feature_mouth_note": "within-clip r between the true mouth opening of the synthetic val clips and a "
                                      "ridge probe from the features (fitted on 16 other train clips): the learned "
                                      "features and the MFCC baseline",
            "init": init or "", "clips": {"synthetic": len(synth), "real": len(real), "val": len(val)},
            "seconds": round(time.perf_counter() - t0, 1),
            "val_note": "share of synthetic val anchors whose best audio window among the 31 shifted by -15..15 "
                        "frames is within 1 frame of the in-sync one (exact: the in-sync one itself; chance 3/31, 1/31)"}
    save_audio_net(net, out, info)
    return info


def main(argv: list[str]) -> int:
    """``python -m x2face train-audio --out DIR``: see the module docstring."""
    from ..hub import pick_device

    d = AudioTrainConfig()
    p = argparse.ArgumentParser(prog="python -m x2face train-audio",
                                description="Train SyncNet-style audio features by audio-visual synchronisation.")
    p.add_argument("--out", required=True, help="output folder (audio_net.safetensors, audio_net.json, train.csv)")
    p.add_argument("--net", default=d.net, choices=["syncnet", "syncnet-small"], help=f"widths (default {d.net})")
    p.add_argument("--dim", type=int, default=d.out_dim, help=f"feature size (default {d.out_dim}, the paper's FC7)")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--videos", type=int, default=d.videos, help="synthetic train videos")
    p.add_argument("--seconds", type=float, default=d.seconds, help="seconds per synthetic video")
    p.add_argument("--val-videos", type=int, default=d.val_videos)
    p.add_argument("--real", default="auto", help="real clips folder (MANIFEST.tsv), 'auto' (../shared/data/real) or 'none'")
    p.add_argument("--real-fraction", type=float, default=d.real_fraction)
    p.add_argument("--cache", default="runs/cache/audio", help="cache of the real clips' face crops")
    p.add_argument("--init", default=None, help="start the audio stream from syncnet_v2-style weights (a state dict file)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--overwrite", action="store_true", help="write into an existing non-empty --out")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not args.overwrite)):
        raise InputError(f"--out {out} exists; pass --overwrite or choose another folder")
    if args.threads:
        from ..fast import check_threads

        torch.set_num_threads(check_threads(args.threads))
    cfg = AudioTrainConfig(net=args.net, out_dim=args.dim, steps=args.steps, batch=args.batch, lr=args.lr,
                           videos=args.videos, seconds=args.seconds, val_videos=args.val_videos,
                           real_fraction=args.real_fraction, seed=args.seed)
    info = train_audio_net(cfg, out, real_dir=_real_dir(args.real), cache_dir=args.cache,
                           device=pick_device(args.device), init=args.init)
    probe = ", ".join(f"{k} {v:.3f}" for k, v in info["val_feature_mouth_r"].items())
    print(f"wrote {out} (val sync accuracy within 1 frame {info['val_sync_accuracy']:.3f}; mouth probe r: {probe}; "
          f"{info['seconds']:.0f} s)")
    return 0


__all__ = ["AudioTrainConfig", "LIP_ROWS", "LIP_COLS", "SyncBatches", "SyncClip", "build_pool", "feature_mouth_probe",
           "lip_crops", "main",
           "make_sync_clip", "sync_accuracy", "sync_loss", "train_audio_net"]
