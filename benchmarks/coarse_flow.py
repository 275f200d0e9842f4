"""Experiment: give the driving network's decoder a linear path from the driving vector to a coarse flow.

The decoder draws its offset from the 1x1 driving vector through upsample + conv levels, so a flow that moves
the whole head (what a pose change mostly is) has to be built up through padding effects level by level.
Fitted 8x8 / 16x16 flows already reach 0.55 / 0.38 of the source baseline (``benchmarks/warp_oracle.py``). This
adds ``coarse``: a linear layer from the vector to a G x G two-channel offset, bilinearly upsampled (align
corners) and added to the decoder's output before its tanh; zero-initialised, so a fresh model still starts at
the identity flow. Not an x2face option (it did not help, ``docs/training.md``): this script patches
``x2face.nets.DrivingNetwork`` for one process and runs the x2face CLI, or a benchmark script, under the patch:

    OMP_WAIT_POLICY=PASSIVE python benchmarks/coarse_flow.py --grid 16 train configs/demo.toml \\
        --set 'run.out_dir="runs/exp-coarse16"'
    python benchmarks/coarse_flow.py --grid 16 train configs/demo-stage1-more.toml \\
        --set 'stage.init_from="runs/exp-coarse16/weights"' --set 'run.out_dir="runs/exp-coarse16-more"'
    python benchmarks/coarse_flow.py --grid 16 evaluate --weights runs/exp-coarse16-more/weights \\
        --out reports/cpu-coarse-flow-recipe --metrics self,cross,real
    python benchmarks/coarse_flow.py --grid 16 run benchmarks/pose_probe.py \\
        --weights runs/exp-coarse16-more/weights --json reports/cpu-coarse-flow-recipe/pose-probe.json

Weights trained with it load only under the same patch (their ``driving.coarse.*`` tensors are unknown to x2face).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _patched import COMMAND_HELP, run_command  # noqa: E402

from x2face import nets  # noqa: E402


@contextlib.contextmanager
def coarse_flow(grid: int) -> Iterator[None]:
    """Within the block, every new ``DrivingNetwork`` has the coarse path of ``grid`` x ``grid`` offsets."""
    if grid < 2:
        raise SystemExit(f"--grid must be >= 2, got {grid}")
    init, decode = nets.DrivingNetwork.__init__, nets.DrivingNetwork.decode

    def patched_init(self: nets.DrivingNetwork, config) -> None:
        init(self, config)
        self.coarse = nn.Linear(config.vector_dim, 2 * grid * grid)
        nn.init.zeros_(self.coarse.weight)
        nn.init.zeros_(self.coarse.bias)

    def patched_decode(self: nets.DrivingNetwork, vector: torch.Tensor) -> torch.Tensor:
        """vector: float [B, D] -> offset float [B, 2, S, S] in (-1, 1): the decoder's plus the coarse path's."""
        y = vector.reshape(vector.shape[0], self.vector_dim, 1, 1)  # [B, D] -> [B, D, 1, 1]
        for i in range(len(self.up) - 1, -1, -1):
            y = self.up[i](y)
        c = self.coarse(vector).view(-1, 2, grid, grid)  # [B, 2*G*G] -> [B, 2, G, G]
        c = F.interpolate(c.to(y.dtype), size=y.shape[-2:], mode="bilinear", align_corners=True)  # [B, 2, S, S]
        return torch.tanh(y + c)

    nets.DrivingNetwork.__init__, nets.DrivingNetwork.decode = patched_init, patched_decode  # type: ignore
    try:
        yield
    finally:
        nets.DrivingNetwork.__init__, nets.DrivingNetwork.decode = init, decode  # type: ignore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", type=int, default=16, help="side of the coarse offset grid (default 16)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help=COMMAND_HELP)
    args = parser.parse_args(argv)
    with coarse_flow(args.grid):
        return run_command(args.command, parser)


if __name__ == "__main__":
    sys.exit(main())
