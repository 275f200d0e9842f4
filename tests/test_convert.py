"""The converter for the authors' release checkpoints, against the shared fixture."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from x2face import X2Face
from x2face.convert import ConversionError, convert_original, map_pose_files


def _release_state(facts_dir, drop_counters=False):
    sys.path.insert(0, str(facts_dir))
    try:
        from original_layout import seeded_state_dict
    finally:
        sys.path.pop(0)
    keys = json.loads((facts_dir / "original_keys.json").read_text())
    ref = np.load(facts_dir / "original_reference.npz")
    state = seeded_state_dict(keys, int(ref["weight_seed"]))
    if drop_counters:
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    return state, ref


@pytest.fixture(scope="module")
def facts(shared_dir):
    return shared_dir / "facts"


@pytest.mark.slow
@pytest.mark.parametrize("drop_counters", [False, True])
def test_converter_reproduces_release_outputs(tmp_path, facts, drop_counters):
    state, ref = _release_state(facts, drop_counters)
    ckpt = tmp_path / "x2face_model_forpython3.pth"
    torch.save({"state_dict": state, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]}}, ckpt)
    out = tmp_path / "converted"
    proc = subprocess.run([sys.executable, "-m", "x2face", "convert-original", str(ckpt), str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    model = X2Face.from_pretrained(out)
    assert model.num_parameters()["embedding"] == 39_157_760
    images = torch.from_numpy(ref["images"]).permute(0, 3, 1, 2).float() / 255  # [3, 3, 256, 256]
    with torch.no_grad():
        vec = model.driving_vector(images[0:1])
        one = model(images[0:1], images[1:2].unsqueeze(0))
        two = model(images[0:1], images[1:3].unsqueeze(0))
    assert (vec - torch.from_numpy(ref["driving_vector"])).abs().max() < 1e-4
    assert (one - torch.from_numpy(ref["one_source"])).abs().max() < 1e-4
    assert (two - torch.from_numpy(ref["two_sources"])).abs().max() < 1e-4


def test_unmappable_keys_are_named(tmp_path, facts):
    state, _ = _release_state(facts)
    state["pix2pixUnwrapped.netG.model.extra.0.weight"] = torch.zeros(3)
    ckpt = tmp_path / "bad.pth"
    torch.save({"state_dict": state}, ckpt)
    with pytest.raises(ConversionError, match="pix2pixUnwrapped.netG.model.extra.0.weight"):
        convert_original(ckpt, tmp_path / "out")


def test_wrong_shape_is_named(tmp_path, facts):
    state, _ = _release_state(facts)
    key = "pix2pixSampler.netG.model.submodule.up.2.weight"
    state[key] = torch.zeros(64, 99, 3, 3)
    ckpt = tmp_path / "bad.pth"
    torch.save(state, ckpt)  # a bare state dict loads too
    with pytest.raises(Exception, match=r"driving.up.1.conv.weight: file \[64, 99, 3, 3\]"):
        convert_original(ckpt, tmp_path / "out")


def test_pickled_objects_are_refused(tmp_path):
    ckpt = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(3, 3), ckpt)  # a whole pickled module, as some old releases did
    with pytest.raises(ConversionError, match="will not unpickle"):
        convert_original(ckpt, tmp_path / "out")
    for junk in (b"\x00garbage", b"junk\n", b"PK\x03\x04 not a zip", b"\x80\x02}q\x00."):  # (junk\n: a KeyError)
        (tmp_path / "junk.pth").write_bytes(junk)
        with pytest.raises(ConversionError, match="not a readable PyTorch checkpoint"):
            convert_original(tmp_path / "junk.pth", tmp_path / "out")


def test_cli_errors_are_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "x2face", "convert-original", str(tmp_path / "missing.pth"),
                           str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "no such file" in proc.stderr


def test_pose_files_convert_to_degrees_and_yaw_pitch_roll():
    torch.manual_seed(0)
    reg = {"posefrombottle.weight": torch.randn(3, 128), "posefrombottle.bias": torch.randn(3)}
    seq = torch.nn.Sequential(torch.nn.Linear(3, 128, bias=False), torch.nn.BatchNorm1d(128)).eval()
    with torch.no_grad():
        seq[1].running_mean.normal_()
        seq[1].running_var.uniform_(0.5, 2)
    state, notes = map_pose_files(reg, seq.state_dict(), 128)
    from x2face.control.pose import PoseMaps

    maps = PoseMaps(128).eval()
    maps.load_state_dict({k.removeprefix("pose."): v for k, v in state.items()})
    v = torch.rand(5, 128)
    rad_rpy = v @ reg["posefrombottle.weight"].T + reg["posefrombottle.bias"]
    deg_ypr = maps.vector_to_pose(v)
    torch.testing.assert_close(deg_ypr, torch.rad2deg(rad_rpy.flip(1)), rtol=1e-5, atol=1e-4)
    p = torch.randn(5, 3)  # degrees, yaw-pitch-roll
    with torch.no_grad():
        torch.testing.assert_close(maps.pose_to_vector(p), seq(torch.deg2rad(p).flip(1)), rtol=1e-5, atol=1e-5)
    assert len(notes) == 2
    with pytest.raises(ConversionError, match="both"):
        map_pose_files(reg, None, 128)
    assert math.isclose(float(state["pose.to_pose.bias"][0]), math.degrees(float(reg["posefrombottle.bias"][2])),
                        rel_tol=1e-5)
