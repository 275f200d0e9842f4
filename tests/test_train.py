"""Training (x2face.train): configs, deterministic batches, stage I/II, the identity network, checkpoints and
resume, and a 2-process torchrun that is killed and resumed."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from x2face import X2Face, X2FaceConfig
from x2face.errors import ConfigError
from x2face.identity import IdentityConfig, IdentityNetwork
from x2face.train import (
    PairStream,
    WeightAverage,
    cosine_factor,
    cpu_threads,
    load_config,
    load_identity_config,
    main,
    main_identity,
    mix_seed,
    read_toml,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
TEST_CONFIG = CONFIGS / "test-ddp.toml"


def _toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _curve(run: Path) -> list[tuple[int, float, str]]:
    """(step, loss, lr) of every train.csv row: what must not change when a run is killed and resumed."""
    return [(int(r["step"]), float(r["loss"]), r["lr"]) for r in _rows(run / "train.csv")]


def _frames_tree(root: Path, identities: int = 3, frames: int = 4) -> Path:
    """A VoxCeleb1-style tree of pre-cropped frames: ROOT/id/video/clip/*.png."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(identities):
        folder = root / f"id{i}" / "vid" / "00001"
        folder.mkdir(parents=True)
        base = rng.integers(0, 255, (1, 1, 3))
        for f in range(frames):
            img = np.clip(base + rng.integers(-20, 20, (48, 48, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(folder / f"{f}.png")
    return root


# ------------------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_committed_configs_validate(path):
    data = read_toml(path)
    cfg = load_identity_config(path) if "network" in data else load_config(path)
    assert cfg.to_dict()["run"]["steps"] >= 1


def test_unknown_keys_wrong_types_and_names_are_errors(tmp_path):
    cases = {
        "[optim]\nlrr = 0.1\n": r"unknown key\(s\) in \[optim\]: lrr",
        "[run]\nsteps = \"10\"\n": r"\[run\] steps must be an integer",
        "[modle]\nname = \"tiny\"\n": r"unknown section\(s\) modle",
        "[model]\nname = \"huge\"\n": r"\[model\] unknown config 'huge'",
        "[model]\nname = \"tiny\"\nbase_chanels = 4\n": r"\[model\].*base_chanels",
        "[stage]\nstage = \"II\"\n": "identity_network",
        "[stage]\nsame_layers = [\"conv9\"]\n": "conv9",
        "[optim]\nname = \"lion\"\n": "sgd, adam, adamw",
        "[data]\nsources = [\"real\"]\n": "manifests",
        "[stage]\nblur_sigmas = [2.0, 0.0]\n": "blur_sigmas",
        "[stage]\nblur_sigmas = [\"2\"]\n": "blur_sigmas",
        "[stage]\nblur_weight = -1.0\n": "blur_weight",
    }
    for text, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            load_config(_toml(tmp_path / "c.toml", text))
    with pytest.raises(ConfigError, match="num_identities is set from the data"):
        load_identity_config(_toml(tmp_path / "i.toml", "[network]\nnum_identities = 3\n"))
    with pytest.raises(ConfigError, match="widht"):
        load_identity_config(_toml(tmp_path / "i.toml", "[network]\nwidht = 3\n"))


def test_base_files_and_overrides(tmp_path):
    child = _toml(tmp_path / "child.toml", f'base = "{TEST_CONFIG}"\n[optim]\nlr = 0.5\n')
    cfg = load_config(child, ["run.steps=3", "run.out_dir=somewhere", "data.sources=['synthetic']"])
    assert cfg.model == X2FaceConfig(image_size=64, base_channels=8)  # from the base file
    assert cfg.optim.lr == 0.5 and cfg.optim.batch_size == 4
    assert cfg.run.steps == 3 and cfg.run.out_dir == "somewhere"
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(child, ["steps=3"])


def test_threads_follow_the_precision_a_cpu_run_trains_in(monkeypatch):
    """The demo recipe trains float32 on every core but bf16 (AMX) on one: ``run.threads_amx`` applies only where
    ``run.bf16_cpu`` autocasts, and never on a GPU."""
    import x2face.fast

    cfg = load_config(CONFIGS / "demo.toml")
    assert (cfg.run.threads, cfg.run.threads_amx, cfg.run.bf16_cpu) == (0, 1, True)
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    monkeypatch.setattr(x2face.fast, "cpu_has_amx", lambda: False)
    assert cpu_threads(cfg.run, cpu) == 0  # float32: torch's default, one thread per core
    monkeypatch.setattr(x2face.fast, "cpu_has_amx", lambda: True)
    assert cpu_threads(cfg.run, cpu) == 1 and cpu_threads(cfg.run, gpu) == 0
    no_bf16 = load_config(CONFIGS / "demo.toml", ["run.bf16_cpu=false", "run.threads=3"])
    assert cpu_threads(no_bf16.run, cpu) == 3
    unset = load_config(CONFIGS / "demo.toml", ["run.threads_amx=0", "run.threads=2"])
    assert cpu_threads(unset.run, cpu) == 2
    with pytest.raises(ConfigError, match="threads_amx must be >= 0"):
        load_config(CONFIGS / "demo.toml", ["run.threads_amx=-1"])


def test_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    from x2face.cli import main as cli

    assert cli(["train", str(tmp_path / "missing.toml")]) == 2
    assert "no config file" in capsys.readouterr().err
    (tmp_path / "utf16.toml").write_bytes("[run]\nsteps = 3\n".encode("utf-16"))  # Notepad's "Unicode"
    for path, message in [(tmp_path / "utf16.toml", "is not valid TOML: not UTF-8 text"),
                          (tmp_path, "is a folder, not a config file")]:
        assert cli(["train", str(path)]) == 2
        err = capsys.readouterr().err
        assert message in err and "internal error" not in err, err
    assert cli(["train", str(TEST_CONFIG), "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["name"] == "tiny"


# ------------------------------------------------------------------------------------------------ batches
class _Fake:
    """A dataset with ``batch(n, generator)`` whose frames are the generator's draws (for the stream's maths)."""

    def __init__(self, label: int) -> None:
        self.label = label

    def batch(self, n, g):
        x = torch.rand(n, 3, 8, 8, generator=g)
        return {"sources": x[:, None], "driving": x, "driving_other": x, "identity": torch.full((n,), self.label),
                "identity_other": torch.full((n,), self.label)}


def test_pair_streams_are_functions_of_seed_step_and_rank():
    def stream(rank, seed=1):
        return PairStream(_Fake(0), _Fake(1), 8, 0.25, seed, rank)

    a, b = stream(0).batch(5), stream(0).batch(5)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a["driving"], stream(0).batch(6)["driving"])
    assert not torch.equal(a["driving"], stream(1).batch(5)["driving"])
    assert not torch.equal(a["driving"], stream(0, seed=2).batch(5)["driving"])
    assert a["is_real"].tolist() == [False] * 6 + [True] * 2 and a["identity"].tolist() == [0] * 6 + [1] * 2
    assert mix_seed(1, 2, 3) == mix_seed(1, 2, 3) != mix_seed(1, 3, 2)


class _Video(_Fake):
    """Like ``_Fake`` but the driving frame differs from the source frame."""

    def batch(self, n, g):
        b = super().batch(n, g)
        return {**b, "driving": 1.0 - b["driving"]}


@pytest.mark.parametrize("fraction,replaced", [(0.0, []), (0.25, [3, 7]), (0.5, [1, 3, 5, 7]), (1.0, list(range(8)))])
def test_same_frame_pairs_drive_the_source_with_itself(fraction, replaced):
    plain = PairStream(_Video(0), _Video(1), 8, 0.25, 1, 0).batch(4)
    mixed = PairStream(_Video(0), _Video(1), 8, 0.25, 1, 0, same_frame_fraction=fraction).batch(4)
    same = [i for i in range(8) if torch.equal(mixed["driving"][i], mixed["sources"][i, 0])]
    assert same == replaced  # spread over the batch: the real pairs (6, 7) get their share too
    for i in range(8):
        want = plain["sources"][i, 0] if i in replaced else plain["driving"][i]
        torch.testing.assert_close(mixed["driving"][i], want)
    torch.testing.assert_close(mixed["sources"], plain["sources"])
    torch.testing.assert_close(mixed["driving_other"], plain["driving_other"])
    with pytest.raises(ConfigError, match="same_frame_fraction"):
        load_config(TEST_CONFIG, ["data.same_frame_fraction=1.5"])


# ------------------------------------------------------------------------------------------------ runs
def _run(tmp_path: Path, name: str, *extra: str, entry=main, config: Path = TEST_CONFIG) -> tuple[int, Path]:
    out = tmp_path / name
    code = entry([str(config), "--set", f'run.out_dir="{out}"', *extra])
    return code, out


def test_stage1_run_writes_logs_checkpoint_and_weights(tmp_path):
    code, out = _run(tmp_path, "a", "--set", "run.steps=3", "--set", "run.tensorboard=true")
    assert code == 0
    rows = _rows(out / "train.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert {"loss", "photometric", "source_baseline_l1", "lr", "images_per_s"} <= set(rows[0])
    assert [int(r["step"]) for r in _rows(out / "val.csv")] == [3]
    assert any((out / "tb").iterdir())
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3 and ckpt["kind"] == "x2face"
    model = X2Face.from_pretrained(out / "weights")
    assert model.config == X2FaceConfig(image_size=64, base_channels=8)
    prov = json.loads((out / "weights" / "provenance.json").read_text())
    assert prov["steps"] == 3 and prov["stage"] == "I" and prov["data"]["sources"] == ["synthetic"]
    with pytest.raises(ConfigError, match="--resume"):
        _run(tmp_path, "a")


def test_bf16_on_a_cpu_only_with_amx(tmp_path, monkeypatch, capsys):
    """run.bf16_cpu autocasts a CPU run to bf16 where the CPU has AMX, and falls back to float32 with a note."""
    import x2face.fast

    steps = ["--set", "run.steps=3", "--set", "run.val_batches=0"]
    assert _run(tmp_path, "fp32", *steps)[0] == 0
    monkeypatch.setattr(x2face.fast, "cpu_has_amx", lambda: False)
    assert _run(tmp_path, "no-amx", *steps, "--set", "run.bf16_cpu=true")[0] == 0
    assert "no AMX" in capsys.readouterr().err
    assert _curve(tmp_path / "no-amx") == _curve(tmp_path / "fp32")  # float32 after all: the same run
    monkeypatch.setattr(x2face.fast, "cpu_has_amx", lambda: True)
    assert _run(tmp_path, "bf16", *steps, "--set", "run.bf16_cpu=true")[0] == 0
    fp32, bf16 = _curve(tmp_path / "fp32"), _curve(tmp_path / "bf16")
    assert [r[0] for r in bf16] == [1, 2, 3] and bf16 != fp32  # bf16 arithmetic: other losses ...
    assert all(abs(a[1] - b[1]) < 0.05 * a[1] for a, b in zip(fp32, bf16))  # ... within a few per cent


def test_stop_and_resume_repeat_the_uninterrupted_run(tmp_path):
    assert _run(tmp_path, "full")[0] == 0
    code, out = _run(tmp_path, "cut", "--set", "run.stop_after=3")
    assert code == 0  # stop_after is a requested stop
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 3
    assert not (out / "weights").exists()
    assert _run(tmp_path, "cut", "--resume")[0] == 0
    assert _curve(tmp_path / "full") == _curve(out) and len(_curve(out)) == 6
    assert _rows(tmp_path / "full" / "val.csv") == _rows(out / "val.csv")
    a, b = load_file(tmp_path / "full" / "weights" / "model.safetensors"), load_file(out / "weights" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match=r"\[model\] differs"):
        _run(tmp_path, "cut", "--resume", "--set", "model.base_channels=4")


def test_max_minutes_ends_the_run_with_weights_and_resume_finishes_it(tmp_path):
    assert _run(tmp_path, "full")[0] == 0
    code, out = _run(tmp_path, "cut", "--set", "run.max_minutes=1e-9")  # spent after the first step
    assert code == 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 1
    assert [int(r["step"]) for r in _rows(out / "val.csv")] == [1]  # the early end validates like a last step
    prov = json.loads((out / "weights" / "provenance.json").read_text())
    assert prov["steps"] == 1 and prov["stopped_by"] == "max_minutes" and prov["planned_steps"] == 6
    assert _run(tmp_path, "cut", "--resume", "--set", "run.max_minutes=0")[0] == 0
    assert _curve(tmp_path / "full") == _curve(out)  # the plain SGD schedule does not see the extra validation
    prov = json.loads((out / "weights" / "provenance.json").read_text())
    assert prov["steps"] == 6 and "stopped_by" not in prov
    with pytest.raises(ConfigError, match="max_minutes"):
        _run(tmp_path, "bad", "--set", "run.max_minutes=-1")


def test_weight_average_warms_up_then_decays_and_copies_counters():
    state = {"w": torch.zeros(3), "n": torch.tensor(0)}
    avg = WeightAverage(state, 0.9)
    assert avg.factor() == pytest.approx(2 / 11)  # warm-up: (1 + n) / (10 + n) for update n = 1
    expect = torch.zeros(3)
    for step in range(1, 100):
        now = {"w": torch.full((3,), float(step)), "n": torch.tensor(step)}
        d = min(0.9, (1 + step) / (10 + step))
        assert avg.factor() == pytest.approx(d)
        avg.update(now)
        expect = d * expect + (1 - d) * now["w"]
        assert torch.allclose(avg.average["w"], expect) and int(avg.average["n"]) == step
    assert avg.factor() == 0.9  # past the warm-up (n >= 80)
    assert 99 - 10 < avg.average["w"][0] < 99 - 5  # an average lags the weights it follows (by ~9 steps here)
    copy = WeightAverage({"w": torch.zeros(3), "n": torch.tensor(0)}, 0.9)
    copy.load_state_dict(avg.state_dict())
    assert copy.updates == 99 and torch.equal(copy.average["w"], avg.average["w"])
    with pytest.raises(ConfigError, match="ema_decay"):
        load_config(TEST_CONFIG, ["optim.ema_decay=1.0"])


def test_ema_exports_the_weight_average_and_resumes_it_exactly(tmp_path):
    ema = ("--set", "optim.ema_decay=0.5", "--set", "optim.lr=0.05")
    assert _run(tmp_path, "plain", "--set", "optim.lr=0.05")[0] == 0
    assert _run(tmp_path, "full", *ema)[0] == 0
    full = tmp_path / "full"
    assert _curve(full) == _curve(tmp_path / "plain")  # the average does not touch training
    ckpt = torch.load(full / "checkpoint.pt", weights_only=True)
    exported = load_file(full / "weights" / "model.safetensors")
    last, average = ckpt["model"], ckpt["ema"]["average"]
    assert ckpt["ema"]["updates"] == 6
    key = next(k for k in exported if k.endswith("weight") and k in last)
    assert torch.equal(exported[key], average[key]) and not torch.equal(exported[key], last[key])
    prov = json.loads((full / "weights" / "provenance.json").read_text())
    assert "moving average" in prov["weights"] and "ema_loss" in prov["final_val"]
    val = _rows(full / "val.csv")
    assert [int(r["step"]) for r in val] == [3, 6] and all(float(r["ema_loss"]) > 0 for r in val)
    # the weights a killed and resumed run exports are the uninterrupted run's
    code, out = _run(tmp_path, "cut", *ema, "--set", "run.stop_after=3")
    assert code == 0 and _run(tmp_path, "cut", *ema, "--resume")[0] == 0
    assert _curve(full) == _curve(out) and _rows(full / "val.csv") == _rows(out / "val.csv")
    resumed = load_file(out / "weights" / "model.safetensors")
    assert all(torch.equal(exported[k], resumed[k]) for k in exported)


def test_cosine_factor_warms_up_then_decays_to_the_floor():
    assert [cosine_factor(s, 10, 2, 0.0) for s in (0, 1)] == [0.5, 1.0]  # linear warm-up
    assert cosine_factor(2, 10, 2, 0.0) == 1.0
    assert cosine_factor(6, 10, 2, 0.0) == pytest.approx(0.5)  # half way through the decay
    assert cosine_factor(10, 10, 2, 0.1) == pytest.approx(0.1)
    assert cosine_factor(50, 10, 2, 0.1) == pytest.approx(0.1)  # stays at the floor past the end
    decay = [cosine_factor(s, 100, 0, 0.01) for s in range(101)]
    assert all(a > b for a, b in zip(decay, decay[1:]))


def test_cosine_schedule_lowers_the_lr_every_step_and_resumes_exactly(tmp_path):
    cosine = ("--set", 'optim.schedule="cosine"', "--set", "optim.min_lr=1e-4", "--set", "optim.warmup_steps=1")
    assert _run(tmp_path, "full", *cosine)[0] == 0
    lrs = [float(r["lr"]) for r in _rows(tmp_path / "full" / "train.csv")]
    expected = [1e-3 * cosine_factor(s, 6, 1, 0.1) for s in range(1, 7)]  # the lr after each of the 6 steps
    assert lrs == pytest.approx(expected, rel=1e-4)
    assert lrs[-1] == pytest.approx(1e-4) and lrs[0] == pytest.approx(1e-3)
    code, out = _run(tmp_path, "cut", *cosine, "--set", "run.stop_after=3")
    assert code == 0 and _run(tmp_path, "cut", *cosine, "--resume")[0] == 0
    assert _curve(tmp_path / "full") == _curve(out)
    with pytest.raises(ConfigError, match="schedule must be one of"):
        _run(tmp_path, "bad", "--set", 'optim.schedule="linear"')


def test_real_clips_mix_into_batches(tmp_path):
    tree = _frames_tree(tmp_path / "vox")
    code, out = _run(tmp_path, "mix", "--set", "run.steps=2", "--set", "data.sources=['synthetic','real']",
                     "--set", f"data.voxceleb_roots=['{tree}']", "--set", "data.split_fractions=[1.0, 0.0, 0.0]",
                     "--set", 'data.real_val_split="train"', "--set", f'data.cache_dir="{tmp_path / "cache"}"',
                     "--set", "data.real_fraction=0.5")
    assert code == 0
    prov = json.loads((out / "weights" / "provenance.json").read_text())
    assert prov["data"]["real"]["identities"] == 3 and prov["data"]["real"]["real_fraction"] == 0.5
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3


def test_prepare_data_only_fills_the_crop_cache(tmp_path):
    tree = _frames_tree(tmp_path / "vox")
    code, out = _run(tmp_path, "prep", "--prepare-data", "--set", "data.sources=['real']",
                     "--set", f"data.voxceleb_roots=['{tree}']", "--set", "data.split_fractions=[1.0, 0.0, 0.0]",
                     "--set", f'data.cache_dir="{tmp_path / "cache"}"')
    assert code == 0 and not out.exists()
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3


def _identity_net(folder: Path, image_size: int = 64) -> Path:
    torch.manual_seed(0)
    IdentityNetwork(IdentityConfig(image_size=image_size, width=4, fc_dim=16, pool_size=2, num_identities=3,
                                   batch_norm=True)).save_pretrained(folder)
    return folder


def _frames_manifest(root: Path) -> Path:
    """A manifest of pre-cropped frame folders with explicit splits: ann, dee (train), bob, eve (val), cy (test)."""
    from PIL import Image

    rng = np.random.default_rng(1)
    lines = ["file\tkind\tidentity\tsplit"]
    for ident, split in (("ann", "train"), ("bob", "val"), ("cy", "test"), ("dee", "train"), ("eve", "val")):
        folder = root / "vox1-frames" / ident
        folder.mkdir(parents=True)
        for f in range(3):
            smooth = Image.fromarray(rng.integers(0, 255, (5, 5, 3), dtype=np.uint8)).resize((40, 40), Image.BILINEAR)
            smooth.save(folder / f"{f}.png")  # a smooth picture, like a face crop (noise is JPEG's worst case)
            lines.append(f"vox1-frames/{ident}/{f}.png\tphoto\t{ident}\t{split}")
    (root / "MANIFEST.tsv").write_text("\n".join(lines) + "\n")
    return root / "MANIFEST.tsv"


def test_export_crops_writes_a_portable_copy_of_the_train_and_val_clips(tmp_path):
    from x2face.data.video import cached_frames, load_clips

    manifest = _frames_manifest(tmp_path / "data")
    data = ("--set", "data.sources=['synthetic','real']", "--set", f"data.manifests=['{manifest}']",
            "--set", f'data.cache_dir="{tmp_path / "cache"}"')
    export = tmp_path / "export"
    assert _run(tmp_path, "x", "--export-crops", str(export), *data)[0] == 0
    clips = load_clips([export / "MANIFEST.tsv"], frame_folders=["frames"])
    assert sorted((c.identity, c.split, len(c.frames)) for c in clips) == [("ann", "train", 3), ("bob", "val", 3),
                                                                           ("dee", "train", 3), ("eve", "val", 3)]
    original = {c.identity: c for c in load_clips([manifest])}
    for clip in clips:  # the same 64-px crops, up to JPEG's loss
        a = cached_frames(clip, 64, 1.0, "face", tmp_path / "cache2").astype(float)
        b = cached_frames(original[clip.identity], 64, 1.0, "face", tmp_path / "cache").astype(float)
        assert a.shape == b.shape == (3, 64, 64, 3) and np.abs(a - b).mean() < 2
    with pytest.raises(ConfigError, match="exists"):  # never written over
        _run(tmp_path, "x", "--export-crops", str(export), *data)
    code, out = _run(tmp_path, "from-export", "--set", "run.steps=2", "--set", "data.sources=['synthetic','real']",
                     "--set", f"data.manifests=['{export / 'MANIFEST.tsv'}']", "--set", "data.frame_folders=['frames']",
                     "--set", f'data.cache_dir="{tmp_path / "cache2"}"')
    assert code == 0
    prov = json.loads((out / "weights" / "provenance.json").read_text())
    assert prov["data"]["real"]["identities"] == 2  # ann and dee: bob and eve validate


@pytest.mark.slow
def test_gpu_recipe_runs_its_four_timed_steps_from_exported_crops(tmp_path):
    """configs/demo-gpu.sh on the CPU (DEVICE=cpu, minutes cut to seconds), in a copy holding only configs/."""
    import shutil
    import tarfile

    manifest = _frames_manifest(tmp_path / "data")
    data = ("--set", "data.sources=['synthetic','real']", "--set", f"data.manifests=['{manifest}']",
            "--set", f'data.cache_dir="{tmp_path / "cache"}"')
    assert _run(tmp_path, "x", "--export-crops", str(tmp_path / "repo" / "crops"), *data)[0] == 0
    shutil.copytree(CONFIGS, tmp_path / "repo" / "configs")
    env = {**os.environ, "DEVICE": "cpu", "DATA": "crops", "OUT": str(tmp_path / "out"), "PYTHON": sys.executable,
           "ID_MIN": "0.002", "S1_MIN": "0.002", "MORE_MIN": "0.002", "S2_MIN": "5",
           "TRAIN_ARGS": "--set run.val_batches=1 --set data.synthetic_identities=64"}
    proc = subprocess.run(["bash", str(tmp_path / "repo" / "configs" / "demo-gpu.sh")], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr + (tmp_path / "out" / "demo-gpu.log").read_text()
    runs = tmp_path / "runs"
    for name in ("demo-identity", "demo-stage1", "demo-stage1-more", "demo-stage2"):
        with tarfile.open(tmp_path / "out" / f"{name}.tar") as tar:
            assert not any(n.endswith("checkpoint.pt") for n in tar.getnames())
            tar.extractall(runs, filter="data")
    prov = {n: json.loads((runs / n / "weights" / "provenance.json").read_text())
            for n in ("demo-stage1", "demo-stage1-more", "demo-stage2")}
    assert prov["demo-stage1"]["stopped_by"] == "max_minutes" and prov["demo-stage1"]["batch_size"] == 64
    assert prov["demo-stage2"]["stage"] == "II" and "stopped_by" not in prov["demo-stage2"]
    assert prov["demo-stage2"]["steps"] == prov["demo-stage1-more"]["steps"]  # the equal-steps comparison
    X2Face.from_pretrained(runs / "demo-stage1-more" / "weights")


def test_stage2_starts_from_stage1_weights_with_identity_losses(tmp_path):
    torch.manual_seed(0)
    X2Face(X2FaceConfig(image_size=64, base_channels=8)).save_pretrained(tmp_path / "stage1")
    ident = _identity_net(tmp_path / "identity")
    stage2 = ["--set", 'stage.stage="II"', "--set", f'stage.init_from="{tmp_path / "stage1"}"',
              "--set", f'stage.identity_network="{ident}"', "--set", "run.steps=2", "--set", "optim.lr=1e-4"]
    code, out = _run(tmp_path, "s2", *stage2)
    assert code == 0
    row = _rows(out / "train.csv")[0]
    for name in ("photometric", "same/conv2", "same/conv7", "other/conv6", "other/conv7"):
        assert float(row[name]) > 0, name
    assert float(row["loss"]) == pytest.approx(float(row["photometric"]) * (1 + 5 + 0.2), rel=1e-4)
    start = load_file(tmp_path / "stage1" / "model.safetensors")
    end = load_file(out / "weights" / "model.safetensors")
    assert any(not torch.equal(start[k], end[k]) for k in start)
    with pytest.raises(ConfigError, match="init_from"):
        _run(tmp_path, "s2b", *stage2, "--set", "model.base_channels=4")


def test_blurred_photometric_terms_render_blurred_sources_through_the_same_warps():
    """[stage] blur_sigmas: the extra renders are the blurred sources through the model's own two warps (K = 1
    and K = 3), g_dA and g_dR are unchanged, and a blurred term alone trains both networks."""
    from x2face.losses import gaussian_blur
    from x2face.train import GeneratorStep
    from x2face.warp import warp

    torch.manual_seed(0)
    model = X2Face(X2FaceConfig(image_size=64, base_channels=8)).eval()
    drv, other = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    for k in (1, 3):
        src = torch.rand(2, k, 3, 64, 64)
        with torch.no_grad():
            g, g_other, blurred = GeneratorStep(model, [1.5, 4.0])(src, drv, other)
            assert torch.equal(g, model(drv, src)) and torch.equal(g_other, model(other, src))
            assert GeneratorStep(model)(src, drv)[2] == []
            for sigma, render in zip([1.5, 4.0], blurred):
                soft = gaussian_blur(src.flatten(0, 1), sigma).reshape(src.shape)  # [B*K, 3, S, S] -> [B, K, 3, S, S]
                want = warp(model.embed(soft), model.driving_grid(model.driving_vector(drv)))
                # the soft frames' own embedding warps differ; carried frames move with the sharp frames' warps
                emb = model.embed_with_confidence(src, soft)
                assert torch.allclose(render, warp(emb.carried, model.driving_grid(model.driving_vector(drv))), atol=1e-6)
                assert not torch.allclose(render, want, atol=1e-3)
                assert (render - g).abs().mean() > 1e-3  # blurred, not the sharp render
    with pytest.raises(Exception, match="carry"):
        model.embed_with_confidence(torch.rand(1, 2, 3, 64, 64), torch.rand(1, 3, 3, 64, 64))
    model.train()
    src = torch.rand(2, 1, 3, 64, 64)
    _, _, (soft,) = GeneratorStep(model, [3.0])(src, drv)
    (soft - gaussian_blur(drv, 3.0)).abs().mean().backward()
    for net in (model.embedding, model.driving):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_gaussian_blur_keeps_mean_and_shape_and_smooths_an_edge():
    from x2face.losses import gaussian_blur

    x = torch.zeros(1, 2, 32, 32)
    x[:, :, :, 16:] = 1.0  # a vertical edge
    y = gaussian_blur(x, 2.0)
    assert y.shape == x.shape and torch.allclose(y.mean(), x.mean(), atol=1e-6)
    row = y[0, 0, 10]
    assert torch.all(row[1:] >= row[:-1] - 1e-6) and 0.3 < float(row[16]) < 0.8 and float(row[15]) > 0.05
    flat = torch.full((1, 3, 16, 16), 0.25)
    assert torch.allclose(gaussian_blur(flat, 5.0), flat, atol=1e-6)  # replicated edges: a flat image stays flat


def test_a_run_with_blur_sigmas_logs_each_term(tmp_path):
    code, out = _run(tmp_path, "blur", "--set", "run.steps=2", "--set", "stage.blur_sigmas=[2.0, 4.0]",
                     "--set", "stage.blur_weight=0.5")
    assert code == 0
    row = _rows(out / "train.csv")[0]
    terms = float(row["blur_l1_2"]) + float(row["blur_l1_4"])
    assert float(row["blur_l1_4"]) > 0 and float(row["loss"]) == pytest.approx(float(row["photometric"]) + 0.5 * terms,
                                                                                rel=1e-5)
    assert json.loads((out / "weights" / "provenance.json").read_text())["config"]["stage"]["blur_sigmas"] == [2.0, 4.0]


def test_provenance_keeps_the_history_of_continued_runs(tmp_path):
    """Weights trained from other trained weights record every earlier run (what the app shows)."""
    from x2face.app_helpers import training_summary

    code, first = _run(tmp_path, "first", "--set", "run.steps=3")
    assert code == 0 and json.loads((first / "weights" / "provenance.json").read_text())["history"] == []
    code, second = _run(tmp_path, "second", "--set", f'stage.init_from="{first / "weights"}"', "--set", "run.steps=2",
                        "--set", "optim.lr=1e-4")
    assert code == 0
    code, third = _run(tmp_path, "third", "--set", f'stage.init_from="{second / "weights"}"', "--set", "run.steps=1")
    assert code == 0
    prov = json.loads((third / "weights" / "provenance.json").read_text())
    assert [(h["steps"], h["lr"]) for h in prov["history"]] == [(3, 1e-3), (2, 1e-4)]
    assert prov["history"][1]["init_from"] == str(first / "weights")
    assert "6 steps: 3 (stage I) + 2 (stage I) + 1 (stage I)" in training_summary(prov)


def test_train_identity_classifies_synthetic_and_real_identities(tmp_path):
    tree = _frames_tree(tmp_path / "vox")
    cfg = _toml(tmp_path / "id.toml", f"""
[network]
image_size = 64
width = 4
fc_dim = 16
pool_size = 2
batch_norm = true
[data]
sources = ["synthetic", "real"]
synthetic_identities = 5
voxceleb_roots = ["{tree}"]
split_fractions = [1.0, 0.0, 0.0]
cache_dir = "{tmp_path / 'cache'}"
[optim]
batch_size = 4
[run]
steps = 3
val_every = 3
val_batches = 1
log_every = 1
device = "cpu"
tensorboard = false
progress = false
""")
    code, out = _run(tmp_path, "id", entry=main_identity, config=cfg)
    assert code == 0
    net = IdentityNetwork.from_pretrained(out / "weights")
    assert net.config.num_identities == 5 + 3 and net.config.width == 4
    assert {"cross_entropy", "accuracy"} <= set(_rows(out / "train.csv")[0])
    prov = json.loads((out / "weights" / "provenance.json").read_text())
    assert prov["classes"] == {"synthetic": 5, "real": 3}


# ------------------------------------------------------------------------------------------------ torchrun
def _torchrun(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "x2face", "train", str(TEST_CONFIG), "--set", f'run.out_dir="{out}"', *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


@pytest.mark.slow
def test_torchrun_two_processes_killed_and_resumed_repeat_the_uninterrupted_run(tmp_path):
    """2 ranks (gloo, CPU): a run killed with SIGTERM mid-way and resumed gives the uninterrupted loss curve."""
    steps = ["--set", "run.steps=12", "--set", "run.ckpt_every=4"]
    code, log = _finish(_torchrun(tmp_path / "full", *steps))
    assert code == 0, log[-3000:]
    assert "weights:" in log and "processes" in json.loads((tmp_path / "full" / "weights" / "provenance.json").read_text())

    cut = tmp_path / "cut"
    proc = _torchrun(cut, *steps)
    deadline = time.time() + 90
    while not (cut / "checkpoint.pt").is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be killed"
    proc.send_signal(signal.SIGTERM)  # torchrun forwards it to both ranks, which agree on a step and checkpoint
    code, log = _finish(proc)
    assert "stopped at step" in log, log[-3000:]
    stopped = torch.load(cut / "checkpoint.pt", weights_only=True)["step"]
    assert 4 <= stopped < 12
    assert len(_curve(cut)) == stopped

    code, log = _finish(_torchrun(cut, *steps, "--resume"))
    assert code == 0, log[-3000:]
    assert f"resuming {cut / 'checkpoint.pt'} at step {stopped}" in log
    assert _curve(cut) == _curve(tmp_path / "full") and len(_curve(cut)) == 12
    a = load_file(tmp_path / "full" / "weights" / "model.safetensors")
    b = load_file(cut / "weights" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_identity_flow_init_starts_from_the_source_frame():
    """run.flow_init = "identity": before any step, generated == the source frame (both warps are the identity)."""
    from x2face.train import FLOW_INITS

    torch.manual_seed(0)
    model = X2Face(X2FaceConfig(image_size=64, base_channels=8)).eval()
    FLOW_INITS["identity"](model)
    src = torch.rand(2, 1, 3, 64, 64)
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64), src)
    torch.testing.assert_close(out, src[:, 0], atol=5e-5, rtol=0)  # two identity resamplings: float rounding only
    with pytest.raises(ConfigError, match="flow_init"):
        load_config(TEST_CONFIG, ["run.flow_init='zeros'"])


def test_synthetic_identity_pool(tmp_path):
    code, out = _run(tmp_path, "pool", "--set", "run.steps=2", "--set", "data.synthetic_identities=8",
                     "--set", 'run.flow_init="identity"')
    assert code == 0
    assert json.loads((out / "weights" / "provenance.json").read_text())["steps"] == 2
    with pytest.raises(ConfigError, match="synthetic_identities"):
        _run(tmp_path, "bad", "--set", "data.synthetic_identities=1")


def test_grouped_items_embed_each_source_once_with_the_same_loss_and_gradients():
    """data.drivers_per_source: embedding each group's sources once gives the loss and gradients of embedding
    every item's copy, in train mode too (BatchNorm's batch statistics ignore duplicates); eval mode (validation)
    embeds every item."""
    from x2face.train import GeneratorStep

    torch.manual_seed(0)
    model = X2Face(X2FaceConfig(image_size=64, base_channels=8)).train()
    src = torch.rand(3, 2, 3, 64, 64).repeat_interleave(2, 0)  # [6, K, 3, S, S]: 3 groups of 2
    drv, other = torch.rand(6, 3, 64, 64), torch.rand(6, 3, 64, 64)
    results = []
    for d in (1, 2):
        model.zero_grad()
        g, g_other, _ = GeneratorStep(model, drivers=d)(src, drv, other)
        ((g - drv).abs().mean() + (g_other - other).abs().mean()).backward()
        results.append((g.detach(), g_other.detach(), [p.grad.clone() for p in model.parameters()]))
    (a, a_other, grads_a), (b, b_other, grads_b) = results
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(a_other, b_other, atol=1e-5, rtol=0)
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(ga, gb, atol=1e-5, rtol=1e-3)
    model.eval()
    with torch.no_grad():
        odd = torch.rand(6, 2, 3, 64, 64)  # not grouped: eval mode must embed every item
        torch.testing.assert_close(GeneratorStep(model, drivers=2).eval()(odd, drv)[0], model(drv, odd))


def test_drivers_per_source_must_divide_each_share_of_the_batch(tmp_path):
    with pytest.raises(ConfigError, match="drivers_per_source"):
        PairStream(_Fake(0), _Fake(1), 8, 0.25, 1, 0, drivers=4)  # 6 synthetic + 2 real pairs
    with pytest.raises(ConfigError, match="drivers_per_source"):
        load_config(TEST_CONFIG, ["data.drivers_per_source=0"])
    code, out = _run(tmp_path, "grouped", "--set", "run.steps=2", "--set", "data.drivers_per_source=2",
                     "--set", "run.val_every=2")
    assert code == 0 and len(_rows(out / "train.csv")) >= 1
    assert json.loads((out / "weights" / "provenance.json").read_text())["config"]["data"]["drivers_per_source"] == 2
