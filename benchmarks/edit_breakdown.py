"""Where does ``edit_l1`` lose to the fixed overlay? The evaluation's edit metric, broken down.

``metric_edit`` in ``x2face.evaluate`` paints a test overlay on each test identity's embedded face (through the
model's own embedding warp) and scores the driven video against the world's render of the painted texture; the
baseline pastes the edit as it looks in the source frame at a fixed position over the model's frame. Both share
the model's frame outside the edit, so the difference is on the edit's pixels. This script reruns the metric's
videos (same seeds: its ``edit_l1`` and ``edit_fixed_overlay_l1`` are the report's) and adds:

* ``on_edit_l1`` / ``on_edit_fixed_l1``: L1 on the pixels where the edit shows in the truth, the model's video,
  or the pasted overlay (how each renders the edit itself);
* ``edit_l1_supersampled`` {"2", "4"}: the edit layer built at 2x / 4x the model's resolution, carried by the
  same two warps (upsampled) and box-filtered down: is the edit blurred by drawing it at the model's resolution?
* ``edit_l1_one_copy``: only the largest connected region of the painted edit kept (folds of the embedding warp
  can paint a few pixels of the overlay a second time), and ``extra_copy_pixels``, their mean count per face.

    python benchmarks/edit_breakdown.py --weights demo --json benchmarks/results/cpu-edit-breakdown.json
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import finish, weights_parser  # noqa: E402

from x2face.data.synthetic import SPLITS, SyntheticWorld, paint_overlay, video_motion  # noqa: E402
from x2face.data.synthetic import identity as get_identity  # noqa: E402
from x2face.evaluate import (EDIT_CENTER, EDIT_RADIUS, EvalSettings, driving_grid, edit_embedded_face,  # noqa: E402
                             edit_layer, embedding_grid, l1, make_overlay)
from x2face.hub import load_model  # noqa: E402
from x2face.warp import warp  # noqa: E402


def render_supersampled(layer: torch.Tensor, base: torch.Tensor, grid: torch.Tensor, factor: int) -> torch.Tensor:
    """Drive a straight-alpha layer [1, 4, f S, f S] with the driving ``grid`` [T, S, S, 2] upsampled by ``factor``,
    box-filter it down (premultiplied) and put it over ``base`` frames [T, 3, S, S]."""
    g = F.interpolate(grid.permute(0, 3, 1, 2), scale_factor=factor, mode="bilinear",
                      align_corners=False).permute(0, 2, 3, 1)  # [T, S, S, 2] -> [T, 2, fS, fS] -> [T, fS, fS, 2]
    premultiplied = torch.cat([layer[:, :3] * layer[:, 3:], layer[:, 3:]], 1)  # [1, 4, fS, fS]
    out = F.avg_pool2d(warp(premultiplied.expand(len(g), -1, -1, -1), g), factor)  # [T, 4, S, S]
    return base * (1 - out[:, 3:]) + out[:, :3]


def largest_region(mask: np.ndarray) -> np.ndarray:
    """bool [H, W] -> its largest 8-connected region, bool [H, W]."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n <= 1:
        return mask
    sizes = ndimage.sum(mask, labels, range(1, n + 1))
    return labels == 1 + int(np.argmax(sizes))


@torch.no_grad()
def main(argv: list[str] | None = None) -> dict:
    ap = weights_parser(__doc__)
    args = ap.parse_args(argv)
    t0 = time.time()
    model = load_model(args.weights, device="cpu").eval()
    world = SyntheticWorld(model.config.image_size)
    settings = EvalSettings()
    overlay = make_overlay()
    keys = ["edit_l1", "edit_fixed_overlay_l1", "on_edit_l1", "on_edit_fixed_l1", "edit_l1_one_copy",
            "extra_copy_pixels", "2", "4"]
    acc: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    for i in range(settings.edit_videos):  # as metric_edit
        seed = SPLITS["test"][i]
        ident = get_identity(seed)
        half = (EDIT_RADIUS / (math.pi * ident.width), EDIT_RADIUS / ident.height)
        t = torch.linspace(0.0, 6.0, settings.edit_frames + 1).view(1, -1)  # [T+1] -> [1, T+1]
        params = video_motion(seed, 2000 + i).at(t)  # frame 0 is the source
        seeds = [seed] * len(params)
        texture = paint_overlay(world.texture([seed]), overlay, EDIT_CENTER, half)
        plain = world.render(seeds, params)
        edited = world.render(seeds, params, texture=texture.expand(len(params), -1, -1, -1))
        src, src_edit, drv, truth = plain[:1], edited[:1], plain[1:], edited[1:]
        first = params.index(slice(0, 1))
        eg = embedding_grid(model, src)
        face, face_edit = edit_embedded_face(model, world, seed, first, src, overlay, EDIT_CENTER, half)
        v = model.driving_vector(drv)
        gen, gen_edit = model.render(face, v), model.render(face_edit, v)  # as metric_edit
        sticker = (src_edit - src).abs().amax(1, keepdim=True) > 1e-3
        pasted = torch.where(sticker, src_edit, gen)
        region = world.face_mask(seeds[1:], params.index(slice(1, None)), region="face")
        shows = ((truth - drv).abs().amax(1, keepdim=True) > 1e-3) | ((gen_edit - gen).abs().amax(1, keepdim=True)
                                                                       > 1e-3) | sticker
        acc["edit_l1"].append(l1(gen_edit, truth, region))
        acc["edit_fixed_overlay_l1"].append(l1(pasted, truth, region))
        acc["on_edit_l1"].append(l1(gen_edit, truth, shows.float() * region))
        acc["on_edit_fixed_l1"].append(l1(pasted, truth, shows.float() * region))
        dg = driving_grid(model, v)
        for f in (2, 4):
            layer = edit_layer(world, seed, first, eg, overlay, EDIT_CENTER, half, factor=f)
            acc[str(f)].append(l1(render_supersampled(layer, gen, dg, f), truth, region))
        painted = (face_edit - face).abs().amax(1)[0] > 1e-3  # [S, S]
        keep = torch.from_numpy(largest_region(painted.numpy()))
        acc["extra_copy_pixels"].append(torch.tensor(float(painted.sum() - keep.sum())))
        acc["edit_l1_one_copy"].append(l1(model.render(torch.where(keep, face_edit, face), v), truth, region))

    def mean(k: str) -> float:
        return float(torch.stack([x.float().mean() for x in acc[k]]).mean())

    result = {
        "weights": args.weights, "videos": settings.edit_videos, "frames_per_video": settings.edit_frames,
        **{k: mean(k) for k in keys if k not in ("2", "4")},
        "edit_l1_supersampled": {f: mean(f) for f in ("2", "4")},
        "seconds": round(time.time() - t0, 1),
    }
    return finish(result, "edit_breakdown.py", argv, args.json)


if __name__ == "__main__":
    main()
