"""The networks and the public X2Face API on tiny configs."""
from __future__ import annotations

import pytest
import torch

from x2face import X2Face, X2FaceConfig, get_config
from x2face.errors import ConfigError, InputError
from x2face.warp import flow_to_grid, identity_grid, warp


def test_paper_config_has_release_parameter_counts():
    counts = X2Face(X2FaceConfig()).num_parameters()
    assert counts["embedding"] == 39_157_760
    assert counts["driving"] == 25_614_080


@pytest.mark.parametrize("size,levels", [(64, 6), (128, 7), (256, 8), (512, 9)])
def test_levels_reach_one_by_one(size, levels):
    cfg = X2FaceConfig(image_size=size, base_channels=4)
    assert cfg.num_levels == levels
    model = X2Face(cfg).eval()
    with torch.no_grad():
        v = model.driving_vector(torch.rand(1, 3, size, size))
    assert v.shape == (1, 128)


def test_shapes_and_dtypes(tiny_model):
    src = torch.rand(2, 3, 3, 64, 64)
    drv = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        emb = tiny_model.embed(src)
        vec = tiny_model.driving_vector(drv)
        out = tiny_model.render(emb, vec)
        full = tiny_model(drv, src)
    assert emb.shape == (2, 3, 64, 64) and emb.dtype == torch.float32
    assert vec.shape == (2, 128) and (vec >= 0).all()
    assert out.shape == (2, 3, 64, 64)
    assert torch.equal(out, full)
    assert 0 <= float(out.min()) and float(out.max()) <= 1 + 1e-6


def test_render_broadcasts_one_embedded_face(tiny_model):
    with torch.no_grad():
        emb = tiny_model.embed(torch.rand(1, 1, 3, 64, 64))
        vec = tiny_model.driving_vector(torch.rand(4, 3, 64, 64))
        out = tiny_model.render(emb, vec)
        one = tiny_model.render(emb, vec[2:3])
    assert out.shape == (4, 3, 64, 64)
    torch.testing.assert_close(out[2:3], one)


def test_gradients_reach_both_networks(tiny_config):
    model = X2Face(tiny_config).train()
    out = model(torch.rand(2, 3, 64, 64), torch.rand(2, 2, 3, 64, 64))
    out.mean().backward()
    for name, net in (("embedding", model.embedding), ("driving", model.driving)):
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name


def test_zero_flow_is_identity():
    img = torch.rand(2, 3, 16, 16)
    grid = flow_to_grid(torch.zeros(2, 2, 16, 16))
    torch.testing.assert_close(grid, identity_grid(2, 16, 16))
    torch.testing.assert_close(warp(img, grid), img, atol=1e-5, rtol=0)


def test_flow_channels_are_x_then_y():
    img = torch.zeros(1, 1, 9, 9)
    img[0, 0, 4, 6] = 1.0  # row 4, column 6
    flow = torch.zeros(1, 2, 9, 9)
    flow[:, 0] = 0.5  # +0.5 in x = 2 pixels right on a 9-pixel grid
    out = warp(img, flow_to_grid(flow))
    assert out[0, 0, 4, 4] == pytest.approx(1.0)


def _zero_embedding_flow(model):
    """Make the embedding network output a zero offset with a confidence from a fixed bias-free pattern."""
    last = model.embedding.up[0].conv
    with torch.no_grad():
        last.weight[:2].zero_()


def test_single_source_embedding_is_the_warped_source(tiny_model):
    _zero_embedding_flow(tiny_model)
    src = torch.rand(1, 1, 3, 64, 64)
    with torch.no_grad():
        emb = tiny_model.embed(src)
    torch.testing.assert_close(emb, src[:, 0], atol=1e-5, rtol=0)


