"""Pose control (section 4.1): the maps f_v->p / f_p->v, their fitting, the vector arithmetic, the pipeline
and CLI entry points."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from x2face import X2Face, X2FaceConfig
from x2face.control.pose import (
    POSE_NAMES,
    PoseMaps,
    as_pose,
    drive_pose,
    fit_pose_maps,
    fit_pose_to_vector,
    fit_vector_to_pose,
    pose_path,
    pose_sweep,
    pose_vectors,
    source_pose,
    sweep_poses,
)
from x2face.errors import InputError, WeightsError
from x2face.faces import FaceCropper

from helpers import WholeImage


def pipeline_for(model, photos):
    from x2face.pipeline import X2FacePipeline

    pipe = X2FacePipeline(model, cropper=FaceCropper(model.config.image_size, backend=WholeImage()))
    pipe.set_source(photos)
    return pipe


def linear_data(n=600, d=16, seed=0):
    g = np.random.default_rng(seed)
    v = np.abs(g.normal(size=(n, d))) * g.uniform(0.5, 2.0, size=d)  # non-negative like post-ReLU vectors
    w = g.normal(size=(3, d)) * 5.0
    b = np.array([3.0, -2.0, 1.0])
    return v, w, b


def test_state_dict_names_stay_what_the_release_converter_targets():
    keys = set(PoseMaps(128).state_dict())
    assert keys == {"to_pose.weight", "to_pose.bias", "from_pose.0.weight", "from_pose.1.weight", "from_pose.1.bias",
                    "from_pose.1.running_mean", "from_pose.1.running_var", "from_pose.1.num_batches_tracked"}


def test_l1_fit_recovers_a_linear_map_despite_outliers():
    v, w, b = linear_data()
    g = np.random.default_rng(1)
    p = v @ w.T + b + g.normal(scale=0.05, size=(len(v), 3))
    bad = g.random(len(v)) < 0.15
    p[bad] += g.normal(scale=200.0, size=(int(bad.sum()), 3))  # gross errors, as mislabelled frames
    w_fit, b_fit = fit_vector_to_pose(v, p)
    assert np.abs(w_fit - w).max() < 0.1 and np.abs(b_fit - b).max() < 0.2
    # least squares on the same data is thrown far off: the L1 loss is doing the work
    x = np.concatenate([v, np.ones((len(v), 1))], 1)
    ls = np.linalg.lstsq(x, p, rcond=None)[0]
    assert np.abs(ls[:-1].T - w).max() > 1.0


def test_pose_to_vector_is_the_least_squares_map_in_eval_mode():
    g = np.random.default_rng(2)
    p = g.normal(scale=20.0, size=(400, 3))
    a_true = g.normal(size=(12, 3))
    v = p @ a_true.T + 0.7 + g.normal(scale=0.01, size=(400, 12))
    a, gamma, beta, mean, var = fit_pose_to_vector(p, v)
    maps = PoseMaps(12).eval()
    with torch.no_grad():
        maps.from_pose[0].weight.copy_(torch.from_numpy(a).float())
        bn = maps.from_pose[1]
        bn.weight.copy_(torch.from_numpy(gamma).float())
        bn.bias.copy_(torch.from_numpy(beta).float())
        bn.running_mean.copy_(torch.from_numpy(mean).float())
        bn.running_var.copy_(torch.from_numpy(var).float())
        out = maps.pose_to_vector(torch.from_numpy(p).float()).double().numpy()
    assert np.abs(out - v).max() < 0.1
    assert np.allclose(mean, (p @ a.T).mean(0)) and np.allclose(var, (p @ a.T).var(0))  # what training leaves


def test_vector_arithmetic_properties():
    v, w, b = linear_data(n=800, d=24, seed=3)
    p = v @ w.T + b
    maps = fit_pose_maps(v, p)
    vt = torch.from_numpy(v[:10]).float()
    with torch.no_grad():
        p_src = maps.vector_to_pose(vt)
        # asking for the pose the source already has gives the source back
        torch.testing.assert_close(maps.repose(vt, p_src), vt, atol=1e-4, rtol=1e-4)
        # and the new vector has the asked pose, as f_v->p reads it (f_p->v is fitted on f_v->p's poses)
        target = torch.tensor([[30.0, -10.0, 5.0]])
        moved = maps.repose(vt, target)
        torch.testing.assert_close(maps.vector_to_pose(moved), target.expand(10, 3), atol=0.05, rtol=0.0)
    assert maps.training is False


def test_fit_errors_are_clear():
    with pytest.raises(InputError):
        fit_vector_to_pose(np.zeros((5, 4)), np.zeros((4, 3)))
    with pytest.raises(InputError):
        fit_pose_maps(np.full((10, 4), np.nan), np.zeros((10, 3)))
    with pytest.raises(InputError):
        fit_vector_to_pose(np.zeros((5, 4)), np.zeros((5, 2)))


def test_as_pose_validates():
    assert as_pose([10, -5, 3]).shape == (1, 3)
    for bad in ([1, 2], [float("nan"), 0, 0], [120, 0, 0], [0, 75, 0]):
        with pytest.raises(InputError):
            as_pose(bad)


def test_sweep_and_path_poses():
    poses = sweep_poses((10.0, 5.0, -3.0), "yaw", 40.0, 41)
    assert poses.shape == (41, 3)
    assert float(poses[0, 0]) == pytest.approx(10.0) and float(poses[-1, 0]) == pytest.approx(10.0)
    assert float(poses[:, 0].max()) == pytest.approx(40.0) and float(poses[:, 0].min()) == pytest.approx(-40.0)
    assert torch.all(poses[:, 1] == 5.0) and torch.all(poses[:, 2] == -3.0)
    pitch = sweep_poses((0, 0, 0), "pitch", num_frames=9)
    assert float(pitch[:, 1].abs().max()) == pytest.approx(25.0) and torch.all(pitch[:, 0] == 0)
    with pytest.raises(InputError):
        sweep_poses((0, 0, 0), "tilt")
    with pytest.raises(InputError):
        sweep_poses((0, 0, 0), "roll", amplitude=90.0)
    path = pose_path((0, 0, 0), [(20, 0, 0), (20, 10, 0)], frames_per_move=4, hold=2)
    assert path.shape == (1 + 4 + 4 + 2, 3)
    torch.testing.assert_close(path[4], torch.tensor([20.0, 0.0, 0.0]))
    torch.testing.assert_close(path[-1], torch.tensor([20.0, 10.0, 0.0]))


@pytest.fixture(scope="module")
def posed_model():
    """A tiny random model with a pose head fitted on its own driving vectors of synthetic frames."""
    from x2face.control.fit import collect_pose_pairs, with_heads

    torch.manual_seed(0)
    model = X2Face(X2FaceConfig(image_size=64, base_channels=8)).eval()
    v, p, counts = collect_pose_pairs(model, 24, seed=0)
    assert counts == {"synthetic": 24, "real": 0} and v.shape == (24, 128) and p.shape == (24, 3)
    return with_heads(model, pose=fit_pose_maps(v, p))


def test_with_heads_keeps_the_networks_and_adds_the_maps(posed_model):
    torch.manual_seed(0)
    plain = X2Face(X2FaceConfig(image_size=64, base_channels=8)).eval()  # the fixture's model before the head
    assert posed_model.config.pose_head and posed_model.pose is not None
    for k, val in plain.state_dict().items():
        torch.testing.assert_close(posed_model.state_dict()[k], val)


def test_pose_vectors_and_pipeline_driving(posed_model):
    photo = (np.random.default_rng(0).random((80, 80, 3)) * 255).astype(np.uint8)
    pipe = pipeline_for(posed_model, [photo])
    with torch.no_grad():
        v_src = pipe.source_vector()
        p_src = torch.tensor([source_pose(pipe)])
        torch.testing.assert_close(pose_vectors(posed_model, v_src, p_src), v_src, atol=1e-4, rtol=1e-4)
    assert pose_vectors(posed_model, v_src, torch.zeros(5, 3)).shape == (5, 128)
    frame = drive_pose(pipe, *source_pose(pipe))
    own = next(pipe.drive_vectors(v_src))
    assert frame.dtype == np.uint8 and frame.shape == (64, 64, 3)
    assert np.abs(frame.astype(int) - own.astype(int)).max() <= 1  # the source's own pose: the source's own vector
    turned = drive_pose(pipe, 40.0, 0.0, 0.0)
    assert np.abs(turned.astype(int) - own.astype(int)).mean() > 0.0
    frames = list(pose_sweep(pipe, "roll", 20.0, num_frames=6))
    assert len(frames) == 6 and all(f.shape == (64, 64, 3) for f in frames)
    assert pipe.drive_pose(0, 0, 0).shape == (64, 64, 3)  # the pipeline's own method delegates here
    with pytest.raises(InputError):
        drive_pose(pipe, 0.0, 200.0, 0.0)


def test_driving_without_a_pose_head_says_how_to_get_one(tiny_model):
    photo = np.full((64, 64, 3), 128, np.uint8)
    pipe = pipeline_for(tiny_model, [photo])
    with pytest.raises(WeightsError, match="fit-pose"):
        drive_pose(pipe, 10, 0, 0)


def test_fit_pose_cli_saves_a_copy_with_the_maps(tmp_path, tiny_model):
    from x2face.cli import main
    from x2face.hub import read_provenance

    weights, out = tmp_path / "w", tmp_path / "posed"
    tiny_model.save_pretrained(weights)
    before = (weights / "model.safetensors").read_bytes()
    rc = main(["fit-pose", "--weights", str(weights), "--out", str(out), "--frames", "64", "--val-frames", "16",
               "--real", "none", "--threads", "1"])
    assert rc == 0
    assert (weights / "model.safetensors").read_bytes() == before  # the input is untouched
    loaded = X2Face.from_pretrained(out)  # strict: every tensor of the pose head is there
    assert loaded.config.pose_head and json.loads((out / "config.json").read_text())["pose_head"] is True
    prov = read_provenance(str(out))
    assert prov["pose_head"]["frames"]["synthetic"] == 64 and set(prov["pose_head"]["val_mae_deg"]) == set(POSE_NAMES)
    # an existing, non-empty --out is refused (nothing is overwritten by accident), and so are missing weights
    assert main(["fit-pose", "--weights", str(weights), "--out", str(out), "--frames", "32", "--real", "none"]) == 2
    assert main(["fit-pose", "--weights", str(tmp_path / "nope"), "--out", str(tmp_path / "o2"), "--real", "none"]) == 2
    assert not (tmp_path / "o2").exists()


def test_real_frames_carry_the_landmark_pose(real_dir):
    from x2face.control.fit import real_pose_frames
    from x2face.faces import face_alignment_available

    class PosedWholeImage(WholeImage):  # stands in for face-alignment's 3-D landmarks
        def detect(self, image, region=None, expected_side=None, thorough=False):
            det = super().detect(image, region, expected_side, thorough)[0]
            det.pose = (12.0, -3.0, 4.0)
            return [det]

    got = list(real_pose_frames(real_dir, 64, max_frames=4, detector=PosedWholeImage()))
    frames, poses = torch.cat([f for f, _ in got]), torch.cat([p for _, p in got])
    assert frames.shape[1:] == (3, 64, 64) and len(frames) >= 4 and 0.0 <= float(frames.min()) <= float(frames.max()) <= 1.0
    assert torch.all(poses == torch.tensor([12.0, -3.0, 4.0]))
    if not face_alignment_available():  # without its weights on disk, real frames are skipped, never downloaded
        assert list(real_pose_frames(real_dir, 64)) == []
