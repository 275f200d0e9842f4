"""``python -m x2face animate`` with and without ``--overlap`` (decode+crop | networks | paste+encode threads).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/animate_overlap.py [--clip CLIP] [--photo PHOTO] [--weights W]
                                 [--device cpu] [--repeats 3] [--variants off on eager] [--json out.json]

Runs the real command (a fresh process each time, ``--paste-back``, ``--quiet``) in turn for each
variant: ``off`` (``--overlap off``), ``on`` (``--overlap on``), ``eager`` (``--overlap off --eager``:
the plain fp32 eager model instead of the fast path), and prints each run's wall time and the
medians. Without
``--weights`` it saves random weights of the demo config (``x2face.bench.bench_model``: the speed
does not depend on the values) to a temporary folder. Defaults: a 512x512 8 s talking-head clip and
a photo from the shared real-media folder (``X2FACE_SHARED``, default ``../shared``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("X2FACE_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "real"
CLIP = SHARED / "clips" / "OpenTalker_SadTalker__examples_ref_video_WDA_KatieHill_000.mp4"
PHOTO = SHARED / "photos" / "ageitgey_face_recognition__examples_knn_examples_train_obama_obama2.jpg"
VARIANTS = {"off": ["--overlap", "off"], "on": ["--overlap", "on"], "eager": ["--overlap", "off", "--eager"]}


def random_demo_weights(folder: Path) -> Path:
    from x2face import get_config
    from x2face.bench import bench_frames, bench_model

    config = get_config("demo")
    bench_model(config, bench_frames(4, config.image_size)[0]).save_pretrained(folder)
    return folder


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clip", default=str(CLIP))
    p.add_argument("--photo", default=str(PHOTO))
    p.add_argument("--weights", default=None, help="weights to run (default: random demo-config weights)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=["off", "on"])
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    times: dict[str, list[float]] = {v: [] for v in args.variants}
    with tempfile.TemporaryDirectory(prefix="x2face-overlap-") as tmp:
        weights = args.weights or str(random_demo_weights(Path(tmp) / "weights"))
        load_start = os.getloadavg()
        for _ in range(args.repeats):
            for mode in args.variants:
                out = Path(tmp) / f"{mode}.mp4"
                cmd = [sys.executable, "-m", "x2face", "animate", "--source", args.photo, "--driving", args.clip,
                       "--out", str(out), "--weights", weights, "--device", args.device, "--paste-back",
                       *VARIANTS[mode], "--overwrite", "--quiet"]
                t = time.perf_counter()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                times[mode].append(time.perf_counter() - t)
                print(f"{mode}: {times[mode][-1]:.2f} s", flush=True)
    command = ["python", "benchmarks/animate_overlap.py", *(sys.argv[1:] if argv is None else argv)]
    result = {"command": " ".join(command),
              "clip": Path(args.clip).name, "photo": Path(args.photo).name, "device": args.device,
              "weights": args.weights or "random demo-config weights", "seconds": times,
              "median_s": {k: round(statistics.median(v), 2) for k, v in times.items()},
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "x2face_threads": os.environ.get("X2FACE_THREADS"),
              "load_average_start": load_start, "load_average_end": os.getloadavg()}
    medians = ", ".join(f"{k} {v} s" for k, v in result["median_s"].items())
    print(f"median: {medians} (load average {load_start[0]:.2f} -> {result['load_average_end'][0]:.2f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
