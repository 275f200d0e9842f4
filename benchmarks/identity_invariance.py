"""How pose-invariant an identity network's features are, on synthetic test identities.

    python benchmarks/identity_invariance.py WEIGHTS [WEIGHTS ...] [--identities 32] [--json out.json]

Each test identity is rendered at two random poses (yaw +-40, pitch +-15, roll +-10 degrees, seed 0). For the
layers stage II's other-identity loss uses (and Conv5), it prints the mean L1 feature distance between one
identity in two poses and between two identities in one pose, and their ratio: near 0 means the features
see who it is and not how the head is turned, which that loss needs.
"""
from __future__ import annotations

import argparse
import json

import torch

from x2face.data.synthetic import SPLITS, FrameParams, SyntheticWorld
from x2face.identity import load_identity_network

LAYERS = ("conv5", "conv6", "conv7")


def random_poses(n: int, generator: torch.Generator) -> torch.Tensor:
    """float [n, 3] (yaw, pitch, roll) in degrees, uniform in +-40 / +-15 / +-10."""
    limits = torch.tensor([40.0, 15.0, 10.0])
    return (torch.rand(n, 3, generator=generator) * 2 - 1) * limits  # [n, 3]


def measure(weights: str, identities: int, seed: int = 0) -> dict[str, dict[str, float]]:
    """{layer: {same_identity_other_pose, other_identity_same_pose, ratio}} for the network at ``weights``."""
    net = load_identity_network(weights).eval()
    world = SyntheticWorld(net.config.image_size, cache_size=2 * identities)
    g = torch.Generator().manual_seed(seed)
    seeds = [SPLITS["test"][i] for i in range(identities)]
    pose_a, pose_b = random_poses(identities, g), random_poses(identities, g)
    a = world.render(seeds, FrameParams.neutral(identities).replace(pose=pose_a))  # [n, 3, S, S]
    b = world.render(seeds, FrameParams.neutral(identities).replace(pose=pose_b))  # same identities, other poses
    other = world.render(seeds[1:] + seeds[:1], FrameParams.neutral(identities).replace(pose=pose_a))  # next identity, pose a
    with torch.inference_mode():
        fa, fb, fo = net.features(a), net.features(b), net.features(other)
    out = {}
    for layer in LAYERS:
        same = float((fa[layer] - fb[layer]).abs().mean())
        diff = float((fa[layer] - fo[layer]).abs().mean())
        out[layer] = {"same_identity_other_pose": same, "other_identity_same_pose": diff, "ratio": same / diff}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("weights", nargs="+", help="identity networks (train-identity folders or VGG-11 weight files)")
    p.add_argument("--identities", type=int, default=32)
    p.add_argument("--json", help="also write the numbers here")
    args = p.parse_args()
    results = {}
    print("| weights | layer | same identity, other pose | other identity, same pose | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for w in args.weights:
        results[w] = measure(w, args.identities)
        for layer, r in results[w].items():
            print(f"| {w} | {layer} | {r['same_identity_other_pose']:.3f} | {r['other_identity_same_pose']:.3f} | {r['ratio']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
