"""The face detector's cascade engines, timed: OpenCV 4's C++ ``CascadeClassifier`` against ``x2face.haar``
(the same cascades, what runs under OpenCV 5: its numba-compiled CPU scan, and torch on ``--device``), on a
photo and on tracking a clip.

    python benchmarks/haar_speed.py [--device cpu] [--frames 120] [--json benchmarks/results/cpu-haar-speed.json]

Needs OpenCV 4 for the "opencv" column and ``../shared/data/real`` (or ``X2FACE_SHARED``) for the media.
Every engine must give the same boxes; the script says so and exits non-zero otherwise.
Each engine is warmed up first (numba compiles its scan once, then loads it from its disk cache).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from x2face.faces import FaceCropper, HaarDetector
from x2face.media import VideoReader, read_image

PHOTO = "photos/timesler_facenet-pytorch__data_test_images_paul_rudd_1.jpg"  # 1638x2048
CLIP = "clips/KwaiVGI_LivePortrait__assets_examples_driving_d10.mp4"  # 512x512, 25 fps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="where x2face.haar evaluates")
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    real = Path(os.environ.get("X2FACE_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "real"
    photo = read_image(real / PHOTO)
    frames = list(VideoReader(real / CLIP, seconds=args.frames / 25))[:args.frames]
    result: dict = {"photo": f"{PHOTO} ({photo.shape[1]}x{photo.shape[0]})",
                    "clip": f"{CLIP}: {len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]}, "
                            "a detection every 5th frame", "device": args.device, "engines": {}}
    boxes = {}
    for engine in ("opencv", "numba", "torch"):
        try:
            cropper = FaceCropper(256, backend=HaarDetector(engine=engine, device=args.device))
        except Exception as exc:  # OpenCV 5: no C++ engine
            result["engines"][engine] = f"unavailable: {exc}"
            continue
        cropper.crop_image(photo)  # warm-up (cascade parsing, first torch calls)
        t = time.perf_counter()
        face = cropper.crop_image(photo)
        photo_s = time.perf_counter() - t
        t = time.perf_counter()
        track = [c.box for c in cropper.track(frames)]
        track_s = time.perf_counter() - t
        boxes[engine] = (face.box, track)
        result["engines"][engine] = {"photo_s": round(photo_s, 3), "track_s": round(track_s, 3),
                                     "track_frames_per_s": round(len(frames) / track_s, 1)}
        print(engine, result["engines"][engine])
    same = all(b == next(iter(boxes.values())) for b in boxes.values())
    result["same_boxes"] = same if len(boxes) >= 2 else None
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
