"""benchmarks/relative_motion.py: its aligned case is the evaluation's own cross-identity measurement."""
from __future__ import annotations

import math

import torch

from x2face.data.synthetic import SyntheticWorld
from x2face.evaluate import EvalContext, EvalSettings, metric_cross

from helpers import load_benchmark

bench = load_benchmark("relative_motion")


def test_aligned_reference_is_evaluates_cross_relative(tiny_model):
    with torch.no_grad():
        out = bench.measure(tiny_model, pairs=32, offsets=(0.0, 10.0), axes=("yaw",))
        ctx = EvalContext(model=tiny_model, world=SyntheticWorld(tiny_model.config.image_size),
                          settings=EvalSettings(self_pairs=32, leakage_pairs=32), device=torch.device("cpu"))
        report = metric_cross(ctx)
    assert out["pairs"] == 32
    assert math.isclose(out["absolute_l1"], report["cross_l1"], rel_tol=1e-6)
    assert math.isclose(out["relative_l1"]["yaw"]["0"], report["cross_relative_l1"], rel_tol=1e-6)
    # offset 0: relative motion's right answer is absolute driving's
    assert out["relative_source_baseline_l1"]["yaw"]["0"] == out["source_baseline_l1"]
    # a turned reference asks for another render, so its baseline differs
    assert out["relative_source_baseline_l1"]["yaw"]["10"] != out["source_baseline_l1"]
    assert all(0 < v < 1 for v in out["relative_l1"]["yaw"].values())


def test_best_reference_scores_the_frames_it_picks(tiny_model):
    """The aligned candidate and the first one (20 degrees off) score as measure's offsets 0 and 20 do on the same
    pairs; the shares and turns are of the frames picked."""
    with torch.no_grad():
        out = bench.measure(tiny_model, pairs=16, offsets=(0.0, 20.0), axes=("yaw",))
        best = bench.measure_best(tiny_model, pairs=16)
        same = bench.measure_best(tiny_model, pairs=16, same_person=True)
    assert math.isclose(best["aligned_l1"], out["relative_l1"]["yaw"]["0"], rel_tol=1e-6)
    assert math.isclose(best["first_l1"], out["relative_l1"]["yaw"]["20"], rel_tol=1e-6)
    assert best["pairs"] == same["pairs"] == 16 and "pose" not in best  # (the tiny model has no pose head)
    for result in (best, same):
        assert 0 <= result["vector"]["aligned_share"] <= 1 and 0 <= result["vector"]["mean_abs_turn"] <= 20
    assert "l1" not in same["vector"] and 0 < best["vector"]["l1"] < 1
