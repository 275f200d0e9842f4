"""``python -m x2face evaluate``: every quality claim of X2Face, measured on the synthetic world and real clips.

The synthetic world (``x2face.data.synthetic``) knows the truth for every control: the frame a
driving frame should produce, the pose, the mouth, the face texture. This module measures a model
against it and writes ``report.json``, ``report.md`` and a few figures:

==========================  ==========================================================================
key                         what
==========================  ==========================================================================
``self_l1``                 {"1", "3"}: L1 of self-reenactment (sources and driving frame from one video
                            of a test identity) with 1 and 3 source frames (the paper's Table 1)
``source_baseline_l1``      L1 of returning the (first) source frame instead
``pose_mae_deg``            {"yaw", "pitch", "roll"}: a linear (ridge) regressor from the driving vector,
                            fitted on train identities, tested on test identities (Table 2)
``pose_mae_supervised_deg`` the same for a CNN of the driving encoder's size trained on pose directly
``cross_l1``                cross-identity reenactment vs the render of the source identity with the
                            driving frame's pose and expression
``shape_leakage``           how far the generated head's width/height follow the driving identity's
                            shape (0 = not at all, 1 = fully)
``cross_relative_l1``       ``cross_l1`` with relative motion (``pipeline.RelativeMotion``): the source moved
                            by the driving vector's change from a reference frame of the driving identity
                            in the source frame's pose and expression (the same right answer)
``shape_leakage_relative``  ``shape_leakage`` with relative motion
``pose_driven_l1``          generation from a head pose (|yaw| >= 20 deg) vs the ground truth render
``pose_driven_baseline_l1`` returning the source frame instead
``audio_mouth_r``           {"mfcc", "learned"}: correlation of the mouth opening of audio-driven frames
                            with the truth (null until ``x2face.control.audio`` can drive a face)
``video_mouth_r``           ``audio_mouth_r``'s measurement on frames driven by frames with the true mouth: its ceiling
``mouth_transfer``          how much of the driving mouth's change those generated frames reproduce: the
                            within-video slope of their brightness in the mouth region on the driving
                            frames' (1 = all of it, 0 = a mouth that never moves)
``edit_l1``                 a video rendered from an edited embedded face vs the render of the edited
                            texture, on the face region
``edit_fixed_overlay_l1``   the same edit pasted at a fixed image position instead
``real_self_l1``            self-reenactment on face crops of the real val clips
``real_source_baseline_l1`` returning the source crop instead
``weights``, ``config``, ``device``, ``seconds``: what was measured, and how long it took
==========================  ==========================================================================

L1 is the mean absolute error over RGB in [0, 1]. A value is null only when a part it needs does not
exist (then ``notes`` says why) or its measurement failed (``errors``); it is never made up.

Metrics are registered in ``METRICS`` (name -> function of an ``EvalContext`` returning its keys), so
a new part adds one function. Each metric draws from its own seeded generator, so its numbers do not
depend on which other metrics ran.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .data.synthetic import (
    SPLITS,
    FrameParams,
    SyntheticPairs,
    SyntheticWorld,
    mix_seeds,
    paint_overlay,
    video_motion,
)
from .errors import ConfigError, InputError, MediaError
from .model import X2Face
from .nets import DrivingNetwork
from .warp import warp

REPORT_KEYS = (
    "self_l1", "source_baseline_l1", "pose_mae_deg", "pose_mae_supervised_deg", "cross_l1", "shape_leakage",
    "cross_relative_l1", "shape_leakage_relative",
    "pose_driven_l1", "pose_driven_baseline_l1", "audio_mouth_r", "video_mouth_r", "mouth_transfer", "edit_l1",
    "edit_fixed_overlay_l1", "real_self_l1", "real_source_baseline_l1", "weights", "config", "device", "seconds",
)
POSE_KEYS = ("yaw", "pitch", "roll")


# ------------------------------------------------------------------------------------------ settings
@dataclass
class EvalSettings:
    """How much to sample. ``quick()`` finishes in under a minute on a 2-core CPU; ``full()`` gives the
    README's numbers.

    Attributes:
        self_pairs: test (sources, driving) pairs for ``self_l1`` and ``cross_l1``.
        pose_train, pose_test: frames (of train / test identities) for the pose regressors.
        supervised_steps, supervised_batch: Adam steps and batch of the supervised pose CNN.
        pose_driven: test samples for ``pose_driven_l1``.
        leakage_pairs: (source, driving) identity pairs for ``shape_leakage``.
        edit_videos, edit_frames: test videos and frames per video for the editing metrics.
        real_clips: real val clips to use (0 = all); real_frames: driving frames per clip.
        batch: inference batch size.
        seed: base seed of every draw.
    """

    self_pairs: int = 1000
    pose_train: int = 4000
    pose_test: int = 1000
    supervised_steps: int = 1500
    supervised_batch: int = 32
    pose_driven: int = 500
    leakage_pairs: int = 300
    edit_videos: int = 24
    edit_frames: int = 12
    real_clips: int = 0
    real_frames: int = 8
    batch: int = 16
    seed: int = 0

    @classmethod
    def full(cls, **overrides) -> "EvalSettings":
        """The settings of the README's numbers."""
        return cls(**overrides)

    @classmethod
    def quick(cls, **overrides) -> "EvalSettings":
        """Enough samples for a sanity check in under a minute on a CPU."""
        base = dict(self_pairs=32, pose_train=192, pose_test=96, supervised_steps=25, supervised_batch=16,
                    pose_driven=24, leakage_pairs=24, edit_videos=2, edit_frames=6, real_clips=3, real_frames=3)
        return cls(**{**base, **overrides})


@dataclass
class EvalContext:
    """What every metric function gets.

    Attributes:
        model: the ``X2Face`` under test (eval mode, on ``device``).
        world: a ``SyntheticWorld`` at the model's image size on the same device.
        settings: ``EvalSettings``.
        device: torch device of model and world.
        real_dir: folder with ``MANIFEST.tsv`` and the real clips (None: skip the real metrics).
        cache: values shared between metrics (e.g. the train-identity driving vectors).
        samples: metric -> number of samples it averaged (goes into the report).
        notes: key -> why it is null or how it was measured.
        figures: figure name -> image (uint8 [H, W, 3]) to save beside the report.
    """

    model: X2Face
    world: SyntheticWorld
    settings: EvalSettings
    device: torch.device
    real_dir: Path | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    figures: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.model.config.image_size

    def generator(self, name: str) -> torch.Generator:
        """A CPU generator seeded by the metric's name and ``settings.seed``."""
        return torch.Generator().manual_seed(mix_seeds(self.settings.seed, *name.encode()))


# ------------------------------------------------------------------------------------------ helpers
def l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample mean absolute error over RGB: a, b float [B, 3, S, S]; mask float [B, 1, S, S] or None -> [B]."""
    err = (a.float() - b.float()).abs()
    if mask is None:
        return err.mean(dim=(1, 2, 3))
    m = mask.float().expand_as(err)
    return (err * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3)).clamp(min=1.0)


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two 1-D tensors; 0.0 when either is constant (no linear relation to find)."""
    a, b = a.double().flatten() - a.double().mean(), b.double().flatten() - b.double().mean()
    if float(a.abs().max()) < 1e-9 or float(b.abs().max()) < 1e-9:
        return 0.0
    return float((a * b).sum()) / float(a.norm() * b.norm())


