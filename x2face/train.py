"""Training: X2Face's two-stage curriculum (``python -m x2face train``) and its identity network
(``python -m x2face train-identity``), from one CPU process to ``torchrun`` on many GPUs.

Stage I (section 3.2 of the paper): pixelwise L1 between the generated and the driving frame,
source and driving frames from one video; SGD, momentum 0.9, batch 16, lr 1e-3 divided by 10 when
the validation loss plateaus. Stage II starts from stage I's weights at lr 1e-4 and adds the
identity losses of ``x2face.losses`` around a frozen VGG-11 identity network (``x2face.identity``).

Settings come from a TOML file (``configs/*.toml``), typed and validated: an unknown key or a value
of the wrong type is a ``ConfigError`` naming it. A file may start from another with
``base = "other.toml"`` (tables are merged key by key), and ``--set section.key=value`` overrides any
setting from the command line.

Reproducibility: every random draw of a step (its batch, dropout) is seeded from
``(run.seed, step, rank)``, so a run killed and resumed with ``--resume`` repeats the uninterrupted
run's batches, step count and loss curve. Checkpoints (model, optimizer, LR scheduler, step, log
accumulators) are written atomically every ``run.ckpt_every`` steps and when the process gets
SIGTERM or SIGUSR1 (cluster pre-emption); all ranks agree to stop at the same step.

Scale: ``torchrun --nproc_per_node N -m x2face train CONFIG`` (or ``--nnodes``) runs
DistributedDataParallel, gloo on CPU and NCCL on CUDA; ``optim.batch_size`` is the global batch,
split over the ranks. On CUDA, ``run.bf16`` autocasts to bfloat16 and ``run.channels_last`` uses
NHWC memory. Rank 0 writes ``train.csv``/``val.csv``, TensorBoard events (``tb/``) and a progress
bar with rate and ETA, and exports the final weights with their provenance.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import json
import math
import os
import signal
import sys
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from .config import X2FaceConfig, get_config
from .errors import ConfigError, WeightsError
from .losses import IdentityLossWeights, StageIILoss, gaussian_blur, photometric_l1
from .warp import warp

if typing.TYPE_CHECKING:
    from .model import X2Face

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
STAGES = ("I", "II")
DATA_SOURCES = ("synthetic", "real")
BATCH_KEYS = ("sources", "driving", "driving_other", "identity", "identity_other")


# ============================================================================================ configuration
@dataclass
class DataConfig:
    """Where training pairs come from.

    Attributes:
        sources: ``"synthetic"`` (x2face.data.synthetic) and/or ``"real"`` (x2face.data.video).
        real_fraction: share of each batch drawn from real clips when both sources are on.
        num_sources: K, source frames per pair (the paper trains with 1).
        synthetic_train_split, synthetic_val_split: splits of the synthetic world (``SPLITS``).
        manifests: ``MANIFEST.tsv`` files of real clips (paths relative to the working directory).
        voxceleb_roots: folders laid out ``identity/video/clip``.
        frame_folders: manifest folders whose photos are pre-cropped frames (grouped into clips).
        real_train_split, real_val_split: splits of the real clips (identity-disjoint).
        split_fractions: train/val/test shares for clips without a split column (hash of identity).
        fps: frames sampled per second of video (1 as in the paper for VoxCeleb-scale data).
        crop: ``face`` (x2face.faces), ``center`` or ``none`` for videos; frame folders are pre-cropped.
        cache_dir: cache of the decoded, cropped frames (uint8 .npy per clip).
        balance: sample real clips so each ``identity`` or each ``frame`` is equally likely.
        synthetic_device: where synthetic frames are rendered: ``cpu`` (in DataLoader workers when
            ``run.num_workers`` > 0) or ``train`` (the training device: on a GPU, in the training
            process, which then needs ``run.num_workers = 0``).
        synthetic_identities: train on the first N identities of the synthetic train split (0 = all
            1,000,000); a pool that fits the texture cache renders faster on a CPU. Validation always
            uses the whole val split.
        same_frame_fraction: share of each training batch whose driving frame is the pair's own (first)
            source frame: the two warps must then undo each other, so the embedded face has to keep what
            the driving frame shows (eyes, mouth) instead of averaging it away. 0 (the paper) by default;
            validation pairs are never replaced. Measured on the demo model it did not lower the synthetic
            reenactment errors (docs/training.md, "What did not help").
        drivers_per_source: training items come in groups of this many that share one video and its source
            frames, each with its own driving frame; the step embeds each group's sources once (the
            embedding network's share of the compute) and drives the embedded face with all of them. With
            BatchNorm the loss and its gradients are those of the same batch embedding every item's copy
            (duplicates leave batch statistics as they are). Must divide each batch's synthetic and real
            share. 1 (the paper: one driving frame per source) by default; validation pairs are never grouped.
    """

    sources: list[str] = field(default_factory=lambda: ["synthetic"])
    real_fraction: float = 0.5
    num_sources: int = 1
    synthetic_train_split: str = "train"
    synthetic_val_split: str = "val"
    manifests: list[str] = field(default_factory=list)
    voxceleb_roots: list[str] = field(default_factory=list)
    frame_folders: list[str] = field(default_factory=lambda: ["vox1-frames"])
    real_train_split: str = "train"
    real_val_split: str = "val"
    split_fractions: list[float] = field(default_factory=lambda: [0.75, 0.15, 0.10])
    fps: float = 1.0
    crop: str = "face"
    cache_dir: str = "runs/cache"
    balance: str = "identity"
    synthetic_device: str = "cpu"
    synthetic_identities: int = 0
    same_frame_fraction: float = 0.0
    drivers_per_source: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.drivers_per_source, bool) or self.drivers_per_source < 1:
            raise ConfigError(f"[data] drivers_per_source must be an int >= 1, got {self.drivers_per_source!r}")
        if isinstance(self.same_frame_fraction, bool) or not 0 <= self.same_frame_fraction <= 1:
            raise ConfigError(f"[data] same_frame_fraction must be in [0, 1], got {self.same_frame_fraction!r}")
        bad = [s for s in self.sources if s not in DATA_SOURCES]
        if bad or not self.sources:
            raise ConfigError(f"[data] sources must be a non-empty list of {', '.join(DATA_SOURCES)}, got {self.sources}")
        if not 0 <= self.real_fraction <= 1:
            raise ConfigError(f"[data] real_fraction must be in [0, 1], got {self.real_fraction}")
        if self.num_sources < 1:
            raise ConfigError(f"[data] num_sources must be >= 1, got {self.num_sources}")
        if "real" in self.sources and not (self.manifests or self.voxceleb_roots):
            raise ConfigError("[data] sources include 'real' but neither manifests nor voxceleb_roots is set")
        if self.crop not in ("face", "center", "none"):
            raise ConfigError(f"[data] crop must be face, center or none, got {self.crop!r}")
        if self.balance not in ("identity", "frame"):
            raise ConfigError(f"[data] balance must be identity or frame, got {self.balance!r}")
        if self.synthetic_device not in ("cpu", "train"):
            raise ConfigError(f"[data] synthetic_device must be cpu or train, got {self.synthetic_device!r}")
        if len(self.split_fractions) != 3 or min(self.split_fractions) < 0:
            raise ConfigError(f"[data] split_fractions must be 3 numbers >= 0 (train, val, test), got {self.split_fractions}")


def _sgd(params, o: "OptimConfig") -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def _adam(params, o: "OptimConfig") -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=o.lr, betas=(o.betas[0], o.betas[1]), weight_decay=o.weight_decay)


def _adamw(params, o: "OptimConfig") -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=o.lr, betas=(o.betas[0], o.betas[1]), weight_decay=o.weight_decay)


#: optimiser name -> builder(parameters, OptimConfig)
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {"sgd": _sgd, "adam": _adam, "adamw": _adamw}


class Schedule:
    """A learning-rate schedule the ``Trainer`` steps after every optimiser step and after every validation."""

    def __init__(self, scheduler: Any, per_step: bool) -> None:
        self.scheduler, self.per_step = scheduler, per_step

    def after_step(self) -> None:
        if self.per_step:
            self.scheduler.step()

    def after_validation(self, loss: float) -> None:
        if not self.per_step:
            self.scheduler.step(loss)

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


def _plateau(optimizer: torch.optim.Optimizer, o: "OptimConfig", steps: int) -> Schedule:
    return Schedule(torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=o.plateau_factor, patience=o.plateau_patience,
        threshold=o.plateau_threshold, min_lr=o.min_lr), per_step=False)


def cosine_factor(step: int, steps: int, warmup: int, floor: float) -> float:
    """The cosine schedule's lr / initial lr after ``step`` optimiser steps: linear from 1/warmup to 1 over
    ``warmup`` steps, then half a cosine from 1 down to ``floor`` at ``steps`` (and ``floor`` after)."""
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, steps - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def _cosine(optimizer: torch.optim.Optimizer, o: "OptimConfig", steps: int) -> Schedule:
    floor = min(1.0, o.min_lr / o.lr)
    return Schedule(torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_factor(step, steps, o.warmup_steps, floor)), per_step=True)


#: schedule name -> builder(optimizer, OptimConfig, total steps)
SCHEDULES: dict[str, Callable[..., Schedule]] = {"plateau": _plateau, "cosine": _cosine}


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule (the paper's: SGD, momentum 0.9, batch 16, lr / 10 on plateau).

    Attributes:
        name: a key of ``OPTIMIZERS`` (sgd, adam, adamw).
        lr: initial learning rate.
        momentum: SGD momentum.
        betas: Adam(W) betas.
        weight_decay: L2 (sgd, adam) or decoupled (adamw) weight decay.
        batch_size: global batch (split evenly over the ranks).
        plateau_factor: factor the lr is multiplied by when the validation loss plateaus.
        plateau_patience: validations without improvement before the lr drops.
        plateau_threshold: relative improvement that counts as one.
        min_lr: the lr never drops below this (the cosine schedule ends there).
        schedule: a key of ``SCHEDULES``: ``plateau`` (the paper's: lr x plateau_factor when the validation
            loss stops improving) or ``cosine`` (half a cosine from lr to min_lr over ``run.steps``, after
            ``warmup_steps`` of linear warm-up; for short runs, where a plateau never comes).
        warmup_steps: the cosine schedule's linear warm-up.
        grad_clip: clip the gradient norm to this (0 = off).
        ema_decay: keep an exponential moving average of the weights and BatchNorm statistics
            (``WeightAverage``), decaying by this per step; the exported weights are then the average, not the
            last step's (0 = off); ``val.csv`` then also logs the average's validation loss (``ema_loss``).
    """

    name: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    batch_size: int = 16
    plateau_factor: float = 0.1
    plateau_patience: int = 5
    plateau_threshold: float = 1e-3
    min_lr: float = 1e-6
    schedule: str = "plateau"
    warmup_steps: int = 0
    grad_clip: float = 0.0
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"[optim] name must be one of {', '.join(OPTIMIZERS)}, got {self.name!r}")
        if self.lr <= 0 or self.batch_size < 1:
            raise ConfigError(f"[optim] lr must be > 0 and batch_size >= 1 (got {self.lr}, {self.batch_size})")
        if not 0 < self.plateau_factor < 1:
            raise ConfigError(f"[optim] plateau_factor must be in (0, 1), got {self.plateau_factor}")
        if len(self.betas) != 2:
            raise ConfigError(f"[optim] betas must be two numbers, got {self.betas}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"[optim] schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.warmup_steps < 0 or self.min_lr < 0:
            raise ConfigError(f"[optim] warmup_steps and min_lr must be >= 0 (got {self.warmup_steps}, {self.min_lr})")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"[optim] ema_decay must be in [0, 1) (0 = off), got {self.ema_decay}")


