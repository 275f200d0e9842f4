"""Is bf16 faster than fp32 for ``FastDriver`` on this CPU? (what ``precision="auto"`` picks on CPUs)

    OMP_WAIT_POLICY=PASSIVE python benchmarks/cpu_dtype.py [--config demo] [--threads 1] [--batches 1 16]
                                                            [--rounds 15] [--json out.json]

Builds the bench's random-weight model (``x2face.bench.bench_model``, realistic offsets), wraps it in
two ``FastDriver``s on the CPU (fp32 and bf16, both channels_last, no compile) with the same cached
face, and times ``drive`` at each batch size with the two dtypes interleaved call by call (so that
load from other processes hits both alike). Prints frames/s (median of ``--rounds`` timed rounds
after warm-up, each round at least 0.2 s) and the bf16/fp32 ratio per batch, with the load average
before and after; ``--json`` writes the same. On a shared machine, run it a few times.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch


def _round_s(fn, min_s: float = 0.2) -> float:
    """Seconds per call of ``fn``, over one round of at least ``min_s``."""
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_s:
            return elapsed / n


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="demo", choices=("paper", "demo", "tiny"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from x2face import get_config
    from x2face.bench import bench_frames, bench_model
    from x2face.fast import FastDriver, cpu_has_amx

    config = get_config(args.config)
    frames = bench_frames(max(args.batches) + 1, config.image_size)[0]
    model = bench_model(config, frames[:4])
    drivers = {name: FastDriver(model, "cpu", name) for name in ("fp32", "bf16")}
    for d in drivers.values():
        d.set_source(frames[:1].unsqueeze(1))  # [1, 3, S, S] -> [1, 1, 3, S, S]
    load_start = os.getloadavg()
    result = {"command": " ".join(["python", "benchmarks/cpu_dtype.py", *(sys.argv[1:] if argv is None else argv)]),
              "config": args.config, "threads": args.threads, "torch": torch.__version__,
              "cpu": platform.processor() or platform.machine(), "amx": cpu_has_amx(),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "load_average_start": load_start,
              "fps": {}, "bf16_over_fp32": {}}
    print(f"{args.config} config, {args.threads} thread(s), AMX {result['amx']}, "
          f"OMP_WAIT_POLICY={result['omp_wait_policy']}, load average {load_start[0]:.2f}")
    print("| batch | fp32 frames/s | bf16 frames/s | bf16 / fp32 |")
    print("| --- | --- | --- | --- |")
    with torch.inference_mode():
        for b in args.batches:
            x = frames[1:b + 1]
            times: dict[str, list[float]] = {name: [] for name in drivers}
            for d in drivers.values():  # warm-up: oneDNN primitive creation for this shape
                for _ in range(3):
                    d.drive(x)
            for _ in range(args.rounds):
                for name, d in drivers.items():
                    times[name].append(_round_s(lambda: d.drive(x)))
            fps = {name: b / statistics.median(t) for name, t in times.items()}
            result["fps"][str(b)] = {k: round(v, 1) for k, v in fps.items()}
            result["bf16_over_fp32"][str(b)] = round(fps["bf16"] / fps["fp32"], 3)
            print(f"| {b} | {fps['fp32']:.0f} | {fps['bf16']:.0f} | {fps['bf16'] / fps['fp32']:.2f} |")
    result["load_average_end"] = os.getloadavg()
    print(f"load average at the end {result['load_average_end'][0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
