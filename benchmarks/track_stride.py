"""Face tracking with a fixed or an adaptive detection stride, against detecting on every frame.

For each video of a folder's ``MANIFEST.tsv`` (default ``../shared/data/real``), the face is tracked three ways by
``x2face.faces.FaceCropper`` with the same detector: detections on every frame (the reference), every
``--every`` frames (a fixed stride: ``max_gap = every``), and the adaptive stride (``max_gap = --max-gap``,
the default). Per way it reports detector runs, the wall time of tracking, and how far each frame's crop box is
from the reference's: centre distance and side change as fractions of the reference side (mean, 99th percentile
and max over all frames).

    python benchmarks/track_stride.py --json benchmarks/results/cpu-track-stride.json
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import finish  # noqa: E402

from x2face.faces import FaceCropper  # noqa: E402
from x2face.media import iter_video_frames  # noqa: E402


def boxes(frames: list[np.ndarray], every: int, max_gap: int, backend: str) -> tuple[np.ndarray, dict]:
    """Track ``frames``: (crop boxes float [N, 4] (NaN where no face), {"detections", "refinements", "seconds"})."""
    cropper = FaceCropper(image_size=64, detect_every=every, max_gap=max_gap, backend=backend)
    t0 = time.perf_counter()
    track = cropper.track(iter(frames))
    out = np.array([c.box if c.box is not None else (np.nan,) * 4 for c in track], dtype=np.float64)
    secs = time.perf_counter() - t0
    return out, {"detections": track.report.detections, "refinements": track.report.refinements, "seconds": secs}


def deviation(b: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre distance and |log side ratio| of boxes [N, 4] from reference boxes, relative to the reference side."""
    side = ref[:, 2] - ref[:, 0]
    c = (b[:, :2] + b[:, 2:]) / 2 - (ref[:, :2] + ref[:, 2:]) / 2
    return np.linalg.norm(c, axis=1) / side, np.abs(np.log((b[:, 2] - b[:, 0]) / side))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "real")
    ap.add_argument("--every", type=int, default=5, help="the fixed stride (FaceCropper's detect_every)")
    ap.add_argument("--max-gap", type=int, default=20, help="the adaptive stride's longest gap")
    ap.add_argument("--seconds", type=float, default=10.0, help="frames of each clip read (from its start)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--limit", type=int, default=0, help="only the first N videos (0: all)")
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args(argv)
    with open(args.data / "MANIFEST.tsv", newline="") as fh:
        videos = [r["file"] for r in csv.DictReader(fh, delimiter="\t") if r["kind"] == "video"]
    if args.limit:
        videos = videos[:args.limit]
    ways = {"every frame": (1, 1), f"fixed {args.every}": (args.every, args.every),
            f"adaptive {args.every}-{args.max_gap}": (args.every, args.max_gap)}
    totals = {w: {"detections": 0, "refinements": 0, "seconds": 0.0} for w in ways}
    devs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {w: [] for w in ways}
    frames_total = 0
    for name in videos:
        frames = list(iter_video_frames(args.data / name, seconds=args.seconds))
        frames_total += len(frames)
        result = {w: boxes(frames, e, g, args.backend) for w, (e, g) in ways.items()}
        ref = result["every frame"][0]
        for w, (b, stats) in result.items():
            for k in totals[w]:
                totals[w][k] += stats[k]
            ok = ~np.isnan(ref[:, 0]) & ~np.isnan(b[:, 0])
            devs[w].append(deviation(b[ok], ref[ok]))
    out = {}
    for w in ways:
        c = np.concatenate([d[0] for d in devs[w]])
        s = np.concatenate([d[1] for d in devs[w]])
        out[w] = {**totals[w], "detections_per_frame": totals[w]["detections"] / frames_total,
                  "centre_dev": {"mean": float(c.mean()), "p99": float(np.percentile(c, 99)), "max": float(c.max())},
                  "side_dev": {"mean": float(s.mean()), "p99": float(np.percentile(s, 99)), "max": float(s.max())}}
    result = {
        "videos": len(videos), "frames": frames_total, "seconds_per_clip": args.seconds, "backend": args.backend,
        "ways": out,
    }
    return finish(result, "track_stride.py", argv, args.json)


if __name__ == "__main__":
    main()
