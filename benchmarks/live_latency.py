"""The app's Live webcam tab, timed: how long ``LiveSession.step`` takes per webcam frame, split into finding the
face (a detection near the last box, every frame) and driving the photo (the networks and the sharp rendering, at
most ``app_helpers.LIVE_SHARP_SIDE`` a side, as the tab does), plus the tab's own side-by-side picture.

    python benchmarks/live_latency.py [--weights demo] [--frames 100] [--size 640x480]
        [--json benchmarks/results/cpu-live-latency.json]

A talking-head clip of ``../shared/data/real`` (or ``X2FACE_SHARED``) resized to a webcam's frame size stands for
the webcam; the source is a photo. Medians and 90th percentiles in milliseconds after 5 warm-up frames.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import finish, weights_parser  # noqa: E402

PHOTO = "photos/jixinya_EAMM__test_image_anne.png"
CLIP = "clips/jixinya_EAMM__test_video_disgusted.mp4"  # 256x256, 25 fps
WARMUP = 5


def main(argv: list[str] | None = None) -> int:
    import cv2
    import torch

    from x2face.app_helpers import LIVE_SHARP_SIDE, live_picture
    from x2face.fast import configure_cpu_threads
    from x2face.media import VideoReader
    from x2face.pipeline import X2FacePipeline

    ap = weights_parser(__doc__)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", default="640x480", help="webcam frame size WxH")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    configure_cpu_threads()
    real = Path(os.environ.get("X2FACE_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "real"
    clip = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in VideoReader(real / CLIP)]
    frames = [clip[i % len(clip)] for i in range(args.frames + WARMUP)]
    pipe = X2FacePipeline.from_pretrained(args.weights, device="cpu")
    pipe.set_source([real / PHOTO])
    live = pipe.live(sharp=LIVE_SHARP_SIDE)  # as the app's tab: the sharp face, at most LIVE_SHARP_SIDE a side

    drive_s: list[float] = []
    drive = pipe._generate

    def timed_drive(*a, **k):  # the networks' and the sharp rendering's share of a step
        t = time.perf_counter()
        out = drive(*a, **k)
        drive_s.append(time.perf_counter() - t)
        return out

    pipe._generate = timed_drive
    step_s, picture_s = [], []
    for frame in frames:
        t = time.perf_counter()
        out = live.step(frame)
        t1 = time.perf_counter()
        live_picture(out)
        step_s.append(t1 - t)
        picture_s.append(time.perf_counter() - t1)
    found = live.found
    step = np.array(step_s[WARMUP:]) * 1e3
    net = np.array(drive_s[WARMUP:]) * 1e3 if len(drive_s) > WARMUP else np.array([np.nan])
    pic = np.array(picture_s[WARMUP:]) * 1e3

    def stats(x: np.ndarray) -> dict:
        return {"median_ms": round(float(np.median(x)), 1), "p90_ms": round(float(np.percentile(x, 90)), 1)}

    result = {"weights": args.weights, "image_size": pipe.image_size, "webcam": f"{w}x{h}",
              "frames": args.frames, "faces_found": f"{found} of {len(frames)}",
              "torch_threads": torch.get_num_threads(),
              "face_detector": pipe.cropper.backend, "sharp_side": min(LIVE_SHARP_SIDE, pipe.source.sharp[0].shape[0]),
              "step": stats(step), "networks_and_sharp_rendering": stats(net),
              "face_tracking_and_crop": stats(step - net), "tab_picture": stats(pic),
              "frames_per_s_median": round(1e3 / float(np.median(step + pic)), 1)}
    finish(result, "live_latency.py", argv, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
