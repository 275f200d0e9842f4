"""Experiment: BatchNorm on the driving network's innermost level, so no unit of the driving vector dies.

The driving vector is the ReLU of the innermost 1x1 convolution, which has no normalisation (pix2pix's
innermost level). In the bundled model 37 of its 128 units are never above zero on the 1,000 test frames of
``benchmarks/pose_probe.py`` and 64 are above zero in under 5 % of them (``vector_units_*`` in
``results/cpu-pose-probe.json``): a dead unit passes nothing to the decoder and gets no gradient back. This adds
a BatchNorm (learned scale and shift) to that level before the ReLU, so in training every unit is above zero for
about half of each batch. Not an x2face option (it did not help, ``docs/training.md``): this script patches
``x2face.nets.DrivingNetwork`` for one process and runs the x2face CLI, or a benchmark script, under the patch:

    OMP_WAIT_POLICY=PASSIVE python benchmarks/vector_norm.py train configs/demo.toml \\
        --set 'run.out_dir="runs/exp-vector-bn"'
    python benchmarks/vector_norm.py train configs/demo-stage1-more.toml \\
        --set 'stage.init_from="runs/exp-vector-bn/weights"' --set 'run.out_dir="runs/exp-vector-bn-more"'
    python benchmarks/vector_norm.py evaluate --weights runs/exp-vector-bn-more/weights \\
        --out reports/cpu-vector-bn-recipe --metrics self,cross,real
    python benchmarks/vector_norm.py run benchmarks/pose_probe.py \\
        --weights runs/exp-vector-bn-more/weights --json reports/cpu-vector-bn-recipe/pose-probe.json

Weights trained with it load only under the same patch (their ``driving.down.<last>.norm.*`` tensors are unknown
to x2face).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import ContextManager

import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _patched import extend_driving_network, main_under  # noqa: E402

from x2face import nets  # noqa: E402


def vector_norm() -> ContextManager[None]:
    """Within the block, every new ``DrivingNetwork`` normalises its innermost level (``vector_dim`` channels)."""

    def extend(net: nets.DrivingNetwork, config) -> None:
        net.down[-1].norm = nn.BatchNorm2d(config.vector_dim)

    return extend_driving_network(extend)


def main(argv: list[str] | None = None) -> int:
    return main_under(vector_norm, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
