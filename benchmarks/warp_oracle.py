"""How low can a warp take self-reenactment L1 on the synthetic world? Oracles that look at the answer.

X2Face renders a driving frame by moving the source's pixels (two bilinear warps; K = 1 source). This script
draws the evaluation's own self-reenactment pairs (``x2face.evaluate.metric_self``: test identities, the
same seeds and batches) and renders each driving frame from its source frame in two ways:

* the geometric oracle (``oracle_l1``): the warp the world's geometry says is right. Every head pixel of the
  driving frame samples (bilinearly) the source pixel that shows the same point of the head (head-local 3-D
  coordinates from the world's ray caster, matched to the nearest visible source point of the same part and
  refined to sub-pixel by the local Jacobian where that stays on the part); every background pixel samples the
  same image position when the source shows background there, else the nearest source background pixel. What
  the source does not show (the other side of the head, an opened mouth, closed eyelids, different light on a
  turned head) stays wrong.
* fitted warps (``fitted_warp``, ``--fit-pairs``): smooth flows (control grids of ``FIT_LEVELS``) fitted to
  each driving frame on L1. They may sample anything that lowers L1 (skin lit like the driving frame), so
  they, not the geometric oracle, show what the rendering allows whatever network predicts the flow. With
  ``--weights``, also fitted from the model's embedded face of the source (``from_embedded_ratio``): what
  its embedding leaves for a perfect driving network.
* fitted driving vectors (``from_vector_ratio``, ``--weights`` with ``--fit-pairs``): the model's own decoder
  and embedded face, with the driving vector of each pair fitted on L1 instead of encoded from the driving
  frame (``fitted_vectors``): what a perfect driving *encoder* would score with this decoder. Its gap to
  ``model_ratio`` is the encoder's; its gap to ``from_embedded_ratio`` is what the decoder cannot draw.

Both sit beside ``source_baseline_l1`` (the evaluation's baseline: returning the source) as ratios, and beside
``model_l1`` of ``--weights`` on the same pairs. ``--hold`` re-renders the driving frames without the light
change (and the mouth and eyelids) to separate what no warp can carry.

    python benchmarks/warp_oracle.py --pairs 1000 --hold none shading shading+expression --fit-pairs 200 \
        --weights demo --json benchmarks/results/cpu-warp-oracle.json
"""
from __future__ import annotations

import argparse
import sys
import time
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import finish  # noqa: E402

from x2face.data.synthetic import FrameParams, SyntheticWorld, rotation_matrices  # noqa: E402
from x2face.evaluate import EvalContext, EvalSettings, _draw_pairs, _gaussian_blur  # noqa: E402
from x2face.hub import load_model  # noqa: E402
from x2face.warp import identity_grid  # noqa: E402


def head_points(world: SyntheticWorld, seeds: list[int], params: FrameParams) -> tuple[np.ndarray, np.ndarray]:
    """-> (part int [B, S, S]: -1 background, 0 skull, 1 nose, 2/3 ears; head-local xyz float [B, S, S, 3])
    from the world's ray caster."""
    part, xyz = world.head_points(seeds, params)
    return part.cpu().numpy(), xyz.cpu().numpy()


def hold(src: FrameParams, drv: FrameParams, what: str) -> FrameParams:
    """The driving frames' parameters with what a warp cannot carry taken from the sources instead.

    ``what``: ``"none"``; ``"shading"``: the light moves with the head (driving light = R_d R_s^T light_s, so
    every point of the head is lit as in the source); ``"shading+expression"``: also the source's mouth and
    eyelids. Only head motion (pose, zoom, shift) is then left between source and driving.
    """
    if what == "none":
        return drv
    rs, rd = rotation_matrices(src.pose), rotation_matrices(drv.pose)  # [B, 3, 3] each
    light = (rd @ rs.transpose(1, 2) @ src.light.unsqueeze(-1)).squeeze(-1)  # [B, 3, 1] -> [B, 3]
    out = drv.replace(light=light)
    if what == "shading+expression":
        out = out.replace(mouth=src.mouth, blink=src.blink)
    return out


HOLDS = ("none", "shading", "shading+expression")


