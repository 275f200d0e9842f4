"""The optimised inference path: drive one cached embedded face with many frames, fast.

``FastDriver`` wraps a trained ``X2Face`` for the work the pipeline repeats once per frame: the
source is embedded once (``set_source`` / ``set_embedded``) and every frame only goes through the
driving network and one bilinear sample of the cached embedded face.

    >>> driver = FastDriver(model, "cuda", dtype="auto", compile=True, cuda_graphs=True)
    >>> driver.set_source(sources)                 # float [1, K, 3, S, S] in [0, 1], RGB
    >>> out = driver.drive(frames)                 # float/uint8 [B, 3, S, S] -> float32 [B, 3, S, S] in [0, 1]
    >>> driver.max_abs_diff_vs_fp32(frames)        # vs the fp32 eager model on the same inputs

What it does differently from ``X2Face.forward`` (each one is an inference-time transform of the same
function; ``max_abs_diff_vs_fp32`` measures how far the result moved):

* eval-mode BatchNorm is folded into the preceding convolution (weights and a bias, computed in
  float64), so a level is one convolution instead of a convolution and a normalisation pass;
* the networks run in a low-precision dtype (bf16 by default on CUDA: weights cast once, which is
  what autocast would do for every call) while the offset -> sampling grid -> ``grid_sample`` step
  runs in float32 (bf16 grids lose sub-pixel precision);
* activations are ``channels_last`` (NHWC), the layout cuDNN's tensor-core kernels and oneDNN want;
* on CUDA, ``cudnn.benchmark`` picks the fastest convolution algorithms for the fixed shapes;
* batches are padded up to fixed *buckets* (powers of two up to ``max_batch``) so that
  ``torch.compile`` and CUDA graphs see a handful of shapes; larger batches are split;
* ``torch.compile`` (optional) fuses the pointwise work around the convolutions; CUDA graphs
  (optional, CUDA only) replay a whole bucket's kernels with one launch. Either one falls back to
  eager with the reason in ``features`` if it fails on this machine.

CPU threads: ``configure_cpu_threads()`` sets torch's intra-op threads to the physical cores this
process may run on (hyper-threads slow convolutions down) and one inter-op thread.
"""
from __future__ import annotations

import contextlib
import copy
import os
import warnings
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ConfigError, InputError, one_line
from .model import X2Face
from .nets import DownLevel, DrivingNetwork, EmbeddingNetwork, UpLevel
from .warp import identity_grid

#: dtype names FastDriver takes (``"auto"`` is resolved per device by ``resolve_dtype``).
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

#: Largest max |fast - fp32 eager| accepted, per compute dtype, on images in [0, 1]. fp32 differs only
#: by summation order (BN folding, other kernels). Low precision moves each sampling point by a small
#: fraction of a pixel, which changes a pixel by that fraction of the local contrast, so the max lands
#: on a few pixels at the sharpest edges (bf16 on the bench's faces: 0.04-0.06 at 128 px, 0.11 at 256 px).
TOLERANCE: dict[torch.dtype, float] = {torch.float32: 1e-4, torch.bfloat16: 0.25, torch.float16: 0.05}
#: Largest mean |fast - fp32 eager| accepted: the binding check for low precision (bf16: half a grey
#: level of 255; measured 5e-4 to 7e-4).
MEAN_TOLERANCE: dict[torch.dtype, float] = {torch.float32: 1e-5, torch.bfloat16: 2e-3, torch.float16: 1e-3}


# ---------------------------------------------------------------------------------------------- CPU threads
def physical_cores() -> int:
    """Number of physical CPU cores this process may run on (hyper-thread siblings counted once).

    Reads the process's CPU affinity and ``/proc/cpuinfo`` (Linux); falls back to ``os.cpu_count()``.
    """
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        allowed = set(range(os.cpu_count() or 1))
    cores: set[tuple[str, str]] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            proc, phys, core = None, "0", None
            for line in f.read().splitlines() + [""]:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "processor":
                    proc = int(value)
                elif key == "physical id":
                    phys = value
                elif key == "core id":
                    core = value
                elif not line.strip() and proc is not None:
                    if proc in allowed:
                        cores.add((phys, core if core is not None else str(proc)))
                    proc, phys, core = None, "0", None
    except (OSError, ValueError):
        cores = set()
    return max(1, len(cores) or len(allowed))


