"""benchmarks/edit_breakdown.py reruns the evaluation's edit metric: its two headline numbers are the metric's."""
from __future__ import annotations

import pytest
import torch

from x2face import X2Face
from x2face.evaluate import EvalSettings, evaluate

from helpers import load_benchmark

breakdown = load_benchmark("edit_breakdown")


def test_the_breakdown_reproduces_the_metric_and_splits_it(tiny_config, tmp_path, monkeypatch):
    torch.manual_seed(0)
    X2Face(tiny_config).save_pretrained(tmp_path / "w")
    few = EvalSettings(edit_videos=2, edit_frames=4)
    monkeypatch.setattr(breakdown, "EvalSettings", lambda: few)
    out = breakdown.main(["--weights", str(tmp_path / "w"), "--json", str(tmp_path / "b.json")])
    report, _ = evaluate(X2Face.from_pretrained(tmp_path / "w"), few, metrics=["edit"])
    assert out["edit_l1"] == pytest.approx(report["edit_l1"], abs=1e-6)
    assert out["edit_fixed_overlay_l1"] == pytest.approx(report["edit_fixed_overlay_l1"], abs=1e-6)
    # the edit's own pixels are a small part of the face: their errors are far above the whole face's
    assert out["on_edit_l1"] > out["edit_l1"] and out["on_edit_fixed_l1"] > out["edit_fixed_overlay_l1"]
    assert set(out["edit_l1_supersampled"]) == {"2", "4"} and out["extra_copy_pixels"] >= 0
    assert (tmp_path / "b.json").is_file()
