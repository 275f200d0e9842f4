"""The two networks of X2Face (Wiles, Koepke, Zisserman, ECCV 2018), as plain ``nn.Module``s.

Both are pix2pix-style encoder-decoders on square RGB frames (float, [0, 1], no normalisation):

* ``EmbeddingNetwork``: a U-Net (pix2pix ``unet_256`` for 256 px) that maps a source frame to 3
  channels: a 2-channel sampling offset (x, y) and a confidence. Warping the source frame with the
  offset gives the *embedded face*.
* ``DrivingNetwork``: the same encoder without skip connections down to a 1x1 bottleneck, the
  *driving vector*, and a decoder to a 2-channel offset that samples the embedded face.

Layer layout (read from the release and kept exactly, so its checkpoints convert 1:1):

* encoder level 0: Conv4x4/s2 (no norm, no activation before it);
* encoder levels 1 .. L-2: LeakyReLU(0.2) -> Conv4x4/s2 -> BatchNorm;
* innermost level L-1: LeakyReLU(0.2) -> Conv4x4/s2 down to 1x1 (no norm);
* decoder level i: ReLU -> bilinear x2 upsample (align_corners, ``upsample2x``) -> Conv3x3 -> BatchNorm (none at
  level 0);
* no conv has a bias.

The U-Net skip at level i >= 1 concatenates ``[decoder output, LeakyReLU(encoder output of level i-1)]``
(decoder channels first): the release applied its LeakyReLUs in place, so the tensor it concatenated
had already gone through the next level's activation.

Losses, warping and the identity network are not here: see ``x2face.model`` and ``x2face.losses``.
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import X2FaceConfig


class DownLevel(nn.Module):
    """One encoder level: [LeakyReLU(0.2)] -> Conv4x4 stride 2 -> [BatchNorm]; halves H and W."""

    def __init__(self, in_ch: int, out_ch: int, *, activation: bool, norm: bool) -> None:
        super().__init__()
        self.activation = activation
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(out_ch) if norm else nn.Identity()

    def activate(self, x: torch.Tensor) -> torch.Tensor:
        """The level's input activation (also what the U-Net skip carries)."""
        return F.leaky_relu(x, 0.2) if self.activation else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in, H, W] -> [B, out, H/2, W/2]
        return self.norm(self.conv(self.activate(x)))


