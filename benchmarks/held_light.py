"""Experiment: stage I on synthetic pairs whose light moves with the head, so a warp could match them exactly.

The synthetic world lights every frame from a direction fixed in the world (drifting slowly), so when the head
turns its shading changes: no warp carries that (43 % of the copy-the-source L1 on the test identities, the
``--hold shading`` runs of ``benchmarks/warp_oracle.py``), and L1's gradient on those pixels pulls the warps
toward skin lit like the driving frame instead of toward the matching point of the face. This patch lights
every frame of a training video as its first frame (a source frame) is lit, in head coordinates: frame j's
light is ``R_j R_0^T light_0``, what ``warp_oracle.hold(..., "shading")`` does to a pair. The warps then see
only geometry (pose, zoom, shift, mouth, eyelids) in the synthetic pairs; the real clips and the evaluation are
unchanged. Not an x2face option (it did not lower self L1, ``docs/training.md``): this script patches
``x2face.data.synthetic.Motion.at`` for one process (and the DataLoader workers it forks) and runs the x2face
CLI under it. Stage I held, step 3 (the recipe's 500 steps at lr 1e-4) with the world's own light:

    OMP_WAIT_POLICY=PASSIVE python benchmarks/held_light.py train configs/demo.toml \\
        --set 'run.out_dir="runs/exp-held-light"'
    python -m x2face train configs/demo-stage1-more.toml \\
        --set 'stage.init_from="runs/exp-held-light/weights"' --set 'run.out_dir="runs/exp-held-light-more"'
    python -m x2face evaluate --weights runs/exp-held-light-more/weights --out reports/cpu-held-light-recipe \\
        --metrics self,cross,real

Its weights are plain x2face weights (the patch changes the data, not the networks). Held for part of stage I: end
the patched run with ``--set run.stop_after=N`` and continue it with ``python -m x2face train configs/demo.toml
--resume`` and the same ``run.out_dir`` (``reports/cpu-held-light-recipe/README.md``, the ``half/`` run).
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _patched import main_under, replaced  # noqa: E402


@contextlib.contextmanager
def held_light() -> Iterator[None]:
    """Within the block, ``Motion.at(t)`` with t [N, T] lights frame j of each video as frame 0 in head
    coordinates (``R_j R_0^T light_0``); a single time per video (T = 1) is left as it is."""
    from x2face.data import synthetic

    at = synthetic.Motion.at

    def patched(self, t):
        params = at(self, t)
        n, k = t.shape
        if k < 2:
            return params
        rot = synthetic.rotation_matrices(params.pose).view(n, k, 3, 3)  # [N*T, 3, 3] -> [N, T, 3, 3]
        light = params.light.view(n, k, 3)  # [N*T, 3] -> [N, T, 3]
        local = rot[:, :1].transpose(-1, -2) @ light[:, :1].unsqueeze(-1)  # [N, 1, 3, 1]: frame 0's, head-local
        held = (rot @ local).squeeze(-1)  # [N, T, 3, 1] -> [N, T, 3]
        return params.replace(light=held.reshape(n * k, 3).to(params.light.dtype))  # [N, T, 3] -> [N*T, 3]

    with replaced(synthetic.Motion, "at", patched):
        yield


def main(argv: list[str] | None = None) -> int:
    return main_under(held_light, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
