"""Where a training step's time goes, and the animate pipeline cold against warm (a GPU follow-up).

    python benchmarks/gpu_profile.py [--device cuda] [--config paper] [--batch 128] [--out DIR]

1. ``torch.profiler`` over stage-I training steps (bf16 autocast, channels_last, fused SGD: the bench's
   optimised step): the top kernels by device time, to ``DIR/train_profile.txt``.
2. ``X2FacePipeline`` animating the bench clip (``x2face.bench.find_clip``, cut to 10 s at 25 fps) twice in
   one process: the first call pays CUDA-graph capture and cuDNN autotuning, the second is what a cached
   pipeline (the app's) costs; seconds to ``DIR/pipeline_animate.json``.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from x2face.bench import (_tile, _train_step_fn, animate_with_pipeline, bench_frames, bench_model,
                          find_clip, make_clip)
from x2face.config import get_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--config", default="paper")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--out", default=os.environ.get("OUT", "."))
    args = p.parse_args()
    dev = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = get_config(args.config)
    frames, _ = bench_frames(24, cfg.image_size)
    model = bench_model(cfg, frames[:8]).to(dev)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True

    # 1) the training step under the profiler
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last).train()
    batch = {"driving": _tile(frames, args.batch).to(dev).contiguous(memory_format=torch.channels_last),
             "sources": _tile(frames.flip(0), args.batch).to(dev).unsqueeze(1)}  # [B, 1, 3, S, S]
    amp = torch.bfloat16 if dev.type == "cuda" else None
    step = _train_step_fn(fast, batch, device=dev, amp=amp, fused=dev.type == "cuda")
    for _ in range(3):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    activities = [torch.profiler.ProfilerActivity.CPU] + (
        [torch.profiler.ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    t = time.perf_counter()
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(args.steps):
            step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
    wall = time.perf_counter() - t
    key = "cuda_time_total" if dev.type == "cuda" else "cpu_time_total"
    table = prof.key_averages().table(sort_by=key, row_limit=30, max_name_column_width=70)
    header = (f"{args.config} config, batch {args.batch}, {args.steps} profiled steps in {wall:.3f} s "
              f"({args.batch * args.steps / wall:.1f} images/s under the profiler), device {dev}\n")
    (out / "train_profile.txt").write_text(header + table + "\n")
    print(header + table)

    # 2) the product's animate path, cold then warm
    clip_src = find_clip()
    result: dict = {"device": str(dev), "config": args.config, "weights": "random (x2face.bench.bench_model)"}
    if clip_src is None:
        result["skipped"] = "no face clip (run benchmarks/prepare_gpu.sh)"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            clip = make_clip(clip_src, Path(tmp))
            model.eval()
            result["pipeline_cold_s"] = round(animate_with_pipeline(model, dev, clip, Path(tmp) / "a.mp4"), 3)
            result["pipeline_warm_s"] = round(animate_with_pipeline(model, dev, clip, Path(tmp) / "b.mp4"), 3)
            result["note"] = ("each call builds a new X2FacePipeline (FastDriver; CUDA graphs recaptured), so 'warm' "
                              "still includes that; cuDNN autotuning and the cascade/loader caches are warm")
    (out / "pipeline_animate.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
