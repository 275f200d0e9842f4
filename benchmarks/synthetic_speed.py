"""How fast the synthetic world renders (frames/s) and paints new identities (ms each).

    python benchmarks/synthetic_speed.py [--threads 2] [--batch 64] [--sizes 64 128 256] [--device cpu]
                                         [--seconds 3] [--json out.json]

Prints one Markdown table row per size and, with --json, writes the numbers. Rendering is measured
with cached textures (the same 64 identities, new poses every call); ``paint_ms_per_identity`` is
what a never-seen identity costs on top (the first render of a seed paints its texture and
background); ``pairs_per_s`` is ``SyntheticPairs.batch`` with fresh identities (K = 1: three frames
and two new identities per item). The load average is printed because on a shared machine it
changes the numbers a lot: quote the best of a few runs on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch


def _rate(fn, seconds: float) -> float:
    """Calls per second of ``fn`` over at least ``seconds`` (after one warm-up call)."""
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 2:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--device", default="cpu")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from x2face.data.synthetic import SPLITS, Motion, SyntheticPairs, SyntheticWorld, identity, paint_textures

    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(0)
    seeds = list(SPLITS["train"][: args.batch])
    results = {"threads": args.threads, "batch": args.batch, "device": str(device), "torch": torch.__version__,
               "cpu": platform.processor() or platform.machine(), "load_average": os.getloadavg(), "sizes": {}}
    print(f"load average {os.getloadavg()[0]:.2f}; {args.threads} threads; batch {args.batch}; device {device}")
    print("| size | render fps (cached identities) | SyntheticPairs.batch items/s (fresh identities) |")
    print("| --- | --- | --- |")
    for size in args.sizes:
        world = SyntheticWorld(size, device=device)

        def render() -> None:
            params = Motion.draw(args.batch, g).at(torch.rand(args.batch, 1, generator=g) * 10)
            world.render(seeds, params)
            sync()

        fps = _rate(render, args.seconds) * args.batch
        pairs = SyntheticPairs("train", size, num_sources=1, device=device)
        items = _rate(lambda: (pairs.batch(16, g), sync()), args.seconds) * 16
        results["sizes"][size] = {"render_fps": round(fps, 1), "pairs_per_s": round(items, 1)}
        print(f"| {size} | {fps:.0f} | {items:.0f} |")
    ids = [identity(s) for s in SPLITS["train"][10_000:10_032]]
    paint_textures(ids[:2], device=device)
    start = time.perf_counter()
    paint_textures(ids, device=device)
    sync()
    results["paint_ms_per_identity"] = round((time.perf_counter() - start) / len(ids) * 1e3, 2)
    print(f"texture painting: {results['paint_ms_per_identity']} ms per new identity")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
