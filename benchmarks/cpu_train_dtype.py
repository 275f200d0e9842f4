"""Is a bf16 training step faster than a float32 one on this CPU? (what ``run.bf16_cpu`` switches on)

    OMP_WAIT_POLICY=PASSIVE python benchmarks/cpu_train_dtype.py [--config demo] [--batch 16] [--threads 1 2]
                                                                  [--rounds 8] [--json out.json]

The demo recipe's stage-I step (``configs/demo.toml``): the bench's random-weight model
(``x2face.bench.bench_model``, realistic offsets), channels_last, Adam, L1 to the driving frame, at
``--batch``, once in float32 and once under ``torch.autocast("cpu", bfloat16)`` (the sampling stays
float32 as in ``x2face.warp``). The two are timed interleaved, round by round (so load from other
processes hits both alike), at each ``--threads`` setting. Prints images/s (median of ``--rounds``
rounds after warm-up, each round at least 1 s) and the ratio, with the load average before and after;
``--json`` writes the same. On a shared machine, run it a few times.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_dtype import _round_s  # noqa: E402  (same timing rounds as the driving benchmark)


def _step_fn(model: torch.nn.Module, sources: torch.Tensor, driving: torch.Tensor, bf16: bool):
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-4)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(driving, sources)
        loss = (out.float() - driving).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="demo", choices=("paper", "demo", "tiny"))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    from x2face import get_config
    from x2face.bench import bench_frames, bench_model
    from x2face.fast import cpu_has_amx

    config = get_config(args.config)
    frames = bench_frames(args.batch + 1, config.image_size)[0]
    base = bench_model(config, frames[:4]).train()
    base.check_inputs = False
    driving = frames[1:].contiguous(memory_format=torch.channels_last)  # [B, 3, S, S]
    sources = frames[:-1].flip(0).unsqueeze(1)  # [B, 3, S, S] -> [B, 1, 3, S, S]
    load_start = os.getloadavg()
    result = {"command": " ".join(["python", "benchmarks/cpu_train_dtype.py", *(sys.argv[1:] if argv is None else argv)]),
              "config": args.config, "batch": args.batch, "optimizer": "adam", "torch": torch.__version__,
              "cpu": platform.processor() or platform.machine(), "amx": cpu_has_amx(),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "load_average_start": load_start,
              "images_per_s": {}, "bf16_over_fp32": {}}
    print(f"{args.config} config, batch {args.batch}, AMX {result['amx']}, "
          f"OMP_WAIT_POLICY={result['omp_wait_policy']}, load average {load_start[0]:.2f}")
    print("| threads | fp32 images/s | bf16 images/s | bf16 / fp32 |")
    print("| --- | --- | --- | --- |")
    for threads in args.threads:
        torch.set_num_threads(threads)
        steps = {name: _step_fn(copy.deepcopy(base).to(memory_format=torch.channels_last), sources, driving,
                                name == "bf16") for name in ("fp32", "bf16")}
        for step in steps.values():  # warm-up: oneDNN primitive creation, Adam state
            for _ in range(2):
                step()
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                times[name].append(_round_s(step, min_s=1.0))
        ips = {name: args.batch / statistics.median(t) for name, t in times.items()}
        result["images_per_s"][str(threads)] = {k: round(v, 1) for k, v in ips.items()}
        result["bf16_over_fp32"][str(threads)] = round(ips["bf16"] / ips["fp32"], 3)
        print(f"| {threads} | {ips['fp32']:.1f} | {ips['bf16']:.1f} | {ips['bf16'] / ips['fp32']:.2f} |")
    result["load_average_end"] = os.getloadavg()
    print(f"load average at the end {result['load_average_end'][0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