def test_three_sources_are_confidence_weighted(tiny_model):
    _zero_embedding_flow(tiny_model)
    src = torch.rand(1, 3, 3, 64, 64)
    with torch.no_grad():
        emb = tiny_model.embed(src)
        conf = tiny_model.embedding(src[0])[:, 2:3]  # [K, 1, S, S]
    w = torch.exp(conf) + tiny_model.config.confidence_floor
    expected = (w * src[0]).sum(0, keepdim=True) / w.sum(0, keepdim=True)
    torch.testing.assert_close(emb, expected, atol=1e-5, rtol=1e-5)
    # identical sources average to themselves
    same = src[:, :1].expand(1, 3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(tiny_model.embed(same), tiny_model.embed(src[:, :1]), atol=1e-5, rtol=0)


def test_confidence_weighting_is_stable_for_huge_logits(tiny_model):
    with torch.no_grad():
        tiny_model.embedding.up[0].conv.weight[2].fill_(50.0)  # confidences far beyond exp's float range
        out = tiny_model.embed_with_confidence(torch.rand(1, 2, 3, 64, 64))
    assert torch.isfinite(out.face).all() and torch.isfinite(out.confidence).all()


@pytest.mark.parametrize(
    "bad,match",
    [
        (torch.rand(1, 3, 64, 64), "rank 5"),
        (torch.rand(1, 0, 3, 64, 64), "empty"),
        (torch.rand(1, 1, 3, 64, 32), "square"),
        (torch.rand(1, 1, 3, 48, 48), "64x64"),
        (torch.rand(1, 1, 4, 64, 64), "3 RGB channels"),
        (torch.rand(1, 1, 3, 64, 64) * 2, r"\[0, 1\]"),
        (-torch.rand(1, 1, 3, 64, 64), r"\[0, 1\]"),
        (torch.full((1, 1, 3, 64, 64), float("nan")), r"\[0, 1\]"),
        ((torch.rand(1, 1, 3, 64, 64) * 255).to(torch.uint8), "float"),
    ],
)
def test_bad_sources_are_refused(tiny_model, bad, match):
    with pytest.raises(InputError, match=match):
        tiny_model.embed(bad)


def test_bad_driving_and_vectors_are_refused(tiny_model):
    with pytest.raises(InputError, match="rank 4"):
        tiny_model.driving_vector(torch.rand(1, 1, 3, 64, 64))
    emb = torch.rand(2, 3, 64, 64)
    with pytest.raises(InputError, match=r"\[B, 128\]"):
        tiny_model.render(emb, torch.rand(2, 64))
    with pytest.raises(InputError, match="batch"):
        tiny_model.render(emb, torch.rand(3, 128))


@pytest.mark.parametrize("kwargs", [dict(image_size=96), dict(image_size=32), dict(image_size=1024),
                                    dict(base_channels=0), dict(image_size=64.0), dict(confidence_floor=-1)])
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(ConfigError):
        X2FaceConfig(**kwargs)


def test_named_configs():
    assert get_config("paper") == X2FaceConfig()
    assert get_config("demo").image_size == 128
    with pytest.raises(ConfigError, match="unknown config"):
        get_config("huge")
    with pytest.raises(ConfigError, match="unknown X2FaceConfig key"):
        X2FaceConfig.from_dict({"image_size": 64, "imagesize": 64})


def test_bf16_forward_runs_and_stays_close(tiny_model):
    src, drv = torch.rand(1, 2, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = tiny_model(drv, src)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = tiny_model(drv, src)
    assert low.dtype == torch.float32 or low.dtype == torch.bfloat16
    assert (low.float() - ref).abs().mean() < 0.05


@pytest.mark.parametrize("shape", [(2, 3, 1, 1), (2, 5, 4, 4), (1, 3, 7, 9), (2, 4, 16, 16), (1, 2, 17, 33)])
def test_upsample_kernels_compute_the_release_upsampling(shape):
    """``upsample2x`` (and its matmul form, the GPU's bf16 path) equal ``F.interpolate`` bilinear x2 with
    align_corners=True, values and gradients, in float32 (bf16 within its rounding)."""
    import torch.nn.functional as F

    from x2face.nets import upsample2x, upsample2x_matmul

    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).contiguous(memory_format=torch.channels_last)
    gy = torch.randn(shape[0], shape[1], 2 * shape[2], 2 * shape[3], generator=g)

    def run(fn, inp):
        inp = inp.detach().clone().requires_grad_(True)
        y = fn(inp)
        y.backward(gy.to(y.dtype))
        return y.detach().float(), inp.grad.float()

    ref, ref_grad = run(lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=True), x)
    for fn in (upsample2x, upsample2x_matmul):
        y, grad = run(fn, x)
        assert y.shape == ref.shape
        torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-5)
    y, grad = run(upsample2x_matmul, x.bfloat16())
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref, rtol=2e-2, atol=2e-2)  # bf16 weights and outputs: ~3 significant digits
    torch.testing.assert_close(grad, ref_grad, rtol=2e-2, atol=5e-2)


def test_interp_matrix_from_inference_mode_serves_training():
    """The cached interpolation matrices are normal tensors even when first built under inference_mode, so a
    model used by the pipeline can then be trained (autograd saves them for backward)."""
    from x2face.nets import interp_matrix, upsample2x_matmul

    interp_matrix.cache_clear()
    with torch.inference_mode():
        upsample2x_matmul(torch.rand(1, 2, 5, 6))
    assert not interp_matrix(5, torch.device("cpu"), torch.float32).is_inference()
    x = torch.rand(1, 2, 5, 6, requires_grad=True)
    upsample2x_matmul(x).sum().backward()
    # each interior output row/column sums to one: every input pixel's gradient is its total weight
    a = interp_matrix(5, torch.device("cpu"), torch.float64)
    torch.testing.assert_close(a.sum(1), torch.ones(10, dtype=torch.float64))
    assert x.grad is not None and x.grad.shape == x.shape


@pytest.mark.slow
def test_upsample_matmul_compiles():
    """Under ``torch.compile`` the matmul upsampling builds its matrices in the graph (no cache lookup) and
    still equals the interpolation, values and gradients."""
    import torch.nn.functional as F

    from x2face.nets import upsample2x_matmul

    x = torch.rand(2, 3, 6, 5, requires_grad=True)
    y = torch.compile(upsample2x_matmul, dynamic=False)(x)
    y.sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    ref = F.interpolate(x2, scale_factor=2, mode="bilinear", align_corners=True)
    ref.sum().backward()
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-5)