class WeightAverage:
    """An exponential moving average of a model's ``state_dict`` (weights and BatchNorm running statistics).

    After update n (counting from 1) every floating-point tensor holds ``avg = d * avg + (1 - d) * current`` with
    ``d = min(decay, (1 + n) / (10 + n))``: the warm-up keeps a short run's average near its recent weights
    instead of its initialisation. Integer tensors (BatchNorm's batch counters) are copied.

    Args:
        state: the model's ``state_dict`` at the start (copied).
        decay: the decay per update, in (0, 1).
    """

    def __init__(self, state: dict[str, torch.Tensor], decay: float) -> None:
        self.decay = float(decay)
        self.updates = 0
        self.average = {k: v.detach().clone() for k, v in state.items()}
        self.floats = [k for k, v in self.average.items() if v.is_floating_point()]  # averaged
        self.counters = [k for k, v in self.average.items() if not v.is_floating_point()]  # copied

    def factor(self) -> float:
        """The decay the next update uses."""
        n = self.updates + 1
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, state: dict[str, torch.Tensor]) -> None:
        """Fold the model's current ``state_dict`` into the average."""
        if self.floats:
            torch._foreach_lerp_([self.average[k] for k in self.floats], [state[k].detach() for k in self.floats],
                                 1.0 - self.factor())
        for k in self.counters:
            self.average[k].copy_(state[k])
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates,
                "average": {k: v.detach().cpu() for k, v in self.average.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        for k, v in state["average"].items():
            self.average[k].copy_(v)


_PAPER_LOSS = IdentityLossWeights()  #: the paper's identity-loss settings, StageConfig's defaults


@dataclass
class StageConfig:
    """Which stage of the curriculum, and stage II's identity losses (``x2face.losses``).

    Attributes:
        stage: ``"I"`` (photometric L1) or ``"II"`` (plus the identity losses).
        init_from: X2Face weights (folder or Hub id) to start from; stage II starts from stage I's.
        identity_network: the identity network (a ``train-identity`` folder or a VGG-11 weights file).
        same_layers, other_layers, same_ratio, other_ratio, balance: see ``IdentityLossWeights``.
        blur_sigmas: Gaussian blurs (sigma in pixels of the model's frames) of extra photometric terms, each
            ``blur_weight * |g_dA^s - G_s * d_A|_1`` with ``g_dA^s`` the blurred sources rendered through the
            same warps (``x2face.losses``); ``[]`` (the default) is the paper's loss.
        blur_weight: the weight of each blurred term (the sharp photometric L1 has weight 1).
    """

    stage: str = "I"
    init_from: str = ""
    identity_network: str = ""
    same_layers: list[str] = field(default_factory=lambda: list(_PAPER_LOSS.same_layers))
    other_layers: list[str] = field(default_factory=lambda: list(_PAPER_LOSS.other_layers))
    same_ratio: float = _PAPER_LOSS.same_ratio
    other_ratio: float = _PAPER_LOSS.other_ratio
    balance: str = _PAPER_LOSS.balance
    blur_sigmas: list[float] = field(default_factory=list)
    blur_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"[stage] stage must be \"I\" or \"II\", got {self.stage!r}")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and 0 < x <= 32
                   for x in self.blur_sigmas):
            raise ConfigError(f"[stage] blur_sigmas must be numbers in (0, 32] (pixels), got {self.blur_sigmas!r}")
        if isinstance(self.blur_weight, bool) or not (isinstance(self.blur_weight, (int, float))
                                                       and math.isfinite(self.blur_weight) and self.blur_weight >= 0):
            raise ConfigError(f"[stage] blur_weight must be a number >= 0, got {self.blur_weight!r}")
        if self.stage == "II" and not self.identity_network:
            raise ConfigError("[stage] stage II needs identity_network (train one with `python -m x2face train-identity`)")
        self.loss_weights()  # validates layer names, ratios and balance

    def loss_weights(self) -> IdentityLossWeights:
        """The ``IdentityLossWeights`` of these settings."""
        return IdentityLossWeights(same_layers=self.same_layers, other_layers=self.other_layers,
                                   same_ratio=self.same_ratio, other_ratio=self.other_ratio, balance=self.balance)


