"""The bundled demo weights (assets/x2face-demo): what the README's first command and the app load."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from x2face import X2Face
from x2face.hub import bundled_weights_dir, describe

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "assets" / "x2face-demo"
EXAMPLES = ROOT / "assets" / "examples"


@pytest.fixture(scope="module")
def pipe():
    from x2face.pipeline import X2FacePipeline

    return X2FacePipeline.from_pretrained(device="cpu")  # no weights named: the bundled ones


def test_bundled_folder_is_small_and_complete(monkeypatch):
    monkeypatch.delenv("X2FACE_DEMO_WEIGHTS", raising=False)
    assert bundled_weights_dir() == DEMO
    assert {"config.json", "model.safetensors", "provenance.json"} <= {p.name for p in DEMO.iterdir()}
    assert (DEMO / "model.safetensors").stat().st_size <= 30 * 2**20  # the limit: 30 MB of weights
    config = json.loads((DEMO / "config.json").read_text())
    assert config["image_size"] <= 128 and config["pose_head"] and config["audio_head"]


def test_bundled_weights_load_strictly_with_their_controls():
    model = X2Face.from_pretrained(DEMO)
    assert model.pose is not None and model.audio is not None
    # trained, not initial: the pose map has learned non-zero weights, BatchNorm statistics have moved
    assert model.pose.to_pose.weight.abs().sum() > 0
    assert any(float(b.abs().sum()) > 0 for n, b in model.named_buffers() if n.endswith("running_mean"))


def test_provenance_says_what_it_was_trained_on(monkeypatch):
    monkeypatch.delenv("X2FACE_DEMO_WEIGHTS", raising=False)
    prov = json.loads((DEMO / "provenance.json").read_text())
    text = json.dumps(prov)
    assert "heldout" not in text  # data/heldout is for measuring only
    assert prov["stage"] in ("I", "II") and prov["pose_head"] and prov["audio_head"]
    # the bundled networks continue earlier runs: the whole chain is recorded (the app shows it)
    assert prov["history"] and sum(h["steps"] for h in prov["history"]) + prov["steps"] >= 5000
    assert set(prov["config"]["data"]["sources"]) == {"synthetic", "real"}
    info = describe(None)
    assert Path(info["weights"]) == DEMO and info["provenance"]["config"] == prov["config"]


def test_pipeline_on_bundled_weights_animates_a_real_photo(pipe):
    from x2face.media import VideoReader

    info = pipe.set_source([EXAMPLES / "photo_a.jpg"])
    assert info is not None
    reader = VideoReader(EXAMPLES / "driving.mp4")
    frames = [d.image for _, d in zip(range(6), pipe.drive_frames(reader))]
    S = pipe.model.config.image_size
    assert len(frames) == 6 and all(f.shape == (S, S, 3) and f.dtype == np.uint8 for f in frames)
    # the output is the source's face (the demo model keeps identity; it moves real faces only a little:
    # README, "The bundled demo model"), not a blank or a colour cast
    crop = info.crops[0].astype(float)
    assert all(np.abs(f.astype(float) - crop).mean() < 25 and f.std() > 20 for f in frames)


def test_bundled_pose_head_turns_the_head(pipe):
    pipe.set_source([EXAMPLES / "photo_a.jpg"])
    left, right = pipe.drive_pose(-25, 0, 0), pipe.drive_pose(25, 0, 0)
    assert left.shape == right.shape
    assert np.abs(left.astype(int) - right.astype(int)).mean() > 1.0


def test_bundled_audio_head_speaks(pipe):
    pipe.set_source([EXAMPLES / "photo_a.jpg"])
    result = pipe.drive_audio(EXAMPLES / "speech.wav")
    frames = np.stack(list(result.frames))
    assert frames.shape[0] == result.num_frames >= 10 and frames.dtype == np.uint8
    assert result.audio.shape[0] / result.sample_rate == pytest.approx(frames.shape[0] / result.fps, abs=2 / result.fps)
    # the mouth follows the voice: the frames are not all the same
    assert np.abs(np.diff(frames.astype(np.int16), axis=0)).mean() > 0.05
