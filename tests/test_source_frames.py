"""benchmarks/source_frames.py: K source frames of a real clip against one, on a tiny model."""
from __future__ import annotations

import json

import torch

from helpers import load_benchmark

bench = load_benchmark("source_frames")


def test_spread_takes_first_last_and_between():
    from x2face.pipeline import spread

    assert spread(8, 1) == [0] and spread(8, 2) == [0, 7] and spread(8, 4) == [0, 2, 5, 7]
    assert spread(8, 8) == list(range(8))
    assert spread(3, 4) == [0, 1, 2] and spread(1, 4) == [0]


def test_source_frames_runs_on_a_real_clip(real_dir, tmp_path):
    from x2face import X2Face, X2FaceConfig

    torch.manual_seed(0)
    X2Face(X2FaceConfig(image_size=64, base_channels=8)).save_pretrained(tmp_path / "tiny")
    out = tmp_path / "r.json"
    result = bench.main(["--weights", str(tmp_path / "tiny"), "--real-dir", str(real_dir), "--clips", "2",
                         "--ks", "1", "8", "--json", str(out)])
    assert json.loads(out.read_text())["l1"] == result["l1"] and set(result["l1"]) == {"1", "8"}
    assert 1 <= result["clips"] <= 2 and result["driving_frames"] == 8 * result["clips"]
    values = [result["source_baseline_l1"], result["l1_one_latest_source"], result["l1_one_source_average"],
              *result["l1"].values()]
    assert all(0 < v < 1 for v in values)
    # K = 1 takes the first candidate, the latest-source variant the last: different frames, different scores
    assert result["l1_one_latest_source"] != result["l1"]["1"]