def max_cpu_threads() -> int:
    """The most CPU threads x2face gives torch: this machine's logical CPUs (``os.cpu_count()``). More only slow the
    convolutions down, and torch crashes (a segmentation fault) when asked for tens of thousands."""
    return max(1, os.cpu_count() or 1)


def check_threads(num_threads: object, what: str = "--threads") -> int:
    """``num_threads`` as a number of CPU threads (an int from 1 to ``max_cpu_threads()``), or an ``InputError``
    naming ``what``."""
    top = max_cpu_threads()
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or not 1 <= num_threads <= top:
        raise InputError(f"{what} must be from 1 to {top} (this machine's CPU threads), got {num_threads}")
    return num_threads


def configure_cpu_threads(num_threads: int | None = None) -> int:
    """Set torch's CPU threads for inference and return the number used.

    ``num_threads`` None: ``X2FACE_THREADS`` if set, else ``OMP_NUM_THREADS`` if set, else the
    physical cores this process may use (``physical_cores()``). One thread per physical core is
    what oneDNN's convolutions scale with; more (hyper-threads, oversubscription by other
    processes) makes them slower, not faster. The inter-op pool is set to one thread (the networks
    are a chain of convolutions: nothing runs side by side), where torch still allows it. A variable's value
    above ``max_cpu_threads()`` is taken as that many (a cluster's OMP_NUM_THREADS may name more CPUs than this
    process has); ``num_threads`` must be within it (``check_threads``).
    """
    if num_threads is None:
        env = os.environ.get("X2FACE_THREADS") or os.environ.get("OMP_NUM_THREADS")
        num_threads = int(env) if env and env.isdigit() and int(env) > 0 else physical_cores()
        num_threads = min(num_threads, max_cpu_threads())
    num_threads = check_threads(num_threads, "the number of CPU threads")
    torch.set_num_threads(num_threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only allowed before the first parallel work; then it is left as it is
        pass
    return num_threads


# ---------------------------------------------------------------------------------------------- dtypes
def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (Intel Sapphire Rapids and later): oneDNN's bf16 convolutions then run
    2-4x faster than float32 ones (measured: docs/speed.md); without AMX, bf16 on a CPU is no faster."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(check()) if check is not None else False
    except Exception:  # pragma: no cover - probing must never fail a run
        return False


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``"auto"`` -> bf16 on CUDA GPUs that support it and on CPUs with AMX, float32 elsewhere;
    else a name in ``DTYPES`` or a torch dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype not in TOLERANCE:
            raise ConfigError(f"FastDriver computes in float32, bfloat16 or float16, got {dtype}")
        return dtype
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        return torch.bfloat16 if device.type == "cpu" and cpu_has_amx() else torch.float32
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; choose auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


# ---------------------------------------------------------------------------------------------- folded networks
def fold_conv_bn(conv: nn.Conv2d, norm: nn.Module) -> nn.Conv2d:
    """A new Conv2d computing ``norm(conv(x))`` for an eval-mode BatchNorm ``norm`` (or Identity).

    ``w' = w * g / sqrt(v + eps)`` per output channel, ``b' = beta - m * g / sqrt(v + eps)``,
    computed in float64 and returned in float32.
    """
    w = conv.weight.detach().double()  # [out, in, kh, kw]
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64,
                                                                               device=w.device)
    if isinstance(norm, nn.BatchNorm2d):
        scale = norm.weight.detach().double() / torch.sqrt(norm.running_var.detach().double() + norm.eps)  # [out]
        w = w * scale.reshape(-1, 1, 1, 1)  # [out] -> [out, 1, 1, 1]
        bias = norm.bias.detach().double() + (bias - norm.running_mean.detach().double()) * scale
    elif not isinstance(norm, nn.Identity):
        raise TypeError(f"cannot fold {type(norm).__name__} into a convolution")
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True)
    with torch.no_grad():
        fused.weight.copy_(w.float())
        fused.bias.copy_(bias.float())
    return fused.to(conv.weight.device)


def _fold_levels(levels: nn.ModuleList) -> nn.ModuleList:
    return nn.ModuleList(fold_conv_bn(level.conv, level.norm) for level in levels)


