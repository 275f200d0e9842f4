"""The evaluation suite: its measuring tools, the report it writes, and that it tells trained from untrained."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from x2face import X2Face, X2FaceConfig
from x2face.data.synthetic import SPLITS, FrameParams, SyntheticPairs, SyntheticWorld, identity, paint_overlay
from x2face.errors import ConfigError, InputError
from x2face.evaluate import (
    EDIT_CENTER,
    METRICS,
    REPORT_KEYS,
    EvalSettings,
    _audio_driver,
    driving_grid,
    edit_embedded_face,
    embedding_grid,
    estimate_mouth_opening,
    evaluate,
    fit_linear,
    main,
    make_overlay,
)
from x2face.warp import warp

ROOT = Path(__file__).resolve().parent.parent
REAL = Path(os.environ.get("X2FACE_SHARED", ROOT.parent / "shared")) / "data" / "real"


def _still_model() -> X2Face:
    """A model whose warps are all the identity (every weight 0): generated frame = source frame."""
    model = X2Face(X2FaceConfig(image_size=64, base_channels=8)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return model


def test_grids_reproduce_the_model(tiny_model):
    src, drv = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        v = tiny_model.driving_vector(drv)
        torch.testing.assert_close(warp(src, embedding_grid(tiny_model, src)), tiny_model.embed(src[:, None]),
                                   atol=1e-5, rtol=0)
        emb = tiny_model.embed(src[:, None])
        torch.testing.assert_close(warp(emb, driving_grid(tiny_model, v)), tiny_model.render(emb, v), atol=1e-6, rtol=0)


def test_fit_linear_recovers_a_linear_map():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(400, 20, generator=g) * 5
    a = torch.randn(20, 3, generator=g)
    y = x @ a + 7.0 + 0.01 * torch.randn(400, 3, generator=g)
    f = fit_linear(x, y)
    xt = torch.rand(50, 20, generator=g) * 5
    torch.testing.assert_close(f(xt), xt @ a + 7.0, atol=0.05, rtol=0)


def test_mouth_opening_is_read_back_from_frames():
    world = SyntheticWorld(64, cache_size=8)
    seeds = [SPLITS["test"][i] for i in range(4)]
    mouth = torch.tensor([0.0, 0.3, 0.65, 1.0])
    params = FrameParams.neutral(4, pose=torch.tensor([15.0, -5.0, 5.0])).replace(mouth=mouth)
    frames = world.render(seeds, params)
    still = params.replace(mouth=torch.zeros(4))
    est = estimate_mouth_opening(world, seeds, still, frames)
    torch.testing.assert_close(est, mouth, atol=0.06, rtol=0)


def test_audio_metric_scores_mouths_that_follow_the_sound(tiny_model, monkeypatch):
    """``audio_mouth_r`` is high for frames whose mouth opens with the audio, 0 for a mouth that never moves."""
    import x2face.evaluate as ev
    from x2face.data.synthetic import sample_video

    world = SyntheticWorld(64, cache_size=8)

    def follows(model, sources, audio, sample_rate, fps, num_frames, features):
        for i in range(2):  # find the test video these sources came from
            video = sample_video(SPLITS["test"][i], 1000 + i, num_frames, 64, world=world)
            if torch.equal(video.frames[:1], sources[0, :1]):
                still = video.params.index([0] * num_frames).replace(mouth=video.params.mouth)
                return world.render([SPLITS["test"][i]] * num_frames, still)
        raise AssertionError("unknown source")

    def still(model, sources, audio, sample_rate, fps, num_frames, features):
        return sources[0, :1].expand(num_frames, -1, -1, -1) if features == "mfcc" else None

    for driver, check in ((follows, lambda r: r["mfcc"] > 0.9 and r["learned"] > 0.9),
                          (still, lambda r: r["mfcc"] == 0.0 and r["learned"] is None)):
        monkeypatch.setattr(ev, "_audio_driver", lambda d=driver: d)
        report, _ = evaluate(tiny_model, EvalSettings.quick(), metrics=["audio"])
        assert check(report["audio_mouth_r"]), report["audio_mouth_r"]


class _CopyDriving(X2Face):
    """A model that renders the driving frame itself (its 'vector' is the frame): the perfect reenactor."""

    def driving_vector(self, driving):
        return driving.flatten(1)  # [B, 3, S, S] -> [B, 3*S*S]

    def render(self, embedded, vector):
        return vector.reshape(-1, 3, self.config.image_size, self.config.image_size)  # [B, 3*S*S] -> [B, 3, S, S]


class _HalfDriving(_CopyDriving):
    """Renders the mean of the embedded face and the driving frame: half of every change in the driving video."""

    def render(self, embedded, vector):
        return 0.5 * embedded + 0.5 * super().render(embedded, vector)


def test_video_mouth_r_is_the_ceiling_a_model_gives_audio(monkeypatch):
    """``video_mouth_r``: ~1 for a model that reproduces its driving frames, exactly 0 for one that returns the
    source; ``mouth_transfer``: 1, 0, and 0.5 for one that renders half of the driving frame's change."""
    import x2face.evaluate as ev

    monkeypatch.setattr(ev, "_audio_driver", lambda: None)  # only the video-driven part
    perfect, _ = evaluate(_CopyDriving(X2FaceConfig(image_size=64, base_channels=8)), EvalSettings.quick(),
                          metrics=["audio"])
    still, _ = evaluate(_still_model(), EvalSettings.quick(), metrics=["audio"])
    assert perfect["video_mouth_r"] > 0.9, perfect["video_mouth_r"]
    assert still["video_mouth_r"] == 0.0
    assert perfect["mouth_transfer"] == pytest.approx(1.0, abs=1e-6)
    assert still["mouth_transfer"] == pytest.approx(0.0, abs=1e-9)
    half, _ = evaluate(_HalfDriving(X2FaceConfig(image_size=64, base_channels=8)), EvalSettings.quick(), metrics=["audio"])
    assert half["mouth_transfer"] == pytest.approx(0.5, abs=1e-6)  # half of the mouth's change: a blurred mouth
    assert perfect["audio_mouth_r"] is None and "drive_from_audio" in perfect["notes"]["audio_mouth_r"]


