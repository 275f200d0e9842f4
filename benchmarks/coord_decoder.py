"""Experiment: give every level of the driving network's decoder the pixel coordinates (CoordConv).

The decoder draws its offset from the 1x1 driving vector through bilinear x2 upsampling and 3x3 convolutions,
so it can only tell where a pixel is from the zero padding at the borders; a head turn or a zoom is an offset that
varies smoothly with position, which such a decoder builds up slowly (``benchmarks/coarse_flow.py``: a linear path
to a coarse flow sped up the start of training). This gives each decoder level's convolution two more input
channels, x and y in [-1, 1] at that level's resolution, after its upsampling (Liu et al. 2018, "An intriguing
failing of convolutional neural networks and the CoordConv solution"), zero-initialised, so a fresh model starts
as the plain one and at the identity flow. Not an x2face option (it did not help,
``docs/training.md``): this script patches ``x2face.nets.DrivingNetwork`` for one process and runs the x2face CLI,
or a benchmark script, under the patch:

    OMP_WAIT_POLICY=PASSIVE python benchmarks/coord_decoder.py train configs/demo.toml \\
        --set 'run.out_dir="runs/exp-coords"'
    python benchmarks/coord_decoder.py train configs/demo-stage1-more.toml \\
        --set 'stage.init_from="runs/exp-coords/weights"' --set 'run.out_dir="runs/exp-coords-more"'
    python benchmarks/coord_decoder.py evaluate --weights runs/exp-coords-more/weights \\
        --out reports/cpu-coord-decoder-recipe --metrics self,cross,real
    python benchmarks/coord_decoder.py run benchmarks/pose_probe.py \\
        --weights runs/exp-coords-more/weights --json reports/cpu-coord-decoder-recipe/pose-probe.json

Weights trained with it load only under the same patch (their ``driving.up.<i>.coord.weight`` tensors are unknown to
x2face).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import ContextManager

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _patched import extend_driving_network, main_under  # noqa: E402

from x2face import nets  # noqa: E402


class CoordUpLevel(nets.UpLevel):
    """``UpLevel`` whose 3x3 convolution also reads x and y in [-1, 1]: ``coord``, a 3x3 convolution of the two
    coordinate channels, is added to ``conv``'s output (the same as two more input channels of ``conv``, and
    faster with oneDNN, whose kernels prefer channel counts that are multiples of 8)."""

    def __init__(self, in_ch: int, out_ch: int, *, norm: bool) -> None:
        super().__init__(in_ch, out_ch, norm=norm)
        self.coord = nn.Conv2d(2, out_ch, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.zeros_(self.coord.weight)  # a fresh model starts as the plain one (and at the identity flow)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in, H, W] -> [B, out, 2H, 2W]
        y = nets.upsample2x(F.relu(x))  # [B, in, 2H, 2W]
        h, w = y.shape[-2:]
        ys = torch.linspace(-1.0, 1.0, h, device=y.device, dtype=y.dtype).view(1, 1, h, 1).expand(1, 1, h, w)
        xs = torch.linspace(-1.0, 1.0, w, device=y.device, dtype=y.dtype).view(1, 1, 1, w).expand(1, 1, h, w)
        c = self.coord(torch.cat([xs, ys], 1))  # [1, out, 2H, 2W]: the same for every item of the batch
        return self.norm(self.conv(y) + c)


def coord_decoder() -> ContextManager[None]:
    """Within the block, every new ``DrivingNetwork``'s decoder levels are ``CoordUpLevel``s."""

    def extend(net: nets.DrivingNetwork, config) -> None:
        net.up = nn.ModuleList(CoordUpLevel(lvl.conv.in_channels, lvl.conv.out_channels,
                                            norm=isinstance(lvl.norm, nn.BatchNorm2d)) for lvl in net.up)

    return extend_driving_network(extend)


def main(argv: list[str] | None = None) -> int:
    return main_under(coord_decoder, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