def _up(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """One decoder level, BN folded: ReLU -> bilinear x2 (align_corners) -> conv; [B, C, H, W] -> [B, C', 2H, 2W]."""
    return conv(F.interpolate(F.relu(x), scale_factor=2, mode="bilinear", align_corners=True))


class FoldedDriving(nn.Module):
    """``DrivingNetwork`` for inference: same function, BatchNorm folded into the convolutions."""

    def __init__(self, net: DrivingNetwork) -> None:
        super().__init__()
        assert all(isinstance(level, DownLevel) for level in net.down) and all(isinstance(u, UpLevel) for u in net.up)
        self.activations = [level.activation for level in net.down]
        self.down = _fold_levels(net.down)
        self.up = _fold_levels(net.up)
        self.vector_dim = net.vector_dim

    def encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        """driving [B, 3, S, S] -> bottleneck before its ReLU, [B, D, 1, 1]."""
        for act, conv in zip(self.activations, self.down):
            x = conv(F.leaky_relu(x, 0.2) if act else x)  # [B, C, H, W] -> [B, C', H/2, W/2]
        return x

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """bottleneck [B, D, 1, 1] (before or after ReLU) -> raw offset [B, 2, S, S] before any tanh."""
        y = code
        for i in range(len(self.up) - 1, -1, -1):
            y = _up(self.up[i], y)  # [B, C, H, W] -> [B, C', 2H, 2W]
        return y


class FoldedEmbedding(nn.Module):
    """``EmbeddingNetwork`` for inference: same function (U-Net with skips), BatchNorm folded."""

    def __init__(self, net: EmbeddingNetwork) -> None:
        super().__init__()
        self.down = _fold_levels(net.down)
        self.up = _fold_levels(net.up)

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        """source [N, 3, S, S] -> raw output [N, 3, S, S] (offset x, offset y, confidence)."""
        skips: list[torch.Tensor] = []
        h = self.down[0](source)  # [N, ngf, S/2, S/2]
        for conv in self.down[1:]:
            a = F.leaky_relu(h, 0.2)
            skips.append(a)
            h = conv(a)  # [N, C, H, W] -> [N, C', H/2, W/2]
        y = h
        for i in range(len(self.up) - 1, -1, -1):
            y = _up(self.up[i], y)
            if i > 0:
                y = torch.cat([y, skips[i - 1]], dim=1)  # [N, 2*C_i, ., .]: decoder first, then skip
        return y


# ---------------------------------------------------------------------------------------------- CUDA graphs
class _GraphedBuckets:
    """Capture ``fn`` once per bucket in a CUDA graph and replay it.

    ``fn`` takes one tensor (the bucket-sized input, compute dtype and layout) and returns one
    tensor; it must do nothing that needs the host (no ``.item()``, no data-dependent shapes). The
    graph reads ``static_in`` and writes ``static_out``. ``run`` copies a chunk of b <= bucket items
    into the first rows of ``static_in`` (the copy also converts dtype and layout; the rows after b
    keep older valid data, whose outputs are never read), replays, and returns ``static_out[:b]``,
    which the next replay overwrites: the caller copies it.
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], dtype: torch.dtype,
                 memory_format: torch.memory_format, warmup: int = 3) -> None:
        self.fn = fn
        self.dtype = dtype
        self.memory_format = memory_format
        self.warmup = warmup
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def _capture(self, chunk: torch.Tensor, bucket: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        device = chunk.device
        reps = -(-bucket // chunk.shape[0])
        example = chunk.repeat(reps, *([1] * (chunk.dim() - 1)))[:bucket]  # [b, ...] -> [bucket, ...], valid data
        fmt = self.memory_format if chunk.dim() == 4 else torch.contiguous_format
        static_in = example.to(self.dtype).contiguous(memory_format=fmt)
        stream = torch.cuda.Stream(device=device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):  # warm up off the capture: cuDNN autotuning, compilation, workspaces
            for _ in range(self.warmup):
                self.fn(static_in)
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.fn(static_in)
        return graph, static_in, static_out

    def run(self, chunk: torch.Tensor, bucket: int) -> torch.Tensor:
        """chunk [b, ...] on the device (any float dtype/layout), b <= bucket -> static output rows [:b]."""
        entry = self.graphs.get(bucket)
        if entry is None:
            entry = self.graphs[bucket] = self._capture(chunk, bucket)
        graph, static_in, static_out = entry
        b = chunk.shape[0]
        static_in[:b].copy_(chunk)
        graph.replay()
        return static_out[:b]


# ---------------------------------------------------------------------------------------------- the driver
def default_max_batch(config, device: torch.device) -> int:
    """Largest batch run at once: 256 on a GPU; on a CPU ~16 frames of 128 px (4 at 256 px, 64 at 64 px),
    so a chunk's activations stay in cache (demo config, 1 thread: 935 frames/s at batch 16, 228 at 256)."""
    if device.type != "cpu":
        return 256
    return max(1, min(64, 16 * 128 * 128 // (config.image_size * config.image_size)))


def default_buckets(max_batch: int) -> tuple[int, ...]:
    """Powers of two 1, 2, 4, ... up to ``max_batch``, plus ``max_batch`` itself."""
    out, b = [], 1
    while b < max_batch:
        out.append(b)
        b *= 2
    out.append(max_batch)
    return tuple(out)


class FastDriver:
    """Drive a cached embedded face with batches of frames at the hardware's speed.

    Args:
        model: a trained ``X2Face`` (any device, float32 weights); it is not modified and stays the
            fp32 reference ``max_abs_diff_vs_fp32`` compares against.
        device: where to run (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a torch.device).
        dtype: compute dtype of the networks: ``"auto"`` (bf16 on CUDA and on CPUs with AMX, else
            float32), ``"fp32"``, ``"bf16"``, ``"fp16"`` or a torch dtype. Sampling is always float32.
        channels_last: run the networks in NHWC memory layout.
        compile: wrap the per-frame work in ``torch.compile`` (one compile per bucket, on first use).
        cuda_graphs: replay each bucket's kernels as a CUDA graph (CUDA only; ignored elsewhere).
        max_batch: largest batch run at once; larger inputs are split into chunks of this size
            (default ``default_max_batch``: 256 on a GPU, a cache-sized chunk on a CPU).
        buckets: batch sizes inputs are padded up to (default: powers of two up to ``max_batch``).
        pad_to_buckets: pad batches to buckets (default: when ``compile`` or ``cuda_graphs``).
        check_inputs: check shapes and dtypes (no device sync; values are not range-checked).

    ``features`` records what is in effect (and why an optional part fell back).
    """

    def __init__(self, model: X2Face, device: str | torch.device = "cpu", dtype: str | torch.dtype = "auto", *,
                 channels_last: bool = True, compile: bool = False, cuda_graphs: bool = False,
                 max_batch: int | None = None, buckets: tuple[int, ...] | None = None,
                 pad_to_buckets: bool | None = None, check_inputs: bool = True) -> None:
        if not isinstance(model, X2Face):
            raise ConfigError(f"FastDriver wraps an X2Face, got {type(model).__name__}")
        self.device = torch.device(device)
        if max_batch is None:
            max_batch = max(buckets) if buckets else default_max_batch(model.config, self.device)
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigError(f"max_batch must be a positive int, got {max_batch!r}")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("CUDA was asked for but this machine has no usable CUDA GPU; use device='cpu'")
        self.dtype = resolve_dtype(dtype, self.device)
        self.reference = model
        self.config = model.config
        self.size = model.config.image_size
        self.channels_last = channels_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.check_inputs = check_inputs
        self.max_batch = max_batch
        self.buckets = tuple(sorted(set(buckets))) if buckets else default_buckets(max_batch)
        if self.buckets[-1] < max_batch or self.buckets[0] < 1:
            raise ConfigError(f"buckets must be positive and reach max_batch={max_batch}, got {self.buckets}")
        self.pad_to_buckets = (compile or cuda_graphs) if pad_to_buckets is None else pad_to_buckets
        self.tolerance = TOLERANCE[self.dtype]
        self.mean_tolerance = MEAN_TOLERANCE[self.dtype]

        # Inference copies of the two networks: BN folded (float64 maths), cast, laid out.
        src = copy.deepcopy(model).float().eval()
        self.driving = FoldedDriving(src.driving).to(self.device, self.dtype, memory_format=self.memory_format).eval()
        self.embedding = FoldedEmbedding(src.embedding).to(self.device, self.dtype,
                                                           memory_format=self.memory_format).eval()
        for p in list(self.driving.parameters()) + list(self.embedding.parameters()):
            p.requires_grad_(False)
        del src
        s = self.size
        self._identity = identity_grid(1, s, s, device=self.device, dtype=torch.float32).contiguous()  # [1, S, S, 2]
        self._embedded = torch.zeros(1, 3, s, s, device=self.device, dtype=torch.float32)  # static buffer
        self._has_embedded = False

        self.features: dict[str, object] = {
            "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
            "channels_last": channels_last, "bn_folded": True, "fp32_sampling": True,
            "max_batch": max_batch, "buckets": list(self.buckets) if self.pad_to_buckets else None,
            "compile": False, "cuda_graphs": False, "cudnn_benchmark": False,
        }
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN time its algorithms once
            self.features["cudnn_benchmark"] = True

        self._drive_fn: Callable[[torch.Tensor], torch.Tensor] = self._drive_core
        self._render_fn: Callable[[torch.Tensor], torch.Tensor] = self._render_core
        if compile:
            try:
                self._drive_fn = torch.compile(self._drive_core, dynamic=False)
                self._render_fn = torch.compile(self._render_core, dynamic=False)
                self.features["compile"] = True
                _raise_recompile_limit(len(self.buckets) + 4)
            except Exception as exc:  # no compiler on this machine: stay eager
                self._fallback("compile", exc)
        self._graphs: dict[str, _GraphedBuckets] | None = None
        if cuda_graphs:
            if self.device.type == "cuda":
                self._make_graphs()
                self.features["cuda_graphs"] = True
            else:
                self.features["cuda_graphs"] = False
                self.features["cuda_graphs_note"] = "CUDA graphs need a CUDA device; not used on " + self.device.type

    # ------------------------------------------------------------------ the per-frame work (fixed shapes)
    def _sample(self, raw_offset: torch.Tensor) -> torch.Tensor:
        """raw offset [B, 2, S, S] (compute dtype) -> frames float32 [B, 3, S, S] sampled from the embedded face."""
        grid = self._grid(raw_offset)  # [B, S, S, 2]
        embedded = self._embedded.expand(grid.shape[0], -1, -1, -1)  # [1, 3, S, S] -> [B, 3, S, S]
        return F.grid_sample(embedded, grid, mode="bilinear", padding_mode="zeros", align_corners=True)

    def _frame_offsets(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, 3, S, S] in the compute dtype/layout -> raw offsets [B, 2, S, S]."""
        return self.driving.decode(self.driving.encode_raw(frames))

    def _vector_offsets(self, vectors: torch.Tensor) -> torch.Tensor:
        """vectors [B, D] in the compute dtype -> raw offsets [B, 2, S, S]."""
        code = vectors.reshape(vectors.shape[0], -1, 1, 1)  # [B, D] -> [B, D, 1, 1]
        return self.driving.decode(code.contiguous(memory_format=self.memory_format))

    def _drive_core(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, 3, S, S] in the compute dtype/layout -> float32 [B, 3, S, S]."""
        return self._sample(self._frame_offsets(frames))

    def _render_core(self, vectors: torch.Tensor) -> torch.Tensor:
        """vectors [B, D] in the compute dtype -> float32 [B, 3, S, S]."""
        return self._sample(self._vector_offsets(vectors))

    def _fallback(self, what: str, exc: BaseException) -> None:
        msg = one_line(exc, 300)
        warnings.warn(f"FastDriver: {what} unavailable here, running without it ({msg})", RuntimeWarning, stacklevel=3)
        self.features[what] = False
        self.features[f"{what}_error"] = msg

    def _math(self):
        """float32 compute on CUDA means float32: no TF32 convolutions (PyTorch allows them by default)."""
        if self.dtype == torch.float32 and self.device.type == "cuda":
            return strict_fp32()
        return contextlib.nullcontext()

    def _bucket(self, b: int) -> int:
        return next(k for k in self.buckets if k >= b) if self.pad_to_buckets else b

    def _prepare(self, kind: str, chunk: torch.Tensor) -> torch.Tensor:
        """Cast to the compute dtype (and, for frames, the memory layout)."""
        if kind == "drive":
            return chunk.to(self.dtype, memory_format=self.memory_format)
        return chunk.to(self.dtype)

    def _make_graphs(self) -> None:
        self._graphs = {kind: _GraphedBuckets(fn, self.dtype, self.memory_format)
                        for kind, fn in (("drive", self._drive_fn), ("render", self._render_fn))}

    def _run(self, kind: str, x: torch.Tensor) -> torch.Tensor:
        """Run ``x`` (on the device, float) through the drive/render function, in buckets of at most max_batch."""
        with self._math():
            return self._run_chunks(kind, x)

    def _run_chunks(self, kind: str, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for chunk in x.split(self.max_batch):
            b = chunk.shape[0]
            bucket = self._bucket(b)
            if self._graphs is not None:
                out = self._run_graph(kind, chunk, bucket)
                if out is not None:
                    outs.append(out[:b].clone())  # the static output is overwritten by the next replay
                    continue
            chunk = self._prepare(kind, chunk)
            if bucket != b:
                pad = chunk[-1:].expand(bucket - b, *chunk.shape[1:])  # repeat the last item (valid data)
                chunk = torch.cat([chunk, pad], dim=0).contiguous(memory_format=self.memory_format
                                                                   if kind == "drive" else torch.contiguous_format)
            outs.append(self._run_fn(kind, chunk)[:b])
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)

    def _run_graph(self, kind: str, chunk: torch.Tensor, bucket: int) -> torch.Tensor | None:
        """Replay the bucket's graph; on failure drop compile first (and retry), then graphs. None: run eagerly."""
        for _ in range(2):
            try:
                return self._graphs[kind].run(chunk, bucket)
            except Exception as exc:
                torch.cuda.synchronize(self.device)
                if self.features["compile"]:  # the compiled function may be what failed: retry graphs without it
                    self._drive_fn, self._render_fn = self._drive_core, self._render_core
                    self._fallback("compile", exc)
                    self._make_graphs()
                    continue
                self._graphs = None
                self._fallback("cuda_graphs", exc)
                return None
        return None

    def _run_fn(self, kind: str, x: torch.Tensor) -> torch.Tensor:
        fn = self._drive_fn if kind == "drive" else self._render_fn
        if self.features["compile"]:
            try:
                return fn(x)
            except Exception as exc:  # no working compiler here: eager from now on
                self._drive_fn, self._render_fn = self._drive_core, self._render_core
                self._fallback("compile", exc)
                fn = self._drive_fn if kind == "drive" else self._render_fn
        return fn(x)

    # ------------------------------------------------------------------ inputs
    def _frames_in(self, frames: torch.Tensor, name: str = "frames") -> torch.Tensor:
        """float [B, 3, S, S] in [0, 1] or uint8 [B, 3, S, S] in 0..255 -> float on the device (cast later)."""
        s = self.size
        if self.check_inputs:
            if not isinstance(frames, torch.Tensor):
                raise InputError(f"{name} must be a torch.Tensor [B, 3, {s}, {s}], got {type(frames).__name__}")
            if frames.dim() != 4 or frames.shape[1] != 3 or frames.shape[2] != s or frames.shape[3] != s:
                raise InputError(f"{name} must have shape [B, 3, {s}, {s}] (RGB, NCHW), got {list(frames.shape)}")
            if frames.shape[0] == 0:
                raise InputError(f"{name} is empty: shape {list(frames.shape)}")
            if not (frames.is_floating_point() or frames.dtype == torch.uint8):
                raise InputError(f"{name} must be float in [0, 1] or uint8 in 0..255, got dtype {frames.dtype}")
        x = frames.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:
            return x.to(self.dtype).mul_(1.0 / 255.0)
        return x

    # ------------------------------------------------------------------ public API
    @torch.inference_mode()
    def embed(self, sources: torch.Tensor) -> torch.Tensor:
        """Embed K frames of one face, as ``X2Face.embed`` does, with the folded low-precision network.

        Args:
            sources: float [B, K, 3, S, S] in [0, 1], RGB.

        Returns:
            embedded faces, float32 [B, 3, S, S] on the driver's device. The warp and the
            confidence-weighted average (``w_i = exp(c_i) + floor``) run in float32.
        """
        s = self.size
        if self.check_inputs and (not isinstance(sources, torch.Tensor) or sources.dim() != 5
                                  or tuple(sources.shape[2:]) != (3, s, s) or 0 in sources.shape):
            got = list(sources.shape) if isinstance(sources, torch.Tensor) else type(sources).__name__
            raise InputError(f"sources must have shape [B, K, 3, {s}, {s}], got {got}")
        b, k = sources.shape[:2]
        frames32 = sources.to(self.device).reshape(b * k, 3, s, s).float()  # [B, K, 3, S, S] -> [B*K, 3, S, S]
        x = frames32.to(self.dtype).contiguous(memory_format=self.memory_format)
        with self._math():
            out = self.embedding(x).float()  # [B*K, 3, S, S]
        grid = torch.tanh(out[:, :2]).permute(0, 2, 3, 1) + self._identity  # [B*K, 2, S, S] -> [B*K, S, S, 2]
        warped = F.grid_sample(frames32, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        warped = warped.reshape(b, k, 3, s, s)  # [B*K, 3, S, S] -> [B, K, 3, S, S]
        logits = out[:, 2:3].reshape(b, k, 1, s, s)  # [B*K, 1, S, S] -> [B, K, 1, S, S]
        # Same weighting as X2Face.embed_with_confidence: w_i = exp(c_i) + floor, scaled by exp(-m).
        m = logits.amax(dim=1, keepdim=True).clamp(min=0.0)  # [B, 1, 1, S, S]
        weights = torch.exp(logits - m) + self.config.confidence_floor * torch.exp(-m)  # [B, K, 1, S, S]
        return (weights * warped).sum(dim=1) / weights.sum(dim=1)  # [B, 3, S, S]

    @torch.inference_mode()
    def set_embedded(self, embedded: torch.Tensor) -> None:
        """Cache the embedded face that later drives and renders sample: float [1, 3, S, S] or [3, S, S]."""
        s = self.size
        if embedded.dim() == 3:
            embedded = embedded.unsqueeze(0)  # [3, S, S] -> [1, 3, S, S]
        if tuple(embedded.shape) != (1, 3, s, s) or not embedded.is_floating_point():
            got = f"{embedded.dtype} {list(embedded.shape)}"
            raise InputError(f"the embedded face must be float [1, 3, {s}, {s}], got {got}")
        self._embedded.copy_(embedded)  # in place: captured CUDA graphs read this buffer
        self._has_embedded = True

    def set_source(self, sources: torch.Tensor) -> torch.Tensor:
        """Embed one face's source frames (float [K, 3, S, S] or [1, K, 3, S, S] in [0, 1]) and cache it; returns it."""
        if isinstance(sources, torch.Tensor) and sources.dim() == 4:
            sources = sources.unsqueeze(0)  # [K, 3, S, S] -> [1, K, 3, S, S]
        if isinstance(sources, torch.Tensor) and sources.dim() == 5 and sources.shape[0] != 1:
            raise InputError(f"set_source takes the frames of one face, [1, K, 3, S, S]; got {list(sources.shape)}")
        embedded = self.embed(sources)
        self.set_embedded(embedded)
        return embedded

    def _need_embedded(self) -> None:
        if not self._has_embedded:
            raise InputError("no source face yet: call set_source(frames) or set_embedded(face) before driving")

    @torch.inference_mode()
    def drive(self, frames: torch.Tensor) -> torch.Tensor:
        """Animate the cached face with driving frames.

        Args:
            frames: float [B, 3, S, S] in [0, 1] or uint8 [B, 3, S, S] in 0..255, RGB, on any device.

        Returns:
            generated frames, float32 [B, 3, S, S] in [0, 1] on the driver's device (black where the
            sample falls outside the embedded face, as in the release).
        """
        self._need_embedded()
        return self._run("drive", self._frames_in(frames))

    @torch.inference_mode()
    def driving_vector(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, 3, S, S] (float [0, 1] or uint8) -> driving vectors float32 [B, vector_dim], >= 0."""
        x = self._prepare("drive", self._frames_in(frames))
        with self._math():
            return F.relu(self.driving.encode_raw(x)).flatten(1).float()  # [B, D, 1, 1] -> [B, D]

    @torch.inference_mode()
    def driving_grids(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, 3, S, S] (float [0, 1] or uint8) -> the grids ``drive`` samples the embedded face with, float32
        [B, S, S, 2] in normalised (x, y) units (sharp paste-back samples the full-resolution source with them)."""
        x = self._prepare("drive", self._frames_in(frames))
        with self._math():
            return self._grid(self._frame_offsets(x))

    @torch.inference_mode()
    def vector_grids(self, vectors: torch.Tensor) -> torch.Tensor:
        """vectors float [B, vector_dim] -> the grids ``render_vectors`` samples with, float32 [B, S, S, 2]."""
        with self._math():
            return self._grid(self._vector_offsets(self._prepare("render", vectors.to(self.device))))

    def _grid(self, raw_offset: torch.Tensor) -> torch.Tensor:
        """raw offset [B, 2, S, S] -> sampling grid float32 [B, S, S, 2] (decode's tanh, then render's)."""
        return torch.tanh(torch.tanh(raw_offset.float())).permute(0, 2, 3, 1) + self._identity  # -> [B, S, S, 2]

    @torch.inference_mode()
    def render_vectors(self, vectors: torch.Tensor) -> torch.Tensor:
        """Render the cached face at driving vectors (from frames, a pose or audio).

        Args:
            vectors: float [B, vector_dim].

        Returns:
            float32 [B, 3, S, S] in [0, 1] on the driver's device.
        """
        self._need_embedded()
        d = self.config.vector_dim
        if self.check_inputs and (not isinstance(vectors, torch.Tensor) or vectors.dim() != 2
                                  or vectors.shape[1] != d or vectors.shape[0] == 0):
            got = list(vectors.shape) if isinstance(vectors, torch.Tensor) else type(vectors).__name__
            raise InputError(f"vectors must have shape [B, {d}], got {got}")
        return self._run("render", vectors.to(self.device))

    @torch.inference_mode()
    def forward_full(self, driving: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        """The full forward (embed each item's sources, then drive), as ``X2Face.forward``, optimised.

        Args:
            driving: float [B, 3, S, S] in [0, 1]; sources: float [B, K, 3, S, S] in [0, 1].

        Returns:
            float32 [B, 3, S, S]. Leaves the cached embedded face untouched.
        """
        embedded = self.embed(sources)  # [B, 3, S, S]
        x = self._prepare("drive", self._frames_in(driving))
        with self._math():
            raw = self.driving.decode(self.driving.encode_raw(x))
        offset = torch.tanh(torch.tanh(raw.float()))
        grid = offset.permute(0, 2, 3, 1) + self._identity  # [B, 2, S, S] -> [B, S, S, 2]
        return F.grid_sample(embedded, grid, mode="bilinear", padding_mode="zeros", align_corners=True)

    @torch.inference_mode()
    def reference_drive(self, frames: torch.Tensor) -> torch.Tensor:
        """The fp32 eager model on the same inputs: ``model.render(embedded, model.driving_vector(frames))``.

        TF32 is switched off while it runs, so this is true float32. Returns float32 [B, 3, S, S] on the device.
        """
        self._need_embedded()
        model = self.reference
        dev = next(model.parameters()).device
        x = frames.to(dev)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        with strict_fp32():
            vec = model.driving_vector(x)
            out = model.render(self._embedded.to(dev, next(model.parameters()).dtype), vec)
        return out.float().to(self.device)

    def max_abs_diff_vs_fp32(self, frames: torch.Tensor) -> float:
        """max |drive(frames) - fp32 eager model| over all pixels, for the cached embedded face (syncs)."""
        return self.diff_vs_fp32(frames)[0]

    def diff_vs_fp32(self, frames: torch.Tensor) -> tuple[float, float]:
        """(max, mean) |drive(frames) - fp32 eager model| over all pixels, for the cached face (syncs)."""
        err = (self.drive(frames) - self.reference_drive(frames)).abs()
        return float(err.max()), float(err.mean())

    def within_tolerance(self, frames: torch.Tensor) -> bool:
        """Whether ``drive(frames)`` is within ``tolerance`` (max) and ``mean_tolerance`` (mean) of fp32."""
        worst, mean = self.diff_vs_fp32(frames)
        return worst <= self.tolerance and mean <= self.mean_tolerance


class strict_fp32:  # noqa: N801 - used like a function: `with strict_fp32():`
    """Context: no TF32 in cuDNN convolutions or matmuls (restored on exit)."""

    def __enter__(self) -> None:
        self._saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False

    def __exit__(self, *exc: object) -> None:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self._saved


def _raise_recompile_limit(n: int) -> None:
    """Let torch.compile keep one graph per bucket (the default limit is 8 shapes per function)."""
    import torch._dynamo.config as dynamo_config

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(dynamo_config, name) and getattr(dynamo_config, name) < n:
            setattr(dynamo_config, name, n)


__all__ = ["DTYPES", "MEAN_TOLERANCE", "TOLERANCE", "FastDriver", "FoldedDriving", "FoldedEmbedding",
           "configure_cpu_threads", "cpu_has_amx", "default_buckets", "default_max_batch", "fold_conv_bn",
           "physical_cores", "resolve_dtype", "strict_fp32"]
