"""benchmarks/mouth_capacity.py: its measure must read 0 for a still mouth, its free-flow control must find
the mouth where a warp can render it, and a run with every loss option must train and write its curve."""
from __future__ import annotations

import json

import torch

from x2face.data.synthetic import SyntheticWorld
from x2face.train import _identity_flow_init

from helpers import load_benchmark

mc = load_benchmark("mouth_capacity")


def test_pairs_differ_only_in_the_mouth():
    world = SyntheticWorld(64)
    who, p, src, drv = mc.MouthPairs(world, 2, 1.0, seed=3, zoom=2.5, pose_scale=0.3).draw(6)
    assert src.shape == drv.shape == (6, 3, 64, 64) and len(who) == 6
    mouth = mc.mouth_region(world, who, p).unsqueeze(1)  # [B, S, S] -> [B, 1, S, S]
    changed = (src - drv).abs().amax(1, keepdim=True) > 0.02
    assert int(changed.sum()) > 0 and not bool((changed & ~mouth.bool()).any())  # all changes inside the mouth


def test_a_model_that_returns_the_source_transfers_nothing(tiny_model):
    _identity_flow_init(tiny_model)  # zero flows: every generated frame is its source
    pairs = mc.MouthPairs(SyntheticWorld(64), 1, 1.0, seed=1, zoom=2.5)
    out = mc.transfer(tiny_model, pairs, batches=1, batch=4)
    assert out["transfer"] == 0.0 and 0.0 <= out["dead"] <= 1.0


def test_free_flow_control_opens_and_closes_mouths():
    torch.manual_seed(0)
    world = SyntheticWorld(64)
    pairs = lambda: mc.MouthPairs(world, 1, 0.5, seed=2, zoom=2.5)  # noqa: E731 half-open sources: both ways
    fitted = mc.free_flow_transfer(pairs(), resolution=16, steps=150, blur_sigmas=[1.0], batches=1, batch=8)
    assert fitted["transfer"] > 0.5, fitted  # a warp fitted to the loss renders most of the mouth's change
    still = mc.free_flow_transfer(pairs(), resolution=16, steps=0, blur_sigmas=[], batches=1, batch=8)
    assert abs(still["transfer"]) < 1e-4 and still["l1"] > fitted["l1"]  # zero steps: the same pairs' sources


def test_a_run_with_every_loss_option_writes_its_curve(tmp_path, tiny_model):
    weights = tmp_path / "w"
    tiny_model.save_pretrained(weights)
    out = tmp_path / "runs.json"
    args = ["--weights", str(weights), "--steps", "2", "--every", "1", "--batch", "2", "--blur-sigmas", "1", "2",
            "--mouth-weight", "1", "--frozen-norm", "--zoom", "2.0", "--pose-scale", "0.1", "--threads", "1", "--json", str(out), "--save", str(tmp_path / "tuned")]
    assert mc.main(args) == 0
    assert (tmp_path / "tuned" / "config.json").exists() and (tmp_path / "tuned" / "model.safetensors").exists()
    tuned = dict(type(tiny_model).from_pretrained(tmp_path / "tuned").named_buffers())
    for name, buf in tiny_model.named_buffers():  # --frozen-norm: the batch statistics never entered the running ones
        if name.endswith(("running_mean", "running_var")):
            torch.testing.assert_close(tuned[name], buf)
    assert mc.main(["--weights", str(weights), "--free-flow", "8", "--steps", "3", "--json", str(out)]) == 0
    runs = json.loads(out.read_text())
    assert [len(r["curve"]) for r in runs] == [3, 1]
    assert all(r["command"].startswith("python benchmarks/mouth_capacity.py --weights") for r in runs)
    assert all(torch.isfinite(torch.tensor(c["l1"])) for c in runs[0]["curve"][1:])
    assert runs[1]["curve"][0]["free_flow"] == 8