def oracle_positions(part_s: np.ndarray, p_s: np.ndarray, part_d: np.ndarray, p_d: np.ndarray) -> np.ndarray:
    """Where each driving pixel should sample the source: float [S, S, 2] (x, y) in pixels.

    ``part_*``: int [S, S] part labels (-1 background, ``head_points``); ``p_*``: head-local xyz [S, S, 3].
    Head pixels: the visible source point of the same part (skull, nose, an ear) nearest in head-local 3-D,
    refined by solving J [dx, dy] = q - p (J: the source's 3x2 Jacobian of xyz per pixel there, least
    squares). Matching within the part matters where the point is hidden in the source: a cheek behind the
    nose would otherwise take the nose's pixels, the side of a turned head the ear's. A part the source does
    not show at all takes the nearest visible point of any part.
    Background: the same position if the source shows background there, else the nearest background pixel.
    """
    on_s, on_d = part_s >= 0, part_d >= 0
    s = on_s.shape[0]
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float64)
    pos = np.stack([xs, ys], -1)  # [S, S, 2]
    out = pos.copy()
    gx = np.gradient(p_s, axis=1)  # central differences of xyz along x and y, one-sided at edges: [S, S, 3] each
    gy = np.gradient(p_s, axis=0)
    for k in np.unique(part_d[on_d]):
        want = part_d == k
        have = part_s == k
        if not have.any():
            have = on_s  # the source shows none of this part: the nearest visible point of any part
        if not have.any():
            continue
        src_idx = np.argwhere(have)  # [N, 2] (y, x)
        _, nn = cKDTree(p_s[have]).query(p_d[want])
        y0, x0 = src_idx[nn, 0], src_idx[nn, 1]
        J = np.stack([gx[y0, x0], gy[y0, x0]], -1)  # [M, 3, 2]
        r = p_d[want] - p_s[y0, x0]  # [M, 3]
        JtJ = J.transpose(0, 2, 1) @ J + 1e-9 * np.eye(2)  # [M, 2, 2]
        delta = np.linalg.solve(JtJ, (J.transpose(0, 2, 1) @ r[..., None]))[..., 0]  # [M, 2]
        delta = np.clip(delta, -1.0, 1.0)  # stay within the matched pixel's neighbourhood
        x, y = x0 + delta[:, 0], y0 + delta[:, 1]
        # a hidden point's refinement runs off the part (past the silhouette, onto the background); sample the
        # matched pixel itself unless all four pixels bilinear sampling would blend show the same part
        xa, xb = np.clip(np.floor(x), 0, s - 1).astype(int), np.clip(np.ceil(x), 0, s - 1).astype(int)
        ya, yb = np.clip(np.floor(y), 0, s - 1).astype(int), np.clip(np.ceil(y), 0, s - 1).astype(int)
        inside = have[ya, xa] & have[ya, xb] & have[yb, xa] & have[yb, xb]
        out[want] = np.stack([np.where(inside, x, x0), np.where(inside, y, y0)], -1)
    bg_d = ~on_d & on_s  # background in the driving frame hidden by the head in the source
    bg_s = np.argwhere(~on_s)
    if bg_d.any() and len(bg_s):
        _, nn = cKDTree(bg_s).query(np.argwhere(bg_d))
        out[bg_d] = bg_s[nn][:, ::-1]
    return out


def sample(frame: torch.Tensor, pos: np.ndarray, mode: str) -> torch.Tensor:
    """Sample float [3, S, S] at pixel positions [S, S, 2] (x, y) -> [3, S, S]."""
    s = frame.shape[-1]
    grid = torch.from_numpy(pos).float() * (2.0 / (s - 1)) - 1.0  # pixels -> [-1, 1] (align_corners=True)
    return F.grid_sample(frame[None], grid[None], mode=mode, padding_mode="border", align_corners=True)[0]


