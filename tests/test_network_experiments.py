"""benchmarks/coarse_flow.py, vector_norm.py and coord_decoder.py: each experiment's patch changes the model it says,
trains, loads its own weights, and undoes itself; they run x2face commands or scripts under the patch.
benchmarks/census_loss.py: its census distance ignores a brightness offset but not a shift, and its patch adds it
to stage I's objective for one training run. benchmarks/held_light.py: under its patch a synthetic pair's driving
frame is lit as its source in head coordinates, and nothing else about the pair changes."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from x2face import X2Face, nets

from helpers import load_benchmark

coarse = load_benchmark("coarse_flow")
vnorm = load_benchmark("vector_norm")
coords = load_benchmark("coord_decoder")
census = load_benchmark("census_loss")
held = load_benchmark("held_light")


def test_the_coarse_path_starts_at_zero_learns_and_is_removed_afterwards(tiny_config, tmp_path):
    torch.manual_seed(0)
    plain = X2Face(tiny_config).eval()
    v = torch.rand(2, tiny_config.vector_dim)
    before = plain.driving.decode(v)
    with coarse.coarse_flow(8):
        patched = X2Face(tiny_config).eval()
        missing, unexpected = patched.load_state_dict(plain.state_dict(), strict=False)
        assert sorted(missing) == ["driving.coarse.bias", "driving.coarse.weight"] and not unexpected
        torch.testing.assert_close(patched.driving.decode(v), before)  # zero-initialised: no change
        patched.driving.decode(v).square().sum().backward()
        assert patched.driving.coarse.weight.grad.abs().sum() > 0  # and it gets gradients
        patched.save_pretrained(tmp_path)
        again = X2Face.from_pretrained(tmp_path)
        assert hasattr(again.driving, "coarse")
    assert not hasattr(X2Face(tiny_config).driving, "coarse")  # the class is itself again
    assert nets.DrivingNetwork.decode.__qualname__ == "DrivingNetwork.decode"


def test_the_vector_norm_keeps_every_unit_alive_learns_and_is_removed_afterwards(tiny_config, tmp_path):
    torch.manual_seed(0)
    plain = X2Face(tiny_config)
    with vnorm.vector_norm():
        patched = X2Face(tiny_config).train()
        missing, unexpected = patched.load_state_dict(plain.state_dict(), strict=False)
        assert sorted(missing) == [f"driving.down.{len(patched.driving.down) - 1}.norm.{k}" for k in
                                   ("bias", "running_mean", "running_var", "weight")]
        assert not unexpected
        size = tiny_config.image_size
        v = patched.driving_vector(torch.rand(8, 3, size, size))
        assert (v > 0).any(0).all()  # normalised over the batch: no unit is zero for all 8 frames
        v.sum().backward()
        assert patched.driving.down[-1].norm.weight.grad.abs().sum() > 0
        patched.save_pretrained(tmp_path)
        again = X2Face.from_pretrained(tmp_path)
        assert isinstance(again.driving.down[-1].norm, torch.nn.BatchNorm2d)
    assert isinstance(X2Face(tiny_config).driving.down[-1].norm, torch.nn.Identity)  # the class is itself again


def test_the_coord_decoder_reads_positions_learns_and_is_removed_afterwards(tiny_config, tmp_path):
    torch.manual_seed(0)
    plain = X2Face(tiny_config)
    with coords.coord_decoder():
        patched = X2Face(tiny_config).train()
        for new, old in zip(patched.driving.up, plain.driving.up):
            assert new.conv.weight.shape == old.conv.weight.shape and type(new.norm) is type(old.norm)
            assert new.coord.weight.shape == (old.conv.out_channels, 2, 3, 3)  # x and y in, the level's channels out
        patched.load_state_dict(plain.state_dict(), strict=False)
        v = torch.rand(2, tiny_config.vector_dim)
        offset = patched.driving.decode(v)
        torch.testing.assert_close(offset, plain.train().driving.decode(v))  # zero-initialised: no change
        assert offset.shape == (2, 2, tiny_config.image_size, tiny_config.image_size)
        offset.square().sum().backward()
        assert patched.driving.up[0].coord.weight.grad.abs().sum() > 0  # the coordinate path learns
        patched.save_pretrained(tmp_path)
        again = X2Face.from_pretrained(tmp_path)
        assert isinstance(again.driving.up[0], coords.CoordUpLevel)
    assert type(X2Face(tiny_config).driving.up[0]) is nets.UpLevel  # the class is itself again


def test_the_experiments_run_a_script_under_their_patch(tmp_path):
    out = tmp_path / "seen.txt"
    script = tmp_path / "probe.py"
    script.write_text("import sys\nfrom x2face import nets\nfrom x2face.config import get_config\n"
                      "d = nets.DrivingNetwork(get_config('tiny'))\n"
                      "open(sys.argv[1], 'w').write(type(d.down[-1].norm).__name__)\n")
    assert vnorm.main(["run", str(script), str(out)]) == 0
    assert out.read_text() == "BatchNorm2d"
    with pytest.raises(SystemExit):  # no command: a usage error, not a traceback
        vnorm.main([])


def test_the_census_distance_ignores_a_brightness_offset_but_not_a_shift():
    torch.manual_seed(0)
    image = census.gaussian_blur(torch.rand(2, 3, 48, 48), 2.0)  # smooth, with structure at several scales
    brighter = image + 0.15  # the same luma differences everywhere
    shifted = torch.roll(image, 3, dims=-1)
    assert census.census_distance(image, image) == 0
    assert census.census_distance(image, brighter) < 1e-6
    assert census.census_distance(image, shifted) > 0.05
    assert census.census_distance(image, image * 0.8) < census.census_distance(image, shifted)  # a gain: small
    assert torch.nn.functional.l1_loss(image, brighter) > torch.nn.functional.l1_loss(image, shifted)  # L1: the reverse


def test_the_census_patch_adds_its_term_to_stage_one_and_is_removed_afterwards(tmp_path):
    from x2face import train

    config = Path(__file__).resolve().parent.parent / "configs" / "test-ddp.toml"
    original = train.X2FaceTask.loss
    args = ["train", str(config), "--set", f'run.out_dir="{tmp_path / "run"}"', "--set", "run.steps=2",
            "--set", "run.val_every=2", "--set", "run.ckpt_every=2"]
    assert census.main(["--weight", "0.5", *args]) == 0
    assert train.X2FaceTask.loss is original  # the class is itself again
    with (tmp_path / "run" / "train.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    for row in rows:  # the objective is L1 + 0.5 * census, and both parts are logged
        assert float(row["census"]) > 0
        assert float(row["loss"]) == pytest.approx(float(row["photometric"]) + 0.5 * float(row["census"]), rel=1e-5)
    with pytest.raises(SystemExit):  # a negative weight: a usage error
        census.main(["--weight", "-1", *args])
    with pytest.raises(SystemExit):
        census.main(["--weight", "0.5"])


def test_held_light_lights_the_driving_frame_as_its_source_and_changes_nothing_else():
    from x2face.data.synthetic import Motion, SyntheticPairs, SyntheticWorld, rotation_matrices

    world, pairs = SyntheticWorld(32), SyntheticPairs("train", 32, num_sources=2, seed=0)
    plain, p = pairs.draw(3, torch.Generator().manual_seed(0), world)
    at = Motion.at
    with held.held_light():
        item, q = pairs.draw(3, torch.Generator().manual_seed(0), world)
    assert Motion.at is at  # the class is itself again

    def local(params):  # [B, 3]: the light in head coordinates
        return (rotation_matrices(params.pose).transpose(1, 2) @ params.light.unsqueeze(-1)).squeeze(-1)

    first = q["sources"].index(torch.arange(0, 6, 2))  # each item's first source frame (sources are item-major)
    torch.testing.assert_close(local(q["driving"]), local(first))
    torch.testing.assert_close(local(q["sources"].index(torch.arange(1, 6, 2))), local(first))
    assert (q["driving"].light - p["driving"].light).abs().max() > 0.01  # it did change the light
    torch.testing.assert_close(first.light, p["sources"].index(torch.arange(0, 6, 2)).light)  # frame 0: as drawn
    for name in ("sources", "driving", "driving_other"):  # pose, shift, zoom, mouth, eyelids: as drawn
        for field in ("pose", "translation", "zoom", "mouth", "blink"):
            torch.testing.assert_close(getattr(q[name], field), getattr(p[name], field))
    torch.testing.assert_close(q["driving_other"].light, p["driving_other"].light)  # one frame per video: as is
    torch.testing.assert_close(item["sources"][:, 0], plain["sources"][:, 0])  # the first source renders as before
