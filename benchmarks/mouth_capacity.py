"""Can a model learn to render the mouth at all? Fine-tune weights on pairs that differ only in the mouth.

Each training pair is one synthetic identity (of ``--identities`` train identities) at one random pose, zoom and
light: the source frame with the mouth at ``--source-mouth`` (0 closed, 1 wide open), the driving frame the same
with a random opening. The only thing to learn is the mouth, and the test pairs are drawn the same way from the
same identities (this measures capacity and learnability, not generalisation). Every ``--every`` steps it prints
the photometric L1 and ``transfer``: the least-squares slope of the generated frames' change in mean brightness
over the mouth region (driving vs. source frame driving) on the driving frames' change, 1 for a model that renders
the mouth as driven and 0 for one whose mouth never moves (the idea of ``mouth_transfer`` in
``x2face.evaluate``, on pairs instead of videos), how much the driving vector changes with the mouth, and the
share of its entries that are 0.

Options probe why: ``--blur-sigmas`` / ``--mouth-weight`` add the blurred photometric terms of training's
``[stage] blur_sigmas`` and an L1 over the mouth region alone; ``--zoom`` enlarges the face (and the mouth);
``--pose-scale 0`` makes every pair frontal; ``--free-flow RES`` replaces the network by a free flow field fitted
to each test pair (the control: can warping the source by gradient descent on this loss render the mouth?).

    python benchmarks/mouth_capacity.py --weights demo --identities 1 --lr 1e-3 --steps 400 \\
        --json benchmarks/results/cpu-mouth-capacity.json
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from x2face.data.synthetic import POSE_LIMITS, SPLITS, FrameParams, SyntheticWorld  # noqa: E402
from x2face.evaluate import mouth_brightness, mouth_region, transfer_slope  # noqa: E402
from x2face.hub import load_model  # noqa: E402
from x2face.losses import gaussian_blur  # noqa: E402
from x2face.train import GeneratorStep  # noqa: E402
from x2face.warp import flow_to_grid, warp  # noqa: E402


class MouthPairs:
    """Source/driving pairs of ``identities`` train identities that differ only in the mouth opening."""

    def __init__(self, world: SyntheticWorld, identities: int, source_mouth: float, seed: int, zoom: float = 1.15,
                 pose_scale: float = 0.3) -> None:
        self.world, self.ids, self.source_mouth = world, [SPLITS["train"][i] for i in range(identities)], source_mouth
        self.zoom, self.pose_scale = zoom, pose_scale
        self.g = torch.Generator().manual_seed(seed)

    def draw(self, b: int) -> tuple[list[int], FrameParams, torch.Tensor, torch.Tensor]:
        """-> identity seeds, the source params, sources and driving frames float [b, 3, S, S] in [0, 1]."""
        g = self.g
        who = [self.ids[int(i)] for i in torch.randint(0, len(self.ids), (b,), generator=g)]
        pose = (2 * torch.rand(b, 3, generator=g) - 1) * torch.tensor(POSE_LIMITS) * self.pose_scale
        p = FrameParams.neutral(b).replace(pose=pose, zoom=self.zoom + 0.25 * torch.rand(b, generator=g),
                                           mouth=torch.full((b,), self.source_mouth))
        src = self.world.render(who, p)
        drv = self.world.render(who, p.replace(mouth=torch.rand(b, generator=g)))
        return who, p, src, drv


def transfer(model, pairs: MouthPairs, batches: int = 4, batch: int = 16) -> dict[str, float]:
    """``transfer``: the slope of the generated mouth region's brightness change on the driving frames' (see the
    module docstring); ``vector_change``: mean |v(driving) - v(source)| / mean |v(source)| of the driving vectors
    (0 when the vector ignores the mouth); ``dead``: the share of vector entries that are 0 (after the ReLU)."""
    model.eval()
    gen_d, drv_d, dv, vs, dead = [], [], [], [], []
    with torch.inference_mode():
        for _ in range(batches):
            who, p, src, drv = pairs.draw(batch)
            mask = mouth_region(pairs.world, who, p)  # [B, S, S], the region mouth_transfer measures
            emb = model.embed(src.unsqueeze(1))  # [B, 1, 3, S, S] sources -> [B, 3, S, S]
            v, v0 = model.driving_vector(drv), model.driving_vector(src)  # [B, D] each
            gen, gen0 = model.render(emb, v), model.render(emb, v0)
            dv.append((v - v0).abs().mean())
            vs.append(v0.abs().mean())
            dead.append((v0 == 0).float().mean())
            gen_d.append(mouth_brightness(gen, mask) - mouth_brightness(gen0, mask))  # [B]
            drv_d.append(mouth_brightness(drv, mask) - mouth_brightness(src, mask))  # [B]
    model.train()
    return {"transfer": transfer_slope(torch.cat(gen_d), torch.cat(drv_d)),
            "vector_change": float(sum(dv) / max(float(sum(vs)), 1e-12)), "dead": float(sum(dead) / len(dead))}


def free_flow_transfer(pairs: MouthPairs, resolution: int, steps: int, blur_sigmas: list[float],
                       batches: int = 4, batch: int = 16, lr: float = 3e-3) -> dict[str, float]:
    """The control without a network: for each test pair, fit a free flow field (``resolution`` squared
    offsets, bilinearly upsampled, starting at zero: the source itself) to the same photometric L1 (plus the
    blurred terms) by Adam, and measure ``transfer`` of the warped sources. Near 1 when warping the source by
    gradient descent on this loss can close or open the mouth."""
    gen_d, drv_d, l1s = [], [], []
    for _ in range(batches):
        who, p, src, drv = pairs.draw(batch)
        mask = mouth_region(pairs.world, who, p)  # [B, S, S]
        size = src.shape[-1]
        offset = torch.zeros(batch, 2, resolution, resolution, requires_grad=True)
        opt = torch.optim.Adam([offset], lr=lr)

        def render(x: torch.Tensor) -> torch.Tensor:
            flow = F.interpolate(offset, size=size, mode="bilinear", align_corners=True)  # [B, 2, r, r] -> [B, 2, S, S]
            return warp(x, flow_to_grid(flow))

        for _ in range(steps):
            loss = (render(src) - drv).abs().mean()
            for sigma in blur_sigmas:
                loss = loss + (render(gaussian_blur(src, sigma)) - gaussian_blur(drv, sigma)).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            gen = render(src)
        gen_d.append(mouth_brightness(gen, mask) - mouth_brightness(src, mask))  # [B]
        drv_d.append(mouth_brightness(drv, mask) - mouth_brightness(src, mask))  # [B]
        l1s.append(float((gen - drv).abs().mean()))
    return {"transfer": transfer_slope(torch.cat(gen_d), torch.cat(drv_d)), "l1": sum(l1s) / len(l1s)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default="demo", help="weights folder, Hub id or 'demo' (default)")
    ap.add_argument("--identities", type=int, default=1)
    ap.add_argument("--source-mouth", type=float, default=0.0, help="the sources' mouth opening, 0..1 (default closed)")
    ap.add_argument("--zoom", type=float, default=1.15,
                    help="the head's scale is drawn from [zoom, zoom + 0.25] (1: the whole head in the frame; "
                         "larger zooms in on the face and makes the mouth bigger)")
    ap.add_argument("--pose-scale", type=float, default=0.3,
                    help="head poses are drawn within this share of the world's pose limits (0: every pair frontal)")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--blur-sigmas", type=float, nargs="*", default=[],
                    help="add the blurred photometric terms of [stage] blur_sigmas (pixels)")
    ap.add_argument("--blur-weight", type=float, default=1.0, help="the weight of each blurred term")
    ap.add_argument("--mouth-weight", type=float, default=0.0,
                    help="add this weight x the L1 averaged over the mouth region only (0: the plain photometric L1)")
    ap.add_argument("--free-flow", type=int, metavar="RES", default=0,
                    help="instead of training weights, fit a free RES x RES flow field to each test pair (the control "
                         "that says whether warping the source can render the mouth under this loss; --steps steps)")
    ap.add_argument("--frozen-norm", action="store_true",
                    help="BatchNorm layers normalise with their running statistics while fine-tuning (not the batch's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="append this run to a JSON list in this file")
    ap.add_argument("--save", type=Path, help="save the fine-tuned weights here (config.json + model.safetensors)")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    model = load_model(args.weights, device="cpu").train()
    world = SyntheticWorld(model.config.image_size)
    train_pairs = MouthPairs(world, args.identities, args.source_mouth, args.seed + 1, args.zoom, args.pose_scale)
    test_pairs = MouthPairs(world, args.identities, args.source_mouth, args.seed + 2, args.zoom, args.pose_scale)
    if args.free_flow:
        curve = [{"step": args.steps, "free_flow": args.free_flow,
                  **free_flow_transfer(test_pairs, args.free_flow, args.steps, args.blur_sigmas)}]
        print(f"free {args.free_flow}x{args.free_flow} flow, {args.steps} steps: transfer {curve[0]['transfer']:.3f}, "
              f"l1 {curve[0]['l1']:.5f}", flush=True)
        return _write(args, argv, curve)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    step_fn = GeneratorStep(model, args.blur_sigmas)  # the training forward, as x2face.train uses it
    curve = [{"step": 0, **transfer(model, test_pairs)}]
    show = lambda r: ", ".join(f"{k} {v:.4g}" for k, v in r.items() if k != "step")  # noqa: E731
    print(f"step 0: {show(curve[0])}", flush=True)
    frozen = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)] if args.frozen_norm else []
    t0, losses = time.perf_counter(), []
    for step in range(1, args.steps + 1):
        model.train()  # (transfer() leaves the model in train mode)
        for module in frozen:  # --frozen-norm: normalise with the running statistics
            module.eval()
        who, p, src, drv = train_pairs.draw(args.batch)
        generated, _, blurred = step_fn(src.unsqueeze(1), drv)
        loss = (generated - drv).abs().mean()  # photometric L1, as stage I
        for sigma, render in zip(args.blur_sigmas, blurred):  # the blurred terms, as train.X2FaceTask adds them
            loss = loss + args.blur_weight * (render - gaussian_blur(drv, sigma)).abs().mean()
        if args.mouth_weight:  # the same L1 over the mouth region alone: the mouth weighs as much as the frame
            mask = mouth_region(train_pairs.world, who, p).unsqueeze(1)  # [B, S, S] -> [B, 1, S, S]
            err = ((generated - drv).abs().mean(1, keepdim=True) * mask).sum() / mask.sum().clamp(min=1)
            loss = loss + args.mouth_weight * err
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if step % args.every == 0 or step == args.steps:
            row = {"step": step, "l1": sum(losses[-args.every:]) / len(losses[-args.every:]),
                   **transfer(model, test_pairs), "seconds": round(time.perf_counter() - t0, 1)}
            curve.append(row)
            print(f"step {step}: {show(row)}", flush=True)
    if args.save:
        model.eval().save_pretrained(args.save)
    return _write(args, argv, curve)


def _write(args: argparse.Namespace, argv: list[str] | None, curve: list[dict]) -> int:
    """Append this run (command, date, machine, settings, curve) to ``--json``."""
    if args.json:
        runs = json.loads(args.json.read_text()) if args.json.exists() else []
        runs.append({"command": "python benchmarks/mouth_capacity.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                     "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.processor()
                     or platform.machine(), "torch": torch.__version__, "settings": {k: str(v) for k, v in vars(args).items()},
                     "curve": curve})
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(runs, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
