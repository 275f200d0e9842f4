"""Every face of a group photo, timed: seconds per frame of ``X2FacePipeline.drive_frames`` as the command line runs
it (sharp rendering, every face pasted back) for a photo of 1, 2 and 4 people, driven alike by one talking head
(``--face all``) and face by face by a clip of as many people side by side (``--face all --driving-face all``),
with the share of that time spent pasting the faces back into the photo.

    python benchmarks/group_faces.py [--weights demo] [--frames 50] [--json benchmarks/results/cpu-group-faces.json]

The photo: 1, 2 or 4 portraits of ``../shared/data/real/photos`` (or ``X2FACE_SHARED``), each 320x400, side by
side; the clips: talking heads of ``../shared/data/real/clips`` resized to 256x256, side by side. Decoding is left
out (the clips are read once, before timing); tracking, the networks, the sharp rendering and the paste-back are in.
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

PHOTOS = [f"photos/KwaiVGI_LivePortrait__assets_examples_source_{s}.jpg" for s in ("s1", "s2", "s3", "s10")]
CLIPS = ["clips/AliaksandrSiarohin_first-order-model__demo_old_00.mp4",
         "clips/AliaksandrSiarohin_first-order-model__demo_old_04.mp4",
         "clips/AliaksandrSiarohin_first-order-model__demo_old_08.mp4",
         "clips/AliaksandrSiarohin_first-order-model__demo_old_10.mp4"]


def side_by_side_frames(images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Images resized to ``size`` (width, height) and put side by side: uint8 [h, n * w, 3] RGB."""
    import cv2

    return np.concatenate([cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in images], axis=1)


def main(argv: list[str] | None = None) -> dict:
    from x2face import pipeline
    from x2face.fast import configure_cpu_threads
    from x2face.media import VideoReader, read_image
    from x2face.pipeline import X2FacePipeline

    ap = weights_parser(__doc__)
    ap.add_argument("--frames", type=int, default=50)
    args = ap.parse_args(argv)
    configure_cpu_threads()
    real = Path(os.environ.get("X2FACE_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "real"
    photos = [read_image(real / p) for p in PHOTOS]
    clips = [list(VideoReader(real / c, seconds=args.frames / 25 + 0.5))[: args.frames] for c in CLIPS]
    pipe = X2FacePipeline.from_pretrained(args.weights, device="cpu", sharp=True)
    paste_s: list[float] = []
    paste = pipeline.paste_back

    def timed_paste(*a, **k):  # the paste-back's share (every call the pipeline makes)
        t = time.perf_counter()
        out = paste(*a, **k)
        paste_s.append(time.perf_counter() - t)
        return out

    pipeline.paste_back = timed_paste
    result: dict = {"weights": args.weights, "frames": args.frames, "seconds_per_frame": {}, "paste_share": {}}
    for n in (1, 2, 4):
        info = pipe.set_source(side_by_side_frames(photos[:n], (320, 400)), face="all")
        assert len(pipe.sources) == n, f"{len(pipe.sources)} faces found in a photo of {n}"
        for mode, frames, each in (("alike", clips[0], None),
                                   ("each", [side_by_side_frames([c[i] for c in clips[:n]], (256, 256))
                                             for i in range(args.frames)], "all")):
            list(pipe.drive_frames(frames[:5], driving_face=each))  # warm-up
            paste_s.clear()
            t = time.perf_counter()
            out = list(pipe.drive_frames(frames, driving_face=each))
            total = time.perf_counter() - t
            assert len(out) == args.frames and all(d.found for d in out), pipe.last_report.summary()
            key = f"{n} {mode}"
            result["seconds_per_frame"][key] = round(total / args.frames, 4)
            result["paste_share"][key] = round(sum(paste_s) / total, 3)
        result.setdefault("photo_size", {})[str(n)] = list(info.photo.shape[1::-1])
    return finish(result, "group_faces.py", argv, args.json)


if __name__ == "__main__":
    main()
