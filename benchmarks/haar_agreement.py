"""x2face.haar's engines against OpenCV 4's ``CascadeClassifier`` on every photo of the shared data: how many
searches give exactly OpenCV's boxes.

    python benchmarks/haar_agreement.py [--json benchmarks/results/cpu-haar-agreement.json]

Each photo is shrunk (longest side 320 or 512 px), made grey and histogram-equalised as ``HaarDetector`` does,
and searched by the three cascades with each of ``SETTINGS`` (side, scale factor, neighbours, smallest window),
by OpenCV, the numba engine and the torch engine (the torch engine takes about ten minutes on a 2-core CPU). Needs OpenCV 4 and ``../shared`` (or
``X2FACE_SHARED``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from x2face.haar import cascade_path, load_cascade
from x2face.media import read_image

CASCADES = ("frontalface_alt2", "frontalface_default", "profileface")
SETTINGS = ((320, 1.1, 3, 24), (320, 1.05, 3, 24), (512, 1.2, 1, 30))


def _sorted(boxes) -> list[list[int]]:
    return sorted(np.asarray(boxes).reshape(-1, 4).tolist())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if not hasattr(cv2, "CascadeClassifier"):
        print(f"OpenCV {cv2.__version__} has no CascadeClassifier to compare against", file=sys.stderr)
        return 2
    real = Path(os.environ.get("X2FACE_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "real"
    photos = sorted((real / "photos").iterdir())
    grays = {}
    for path in photos:
        img = read_image(path)
        for side in sorted({st[0] for st in SETTINGS}):
            s = side / max(img.shape[:2])
            small = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
            grays[path.name, side] = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    result: dict = {"opencv": cv2.__version__, "photos": len(photos), "settings": SETTINGS, "engines": {}}
    for engine, compiled in (("numba", True), ("torch", False)):
        same, differ = 0, []
        for name in CASCADES:
            mine, ref = load_cascade(name), cv2.CascadeClassifier(cascade_path(name))
            for (photo, side), g in grays.items():
                for side_, sf, nb, smallest in SETTINGS:
                    if side_ != side:
                        continue
                    b_ref, _, _ = ref.detectMultiScale3(g, scaleFactor=sf, minNeighbors=nb,
                                                        minSize=(smallest, smallest), maxSize=g.shape[::-1],
                                                        outputRejectLevels=True)
                    b, _ = mine.detect_multi_scale3(g, sf, nb, (smallest, smallest), g.shape[::-1], compiled=compiled)
                    if _sorted(b) == _sorted(b_ref):
                        same += 1
                    else:
                        differ.append({"cascade": name, "photo": photo, "side": side, "scale_factor": sf,
                                       "neighbors": nb, "boxes": _sorted(b), "opencv": _sorted(b_ref)})
        result["engines"][engine] = {"searches": same + len(differ), "same_as_opencv": same, "differ": differ}
        print(engine, f"{same} of {same + len(differ)} searches give OpenCV's boxes", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
