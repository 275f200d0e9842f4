"""Bilinear x2 upsampling (align_corners=True) in the training step: equivalent formulations timed side by side.

    python benchmarks/upsample_variants.py [--device cuda] [--config paper] [--batch 128] [--steps 10] [--out DIR]

On an H100 the decoders' ``F.interpolate`` was 40 % of a bf16 channels_last training step
(``results/nvidia-h100-80gb-hbm3-train-profile.txt``). Every variant here computes the same function
(ReLU, then bilinear x2 with align_corners=True, as ``x2face.nets.UpLevel``); the script checks each
against float64 on the CPU and then times, on ``--device``:

1. each variant's forward + backward at every upsampling shape of one training step (``micro``);
2. whole stage-I training steps (the bench's: bf16 autocast, channels_last, fused SGD) with
   ``x2face.nets.upsample2x``, what ``UpLevel.forward`` calls, replaced by each variant (``train_images_per_s``).

Variants: ``interpolate`` (PyTorch's kernel, what the model ran before this benchmark), ``interpolate_nchw``
(a contiguous NCHW input: the other CUDA kernel), ``interpolate_fp32`` (upsampled in float32), ``matmul``
(``x2face.nets.upsample2x_matmul``: two batched matmuls with the interpolation matrices on the channels-last
layout, no copies), ``model`` (``x2face.nets.upsample2x``, what ``UpLevel`` runs: matmuls for bf16 CUDA maps
from 16x16, a repeat at 1x1, interpolate otherwise), ``compiled`` (``torch.compile`` of interpolate).
Writes ``DIR/upsample_variants.json`` after every measurement, so a run cut short keeps what it measured.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from x2face import nets
from x2face.bench import _tile, _train_step_fn, bench_frames, bench_model
from x2face.config import get_config

Upsample = Callable[[torch.Tensor], torch.Tensor]  # ReLU'd input [B, C, H, W] -> [B, C, 2H, 2W]


def _interp(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


def variants() -> dict[str, Upsample]:
    """name -> upsample (all compute ReLU'd input -> bilinear x2, align_corners=True)."""
    return {
        "interpolate": _interp,
        "interpolate_nchw": lambda x: _interp(x.contiguous()),
        "interpolate_fp32": lambda x: _interp(x.float()).to(x.dtype),
        "matmul": nets.upsample2x_matmul,
        "model": nets.upsample2x,
        "compiled": _compiled_interp(),
    }


def _compiled_interp() -> Upsample:
    """``torch.compile`` of interpolate (one kernel per shape); 1x1 inputs stay eager (inductor's CPU backward
    of a 1x1 -> 2x2 upsampling fails to generate code in torch 2.13)."""
    compiled = torch.compile(_interp, dynamic=False)
    return lambda x: _interp(x) if x.shape[-1] == 1 else compiled(x)


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], dev: torch.device, reps: int, warmup: int = 2) -> float:
    """Seconds per call of ``fn`` (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    sync(dev)
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(dev)
    return (time.perf_counter() - t) / reps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--config", default="paper")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="timed training steps per variant")
    p.add_argument("--reps", type=int, default=10, help="timed forward+backward calls per shape and variant")
    p.add_argument("--only", default="", help="comma-separated variants (default: all)")
    p.add_argument("--out", default=os.environ.get("OUT", "."))
    args = p.parse_args()
    dev = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch._dynamo.config.cache_size_limit = 64  # one compiled kernel per upsampling shape
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    cuda = dev.type == "cuda"
    amp = torch.bfloat16 if cuda else None
    act_dtype = torch.bfloat16 if cuda else torch.float32
    result: dict = {"device": torch.cuda.get_device_name(dev) if cuda else platform.processor() or "cpu",
                    "torch": torch.__version__, "config": args.config, "batch": args.batch,
                    "autocast": str(amp), "channels_last": True, "check": {}, "micro_ms": {},
                    "train_images_per_s": {}, "errors": {}}
    path = out / "upsample_variants.json"

    def save() -> None:
        path.write_text(json.dumps(result, indent=2) + "\n")

    chosen = variants()
    if args.only:
        chosen = {k: v for k, v in chosen.items() if k in args.only.split(",")}

    # 0) the same function: each variant against float64 on the CPU (compiled: on the device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 7, 9, generator=g, dtype=torch.float64)
    ref = _interp(x.relu())
    for name, up in chosen.items():
        try:
            xd = x.float().to(dev if name == "compiled" else "cpu").contiguous(memory_format=torch.channels_last)
            got = up(xd.relu()).double().cpu()
            result["check"][name] = float((got - ref).abs().max())
        except Exception as exc:  # noqa: BLE001 (recorded, the next variant goes on)
            result["errors"][f"check/{name}"] = repr(exc)[:300]
    save()
    print(json.dumps(result["check"]))

    cfg = get_config(args.config)
    frames, _ = bench_frames(24, cfg.image_size)
    model = bench_model(cfg, frames[:8]).to(dev)

    # the shapes UpLevel upsamples in one training forward
    shapes: list[tuple[int, ...]] = []
    hook = lambda mod, inp: shapes.append(tuple(inp[0].shape))  # noqa: E731
    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, nets.UpLevel)]
    with torch.no_grad():
        model(frames[:1].to(dev), frames[1:2].to(dev).unsqueeze(1))
    for h in handles:
        h.remove()
    shapes = sorted({(args.batch,) + s[1:] for s in shapes}, key=lambda s: s[2])
    result["shapes"] = [list(s) for s in shapes]

    # 1) forward + backward of each variant at each shape
    for name, up in chosen.items():
        per: dict[str, float] = {}
        try:
            for s in shapes:
                xin = torch.randn(s, device=dev, dtype=act_dtype).contiguous(memory_format=torch.channels_last)
                xin.requires_grad_(True)
                grad = None

                def fb() -> None:
                    nonlocal grad
                    y = up(F.relu(xin))
                    if grad is None:
                        grad = torch.randn_like(y)
                    y.backward(grad)
                    xin.grad = None

                per["x".join(map(str, s))] = round(1e3 * timed(fb, dev, args.reps), 3)
            per["total"] = round(sum(per.values()), 3)
            result["micro_ms"][name] = per
        except Exception as exc:  # noqa: BLE001
            result["errors"][f"micro/{name}"] = repr(exc)[:300]
        save()
        print(name, per)

    # 2) whole training steps
    batch = {"driving": _tile(frames, args.batch).to(dev).contiguous(memory_format=torch.channels_last),
             "sources": _tile(frames.flip(0), args.batch).to(dev).unsqueeze(1)}  # [B, 1, 3, S, S]
    original = nets.upsample2x  # what UpLevel.forward calls (looked up in x2face.nets at each call)
    for name, up in chosen.items():
        try:
            nets.upsample2x = up
            fast = copy.deepcopy(model).to(memory_format=torch.channels_last).train()
            step = _train_step_fn(fast, batch, device=dev, amp=amp, fused=cuda)
            sec = timed(step, dev, args.steps, warmup=3)
            result["train_images_per_s"][name] = round(args.batch / sec, 1)
        except Exception as exc:  # noqa: BLE001
            result["errors"][f"train/{name}"] = repr(exc)[:300]
        finally:
            nets.upsample2x = original
        save()
        print(name, result["train_images_per_s"].get(name))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
