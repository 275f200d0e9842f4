"""The benchmark command (x2face.bench): what it writes and how it fails. No timing is asserted here."""
from __future__ import annotations

import json

import pytest
import torch

from x2face import X2Face, get_config
from x2face.cli import main as cli_main


@pytest.fixture(autouse=True)
def _keep_threads():
    """The command sets torch's CPU threads (its job); give the other tests theirs back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli_main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args, message", [
    (["--config", "huge"], "invalid choice"),
    (["--device", "tpu"], "invalid choice"),
    (["--threads", "0"], "--threads"),
    (["--out", "bench.txt"], ".json"),
    (["--clip", "/nonexistent/clip.mp4"], "no such file"),
    (["--peak-tflops", "-1"], "--peak-tflops"),
    (["--quick", "--bogus"], "unrecognized"),
    (["--parts", "drive,warp"], "unknown part(s) warp"),
    (["--parts", ","], "(none given)"),
    (["--train-batch", "16,x"], "comma-separated integers"),
    (["--train-batch", "0"], ">= 1"),
    (["--train-compile", "all"], "invalid choice"),
])
def test_bad_arguments_are_one_line_errors(args, message, capsys):
    code, out, err = _run(["bench", *args], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("x2face bench: error:") and message in err
    assert "Traceback" not in err and out == ""


def test_cuda_without_a_gpu_is_a_one_line_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = _run(["bench", "--device", "cuda", "--quick"], capsys)
    assert code == 2 and err.count("\n") == 1 and "CUDA" in err


def test_bench_model_has_offsets_of_the_stated_size():
    from x2face.bench import OFFSET_SCALE, _offset_layers_output, bench_frames, bench_model

    frames, where = bench_frames(6, 64)
    assert frames.shape == (6, 3, 64, 64) and 0 <= float(frames.min()) and float(frames.max()) <= 1
    assert where
    model = bench_model(get_config("tiny"), frames)
    with torch.no_grad():
        for net in (model.driving, model.embedding):
            raw = _offset_layers_output(net, frames)[:, :2]
            assert abs(float(raw.abs().mean()) - OFFSET_SCALE) < 1e-3 * OFFSET_SCALE + 1e-6
        # different driving frames give different outputs: the accuracy check is not vacuous
        emb = model.embed(frames[:1].unsqueeze(1))
        out = model.render(emb, model.driving_vector(frames[1:]))
    assert float((out[0] - out[3]).abs().max()) > 0.01


def test_driving_flops_match_the_paper_config():
    from x2face.bench import drive_gflop_per_frame

    # 13.0 GFLOP per 256x256 frame for the driving network (shared facts about the release)
    assert drive_gflop_per_frame(X2Face(get_config("paper"))) == pytest.approx(13.0, abs=0.05)
    assert drive_gflop_per_frame(X2Face(get_config("tiny"))) < drive_gflop_per_frame(X2Face(get_config("demo")))


def test_timer_skips_what_would_not_fit_the_budget():
    from x2face.bench import BenchSettings, Timer

    settings = BenchSettings(device=torch.device("cpu"), config_name="tiny", config=get_config("tiny"), quick=True)
    calls = []
    sec, why = Timer(settings).per_call(lambda: calls.append(1), predicted_s=1e6)
    assert sec is None and "budget" in why and calls == []
    sec, why = Timer(settings).per_call(lambda: calls.append(1))
    assert why is None and sec is not None and sec >= 0 and len(calls) >= settings.warmup + 1


def _result(**overrides):
    from x2face.bench import BATCHES, JSON_KEYS

    r = {k: None for k in JSON_KEYS}
    r.update({
        "device": "cpu", "config": "tiny", "image_size": 64, "command": "python -m x2face bench", "date": "today",
        "optimised": "fast", "baseline": "slow", "drive_fps": {str(b): 100.0 for b in BATCHES},
        "baseline_drive_fps": {str(b): 10.0 for b in BATCHES}, "drive_speedup": {str(b): 10.0 for b in BATCHES},
        "full_fps": 50.0, "baseline_full_fps": 10.0, "full_speedup": 5.0, "train_images_per_s": 20.0,
        "baseline_train_images_per_s": 10.0, "train_speedup": 2.0, "peak_memory_mb": 100.0,
        "peak_memory_kind": "rss", "max_abs_diff_vs_fp32": 0.01, "mean_abs_diff_vs_fp32": 1e-4,
        "max_abs_diff_full_vs_fp32": 0.02, "mean_abs_diff_full_vs_fp32": 1e-4, "tolerance": 0.25,
        "mean_tolerance": 2e-3, "tolerance_ok": True, "skipped": {"animate_10s_seconds": "no clip"}, "errors": {},
        "notes": [], "machine": {"cpu": "test cpu", "torch_threads": 1},
    })
    r.update(overrides)
    return r


def test_tolerance_check_and_markdown():
    from x2face.bench import markdown, tolerance_ok

    assert tolerance_ok(_result())
    assert not tolerance_ok(_result(max_abs_diff_vs_fp32=0.3))
    assert not tolerance_ok(_result(mean_abs_diff_full_vs_fp32=0.01))  # the full forward counts too
    assert not tolerance_ok(_result(max_abs_diff_vs_fp32=None))  # not measured is not passed
    assert not tolerance_ok(_result(errors={"accuracy": "boom"}))
    md = markdown(_result(animate_10s_seconds={"decode": 0.1, "crop": 0.2, "drive": 0.3, "paste": 0.1,
                                               "encode": 0.2, "total": 0.9, "overlapped_total": 0.5,
                                               "pipeline_total": 1.2, "pipeline_sharp_total": 1.4}))
    assert "| drive, batch 256 (frames/s) | 100 | 10 | 10.0x |" in md
    assert "as the app runs, first use (s) | 1.20" in md
    assert "sharp rendering, the CLI's and the app's default (s) | 1.40" in md
    assert "decode 0.10, crop 0.20" in md and "| 0.90 (" in md and "overlapped (s) | 0.50" in md
    assert "tolerance 0.25 / 0.002 | ok" in md
    md = markdown(_result(train_images_per_s=None, baseline_train_images_per_s=None, train_speedup=None))
    assert "| training, batch 16 (images/s) | n/a | n/a | n/a |" in md and "no clip" in md


def test_a_failing_part_keeps_the_others(tmp_path, monkeypatch, capsys):
    import x2face.bench as bench

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(bench, "BATCHES", (1, 2))
    monkeypatch.setattr(bench, "measure_full", broken)
    out = tmp_path / "r" / "bench.json"
    code, stdout, err = _run(["bench", "--quick", "--config", "tiny", "--device", "cpu", "--threads", "1",
                              "--no-train", "--no-animate", "--out", str(out)], capsys)
    assert code == 1 and "simulated failure" in err
    r = json.loads(out.read_text())
    assert r["errors"] == {"full": "RuntimeError: simulated failure"}
    assert r["drive_fps"]["1"] > 0 and r["baseline_drive_fps"]["2"] > 0 and r["tolerance_ok"] is True
    assert r["full_fps"] is None and r["skipped"]["train_images_per_s"] == "--no-train"
    assert out.with_suffix(".md").is_file()


def test_a_tolerance_failure_fails_the_command_after_writing(tmp_path, monkeypatch, capsys):
    import x2face.bench as bench
    import x2face.fast as fast

    monkeypatch.setattr(bench, "BATCHES", (1,))
    monkeypatch.setitem(fast.TOLERANCE, torch.float32, 0.0)
    monkeypatch.setitem(fast.MEAN_TOLERANCE, torch.float32, 0.0)
    # a driver that is off by a constant: the accuracy check must notice
    real_drive = fast.FastDriver.drive
    monkeypatch.setattr(fast.FastDriver, "drive", lambda self, frames: real_drive(self, frames) + 0.01)
    out = tmp_path / "bench.json"
    code, _, err = _run(["bench", "--quick", "--config", "tiny", "--device", "cpu", "--dtype", "fp32", "--threads", "1",
                         "--no-train", "--no-animate", "--out", str(out)], capsys)
    assert code == 2 and "off the fp32 reference" in err and err.count("\n") == 1
    r = json.loads(out.read_text())
    assert r["tolerance_ok"] is False and r["max_abs_diff_vs_fp32"] == pytest.approx(0.01, abs=1e-3)


def test_bench_takes_saved_weights(tmp_path, tiny_model, monkeypatch, capsys):
    import x2face.bench as bench

    monkeypatch.setattr(bench, "BATCHES", (1,))
    tiny_model.save_pretrained(tmp_path / "weights")
    out = tmp_path / "bench.json"
    code, _, err = _run(["bench", "--quick", "--weights", str(tmp_path / "weights"), "--device", "cpu", "--threads", "1",
                         "--no-train", "--no-animate", "--out", str(out)], capsys)
    assert code == 0, err
    r = json.loads(out.read_text())
    assert r["weights"] == str(tmp_path / "weights") and r["image_size"] == 64 and r["drive_fps"]["1"] > 0


@pytest.mark.slow
def test_quick_tiny_cpu_bench_writes_every_key(tmp_path, capsys):
    from x2face.bench import ANIMATE_STAGES, BATCHES, JSON_KEYS

    out = tmp_path / "bench.json"
    code, stdout, err = _run(["bench", "--quick", "--config", "tiny", "--device", "cpu", "--threads", "1",
                              "--out", str(out)], capsys)
    assert code == 0, err
    r = json.loads(out.read_text())
    for key in JSON_KEYS:
        assert key in r
    assert r["device"] == "cpu" and r["config"] == "tiny"
    for key in ("drive_fps", "baseline_drive_fps"):
        assert set(r[key]) == {str(b) for b in BATCHES}
        assert all(v is None and f"{key}.{b}" in r["skipped"] or v > 0 for b, v in r[key].items())
    assert r["full_fps"] > 0 and r["baseline_full_fps"] > 0
    assert r["train_images_per_s"] > 0 and r["baseline_train_images_per_s"] > 0
    assert r["peak_memory_mb"] > 0 and r["machine"]["torch_threads"] == 1
    assert r["tolerance_ok"] is True and 0 <= r["max_abs_diff_vs_fp32"] <= r["tolerance"]
    if r["animate_10s_seconds"] is None:
        assert r["skipped"]["animate_10s_seconds"]
    else:
        assert set(ANIMATE_STAGES) <= set(r["animate_10s_seconds"]) and r["animate_10s_seconds"]["total"] > 0
        assert "by opencv (opencv engine)" in r["animate_clip"]  # which face detector tracked the clip
    md = out.with_suffix(".md").read_text()
    assert md.startswith("# x2face bench") and "| drive, batch 1 (frames/s) |" in md
    assert "| measure | optimised | baseline | ratio |" in stdout


def test_parts_and_training_batches(tmp_path, capsys):
    """--parts runs only what it names (the accuracy check only when asked); --train-batch measures each batch."""
    out = tmp_path / "train.json"
    code, stdout, err = _run(["bench", "--quick", "--config", "tiny", "--device", "cpu", "--threads", "1",
                              "--parts", "train", "--train-batch", "2,4", "--out", str(out)], capsys)
    assert code == 0, err
    r = json.loads(out.read_text())
    assert r["drive_fps"] == {"1": None, "16": None, "64": None, "256": None} and r["full_fps"] is None
    assert r["skipped"]["drive"] == r["skipped"]["full"] == r["skipped"]["animate_10s_seconds"] == "not in --parts"
    assert r["tolerance_ok"] is None  # not checked, and not a failure
    assert set(r["train_images_per_s_by_batch"]) == {"2", "4"} and r["train_batch"] == 2
    assert r["train_images_per_s"] == r["train_images_per_s_by_batch"]["2"] > 0
    assert all(v > 0 for v in r["baseline_train_images_per_s_by_batch"].values())
    assert r["train_batch_synthetic"] == 4 and r["train_images_per_s_synthetic"] > 0
    md = out.with_suffix(".md").read_text()
    assert "| training, batch 2 (images/s) |" in md and "| training, batch 4 (images/s) |" in md


def test_compile_networks_keeps_the_model_and_its_gradients(tiny_model):
    """The compiled-networks model computes what the eager one does (CPU inductor), gradients included."""
    import copy

    from x2face.bench import compile_networks

    torch.manual_seed(0)
    model = tiny_model.train()
    s = model.config.image_size
    driving, sources = torch.rand(2, 3, s, s), torch.rand(2, 1, 3, s, s)
    compiled = compile_networks(copy.deepcopy(model))
    try:
        a, b = model(driving, sources), compiled(driving, sources)
    except Exception as exc:  # no C++ compiler for inductor on this machine
        pytest.skip(f"torch.compile unavailable: {type(exc).__name__}")
    torch.testing.assert_close(b, a, atol=1e-3, rtol=1e-3)  # inductor reorders float sums
    a.abs().mean().backward()
    b.abs().mean().backward()
    for (name, p), q in zip(model.named_parameters(), compiled.parameters()):
        # same direction (bilinear sampling's gradient jumps at pixel edges, so float reordering moves it a little)
        cos = torch.nn.functional.cosine_similarity(q.grad.flatten(), p.grad.flatten(), dim=0)
        assert cos > 0.99, (name, float(cos))


def test_the_pipeline_animate_times_the_sharp_default_too(tiny_model, real_dir, tmp_path):
    """``animate_with_pipeline(sharp=True)`` (``pipeline_sharp_total``) runs the CLI's default end to end: the face
    rendered from the full-resolution first frame and pasted back into it."""
    from x2face.bench import animate_with_pipeline
    from x2face.media import VideoReader, probe_video

    clip = real_dir / "clips" / "rizkiarm_LipNet__evaluation_samples_GRID_bbaf2n.mpg"
    outs = {}
    for sharp in (False, True):
        out = tmp_path / f"out-{sharp}.mp4"
        assert animate_with_pipeline(tiny_model, torch.device("cpu"), clip, out, sharp=sharp) > 0
        outs[sharp] = next(iter(VideoReader(out))).astype(int)
    info = probe_video(clip)
    assert outs[True].shape == outs[False].shape == (info.height, info.width, 3)
    assert abs(outs[True] - outs[False]).max() > 20  # a different face rendering, the same frame around it
