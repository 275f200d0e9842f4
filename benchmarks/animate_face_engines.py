"""End-to-end animate of a 10 s clip (``python -m x2face bench --parts animate``) with each face-cascade engine, as on
an install whose OpenCV has no ``CascadeClassifier`` (OpenCV 5, e.g. after ``pip install face-alignment``).

    python benchmarks/animate_face_engines.py [--config tiny] [--threads 2] [--max-gap N] [--json benchmarks/results/cpu-animate-face-engines.json]

Each engine runs in a fresh process: "opencv" as installed (OpenCV 4's C++ cascades), then "numba" and "torch"
with ``cv2.CascadeClassifier`` removed (torch also with numba hidden), so the face detector falls back as it
would there. Only the animate part of the bench runs (``--quick``: one warm-up pass, then the timed stages).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys
engine, out, max_gap, args = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
import x2face.faces
if max_gap:  # the trackers the bench makes take this stride limit (max_gap <= detect_every: a fixed stride)
    init = x2face.faces.FaceCropper.__init__
    x2face.faces.FaceCropper.__init__ = lambda self, *a, **k: init(self, *a, **{"max_gap": max_gap, **k})
if engine != "opencv":
    import cv2
    if hasattr(cv2, "CascadeClassifier"):
        del cv2.CascadeClassifier  # as in OpenCV 5
    import x2face.haar
    if engine == "torch":
        x2face.haar.compiled_available = lambda: False  # as without numba
from x2face.cli import main
code = main(["bench", "--quick", "--parts", "animate", "--out", out, *args])
sys.exit(code or 0)
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="tiny", help="the model config (the time is face tracking, not the model)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-gap", type=int, default=0,
                   help="FaceCropper's max_gap for the tracking (0: its default; 5: the fixed stride of detect_every)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    bench_args = ["--config", args.config, "--device", args.device, "--threads", str(args.threads)]
    result: dict = {"command": "python benchmarks/animate_face_engines.py " + " ".join(sys.argv[1:]),
                    "bench_args": bench_args, "max_gap": args.max_gap or "FaceCropper's default", "engines": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in ("opencv", "numba", "torch"):
            out = Path(tmp) / f"{engine}.json"
            proc = subprocess.run([sys.executable, "-c", CHILD, engine, str(out), str(args.max_gap), *bench_args], cwd=ROOT,
                                  capture_output=True, text=True)
            if proc.returncode != 0 or not out.is_file():
                result["engines"][engine] = f"failed: {proc.stderr.strip().splitlines()[-1:]}"
                continue
            r = json.loads(out.read_text())
            result["engines"][engine] = {"animate_10s_seconds": r["animate_10s_seconds"], "clip": r.get("animate_clip")}
            result.setdefault("machine", r.get("machine"))
            print(engine, r["animate_10s_seconds"], flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