@dataclass
class RunConfig:
    """How a run is executed and recorded.

    Attributes:
        steps: total optimiser steps (the schedule's end; ``--resume`` continues up to it).
        val_every: validate (and step the plateau scheduler) every this many steps.
        val_batches: fixed validation batches (drawn once from the val splits with ``seed``).
        ckpt_every: write ``out_dir/checkpoint.pt`` every this many steps (0 = only at the end and on SIGTERM).
        log_every: write a row of the step-averaged losses to ``train.csv`` every this many steps.
        out_dir: run folder: checkpoint, logs, TensorBoard events, ``weights/`` at the end.
        export_dir: also save the final weights here (e.g. ``assets/x2face-demo``); empty = no.
        seed: seed of everything random (weights, batches, dropout).
        device: ``auto`` (CUDA when there is one), ``cpu``, ``cuda``; under torchrun each rank uses its LOCAL_RANK GPU.
        threads: torch CPU threads per process (0 = leave torch's default, one per core).
        threads_amx: the threads instead when ``bf16_cpu`` autocasts (a CPU with AMX); 0 = ``threads``. The demo
            recipe trains with all cores in float32 (on a 2-core CPU without AMX, with its one DataLoader worker
            beside them: 44 against 34 images/s with one thread) and with one in bf16 on AMX (67 images/s,
            measured with one; the data worker renders on the other core).
        bf16: autocast to bfloat16 on CUDA.
        bf16_cpu: autocast to bfloat16 on a CPU too, where it has AMX (Intel Sapphire Rapids and later;
            float32 elsewhere, with a note). On the 2-core development CPU the demo recipe's stage I ran at
            67 images/s against 39 in float32 and learned about as much per step (docs/training.md).
        channels_last: NHWC memory format (on CUDA and on the CPU, where oneDNN's convolutions are ~1.7x faster with it).
        flow_init: ``default`` (PyTorch's initialisation) or ``identity``: the last layers of both networks'
            sampling offsets start at zero, so training starts from generated = source (the L1 of copying
            the source frame) instead of random warps. A key of ``FLOW_INITS``.
        compile: ``torch.compile`` the training step.
        num_workers: DataLoader worker processes making batches (0 = in the training process).
        tensorboard: write TensorBoard events to ``out_dir/tb``.
        progress: show a progress bar (rank 0).
        stop_after: simulate a kill: after this many steps every rank sends itself SIGTERM (0 = off).
        max_minutes: a wall-clock budget for this invocation's training (0 = none). When it is spent the run ends
            at that step as if it were the last (validation, checkpoint, ``weights/`` whose provenance records
            ``stopped_by``); ``--resume`` later continues towards ``steps`` with a fresh budget. Meant for the
            plateau schedule: a cosine schedule cut short never decays.
    """

    steps: int = 1000
    val_every: int = 500
    val_batches: int = 8
    ckpt_every: int = 500
    log_every: int = 10
    out_dir: str = "runs/x2face"
    export_dir: str = ""
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    threads_amx: int = 0
    bf16: bool = True
    bf16_cpu: bool = False
    channels_last: bool = True
    flow_init: str = "default"
    compile: bool = False
    num_workers: int = 0
    tensorboard: bool = True
    progress: bool = True
    stop_after: int = 0
    max_minutes: float = 0.0

    def __post_init__(self) -> None:
        for name in ("steps", "val_every", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"[run] {name} must be >= 1, got {getattr(self, name)}")
        for name in ("val_batches", "ckpt_every", "threads", "threads_amx", "num_workers", "stop_after", "max_minutes"):
            if getattr(self, name) < 0:
                raise ConfigError(f"[run] {name} must be >= 0, got {getattr(self, name)}")
        if self.flow_init not in ("default", "identity"):  # the keys of FLOW_INITS (defined below)
            raise ConfigError(f"[run] flow_init must be 'default' or 'identity', got {self.flow_init!r}")


@dataclass
class TrainConfig:
    """Everything ``python -m x2face train`` needs: ``[model] [data] [optim] [stage] [run]``.

    ``[model]`` is ``name = "paper" | "demo" | "tiny"`` (``x2face.config.get_config``) and any
    ``X2FaceConfig`` field overriding it; ``model`` holds the resulting architecture.
    """

    model: X2FaceConfig = field(default_factory=X2FaceConfig)
    model_name: str = "paper"
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    stage: StageConfig = field(default_factory=StageConfig)
    run: RunConfig = field(default_factory=RunConfig)

    SECTIONS: typing.ClassVar[dict[str, type]] = {"data": DataConfig, "optim": OptimConfig, "stage": StageConfig,
                                                  "run": RunConfig}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from nested tables (what a TOML file holds); unknown tables or keys are errors."""
        data = _sections(data, "model", cls.SECTIONS)
        model_name, model = _model_section(data.get("model", {}))
        sections = {name: _build(kind, data.get(name, {}), name) for name, kind in cls.SECTIONS.items()}
        return cls(model=model, model_name=model_name, **sections)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict that ``from_dict`` reads back (and ``provenance.json`` records)."""
        out: dict[str, Any] = {"model": {"name": self.model_name, **self.model.to_dict()}}
        for name in self.SECTIONS:
            out[name] = dataclasses.asdict(getattr(self, name))
        return out


@dataclass
class IdentityDataConfig(DataConfig):
    """``[data]`` of ``train-identity``: ``DataConfig`` plus how many synthetic identities to classify.

    Attributes:
        synthetic_identities: classify the first N identities of the synthetic train split (0 = all).
    """

    synthetic_identities: int = 1000


