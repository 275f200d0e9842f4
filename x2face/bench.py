"""``python -m x2face bench``: how fast x2face runs on this machine, against the straightforward way.

    python -m x2face bench --device cpu --config demo --quick
    python -m x2face bench --device cuda --config paper --out benchmarks/results/h100.json

writes ``bench.json`` (``--out``) and a Markdown table beside it (``.md``) with:

* ``drive_fps``: frames/s driving a cached embedded face (``x2face.fast.FastDriver``) at batch 1, 16,
  64 and 256, and ``baseline_drive_fps``: the same frames the straightforward way (fp32, eager, no
  caching: every frame goes through the full forward, embedding the source again, as the 2018
  release computes it), with the ratio;
* ``full_fps`` / ``baseline_full_fps``: the full forward (embed + drive) at batch 16;
* ``animate_10s_seconds``: an end-to-end animate of a 10 s 25 fps clip (decode, crop, drive, paste
  back, encode), per stage;
* ``train_images_per_s`` / ``baseline_train_images_per_s``: stage-I training steps (forward, L1,
  backward, SGD) at batch 16;
* ``peak_memory_mb``, the machine, and ``max_abs_diff_vs_fp32``: the optimised output against the
  fp32 eager model on the same inputs, which must stay within ``x2face.fast.TOLERANCE`` (the command
  fails, after writing its files, when it does not).

Weights: ``--weights`` (a folder, Hub repo or ``demo``), else random weights for ``--config`` (seeded)
whose two offset layers are scaled so the mean |offset| is ``OFFSET_SCALE`` of the half-width (a
few pixels, like a trained model: at PyTorch's default initialisation the offsets are ~1e-6, which
would make the accuracy check vacuous). Speed does not depend on the weights' values.

Timings are medians over repeated calls after warm-up calls, with the device synchronised; inputs
are already on the device (the animate stage times the transfers). Measurements whose predicted
time exceeds the per-measurement budget (``--quick``: 10 s; else 60 s) are skipped and listed in
``skipped`` with the reason; they are never extrapolated.
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
import os
import platform
import resource
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import CONFIGS, X2FaceConfig, get_config
from .errors import InputError, X2FaceError, one_line
from .fast import FastDriver, check_threads, configure_cpu_threads, physical_cores, resolve_dtype
from .model import X2Face

BATCHES = (1, 16, 64, 256)  #: batch sizes of ``drive_fps``
FULL_BATCH = 16  #: batch of the full forward (the release's figure is at batch 16)
TRAIN_BATCH = 16  #: batch of the training steps (the release trained at batch 16)
PARTS = ("drive", "accuracy", "full", "train", "animate")  #: what ``--parts`` can name, in run order
CLIP_SECONDS, CLIP_FPS = 10.0, 25  #: the end-to-end clip
OFFSET_SCALE = 0.05  #: mean |pre-tanh offset| of the random bench weights, in half-widths
#: Dense bf16 tensor-core rate of the lent GPUs: an 8192^3 bf16 matmul through PyTorch, measured on this
#: workplace's H100 and H200 (KINDS.md of the device notes), TFLOP/s. ``--peak-tflops`` overrides it.
PEAK_BF16_TFLOPS = {"H100": 790.0, "H200": 790.0}
#: Keys every bench.json has (null when a part could not run, with the reason in ``skipped``/``errors``).
JSON_KEYS = ("device", "config", "drive_fps", "baseline_drive_fps", "full_fps", "baseline_full_fps",
             "animate_10s_seconds", "train_images_per_s", "peak_memory_mb", "max_abs_diff_vs_fp32")
ANIMATE_STAGES = ("decode", "crop", "drive", "paste", "encode")  #: keys of ``animate_10s_seconds`` (+ totals)


class ToleranceError(X2FaceError):
    """The optimised path drifted from the fp32 reference by more than the stated tolerance."""


# ---------------------------------------------------------------------------------------------- settings
@dataclass
class BenchSettings:
    """What ``run_bench`` measures and how (built from the command line by ``parse_args``)."""

    device: torch.device
    config_name: str
    config: X2FaceConfig
    weights: str | None = None
    quick: bool = False
    dtype: str = "auto"
    compile: bool = False
    cuda_graphs: bool = False
    channels_last: bool = True
    threads: int = 1
    out: Path = Path("bench.json")
    train: bool = True
    animate: bool = True
    parts: tuple[str, ...] = PARTS
    train_batches: tuple[int, ...] = (TRAIN_BATCH,)
    train_compile: str = "off"
    clip: Path | None = None
    peak_tflops: float | None = None
    argv: list[str] = field(default_factory=list)

    @property
    def budget_s(self) -> float:
        """Longest a single measurement (warm-up and samples) may take before it is skipped."""
        return 10.0 if self.quick else 60.0

    @property
    def warmup(self) -> int:
        return 1 if self.quick else 3

    @property
    def samples(self) -> int:
        return 3 if self.quick else 7

    @property
    def min_sample_s(self) -> float:
        """Each timing sample repeats the call until it lasts this long (amortises the sync)."""
        return 0.05 if self.quick else 0.2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line (an ``InputError`` the CLI prints)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{message} (see python -m x2face bench --help)")


def _on_off_auto(value: str, auto: bool) -> bool:
    return auto if value == "auto" else value == "on"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m x2face bench",
                description="Measure x2face's speed on this machine against the straightforward fp32 way.")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to run (auto: CUDA when available)")
    p.add_argument("--config", default=None, choices=list(CONFIGS),
                   help="architecture (default: paper on CUDA, demo on CPU); ignored with --weights")
    p.add_argument("--weights", default=None,
                   help="benchmark these weights (folder, Hub repo id or 'demo') instead of random ones")
    p.add_argument("--quick", action="store_true", help="fewer repeats and a 10 s budget per measurement")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="compute dtype of the optimised path (auto: bf16 on CUDA and on CPUs with AMX, else fp32)")
    p.add_argument("--compile", default="auto", choices=["auto", "on", "off"],
                   help="torch.compile the per-frame work (auto: on CUDA; off on CPU: slower there at batch >= 16)")
    p.add_argument("--cuda-graphs", default="auto", choices=["auto", "on", "off"],
                   help="replay fixed-shape batches as CUDA graphs (auto: on CUDA)")
    p.add_argument("--no-channels-last", action="store_true", help="keep NCHW activations")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: X2FACE_THREADS, OMP_NUM_THREADS or the physical cores)")
    p.add_argument("--no-train", action="store_true", help="skip the training measurement")
    p.add_argument("--no-animate", action="store_true", help="skip the end-to-end animate measurement")
    p.add_argument("--parts", default=",".join(PARTS),
                   help=f"comma-separated parts to run (default all: {','.join(PARTS)})")
    p.add_argument("--train-batch", default=str(TRAIN_BATCH),
                   help="comma-separated training batch sizes; the first gives train_images_per_s (default 16, "
                        "the release's)")
    p.add_argument("--train-compile", default="off", choices=["off", "networks", "model"],
                   help="torch.compile the training step: off (default: on an H100 both compiled variants were "
                        "slower than eager), the networks with the sampling eager, or the whole model")
    p.add_argument("--clip", default=None, help="video for the animate measurement (default: a face clip, "
                   "looped/cut to 10 s at 25 fps)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's dense bf16 rate, for the fraction of the arithmetic limit")
    p.add_argument("--out", default="bench.json", help="JSON output (the Markdown table goes beside it as .md)")
    return p


def parse_args(argv: list[str]) -> BenchSettings:
    """Command line -> ``BenchSettings``; bad values raise ``InputError``/``ConfigError`` (one line)."""
    args = build_parser().parse_args(argv)
    from .hub import pick_device

    device = pick_device(args.device)
    if args.threads is not None:
        check_threads(args.threads)
    if args.peak_tflops is not None and not args.peak_tflops > 0:
        raise InputError(f"--peak-tflops must be positive, got {args.peak_tflops}")
    clip = Path(args.clip).expanduser() if args.clip else None
    if clip is not None and not clip.is_file():
        raise InputError(f"--clip {clip}: no such file")
    parts = tuple(x.strip() for x in args.parts.split(",") if x.strip())
    unknown = [x for x in parts if x not in PARTS]
    if unknown or not parts:
        raise InputError(f"--parts: unknown part(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(PARTS)}")
    try:
        train_batches = tuple(int(x) for x in args.train_batch.split(",") if x.strip())
    except ValueError:
        raise InputError(f"--train-batch must be comma-separated integers, got {args.train_batch!r}") from None
    if not train_batches or min(train_batches) < 1:
        raise InputError(f"--train-batch needs batch sizes >= 1, got {args.train_batch!r}")
    out = Path(args.out).expanduser()
    if out.suffix.lower() != ".json":
        raise InputError(f"--out must name a .json file, got {out}")
    if out.exists() and out.is_dir():
        raise InputError(f"--out {out} is a folder; give a .json file name")
    if args.weights is not None:
        from .hub import resolve

        where, revision = resolve(args.weights)
        config = X2Face.from_pretrained(where, revision=revision).config
        config_name = f"{args.weights} weights"
    else:
        config_name = args.config or ("paper" if device.type == "cuda" else "demo")
        config = get_config(config_name)
    cuda = device.type == "cuda"
    return BenchSettings(
        device=device, config_name=config_name, config=config, weights=args.weights, quick=args.quick,
        dtype=args.dtype, compile=_on_off_auto(args.compile, cuda), cuda_graphs=_on_off_auto(args.cuda_graphs, cuda),
        channels_last=not args.no_channels_last, threads=configure_cpu_threads(args.threads), out=out,
        train=not args.no_train and "train" in parts, animate=not args.no_animate and "animate" in parts,
        parts=parts, train_batches=train_batches, train_compile=args.train_compile, clip=clip,
        peak_tflops=args.peak_tflops, argv=list(argv),
    )


# ---------------------------------------------------------------------------------------------- inputs and weights
def bench_frames(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, str]:
    """``n`` consecutive face frames, float [n, 3, size, size] in [0, 1] RGB on the CPU, and where they came from.

    Frames of a video of the synthetic world (``x2face.data.synthetic``) when it is installed, else a
    procedural stand-in (smooth colour fields with sharp-edged ellipses) so the bench runs anywhere.
    """
    if importlib.util.find_spec("x2face.data.synthetic") is not None:
        from .data.synthetic import SPLITS, sample_video

        video = sample_video(SPLITS["test"].start + seed, seed, n, size, with_audio=False)
        where = f"synthetic-world video (test identity {SPLITS['test'].start + seed})"
        return video.frames.float().cpu().clamp(0, 1), where
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    frames = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)  # -> [n, 3, S, S]
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    for _ in range(6):
        c = torch.rand(n, 2, 1, 1, generator=g) * 1.4 - 0.7
        r = torch.rand(n, 2, 1, 1, generator=g) * 0.4 + 0.1
        color = torch.rand(n, 3, 1, 1, generator=g)
        inside = (((xs - c[:, 0]) / r[:, 0]) ** 2 + ((ys - c[:, 1]) / r[:, 1]) ** 2 < 1).unsqueeze(1)  # [n, 1, S, S]
        frames = torch.where(inside, color, frames)
    return frames.clamp(0, 1), "procedural frames (x2face.data.synthetic not installed)"


def _offset_layers_output(net: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    """The raw output of ``net.up[0]`` (the level that produces the offsets) for ``frames``."""
    captured: list[torch.Tensor] = []
    handle = net.up[0].register_forward_hook(lambda mod, inp, out: captured.append(out))
    try:
        net(frames)
    finally:
        handle.remove()
    return captured[0]


@torch.no_grad()
def scale_offsets(model: X2Face, frames: torch.Tensor, offset_scale: float = OFFSET_SCALE) -> X2Face:
    """Scale the last conv of each network so that the mean |pre-tanh offset| on ``frames`` (float
    [N, 3, S, S] in [0, 1], on the model's device) is ``offset_scale`` half-widths; returns ``model``."""
    for net in (model.driving, model.embedding):
        raw = _offset_layers_output(net, frames)[:, :2]
        scale = offset_scale / float(raw.abs().mean().clamp(min=1e-30))
        net.up[0].conv.weight.mul_(scale)
    return model


@torch.no_grad()
def bench_model(config: X2FaceConfig, frames: torch.Tensor, seed: int = 0,
                offset_scale: float = OFFSET_SCALE) -> X2Face:
    """Random ``X2Face`` weights (seeded) with offsets of a realistic size, in eval mode on the CPU.

    PyTorch's default initialisation shrinks activations layer after layer, so an untrained model's
    offsets are ~1e-6: its output is the embedded face whatever the driving frame, and no accuracy
    check could fail. ``scale_offsets`` scales the last conv of each network so that the mean
    |offset| on ``frames`` (float [N, 3, S, S], CPU) is ``offset_scale`` (0.05 of the half-width:
    ~6 px at 256). (BatchNorm statistics calibrated on real frames instead make a random network
    chaotic: 1/255 of input noise then moves its output by up to 0.9, which no trained model does.)
    """
    torch.manual_seed(seed)
    model = X2Face(config).eval()
    model.check_inputs = False
    return scale_offsets(model, frames, offset_scale)


def drive_gflop_per_frame(model: X2Face) -> float:
    """Multiply-adds x 2 of the driving network for one frame (convolutions only), in GFLOP."""
    total = 0

    def hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total += 2 * out.numel() * (mod.in_channels // mod.groups) * k

    convs = [m for m in model.driving.modules() if isinstance(m, nn.Conv2d)]
    handles = [m.register_forward_hook(hook) for m in convs]
    s = model.config.image_size
    try:
        with torch.no_grad():
            model.driving(torch.zeros(1, 3, s, s, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    return total / 1e9


# ---------------------------------------------------------------------------------------------- timing
class Timer:
    """Median wall time of a call, synchronising the device, within a time budget."""

    def __init__(self, settings: BenchSettings) -> None:
        self.s = settings
        cuda = settings.device.type == "cuda"
        self.sync: Callable[[], None] = (lambda: torch.cuda.synchronize(settings.device)) if cuda else (lambda: None)

    def _once(self, fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - t0

    def per_call(self, fn: Callable[[], Any], *, predicted_s: float | None = None) -> tuple[float | None, str | None]:
        """Median seconds per call of ``fn``, or (None, reason) when it would not fit the budget.

        ``predicted_s``: an estimate of one call, from a smaller measurement; the call is skipped
        when warm-up and at least one sample would exceed the budget.
        """
        return self.compare({"fn": fn}, {"fn": predicted_s})["fn"]

    def compare(self, fns: dict[str, Callable[[], Any]],
                predicted_s: dict[str, float | None] | None = None) -> dict[str, tuple[float | None, str | None]]:
        """``per_call`` for several functions, their samples interleaved (a, b, a, b, ...), so that other
        work on the machine slows them alike instead of skewing their ratio. Each has its own budget."""
        s = self.s
        predicted_s = predicted_s or {}
        out: dict[str, tuple[float | None, str | None]] = {}
        live: dict[str, dict[str, Any]] = {}
        for name, fn in fns.items():
            guess = predicted_s.get(name)
            if guess is not None and guess * (s.warmup + 1) > s.budget_s:
                out[name] = (None, f"predicted {guess:.1f} s per call: warm-up and one sample exceed the "
                                   f"{s.budget_s:.0f} s budget per measurement{' of --quick' if s.quick else ''}")
                continue
            spent = 0.0
            for _ in range(s.warmup):  # stop warming up early if a call is slow (it is then warm enough)
                spent += self._once(fn)
                if spent > s.budget_s / 2:
                    break
            live[name] = {"fn": fn, "spent": spent}
        for state in live.values():  # one timed call each: a sample, and the size of the later ones
            one = self._once(state["fn"])
            inner = max(1, math.ceil(s.min_sample_s / max(one, 1e-9)))
            state.update(spent=state["spent"] + one, times=[one], inner=inner)
        for _ in range(s.samples - 1):
            for state in live.values():
                cost = state["times"][0] * state["inner"]
                if state["spent"] + cost > s.budget_s:
                    continue
                t0 = time.perf_counter()
                for _ in range(state["inner"]):
                    state["fn"]()
                self.sync()
                took = time.perf_counter() - t0
                state["spent"] += took
                state["times"].append(took / state["inner"])
        for name, state in live.items():
            out[name] = (statistics.median(state["times"]), None)
        return {name: out[name] for name in fns}


class Memory:
    """Peak memory: CUDA max allocated on a GPU, the process's max RSS on a CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.by_stage: dict[str, float] = {}
        self.kind = "torch.cuda.max_memory_allocated" if device.type == "cuda" else "process max RSS (getrusage)"

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def stop(self, stage: str) -> None:
        self.by_stage[stage] = round(self.peak_mb(), 1)

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return rss / (2**20 if sys.platform == "darwin" else 2**10)

    def overall_mb(self) -> float:
        return max(self.by_stage.values(), default=self.peak_mb())


class _BaselineMode:
    """The straightforward way: PyTorch's defaults (no cuDNN autotuning), restored afterwards."""

    def __enter__(self) -> None:
        self._benchmark = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = False

    def __exit__(self, *exc: object) -> None:
        torch.backends.cudnn.benchmark = self._benchmark


def _tile(frames: torch.Tensor, n: int) -> torch.Tensor:
    """frames [M, ...] -> [n, ...] by repeating them in order."""
    reps = -(-n // frames.shape[0])
    return frames.repeat(reps, *([1] * (frames.dim() - 1)))[:n]  # [M, ...] -> [reps*M, ...] -> [n, ...]


def _round(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(float(x), nd)


# ---------------------------------------------------------------------------------------------- the parts
def measure_drive(settings: BenchSettings, driver: FastDriver, model: X2Face, frames: torch.Tensor,
                  result: dict[str, Any], timer: Timer) -> None:
    """``drive_fps`` (FastDriver, cached face) and ``baseline_drive_fps`` (full fp32 eager forward) per batch."""
    dev = settings.device
    source = frames[:1].to(dev)
    driver.set_source(source.unsqueeze(1))  # [1, 3, S, S] -> [1, 1, 3, S, S]
    fast: dict[str, float | None] = {}
    base: dict[str, float | None] = {}
    per_item_fast = per_item_base = None
    for b in BATCHES:
        x = _tile(frames, b).to(dev)  # [b, 3, S, S]
        sources = source.unsqueeze(0).expand(b, 1, -1, -1, -1)  # [1, 3, S, S] -> [b, 1, 3, S, S]: embedded per frame

        def baseline() -> torch.Tensor:
            with _BaselineMode(), torch.no_grad():
                return model(x, sources)

        timed = timer.compare({"fast": lambda: driver.drive(x), "base": baseline},
                              {"fast": None if per_item_fast is None else per_item_fast * b,
                               "base": None if per_item_base is None else per_item_base * b})
        for name, key, into in (("fast", "drive_fps", fast), ("base", "baseline_drive_fps", base)):
            sec, why = timed[name]
            into[str(b)] = None if sec is None else b / sec
            if why:
                result["skipped"][f"{key}.{b}"] = why
            elif name == "fast":
                per_item_fast = sec / b
            else:
                per_item_base = sec / b
        del x, sources
    result["drive_fps"] = {k: _round(v) for k, v in fast.items()}
    result["baseline_drive_fps"] = {k: _round(v) for k, v in base.items()}
    result["drive_speedup"] = {k: (_round(fast[k] / base[k], 2) if fast[k] and base[k] else None) for k in fast}


def measure_full(settings: BenchSettings, driver: FastDriver, model: X2Face, frames: torch.Tensor,
                 result: dict[str, Any], timer: Timer) -> None:
    """``full_fps``: embed each item's source and drive, batch 16, optimised vs fp32 eager."""
    dev = settings.device
    x = _tile(frames, FULL_BATCH).to(dev)  # [16, 3, S, S]
    sources = _tile(frames.flip(0), FULL_BATCH).to(dev).unsqueeze(1)  # [16, 3, S, S] -> [16, 1, 3, S, S]
    def baseline() -> torch.Tensor:
        with _BaselineMode(), torch.no_grad():
            return model(x, sources)

    timed = timer.compare({"fast": lambda: driver.forward_full(x, sources), "base": baseline})
    sec, why = timed["fast"]
    result["full_fps"] = None if sec is None else _round(FULL_BATCH / sec)
    if why:
        result["skipped"]["full_fps"] = why
    sec, why = timed["base"]
    base = None if sec is None else FULL_BATCH / sec
    if why:
        result["skipped"]["baseline_full_fps"] = why
    result["baseline_full_fps"] = _round(base)
    result["full_speedup"] = _round(result["full_fps"] / base, 2) if result["full_fps"] and base else None
    # accuracy of the optimised full forward
    with torch.no_grad():
        from .fast import strict_fp32

        fast_out = driver.forward_full(x, sources)
        with strict_fp32():
            ref = model(x, sources)
    err = (fast_out - ref).abs()
    result["max_abs_diff_full_vs_fp32"], result["mean_abs_diff_full_vs_fp32"] = float(err.max()), float(err.mean())


def measure_accuracy(settings: BenchSettings, driver: FastDriver, model: X2Face, frames: torch.Tensor,
                     result: dict[str, Any]) -> None:
    """``max_abs_diff_vs_fp32`` of ``drive`` at batch 16, and how much 8-bit input noise moves the fp32 model."""
    dev = settings.device
    driver.set_source(frames[:1].to(dev).unsqueeze(1))
    x = _tile(frames[1:], 16).to(dev)  # [16, 3, S, S], a timed bucket: same compiled code / CUDA graph
    ref = driver.reference_drive(x)
    err = (driver.drive(x) - ref).abs()
    result["max_abs_diff_vs_fp32"], result["mean_abs_diff_vs_fp32"] = float(err.max()), float(err.mean())
    flat = err.flatten().float().cpu()
    k = max(1, int(round(0.999 * flat.numel())))
    result["p999_abs_diff_vs_fp32"] = float(flat.kthvalue(k).values)  # 99.9 % of the pixels differ less
    g = torch.Generator().manual_seed(1)
    noisy = (x.cpu() + (torch.rand(x.shape, generator=g) - 0.5) / 255).clamp(0, 1).to(dev)
    moved = (driver.reference_drive(noisy) - ref).abs()
    result["fp32_noise_sensitivity"] = {"max": float(moved.max()), "mean": float(moved.mean()),
                                        "what": "|fp32 model(frames + U(-0.5, 0.5)/255) - fp32 model(frames)|"}


def _train_step_fn(model: X2Face, batch: dict[str, torch.Tensor], *, device: torch.device, amp: torch.dtype | None,
                   fused: bool) -> Callable[[], None]:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = None
    if fused:
        try:
            opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9, fused=True)
        except (RuntimeError, TypeError, ValueError):
            opt = None
    if opt is None:
        opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    step_model: Callable = model

    def step() -> None:
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            out = step_model(batch["driving"], batch["sources"])
        loss = (out.float() - batch["driving"].float()).abs().mean()  # stage I: L1 to the driving frame
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def compile_networks(model: X2Face) -> X2Face:
    """``torch.compile`` the networks of ``model`` in place (embedding forward, driving encode and decode) and
    leave the sampling between them (``grid_sample``) eager (``--train-compile networks``). On an H100 neither
    this nor the whole model compiled beat eager training (``benchmarks/results/nvidia-h100-80gb-hbm3-2.json``:
    517-592 against 777-957 images/s), so the bench trains eager unless asked."""
    model.embedding.forward = torch.compile(model.embedding.forward)  # type: ignore[method-assign]
    model.driving.encode = torch.compile(model.driving.encode)  # type: ignore[method-assign]
    model.driving.decode = torch.compile(model.driving.decode)  # type: ignore[method-assign]
    return model


def measure_train(settings: BenchSettings, model: X2Face, frames: torch.Tensor, result: dict[str, Any],
                  timer: Timer, dtype: torch.dtype) -> None:
    """``train_images_per_s`` (channels_last; bf16 autocast, fused SGD and [compile] on CUDA) vs fp32 eager NCHW,
    stage-I steps, timed interleaved, at each of ``settings.train_batches`` (the first fills the main keys)."""
    dev = settings.device
    s = settings.config.image_size
    fmt = torch.channels_last if settings.channels_last else torch.contiguous_format
    # Autocast to the compute dtype on CUDA. On a CPU only when asked (--dtype bf16): one run (2026-11-26) found
    # oneDNN's bf16 convolution backward 95% of a step and training several times slower than fp32; later runs
    # found bf16 1.4-2.2x faster (docs/speed.md), which run.bf16_cpu uses for the demo recipe.
    amp = dtype if dtype != torch.float32 and (dev.type == "cuda" or settings.dtype != "auto") else None
    fast_model = copy.deepcopy(model).to(dev, memory_format=fmt).train()
    step_model: nn.Module = fast_model
    if settings.train_compile != "off":
        try:
            if settings.train_compile == "networks":
                step_model = compile_networks(copy.deepcopy(fast_model))
            else:
                step_model = torch.compile(fast_model)  # type: ignore[assignment]
            result["train_settings"].update({"compile": settings.train_compile})
        except Exception as exc:  # no working compiler: eager training
            result["train_settings"].update({"compile": False, "compile_error": one_line(exc, 300)})
            step_model = fast_model
    by_batch: dict[str, float | None] = {}
    base_by_batch: dict[str, float | None] = {}
    fast_batch: dict[str, torch.Tensor] = {}
    step: Callable[[], None] = lambda: None
    for i, n in enumerate(settings.train_batches):
        batch = {"driving": _tile(frames, n).to(dev),
                 "sources": _tile(frames.flip(0), n).to(dev).unsqueeze(1)}  # [n, 1, 3, S, S]
        # the straightforward way: fp32, eager, NCHW
        base_model = copy.deepcopy(model).to(dev).train()
        base_step = _train_step_fn(base_model, batch, device=dev, amp=None, fused=False)

        def baseline() -> None:
            with _BaselineMode():
                base_step()

        fast_batch = {"driving": batch["driving"].contiguous(memory_format=fmt), "sources": batch["sources"]}
        step = _train_step_fn(step_model, fast_batch, device=dev, amp=amp, fused=dev.type == "cuda")  # type: ignore
        if step_model is not fast_model:
            try:
                step()  # compiles for this batch shape
            except Exception as exc:
                result["train_settings"].update({"compile": False, "compile_error": one_line(exc, 300)})
                step_model = fast_model
                step = _train_step_fn(fast_model, fast_batch, device=dev, amp=amp, fused=dev.type == "cuda")
        timed = timer.compare({"fast": step, "base": baseline})
        del base_model, base_step
        sec, why = timed["fast"]
        by_batch[str(n)] = None if sec is None else _round(n / sec)
        bsec, bwhy = timed["base"]
        base_by_batch[str(n)] = None if bsec is None else _round(n / bsec)
        if i == 0:
            result["train_batch"] = n
            result["train_images_per_s"], result["baseline_train_images_per_s"] = by_batch[str(n)], base_by_batch[str(n)]
            for key, w in (("train_images_per_s", why), ("baseline_train_images_per_s", bwhy)):
                if w:
                    result["skipped"][key] = w
    result["train_images_per_s_by_batch"] = by_batch
    result["baseline_train_images_per_s_by_batch"] = base_by_batch
    base, fast = result["baseline_train_images_per_s"], result["train_images_per_s"]
    result["train_speedup"] = _round(fast / base, 2) if fast and base else None
    result["train_settings"].update({"autocast": str(amp).replace("torch.", "") if amp else None,
                                     "channels_last": settings.channels_last, "fused_sgd": dev.type == "cuda"})
    # the same steps (last batch size) with the synthetic world rendered on the device every step
    if importlib.util.find_spec("x2face.data.synthetic") is None:
        result["train_images_per_s_synthetic"] = None
        result["skipped"]["train_images_per_s_synthetic"] = "x2face.data.synthetic is not installed"
        return
    from .data.synthetic import SyntheticPairs

    pairs = SyntheticPairs("train", s, num_sources=1, device=dev)
    gen = torch.Generator().manual_seed(0)
    n_syn = settings.train_batches[-1]

    def synthetic_step() -> None:
        item = pairs.batch(n_syn, gen)
        fast_batch["driving"] = item["driving"].contiguous(memory_format=fmt)
        fast_batch["sources"] = item["sources"].contiguous()  # [n, 1, 3, S, S]
        step()

    sec, why = timer.per_call(synthetic_step)
    result["train_images_per_s_synthetic"] = None if sec is None else _round(n_syn / sec)
    result["train_batch_synthetic"] = n_syn
    if why:
        result["skipped"]["train_images_per_s_synthetic"] = why


CLIP_NAME = "KwaiVGI_LivePortrait__assets_examples_driving_d10.mp4"  #: a 512x512 talking-head clip of the shared data


def find_clip() -> Path | None:
    """A real face clip for the animate measurement: ``X2FACE_BENCH_CLIP``, ``.gpu/bench/clip.mp4`` (what
    ``benchmarks/prepare_gpu.sh`` puts there for the GPU machine), or a 512x512 clip of the shared data."""
    env = os.environ.get("X2FACE_BENCH_CLIP")
    candidates = [Path(env)] if env else []
    root = Path(__file__).resolve().parent.parent
    candidates.append(root / ".gpu" / "bench" / "clip.mp4")
    shared = Path(os.environ.get("X2FACE_SHARED", root.parent / "shared")) / "data" / "real" / "clips"
    candidates.append(shared / CLIP_NAME)
    return next((c for c in candidates if c.is_file()), None)


def make_clip(source: Path, folder: Path, seconds: float = CLIP_SECONDS, fps: int = CLIP_FPS) -> Path:
    """Loop/cut ``source`` to ``seconds`` at ``fps`` (H.264 MP4 in ``folder``, no audio) with ffmpeg; returns it."""
    import subprocess

    from .media import ffmpeg_exe

    out = folder / "clip10s.mp4"
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(source), "-t", f"{seconds}",
           "-r", str(fps), "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
           str(out)]
    proc = subprocess.run(cmd, capture_output=True, timeout=300)
    if proc.returncode != 0 or not out.is_file():
        detail = proc.stderr.decode(errors="replace").strip()[-300:]
        raise RuntimeError(f"ffmpeg could not make the 10 s clip: {detail}")
    return out


def _drive_crops(driver: FastDriver, crops: list, size: int, batch: int) -> list:
    """uint8 [S, S, 3] crops (None where no face) -> uint8 [S, S, 3] generated faces (None likewise)."""
    import numpy as np

    out: list = [None] * len(crops)
    idx = [i for i, c in enumerate(crops) if c is not None]
    for start in range(0, len(idx), batch):
        part = idx[start:start + batch]
        x = torch.from_numpy(np.stack([crops[i] for i in part]))  # [B, S, S, 3] uint8
        if driver.device.type == "cuda":
            x = x.pin_memory()
        x = x.to(driver.device, non_blocking=True).permute(0, 3, 1, 2)  # [B, S, S, 3] -> [B, 3, S, S]
        y = driver.drive(x)  # float32 [B, 3, S, S] in [0, 1]
        y = (y * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()  # -> [B, S, S, 3]
        for j, i in enumerate(part):
            out[i] = y[j]
    return out


def animate_stages(driver: FastDriver, clip: Path, out_path: Path, batch: int = 64) -> dict[str, Any]:
    """Animate the first frame of ``clip`` (the source photo) with the whole clip, stage by stage; seconds per stage.

    decode (``media.iter_video_frames``), crop (``faces.FaceCropper``: the source photo, then tracking
    every frame), drive (``FastDriver``: embed once, drive in batches, with the host<->device copies),
    paste (``faces.paste_back`` of each generated face into the source photo, as ``X2FacePipeline``
    does with ``paste_back=True``), encode (``media.VideoWriter``, H.264). ``total`` is their sum.
    """
    import numpy as np

    from .faces import FaceCropper, paste_back
    from .media import VideoWriter, iter_video_frames

    size = driver.size
    sync = (lambda: torch.cuda.synchronize(driver.device)) if driver.device.type == "cuda" else (lambda: None)
    stages: dict[str, float] = {}
    t = time.perf_counter()
    frames = list(iter_video_frames(clip))
    stages["decode"] = time.perf_counter() - t
    t = time.perf_counter()
    cropper = FaceCropper(image_size=size, device=str(driver.device))
    source = cropper.crop_image(frames[0], name="the first frame of the clip")
    track = list(cropper.track(frames))
    stages["crop"] = time.perf_counter() - t
    t = time.perf_counter()
    src = torch.from_numpy(source.crop).permute(2, 0, 1).float().div(255)  # [S, S, 3] -> [3, S, S]
    driver.set_source(src[None, None])  # [3, S, S] -> [1, 1, 3, S, S]
    generated = _drive_crops(driver, [c.crop for c in track], size, batch)
    sync()
    stages["drive"] = time.perf_counter() - t
    t = time.perf_counter()
    photo, box = frames[0], source.box
    result = [paste_back(photo, g, box) if g is not None else photo for g in generated]
    stages["paste"] = time.perf_counter() - t
    t = time.perf_counter()
    with VideoWriter(out_path, CLIP_FPS) as writer:
        for frame in result:
            writer.write(np.asarray(frame))
    stages["encode"] = time.perf_counter() - t
    stages["total"] = sum(stages.values())
    stages["frames"] = len(frames)
    stages["faces_found"] = sum(1 for c in track if c.found)
    engine = getattr(cropper.detector, "engine", None)  # the Haar backend's cascade engine (opencv, numba, torch)
    stages["face_detector"] = cropper.backend + (f" ({engine} engine)" if engine else "")
    return stages


def animate_overlapped(driver: FastDriver, clip: Path, out_path: Path, batch: int = 64) -> float:
    """The same animate with decode+crop, drive and paste+encode overlapping (two threads and the main
    one, bounded queues); returns its wall time in seconds. ffmpeg, OpenCV and torch release the GIL.
    The source photo is the first frame with a face."""
    import queue
    import threading

    import numpy as np

    from .faces import FaceCropper, paste_back
    from .media import VideoWriter, iter_video_frames

    size = driver.size
    crops_q: queue.Queue = queue.Queue(maxsize=4 * batch)
    out_q: queue.Queue = queue.Queue(maxsize=4)
    errors: list[BaseException] = []
    done = object()
    source: list = []  # [photo, box] once the first face is seen
    t0 = time.perf_counter()

    def produce() -> None:  # decode + crop
        try:
            seen: dict[int, np.ndarray] = {}

            def tee():
                for i, f in enumerate(iter_video_frames(clip)):
                    seen[i] = f
                    yield f

            cropper = FaceCropper(image_size=size, device=str(driver.device))
            for crop in cropper.track(tee()):
                crops_q.put((seen.pop(crop.index), crop))
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)
        finally:
            crops_q.put(done)

    def consume() -> None:  # paste + encode
        try:
            with VideoWriter(out_path, CLIP_FPS) as writer:
                while (item := out_q.get()) is not done:
                    for frame, crop, gen in item:
                        photo, box = source if source else (frame, None)
                        writer.write(paste_back(photo, gen, box) if gen is not None else photo)
        except BaseException as exc:
            errors.append(exc)

    producer, consumer = threading.Thread(target=produce, daemon=True), threading.Thread(target=consume, daemon=True)
    producer.start()
    consumer.start()
    pending: list = []
    first = True
    finished = False
    while not finished:
        item = crops_q.get()
        finished = item is done
        if not finished:
            pending.append(item)
            if first and item[1].crop is not None:  # the source: the first frame with a face
                src = torch.from_numpy(item[1].crop).permute(2, 0, 1).float().div(255)  # [S, S, 3] -> [3, S, S]
                driver.set_source(src[None, None])  # -> [1, 1, 3, S, S]
                source.extend([item[0], item[1].box])
                first = False
        if pending and (len(pending) >= batch or finished) and not first:
            gens = _drive_crops(driver, [c.crop for _, c, in pending], size, batch)
            out_q.put([(f, c, g) for (f, c), g in zip(pending, gens)])
            pending = []
    if pending:  # no face at all
        out_q.put([(f, c, None) for f, c in pending])
    out_q.put(done)
    producer.join()
    consumer.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t0


def animate_with_pipeline(model: X2Face, device: torch.device, clip: Path, out_path: Path,
                          overlap: bool = False, sharp: bool = False) -> float:
    """Seconds for ``X2FacePipeline`` to animate the first frame of ``clip`` with the clip, end to end
    (``overlap``: ``drive_frames(overlap=True)``, what ``python -m x2face animate`` does on a GPU; ``sharp``: the
    face rendered from the full-resolution source frame, the CLI's and the app's default)."""
    import numpy as np

    from .media import VideoReader, VideoWriter
    from .pipeline import X2FacePipeline

    t0 = time.perf_counter()
    pipe = X2FacePipeline(model, device=device, sharp=sharp)
    frames = iter(VideoReader(clip))
    pipe.set_source(next(frames))
    frames.close()  # stops that ffmpeg
    with VideoWriter(out_path, CLIP_FPS) as writer:
        for out in pipe.drive_frames(VideoReader(clip), paste_back=True, batch_size=16, overlap=overlap):
            writer.write(np.asarray(out.image))
    return time.perf_counter() - t0


def measure_animate(settings: BenchSettings, driver: FastDriver, result: dict[str, Any]) -> None:
    """``animate_10s_seconds``: a 10 s 25 fps face clip, end to end, per stage (and overlapped)."""
    missing = [m for m in ("x2face.media", "x2face.faces") if importlib.util.find_spec(m) is None]
    if missing:
        result["animate_10s_seconds"] = None
        result["skipped"]["animate_10s_seconds"] = f"needs {', '.join(missing)} (not in this checkout)"
        return
    source = settings.clip or find_clip()
    if source is None:
        result["animate_10s_seconds"] = None
        result["skipped"]["animate_10s_seconds"] = ("no face clip found: give --clip, set X2FACE_BENCH_CLIP or run "
                                                    "benchmarks/prepare_gpu.sh (it puts one in .gpu/bench/clip.mp4)")
        return
    with tempfile.TemporaryDirectory(prefix="x2face-bench-") as tmp:
        clip = make_clip(source, Path(tmp))
        from .media import probe_video

        info = probe_video(clip)
        # one untimed pass: cuDNN/compile warm-up for the batch shapes, detector models loaded
        animate_stages(driver, clip, Path(tmp) / "warm.mp4")
        stages = animate_stages(driver, clip, Path(tmp) / "out.mp4")
        overlapped = animate_overlapped(driver, clip, Path(tmp) / "out2.mp4")
        pipeline_total = pipeline_overlap = pipeline_sharp = None
        if importlib.util.find_spec("x2face.pipeline") is None:
            result["skipped"]["animate_10s_seconds.pipeline_total"] = "x2face.pipeline is not in this checkout"
        elif settings.quick and settings.device.type != "cuda":
            result["skipped"]["animate_10s_seconds.pipeline_total"] = "--quick on a CPU"
        else:
            pipeline_total = animate_with_pipeline(driver.reference, settings.device, clip, Path(tmp) / "out3.mp4")
            if settings.device.type == "cuda":  # the CLI's default there: the pipeline's own overlap
                pipeline_overlap = animate_with_pipeline(driver.reference, settings.device, clip,
                                                         Path(tmp) / "out4.mp4", overlap=True)
            pipeline_sharp = animate_with_pipeline(driver.reference, settings.device, clip, Path(tmp) / "out5.mp4",
                                                   overlap=settings.device.type == "cuda", sharp=True)
    result["animate_10s_seconds"] = {k: round(float(stages[k]), 3) for k in (*ANIMATE_STAGES, "total")}
    result["animate_10s_seconds"]["overlapped_total"] = round(overlapped, 3)
    if pipeline_total is not None:
        result["animate_10s_seconds"]["pipeline_total"] = round(pipeline_total, 3)
        result["notes"].append("animate pipeline_total: X2FacePipeline.drive_frames(paste_back=True, batch_size=16) "
                               "into a VideoWriter: the product's own path (FastDriver, batched), as the app animates "
                               "(and the CLI on a CPU)")
    if pipeline_overlap is not None:
        result["animate_10s_seconds"]["pipeline_overlap_total"] = round(pipeline_overlap, 3)
        result["notes"].append("animate pipeline_overlap_total: the same with drive_frames(overlap=True), what "
                               "`python -m x2face animate` does on a GPU (the first pipeline_total paid compilation "
                               "and CUDA-graph capture; this one reuses the model's driver)")
    if pipeline_sharp is not None:
        result["animate_10s_seconds"]["pipeline_sharp_total"] = round(pipeline_sharp, 3)
        result["notes"].append("animate pipeline_sharp_total: the same with sharp rendering (the face sampled from the "
                               "full-resolution source frame at its size there), what `python -m x2face animate "
                               "--paste-back` and the app do by default (with the overlap on a GPU)")
    result["animate_clip"] = (f"{source.name} looped/cut to {CLIP_SECONDS:g} s at {CLIP_FPS} fps: "
                              f"{stages['frames']} frames of {info.width}x{info.height}, face found in "
                              f"{stages['faces_found']} by {stages['face_detector']}; the source face is its first frame")


# ---------------------------------------------------------------------------------------------- machine
def machine_info(device: torch.device, threads: int) -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info: dict[str, Any] = {
        "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "cpu": cpu, "cpu_count": os.cpu_count(), "physical_cores": physical_cores(), "torch_threads": threads,
        "cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")(),
    }
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    info["cpu_amx"] = bool(amx()) if amx else None
    info["env"] = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "X2FACE_THREADS", "KMP_BLOCKTIME")
                   if k in os.environ}
    if hasattr(os, "getloadavg"):  # other work on the machine skews CPU timings: say how much there was
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update({"gpu": props.name, "gpu_memory_gb": round(props.total_memory / 2**30, 1),
                     "gpu_capability": f"{props.major}.{props.minor}",
                     "gpu_multiprocessors": props.multi_processor_count,
                     "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()})
    return info


def device_label(result: dict[str, Any]) -> str:
    """A short name of the machine: the GPU's name, or the CPU's with the thread count."""
    m = result["machine"]
    if result["device"] == "cuda":
        return m.get("gpu", "cuda")
    return f"{m.get('cpu', 'cpu')} ({m.get('torch_threads')} threads)"


def peak_tflops_for(settings: BenchSettings, info: dict[str, Any]) -> float | None:
    if settings.peak_tflops:
        return settings.peak_tflops
    name = info.get("gpu", "")
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


# ---------------------------------------------------------------------------------------------- report
def _fmt(x: Any, nd: int = 0, suffix: str = "") -> str:
    if x is None:
        return "n/a"
    if suffix:
        return _fmt(x, nd) + suffix
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    return str(x)


def markdown(result: dict[str, Any]) -> str:
    """The Markdown table of a bench result."""
    r = result
    lines = [f"# x2face bench: `{r['config']}` config ({r['image_size']} px) on {device_label(r)}", "",
             f"Command: `{r['command']}` ({r['date']}). Optimised: {r['optimised']}. Baseline: {r['baseline']}.", "",
             "| measure | optimised | baseline | ratio |", "| --- | ---: | ---: | ---: |"]
    if not r.get("complete", True):
        lines[2:2] = ["**Incomplete**: the run stopped before every part was measured.", ""]
    for b in BATCHES:
        k = str(b)
        lines.append(f"| drive, batch {b} (frames/s) | {_fmt(r['drive_fps'].get(k))} | "
                     f"{_fmt(r['baseline_drive_fps'].get(k))} | {_fmt(r['drive_speedup'].get(k), 1, 'x')} |")
    lines.append(f"| full forward, batch {FULL_BATCH} (frames/s) | {_fmt(r['full_fps'])} | "
                 f"{_fmt(r['baseline_full_fps'])} "
                 f"| {_fmt(r.get('full_speedup'), 1, 'x')} |")
    by_batch = r.get("train_images_per_s_by_batch") or {str(r.get("train_batch", TRAIN_BATCH)): r["train_images_per_s"]}
    base_by_batch = r.get("baseline_train_images_per_s_by_batch") or {}
    for n, fast in by_batch.items():
        base = base_by_batch.get(n, r.get("baseline_train_images_per_s") if len(by_batch) == 1 else None)
        ratio = fast / base if fast and base else None
        lines.append(f"| training, batch {n} (images/s) | {_fmt(fast, 1)} | {_fmt(base, 1)} | {_fmt(ratio, 1, 'x')} |")
    if r.get("train_images_per_s_synthetic") is not None:
        lines.append(f"| training on the synthetic world rendered on the device, batch "
                     f"{r.get('train_batch_synthetic', TRAIN_BATCH)} (images/s) | "
                     f"{_fmt(r['train_images_per_s_synthetic'], 1)} | | |")
    anim = r.get("animate_10s_seconds")
    if anim:
        stages = ", ".join(f"{k} {anim[k]:.2f}" for k in ANIMATE_STAGES if k in anim)
        lines.append(f"| animate a 10 s 25 fps clip, stages in sequence (s) | {_fmt(anim.get('total'), 2)} "
                     f"({stages}) | | |")
        lines.append(f"| animate a 10 s 25 fps clip, stages overlapped (s) | "
                     f"{_fmt(anim.get('overlapped_total'), 2)} | | |")
        if anim.get("pipeline_total") is not None:
            lines.append(f"| animate a 10 s 25 fps clip with X2FacePipeline, as the app runs, first use (s) | "
                         f"{_fmt(anim['pipeline_total'], 2)} | | |")
        if anim.get("pipeline_overlap_total") is not None:
            lines.append(f"| the same with the pipeline's overlap, as the CLI runs on a GPU (s) | "
                         f"{_fmt(anim['pipeline_overlap_total'], 2)} | | |")
        if anim.get("pipeline_sharp_total") is not None:
            lines.append(f"| the same with sharp rendering, the CLI's and the app's default (s) | "
                         f"{_fmt(anim['pipeline_sharp_total'], 2)} | | |")
    else:
        lines.append(f"| animate a 10 s 25 fps clip (s) | n/a: {r['skipped'].get('animate_10s_seconds', '')} | | |")
    lines.append(f"| peak memory (MB, {r['peak_memory_kind']}) | {_fmt(r['peak_memory_mb'])} | | |")
    verdict = {True: "ok", False: "FAILED", None: "not checked"}[r["tolerance_ok"]]
    for what, prefix in (("drive", ""), ("full forward", "full_")):
        worst, mean = r.get(f"max_abs_diff_{prefix}vs_fp32"), r.get(f"mean_abs_diff_{prefix}vs_fp32")
        if worst is not None:
            lines.append(f"| {what}: max / mean abs diff vs fp32 | {worst:.2g} / {mean:.2g} | tolerance "
                         f"{r['tolerance']:g} / {r['mean_tolerance']:g} | {verdict} |")
            if not prefix and r.get("p999_abs_diff_vs_fp32") is not None:
                lines.append(f"| drive: 99.9 % of pixels differ from fp32 by less than | "
                             f"{r['p999_abs_diff_vs_fp32']:.2g} | | |")
    if r.get("fraction_of_arithmetic_limit") is not None:
        lines.append(f"| driving at the arithmetic limit ({r['drive_gflop_per_frame']:.1f} GFLOP/frame at "
                     f"{r['peak_tflops']:g} TFLOP/s) | {_fmt(r['arithmetic_limit_fps'])} frames/s | | "
                     f"{100 * r['fraction_of_arithmetic_limit']:.1f} % reached |")
    lines += ["", f"Machine: {json.dumps(r['machine'])}"]
    if r["skipped"]:
        lines += ["", "Skipped:"] + [f"- `{k}`: {v}" for k, v in r["skipped"].items()]
    if r["errors"]:
        lines += ["", "Errors:"] + [f"- `{k}`: {v}" for k, v in r["errors"].items()]
    if r["notes"]:
        lines += ["", "Notes:"] + [f"- {n}" for n in r["notes"]]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- main
def run_bench(settings: BenchSettings, log: Callable[[str], None] = print,
              checkpoint: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run every part, return the result dict (see the module docstring); never raises for a part's failure.

    ``checkpoint(result)`` is called after each part (``result["complete"]`` False until the end), so a
    run stopped by a time limit still leaves what it measured.
    """
    t_start = time.perf_counter()
    dev, cfg = settings.device, settings.config
    dtype = resolve_dtype(settings.dtype, dev)
    result: dict[str, Any] = {k: None for k in JSON_KEYS}
    result.update({
        "device": dev.type, "config": settings.config_name, "image_size": cfg.image_size,
        "command": "python -m x2face bench " + " ".join(shlex.quote(a) for a in settings.argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": settings.quick,
        "drive_fps": {str(b): None for b in BATCHES}, "baseline_drive_fps": {str(b): None for b in BATCHES},
        "drive_speedup": {str(b): None for b in BATCHES},
        "baseline": "fp32 eager X2Face.forward (each frame embeds the source again, then is driven), NCHW, "
                    "torch.no_grad, PyTorch's default math flags, cudnn.benchmark off",
        "skipped": {}, "errors": {}, "notes": [], "train_settings": {},
        "machine": machine_info(dev, settings.threads),
    })
    memory = Memory(dev)
    timer = Timer(settings)
    frames, frames_from = bench_frames(24, cfg.image_size)
    result["frames"] = frames_from
    if settings.weights is not None:
        from .hub import load_model

        model = load_model(settings.weights, "cpu").eval()
        model.check_inputs = False
        result["weights"] = str(settings.weights)
    else:
        model = bench_model(cfg, frames[:8])
        result["weights"] = (f"random (seed 0), offset layers scaled to mean |offset| {OFFSET_SCALE} of the "
                             f"half-width (x2face.bench.bench_model)")
    model = model.to(dev)
    result["drive_gflop_per_frame"] = round(drive_gflop_per_frame(model), 3)

    log(f"x2face bench: {settings.config_name} ({cfg.image_size} px) on {dev} ({dtype}), "
        f"{'quick' if settings.quick else 'full'} run")
    memory.start()
    driver = FastDriver(model, dev, dtype, channels_last=settings.channels_last, compile=settings.compile,
                        cuda_graphs=settings.cuda_graphs)
    result["tolerance"] = driver.tolerance
    result["mean_tolerance"] = driver.mean_tolerance
    result["optimised"] = (f"FastDriver: cached embedded face, {str(dtype).replace('torch.', '')} networks with "
                           f"BatchNorm folded, fp32 sampling, {'channels_last' if settings.channels_last else 'NCHW'}"
                           f"{', torch.compile' if settings.compile else ''}"
                           f"{', CUDA graphs' if settings.cuda_graphs else ''}"
                           f"{', cudnn.benchmark' if dev.type == 'cuda' else ''}")

    parts: list[tuple[str, Callable[[], None]]] = []
    for name, part in (("drive", lambda: measure_drive(settings, driver, model, frames, result, timer)),
                       ("accuracy", lambda: measure_accuracy(settings, driver, model, frames, result)),
                       ("full", lambda: measure_full(settings, driver, model, frames, result, timer))):
        if name in settings.parts:
            parts.append((name, part))
        else:
            result["skipped"][name] = "not in --parts"
    if settings.train:
        parts.append(("train", lambda: measure_train(settings, model, frames, result, timer, dtype)))
    else:
        result["skipped"]["train_images_per_s"] = "--no-train" if "train" in settings.parts else "not in --parts"
    if settings.animate:
        parts.append(("animate", lambda: measure_animate(settings, driver, result)))
    else:
        result["skipped"]["animate_10s_seconds"] = "--no-animate" if "animate" in settings.parts else "not in --parts"
    for name, part in parts:
        t0 = time.perf_counter()
        memory.start()
        try:
            part()
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # one part failing must not lose the others' numbers
            if os.environ.get("X2FACE_DEBUG"):
                raise
            msg = one_line(exc, 400)
            result["errors"][name] = msg
            log(f"  {name}: FAILED ({msg})")
        memory.stop(name)
        log(f"  {name}: {time.perf_counter() - t0:.1f} s")
        if checkpoint is not None:
            _finish(result, driver, memory, settings, t_start, complete=False)
            checkpoint(result)
    _finish(result, driver, memory, settings, t_start, complete=True)
    return result


def _finish(result: dict[str, Any], driver: FastDriver, memory: Memory, settings: BenchSettings, t_start: float,
            complete: bool) -> None:
    """Fill the summary keys from what has been measured so far."""
    result["settings"] = dict(driver.features)
    result["peak_memory_mb"] = round(memory.overall_mb(), 1)
    result["peak_memory_kind"] = memory.kind
    result["peak_memory_mb_by_stage"] = memory.by_stage
    result["tolerance_ok"] = tolerance_ok(result) if "accuracy" in settings.parts else None  # None: not checked
    peak = peak_tflops_for(settings, result["machine"])
    best = max((v for v in result["drive_fps"].values() if v), default=None)
    if peak and best:
        limit = peak * 1e3 / result["drive_gflop_per_frame"]
        result.update({"peak_tflops": peak, "arithmetic_limit_fps": round(limit),
                       "fraction_of_arithmetic_limit": round(best / limit, 4)})
    result["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    if hasattr(os, "getloadavg"):
        result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["complete"] = complete


def tolerance_ok(result: dict[str, Any]) -> bool:
    """The accuracy check: drive (required) and full forward (when measured) within both tolerances."""
    if result.get("max_abs_diff_vs_fp32") is None or "accuracy" in result["errors"]:
        return False
    for prefix in ("", "full_"):
        worst, mean = result.get(f"max_abs_diff_{prefix}vs_fp32"), result.get(f"mean_abs_diff_{prefix}vs_fp32")
        if worst is not None and not (worst <= result["tolerance"] and mean <= result["mean_tolerance"]):
            return False
    return True


def write_outputs(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``out`` (JSON) and the Markdown table beside it; returns both paths."""
    out.parent.mkdir(parents=True, exist_ok=True)
    md = out.with_suffix(".md")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    md.write_text(markdown(result), encoding="utf-8")
    return out, md


def main(argv: list[str]) -> int:
    """``python -m x2face bench``: measure, write JSON + Markdown, fail if the accuracy check fails."""
    settings = parse_args(argv)
    result = run_bench(settings, checkpoint=lambda partial: write_outputs(partial, settings.out))
    json_path, md_path = write_outputs(result, settings.out)
    print(markdown(result))
    print(f"wrote {json_path} and {md_path}")
    if result["tolerance_ok"] is False:
        def pair(prefix: str) -> str:
            worst, mean = result.get(f"max_abs_diff_{prefix}vs_fp32"), result.get(f"mean_abs_diff_{prefix}vs_fp32")
            return "not measured" if worst is None else f"{worst:.3g} / {mean:.3g}"

        raise ToleranceError(
            f"the optimised path is off the fp32 reference: max / mean |diff| drive {pair('')}, full forward "
            f"{pair('full_')} vs tolerance {result['tolerance']:g} / {result['mean_tolerance']:g} "
            f"({result['settings'].get('dtype')}); {result['errors'].get('accuracy', 'see ' + str(json_path))}")
    if result["errors"]:
        print(f"x2face bench: some parts failed: {'; '.join(f'{k}: {v}' for k, v in result['errors'].items())}",
              file=sys.stderr)
        return 1
    return 0


__all__ = ["BATCHES", "BenchSettings", "JSON_KEYS", "ToleranceError", "animate_stages", "bench_frames", "bench_model",
           "build_parser", "drive_gflop_per_frame", "main", "markdown", "parse_args", "run_bench", "scale_offsets",
           "tolerance_ok", "write_outputs"]
