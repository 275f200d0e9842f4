"""benchmarks/coarse_flow.py: the experiment's patch starts at the model it patches, trains, and undoes itself."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from x2face import X2Face, nets

SPEC = importlib.util.spec_from_file_location(
    "coarse_flow", Path(__file__).resolve().parent.parent / "benchmarks" / "coarse_flow.py")
coarse = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(coarse)


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
