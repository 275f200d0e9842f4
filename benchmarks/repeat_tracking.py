"""What remembering the face detector's answers (``x2face.faces.DetectionMemo``) saves where a clip is tracked again.

Two command lines that track one driving clip more than once, each run as a user runs it
(``python -m x2face animate``, in this process, on the bundled weights unless ``--weights``), once as it is and once
with the memo off (``faces.REMEMBER_CALLS = 0``):

* ``--each`` with ``--photos`` photos: one output per photo, each tracking the clip;
* ``--relative --relative-to best``: the clip is tracked to find the frame posed most like the photo, then again
  to drive it.

Per run: the seconds of each output (the command's own summary line) and the detector calls made; and whether the
outputs are the same with and without the memo (the largest difference of their decoded frames).

    python benchmarks/repeat_tracking.py --json benchmarks/results/cpu-repeat-tracking.json
"""
from __future__ import annotations

import contextlib
import io
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import finish, weights_parser  # noqa: E402

from x2face import animate, faces  # noqa: E402
from x2face.media import VideoReader  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
PHOTOS = ["photos/jixinya_EAMM__test_image_anne.png",
          "photos/timesler_facenet-pytorch__data_test_images_paul_rudd_1.jpg",
          "photos/ageitgey_face_recognition__examples_knn_examples_train_obama_obama2.jpg",
          "photos/KwaiVGI_LivePortrait__assets_examples_source_s2.jpg"]
CLIP = "clips/KwaiVGI_LivePortrait__assets_examples_driving_d10.mp4"  # 512x512, 30 fps, 15 s


class _Counting:
    """Counts the calls of every detector's ``detect`` (patched on the class the cropper makes)."""

    def __init__(self) -> None:
        self.calls = 0

    @contextlib.contextmanager
    def on(self, cls):
        detect = cls.detect

        def counted(det, *a, **k):
            self.calls += 1
            return detect(det, *a, **k)

        cls.detect = counted
        try:
            yield self
        finally:
            cls.detect = detect


def run(argv: list[str], remember: bool) -> tuple[list[float], int]:
    """``animate.main(argv)`` with the memo on or off: (seconds of each output, detector calls)."""
    saved = faces.REMEMBER_CALLS
    faces.REMEMBER_CALLS = saved if remember else 0
    out = io.StringIO()
    try:
        with _Counting().on(faces.HaarDetector) as count, contextlib.redirect_stdout(out):
            code = animate.main(argv + ["--quiet", "--overwrite", "--backend", "opencv"])
    finally:
        faces.REMEMBER_CALLS = saved
    if code != 0:
        raise SystemExit(f"animate failed ({code}): {out.getvalue()}")
    return [float(s) for s in re.findall(r"; ([\d.]+) s \([\d.]+ frames/s\)", out.getvalue())], count.calls


def difference(a: Path, b: Path) -> int:
    """The largest difference of two videos' decoded frames (uint8 levels); they must have as many frames."""
    fa, fb = list(VideoReader(a)), list(VideoReader(b))
    assert len(fa) == len(fb), (len(fa), len(fb))
    return int(max(np.abs(x.astype(np.int16) - y).max() for x, y in zip(fa, fb)))


def main(argv: list[str] | None = None) -> dict:
    ap = weights_parser(__doc__)
    ap.add_argument("--data", type=Path, default=REAL)
    ap.add_argument("--photos", type=int, default=3, help="photos for --each (at most %d)" % len(PHOTOS))
    ap.add_argument("--clip", default=CLIP, help="the driving clip, under --data")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of the clip animated")
    args = ap.parse_args(argv)
    photos = [str(args.data / p) for p in PHOTOS[:args.photos]]
    clip = str(args.data / args.clip)
    common = ["--driving", clip, "--seconds", f"{args.seconds:g}", "--weights", args.weights]
    info = VideoReader(clip).info
    result: dict = {"clip": f"{Path(clip).name} ({info.width}x{info.height}), the first {args.seconds:g} s",
                    "photos": [Path(p).name for p in photos]}
    with tempfile.TemporaryDirectory() as tmp:
        run(["--driving", clip, "--seconds", "1", "--weights", args.weights, "--source", photos[0], "--out",
             str(Path(tmp, "warm-up.mp4"))], True)  # first calls (imports, threads, ffmpeg) out of the timings
        for name, extra in [("each", ["--each", *sum((["--source", p] for p in photos), [])]),
                            ("relative_best", ["--source", photos[0], "--relative", "--relative-to", "best"])]:
            runs = {}
            for remember in (False, True):
                where = Path(tmp, name + ("-memo" if remember else "-plain"))
                where.mkdir()
                out = str(where / "{name}.mp4") if name == "each" else str(where / "out.mp4")
                seconds, calls = run(common + extra + ["--out", out], remember)
                runs["memo" if remember else "plain"] = {"seconds": seconds, "total_seconds": round(sum(seconds), 2),
                                                         "detector_calls": calls}
            plain, memo = sorted(Path(tmp, name + "-plain").iterdir()), sorted(Path(tmp, name + "-memo").iterdir())
            runs["max_frame_difference"] = max(difference(a, b) for a, b in zip(plain, memo))
            result[name] = runs
    return finish(result, "repeat_tracking.py", argv, args.json)


if __name__ == "__main__":
    main()