def test_edit_lands_where_the_texture_says():
    """With identity warps the edited embedded face must be the source frame rendered with the edited texture."""
    model = _still_model()
    world = SyntheticWorld(64, cache_size=4)
    seed = SPLITS["test"][2]
    ident = identity(seed)
    half = (0.1 / (math.pi * ident.width), 0.1 / ident.height)
    params = FrameParams.neutral(1, pose=torch.tensor([-15.0, 5.0, 0.0]))
    overlay = make_overlay()
    source = world.render([seed], params)
    truth = world.render([seed], params, texture=paint_overlay(world.texture([seed]), overlay, EDIT_CENTER, half))
    with torch.no_grad():
        face, edited = edit_embedded_face(model, world, seed, params, source, overlay, EDIT_CENTER, half)
    torch.testing.assert_close(face, source, atol=1e-5, rtol=0)
    changed = (truth - source).abs().amax(1) > 0.05
    assert changed.sum() > 20  # the edit is visible
    left = float((edited - truth).abs().mean(1)[changed].mean())  # what the painted edit misses
    whole = float((source - truth).abs().mean(1)[changed].mean())  # the edit itself
    assert left < 0.25 * whole, (left, whole)


def _check_report(report: dict, allow_null: set[str]) -> None:
    assert set(REPORT_KEYS) <= set(report)
    for key in REPORT_KEYS:
        if key in allow_null:
            continue
        assert report[key] is not None, (key, report.get("notes"), report.get("errors"))
    assert set(report["self_l1"]) == {"1", "3"}
    assert set(report["pose_mae_deg"]) == set(report["pose_mae_supervised_deg"]) == {"yaw", "pitch", "roll"}
    for key in ("self_l1", "pose_mae_deg", "pose_mae_supervised_deg"):
        assert all(isinstance(v, float) and math.isfinite(v) for v in report[key].values())
    for key in ("source_baseline_l1", "cross_l1", "cross_relative_l1", "pose_driven_l1", "pose_driven_baseline_l1",
                "edit_l1", "edit_fixed_overlay_l1"):
        assert isinstance(report[key], float) and 0 <= report[key] <= 1, key
    for key in ("shape_leakage", "shape_leakage_relative"):
        assert isinstance(report[key], float) and math.isfinite(report[key]), key
    assert isinstance(report["video_mouth_r"], float) and -1 <= report["video_mouth_r"] <= 1
    assert isinstance(report["mouth_transfer"], float) and math.isfinite(report["mouth_transfer"])
    if report["audio_mouth_r"] is not None:
        assert set(report["audio_mouth_r"]) == {"mfcc", "learned"}
        for r in report["audio_mouth_r"].values():
            assert r is None or (isinstance(r, float) and -1 <= r <= 1)
    assert report["errors"] == {}
    assert report["samples"]["self"] > 0