@dataclass
class IdentityTrainConfig:
    """Everything ``python -m x2face train-identity`` needs: ``[network] [data] [optim] [run]``.

    ``[network]`` holds ``IdentityConfig`` fields (``num_identities`` comes from the data).
    """

    network: dict[str, Any] = field(default_factory=dict)
    data: IdentityDataConfig = field(default_factory=IdentityDataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adam", lr=1e-3, batch_size=64))
    run: RunConfig = field(default_factory=RunConfig)

    SECTIONS: typing.ClassVar[dict[str, type]] = {"data": IdentityDataConfig, "optim": OptimConfig, "run": RunConfig}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "IdentityTrainConfig":
        """Build from nested tables; unknown tables or keys are errors."""
        from .identity import IdentityConfig

        data = _sections(data, "network", cls.SECTIONS)
        network = dict(data.get("network", {}))
        if "num_identities" in network:
            raise ConfigError("[network] num_identities is set from the data; remove it")
        try:
            IdentityConfig.from_dict({**network, "num_identities": 1})  # validate now, with a placeholder
        except ConfigError as exc:
            raise ConfigError(f"[network] {exc}") from exc
        defaults = cls()
        sections = {name: _build(kind, data.get(name, {}), name, getattr(defaults, name))
                    for name, kind in cls.SECTIONS.items()}
        return cls(network=network, **sections)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (what ``from_dict`` reads back)."""
        out: dict[str, Any] = {"network": dict(self.network)}
        for name in self.SECTIONS:
            out[name] = dataclasses.asdict(getattr(self, name))
        return out


def _sections(data: dict[str, Any], first: str, sections: dict[str, type]) -> dict[str, Any]:
    """A config file's tables without ``base`` (already merged); a table other than ``first`` and
    ``sections`` is a ``ConfigError``."""
    data = dict(data)
    data.pop("base", None)
    unknown = sorted(set(data) - {first, *sections})
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(unknown)} (known: {first}, {', '.join(sections)})")
    return data


def _model_section(table: dict[str, Any]) -> tuple[str, X2FaceConfig]:
    if not isinstance(table, dict):
        raise ConfigError(f"[model] must be a table, got {table!r}")
    table = dict(table)
    name = table.pop("name", "paper")
    try:
        base = get_config(name).to_dict()
        return name, X2FaceConfig.from_dict({**base, **table})
    except ConfigError as exc:
        raise ConfigError(f"[model] {exc}") from exc


def _check_type(value: Any, kind: Any, where: str) -> Any:
    """Check ``value`` against a simple annotation (int, float, str, bool, list[...]) and return it (ints -> floats)."""
    origin = typing.get_origin(kind)
    if origin is list:
        (inner,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return [_check_type(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported setting type {kind}")  # pragma: no cover - a bug in this file


def _build(kind: type, table: Any, section: str, default: Any = None) -> Any:
    """A section dataclass from a TOML table: unknown keys and wrong types are ``ConfigError``s naming them."""
    if not isinstance(table, dict):
        raise ConfigError(f"[{section}] must be a table, got {table!r}")
    hints = typing.get_type_hints(kind)
    known = [f.name for f in dataclasses.fields(kind)]
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) in [{section}]: {', '.join(unknown)} (known: {', '.join(known)})")
    values = {k: _check_type(v, hints[k], f"[{section}] {k}") for k, v in table.items()}
    if default is not None:
        values = {**dataclasses.asdict(default), **values}
    return kind(**values)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_toml(path: str | os.PathLike, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """A TOML config as nested dicts, with ``base = "file.toml"`` (relative to this file) merged under it."""
    path = Path(path)
    if str(path.resolve()) in _seen:
        raise ConfigError(f"config {path} includes itself through 'base'")
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as exc:
        raise ConfigError(f"no config file at {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:  # (tomllib decodes the bytes as UTF-8 first)
        raise ConfigError(f"{path} is not valid TOML: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path} is a folder, not a config file") from exc
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: base must be a file name, got {base!r}")
        data = _merge(read_toml(path.parent / base, _seen + (str(path.resolve()),)), data)
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values in TOML syntax; bare words are strings)."""
    data = _merge({}, data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) != 2 or not all(parts):
            raise ConfigError(f"--set takes section.key=value, got {item!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        section = data.setdefault(parts[0], {})
        if not isinstance(section, dict):
            raise ConfigError(f"--set {item!r}: {parts[0]} is not a section")
        section[parts[1]] = value
    return data


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> TrainConfig:
    """Read a ``train`` config file (+ ``--set`` overrides) into a validated ``TrainConfig``."""
    return TrainConfig.from_dict(apply_overrides(read_toml(path), overrides or []))


def load_identity_config(path: str | os.PathLike, overrides: list[str] | None = None) -> IdentityTrainConfig:
    """Read a ``train-identity`` config file (+ overrides) into a validated ``IdentityTrainConfig``."""
    return IdentityTrainConfig.from_dict(apply_overrides(read_toml(path), overrides or []))


# ============================================================================================ processes
class Dist:
    """This process's place in a (maybe) distributed run; a no-op for one process.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) it joins the process group (NCCL on CUDA, gloo on CPU)
    and keeps a gloo group for control messages (the stop flag), which never waits on a GPU.
    """

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        from .hub import pick_device

        self.device = pick_device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        self.control = None
        if self.world > 1:
            if not dist.is_initialized():
                dist.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo",
                                        device_id=self.device if self.device.type == "cuda" else None)
            self.control = dist.new_group(backend="gloo") if self.device.type == "cuda" else dist.group.WORLD

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes logs, checkpoints and weights."""
        return self.rank == 0

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over the ranks, in place (identity for one process)."""
        if self.world > 1:
            dist.all_reduce(t)
        return t

    def any_each(self, *flags: bool) -> tuple[bool, ...]:
        """For each flag: true on every rank when it is true on any rank (the ranks' agreement to stop),
        all in one all-reduce."""
        if self.world == 1:
            return tuple(bool(f) for f in flags)
        t = torch.tensor([1.0 if f else 0.0 for f in flags])
        dist.all_reduce(t, group=self.control)
        return tuple(bool(v > 0) for v in t.tolist())

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier(group=self.control)

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (platform-independent): the seed of step ``s`` on rank ``r`` is ``mix_seed(seed, s, r, ...)``."""
    words = np.random.SeedSequence([int(p) % 2**63 for p in parts]).generate_state(2, dtype=np.uint32)
    return int(words[0]) << 31 ^ int(words[1])


def _identity_flow_init(model: X2Face) -> None:
    """Zero the last convolution of both offset outputs: both warps start as the identity, so the first
    generated frame is the source frame itself (the embedding's confidence channel keeps its init)."""
    with torch.no_grad():
        model.embedding.up[0].conv.weight[:2].zero_()  # channels 0:2 = offset x, y; channel 2 = confidence
        model.driving.up[0].conv.weight.zero_()


#: ``run.flow_init`` -> how a fresh model's weights are initialised before stage I.
FLOW_INITS: dict[str, Callable[[X2Face], None]] = {
    "default": lambda model: None,
    "identity": _identity_flow_init,
}


# ============================================================================================ data
def _synthetic(split: str, image_size: int, num_sources: int, seed: int, device: torch.device | str = "cpu",
               identities: int = 0):
    from .data.synthetic import SPLITS, SyntheticPairs

    if split not in SPLITS:
        raise ConfigError(f"[data] unknown synthetic split {split!r}; choose one of {', '.join(SPLITS)}")
    if identities and not 2 <= identities <= len(SPLITS[split]):
        raise ConfigError(f"[data] synthetic_identities must be 0 or between 2 and {len(SPLITS[split])}, got {identities}")
    return SyntheticPairs(split, image_size, num_sources=num_sources, seed=seed, device=device,
                          identities=identities or None)


def _clips(cfg: DataConfig):
    from .data.video import load_clips

    return load_clips(cfg.manifests, cfg.voxceleb_roots, cfg.frame_folders, cfg.split_fractions)


def _real(cfg: DataConfig, clips, split: str, image_size: int, seed: int, verbose: bool):
    from .data.video import RealVideoPairs

    data = RealVideoPairs(clips, split, image_size, num_sources=cfg.num_sources, seed=seed, fps=cfg.fps,
                          crop=cfg.crop, cache_dir=cfg.cache_dir, balance=cfg.balance, verbose=False)
    if verbose:
        info = data.describe()
        print(f"real {split}: {info['clips']} clips, {info['identities']} identities, {info['frames']} frames"
              + (f"; skipped {len(info['skipped'])}: " + "; ".join(info["skipped"][:5]) if info["skipped"] else ""),
              file=sys.stderr)
    return data


class PairStream:
    """Batches of training pairs as a pure function of ``(seed, index, rank)``.

    Each batch mixes ``round(batch_size * real_fraction)`` real pairs with synthetic ones (when both
    sources are on), all drawn with one ``torch.Generator`` seeded from ``(seed, index, rank)``.
    """

    def __init__(self, synthetic, real, batch_size: int, real_fraction: float, seed: int, rank: int,
                 same_frame_fraction: float = 0.0, drivers: int = 1) -> None:
        self.synthetic, self.real = synthetic, real
        self.batch_size, self.seed, self.rank, self.drivers = batch_size, seed, rank, drivers
        # items i where floor((i + 1) f) steps up: spread over the batch, so synthetic and real pairs both get some
        f = same_frame_fraction
        self.same_frame = [i for i in range(batch_size) if math.floor((i + 1) * f + 1e-9) > math.floor(i * f + 1e-9)]
        if synthetic is not None and real is not None:
            self.num_real = int(round(batch_size * real_fraction))
        else:
            self.num_real = batch_size if real is not None else 0
        if batch_size % drivers or self.num_real % drivers:
            raise ConfigError(f"[data] drivers_per_source = {drivers} must divide the per-process batch ({batch_size}) "
                              f"and its real share ({self.num_real} pairs)")

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        """Batch ``index``: ``sources`` [B, K, 3, S, S], ``driving``/``driving_other`` [B, 3, S, S] float in [0, 1],
        ``identity``/``identity_other`` [B] long, ``is_real`` [B] bool; groups of ``drivers`` consecutive items
        share their sources."""
        g = torch.Generator().manual_seed(mix_seed(self.seed, index, self.rank))
        parts = []
        if self.batch_size - self.num_real > 0:
            b = self.synthetic.batch(self.batch_size - self.num_real, g, **self._grouped())
            parts.append({**{k: b[k] for k in BATCH_KEYS}, "is_real": torch.zeros(len(b["driving"]), dtype=torch.bool)})
        if self.num_real > 0:
            b = self.real.batch(self.num_real, g, **self._grouped())
            parts.append({**{k: b[k] for k in BATCH_KEYS}, "is_real": torch.ones(len(b["driving"]), dtype=torch.bool)})
        device = parts[0]["driving"].device  # synthetic frames may be rendered on the GPU (data.synthetic_device)
        batch = {k: torch.cat([p[k].to(device) for p in parts]) for k in parts[0]}
        if self.same_frame:
            idx = torch.tensor(self.same_frame, device=device)
            batch["driving"][idx] = batch["sources"][idx, 0]  # [n, 3, S, S]: drive each with its own source frame
        return batch

    def _grouped(self) -> dict[str, int]:
        return {"drivers": self.drivers} if self.drivers > 1 else {}  # datasets without groups take no argument


class StepBatches(torch.utils.data.IterableDataset):
    """The stream's batches for steps ``start, start+1, ...`` made by DataLoader workers, in order.

    Worker w of n makes steps ``start + w, start + w + n, ...``; the DataLoader returns them round-robin,
    i.e. in step order.
    """

    def __init__(self, stream: PairStream, start: int) -> None:
        self.stream, self.start = stream, start

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, num = (info.id, info.num_workers) if info is not None else (0, 1)
        step = self.start + wid
        while True:
            yield step, self.stream.batch(step)
            step += num


def _batches(stream: PairStream, start: int, num_workers: int):
    """Iterator of (step index, batch) from ``start`` on, in the training process or in workers."""
    if num_workers == 0:
        step = start
        while True:
            yield step, stream.batch(step)
            step += 1
    loader = torch.utils.data.DataLoader(StepBatches(stream, start), batch_size=None, num_workers=num_workers,
                                         prefetch_factor=2, persistent_workers=False)
    yield from loader


# ============================================================================================ tasks
class GeneratorStep(nn.Module):
    """The model's training forward: embed the sources once, drive them with d_A (and d_R in stage II).

    With ``blur_sigmas``, blurred copies of the sources ride along through the same two warps (one
    ``grid_sample`` of more channels), for the blurred photometric terms of ``StageConfig.blur_sigmas``.
    DistributedDataParallel wraps this module, so all generated frames come from one forward.
    """

    def __init__(self, model: nn.Module, blur_sigmas: typing.Sequence[float] = (), drivers: int = 1) -> None:
        super().__init__()
        self.model = model
        self.blur_sigmas = tuple(float(x) for x in blur_sigmas)
        self.drivers = drivers  # items come in groups of this many sharing their sources: embed each group once

    def forward(self, sources: torch.Tensor, driving: torch.Tensor, driving_other: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
        """sources [B, K, 3, S, S], driving [B, 3, S, S], driving_other [B, 3, S, S] or None (float, [0, 1])
        -> (g_dA [B, 3, S, S], g_dR [B, 3, S, S] or None, [g_dA rendered from the sources blurred by each of
        ``blur_sigmas``, [B, 3, S, S] each]). With ``drivers`` = d > 1, items i*d .. i*d+d-1 must share their
        sources (``data.drivers_per_source``): only each group's first item is embedded."""
        m = self.model
        d = self.drivers if self.training else 1  # validation batches are not grouped
        if d > 1:
            sources = sources[::d]  # [B, K, 3, S, S] -> [B/d, K, 3, S, S]
        carry = None
        if self.blur_sigmas:
            b, k, c, h, w = sources.shape
            frames = sources.reshape(b * k, c, h, w)  # [B, K, 3, S, S] -> [B*K, 3, S, S]
            carry = torch.cat([gaussian_blur(frames, s) for s in self.blur_sigmas], 1)  # [B*K, 3n, S, S]
            carry = carry.reshape(b, k, -1, h, w)  # [B*K, 3n, S, S] -> [B, K, 3n, S, S]
        emb = m.embed_with_confidence(sources, carry)
        face = emb.face.repeat_interleave(d, 0) if d > 1 else emb.face  # [B/d, 3, S, S] -> [B, 3, S, S]
        b = driving.shape[0]
        drivers = driving if driving_other is None else torch.cat([driving, driving_other])  # [B or 2B, 3, S, S]
        grid = m.driving_grid(m.driving_vector(drivers))  # [B or 2B, S, S, 2]
        face = face if driving_other is None else torch.cat([face, face])  # [B or 2B, 3, S, S]
        generated = warp(face, grid)  # [B or 2B, 3, S, S]
        blurred = []
        if emb.carried is not None:
            carried = emb.carried.repeat_interleave(d, 0) if d > 1 else emb.carried  # [B, 3n, S, S]
            carried = warp(carried, grid[:b])  # [B, 3n, S, S]
            blurred = list(carried.split(3, dim=1))  # n x [B, 3, S, S]
        if driving_other is None:
            return generated, None, blurred
        return generated[:b], generated[b:], blurred


class X2FaceTask:
    """Stage I / stage II training of an ``X2Face`` (what ``Trainer`` calls)."""

    kind = "x2face"
    images_per_item = 1  # one (sources, driving) pair

    def __init__(self, cfg: TrainConfig, device: torch.device) -> None:
        from .model import X2Face

        self.cfg = cfg
        torch.manual_seed(cfg.run.seed)
        if cfg.stage.init_from:
            from .hub import resolve

            where, revision = resolve(cfg.stage.init_from)
            model = X2Face.from_pretrained(where, revision=revision)
            if model.config != cfg.model:
                raise ConfigError(f"[stage] init_from {cfg.stage.init_from} has architecture {model.config.to_dict()}, "
                                  f"but [model] says {cfg.model.to_dict()}; make them agree")
        else:
            model = X2Face(cfg.model)
            FLOW_INITS[cfg.run.flow_init](model)
        model.check_inputs = False  # batches come from x2face's own datasets
        for head in (model.pose, model.audio):  # not trained here: keep them as they are
            if head is not None:
                head.requires_grad_(False)
        self.model = model.to(device).train()
        self.module = GeneratorStep(self.model, cfg.stage.blur_sigmas, cfg.data.drivers_per_source)
        self.loss_fn = None
        if cfg.stage.stage == "II":
            from .identity import load_identity_network

            identity = load_identity_network(cfg.stage.identity_network)
            if identity.config.image_size != cfg.model.image_size:
                print(f"note: the identity network was trained at {identity.config.image_size} px and now sees "
                      f"{cfg.model.image_size} px frames", file=sys.stderr)
            self.loss_fn = StageIILoss(identity, cfg.stage.loss_weights()).to(device)

    def parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The stage's objective on a batch -> (scalar, {part: detached scalar})."""
        if self.loss_fn is None:
            generated, _, blurred = module(batch["sources"], batch["driving"])
            loss = photometric_l1(generated, batch["driving"])
            parts = {"photometric": loss.detach()}
        else:
            generated, generated_other, blurred = module(batch["sources"], batch["driving"], batch["driving_other"])
            loss, parts = self.loss_fn(generated, batch["driving"], generated_other, batch["sources"][:, 0])
        for sigma, render in zip(self.cfg.stage.blur_sigmas, blurred):  # [stage] blur_sigmas (none by default)
            term = photometric_l1(render, gaussian_blur(batch["driving"], sigma))
            loss = loss + self.cfg.stage.blur_weight * term
            parts[f"blur_l1_{sigma:g}"] = term.detach()
        # not a loss: the L1 of copying the source frame, the bar the photometric L1 has to go under
        parts["source_baseline_l1"] = photometric_l1(batch["sources"][:, 0], batch["driving"]).detach()
        return loss, parts

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)

    def export(self, folder: Path, info: dict[str, Any]) -> None:
        from .hub import write_provenance

        folder.mkdir(parents=True, exist_ok=True)
        model = self.model
        model.eval()
        model.save_pretrained(folder)
        model.train()
        write_provenance(folder, info)


class IdentityTask:
    """Identity classification of the VGG-11 identity network (``train-identity``)."""

    kind = "identity"
    images_per_item = 2  # driving and driving_other, each classified

    def __init__(self, cfg: IdentityTrainConfig, num_identities: int, device: torch.device) -> None:
        from .identity import IdentityConfig, IdentityNetwork

        self.cfg = cfg
        torch.manual_seed(cfg.run.seed)
        self.net = IdentityNetwork(IdentityConfig.from_dict({**cfg.network, "num_identities": num_identities}))
        self.net.to(device).train()
        self.module = self.net

    def parameters(self):
        return list(self.net.parameters())

    def loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Cross-entropy of the identity of ``driving`` and ``driving_other`` -> (scalar, {cross_entropy, accuracy})."""
        images = torch.cat([batch["driving"], batch["driving_other"]])  # [2B, 3, S, S]
        labels = torch.cat([batch["identity"], batch["identity_other"]])  # [2B]
        logits = module(images).float()
        loss = nn.functional.cross_entropy(logits, labels)
        accuracy = (logits.argmax(1) == labels).float().mean()
        return loss, {"cross_entropy": loss.detach(), "accuracy": accuracy.detach()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.net.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict(state)

    def export(self, folder: Path, info: dict[str, Any]) -> None:
        self.net.eval()
        self.net.save_pretrained(folder)
        self.net.train()
        (folder / "provenance.json").write_text(json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")


class SyntheticIdentityFrames:
    """Frames of the first N identities of a synthetic split, labelled 0 .. N-1 (identity classification).

    ``batch(b, generator)`` renders 2b frames (each of a random identity, at a random moment of a random
    video) as the keys ``PairStream`` reads: ``driving``/``driving_other`` float [b, 3, S, S] in [0, 1]
    with class labels ``identity``/``identity_other`` long [b] (``sources`` is ``driving`` [b, 1, 3, S, S]).
    """

    def __init__(self, split: str, image_size: int, num_identities: int, device: torch.device | str = "cpu") -> None:
        from .data.synthetic import SPLITS

        if split not in SPLITS:
            raise ConfigError(f"[data] unknown synthetic split {split!r}; choose one of {', '.join(SPLITS)}")
        seeds = SPLITS[split]
        self.seeds = seeds[: min(num_identities or len(seeds), len(seeds))]
        self.image_size, self.device = image_size, torch.device(device)
        self._world = None

    def __len__(self) -> int:
        return len(self.seeds)

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers build their own world (texture cache)
        return {**self.__dict__, "_world": None}

    def batch(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        from .data.synthetic import VIDEO_SECONDS, Motion, SyntheticWorld

        if self._world is None:
            self._world = SyntheticWorld(self.image_size, self.device, cache_size=max(1024, len(self.seeds)))
        n = 2 * batch_size
        labels = torch.randint(0, len(self.seeds), (n,), generator=generator)
        times = torch.rand(n, 1, generator=generator) * VIDEO_SECONDS  # [2B, 1]
        params = Motion.draw(n, generator).at(times)
        frames = self._world.render([self.seeds[int(c)] for c in labels], params)  # [2B, 3, S, S]
        b = batch_size
        labels = labels.to(frames.device)
        return {"sources": frames[:b, None], "driving": frames[:b], "driving_other": frames[b:],
                "identity": labels[:b], "identity_other": labels[b:]}


class LabelledStream(PairStream):
    """A ``PairStream`` whose real identities are shifted past the synthetic classes (one label space)."""

    def __init__(self, *args, real_offset: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.real_offset = real_offset

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        b = super().batch(index)
        for key in ("identity", "identity_other"):
            b[key] = torch.where(b["is_real"], b[key] + self.real_offset, b[key])
        return b


# ============================================================================================ logging
class RunLog:
    """``train.csv``/``val.csv`` and TensorBoard events in the run folder (rank 0 only).

    On resume, rows after the checkpoint's step are dropped, so the files read as one run.
    """

    def __init__(self, out_dir: Path, resume_step: int, tensorboard: bool, enabled: bool) -> None:
        self.out_dir, self.enabled = out_dir, enabled
        self.writer = None
        self.columns: dict[str, list[str]] = {}
        if not enabled:
            return
        for name in ("train", "val"):
            path = out_dir / f"{name}.csv"
            if path.is_file():
                with path.open(newline="") as f:
                    rows = list(csv.DictReader(f))
                keep = [r for r in rows if int(r["step"]) <= resume_step] if resume_step else []
                if keep:
                    self.columns[name] = list(rows[0])
                    self._write(path, self.columns[name], keep, "w")
                else:
                    path.unlink()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(out_dir / "tb"), purge_step=resume_step if resume_step else None)
            except ImportError:  # pragma: no cover - tensorboard is a requirement
                print("note: tensorboard is not installed; logging to CSV only", file=sys.stderr)

    @staticmethod
    def _write(path: Path, columns: list[str], rows: list[dict], mode: str) -> None:
        with path.open(mode, newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            if mode == "w":
                w.writeheader()
            w.writerows(rows)

    def row(self, name: str, step: int, values: dict[str, float]) -> None:
        """Append ``values`` at ``step`` to ``<name>.csv`` and TensorBoard (``<name>/<key>``)."""
        if not self.enabled:
            return
        row = {"step": step, **values}
        path = self.out_dir / f"{name}.csv"
        if name not in self.columns:
            self.columns[name] = list(row)
            self._write(path, self.columns[name], [], "w")
        self._write(path, self.columns[name], [{k: row.get(k, "") for k in self.columns[name]}], "a")
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"{name}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# ============================================================================================ checkpoints
def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a kill never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by ``save_checkpoint`` (tensors on the CPU; plain data only, ``weights_only``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"{path} is not an x2face training checkpoint (format {CHECKPOINT_FORMAT})")
    return state


# ============================================================================================ the loop
class _StopSignal:
    """SIGTERM/SIGUSR1 -> a flag the loop checks after each step (then it checkpoints and exits)."""

    SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None)) if s is not None)

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous = {}

    def __enter__(self) -> "_StopSignal":
        for s in self.SIGNALS:
            try:
                self.previous[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: no signal handling
                pass
        return self

    def _handle(self, signum, frame) -> None:
        self.received = signum

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def autocasts(run: RunConfig, device: torch.device) -> bool:
    """Whether a run on ``device`` trains under bf16 autocast: on CUDA with ``run.bf16``, on a CPU with
    ``run.bf16_cpu`` where the CPU has AMX."""
    if device.type == "cuda":
        return run.bf16
    if device.type == "cpu" and run.bf16_cpu:
        from .fast import cpu_has_amx

        return cpu_has_amx()
    return False


class Trainer:
    """The training loop shared by ``train`` and ``train-identity``.

    Args:
        task: ``X2FaceTask`` or ``IdentityTask`` (model, loss, export).
        run, optim: the run and optimiser settings.
        train_stream, val_stream: ``PairStream``s of this rank (batch size = global / world).
        dist_: this process's ``Dist``.
        config_dict: the whole config (saved in checkpoints and provenance).
        provenance: extra facts for ``provenance.json`` (data, stage, ...).
    """

    def __init__(self, task, run: RunConfig, optim: OptimConfig, train_stream: PairStream,
                 val_stream: PairStream | None, dist_: Dist, config_dict: dict[str, Any],
                 provenance: dict[str, Any]) -> None:
        self.task, self.run, self.optim_cfg = task, run, optim
        self.train_stream, self.val_stream, self.dist = train_stream, val_stream, dist_
        self.config_dict, self.provenance = config_dict, provenance
        self.out_dir = Path(run.out_dir)
        self.device = dist_.device
        cuda = self.device.type == "cuda"
        self.autocast = autocasts(run, self.device)
        if self.device.type == "cpu" and run.bf16_cpu and not self.autocast and dist_.main:
            print("note: run.bf16_cpu is on but this CPU has no AMX (bf16 matrix units), where bf16 is slower "
                  "than float32; training in float32", file=sys.stderr)
        self.channels_last = run.channels_last  # NHWC: faster on cuDNN and on oneDNN (CPU) alike
        module = task.module
        if self.channels_last:
            module.to(memory_format=torch.channels_last)
            if getattr(task, "loss_fn", None) is not None:
                task.loss_fn.to(memory_format=torch.channels_last)
        if dist_.world > 1:
            module = nn.parallel.DistributedDataParallel(
                module, device_ids=[self.device.index] if cuda else None)
        if run.compile:
            module = torch.compile(module)
        self.module = module
        self.optimizer = OPTIMIZERS[optim.name](task.parameters(), optim)
        self.scheduler = SCHEDULES[optim.schedule](self.optimizer, optim, run.steps)
        self.ema = WeightAverage(task.state_dict(), optim.ema_decay) if optim.ema_decay > 0 else None
        self.step = 0
        self.window = torch.zeros(0)
        self.window_names: list[str] = []
        self.window_count = 0
        self.elapsed = 0.0
        self.val_cache: list[dict[str, torch.Tensor]] | None = None
        self.last_val: dict[str, float] = {}

    # -------------------------------------------------------------- state
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    def state(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": self.task.kind,
            "step": self.step,
            "model": {k: v.detach().cpu() for k, v in self.task.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "window": {"names": list(self.window_names), "sums": self.window.detach().cpu(), "count": self.window_count},
            "elapsed_s": getattr(self, "elapsed_total", self.elapsed),
            "last_val": dict(self.last_val),
            "world": self.dist.world,
            "config": self.config_dict,
        }

    def save(self, start_time: float) -> None:
        """Rank 0 writes the checkpoint (all ranks hold the same weights and optimizer state)."""
        self.elapsed_total = self.elapsed + (time.perf_counter() - start_time)
        if self.dist.main:
            save_checkpoint(self.checkpoint_path(), self.state())

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.task.kind:
            raise WeightsError(f"{self.checkpoint_path()} is a {state.get('kind')} checkpoint, not {self.task.kind}")
        old, new = state.get("config", {}), self.config_dict
        where = ("cache_dir", "synthetic_device")  # where data is kept or rendered does not change the run
        for section in ("model", "network", "data", "stage"):
            a, b = old.get(section), new.get(section)
            if section == "data" and isinstance(a, dict) and isinstance(b, dict):
                a, b = ({k: v for k, v in t.items() if k not in where} for t in (a, b))
            if a != b:
                keys = sorted(k for k in set(a or {}) | set(b or {}) if (a or {}).get(k) != (b or {}).get(k)) \
                    if isinstance(a, dict) and isinstance(b, dict) else []
                diff = "; ".join(f"{k}: {(a or {}).get(k)!r} -> {(b or {}).get(k)!r}" for k in keys)
                raise ConfigError(f"cannot resume: [{section}] differs from the checkpoint's ({diff}); "
                                  f"use a new run.out_dir")
        if state.get("world", 1) != self.dist.world:
            print(f"note: resuming a {state.get('world')}-process run with {self.dist.world} processes: "
                  f"batches differ from the uninterrupted run", file=sys.stderr)
        self.task.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            if state.get("ema"):
                self.ema.load_state_dict(state["ema"])
            else:  # a run started without an average: it starts here
                self.ema = WeightAverage(self.task.state_dict(), self.ema.decay)
                if self.dist.main:
                    print("note: the checkpoint has no weight average (optim.ema_decay was 0); averaging from here",
                          file=sys.stderr)
        self.step = int(state["step"])
        self.window_names = list(state["window"]["names"])
        self.window = state["window"]["sums"].to(self.device)
        self.window_count = int(state["window"]["count"])
        self.elapsed = float(state.get("elapsed_s", 0.0))
        self.last_val = dict(state.get("last_val", {}))

    @contextlib.contextmanager
    def averaged_weights(self):
        """Within the block the model holds the weight average (``optim.ema_decay``); the last step's after it."""
        last = {k: v.detach().clone() for k, v in self.task.state_dict().items()}
        self.task.load_state_dict(self.ema.average)
        try:
            yield
        finally:
            self.task.load_state_dict(last)

    # -------------------------------------------------------------- steps
    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for k, v in batch.items():
            v = v.to(self.device, non_blocking=True)
            if self.channels_last and v.dim() == 4 and v.is_floating_point():
                v = v.contiguous(memory_format=torch.channels_last)
            out[k] = v
        return out

    def _loss(self, batch: dict[str, torch.Tensor], module: nn.Module | None = None
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            return self.task.loss(self.module if module is None else module, batch)

    def train_step(self, index: int, batch: dict[str, torch.Tensor]) -> None:
        torch.manual_seed(mix_seed(self.run.seed, index, self.dist.rank, 1))  # dropout etc.: pure function of the step
        loss, parts = self._loss(self._to_device(batch))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.optim_cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.task.parameters(), self.optim_cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.after_step()
        if self.ema is not None:
            self.ema.update(self.task.state_dict())
        names = ["loss"] + list(parts)
        values = torch.stack([loss.detach().float()] + [p.float() for p in parts.values()])  # [P]
        self.dist.all_sum(values)
        values = values / self.dist.world
        if names != self.window_names:
            self.window_names, self.window, self.window_count = names, torch.zeros_like(values), 0
        self.window = self.window + values
        self.window_count += 1

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean losses over the fixed validation batches, sharded over the ranks (the same result on all).

        Runs the unwrapped module (no DDP collectives inside), in eval mode.
        """
        if self.val_stream is None or self.run.val_batches == 0:
            return {}
        if self.val_cache is None:  # drawn once: the same batches at every validation
            mine = list(range(self.dist.rank, self.run.val_batches, self.dist.world))
            weight = 1.0 if mine else 0.0  # a rank without a batch of its own adds a zero-weighted one
            self.val_cache = [(weight, self.val_stream.batch(i)) for i in (mine or [0])]
        module = self.task.module
        module.eval()
        names, total = [], None
        for weight, batch in self.val_cache:
            loss, parts = self._loss(self._to_device(batch), module)
            names = ["loss"] + list(parts)
            vec = torch.stack([loss.detach().float()] + [p.float() for p in parts.values()] +
                              [torch.ones((), device=self.device)]) * weight  # [P + 1]: sums and a count
            total = vec if total is None else total + vec
        module.train()
        if getattr(self.task, "loss_fn", None) is not None:
            self.task.loss_fn.train()
        self.dist.all_sum(total)
        values = (total[:-1] / total[-1]).tolist()
        return dict(zip(names, values))

    # -------------------------------------------------------------- the loop
    def fit(self, resume: bool) -> int:
        """Train to ``run.steps`` (resuming from ``out_dir/checkpoint.pt`` when ``resume``); returns an exit code."""
        run = self.run
        path = self.checkpoint_path()
        if resume and path.is_file():
            self.restore(load_checkpoint(path))
            if self.dist.main:
                print(f"resuming {path} at step {self.step}/{run.steps}", file=sys.stderr)
        elif resume and self.dist.main:
            print(f"note: no checkpoint in {self.out_dir}; starting from step 0", file=sys.stderr)
        elif path.is_file():
            raise ConfigError(f"{self.out_dir} already holds a run (checkpoint.pt); pass --resume to continue it "
                              f"or choose another run.out_dir")
        if self.dist.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(json.dumps(self.config_dict, indent=2) + "\n")
        log = RunLog(self.out_dir, self.step, run.tensorboard, self.dist.main)
        bar = None
        if self.dist.main and run.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=run.steps, initial=self.step, unit="step", dynamic_ncols=True, file=sys.stderr,
                       desc=self.provenance.get("stage", self.task.kind))
        images_per_step = self.optim_cfg.batch_size * self.task.images_per_item
        start_step, start_time = self.step, time.perf_counter()
        code = 0
        with _StopSignal() as stop:
            batches = _batches(self.train_stream, self.step, run.num_workers)
            try:
                while self.step < run.steps:
                    try:
                        index, batch = next(batches)
                    except RuntimeError:
                        if stop.received is None:
                            raise
                        batch = None  # a DataLoader worker got the signal too
                    if batch is not None:
                        assert index == self.step, (index, self.step)
                        self.train_step(index, batch)
                        self.step += 1
                    if run.stop_after and self.step == run.stop_after and stop.received is None:
                        signal.raise_signal(signal.SIGTERM)  # a simulated kill takes the real path
                    now = time.perf_counter()
                    stopping, out_of_time = self.dist.any_each(
                        stop.received is not None, run.max_minutes > 0 and now - start_time >= 60 * run.max_minutes)
                    stepped = batch is not None
                    out_of_time = out_of_time and stepped and not stopping
                    rate = (self.step - start_step) * images_per_step / max(now - start_time, 1e-9)
                    last = self.step == run.steps or out_of_time
                    if stepped and (self.step % run.log_every == 0 or last):
                        self._log(log, bar, rate, now - start_time)
                    if stepped and (self.step % run.val_every == 0 or last):
                        val = self.validate()
                        if val:
                            self.scheduler.after_validation(val["loss"])  # the schedule follows the last step's weights
                            if self.ema is not None:
                                with self.averaged_weights():
                                    val["ema_loss"] = self.validate()["loss"]
                            self.last_val = val
                            log.row("val", self.step, {**val, "lr": self.optimizer.param_groups[0]["lr"]})
                    if stopping or (run.ckpt_every and self.step % run.ckpt_every == 0):
                        self.save(start_time)
                    if bar is not None and stepped:
                        bar.update(1)
                    if stopping:
                        why = "stop_after" if run.stop_after and self.step == run.stop_after else "signal"
                        if self.dist.main:
                            print(f"\nstopped at step {self.step} ({why}); checkpoint {self.checkpoint_path()}; "
                                  f"continue with --resume", file=sys.stderr)
                        code = 0 if why == "stop_after" else 128 + int(stop.received or signal.SIGTERM)
                        break
                    if out_of_time:
                        self.save(start_time)
                        if self.dist.main:
                            print(f"\nrun.max_minutes ({run.max_minutes:g}) spent at step {self.step}/{run.steps}; "
                                  f"--resume continues", file=sys.stderr)
                        self.finish(stopped_by="max_minutes")
                        break
                else:
                    self.save(start_time)
                    self.finish()
            finally:
                batches.close()
                if bar is not None:
                    bar.close()
                log.close()
        return code

    def _log(self, log: RunLog, bar, rate: float, seconds: float) -> None:
        if self.window_count == 0:
            return
        means = (self.window / self.window_count).tolist()
        values = dict(zip(self.window_names, means))
        lr = self.optimizer.param_groups[0]["lr"]
        log.row("train", self.step, {**values, "lr": lr, "images_per_s": round(rate, 3), "seconds": round(seconds, 2)})
        if bar is not None:
            bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{lr:.1e}", img_s=f"{rate:.1f}", refresh=False)
        self.window = torch.zeros_like(self.window)
        self.window_count = 0

    def finish(self, stopped_by: str = "") -> None:
        """Rank 0 exports the final weights to ``out_dir/weights`` (and ``run.export_dir``) with provenance;
        ``stopped_by`` names what ended the run before ``run.steps`` (recorded in the provenance)."""
        if not self.dist.main:
            return
        info = {
            **self.provenance,
            "steps": self.step,
            **({"stopped_by": stopped_by, "planned_steps": self.run.steps} if stopped_by else {}),
            "batch_size": self.optim_cfg.batch_size,
            "processes": self.dist.world,
            "train_seconds": round(getattr(self, "elapsed_total", self.elapsed), 1),
            "final_val": self.last_val,
            "config": self.config_dict,
            "trained_with": "python -m x2face " + ("train" if self.task.kind == "x2face" else "train-identity"),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        from . import __version__

        info["x2face_version"] = __version__
        targets = [self.out_dir / "weights"] + ([Path(self.run.export_dir)] if self.run.export_dir else [])
        if self.ema is not None:  # the exported weights are the average (final_val's ema_loss)
            info["weights"] = f"exponential moving average of the weights, decay {self.ema.decay:g} per step"
        with self.averaged_weights() if self.ema is not None else contextlib.nullcontext():
            for folder in targets:
                self.task.export(folder, info)
                print(f"weights: {folder}", file=sys.stderr)


# ============================================================================================ entry points
def cpu_threads(run: RunConfig, device: torch.device) -> int:
    """The torch threads a run on ``device`` uses: ``run.threads_amx`` where it is set and the run autocasts on the
    CPU (``run.bf16_cpu`` on a CPU with AMX, ``autocasts``), else ``run.threads``; 0 = torch's default."""
    if run.threads_amx and device.type == "cpu" and autocasts(run, device):
        return run.threads_amx
    return run.threads


def _setup(run: RunConfig) -> Dist:
    d = Dist(run.device)
    threads = cpu_threads(run, d.device)
    if threads:
        from .fast import max_cpu_threads

        torch.set_num_threads(min(threads, max_cpu_threads()))  # (a config made for a bigger machine)
    return d


def training_history(init_from: str) -> list[dict[str, Any]]:
    """The runs that made the ``init_from`` weights, oldest first, from their ``provenance.json``.

    Each entry: ``stage``, ``steps``, ``lr``, ``optimizer``, ``train_seconds``, ``init_from``. Empty when
    training starts from scratch or the weights carry no provenance (e.g. converted or downloaded ones).
    """
    if not init_from:
        return []
    from .hub import read_provenance

    prov = read_provenance(init_from)
    if not prov.get("steps"):
        return []
    optim = (prov.get("config") or {}).get("optim") or {}
    entry = {"stage": prov.get("stage"), "steps": prov.get("steps"), "lr": optim.get("lr"),
             "optimizer": optim.get("name"), "train_seconds": prov.get("train_seconds"),
             "init_from": prov.get("init_from")}
    earlier = prov.get("history")
    return [*(earlier if isinstance(earlier, list) else []), entry]


def _describe_data(cfg: DataConfig, synthetic, real) -> dict[str, Any]:
    out: dict[str, Any] = {"sources": list(cfg.sources), "num_sources": cfg.num_sources}
    if synthetic is not None:
        out["synthetic"] = {"split": cfg.synthetic_train_split}
    if real is not None:
        out["real"] = {"manifests": cfg.manifests, "voxceleb_roots": cfg.voxceleb_roots, "fps": cfg.fps,
                       "crop": cfg.crop, **{k: v for k, v in real.describe().items() if k != "skipped"},
                       "real_fraction": cfg.real_fraction if synthetic is not None else 1.0}
    return out


def _make_sources(cfg: DataConfig, image_size: int, seed: int, d: Dist, train_split: tuple[str, str],
                  val_split: tuple[str, str] | None):
    """(synthetic train, real train, synthetic val, real val) datasets (None where not used).

    Real clips are decoded and cropped once into ``cfg.cache_dir``, each rank caching its share first.
    """
    want_syn, want_real = "synthetic" in cfg.sources, "real" in cfg.sources
    render = d.device if cfg.synthetic_device == "train" else torch.device("cpu")
    syn = _synthetic(train_split[0], image_size, cfg.num_sources, seed, render, cfg.synthetic_identities) if want_syn else None
    syn_val = _synthetic(val_split[0], image_size, cfg.num_sources, seed + 1, render) if want_syn and val_split else None
    real = real_val = None
    if want_real:
        from .data.video import prepare_cache

        splits = {train_split[1]} | ({val_split[1]} if val_split else set())
        clips = [c for c in _clips(cfg) if c.split in splits]
        prepare_cache(clips, image_size, cfg.fps, cfg.crop, cfg.cache_dir, d.rank, d.world, verbose=d.main)
        d.barrier()
        real = _real(cfg, clips, train_split[1], image_size, seed, d.main)
        real_val = _real(cfg, clips, val_split[1], image_size, seed + 1, d.main) if val_split else None
    return syn, real, syn_val, real_val


def _per_rank_batch(optim: OptimConfig, d: Dist) -> int:
    if optim.batch_size % d.world:
        raise ConfigError(f"[optim] batch_size {optim.batch_size} is not divisible by the {d.world} processes")
    return optim.batch_size // d.world


def _parser(prog: str, what: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=what)
    p.add_argument("config", help="a TOML config file (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a setting, e.g. --set optim.lr=1e-4 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the run in run.out_dir from its checkpoint")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--prepare-data", action="store_true",
                   help="only decode and crop the real clips into data.cache_dir, then exit (shards over torchrun ranks)")
    p.add_argument("--export-crops", metavar="DIR", default="",
                   help="write the real clips' crops (the splits this command trains and validates on) as JPEG frames "
                        "with a MANIFEST.tsv in the new folder DIR, then exit: data for a machine without the videos")
    return p


def _prepare_only(cfg: DataConfig, splits: list[str], image_size: int, d: Dist) -> int:
    """``--prepare-data``: fill the crop cache of the real clips of ``splits`` (this rank's share)."""
    from .data.video import prepare_cache

    if "real" not in cfg.sources:
        print("nothing to prepare: data.sources has no 'real'", file=sys.stderr)
        return 0
    clips = [c for c in _clips(cfg) if c.split in splits]
    failed = prepare_cache(clips, image_size, cfg.fps, cfg.crop, cfg.cache_dir, d.rank, d.world, verbose=d.main)
    d.barrier()
    print(f"rank {d.rank}: cached {len(clips[d.rank::d.world]) - len(failed)} clips in {cfg.cache_dir}"
          + (f"; unreadable: {'; '.join(failed[:5])}" if failed else ""), file=sys.stderr)
    return 0


def _export_only(cfg: DataConfig, splits: list[str], image_size: int, out_dir: str) -> int:
    """``--export-crops DIR``: the real clips of ``splits`` as a portable folder (``export_crops``)."""
    from .data.video import export_crops

    if "real" not in cfg.sources:
        raise ConfigError("nothing to export: data.sources has no 'real'")
    clips = [c for c in _clips(cfg) if c.split in splits]
    info = export_crops(clips, image_size, cfg.fps, cfg.crop, cfg.cache_dir, out_dir)
    print(f"{out_dir}: {info['clips']} clips, {info['frames']} frames ({', '.join(splits)}), "
          f"{info['bytes'] / 2**20:.1f} MiB; train from it with --set 'data.manifests=[\"{out_dir}/MANIFEST.tsv\"]' "
          f"--set 'data.frame_folders=[\"frames\"]'"
          + (f"; unreadable: {'; '.join(info['failed'][:5])}" if info["failed"] else ""), file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    """``python -m x2face train CONFIG [--set k=v ...] [--resume]``: train X2Face (stage I or II)."""
    args = _parser("python -m x2face train", "Train X2Face (stage I: photometric L1; stage II: + identity losses).") \
        .parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    d = _setup(cfg.run)
    try:
        if args.prepare_data:
            return _prepare_only(cfg.data, [cfg.data.real_train_split, cfg.data.real_val_split], cfg.model.image_size, d)
        if args.export_crops:
            return _export_only(cfg.data, [cfg.data.real_train_split, cfg.data.real_val_split], cfg.model.image_size,
                                args.export_crops)
        task = X2FaceTask(cfg, d.device)
        syn, real, syn_val, real_val = _make_sources(
            cfg.data, cfg.model.image_size, cfg.run.seed, d,
            (cfg.data.synthetic_train_split, cfg.data.real_train_split),
            (cfg.data.synthetic_val_split, cfg.data.real_val_split))
        if cfg.data.synthetic_device == "train" and d.device.type != "cpu" and cfg.run.num_workers:
            raise ConfigError("[data] synthetic_device = \"train\" renders on the GPU in the training process; "
                              "set run.num_workers = 0")
        batch = _per_rank_batch(cfg.optim, d)
        train_stream = PairStream(syn, real, batch, cfg.data.real_fraction, cfg.run.seed, d.rank,
                                  cfg.data.same_frame_fraction, cfg.data.drivers_per_source)
        val_stream = PairStream(syn_val, real_val, batch, cfg.data.real_fraction, mix_seed(cfg.run.seed, 7), 0)
        provenance = {"stage": cfg.stage.stage, "init_from": cfg.stage.init_from or None,
                      "identity_network": cfg.stage.identity_network or None,
                      "data": _describe_data(cfg.data, syn, real), "model_name": cfg.model_name,
                      "history": training_history(cfg.stage.init_from)}
        trainer = Trainer(task, cfg.run, cfg.optim, train_stream, val_stream, d, cfg.to_dict(), provenance)
        code = trainer.fit(args.resume)
        d.barrier()  # every rank done (rank 0 exports the weights last) before the process group goes
        return code
    finally:
        d.close()


def main_identity(argv: list[str]) -> int:
    """``python -m x2face train-identity CONFIG [--set k=v ...] [--resume]``: train the VGG-11 identity network."""
    args = _parser("python -m x2face train-identity",
                   "Train the VGG-11 identity network of stage II on identity classification.").parse_args(argv)
    cfg = load_identity_config(args.config, args.overrides)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    d = _setup(cfg.run)
    try:
        size = int(cfg.network.get("image_size", 224))
        if args.prepare_data:
            return _prepare_only(cfg.data, [cfg.data.real_train_split], size, d)
        if args.export_crops:
            return _export_only(cfg.data, [cfg.data.real_train_split], size, args.export_crops)
        # closed-set classification: validation draws new frames of the *training* identities
        syn = syn_val = real = None
        if "synthetic" in cfg.data.sources:
            render = d.device if cfg.data.synthetic_device == "train" else "cpu"
            syn = SyntheticIdentityFrames(cfg.data.synthetic_train_split, size, cfg.data.synthetic_identities, render)
            syn_val = syn
        if "real" in cfg.data.sources:
            _, real, _, _ = _make_sources(dataclasses.replace(cfg.data, sources=["real"]), size, cfg.run.seed, d,
                                          ("", cfg.data.real_train_split), None)
        num_syn = len(syn) if syn is not None else 0
        num_real = len(real.identity_names) if real is not None else 0
        task = IdentityTask(cfg, num_syn + num_real, d.device)
        batch = _per_rank_batch(cfg.optim, d)
        train_stream = LabelledStream(syn, real, batch, cfg.data.real_fraction, cfg.run.seed, d.rank, real_offset=num_syn)
        val_stream = LabelledStream(syn_val, real, batch, cfg.data.real_fraction, mix_seed(cfg.run.seed, 7), 0,
                                    real_offset=num_syn)
        provenance = {"stage": "identity", "classes": {"synthetic": num_syn, "real": num_real},
                      "real_identities": real.identity_names if real is not None else [],
                      "data": _describe_data(cfg.data, syn, real)}
        trainer = Trainer(task, cfg.run, cfg.optim, train_stream, val_stream, d, cfg.to_dict(), provenance)
        code = trainer.fit(args.resume)
        d.barrier()  # every rank done (rank 0 exports the weights last) before the process group goes
        return code
    finally:
        d.close()


__all__ = ["DataConfig", "IdentityTrainConfig", "OPTIMIZERS", "OptimConfig", "PairStream", "RunConfig", "StageConfig", "autocasts", "cpu_threads",
           "TrainConfig", "Trainer", "load_config", "load_identity_config", "main", "main_identity", "mix_seed"]