def _interp_weights(n_in: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Linear x2 interpolation with align_corners=True from ``n_in`` to ``2 * n_in`` samples: [2 n_in, n_in].

    Row o holds the weights of output sample o (two neighbours, or one), computed in float64, returned in
    ``dtype`` on ``device``.
    """
    n_out = 2 * n_in
    pos = torch.arange(n_out, device=device, dtype=torch.float64) * ((n_in - 1) / (n_out - 1))
    lo = pos.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = pos - lo
    a = torch.zeros(n_out, n_in, device=device, dtype=torch.float64)
    a = a.scatter_add(1, lo[:, None], (1 - frac)[:, None]).scatter_add(1, hi[:, None], frac[:, None])
    return a.to(dtype)


@functools.lru_cache(maxsize=64)
def interp_matrix(n_in: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``_interp_weights``, cached per (size, device, dtype), and never an inference tensor (even when first
    built under ``inference_mode``), so training can save it for backward."""
    with torch.inference_mode(False), torch.no_grad():
        return _interp_weights(n_in, device, dtype)


def _matrix(n_in: int, x: torch.Tensor) -> torch.Tensor:
    if torch.compiler.is_compiling():  # traced into the graph (and constant-folded) instead of a cache lookup
        return _interp_weights(n_in, x.device, x.dtype)
    return interp_matrix(n_in, x.device, x.dtype)


def upsample2x_matmul(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 with align_corners=True as two batched matmuls with the interpolation matrices, on the
    channels-last layout (no copies when ``x`` is channels_last). x: float [B, C, H, W] -> [B, C, 2H, 2W], x's
    dtype (autocast's under autocast); equal to ``F.interpolate`` up to rounding (the weights are rounded to x's dtype).
    """
    b, c, h, w = x.shape
    t = x.permute(0, 2, 3, 1).reshape(b, h, w * c)  # [B, C, H, W] -> [B, H, W, C] -> [B, H, W*C]
    t = torch.matmul(_matrix(h, x), t)  # [2H, H] @ [B, H, W*C] -> [B, 2H, W*C]
    t = t.reshape(b * 2 * h, w, c)  # [B, 2H, W*C] -> [B*2H, W, C]
    t = torch.matmul(_matrix(w, x), t)  # [2W, W] @ [B*2H, W, C] -> [B*2H, 2W, C]
    return t.reshape(b, 2 * h, 2 * w, c).permute(0, 3, 1, 2)  # -> [B, 2H, 2W, C] -> [B, C, 2H, 2W] (channels_last)


#: GPU half-precision inputs at least this many rows and columns go through ``upsample2x_matmul``
MATMUL_MIN_SIZE = 16


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 upsampling with align_corners=True (the release's ``nn.Upsample``): float [B, C, H, W] ->
    [B, C, 2H, 2W], the same function whichever kernel computes it.

    * 1x1 inputs (the innermost level) are repeated, which is what the interpolation does there;
    * bf16/fp16 CUDA inputs of 16x16 and up use ``upsample2x_matmul``: PyTorch's bilinear kernels were 40 % of a
      bf16 training step on an H100; with this function a paper-config step at batch 128 runs 2,064 against
      1,019 images/s on an H200, and its upsampling forward + backward 12 against 70 ms
      (``benchmarks/upsample_variants.py``, ``benchmarks/results/nvidia-h200-upsample-model.json``);
    * everything else (float32, the CPU, small maps, where the native kernel is faster) ``F.interpolate``.
    """
    b, c, h, w = x.shape
    if h == 1 and w == 1:
        return x.expand(b, c, 2, 2)  # [B, C, 1, 1] -> [B, C, 2, 2]
    if x.is_cuda and x.dtype in (torch.bfloat16, torch.float16) and min(h, w) >= MATMUL_MIN_SIZE:
        return upsample2x_matmul(x)
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class UpLevel(nn.Module):
    """One decoder level: ReLU -> bilinear x2 (align_corners=True) -> Conv3x3 -> [BatchNorm]; doubles H and W."""

    def __init__(self, in_ch: int, out_ch: int, *, norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(out_ch) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in, H, W] -> [B, out, 2H, 2W]
        return self.norm(self.conv(upsample2x(F.relu(x))))


def _encoder(channels: list[int], in_ch: int) -> nn.ModuleList:
    """Encoder levels producing ``channels[i]`` feature maps at level i (the last one is 1x1)."""
    last = len(channels) - 1
    levels = []
    for i, out_ch in enumerate(channels):
        prev = in_ch if i == 0 else channels[i - 1]
        levels.append(DownLevel(prev, out_ch, activation=i > 0, norm=0 < i < last))
    return nn.ModuleList(levels)


class EmbeddingNetwork(nn.Module):
    """Source frame -> per-pixel sampling offset (2 channels, x then y) and confidence (1 channel).

    ``forward`` returns the raw network output; ``x2face.model.X2Face.embed`` applies tanh to the
    offset, warps the source and averages several source frames weighted by ``exp(confidence)``.
    """

    def __init__(self, config: X2FaceConfig) -> None:
        super().__init__()
        enc = config.level_channels() + [config.base_channels * 8]  # innermost keeps 8 * ngf
        self.down = _encoder(enc, 3)
        last = len(enc) - 1
        # Level i's decoder reads the level below: the innermost its own 1x1 code, the others a skip concat.
        ups = []
        for i in range(len(enc)):
            in_ch = enc[i] if i == last else 2 * enc[i]
            out_ch = 3 if i == 0 else enc[i - 1]
            ups.append(UpLevel(in_ch, out_ch, norm=i > 0))
        self.up = nn.ModuleList(ups)

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        """source: float [N, 3, S, S] in [0, 1] -> float [N, 3, S, S] (offset x, offset y, confidence), unbounded."""
        skips: list[torch.Tensor] = []
        h = self.down[0](source)  # [N, ngf, S/2, S/2]
        for level in self.down[1:]:
            a = level.activate(h)
            skips.append(a)  # skips[i-1] is level i's (activated) input
            h = level.norm(level.conv(a))
        y = h  # innermost code, [N, 8*ngf, 1, 1]
        for i in range(len(self.up) - 1, -1, -1):
            y = self.up[i](y)
            if i > 0:
                y = torch.cat([y, skips[i - 1]], dim=1)  # [N, 2*C_i, ., .]: decoder first, then skip
        return y


class DrivingNetwork(nn.Module):
    """Driving frame -> driving vector (``encode``) -> 2-channel sampling offset (``decode``)."""

    def __init__(self, config: X2FaceConfig) -> None:
        super().__init__()
        enc = config.level_channels() + [config.vector_dim]
        self.vector_dim = config.vector_dim
        self.down = _encoder(enc, 3)
        ups = []
        for i in range(len(enc)):
            out_ch = 2 if i == 0 else enc[i - 1]
            ups.append(UpLevel(enc[i], out_ch, norm=i > 0))
        self.up = nn.ModuleList(ups)

    def encode(self, driving: torch.Tensor) -> torch.Tensor:
        """driving: float [B, 3, S, S] in [0, 1] -> driving vector float [B, vector_dim], >= 0.

        The release exposed the bottleneck after its (in-place) ReLU, so the vector is non-negative;
        the decoder starts with that same ReLU, so nothing is lost.
        """
        h = driving
        for level in self.down:
            h = level(h)
        return F.relu(h).flatten(1)  # [B, D, 1, 1] -> [B, D]

    def decode(self, vector: torch.Tensor) -> torch.Tensor:
        """vector: float [B, vector_dim] -> offset float [B, 2, S, S] in (-1, 1) (x, y), after one tanh."""
        y = vector.reshape(vector.shape[0], self.vector_dim, 1, 1)  # [B, D] -> [B, D, 1, 1]
        for i in range(len(self.up) - 1, -1, -1):
            y = self.up[i](y)
        return torch.tanh(y)

    def forward(self, driving: torch.Tensor) -> torch.Tensor:
        """driving: float [B, 3, S, S] -> offset float [B, 2, S, S] (see ``decode``)."""
        return self.decode(self.encode(driving))
