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

``best_reference`` measures ``drive_frames(relative=True, reference="best")``'s choice: for each pair the driving
identity is rendered at the source's pose turned by each of ``CANDIDATES`` degrees of yaw (the frames of a clip that
turns through the photo's pose), the one whose driving vector is nearest the source's is the reference (as
``X2FacePipeline.best_references`` picks it; and, with a pose head, the one whose pose f_v->p reads nearest the
source's), and relative motion from it is scored against its own right answer; beside it, the share of pairs where
the aligned frame (0) was picked, the mean turn of the frame picked, and the L1 from the clip's first candidate (20
degrees off, ``reference="first"``) and from the aligned one. ``best_reference_same_person`` picks among frames of
the source's own identity (a clip of the person in the photo) in the driving frame's light.
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
CANDIDATES = (20.0, 10.0, 5.0, 0.0, -5.0, -10.0, -20.0)  # yaw turns of a clip's frames; the first is its start


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


@torch.no_grad()
def measure_best(model, pairs: int = 1000, candidates=CANDIDATES, axis: str = "yaw", seed: int = 0,
                 same_person: bool = False) -> dict:
    """The reference each criterion picks among ``candidates`` (module docstring): {"pairs", "candidates",
    "first_l1", "aligned_l1", criterion: {"aligned_share", "mean_abs_turn", "l1"}} for the criteria "vector" (the
    nearest driving vector, ``best_references``' choice) and, with a pose head, "pose" (the nearest pose f_v->p
    reads from the vectors). ``same_person``: the candidates show the source's own identity (in the driving frame's
    light, as a clip of the same person would), not the driving identity's; the L1s are then not computed (the
    driving frame is another identity's)."""
    settings = EvalSettings(self_pairs=pairs, seed=seed)
    ctx = EvalContext(model=model, world=SyntheticWorld(model.config.image_size), settings=settings,
                      device=torch.device("cpu"))
    w, k, turns = ctx.world, POSE_KEYS.index(axis), torch.tensor(candidates)
    criteria = ("vector", "pose") if getattr(model, "pose", None) is not None else ("vector",)
    picked: dict[str, list] = {c: [] for c in criteria}
    errs: dict[str, list] = {c: [] for c in (*criteria, "first", "aligned")}
    for item, params in _draw_pairs(ctx, "test", 1, pairs, "cross"):
        src, drv = item["sources"], item["driving_other"]
        ids, others = item["identity"].tolist(), item["identity_other"].tolist()
        p_src, p_drv = params["sources"], params["driving_other"]
        face = model.embed(src)
        v, v_src = model.driving_vector(drv), model.driving_vector(src[:, 0])
        posed = p_drv.replace(translation=p_src.translation, zoom=p_src.zoom, mouth=p_src.mouth, blink=p_src.blink)
        refs = []
        for d in candidates:
            shift = torch.zeros_like(p_src.pose)  # [B, 3]
            shift[:, k] = d
            refs.append(model.driving_vector(w.render(ids if same_person else others,
                                                      posed.replace(pose=p_src.pose + shift))))
        stack = torch.stack(refs, 1)  # C x [B, D] -> [B, C, D]
        b, c = stack.shape[:2]
        choices = {"vector": (stack - v_src[:, None]).norm(dim=2).argmin(1)}  # [B, C, D] - [B, 1, D] -> [B, C] -> [B]
        if "pose" in criteria:
            poses = model.pose.vector_to_pose(stack.reshape(b * c, -1)).reshape(b, c, 3)  # [B*C, 3] -> [B, C, 3]
            choices["pose"] = (poses - model.pose.vector_to_pose(v_src)[:, None]).norm(dim=2).argmin(1)  # -> [B]
        choices["first"] = torch.zeros(b, dtype=torch.long)
        choices["aligned"] = torch.full((b,), list(candidates).index(0.0))
        for name, index in choices.items():
            if name in picked:
                picked[name].append(turns[index])
            if same_person:
                continue
            shift = torch.zeros_like(p_src.pose)  # [B, 3]
            shift[:, k] = turns[index]
            v_ref = stack[torch.arange(b), index]  # [B, D]
            truth = w.render(ids, p_drv.replace(pose=p_drv.pose - shift))
            errs[name].append(l1(model.render(face, RelativeMotion(v_src, v_ref)(v)), truth))
    out: dict = {"pairs": sum(len(x) for x in picked["vector"]), "candidates": list(candidates)}
    if not same_person:
        out.update(first_l1=_mean(errs["first"]), aligned_l1=_mean(errs["aligned"]))
    for name in criteria:
        turn = torch.cat(picked[name])
        out[name] = {"aligned_share": float((turn == 0).float().mean()), "mean_abs_turn": float(turn.abs().mean())}
        if not same_person:
            out[name]["l1"] = _mean(errs[name])
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = weights_parser(__doc__)
    ap.add_argument("--pairs", type=int, default=1000, help="cross-identity test pairs (default 1000, as evaluate)")
    args = ap.parse_args(argv)
    t0 = time.time()
    model = load_model(args.weights, device="cpu").eval()
    result = {"weights": args.weights, **measure(model, args.pairs),
              "best_reference": measure_best(model, args.pairs),
              "best_reference_same_person": measure_best(model, args.pairs, same_person=True),
              "seconds": round(time.time() - t0, 1)}
    return finish(result, "relative_motion.py", argv, args.json)


if __name__ == "__main__":
    main()