def render_supersampled(world: SyntheticWorld, seeds: list[int], params: FrameParams, n: int) -> torch.Tensor:
    """Render at ``n`` times the resolution and box-filter down: float [B, 3, S, S], every pixel the average of
    an n x n pixel area centred on the pixel centre the 1x frame (and the oracle's geometry) samples.

    The world renders pixel centres at ``linspace(-1, 1, size)``: at size ``n (S - 1) + 1`` every n-th
    fine pixel is a coarse pixel centre (a plain n x n average of an ``n S`` render is up to 0.4 px off).
    """
    size = world.image_size
    fine = world.render(seeds, params, size=n * (size - 1) + 1)  # [B, 3, n(S-1)+1, n(S-1)+1]
    half = n // 2
    taps = torch.ones(2 * half + 1, dtype=fine.dtype)
    if n % 2 == 0:
        taps[0] = taps[-1] = 0.5  # an even-width box centred on a fine pixel: half weights at its two ends
    k1 = taps / taps.sum()
    kernel = (k1[:, None] * k1[None, :]).expand(3, 1, -1, -1).contiguous()  # [2h+1] -> [3, 1, 2h+1, 2h+1]
    padded = F.pad(fine, (half, half, half, half), mode="replicate")
    return F.conv2d(padded, kernel, stride=n, groups=3)  # [B, 3, S, S]


def measure(world: SyntheticWorld, ctx: EvalContext, what: str, model=None, supersample: int = 1,
            fit_pairs: int = 0) -> dict:
    """The oracle (and ``model``, if given) on the evaluation's self pairs with ``hold(.., what)`` driving frames;
    ``supersample`` > 1 renders both frames at that many times the size and averages them down
    (``render_supersampled``: no aliasing);
    the first ``fit_pairs`` pairs are also rendered by ``fitted_warps`` (and, with ``model``, from its embedded
    face by ``fitted_warps`` and ``fitted_vectors``)."""
    size = world.image_size
    keys = ("base", "bilinear", "nearest", "model", "base_head", "bilinear_head", "base_bg", "bilinear_bg")
    sums = dict.fromkeys(keys + ("held_change",) + tuple(f"blur{s:g}" for s in BLURS), 0.0)
    fitted: dict[int, list[torch.Tensor]] = {side: [] for side, _ in FIT_LEVELS}
    fitted_embedded: dict[int, list[torch.Tensor]] = {side: [] for side, _ in FIT_LEVELS}
    fitted_vector: list[torch.Tensor] = []
    fit_base: list[torch.Tensor] = []
    n = 0
    for item, params in _draw_pairs(ctx, "test", 3, ctx.settings.self_pairs, "self"):
        k = item["sources"].shape[1]
        src, drv = item["sources"][:, 0], item["driving"]  # [B, 3, S, S] each
        seeds = [int(i) for i in item["identity"]]
        p_src = params["sources"].index(slice(0, None, k))  # the first source of each item
        part_s, xyz_s = head_points(world, seeds, p_src)
        p_drv = hold(p_src, params["driving"], what)
        if supersample > 1:
            src = render_supersampled(world, seeds, p_src, supersample)
            drv = render_supersampled(world, seeds, params["driving"], supersample)
        if what != "none":
            held = render_supersampled(world, seeds, p_drv, supersample)  # n = 1: the plain render
            sums["held_change"] += float((held - drv).abs().mean((1, 2, 3)).sum())  # what the hold removed
            drv = held
        part_d, xyz_d = head_points(world, seeds, p_drv)
        if model is not None:
            gen = model.render(model.embed(src[:, None]), model.driving_vector(drv)).float()  # [B, 3, S, S]
            sums["model"] += float((gen - drv).abs().mean((1, 2, 3)).sum())
        todo = max(0, min(len(seeds), fit_pairs - n))
        if todo:
            for side, l1 in fitted_warps(src[:todo], drv[:todo]).items():
                fitted[side].append(l1)
            fit_base.append((src[:todo] - drv[:todo]).abs().mean((1, 2, 3)))
            if model is not None:  # the same fit from the model's embedded face instead of the source frame
                embedded = model.embed(src[:todo, None]).float()  # [b, 1, 3, S, S] -> [b, 3, S, S]
                for side, l1 in fitted_warps(embedded, drv[:todo]).items():
                    fitted_embedded[side].append(l1)
                fitted_vector.append(fitted_vectors(model, embedded, drv[:todo]))
        for j in range(len(seeds)):
            pos = oracle_positions(part_s[j], xyz_s[j], part_d[j], xyz_d[j])
            bil, near = sample(src[j], pos, "bilinear"), sample(src[j], pos, "nearest")
            head = torch.from_numpy(part_d[j] >= 0).float()  # [S, S]
            err = {"base": (src[j] - drv[j]).abs().mean(0), "bilinear": (bil - drv[j]).abs().mean(0),
                   "nearest": (near - drv[j]).abs().mean(0)}  # [S, S] each
            for name in ("base", "bilinear", "nearest"):
                sums[name] += float(err[name].mean())
            for sigma in BLURS:
                sums[f"blur{sigma:g}"] += float((gaussian_blur(bil[None], sigma)[0] - drv[j]).abs().mean())
            for name in ("base", "bilinear"):
                sums[name + "_head"] += float((err[name] * head).sum() / size**2)
                sums[name + "_bg"] += float((err[name] * (1 - head)).sum() / size**2)
            n += 1
    mean = {key: v / n for key, v in sums.items()}
    out = {
        "hold": what, "pairs": n, "supersample": supersample,
        "source_baseline_l1": mean["base"], "oracle_l1": mean["bilinear"], "oracle_nearest_l1": mean["nearest"],
        "oracle_ratio": mean["bilinear"] / mean["base"], "oracle_nearest_ratio": mean["nearest"] / mean["base"],
        "oracle_blurred_ratio": {f"{s:g}": mean[f"blur{s:g}"] / mean["base"] for s in BLURS},
        "head_share": {"source_baseline_l1": mean["base_head"], "oracle_l1": mean["bilinear_head"]},
        "background_share": {"source_baseline_l1": mean["base_bg"], "oracle_l1": mean["bilinear_bg"]},
    }
    if fit_base:
        base = float(torch.cat(fit_base).mean())
        out["fitted_warp"] = {"pairs": len(torch.cat(fit_base)), "source_baseline_l1": base,
                              "l1": {str(side): float(torch.cat(v).mean()) for side, v in fitted.items()},
                              "ratio": {str(side): float(torch.cat(v).mean()) / base for side, v in fitted.items()}}
        if model is not None:  # what the model's embedded face still allows (its driving flow fitted instead)
            out["fitted_warp"]["from_embedded_ratio"] = {str(side): float(torch.cat(v).mean()) / base
                                                         for side, v in fitted_embedded.items()}
            out["fitted_warp"]["from_vector_ratio"] = float(torch.cat(fitted_vector).mean()) / base
    if what != "none":
        out["held_change_l1"] = mean["held_change"]  # L1 between the evaluation's driving frames and the held ones
    if model is not None:
        out["model_l1"], out["model_ratio"] = mean["model"], mean["model"] / mean["base"]
    return out


