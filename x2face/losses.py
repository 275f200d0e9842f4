"""Training losses of X2Face (section 3.2 of the paper): stage I's photometric L1 and stage II's identity losses.

Stage I: ``L = |g_dA - d_A|_1`` (generated vs driving frame, source and driving from one video).

Stage II, with a frozen identity network phi (``x2face.identity``)::

    L = |g_dA - d_A|_1                                            photometric
      + sum_{l in same_layers}  w_same(l)  * |phi_l(g_dA) - phi_l(d_A)|_1   content, same identity
      + sum_{l in other_layers} w_other(l) * |phi_l(g_dR) - phi_l(s_A)|_1   content, another identity

with ``same_layers = Conv2-5, Conv7`` and ``other_layers = Conv6-7`` by default. The paper weights
each layer "to be as strong as the photometric L1 loss" (same identity) and "1/10 the size of the
photometric loss" (another identity). ``balance="magnitude"`` (the default) reads that literally:
each layer's term is rescaled (by a detached factor) so its value is ``ratio * photometric``, and
its gradient keeps the content loss's direction; ``balance="fixed"`` uses the ratios as plain weights.

Either stage may add ``blur_weight * sum_s |g_dA^s - G_s * d_A|_1`` (``[stage] blur_sigmas`` in
``x2face.train``; off by default, not in the paper): ``g_dA^s`` renders the sources blurred by a Gaussian
``G_s`` through the same two warps. Blurred frames have wide image gradients, so a warp is pulled by
edges several pixels away, not only by the pixel it samples (a coarse-to-fine loss for the flows).

All L1 terms are means over elements; images are float RGB in [0, 1], NCHW.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ConfigError
from .identity import IdentityNetwork, freeze

#: how stage II turns a layer's ratio into a weight: name -> f(content loss, photometric loss, ratio) -> term
BALANCES: dict[str, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
    "magnitude": lambda content, photo, ratio: content * (ratio * photo.detach() / content.detach().clamp_min(1e-12)),
    "fixed": lambda content, photo, ratio: ratio * content,
}


def photometric_l1(generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of two float [B, 3, S, S] images -> scalar (float32)."""
    return (generated.float() - target.float()).abs().mean()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (edges replicated): float [N, C, H, W] -> the same shape and dtype.

    ``sigma`` is in pixels; the kernel reaches 3 sigma either side (at least one pixel).
    """
    r = max(1, int(math.ceil(3.0 * sigma)))
    t = torch.arange(-r, r + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()  # [2r+1]
    c = images.shape[1]
    x = F.pad(images, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # [2r+1] -> [C, 1, 1, 2r+1]: along W
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # [2r+1] -> [C, 1, 2r+1, 1]: along H


def content_l1(features_a: dict[str, torch.Tensor], features_b: dict[str, torch.Tensor],
               layers: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Per-layer mean absolute difference of two feature dicts (``IdentityNetwork.features``) -> {layer: scalar}."""
    out = {}
    for name in layers:
        if name not in features_a or name not in features_b:
            raise ConfigError(f"identity network has no feature tap {name!r}; taps: {', '.join(IdentityNetwork.tap_names())}")
        out[name] = (features_a[name].float() - features_b[name].float()).abs().mean()
    return out


