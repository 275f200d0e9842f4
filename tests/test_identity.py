"""The VGG-11 identity network (x2face.identity) and the stage-II losses (x2face.losses), on tiny configs."""
from __future__ import annotations

import json

import pytest
import torch

from x2face.errors import ConfigError, WeightsError
from x2face.identity import (
    PAPER_TAPS,
    IdentityConfig,
    IdentityNetwork,
    freeze,
    load_identity_network,
    load_vgg_weights,
)
from x2face.losses import BALANCES, IdentityLossWeights, StageIILoss, content_l1, photometric_l1


def tiny(**kw) -> IdentityNetwork:
    torch.manual_seed(0)
    cfg = dict(image_size=64, width=4, fc_dim=32, pool_size=2, num_identities=5)
    cfg.update(kw)
    return IdentityNetwork(IdentityConfig(**cfg)).eval()


def test_taps_shapes_and_paper_aliases():
    net = tiny()
    x = torch.rand(2, 3, 64, 64)
    taps = net.features(x)
    assert set(taps) == set(IdentityNetwork.tap_names())
    expect = {"conv1_1": (4, 64), "conv2_1": (8, 32), "conv3_1": (16, 16), "conv3_2": (16, 16),
              "conv4_1": (32, 8), "conv4_2": (32, 8), "conv5_1": (32, 4), "conv5_2": (32, 4)}
    for name, (ch, side) in expect.items():
        assert taps[name].shape == (2, ch, side, side), name
    assert taps["fc6"].shape == taps["fc7"].shape == (2, 32)
    for alias, layer in PAPER_TAPS.items():
        assert taps[alias] is taps[layer]
    assert net(x).shape == (2, 5)
    assert all((t >= 0).all() for t in taps.values())  # post-ReLU


def test_frozen_network_passes_gradients_to_its_input():
    net = freeze(tiny(batch_norm=True))
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    net.features(x)["conv7"].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())


def test_save_and_load_round_trip(tmp_path):
    net = tiny(batch_norm=True)
    net.save_pretrained(tmp_path / "id")
    back = IdentityNetwork.from_pretrained(tmp_path / "id")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(back(x), net(x), atol=0, rtol=0)
    assert back.config == net.config
    assert load_identity_network(tmp_path / "id").config == net.config


def test_bad_folders_are_named(tmp_path, tiny_model):
    with pytest.raises(WeightsError, match="not an identity network folder"):
        IdentityNetwork.from_pretrained(tmp_path)
    tiny_model.save_pretrained(tmp_path / "x2face")
    with pytest.raises(WeightsError, match="another kind"):
        IdentityNetwork.from_pretrained(tmp_path / "x2face")
    net = tiny()
    net.save_pretrained(tmp_path / "id")
    cfg = json.loads((tmp_path / "id" / "config.json").read_text())
    cfg["width"] = 8
    (tmp_path / "id" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="convs.conv1_1.weight: file"):
        IdentityNetwork.from_pretrained(tmp_path / "id")
    with pytest.raises(WeightsError, match="no identity network"):
        load_identity_network(tmp_path / "missing")


def test_config_is_validated():
    with pytest.raises(ConfigError, match="unknown IdentityConfig key"):
        IdentityConfig.from_dict({"widht": 8})
    with pytest.raises(ConfigError, match="image_size"):
        IdentityConfig(image_size=16)
    with pytest.raises(ConfigError, match="mean"):
        IdentityConfig(mean=[0.5, 0.5])


def _torchvision_state(net: IdentityNetwork, conv_fc: bool = False) -> dict[str, torch.Tensor]:
    """The network's weights under torchvision's vgg11 / vgg11_bn key names (as a user's file would hold them)."""
    bn = net.config.batch_norm
    out, index = {}, 0
    for name in ("conv1_1", "M", "conv2_1", "M", "conv3_1", "conv3_2", "M", "conv4_1", "conv4_2", "M", "conv5_1",
                 "conv5_2", "M"):
        if name == "M":
            index += 1
            continue
        for k, v in net.convs[name].state_dict().items():
            out[f"features.{index}.{k}"] = v
        if bn:
            for k, v in net.norms[name].state_dict().items():
                out[f"features.{index + 1}.{k}"] = v
        index += 3 if bn else 2
    for i, fc in ((0, net.fc6), (3, net.fc7), (6, net.fc8)):
        for k, v in fc.state_dict().items():
            out[f"classifier.{i}.{k}"] = v
    if conv_fc:  # fully convolutional VGG-Face style fc6: [fc, C, p, p]
        p = net.config.pool_size
        out["classifier.0.weight"] = out["classifier.0.weight"].reshape(net.config.fc_dim, -1, p, p)
    return out