@pytest.mark.slow
def test_quick_cli_writes_every_key(tmp_path, tiny_model, capsys):
    tiny_model.save_pretrained(tmp_path / "w")
    out = tmp_path / "report"
    real = ["--real", str(REAL)] if REAL.is_dir() else ["--no-real"]
    assert main(["--weights", str(tmp_path / "w"), "--out", str(out), "--quick", *real]) == 0
    report = json.loads((out / "report.json").read_text())
    allow = set() if _audio_driver() is not None else {"audio_mouth_r"}
    if not REAL.is_dir():
        allow |= {"real_self_l1", "real_source_baseline_l1"}
    _check_report(report, allow)
    if report["audio_mouth_r"] is None:
        assert "audio_mouth_r" in report["notes"]
    assert report["weights"] == str(tmp_path / "w") and report["config"]["image_size"] == 64
    assert report["device"] == "cpu" and report["seconds"] > 0
    md = (out / "report.md").read_text()
    assert "self_l1" in md and "shape_leakage" in md
    assert (out / "self_reenactment.png").is_file() and (out / "edit.png").is_file()
    assert "wrote" in capsys.readouterr().out


def test_a_failing_metric_is_null_and_reported(tiny_model, monkeypatch):
    def broken(ctx):
        raise RuntimeError("boom")

    monkeypatch.setitem(METRICS, "self", broken)
    report, _ = evaluate(tiny_model, EvalSettings.quick(), metrics=["self"])
    assert report["self_l1"] is None and report["source_baseline_l1"] is None
    assert "boom" in report["errors"]["self"]
    assert report["cross_l1"] is None and "not run" in report["notes"]["cross_l1"]


def test_bad_arguments_are_clear(tmp_path, tiny_model):
    from x2face.cli import main as cli_main

    with pytest.raises(SystemExit):
        main(["--quick"])  # neither --weights nor --untrained, no --out
    with pytest.raises(ConfigError, match="unknown metric"):
        main(["--untrained", "tiny", "--out", str(tmp_path / "o"), "--metrics", "self,speed"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        main(["--untrained", "tiny", "--out", str(tmp_path / "file")])
    with pytest.raises(InputError, match="not a folder"):
        main(["--untrained", "tiny", "--out", str(tmp_path / "o"), "--real", str(tmp_path / "nowhere")])
    with pytest.raises(ConfigError, match="unknown config"):
        main(["--untrained", "huge", "--out", str(tmp_path / "o")])
    assert cli_main(["evaluate", "--weights", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    with pytest.raises(ConfigError):
        evaluate(tiny_model, EvalSettings.quick(), metrics=["nope"])


@pytest.mark.slow
def test_training_is_clearly_better_than_untrained():
    """A tiny model trained for a short while on the world beats an untrained one by a wide margin."""
    torch.manual_seed(0)
    cfg = X2FaceConfig(image_size=64, base_channels=8)
    untrained = X2Face(cfg)
    trained = X2Face(cfg)
    trained.load_state_dict(untrained.state_dict())
    trained.check_inputs = False
    data = SyntheticPairs("train", 64, num_sources=1, identities=64)
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(trained.parameters(), lr=2e-3)
    trained.train()
    for _ in range(120):
        batch = data.batch(8, g)
        loss = (trained(batch["driving"], batch["sources"]) - batch["driving"]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    settings = EvalSettings.quick(self_pairs=48)
    before, _ = evaluate(untrained, settings, metrics=["self"])
    after, _ = evaluate(trained, settings, metrics=["self"])
    print(f"untrained self_l1 {before['self_l1']}, trained {after['self_l1']}, "
          f"source baseline {after['source_baseline_l1']:.4f}")
    assert before["source_baseline_l1"] == after["source_baseline_l1"]  # the same test pairs
    assert after["self_l1"]["1"] < 0.6 * before["self_l1"]["1"], (before["self_l1"], after["self_l1"])
    assert after["self_l1"]["1"] < 2.0 * after["source_baseline_l1"]
