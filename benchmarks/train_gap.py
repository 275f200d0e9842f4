"""Does the model reenact the identities it trained on better than unseen ones (overfit) or as badly (underfit)?

Self-reenactment L1 and the return-the-source baseline, as ``self_l1["1"]`` and ``source_baseline_l1`` of
``x2face.evaluate`` measure them (source and driving frame of one synthetic video, K = 1), on the same number of
pairs from three pools: the first ``--pool`` identities of the synthetic train split (the demo recipe's
``data.synthetic_identities``: the faces it trained on), the whole train split, and the test split.

    python benchmarks/train_gap.py --weights demo --json benchmarks/results/cpu-train-gap.json
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import finish, weights_parser  # noqa: E402

from x2face.data.synthetic import SyntheticPairs  # noqa: E402
from x2face.hub import load_model  # noqa: E402


@torch.no_grad()
def main(argv: list[str] | None = None) -> dict:
    ap = weights_parser(__doc__)
    ap.add_argument("--pool", type=int, default=4096, help="train identities the weights were trained on")
    ap.add_argument("--pairs", type=int, default=1008, help="pairs per pool (a multiple of --batch)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)
    t0 = time.time()
    model = load_model(args.weights, device="cpu").eval()
    pools = {"train_pool": ("train", args.pool), "train_split": ("train", None), "test_split": ("test", None)}
    result: dict = {"weights": args.weights, "pairs": args.pairs, "pool": args.pool}
    for name, (split, identities) in pools.items():
        data = SyntheticPairs(split, model.config.image_size, num_sources=1, seed=args.seed, identities=identities)
        g = torch.Generator().manual_seed(args.seed)
        model_l1 = baseline_l1 = 0.0
        batches = args.pairs // args.batch
        for _ in range(batches):
            b = data.batch(args.batch, g)  # sources [B, 1, 3, S, S], driving [B, 3, S, S] in [0, 1]
            model_l1 += (model(b["driving"], b["sources"]) - b["driving"]).abs().mean().item() / batches
            baseline_l1 += (b["sources"][:, 0] - b["driving"]).abs().mean().item() / batches
        result[name] = {"self_l1": model_l1, "source_baseline_l1": baseline_l1, "ratio": model_l1 / baseline_l1}
    result["seconds"] = round(time.time() - t0, 1)
    return finish(result, "train_gap.py", argv, args.json)


if __name__ == "__main__":
    main()