@dataclass
class IdentityLossWeights:
    """Which identity-network taps stage II compares and how strongly (see the module docstring).

    Attributes:
        same_layers: taps compared between g_dA and d_A (the paper's Conv2-5 and Conv7).
        other_layers: taps compared between g_dR and s_A (the paper's Conv6-7).
        same_ratio: strength of each same-identity layer relative to the photometric loss (1).
        other_ratio: strength of each other-identity layer relative to the photometric loss (1/10).
        balance: ``"magnitude"`` (each term's value = ratio x photometric) or ``"fixed"`` (ratio is the weight).
    """

    same_layers: list[str] = field(default_factory=lambda: ["conv2", "conv3", "conv4", "conv5", "conv7"])
    other_layers: list[str] = field(default_factory=lambda: ["conv6", "conv7"])
    same_ratio: float = 1.0
    other_ratio: float = 0.1
    balance: str = "magnitude"

    def __post_init__(self) -> None:
        taps = set(IdentityNetwork.tap_names())
        for name in ("same_layers", "other_layers"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"stage.{name} must be a list of layer names, got {value!r}")
            bad = [v for v in value if v not in taps]
            if bad:
                raise ConfigError(f"stage.{name}: unknown identity network layer(s) {', '.join(bad)}; "
                                  f"choose from {', '.join(IdentityNetwork.tap_names())}")
            setattr(self, name, list(value))
        for name in ("same_ratio", "other_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"stage.{name} must be a number >= 0, got {value!r}")
            setattr(self, name, float(value))
        if self.balance not in BALANCES:
            raise ConfigError(f"stage.balance must be one of {', '.join(BALANCES)}, got {self.balance!r}")


class StageIILoss(nn.Module):
    """The stage-II objective around a frozen identity network (kept in eval mode, no parameter grads).

    ``forward(generated_same, driving_same, generated_other, source)`` returns ``(total, parts)``:
    ``total`` a scalar to minimise and ``parts`` a dict of detached scalar tensors for logging
    (``photometric``, ``same/<layer>``, ``other/<layer>``, each as its value before weighting).
    """

    def __init__(self, identity: IdentityNetwork, weights: IdentityLossWeights | None = None) -> None:
        super().__init__()
        self.identity = freeze(identity)
        self.weights = weights or IdentityLossWeights()

    def train(self, mode: bool = True) -> "StageIILoss":
        """Switching the loss to training mode leaves the identity network in eval mode."""
        super().train(mode)
        self.identity.eval()
        return self

    def forward(self, generated_same: torch.Tensor, driving_same: torch.Tensor,
                generated_other: torch.Tensor | None, source: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Stage-II loss.

        Args:
            generated_same: g_dA, float [B, 3, S, S] generated from s_A driven by d_A.
            driving_same: d_A, float [B, 3, S, S], a frame of s_A's identity (and video).
            generated_other: g_dR, float [B, 3, S, S] generated from s_A driven by d_R (another
                identity), or None to skip the other-identity term.
            source: s_A, float [B, 3, S, S], the (first) source frame.

        Returns:
            (scalar loss with gradients, {name: detached scalar tensor} parts).
        """
        w = self.weights
        balance = BALANCES[w.balance]
        photo = photometric_l1(generated_same, driving_same)
        total = photo
        parts = {"photometric": photo.detach()}
        use_same = bool(w.same_layers) and w.same_ratio > 0
        use_other = generated_other is not None and bool(w.other_layers) and w.other_ratio > 0
        b = driving_same.shape[0]
        inputs = ([generated_same] if use_same else []) + ([generated_other] if use_other else [])
        if not inputs:
            return total, parts
        with torch.no_grad():  # targets: d_A for the same-identity term, s_A for the other
            targets = self.identity.features(torch.cat(([driving_same] if use_same else []) + ([source] if use_other else [])))
        feats = self.identity.features(torch.cat(inputs))  # one pass over [g_dA; g_dR]
        offset = 0
        for used, layers, ratio, label in ((use_same, w.same_layers, w.same_ratio, "same"),
                                           (use_other, w.other_layers, w.other_ratio, "other")):
            if not used:
                continue
            mine = {k: v[offset:offset + b] for k, v in feats.items()}
            theirs = {k: v[offset:offset + b] for k, v in targets.items()}
            for name, value in content_l1(mine, theirs, layers).items():
                total = total + balance(value, photo, ratio)
                parts[f"{label}/{name}"] = value.detach()
            offset += b
        return total, parts


__all__ = ["BALANCES", "IdentityLossWeights", "StageIILoss", "content_l1", "gaussian_blur", "photometric_l1"]