@pytest.mark.parametrize("batch_norm,conv_fc", [(False, False), (True, True)])
def test_vgg_weights_in_torchvision_layout_load(tmp_path, batch_norm, conv_fc):
    net = tiny(batch_norm=batch_norm)
    for m in net.norms.values():  # non-trivial running statistics
        m.running_mean.uniform_(-0.1, 0.1)
        m.running_var.uniform_(0.5, 1.5)
    torch.save({"state_dict": {"module." + k: v for k, v in _torchvision_state(net, conv_fc).items()}},
               tmp_path / "vgg.pth")
    loaded = load_vgg_weights(tmp_path / "vgg.pth", image_size=64, normalisation="imagenet")
    assert (loaded.config.width, loaded.config.fc_dim, loaded.config.pool_size, loaded.config.num_identities) == (4, 32, 2, 5)
    assert loaded.config.batch_norm == batch_norm
    loaded.mean.copy_(net.mean)  # compare the weights, not the input normalisation
    loaded.std.copy_(net.std)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.features(x)["fc7"], net.features(x)["fc7"])


def test_vgg_loader_refuses_pickled_code_and_strangers(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"state_dict": Evil()}, protocol=2))
    with pytest.raises(WeightsError, match="weights_only"):
        load_vgg_weights(tmp_path / "evil.pth")
    torch.save({"features.0.weight": torch.zeros(4, 3, 3, 3), "head.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="head.weight"):
        load_vgg_weights(tmp_path / "other.pth")
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")  # a header cut short
    with pytest.raises(WeightsError, match="cannot read .*cut.safetensors as safetensors"):
        load_vgg_weights(tmp_path / "cut.safetensors")


# ------------------------------------------------------------------------------------------------ losses
def test_photometric_and_content_l1():
    a, b = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    assert float(photometric_l1(a, b)) == pytest.approx(float((a - b).abs().mean()))
    out = content_l1({"conv2": a}, {"conv2": b}, ["conv2"])
    assert float(out["conv2"]) == pytest.approx(float((a - b).abs().mean()))
    with pytest.raises(ConfigError, match="no feature tap"):
        content_l1({"conv2": a}, {"conv2": b}, ["conv9"])


def _stage2_inputs():
    torch.manual_seed(1)
    g_same = torch.rand(2, 3, 64, 64, requires_grad=True)
    g_other = torch.rand(2, 3, 64, 64, requires_grad=True)
    return g_same, torch.rand(2, 3, 64, 64), g_other, torch.rand(2, 3, 64, 64)


def test_stage2_magnitude_balance_matches_the_paper_weights():
    """Each same-identity layer counts as much as the photometric loss, each other-identity layer 1/10."""
    weights = IdentityLossWeights()
    loss_fn = StageIILoss(tiny(), weights).train()
    assert not loss_fn.identity.training  # stays frozen in eval mode
    g_same, d_same, g_other, source = _stage2_inputs()
    total, parts = loss_fn(g_same, d_same, g_other, source)
    photo = float(parts["photometric"])
    expected = photo * (1 + len(weights.same_layers) * 1.0 + len(weights.other_layers) * 0.1)
    assert float(total.detach()) == pytest.approx(expected, rel=1e-5)
    assert {f"same/{n}" for n in weights.same_layers} | {f"other/{n}" for n in weights.other_layers} < set(parts)
    total.backward()
    assert float(g_same.grad.abs().sum()) > 0 and float(g_other.grad.abs().sum()) > 0
    assert all(p.grad is None for p in loss_fn.identity.parameters())


def test_stage2_fixed_balance_and_the_other_term_off():
    net = tiny()
    g_same, d_same, g_other, source = _stage2_inputs()
    w = IdentityLossWeights(same_layers=["conv3"], other_layers=["conv7"], same_ratio=2.0, other_ratio=0.5,
                            balance="fixed")
    total, parts = StageIILoss(net, w)(g_same, d_same, g_other, source)
    with torch.no_grad():
        fs, fd = net.features(g_same), net.features(d_same)
        fo, fsrc = net.features(g_other), net.features(source)
    expected = (photometric_l1(g_same, d_same) + 2.0 * (fs["conv3"] - fd["conv3"]).abs().mean()
                + 0.5 * (fo["conv7"] - fsrc["conv7"]).abs().mean())
    assert float(total.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    total, parts = StageIILoss(net, w)(g_same, d_same, None, source)
    assert not any(k.startswith("other/") for k in parts)


def test_loss_settings_are_validated():
    with pytest.raises(ConfigError, match="unknown identity network layer"):
        IdentityLossWeights(same_layers=["conv2", "conv12"])
    with pytest.raises(ConfigError, match="balance"):
        IdentityLossWeights(balance="loud")
    assert set(BALANCES) == {"magnitude", "fixed"}
