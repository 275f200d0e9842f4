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

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Iterator

import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _patched import run_command  # noqa: E402

from x2face import nets  # noqa: E402


@contextlib.contextmanager
def vector_norm() -> Iterator[None]:
    """Within the block, every new ``DrivingNetwork`` normalises its innermost level (``vector_dim`` channels)."""
    init = nets.DrivingNetwork.__init__

    def patched_init(self: nets.DrivingNetwork, config) -> None:
        init(self, config)
        self.down[-1].norm = nn.BatchNorm2d(config.vector_dim)

    nets.DrivingNetwork.__init__ = patched_init  # type: ignore[method-assign]
    try:
        yield
    finally:
        nets.DrivingNetwork.__init__ = init  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="x2face CLI arguments (train ..., evaluate ...), or: run SCRIPT.py ARGS")
    args = parser.parse_args(argv)
    with vector_norm():
        return run_command(args.command, parser)


if __name__ == "__main__":
    sys.exit(main())
