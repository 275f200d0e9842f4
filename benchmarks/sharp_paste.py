"""Sharp paste-back (``drive_frames(paste_back=True, sharp=True)``, the CLI's and app's default) against enlarging
the model's output: detail in the pasted face and time per frame, on a photo and a driving clip.

Detail is the variance of the Laplacian of the grey face (the middle half of the crop box), in the photo itself,
in the plain paste-back and in the sharp one; time is the whole ``drive_frames`` per frame (crop, networks,
rendering, paste-back), the median of three runs after a warm-up.

    python benchmarks/sharp_paste.py --json benchmarks/results/cpu-sharp-paste.json
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import finish, weights_parser  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def face_detail(image: np.ndarray, box) -> float:
    """Variance of the Laplacian of the grey middle half of ``box`` in ``image`` (uint8 RGB): its fine detail."""
    import cv2

    x0, y0, x1, y1 = (int(round(v)) for v in box)
    m = (x1 - x0) // 4
    patch = image[max(y0 + m, 0):y1 - m, max(x0 + m, 0):x1 - m]
    return float(cv2.Laplacian(cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def measure(weights: str, photo: Path, driving: Path, seconds: float = 3.0) -> dict:
    from x2face.media import VideoReader
    from x2face.pipeline import X2FacePipeline

    pipe = X2FacePipeline.from_pretrained(weights, device="cpu")
    src = pipe.set_source(str(photo))
    frames = list(VideoReader(driving, seconds=seconds))
    result = {"photo": photo.name, "photo_size": list(src.photo.shape[1::-1]), "driving": driving.name,
              "frames": len(frames), "model_size": pipe.image_size, "sharp_size": src.sharp[0].shape[0],
              "detail": {"photo": face_detail(src.photo, src.boxes[0])}, "ms_per_frame": {}}
    for name, sharp in (("plain", False), ("sharp", True)):
        out = list(pipe.drive_frames(frames, paste_back=True, sharp=sharp))  # warm-up (and the frames measured)
        result["detail"][name] = statistics.mean(face_detail(d.image, src.boxes[0]) for d in out)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in pipe.drive_frames(frames, paste_back=True, sharp=sharp):
                pass
            times.append((time.perf_counter() - t0) / len(frames) * 1000)
        result["ms_per_frame"][name] = round(statistics.median(times), 2)
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = weights_parser(__doc__)
    ap.add_argument("--photo", type=Path, default=ROOT / "assets/examples/photo_a.jpg")
    ap.add_argument("--driving", type=Path, default=ROOT / "assets/examples/driving.mp4")
    args = ap.parse_args(argv)
    result = {"weights": args.weights, **measure(args.weights, args.photo, args.driving)}
    return finish(result, "sharp_paste.py", argv, args.json)


if __name__ == "__main__":
    main()