def embedding_grid(model: X2Face, frames: torch.Tensor) -> torch.Tensor:
    """The sampling grid the embedding network makes for each frame: frames float [N, 3, S, S] -> [N, S, S, 2].

    ``warp(frames, embedding_grid(model, frames))`` is ``model.embed(frames[:, None])`` (one source).
    """
    return model.embedding_grid(model.embedding(frames))


def driving_grid(model: X2Face, vectors: torch.Tensor) -> torch.Tensor:
    """The grid that samples the embedded face: vectors float [B, D] -> [B, S, S, 2]
    (``warp(embedded, driving_grid(model, v)) == model.render(embedded, v)``)."""
    return model.driving_grid(vectors)


def _batches(n: int, size: int) -> list[tuple[int, int]]:
    return [(i, min(size, n - i)) for i in range(0, n, size)]


def _mean(values: list[torch.Tensor]) -> float:
    return float(torch.cat([v.reshape(-1).double().cpu() for v in values]).mean())  # each [b, ...] -> [b * ...]


def _to_device(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def _draw_pairs(ctx: EvalContext, split: str, num_sources: int, n: int, name: str):
    """Yield (batch dict, params dict) of ``n`` pairs of ``split`` in batches, deterministically."""
    pairs = SyntheticPairs(split, ctx.size, num_sources=num_sources, seed=ctx.settings.seed, device=ctx.device)
    pairs._world = ctx.world
    g = ctx.generator(name)
    for _, b in _batches(n, ctx.settings.batch):
        item, params = pairs.draw(b, g, ctx.world)
        yield _to_device(item, ctx.device), params


def _driving_vectors(ctx: EvalContext, split: str, n: int, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Driving vectors of ``n`` frames of ``split`` identities: (vectors [n, D], poses [n, 3] deg, frames[:16])."""
    vs, ps, keep = [], [], []
    for item, _ in _draw_pairs(ctx, split, 1, (n + 1) // 2, name):
        frames = torch.cat([item["driving"], item["driving_other"]])  # two identities per pair
        vs.append(ctx.model.driving_vector(frames).float().cpu())
        ps.append(torch.cat([item["pose"], item["pose_other"]]).float().cpu())
        if not keep:
            keep.append(frames[:16].cpu())
    return torch.cat(vs)[:n], torch.cat(ps)[:n], keep[0]


def fit_linear(x: torch.Tensor, y: torch.Tensor, ridge: float | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Ridge regression with a bias from x [N, Dx] to y [N, Dy], features standardised.

    ``ridge`` (relative to the number of samples) is picked by 5-fold cross-validation on (x, y) from
    1e-6 .. 10 when None. Returns a function [M, Dx] -> [M, Dy] (on the input's device).
    """
    x, y = x.double().cpu(), y.double().cpu()
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    xs = torch.cat([(x - mean) / std, torch.ones(len(x), 1, dtype=x.dtype)], 1)  # [N, Dx+1]

    def solve(a: torch.Tensor, b: torch.Tensor, lam: float) -> torch.Tensor:
        reg = lam * len(a) * torch.eye(a.shape[1], dtype=a.dtype)
        reg[-1, -1] = 0.0  # no penalty on the bias
        return torch.linalg.lstsq(a.T @ a + reg, a.T @ b).solution  # [Dx+1, Dy]

    if ridge is None:
        folds = torch.arange(len(xs)) % 5
        best = None
        for lam in (1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0):
            err = sum(float((xs[folds == k] @ solve(xs[folds != k], y[folds != k], lam) - y[folds == k]).abs().sum())
                      for k in range(5))
            if best is None or err < best[0]:
                best = (err, lam)
        ridge = best[1]
    w = solve(xs, y, ridge)

    def predict(q: torch.Tensor) -> torch.Tensor:
        qs = torch.cat([(q.double().cpu() - mean) / std, torch.ones(len(q), 1, dtype=torch.float64)], 1)
        return (qs @ w).float().to(q.device)

    predict.ridge = ridge  # type: ignore[attr-defined]
    return predict


class PoseCNN(nn.Module):
    """The supervised pose baseline: the driving network's encoder (same size) and a linear head."""

    def __init__(self, model_config) -> None:
        super().__init__()
        self.encoder = DrivingNetwork(model_config)
        self.encoder.up = nn.ModuleList()  # the decoder is not needed
        self.head = nn.Linear(model_config.vector_dim, 3)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames float [B, 3, S, S] in [0, 1] -> (yaw, pitch, roll) / 30 [B, 3]."""
        return self.head(self.encoder.encode(frames))


def _train_vectors(ctx: EvalContext) -> tuple[torch.Tensor, torch.Tensor]:
    if "train_vectors" not in ctx.cache:
        v, p, _ = _driving_vectors(ctx, "train", ctx.settings.pose_train, "pose-train")
        ctx.cache["train_vectors"] = (v, p)
    return ctx.cache["train_vectors"]


def _pose_maps(ctx: EvalContext):
    """(PoseMaps, how): the model's own pose head, or the maps fit-pose would fit, on train-identity vectors."""
    from .control.pose import fit_pose_maps

    model = ctx.model
    if getattr(model, "pose", None) is not None:
        return model.pose, "model.pose"
    if "pose_maps" not in ctx.cache:
        v, p = _train_vectors(ctx)
        maps = fit_pose_maps(v, p).to(ctx.device)
        ctx.cache["pose_maps"] = (maps, "x2face.control.pose.fit_pose_maps on train vectors (no pose head)")
    return ctx.cache["pose_maps"]


# ------------------------------------------------------------------------------------------ metrics
def metric_self(ctx: EvalContext) -> dict[str, Any]:
    """``self_l1`` {"1", "3"} and ``source_baseline_l1`` on test identities (same video)."""
    m = ctx.model
    one, three, base, shown = [], [], [], None
    for item, _ in _draw_pairs(ctx, "test", 3, ctx.settings.self_pairs, "self"):
        src, drv = item["sources"], item["driving"]
        v = m.driving_vector(drv)
        gen1 = m.render(m.embed(src[:, :1]), v)
        gen3 = m.render(m.embed(src), v)
        one.append(l1(gen1, drv))
        three.append(l1(gen3, drv))
        base.append(l1(src[:, 0], drv))
        if shown is None:
            shown = [src[:8, 0], drv[:8], gen1[:8], gen3[:8]]
    ctx.samples["self"] = sum(len(x) for x in one)
    ctx.figures["self_reenactment"] = image_grid(shown, ["source", "driving", "K=1", "K=3"])
    return {"self_l1": {"1": _mean(one), "3": _mean(three)}, "source_baseline_l1": _mean(base)}


def metric_pose_regression(ctx: EvalContext) -> dict[str, Any]:
    """``pose_mae_deg`` (linear from the driving vector) and ``pose_mae_supervised_deg`` (a CNN)."""
    s = ctx.settings
    v_train, p_train = _train_vectors(ctx)
    v_test, p_test, _ = _driving_vectors(ctx, "test", s.pose_test, "pose-test")
    f_vp = fit_linear(v_train, p_train)
    pred = f_vp(v_test)
    mae = (pred - p_test).abs().mean(0)
    ctx.samples["pose_train"], ctx.samples["pose_test"] = len(v_train), len(v_test)
    ctx.notes["pose_mae_deg"] = f"ridge regression, penalty {f_vp.ridge:g} chosen by 5-fold cross-validation on train"
    ctx.figures["pose_regression"] = scatter_plot(p_test[:, 0], pred[:, 0], "true yaw (deg)", "predicted yaw (deg)")
    out = {"pose_mae_deg": dict(zip(POSE_KEYS, map(float, mae)))}
    out["pose_mae_supervised_deg"] = _supervised_pose(ctx)
    return out


def _supervised_pose(ctx: EvalContext) -> dict[str, float]:
    """Train ``PoseCNN`` on the train frames of the linear regressor (re-rendered) and test it on the same test frames."""
    s = ctx.settings
    dev = ctx.device
    frames, poses = [], []
    for item, _ in _draw_pairs(ctx, "train", 1, (s.pose_train + 1) // 2, "pose-train"):  # the same frames
        frames.append(torch.cat([item["driving"], item["driving_other"]]).cpu())
        poses.append(torch.cat([item["pose"], item["pose_other"]]).cpu())
    x, y = torch.cat(frames)[: s.pose_train], torch.cat(poses)[: s.pose_train] / 30.0
    g = ctx.generator("pose-supervised")
    with torch.inference_mode(False), torch.enable_grad():  # evaluate() runs under inference_mode
        torch.manual_seed(mix_seeds(s.seed, 7))
        net = PoseCNN(ctx.model.config).to(dev).train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _ in range(s.supervised_steps):
            idx = torch.randint(0, len(x), (s.supervised_batch,), generator=g)
            loss = F.l1_loss(net(x[idx].clone().to(dev)), y[idx].clone().to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    errs = []
    for item, _ in _draw_pairs(ctx, "test", 1, (s.pose_test + 1) // 2, "pose-test"):  # the same test frames
        f = torch.cat([item["driving"], item["driving_other"]])
        p = torch.cat([item["pose"], item["pose_other"]])
        errs.append((net(f) * 30.0 - p).abs().cpu())
    mae = torch.cat(errs)[: s.pose_test].mean(0)
    ctx.samples["pose_supervised_steps"] = s.supervised_steps
    return dict(zip(POSE_KEYS, map(float, mae)))


def _head_extent(mask: torch.Tensor) -> torch.Tensor:
    """mask float [B, 1, S, S] -> [B, 2] (width, height) in pixels from second moments (4 std: exact for an ellipse)."""
    b, _, s, _ = mask.shape
    m = mask.float().clamp(min=0)[:, 0]  # [B, S, S]
    coords = torch.arange(s, dtype=torch.float32, device=mask.device)
    total = m.sum(dim=(1, 2)).clamp(min=1e-6)
    px, py = m.sum(1), m.sum(2)  # [B, S] column and row profiles
    mx, my = (px * coords).sum(1) / total, (py * coords).sum(1) / total
    vx = (px * (coords - mx[:, None]) ** 2).sum(1) / total
    vy = (py * (coords - my[:, None]) ** 2).sum(1) / total
    return 4.0 * torch.stack([vx, vy], 1).sqrt()


def metric_cross(ctx: EvalContext) -> dict[str, Any]:
    """``cross_l1`` (vs the source identity rendered at the driving frame's pose/expression) and ``shape_leakage``,
    and both for relative motion (``cross_relative_l1``, ``shape_leakage_relative``): the source moved by the
    driving vector's change from a reference frame of the driving identity in the source's pose and expression
    (``pipeline.RelativeMotion``), whose right answer is the same render."""
    from .pipeline import RelativeMotion

    m, w = ctx.model, ctx.world
    errs, rel_errs, shown = [], [], None
    leak = {"absolute": [0.0, 0.0], "relative": [0.0, 0.0]}  # numerator, denominator of the projection
    n_leak = 0
    for item, params in _draw_pairs(ctx, "test", 1, max(ctx.settings.self_pairs, ctx.settings.leakage_pairs), "cross"):
        src, drv = item["sources"], item["driving_other"]
        ids = item["identity"].tolist()
        others = item["identity_other"].tolist()
        truth = w.render(ids, params["driving_other"])
        v = m.driving_vector(drv)
        face = m.embed(src)
        gen = m.render(face, v)
        errs.append(l1(gen, truth))
        p_src = params["sources"]  # K = 1: one row per pair
        ref = w.render(others, params["driving_other"].replace(  # the driving identity as the source is, in its light
            pose=p_src.pose, translation=p_src.translation, zoom=p_src.zoom, mouth=p_src.mouth, blink=p_src.blink))
        v_rel = RelativeMotion(m.driving_vector(src[:, 0]), m.driving_vector(ref))(v)  # per pair: [B, D]
        rel_errs.append(l1(m.render(face, v_rel), truth))
        if shown is None:
            shown = [src[:8, 0], drv[:8], gen[:8], truth[:8]]
        k = min(len(ids), ctx.settings.leakage_pairs - n_leak)
        if k > 0:
            # where the source's head lands in the generated frame: its mask through the same two warps
            ids, others, p_src, p_drv = ids[:k], others[:k], p_src.index(slice(0, k)), \
                params["driving_other"].index(slice(0, k))
            embedded_mask = warp(w.face_mask(ids, p_src), embedding_grid(m, src[:k, 0]))
            own = _head_extent(w.face_mask(ids, p_drv))
            theirs = _head_extent(w.face_mask(ids, p_drv, shape_from=others))
            for mode, vec in (("absolute", v), ("relative", v_rel)):
                got = _head_extent(warp(embedded_mask, driving_grid(m, vec[:k])))
                leak[mode][0] += float(((got - own) * (theirs - own)).sum())
                leak[mode][1] += float(((theirs - own) ** 2).sum())
            n_leak += k
    ctx.samples["cross"] = sum(len(x) for x in errs)
    ctx.samples["shape_leakage"] = n_leak
    ctx.figures["cross_reenactment"] = image_grid(shown, ["source", "driving", "generated", "truth"])
    ctx.notes["shape_leakage"] = ("least-squares projection of the generated head's (width, height) change onto "
                                  "the change the driving identity's head shape would make; heads traced through "
                                  "the model's two warps")
    ctx.notes["cross_relative_l1"] = ("v_source + v_driving - v_reference, the reference: the driving identity "
                                      "rendered in the source frame's pose, expression, shift and zoom")
    ratio = {mode: num / den if den > 0 else None for mode, (num, den) in leak.items()}
    return {"cross_l1": _mean(errs), "shape_leakage": ratio["absolute"], "cross_relative_l1": _mean(rel_errs),
            "shape_leakage_relative": ratio["relative"]}


def metric_pose_driven(ctx: EvalContext) -> dict[str, Any]:
    """``pose_driven_l1`` and its source-frame baseline, for target poses with |yaw| >= 20 deg."""
    m, w = ctx.model, ctx.world
    maps, how = _pose_maps(ctx)
    ctx.notes["pose_driven_l1"] = f"pose maps: {how}; v = v_src + f_pv(p_new) - f_pv(f_vp(v_src)) (PoseMaps.repose)"
    g = ctx.generator("pose-driven-targets")
    errs, base, shown = [], [], None
    for item, params in _draw_pairs(ctx, "test", 1, ctx.settings.pose_driven, "pose-driven"):
        b = len(item["driving"])
        src = item["sources"]  # [B, 1, 3, S, S]
        yaw = (20.0 + 40.0 * torch.rand(b, generator=g)) * torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
        rest = (torch.rand(b, 2, generator=g) * 2 - 1) * 15.0
        target = torch.cat([yaw[:, None], rest], 1)  # [B, 3]
        p_src = params["sources"]
        truth = w.render(item["identity"].tolist(), p_src.replace(pose=target))
        v_src = m.driving_vector(src[:, 0])
        t = target.to(v_src)
        v_new = maps.repose(v_src, t)
        gen = m.render(m.embed(src), v_new)
        errs.append(l1(gen, truth))
        base.append(l1(src[:, 0], truth))
        if shown is None:
            shown = [src[:8, 0], gen[:8], truth[:8]]
    ctx.samples["pose_driven"] = sum(len(x) for x in errs)
    ctx.figures["pose_driven"] = image_grid(shown, ["source", "generated", "truth"])
    return {"pose_driven_l1": _mean(errs), "pose_driven_baseline_l1": _mean(base)}


def _gaussian_blur(x: torch.Tensor, sigma: float, truncate: float = 2.5) -> torch.Tensor:
    """Separable Gaussian blur of x float [N, C, H, W] (replicate padding), the kernel cut at ``truncate`` sigma."""
    k = 2 * int(math.ceil(truncate * sigma)) + 1
    t = torch.arange(k, dtype=x.dtype, device=x.device) - k // 2
    g = torch.exp(-t**2 / (2 * sigma**2))
    g = g / g.sum()
    c = x.shape[1]
    # kernel [k] -> [1, 1, 1, k]
    x = F.conv2d(F.pad(x, (k // 2, k // 2, 0, 0), mode="replicate"), g.view(1, 1, 1, k).repeat(c, 1, 1, 1), groups=c)
    # kernel [k] -> [1, 1, k, 1]
    return F.conv2d(F.pad(x, (0, 0, k // 2, k // 2), mode="replicate"), g.view(1, 1, k, 1).repeat(c, 1, 1, 1), groups=c)


def estimate_mouth_opening(world: SyntheticWorld, identity_seeds: list[int], params: FrameParams,
                           frames: torch.Tensor, steps: int = 21, return_residual: bool = False):
    """Read the mouth opening off frames of known identities and poses, by analysis by synthesis.

    Each frame is compared with renders of its identity at ``params`` with the mouth at ``steps``
    openings in [0, 1]: both are low-passed (a Gaussian of sigma S/50, so a blurry generated mouth
    still reads right), the frame is aligned to the renders by the best integer shift of up to S/32
    pixels, and the opening with the least L1 around the mouth wins. The resolution is
    ``1 / (steps - 1)``, on purpose: sub-step refinement turns a still mouth's noise into a signal.

    Args:
        world: the synthetic world.
        identity_seeds, params: who is in each frame and at which pose (B of each).
        frames: float [B, 3, S, S] in [0, 1], e.g. audio-driven generated frames.
        return_residual: also return the per-frame L1 of the best match on the face (how much the
            frame looks like the identity at that pose at all; large for garbage frames).

    Returns:
        float [B] mouth openings in [0, 1] (and float [B] residuals).
    """
    b = len(identity_seeds)
    size = frames.shape[-1]
    sigma = max(0.8, size / 50)
    levels = torch.linspace(0, 1, steps)
    renders = torch.stack([world.render(identity_seeds, params.replace(mouth=torch.full((b,), float(x))))
                           for x in levels], 1)  # [B, L, 3, S, S]
    moving = (renders - renders[:, :1]).abs().amax(dim=(1, 2)) > 0.02  # [B, S, S]: where the mouth moves
    mouth = F.max_pool2d(moving[:, None].float(), 2 * (size // 32) + 1, 1, size // 32)  # [B, 1, S, S] dilated
    face = world.face_mask(identity_seeds, params).to(renders)  # [B, 1, S, S]
    low = _gaussian_blur(renders.flatten(0, 1), sigma).view_as(renders)  # [B*L, 3, S, S] -> [B, L, 3, S, S]
    target = _gaussian_blur(frames.to(renders), sigma)  # [B, 3, S, S]
    # align: the integer shift that best matches the half-open render on the face
    r = max(1, size // 32)
    mid = low[:, steps // 2]
    best_err, best_shift = None, None
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            e = ((torch.roll(target, (dy, dx), dims=(2, 3)) - mid).abs() * face).sum(dim=(1, 2, 3))  # [B]
            if best_err is None:
                best_err, best_shift = e, torch.zeros(b, 2, dtype=torch.long)
                best_shift[:] = torch.tensor([dy, dx])
            else:
                better = e < best_err
                best_err = torch.where(better, e, best_err)
                best_shift[better.cpu()] = torch.tensor([dy, dx])
    target = torch.stack([torch.roll(t, (int(sy), int(sx)), dims=(1, 2)) for t, (sy, sx) in zip(target, best_shift)])
    err = ((low - target.unsqueeze(1)).abs() * mouth.unsqueeze(1)).sum(dim=(2, 3, 4))  # [B, L]
    best = err.argmin(1)
    # no sub-step refinement: a mouth that does not move must read as constant, not as tiny wiggles
    # that happen to correlate with the audio (Pearson r ignores scale)
    opening = best.float() / (steps - 1)
    if not return_residual:
        return opening
    chosen = low[torch.arange(b, device=best.device), best]  # [B, 3, S, S]
    residual = ((chosen - target).abs() * face).sum(dim=(1, 2, 3)) / (3 * face.sum(dim=(1, 2, 3)).clamp(min=1))
    return opening, residual


def _audio_driver() -> Callable | None:
    """The audio-driving helper of ``x2face.control.audio``, when it exists.

    Contract: ``drive_from_audio(model, sources, audio, sample_rate, fps, num_frames, features)`` with
    sources float [1, K, 3, S, S], audio float32 [N] -> generated frames float [num_frames, 3, S, S],
    or None when the named features ("mfcc", "learned") are not available.
    """
    try:
        from .control import audio as audio_module
    except ImportError:
        return None
    return getattr(audio_module, "drive_from_audio", None)


def _within_video_r(est: list[torch.Tensor], true: list[torch.Tensor]) -> tuple[float, torch.Tensor]:
    """Pearson r of per-video estimates with the truth, each video's mean removed from both, then pooled
    (a still mouth must not score through differences between the videos' sources); also the pooled
    centred estimates, float64 [sum of T]."""
    a = torch.cat([e.double() - e.double().mean() for e in est])
    b = torch.cat([t.double() - t.double().mean() for t in true])
    return pearson(a, b), a


def metric_audio(ctx: EvalContext) -> dict[str, Any]:
    """``audio_mouth_r`` {"mfcc", "learned"}: Pearson r of the mouth opening in audio-driven frames
    (read by ``estimate_mouth_opening``) with the true opening, within test videos (each video's
    mean removed from both, then pooled); ``video_mouth_r``, its ceiling, and ``mouth_transfer``
    (both ``_video_mouth``)."""
    from .data.synthetic import sample_video

    n_videos, n_frames = max(1, ctx.settings.edit_videos), max(8, 2 * ctx.settings.edit_frames)
    seeds = [SPLITS["test"][i] for i in range(n_videos)]
    videos = [sample_video(seed, 1000 + i, n_frames, ctx.size, world=ctx.world) for i, seed in enumerate(seeds)]
    from_video = _video_mouth(ctx, seeds, videos)  # {"video_mouth_r", "mouth_transfer"}
    drive = _audio_driver()
    if drive is None:
        ctx.notes["audio_mouth_r"] = "x2face.control.audio has no drive_from_audio helper yet"
        return {"audio_mouth_r": None, **from_video}
    out: dict[str, float | None] = {}
    for features in ("mfcc", "learned"):
        est, true = [], []
        for seed, video in zip(seeds, videos):
            sources = video.frames[:1].unsqueeze(0).to(ctx.device)  # [1, 1, 3, S, S]
            frames = drive(ctx.model, sources, video.audio, video.sample_rate, video.fps, n_frames, features)
            if frames is None:
                break
            still = video.params.index([0] * n_frames)  # the source's pose: audio moves the mouth only
            est.append(estimate_mouth_opening(ctx.world, [seed] * n_frames, still, frames).cpu())
            true.append(video.params.mouth)
        if not est:
            out[features] = None
            continue
        out[features], a = _within_video_r(est, true)
        if float(a.abs().max()) < 1e-9:
            ctx.notes[f"audio_mouth_r.{features}"] = "the generated mouth never moved: r taken as 0"
        ctx.samples[f"audio_{features}"] = len(a)
    head = getattr(ctx.model, "audio", None)
    own_mfcc = head is not None and head.extractor is not None and head.extractor.name == "mfcc"
    note = ("frames from x2face.control.audio.drive_from_audio (default AudioDriveSettings); mfcc: "
            + ("the model's audio head" if own_mfcc else "the map `fit-audio --features mfcc` fits, fitted here"))
    if out.get("learned") is None:
        note += "; learned: null, the model has no audio head on learned features (train-audio, then fit-audio --audio-net)"
    ctx.notes["audio_mouth_r"] = note
    return {"audio_mouth_r": out, **from_video}


def mouth_region(world: SyntheticWorld, identity_seeds: list[int], params: FrameParams) -> torch.Tensor:
    """Where each identity's mouth shows at ``params``: float [B, S, S] on the CPU, 1 where its wide-open and
    closed mouths differ (by more than 0.02 in some channel), dilated by S/32 px (the reach of a blurred or
    slightly misplaced generated mouth), else 0. ``params`` holds B frames; their own mouth opening is ignored."""
    b = len(identity_seeds)
    size = world.image_size
    ends = [world.render(identity_seeds, params.replace(mouth=torch.full((b,), x))) for x in (0.0, 1.0)]
    moving = ((ends[1] - ends[0]).abs().amax(1, keepdim=True) > 0.02).float()  # [B, 1, S, S]
    r = max(1, size // 32)
    return F.max_pool2d(moving, 2 * r + 1, 1, r)[:, 0].cpu()  # [B, 1, S, S] -> [B, S, S] dilated


def mouth_brightness(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean brightness over a mouth region: frames float [N, 3, S, S] in [0, 1], mask float [S, S] or
    [N, S, S] (``mouth_region``) -> [N] (the channel mean averaged over the mask; 0 where the mask is empty)."""
    return (frames.mean(1) * mask).sum((1, 2)) / mask.sum((-2, -1)).clamp(min=1)


def transfer_slope(generated_change: torch.Tensor, driving_change: torch.Tensor) -> float:
    """The least-squares slope (through 0) of the generated frames' brightness change on the driving frames':
    float [N] each -> 1 when the generated mouth changes as the driving one, 0 when it never moves (or the
    driving mouth never does)."""
    g, d = generated_change.double(), driving_change.double()
    return float((g * d).sum() / (d * d).sum()) if float((d * d).sum()) > 0 else 0.0


def _video_mouth(ctx: EvalContext, seeds: list[int], videos: list) -> dict[str, float]:
    """``video_mouth_r`` and ``mouth_transfer``, from the test videos' own mouths driving the model.

    The driving frames are the source identity at the source's pose with each video frame's mouth, i.e.
    what the audio-driven frames should look like. An audio map can at best reach the driving vectors of
    these frames, so ``video_mouth_r`` (``audio_mouth_r``'s measurement on the generated frames) is the
    ceiling of ``audio_mouth_r`` for the model: near 0 means the model does not transfer the mouth's motion.

    ``mouth_transfer`` says the same without the reading's noise: the mean brightness of the mouth region
    (where the identity's open and closed mouths differ, dilated by S/32 px) in generated and driving
    frames, each video's mean removed, and the least-squares slope of the generated on the driving
    (1 for a model that reproduces its driving frames, 0 for one whose mouth never moves; a model that
    blurs the mouth scores in between). ``video_mouth_r`` of a model with a still mouth can read tens of
    hundredths either way from a few pixels of noise; this slope cannot.
    """
    est, true, gen_lum, drv_lum = [], [], [], []
    for seed, video in zip(seeds, videos):
        n_frames = len(video.frames)
        still = video.params.index([0] * n_frames)  # the source's pose, as the audio-driven frames keep it
        driving = ctx.world.render([seed] * n_frames, still.replace(mouth=video.params.mouth)).to(ctx.device)
        with torch.no_grad():  # driving: [T, 3, S, S], the video's mouth at the source's pose
            embedded = ctx.model.embed(video.frames[:1].unsqueeze(0).to(ctx.device))  # [1, 3, S, S]
            generated = ctx.model.render(embedded.expand(n_frames, -1, -1, -1), ctx.model.driving_vector(driving))
        generated, driving = generated.float().cpu(), driving.float().cpu()
        est.append(estimate_mouth_opening(ctx.world, [seed] * n_frames, still, generated))
        true.append(video.params.mouth)
        mask = mouth_region(ctx.world, [seed], still.index([0]))[0]  # [S, S]
        gen_lum.append(mouth_brightness(generated, mask))  # [T]
        drv_lum.append(mouth_brightness(driving, mask))  # [T]
    g = torch.cat([x.double() - x.double().mean() for x in gen_lum])
    d = torch.cat([x.double() - x.double().mean() for x in drv_lum])
    return {"video_mouth_r": _within_video_r(est, true)[0], "mouth_transfer": transfer_slope(g, d)}


def make_overlay(size: int = 64) -> torch.Tensor:
    """The test edit: a red/yellow target with a dark ring, RGBA float [4, size, size] (straight alpha)."""
    lin = torch.linspace(-1, 1, size)
    y, x = torch.meshgrid(lin, lin, indexing="ij")
    r = torch.sqrt(x**2 + y**2)
    red = torch.tensor([0.9, 0.1, 0.1]).view(3, 1, 1)  # [3] -> [3, 1, 1]
    yellow = torch.tensor([1.0, 0.85, 0.1]).view(3, 1, 1)  # [3] -> [3, 1, 1]
    rgb = torch.where((torch.floor(r * 4) % 2 == 0).unsqueeze(0), red, yellow)
    rgb = torch.where(((r - 0.93).abs() < 0.07).unsqueeze(0), torch.zeros(3, 1, 1) + 0.05, rgb)
    alpha = ((1.0 - r) / 0.05 + 0.5).clamp(0, 1).unsqueeze(0)
    return torch.cat([rgb * torch.ones(3, size, size), alpha])


def edit_layer(world: SyntheticWorld, seed: int, params: FrameParams, grid: torch.Tensor, overlay: torch.Tensor,
               center: tuple[float, float], half_size: tuple[float, float], factor: int = 1) -> torch.Tensor:
    """The overlay as an RGBA layer over the embedded face of one synthetic source frame, painted where the texture
    region ``center`` +- ``half_size`` (UV units) lands in the model's embedding.

    The world gives the texture coordinate (u, v), mask and shading of every pixel of the source frame; warping
    them with the embedding ``grid`` (as the model warps the frame itself) gives what each embedded-face pixel
    shows, and the overlay is drawn there, lit like the source.

    Args:
        world, seed, params: the source frame's identity and ``FrameParams`` (one frame).
        grid: float [1, S, S, 2], the embedding network's grid of that frame (``embedding_grid``).
        overlay: float [4, h, w] RGBA in [0, 1].
        center, half_size: where the overlay sits in UV coordinates (as for ``paint_overlay``).
        factor: draw the layer at ``factor`` times the embedded face's resolution (the carried coordinates
            upsampled bilinearly); 1 is what the editing metric uses.

    Returns:
        float [1, 4, factor * S, factor * S]: RGB and straight alpha in [0, 1].
    """
    surf = world.surface([seed], params)
    carried = warp(torch.cat([surf.uv, surf.mask.float(), surf.shading], 1), grid)  # [1, 4, S, S]
    if factor > 1:
        carried = F.interpolate(carried, scale_factor=factor, mode="bilinear", align_corners=False)  # [1, 4, fS, fS]
    uv, on, shade = carried[:, :2], carried[:, 2:3], carried[:, 3:4]
    inside = torch.stack([(uv[:, 0] - center[0]) / half_size[0], (uv[:, 1] - center[1]) / half_size[1]], -1)
    rgba = F.grid_sample(overlay[None].to(grid), inside, mode="bilinear", padding_mode="zeros",
                         align_corners=True)  # [1, 4, fS, fS]
    alpha = rgba[:, 3:] * (on > 0.5)
    return torch.cat([(rgba[:, :3] * shade).clamp(0, 1), alpha], 1)


def edit_embedded_face(model: X2Face, world: SyntheticWorld, seed: int, params: FrameParams, source: torch.Tensor,
                       overlay: torch.Tensor, center: tuple[float, float], half_size: tuple[float, float],
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Embed one synthetic source frame and paint an overlay on the embedded face (``edit_layer``), composited with
    ``x2face.control.edit.composite`` (what the editing feature does).

    Args:
        model: the X2Face model.
        world, seed, params: the source frame's identity and ``FrameParams`` (one frame).
        source: float [1, 3, S, S], that frame as rendered.
        overlay: float [4, h, w] RGBA in [0, 1].
        center, half_size: where the overlay sits in UV coordinates (as for ``paint_overlay``).

    Returns:
        (embedded face, edited embedded face), float [1, 3, S, S] each.
    """
    from .control.edit import composite

    grid = embedding_grid(model, source)
    face = warp(source, grid)  # the embedded face of one source frame
    return face, composite(face, edit_layer(world, seed, params, grid, overlay, center, half_size))


#: where the test edit goes on every face: a disc on the right cheek (image right when frontal), UV units
EDIT_CENTER, EDIT_RADIUS = (0.17, 0.12), 0.10


def metric_edit(ctx: EvalContext) -> dict[str, Any]:
    """``edit_l1`` and ``edit_fixed_overlay_l1``.

    The overlay is painted into each test identity's UV texture at ``EDIT_CENTER``; the world's render
    of that texture along the video is the truth. The model's embedded face has its own coordinates,
    so the edit is placed on it through the model itself: the world knows the texture coordinate
    (u, v) of every pixel of the source frame, and warping that (u, v) image with the embedding
    network's grid gives the texture coordinate each embedded-face pixel shows; the overlay is
    painted there (with the source frame's shading), and the video is rendered from the edited
    embedded face. The baseline pastes the edit as it looks in the source frame at the same image
    position in every frame. Both are scored on the face region of the true frames.
    """
    from .data.synthetic import identity as get_identity

    m, w, s = ctx.model, ctx.world, ctx.settings
    overlay = make_overlay().to(ctx.device)
    errs, fixed, shown = [], [], None
    for i in range(s.edit_videos):
        seed = SPLITS["test"][i]
        ident = get_identity(seed)
        half = (EDIT_RADIUS / (math.pi * ident.width), EDIT_RADIUS / ident.height)
        motion = video_motion(seed, 2000 + i)
        t = torch.linspace(0.0, 6.0, s.edit_frames + 1).view(1, -1)  # [T+1] -> [1, T+1]
        params = motion.at(t)  # frame 0 is the source
        seeds = [seed] * len(params)
        texture = paint_overlay(w.texture([seed]), overlay, EDIT_CENTER, half)
        plain = w.render(seeds, params)
        edited = w.render(seeds, params, texture=texture.expand(len(params), -1, -1, -1))
        src, src_edit, drv, truth = plain[:1], edited[:1], plain[1:], edited[1:]
        face, face_edit = edit_embedded_face(m, w, seed, params.index(slice(0, 1)), src, overlay, EDIT_CENTER, half)
        v = m.driving_vector(drv)
        gen_edit = m.render(face_edit, v)
        gen = m.render(face, v)
        sticker = (src_edit - src).abs().amax(1, keepdim=True) > 1e-3  # where the edit shows in the source frame
        pasted = torch.where(sticker, src_edit, gen)
        region = w.face_mask(seeds[1:], params.index(slice(1, None)), region="face")
        errs.append(l1(gen_edit, truth, region))
        fixed.append(l1(pasted, truth, region))
        if shown is None:
            shown = [torch.cat([face, face_edit]), truth[:2], gen_edit[:2], pasted[:2]]
    ctx.samples["edit"] = sum(len(x) for x in errs)
    ctx.figures["edit"] = image_grid(shown, ["embedded / edited", "truth", "edited video", "fixed overlay"])
    ctx.notes["edit_l1"] = ("the overlay is placed on the embedded face through the model's embedding warp of the "
                            "source frame's texture coordinates; L1 over the face region of the true frames")
    return {"edit_l1": _mean(errs), "edit_fixed_overlay_l1": _mean(fixed)}


def real_val_clips(real_dir: Path) -> list[Path]:
    """Video files of ``split == val`` in ``real_dir/MANIFEST.tsv``, in manifest order."""
    manifest = Path(real_dir) / "MANIFEST.tsv"
    if not manifest.is_file():
        raise MediaError(f"{real_dir} has no MANIFEST.tsv")
    with manifest.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [Path(real_dir) / r["file"] for r in rows if r.get("split") == "val" and r.get("kind") == "video"]


def real_face_crops(path: Path, size: int, num: int, seconds: float = 10.0, fps: float = 5.0) -> np.ndarray | None:
    """``num`` face crops spread over the first ``seconds`` of a clip, uint8 [num, size, size, 3] RGB, or
    None when fewer faces were found. Uses ``x2face.faces.FaceCropper`` (VoxCeleb-style 1.6x crops)."""
    from .faces import FaceCropper
    from .media import iter_video_frames

    cropper = FaceCropper(image_size=size, detect_every=2)
    crops = [c.crop for c in cropper.track(iter_video_frames(path, seconds=seconds, fps=fps))
             if c.found and c.crop is not None]
    if len(crops) < num:
        return None
    pick = np.linspace(0, len(crops) - 1, num).round().astype(int)
    return np.stack([crops[i] for i in pick])


def metric_real(ctx: EvalContext) -> dict[str, Any]:
    """``real_self_l1`` and ``real_source_baseline_l1`` on face crops of the real val clips (first crop = source)."""
    if ctx.real_dir is None or not Path(ctx.real_dir).is_dir():
        ctx.notes["real_self_l1"] = f"no real clips folder ({ctx.real_dir})"
        return {"real_self_l1": None, "real_source_baseline_l1": None}
    clips = real_val_clips(ctx.real_dir)
    if ctx.settings.real_clips:
        clips = [clips[int(i)] for i in np.linspace(0, len(clips) - 1, min(ctx.settings.real_clips, len(clips))).round()]
    m = ctx.model
    errs, base, used, shown = [], [], 0, None
    for path in clips:
        crops = real_face_crops(path, ctx.size, ctx.settings.real_frames + 1)
        if crops is None:
            continue
        x = torch.from_numpy(crops).to(ctx.device).permute(0, 3, 1, 2).float() / 255.0  # [T, S, S, 3] -> [T, 3, S, S]
        src, drv = x[:1], x[1:]
        gen = m.render(m.embed(src[:, None]), m.driving_vector(drv))
        errs.append(l1(gen, drv))
        base.append(l1(src.expand_as(drv), drv))
        used += 1
        if shown is None:
            shown = [src.expand_as(drv)[:4], drv[:4], gen[:4]]
    if not errs:
        ctx.notes["real_self_l1"] = "no face found in any real val clip"
        return {"real_self_l1": None, "real_source_baseline_l1": None}
    ctx.samples["real_clips"], ctx.samples["real_frames"] = used, sum(len(e) for e in errs)
    ctx.figures["real_self_reenactment"] = image_grid(shown, ["source", "driving", "generated"])
    return {"real_self_l1": _mean(errs), "real_source_baseline_l1": _mean(base)}


#: metric name -> function(EvalContext) -> {report key: value}; run in this order
METRICS: dict[str, Callable[[EvalContext], dict[str, Any]]] = {
    "self": metric_self,
    "pose_regression": metric_pose_regression,
    "cross": metric_cross,
    "pose_driven": metric_pose_driven,
    "audio": metric_audio,
    "edit": metric_edit,
    "real": metric_real,
}

#: the report keys each metric fills (null when it is skipped or fails)
METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "self": ("self_l1", "source_baseline_l1"),
    "pose_regression": ("pose_mae_deg", "pose_mae_supervised_deg"),
    "cross": ("cross_l1", "shape_leakage", "cross_relative_l1", "shape_leakage_relative"),
    "pose_driven": ("pose_driven_l1", "pose_driven_baseline_l1"),
    "audio": ("audio_mouth_r", "video_mouth_r", "mouth_transfer"),
    "edit": ("edit_l1", "edit_fixed_overlay_l1"),
    "real": ("real_self_l1", "real_source_baseline_l1"),
}


# ------------------------------------------------------------------------------------------ driver
def evaluate(model: X2Face, settings: EvalSettings | None = None, *, real_dir: str | os.PathLike | None = None,
             metrics: list[str] | None = None, weights: str = "", progress: Callable[[str], None] | None = None,
             ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run the metrics on ``model`` (on whatever device it is) and return ``(report, figures)``.

    Args:
        model: an ``X2Face``; put in eval mode for the run.
        settings: ``EvalSettings`` (default ``EvalSettings.full()``).
        real_dir: folder of the real clips (``MANIFEST.tsv``); None skips the real metrics.
        metrics: names from ``METRICS`` to run (default all); the others' keys are null.
        weights: what to record as ``report["weights"]``.
        progress: called with a line per finished metric.

    Returns:
        the report dict (``REPORT_KEYS`` plus ``samples``, ``notes``, ``errors``, ``settings``,
        ``timings``) and the figures (name -> uint8 [H, W, 3]).
    """
    settings = settings or EvalSettings.full()
    names = list(METRICS) if metrics is None else list(metrics)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    ctx = EvalContext(model=model, world=SyntheticWorld(model.config.image_size, device=device), settings=settings,
                      device=device, real_dir=Path(real_dir) if real_dir is not None else None)
    report: dict[str, Any] = {k: None for k in REPORT_KEYS}
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            for name in names:
                t0 = time.perf_counter()
                try:
                    report.update(METRICS[name](ctx))
                except (KeyboardInterrupt, MemoryError):
                    raise
                except Exception as exc:  # one broken part must not lose the others' numbers
                    errors[name] = f"{type(exc).__name__}: {exc}"
                    if os.environ.get("X2FACE_DEBUG"):
                        traceback.print_exc()
                timings[name] = round(time.perf_counter() - t0, 2)
                if progress:
                    progress(f"{name}: {timings[name]:.1f} s" + (f" (failed: {errors[name]})" if name in errors else ""))
    finally:
        model.train(was_training)
    for name in METRICS:
        if name not in names:
            ctx.notes.setdefault(METRIC_KEYS[name][0], "not run (--metrics)")
    for key in REPORT_KEYS:
        report[key] = _finite_or_none(report[key], key, ctx.notes)
    report.update({
        "weights": weights,
        "config": model.config.to_dict(),
        "device": str(device),
        "seconds": round(time.perf_counter() - start, 2),
        "samples": ctx.samples,
        "notes": ctx.notes,
        "errors": errors,
        "settings": asdict(settings),
        "timings": timings,
    })
    return report, ctx.figures


def _finite_or_none(value: Any, key: str, notes: dict[str, str]) -> Any:
    """Floats that are NaN or infinite become None (with a note): the report holds only real numbers."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v, f"{key}.{k}", notes) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        notes[key] = f"the measurement gave {value} (e.g. a NaN from the model); recorded as null"
        return None
    return value


# ------------------------------------------------------------------------------------------ output
def image_grid(rows: list[torch.Tensor], labels: list[str] | None = None) -> np.ndarray:
    """Rows of images (each float [N, 3, S, S] in [0, 1]) -> one uint8 [H, W, 3] picture, a label per row."""
    from PIL import Image, ImageDraw

    n = max(len(r) for r in rows)
    s = rows[0].shape[-1]
    pad = 90 if labels else 0
    canvas = np.full((len(rows) * s, pad + n * s, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        # [N, 3, S, S] -> [N, S, S, 3]
        pics = (row.detach().float().clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        for j, p in enumerate(pics):
            canvas[i * s:(i + 1) * s, pad + j * s: pad + (j + 1) * s] = p
    if labels:
        im = Image.fromarray(canvas)
        draw = ImageDraw.Draw(im)
        for i, text in enumerate(labels):
            draw.text((4, i * s + s // 2 - 6), text, fill=(0, 0, 0))
        canvas = np.asarray(im)
    return canvas


def scatter_plot(x: torch.Tensor, y: torch.Tensor, xlabel: str, ylabel: str, size: int = 360) -> np.ndarray:
    """A scatter plot of y against x with the y = x line, uint8 [size, size, 3] (drawn with PIL)."""
    from PIL import Image, ImageDraw

    x, y = x.float().cpu(), y.float().cpu()
    lo = float(min(x.min(), y.min(), -1.0))
    hi = float(max(x.max(), y.max(), 1.0))
    margin = 40
    im = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(im)
    to_px = lambda a, flip: (margin + (a - lo) / (hi - lo) * (size - 2 * margin)) if not flip else \
        (size - margin - (a - lo) / (hi - lo) * (size - 2 * margin))  # noqa: E731
    d.rectangle([margin, margin, size - margin, size - margin], outline=(0, 0, 0))
    d.line([to_px(lo, False), to_px(lo, True), to_px(hi, False), to_px(hi, True)], fill=(160, 160, 160))
    for a, b in zip(x.tolist(), y.tolist()):
        px, py = to_px(a, False), to_px(b, True)
        d.ellipse([px - 2, py - 2, px + 2, py + 2], fill=(30, 90, 200))
    d.text((margin, size - margin + 8), f"{xlabel}  [{lo:.0f}, {hi:.0f}]", fill=(0, 0, 0))
    d.text((4, 8), ylabel, fill=(0, 0, 0))
    return np.asarray(im)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return str(value)


_DESCRIPTIONS = {
    "self_l1": "self-reenactment L1, test identities, K = 1 / 3 source frames",
    "source_baseline_l1": "L1 of returning the source frame",
    "pose_mae_deg": "pose MAE (deg), linear regressor on the driving vector",
    "pose_mae_supervised_deg": "pose MAE (deg), CNN trained on pose",
    "cross_l1": "cross-identity reenactment L1 vs ground truth",
    "shape_leakage": "head shape taken from the driving identity (0 none, 1 fully)",
    "cross_relative_l1": "cross-identity L1, relative motion from a reference frame in the source's pose",
    "shape_leakage_relative": "shape leakage with relative motion",
    "pose_driven_l1": "pose-driven generation L1, target yaw 20-60 deg either way",
    "pose_driven_baseline_l1": "L1 of returning the source frame",
    "audio_mouth_r": "audio-driven mouth opening vs truth, Pearson r",
    "video_mouth_r": "the same, driven by the true video frames (the ceiling for audio)",
    "mouth_transfer": "share of the driving mouth's brightness change those frames reproduce (1 all, 0 none)",
    "edit_l1": "edited video L1 vs ground truth (face region)",
    "edit_fixed_overlay_l1": "edit pasted at a fixed image position (face region)",
    "real_self_l1": "self-reenactment L1 on real val clips",
    "real_source_baseline_l1": "L1 of returning the source crop",
}


def metrics_table(report: dict[str, Any]) -> list[str]:
    """The report's metrics as the lines of a Markdown table: metric, value (n/a when null), what it measures."""
    return ["| metric | value | what |", "| --- | --- | --- |",
            *(f"| `{key}` | {_fmt(report.get(key))} | {what} |" for key, what in _DESCRIPTIONS.items())]


def report_markdown(report: dict[str, Any], figures: list[str]) -> str:
    """The report as Markdown: a table of the metrics, then samples, notes, errors and figures."""
    cfg = report.get("config") or {}
    lines = [
        "# x2face evaluation",
        "",
        f"- weights: `{report.get('weights')}`",
        f"- model: {cfg.get('image_size')} px, base_channels {cfg.get('base_channels')}, "
        f"pose head {cfg.get('pose_head')}, audio head {cfg.get('audio_head')}",
        f"- device: {report.get('device')}; {report.get('seconds')} s; "
        f"settings: {json.dumps(report.get('settings'), sort_keys=True)}",
        "",
        *metrics_table(report),
    ]
    lines += ["", "Samples: " + ", ".join(f"{k} {v}" for k, v in (report.get("samples") or {}).items())]
    if report.get("notes"):
        lines += ["", "Notes:"] + [f"- `{k}`: {v}" for k, v in report["notes"].items()]
    if report.get("errors"):
        lines += ["", "Errors (these metrics are null):"] + [f"- `{k}`: {v}" for k, v in report["errors"].items()]
    if figures:
        lines += ["", "Figures:", ""] + [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], figures: dict[str, np.ndarray], out_dir: str | os.PathLike) -> Path:
    """Write ``report.json``, ``report.md`` and ``<figure>.png`` into ``out_dir`` (created); returns the json path."""
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for name, pic in figures.items():
        Image.fromarray(pic).save(out / f"{name}.png")
        names.append(f"{name}.png")
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2, default=str, allow_nan=False) + "\n", encoding="utf-8")
    (out / "report.md").write_text(report_markdown(report, names), encoding="utf-8")
    return path


def _default_real_dir() -> Path:
    return Path(os.environ.get("X2FACE_SHARED", Path(__file__).resolve().parent.parent.parent / "shared")) / "data" / "real"


def main(argv: list[str]) -> int:
    """``python -m x2face evaluate --weights W --out DIR [--quick]``: see the module docstring."""
    from .config import CONFIGS, get_config
    from .hub import load_model, pick_device

    p = argparse.ArgumentParser(prog="python -m x2face evaluate",
                                description="Measure a model on the synthetic world and real clips; writes "
                                            "DIR/report.json, DIR/report.md and figures.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", help="weights folder, Hub repo id ('owner/name[@rev]') or 'demo'")
    src.add_argument("--untrained", metavar="CONFIG", help=f"an untrained model of a named config ({', '.join(CONFIGS)})")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--quick", action="store_true", help="a sanity check in under a minute on a CPU")
    p.add_argument("--real", default=None, help="folder of real clips with MANIFEST.tsv (default ../shared/data/real)")
    p.add_argument("--no-real", action="store_true", help="skip the real-clip metrics")
    p.add_argument("--metrics", default=None, help=f"comma-separated subset of: {', '.join(METRICS)}")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0, help="seed of every draw (default 0)")
    args = p.parse_args(argv)

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    metrics = None
    if args.metrics:
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    real_dir = None if args.no_real else Path(args.real) if args.real else _default_real_dir()
    if args.real and not Path(args.real).is_dir():
        raise InputError(f"--real {args.real} is not a folder")
    device = pick_device(args.device)
    if args.untrained:
        torch.manual_seed(args.seed)
        model = X2Face(get_config(args.untrained)).to(device)
        weights = f"untrained:{args.untrained}"
    else:
        model = load_model(args.weights, device=device)
        weights = str(args.weights)
    settings = EvalSettings.quick(seed=args.seed) if args.quick else EvalSettings.full(seed=args.seed)
    report, figures = evaluate(model, settings, real_dir=real_dir, metrics=metrics, weights=weights,
                               progress=lambda line: print(f"  {line}", flush=True))
    path = write_report(report, figures, out)
    print(f"wrote {path} and {out / 'report.md'} ({report['seconds']} s)")
    for key in _DESCRIPTIONS:
        print(f"  {key}: {_fmt(report[key])}")
    if report["errors"]:
        print("some metrics failed: " + "; ".join(f"{k}: {v}" for k, v in report["errors"].items()))
        return 1
    return 0


__all__ = ["EDIT_CENTER", "EDIT_RADIUS", "METRICS", "METRIC_KEYS", "REPORT_KEYS", "EvalContext", "EvalSettings",
           "PoseCNN", "driving_grid", "edit_embedded_face", "edit_layer", "embedding_grid", "estimate_mouth_opening",
           "evaluate", "fit_linear", "l1", "main", "make_overlay", "metrics_table", "mouth_brightness", "mouth_region",
           "real_face_crops", "real_val_clips", "report_markdown", "transfer_slope", "write_report"]
