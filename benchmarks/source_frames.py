"""How much do several source frames of one clip help on real faces? (``--source me.mp4``, ``set_source(video)``)

The paper's multi-frame embedding averages K source frames with the embedding network's confidences. The
evaluation's ``self_l1`` measures K = 1 and 3 on synthetic test identities; this script measures it on the real
val clips of ``../shared/data/real``: per clip, 16 face crops spread over its first ten seconds (the evaluation's
``real_face_crops``), the first 8 as the source candidates and the last 8 as driving frames. K source frames are
taken evenly from the 8 candidates (K = 1 is the first), as ``set_source`` takes them from a clip; the generated
frames are scored by L1 against the driving crops, beside returning the first source crop. Frames taken later
are nearer the driving frames in time, so ``l1_one_latest_source`` (K = 1 with the last candidate alone) shows how
much of K > 1's gain that nearness explains, and ``l1_one_source_average`` (each candidate alone, averaged) what
K = 8 gains over one of its frames.

    python benchmarks/source_frames.py --weights demo --json benchmarks/results/cpu-source-frames.json
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import finish, weights_parser  # noqa: E402

from x2face.evaluate import real_face_crops, real_val_clips  # noqa: E402
from x2face.hub import load_model  # noqa: E402
from x2face.pipeline import spread  # noqa: E402

REAL_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real"


@torch.inference_mode()
def main(argv: list[str] | None = None) -> dict:
    ap = weights_parser(__doc__)
    ap.add_argument("--real-dir", type=Path, default=REAL_DIR, help="folder with MANIFEST.tsv (val clips are used)")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8], help="source frame counts (<= 8)")
    ap.add_argument("--clips", type=int, default=0, help="use only the first N val clips (0: all)")
    args = ap.parse_args(argv)
    if not all(1 <= k <= 8 for k in args.ks):
        ap.error("--ks must lie in 1..8")

    t0 = time.time()
    model = load_model(args.weights, device="cpu").eval()
    size = model.config.image_size
    clips = real_val_clips(args.real_dir)
    if args.clips:
        clips = clips[: args.clips]
    errs: dict[int, list[torch.Tensor]] = {k: [] for k in args.ks}
    base: list[torch.Tensor] = []
    last: list[torch.Tensor] = []  # K = 1 with the latest candidate: how much of K > 1's gain is nearness in time
    each: list[torch.Tensor] = []  # K = 1 averaged over the 8 candidates: what one frame of the 8 gives on average
    used = 0
    for path in clips:
        crops = real_face_crops(path, size, 16)
        if crops is None:
            continue
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0  # [16, S, S, 3] -> [16, 3, S, S]
        cand, drv = x[:8], x[8:]
        v = model.driving_vector(drv)  # [8, D]
        for k in args.ks:
            emb = model.embed(cand[spread(8, k)][None])  # [k, 3, S, S] -> [1, k, 3, S, S] -> [1, 3, S, S]
            errs[k].append((model.render(emb, v) - drv).abs().mean(dim=(1, 2, 3)))  # [8]
        single = [(model.render(model.embed(cand[i:i + 1][None]), v) - drv).abs().mean(dim=(1, 2, 3))
                  for i in range(8)]  # each candidate alone: 8 x [8]
        last.append(single[-1])
        each.append(torch.stack(single).mean(0))  # [8, 8] -> [8]
        base.append((cand[:1] - drv).abs().mean(dim=(1, 2, 3)))  # [8]
        used += 1
    if not used:
        raise SystemExit(f"no real val clip with 16 face crops in {args.real_dir}")

    def mean(values: list[torch.Tensor]) -> float:
        return float(torch.cat(values).double().mean())

    result = {
        "weights": args.weights, "clips": used, "driving_frames": used * 8,
        "l1": {str(k): mean(errs[k]) for k in args.ks},
        "l1_one_latest_source": mean(last),
        "l1_one_source_average": mean(each),
        "source_baseline_l1": mean(base),
        "seconds": round(time.time() - t0, 1),
    }
    return finish(result, "source_frames.py", argv, args.json)


if __name__ == "__main__":
    main()
