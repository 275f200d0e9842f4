"""Relative motion when the driving clip does not start posed as the photo is: cross-identity L1 as the
reference frame turns away from the source's pose.

``cross_relative_l1`` in ``x2face.evaluate`` puts the driving identity's reference frame in the source frame's
pose and expression (a clip that starts posed as the photo is). Here the reference is also turned by d degrees
of yaw (or pitch) from the source's pose. Relative motion then moves the source by the driving frame's pose
less the reference's, so its right answer is the source identity at the driving frame's pose less d: the
render each output is compared with. On the same pairs (the evaluation's cross-identity pairs and seeds),
absolute driving is compared with the driving frame's own pose (``cross_l1``), and the source frame with each
truth is the baseline of doing nothing.

    python benchmarks/relative_motion.py --weights demo --json benchmarks/results/cpu-relative-motion.json
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import finish, weights_parser  # noqa: E402

from x2face.data.synthetic import SyntheticWorld  # noqa: E402
from x2face.evaluate import POSE_KEYS, EvalContext, EvalSettings, _draw_pairs, _mean, l1  # noqa: E402
from x2face.hub import load_model  # noqa: E402
from x2face.pipeline import RelativeMotion  # noqa: E402

OFFSETS = (0.0, 5.0, 10.0, 20.0)  # degrees between the reference frame's pose and the source's


@torch.no_grad()
def measure(model, pairs: int = 1000, offsets=OFFSETS, axes=("yaw", "pitch"), seed: int = 0) -> dict:
    """L1 of absolute and relative cross-identity driving on ``pairs`` test pairs (``model`` in eval mode, on
    the CPU): {"absolute_l1", "source_baseline_l1", "relative_l1": {axis: {offset: L1}},
    "relative_source_baseline_l1": {axis: {offset: L1}}}."""
    settings = EvalSettings(self_pairs=pairs, seed=seed)
    ctx = EvalContext(model=model, world=SyntheticWorld(model.config.image_size), settings=settings,
                      device=torch.device("cpu"))
    w = ctx.world
    absolute, base = [], []
    rel = {a: {d: [] for d in offsets} for a in axes}
    rel_base = {a: {d: [] for d in offsets} for a in axes}
    for item, params in _draw_pairs(ctx, "test", 1, pairs, "cross"):  # evaluate's cross pairs
        src, drv = item["sources"], item["driving_other"]
        ids, others = item["identity"].tolist(), item["identity_other"].tolist()
        p_src, p_drv = params["sources"], params["driving_other"]
        face = model.embed(src)
        v, v_src = model.driving_vector(drv), model.driving_vector(src[:, 0])
        truth = w.render(ids, p_drv)
        absolute.append(l1(model.render(face, v), truth))
        base.append(l1(src[:, 0], truth))
        # the driving identity as the source is (its geometry and expression), in the driving frame's light
        posed = p_drv.replace(translation=p_src.translation, zoom=p_src.zoom, mouth=p_src.mouth, blink=p_src.blink)
        for axis in axes:
            for d in offsets:
                shift = torch.zeros_like(p_src.pose)  # [B, 3]
                shift[:, POSE_KEYS.index(axis)] = d
                v_ref = model.driving_vector(w.render(others, posed.replace(pose=p_src.pose + shift)))
                truth_rel = w.render(ids, p_drv.replace(pose=p_drv.pose - shift))
                rel[axis][d].append(l1(model.render(face, RelativeMotion(v_src, v_ref)(v)), truth_rel))
                rel_base[axis][d].append(l1(src[:, 0], truth_rel))
    table = lambda errs: {a: {f"{d:g}": _mean(e) for d, e in by.items()} for a, by in errs.items()}  # noqa: E731
    return {"pairs": sum(len(x) for x in absolute), "absolute_l1": _mean(absolute), "source_baseline_l1": _mean(base),
            "relative_l1": table(rel), "relative_source_baseline_l1": table(rel_base)}


def main(argv: list[str] | None = None) -> dict:
    ap = weights_parser(__doc__)
    ap.add_argument("--pairs", type=int, default=1000, help="cross-identity test pairs (default 1000, as evaluate)")
    args = ap.parse_args(argv)
    t0 = time.time()
    model = load_model(args.weights, device="cpu").eval()
    result = {"weights": args.weights, **measure(model, args.pairs), "seconds": round(time.time() - t0, 1)}
    return finish(result, "relative_motion.py", argv, args.json)


if __name__ == "__main__":
    main()
