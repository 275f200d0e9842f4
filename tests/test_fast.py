"""The optimised inference path (x2face.fast): same function as the eager model, within tolerance."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from x2face import X2Face
from x2face.errors import ConfigError, InputError
from x2face.fast import (MEAN_TOLERANCE, TOLERANCE, FastDriver, configure_cpu_threads, cpu_has_amx,
                         default_buckets, default_max_batch, fold_conv_bn, physical_cores, resolve_dtype)


def _frames(n: int, size: int, seed: int = 0) -> torch.Tensor:
    from x2face.bench import bench_frames

    return bench_frames(n, size, seed)[0]


@pytest.fixture(scope="module")
def model() -> X2Face:
    """A tiny model whose BatchNorms have non-trivial statistics (so folding matters: means and biases
    at a tenth of each layer's activation scale) and whose offsets are a few pixels (so the driving
    frame matters). Shared by the module's tests, which only read it."""
    from x2face import X2FaceConfig
    from x2face.bench import scale_offsets

    tiny_config = X2FaceConfig(image_size=64, base_channels=8)
    torch.manual_seed(0)
    m = X2Face(tiny_config).eval()
    m.check_inputs = False
    x = _frames(4, tiny_config.image_size)
    norms = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]
    scales: dict[nn.Module, float] = {}
    hooks = [n.register_forward_hook(lambda mod, inp, out: scales.__setitem__(mod, float(inp[0].std())))
             for n in norms]
    with torch.no_grad():
        m(x, x.unsqueeze(1))
    for h in hooks:
        h.remove()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in norms:
            n, s = mod.num_features, scales[mod]
            mod.running_var.copy_((torch.rand(n, generator=g) * 0.5 + 0.75) * s * s)
            mod.running_mean.copy_(torch.randn(n, generator=g) * 0.1 * s)
            mod.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            mod.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return scale_offsets(m, x).eval()


@pytest.fixture
def frames(tiny_config) -> torch.Tensor:
    return _frames(9, tiny_config.image_size, seed=3)


def test_fold_conv_bn_is_the_same_function():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    bn = nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 3)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    x = torch.randn(2, 4, 8, 8)
    fused = fold_conv_bn(conv, bn)
    assert fused.bias is not None
    torch.testing.assert_close(fused(x), bn(conv(x)), atol=1e-5, rtol=1e-5)
    plain = fold_conv_bn(conv, nn.Identity())
    torch.testing.assert_close(plain(x), conv(x), atol=1e-6, rtol=1e-6)
    with pytest.raises(TypeError):
        fold_conv_bn(conv, nn.ReLU())


def test_fp32_drive_matches_the_eager_model(model, frames):
    driver = FastDriver(model, "cpu", "fp32")
    embedded = driver.set_source(frames[:1].unsqueeze(1))  # [1, 1, 3, S, S]
    torch.testing.assert_close(embedded, model.embed(frames[:1].unsqueeze(1)), atol=1e-4, rtol=0)
    out = driver.drive(frames[1:])
    with torch.no_grad():
        ref = model.render(embedded, model.driving_vector(frames[1:]))
    assert out.shape == (8, 3, 64, 64) and out.dtype == torch.float32
    assert float((out - ref).abs().max()) <= TOLERANCE[torch.float32]
    # the driving frame matters: different frames, different outputs
    assert float((out[0] - out[4]).abs().max()) > 0.01
    assert driver.max_abs_diff_vs_fp32(frames[1:]) <= TOLERANCE[torch.float32]


def test_fp32_embed_with_several_sources(model, frames):
    driver = FastDriver(model, "cpu", "fp32")
    sources = torch.stack([frames[:3], frames[3:6]])  # [2, 3, 3, S, S]: two faces, K = 3
    with torch.no_grad():
        ref = model.embed(sources)
    torch.testing.assert_close(driver.embed(sources), ref, atol=1e-4, rtol=0)


def test_full_forward_and_vectors_match(model, frames):
    driver = FastDriver(model, "cpu", "fp32")
    sources = frames.flip(0)[:8].unsqueeze(1)  # [8, 1, 3, S, S]
    with torch.no_grad():
        ref = model(frames[1:], sources)
        vectors = model.driving_vector(frames[1:])
    torch.testing.assert_close(driver.forward_full(frames[1:], sources), ref, atol=1e-4, rtol=0)
    scale = float(vectors.abs().max())  # vectors are unnormalised (here up to ~1e4): compare relative to it
    torch.testing.assert_close(driver.driving_vector(frames[1:]), vectors, atol=1e-5 * scale, rtol=1e-4)
    embedded = driver.set_source(frames[:1].unsqueeze(1))
    with torch.no_grad():
        ref_vec = model.render(embedded, vectors)
    torch.testing.assert_close(driver.render_vectors(vectors), ref_vec, atol=1e-4, rtol=0)


def test_bf16_is_within_the_stated_tolerance(model, frames):
    driver = FastDriver(model, "cpu", "bf16")
    driver.set_source(frames[:1].unsqueeze(1))
    worst, mean = driver.diff_vs_fp32(frames[1:])
    assert worst <= TOLERANCE[torch.bfloat16] and mean <= MEAN_TOLERANCE[torch.bfloat16]
    assert worst > 0  # it really ran in bf16
    assert driver.within_tolerance(frames[1:])
    assert driver.features["dtype"] == "bfloat16"


