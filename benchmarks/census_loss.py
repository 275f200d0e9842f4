"""Experiment: a lighting-robust photometric term (the ternary census transform) beside stage I's L1.

The synthetic world relights every frame (a moving Lambert light), so the driving frame differs from a perfectly
warped source by a smooth shading change: 43 % of the copy-the-source L1 on the test identities
(``benchmarks/warp_oracle.py``). Where the driving frame is brighter, L1's gradient pulls every warp toward the
brighter parts of the source, whatever the geometry, and in the recipe's stage I the validation L1 sits near
copying for the first 2,000 steps (``reports/cpu-float32-recipe/stage1-val.csv``). Unsupervised optical flow
(UnFlow, Meister et al. 2018) learns through such changes with the ternary census transform: each pixel is
described by the signs of its differences to its 7x7 neighbours, which a local gain or offset of the
brightness leaves alone. This adds ``weight * census_distance(generated, driving)`` to stage I's photometric L1
(which stays the objective's first term, the metric, and the ``photometric`` column of the logs). Not an
x2face option (it did not help, ``docs/training.md``): this script patches ``x2face.train.X2FaceTask.loss`` for
one process and runs the x2face CLI, or a benchmark script, under the patch:

    OMP_WAIT_POLICY=PASSIVE python benchmarks/census_loss.py --weight 0.2 train configs/demo.toml \\
        --set 'run.out_dir="runs/exp-census"'
    python benchmarks/census_loss.py --weight 0.2 train configs/demo-stage1-more.toml \\
        --set 'stage.init_from="runs/exp-census/weights"' --set 'run.out_dir="runs/exp-census-more"'
    python -m x2face evaluate --weights runs/exp-census-more/weights --out reports/cpu-census-recipe \\
        --metrics self,cross,real

The weights it trains are plain x2face weights (the patch changes the objective, not the networks).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _patched import COMMAND_HELP, replaced, run_command  # noqa: E402

from x2face.errors import ConfigError  # noqa: E402
from x2face.losses import gaussian_blur  # noqa: E402

PATCH = 7  #: the census window (pixels), UnFlow's
LUMA = (0.299, 0.587, 0.114)


def luma(images: torch.Tensor, blur: float = 1.0) -> torch.Tensor:
    """float [N, 3, H, W] RGB in [0, 1] -> float [N, 1, H, W] luma, Gaussian-blurred by ``blur`` pixels (0: not)."""
    weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    gray = (images * weights).sum(1, keepdim=True)  # [N, 3, H, W] -> [N, 1, H, W]
    return gaussian_blur(gray, blur) if blur > 0 else gray


def census_distance(a: torch.Tensor, b: torch.Tensor, scale: float = 0.03, blur: float = 1.0) -> torch.Tensor:
    """Mean soft Hamming distance between the soft ternary census transforms of two float [N, 3, H, W] RGB
    batches in [0, 1] -> a scalar in [0, 1): 0 where every neighbour ordering agrees.

    A pixel's transform is the soft sign ``d / sqrt(scale**2 + d**2)`` of each 7x7 neighbour's luma minus its
    own (``luma``; edges replicated); two signs s, t differ by ``(s - t)**2 / (0.1 + (s - t)**2)``. UnFlow's
    scale is 0.0035 (0.9 of 255 grey levels): here that ranks the bundled model's renders below copying the
    source, since the skin's fine texture, which two bilinear warps smooth away, decides most signs; 0.03
    after a one-pixel blur ranks them above it. One neighbour offset at a time (a loop of 48 [N, 1, H, W]
    terms): six times faster on a CPU than the [N, 48, H, W] stack, whose tensors leave the caches.
    """
    ga, gb = luma(a, blur), luma(b, blur)
    r, (h, w) = PATCH // 2, ga.shape[-2:]
    pa, pb = F.pad(ga, (r, r, r, r), mode="replicate"), F.pad(gb, (r, r, r, r), mode="replicate")
    total = ga.new_zeros(())
    for i in range(PATCH):
        for j in range(PATCH):
            if (i, j) == (r, r):
                continue
            da = pa[..., i:i + h, j:j + w] - ga  # [N, 1, H, W]: the neighbour at (i - r, j - r) minus the pixel
            db = pb[..., i:i + h, j:j + w] - gb
            d = (da * torch.rsqrt(scale * scale + da * da) - db * torch.rsqrt(scale * scale + db * db)) ** 2
            total = total + (d / (0.1 + d)).mean()
    return total / (PATCH * PATCH - 1)


@contextlib.contextmanager
def census_loss(weight: float, scale: float = 0.03, blur: float = 1.0) -> Iterator[None]:
    """Within the block, stage I's objective is ``photometric_l1 + weight * census_distance`` (per batch)."""
    from x2face import train
    from x2face.losses import photometric_l1

    def loss(self, module, batch):
        if self.loss_fn is not None or self.cfg.stage.blur_sigmas:
            raise ConfigError("census_loss.py patches stage I without [stage] blur_sigmas only")
        generated, _, _ = module(batch["sources"], batch["driving"])
        l1 = photometric_l1(generated, batch["driving"])
        term = census_distance(generated.float(), batch["driving"].float(), scale, blur)
        parts = {"photometric": l1.detach(), "census": term.detach(),
                 "source_baseline_l1": photometric_l1(batch["sources"][:, 0], batch["driving"]).detach()}
        return l1 + weight * term, parts

    with replaced(train.X2FaceTask, "loss", loss):
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weight", type=float, default=0.2, help="the census term's weight (L1's is 1)")
    parser.add_argument("--scale", type=float, default=0.03, help="the soft sign's scale (luma in [0, 1])")
    parser.add_argument("--blur", type=float, default=1.0, help="Gaussian blur before the transform (pixels)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help=COMMAND_HELP)
    args = parser.parse_args(argv)
    if not (args.weight >= 0 and args.scale > 0 and args.blur >= 0):
        parser.error("--weight and --blur must be numbers >= 0, --scale one > 0")
    with census_loss(args.weight, args.scale, args.blur):
        return run_command(args.command, parser)


if __name__ == "__main__":
    sys.exit(main())