#: Gaussian blurs (sigma, pixels) applied to the oracle's frames: blur is how a model hedges what it cannot carry
BLURS = (0.5, 1.0, 1.5, 2.0)


def gaussian_blur(frames: torch.Tensor, sigma: float) -> torch.Tensor:
    """float [B, 3, S, S] -> the same blurred by a Gaussian of ``sigma`` pixels (edges replicated, cut at 3 sigma)."""
    return _gaussian_blur(frames, sigma, truncate=3.0)


#: control-grid sides of the fitted warps (coarse to fine; each starts from the previous), with the Gaussian blur
#: (sigma, pixels) of both frames while fitting at that level (wide gradients for the coarse moves)
FIT_LEVELS = ((8, 2.0), (16, 1.0), (32, 0.0))


def fitted_warps(src: torch.Tensor, drv: torch.Tensor, steps: int = 150, lr: float = 0.01) -> dict[int, torch.Tensor]:
    """The best warps of the sources towards the driving frames that a smooth flow can make, found by fitting.

    The flow is a control grid of offsets (normalised units), upsampled bilinearly to the frame, fitted to each
    driving frame by Adam on L1 (``steps`` per level of ``FIT_LEVELS``, coarse to fine). Pixels sampled outside
    the source are black, as X2Face's. It looks at the answer, so it is no model: it shows what the rendering
    (moving the source's pixels) allows, whatever network predicts the flow.

    Args:
        src, drv: float [B, 3, S, S] in [0, 1].

    Returns:
        {control-grid side: per-pair L1 float [B]} after each level.
    """
    b, _, s, _ = src.shape
    ident = identity_grid(b, s, s, dtype=src.dtype)  # [B, S, S, 2]

    def render(frames: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
        flow = F.interpolate(off, size=(s, s), mode="bilinear", align_corners=True)  # [B, 2, g, g] -> [B, 2, S, S]
        return F.grid_sample(frames, ident + flow.permute(0, 2, 3, 1), mode="bilinear", padding_mode="zeros",
                             align_corners=True)  # flow [B, 2, S, S] -> [B, S, S, 2]

    off = torch.zeros(b, 2, FIT_LEVELS[0][0], FIT_LEVELS[0][0])
    out = {}
    for side, sigma in FIT_LEVELS:
        off = F.interpolate(off.detach(), size=(side, side), mode="bilinear", align_corners=True).requires_grad_()
        sb, db = (src, drv) if sigma == 0 else (gaussian_blur(src, sigma), gaussian_blur(drv, sigma))
        opt = torch.optim.Adam([off], lr=lr)
        for _ in range(steps):
            with torch.enable_grad():
                loss = (render(sb, off) - db).abs().mean((1, 2, 3)).sum()
                opt.zero_grad()
                loss.backward()
            opt.step()
        out[side] = (render(src, off.detach()) - drv).abs().mean((1, 2, 3))
    return out


#: Adam steps and learning rate of ``fitted_vectors`` (vectors are post-ReLU activations of order 0.1 to 1)
VECTOR_STEPS, VECTOR_LR = 200, 0.03


def fitted_vectors(model, embedded: torch.Tensor, drv: torch.Tensor, steps: int = VECTOR_STEPS,
                   lr: float = VECTOR_LR) -> torch.Tensor:
    """The model's decoder with the best driving vector for each frame: how far its flows can go.

    Each pair's vector starts from ``model.driving_vector(drv)`` and is fitted by Adam on the L1 between
    ``model.render(embedded, v)`` and ``drv``; the networks stay as they are (eval mode, weights untouched).
    Looks at the answer, so it is no model: it bounds what a perfect driving encoder would get from this decoder.

    Args:
        model: an ``X2Face`` in eval mode.
        embedded: its embedded faces, float [B, 3, S, S]; drv: the driving frames, float [B, 3, S, S] in [0, 1].

    Returns:
        per-pair L1 with the fitted vectors, float [B].
    """
    v = model.driving_vector(drv).detach().clone()  # [B, D]
    opt = torch.optim.Adam([v.requires_grad_()], lr=lr)
    for _ in range(steps):
        with torch.enable_grad():
            loss = (model.render(embedded, v) - drv).abs().mean((1, 2, 3)).sum()
            (v.grad,) = torch.autograd.grad(loss, [v])  # the networks' weights get no gradient
        opt.step()
    return (model.render(embedded, v.detach()) - drv).abs().mean((1, 2, 3))


@torch.no_grad()
def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=1000, help="self-reenactment pairs (the evaluation uses 1000)")
    ap.add_argument("--size", type=int, default=128, help="frame side in pixels (the demo model's 128)")
    ap.add_argument("--hold", choices=HOLDS, nargs="+", default=["none"],
                    help="re-render the driving frames without what a warp cannot carry (see hold()); one run each")
    ap.add_argument("--supersample", type=int, default=1,
                    help="render at N x the size and average down (frames without the world's aliasing)")
    ap.add_argument("--fit-pairs", type=int, default=0,
                    help="also fit a smooth warp to each of the first N pairs (fitted_warps; about 0.6 s a pair), and with "
                         "--weights the driving vector (fitted_vectors; about 1.3 s a pair)")
    ap.add_argument("--weights", help="also score these weights on the same pairs ('demo': the bundled model)")
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args(argv)
    model = None
    if args.weights:
        model = load_model(args.weights, device="cpu").eval()
        args.size = model.config.image_size
    world = SyntheticWorld(args.size)
    # the pairs need only the frame size of a model
    shape_only = SimpleNamespace(config=SimpleNamespace(image_size=args.size))
    ctx = EvalContext(model=shape_only, world=world, settings=EvalSettings(self_pairs=args.pairs),
                      device=torch.device("cpu"))
    t0 = time.time()
    result = {
        "size": args.size, "weights": args.weights,
        "runs": [measure(world, ctx, what, model, args.supersample, args.fit_pairs) for what in args.hold],
        "seconds": round(time.time() - t0, 1),
    }
    return finish(result, "warp_oracle.py", argv, args.json)


if __name__ == "__main__":
    main()