def test_bucket_padding_gives_the_unpadded_outputs(model, frames):
    plain = FastDriver(model, "cpu", "fp32", max_batch=64)
    padded = FastDriver(model, "cpu", "fp32", buckets=(1, 4, 8), pad_to_buckets=True)
    assert padded.max_batch == 8
    for d in (plain, padded):
        d.set_source(frames[:1].unsqueeze(1))
    x = torch.cat([frames, frames[:2]])  # 11 frames: one chunk of 8, then 3 padded to 4
    a, b = plain.drive(x), padded.drive(x)
    assert a.shape == b.shape == (11, 3, 64, 64)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    vectors = torch.rand(3, 128)
    torch.testing.assert_close(padded.render_vectors(vectors), plain.render_vectors(vectors), atol=1e-5, rtol=0)


def test_uint8_frames_and_set_embedded(model, frames):
    driver = FastDriver(model, "cpu", "fp32")
    face = torch.rand(1, 3, 64, 64)
    driver.set_embedded(face)
    as_uint8 = (frames * 255).round().to(torch.uint8)
    torch.testing.assert_close(driver.drive(as_uint8), driver.drive(as_uint8.float() / 255), atol=1e-5, rtol=0)
    # a new face replaces the cached one
    first = driver.drive(frames[:2])
    driver.set_embedded(torch.rand(3, 64, 64))
    assert float((driver.drive(frames[:2]) - first).abs().max()) > 0.01


def test_bad_inputs_get_clear_errors(model, frames):
    driver = FastDriver(model, "cpu", "fp32")
    with pytest.raises(InputError, match="set_source"):
        driver.drive(frames)
    driver.set_source(frames[:1].unsqueeze(1))
    with pytest.raises(InputError, match=r"\[B, 3, 64, 64\]"):
        driver.drive(frames[:, :, :32])
    with pytest.raises(InputError, match="uint8"):
        driver.drive(frames.to(torch.int32))
    with pytest.raises(InputError, match="empty"):
        driver.drive(frames[:0])
    with pytest.raises(InputError, match=r"\[B, 128\]"):
        driver.render_vectors(torch.rand(2, 7))
    with pytest.raises(InputError, match="one face"):
        driver.set_source(torch.rand(2, 1, 3, 64, 64))
    with pytest.raises(InputError, match="embedded face"):
        driver.set_embedded(torch.rand(2, 3, 64, 64))
    with pytest.raises(ConfigError, match="dtype"):
        FastDriver(model, "cpu", "int8")
    with pytest.raises(ConfigError, match="max_batch"):
        FastDriver(model, "cpu", max_batch=0)
    with pytest.raises(ConfigError, match="X2Face"):
        FastDriver(nn.Linear(2, 2), "cpu")  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            FastDriver(model, "cuda")


def test_cuda_graphs_are_ignored_off_cuda(model, frames):
    driver = FastDriver(model, "cpu", "fp32", cuda_graphs=True)
    assert driver.features["cuda_graphs"] is False and "cuda_graphs_note" in driver.features
    driver.set_source(frames[:1].unsqueeze(1))
    assert driver.drive(frames[1:4]).shape == (3, 3, 64, 64)


def test_dtype_and_batch_defaults(tiny_config):
    from x2face import get_config

    cpu = torch.device("cpu")
    assert resolve_dtype("fp32", cpu) == torch.float32
    assert resolve_dtype(torch.bfloat16, cpu) == torch.bfloat16
    assert resolve_dtype("auto", cpu) == (torch.bfloat16 if cpu_has_amx() else torch.float32)
    with pytest.raises(ConfigError, match="float32, bfloat16 or float16"):
        resolve_dtype(torch.int8, cpu)
    assert default_buckets(16) == (1, 2, 4, 8, 16)
    assert default_buckets(24) == (1, 2, 4, 8, 16, 24)
    assert default_max_batch(get_config("demo"), cpu) == 16
    assert default_max_batch(get_config("paper"), cpu) == 4
    assert default_max_batch(get_config("paper"), torch.device("cuda")) == 256


def test_cpu_threads(monkeypatch):
    """Threads from 1 to the machine's CPUs; a variable asking for more gets that many (torch crashes when asked for
    tens of thousands), an argument asking for more is refused."""
    from x2face.fast import check_threads, max_cpu_threads

    before = torch.get_num_threads()
    top = max_cpu_threads()
    try:
        assert physical_cores() >= 1 and top >= 1
        assert configure_cpu_threads(1) == 1 and torch.get_num_threads() == 1
        for bad in (0, top + 1, 100000, 1.5, True):
            with pytest.raises(InputError, match=f"must be from 1 to {top} .this machine's CPU threads., got"):
                configure_cpu_threads(bad)
        with pytest.raises(InputError, match="--threads must be from 1 to"):
            check_threads(100000)
        assert check_threads(top) == top
        for var in ("X2FACE_THREADS", "OMP_NUM_THREADS"):
            monkeypatch.delenv("X2FACE_THREADS", raising=False)
            monkeypatch.setenv(var, "100000")
            assert configure_cpu_threads() == top == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_compiled_path_matches_eager_and_follows_the_cached_face(model, frames):
    pytest.importorskip("torch._inductor")
    eager = FastDriver(model, "cpu", "fp32")
    compiled = FastDriver(model, "cpu", "fp32", compile=True, buckets=(4, 8))
    for face in (torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)):  # the second must replace the first
        eager.set_embedded(face)
        compiled.set_embedded(face)
        out = compiled.drive(frames[1:6])  # 5 frames, padded to 8
        torch.testing.assert_close(out, eager.drive(frames[1:6]), atol=1e-4, rtol=0)
    if not compiled.features["compile"]:
        pytest.skip(f"torch.compile is not usable here: {compiled.features.get('compile_error')}")
