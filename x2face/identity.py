"""The identity network of stage II: VGG-11 (configuration A of Simonyan & Zisserman) for face identity.

X2Face's identity losses (section 3.2) compare images in the feature space of "the 11-layer VGG
network (configuration A) trained on the VGG-Face dataset". This file holds that network, its
architecture config and its weight files; it is trained by ``python -m x2face train-identity``
(``x2face.train``) and used, frozen, by ``x2face.losses``. Nothing in the X2Face networks imports it.

Architecture (``width`` = w, 64 in VGG-11; every conv is 3x3, padding 1, followed by ReLU)::

    block 1: conv1_1 (w)                 -> max-pool 2x2
    block 2: conv2_1 (2w)                -> max-pool
    block 3: conv3_1 (4w), conv3_2 (4w)  -> max-pool
    block 4: conv4_1 (8w), conv4_2 (8w)  -> max-pool
    block 5: conv5_1 (8w), conv5_2 (8w)  -> max-pool -> adaptive average pool to pool_size x pool_size
    fc6 (fc_dim) -> ReLU -> dropout -> fc7 (fc_dim) -> ReLU -> dropout -> fc8 (num_identities logits)

Feature taps. The paper names its loss layers "Conv2-5" and "Conv7" (same identity) and "Conv6-7"
(another identity). We read them as VGG-Face's own numbering, where the network is fully
convolutional and fc6/fc7 are its 6th and 7th convolution *stages*:

    ======  ===========================================  ==================================
    tap     layer (after its ReLU, before pooling)        shape for an S x S input
    ======  ===========================================  ==================================
    conv1   conv1_1                                       [B, w, S, S]
    conv2   conv2_1                                       [B, 2w, S/2, S/2]
    conv3   conv3_2                                       [B, 4w, S/4, S/4]
    conv4   conv4_2                                       [B, 8w, S/8, S/8]
    conv5   conv5_2                                       [B, 8w, S/16, S/16]
    conv6   fc6 (a pool_size x pool_size conv in VGG-Face) [B, fc_dim]
    conv7   fc7 (a 1x1 conv in VGG-Face)                  [B, fc_dim]
    ======  ===========================================  ==================================

This reading makes the "another identity" loss compare pose-invariant identity codes (fc6/fc7)
rather than spatial maps of faces in different poses, which is what the paper says it is for.
Every individual layer is also a tap under its own name (``conv3_1``, ``conv4_1``, ``conv5_1``,
``fc6``, ``fc7``, ...), so a loss can use the other reading (the 6th and 7th conv layers are
``conv4_2`` and ``conv5_1``) by naming layers in its config.

Images are float RGB in [0, 1], NCHW; the network normalises them itself with ``config.mean`` /
``config.std`` (defaults for networks trained here; ``load_vgg_weights`` sets VGG-Face's or
ImageNet's).
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import strict_from_dict
from .errors import ConfigError, WeightsError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ARCHITECTURE = "vgg11-identity"

#: conv layers of VGG-11 (configuration A): (name, width multiple), "M" = 2x2 max-pool.
VGG11_LAYOUT: list[tuple[str, int] | str] = [
    ("conv1_1", 1), "M",
    ("conv2_1", 2), "M",
    ("conv3_1", 4), ("conv3_2", 4), "M",
    ("conv4_1", 8), ("conv4_2", 8), "M",
    ("conv5_1", 8), ("conv5_2", 8), "M",
]

#: the paper's layer names -> layer taps (see the module docstring).
PAPER_TAPS: dict[str, str] = {
    "conv1": "conv1_1", "conv2": "conv2_1", "conv3": "conv3_2", "conv4": "conv4_2",
    "conv5": "conv5_2", "conv6": "fc6", "conv7": "fc7",
}

#: input normalisations (mean, std) of images in [0, 1]; VGG-Face subtracts its mean from 0-255 pixels.
NORMALISATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "default": ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
    "vggface": ((129.186279296875 / 255, 104.76238250732422 / 255, 93.59396362304688 / 255), (1 / 255, 1 / 255, 1 / 255)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


@dataclass
class IdentityConfig:
    """Architecture of the identity network (travels with its weights as ``config.json``).

    Attributes:
        image_size: side of the square RGB input in pixels (the X2Face model's image size when used
            in stage II; 224 for VGG-Face). Any size >= 32 works: fc6 sees an adaptive average pool.
        width: channels of conv1_1 (64 in VGG-11); the other layers scale with it (2w, 4w, 8w).
        fc_dim: width of fc6 and fc7 (4096 in VGG-11).
        pool_size: side of the feature map fed to fc6 (7 in VGG-11 at 224 px).
        num_identities: classes of the last layer (2622 for VGG-Face).
        batch_norm: BatchNorm after every conv (the ``vgg11_bn`` variant; trains faster from scratch).
        dropout: dropout after fc6 and fc7 while training.
        mean, std: per-channel input normalisation of RGB images in [0, 1].
        architecture: always ``"vgg11-identity"``; tells this folder from an X2Face weights folder.
    """

    image_size: int = 224
    width: int = 64
    fc_dim: int = 4096
    pool_size: int = 7
    num_identities: int = 2622
    batch_norm: bool = False
    dropout: float = 0.5
    mean: list[float] = field(default_factory=lambda: list(NORMALISATIONS["default"][0]))
    std: list[float] = field(default_factory=lambda: list(NORMALISATIONS["default"][1]))
    architecture: str = ARCHITECTURE

    def __post_init__(self) -> None:
        for name in ("image_size", "width", "fc_dim", "pool_size", "num_identities"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"IdentityConfig.{name} must be a positive int, got {value!r}")
        if self.image_size < 32:
            raise ConfigError(f"IdentityConfig.image_size must be >= 32 (five 2x2 pools), got {self.image_size}")
        if not isinstance(self.batch_norm, bool):
            raise ConfigError(f"IdentityConfig.batch_norm must be true or false, got {self.batch_norm!r}")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ConfigError(f"IdentityConfig.dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(isinstance(v, (int, float)) for v in value):
                raise ConfigError(f"IdentityConfig.{name} must be 3 numbers (R, G, B), got {value!r}")
            setattr(self, name, [float(v) for v in value])
        if min(self.std) <= 0:
            raise ConfigError(f"IdentityConfig.std must be positive, got {self.std}")
        if self.architecture != ARCHITECTURE:
            raise ConfigError(f"not an identity network config: architecture {self.architecture!r} (expected {ARCHITECTURE!r})")
        self.dropout = float(self.dropout)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (what ``config.json`` holds)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "IdentityConfig":
        """Build a config from a dict, refusing keys it does not know."""
        return strict_from_dict(cls, data, "an identity network config")


class IdentityNetwork(nn.Module):
    """VGG-11 (configuration A) identity classifier with named feature taps (see the module docstring).

    ``forward(x)`` gives identity logits; ``features(x)`` gives the taps the identity losses compare.
    """

    def __init__(self, config: IdentityConfig | None = None) -> None:
        super().__init__()
        config = config or IdentityConfig()
        if not isinstance(config, IdentityConfig):
            raise ConfigError(f"IdentityNetwork takes an IdentityConfig, got {type(config).__name__}")
        self.config = config
        w = config.width
        self.convs = nn.ModuleDict()
        self.norms = nn.ModuleDict()
        in_ch = 3
        for item in VGG11_LAYOUT:
            if item == "M":
                continue
            name, mult = item
            self.convs[name] = nn.Conv2d(in_ch, w * mult, kernel_size=3, padding=1)
            if config.batch_norm:
                self.norms[name] = nn.BatchNorm2d(w * mult)
            in_ch = w * mult
        self.fc6 = nn.Linear(in_ch * config.pool_size**2, config.fc_dim)
        self.fc7 = nn.Linear(config.fc_dim, config.fc_dim)
        self.fc8 = nn.Linear(config.fc_dim, config.num_identities)
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)  # [1, 3, 1, 1]
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)  # [1, 3, 1, 1]

    def _trunk(self, x: torch.Tensor, taps: dict[str, torch.Tensor] | None) -> torch.Tensor:
        """Normalised images [B, 3, S, S] -> fc7 activations [B, fc_dim], filling ``taps`` on the way."""
        h = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        for item in VGG11_LAYOUT:
            if item == "M":
                h = F.max_pool2d(h, 2)
                continue
            name = item[0]
            h = self.convs[name](h)
            if name in self.norms:
                h = self.norms[name](h)
            h = F.relu(h)
            if taps is not None:
                taps[name] = h
        p = self.config.pool_size
        h = F.adaptive_avg_pool2d(h, (p, p)).flatten(1)  # [B, 8w, p, p] -> [B, 8w*p*p]
        h = F.relu(self.fc6(h))
        if taps is not None:
            taps["fc6"] = h
        h = F.relu(self.fc7(F.dropout(h, self.config.dropout, self.training)))
        if taps is not None:
            taps["fc7"] = h
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float [B, 3, S, S] RGB in [0, 1] -> identity logits float [B, num_identities]."""
        h = self._trunk(x, None)
        return self.fc8(F.dropout(h, self.config.dropout, self.training))

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: float [B, 3, S, S] RGB in [0, 1] -> every tap, by layer name and by the paper's name.

        Keys: ``conv1_1 conv2_1 conv3_1 conv3_2 conv4_1 conv4_2 conv5_1 conv5_2 fc6 fc7`` (post-ReLU)
        and their paper aliases ``conv1`` .. ``conv7`` (``PAPER_TAPS``; the same tensors). Conv taps
        are [B, C, H, W], fc taps [B, fc_dim].
        """
        taps: dict[str, torch.Tensor] = {}
        self._trunk(x, taps)
        for alias, name in PAPER_TAPS.items():
            taps[alias] = taps[name]
        return taps

    @staticmethod
    def tap_names() -> list[str]:
        """Every name ``features`` returns."""
        layers = [item[0] for item in VGG11_LAYOUT if item != "M"] + ["fc6", "fc7"]
        return layers + list(PAPER_TAPS)

    # ------------------------------------------------------------------ weights
    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``folder`` (created) and return it."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n", encoding="utf-8")
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        tmp = folder / (WEIGHTS_NAME + ".tmp")
        save_file(state, str(tmp), metadata={"format": "pt", "architecture": ARCHITECTURE})
        os.replace(tmp, folder / WEIGHTS_NAME)
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, map_location: str | torch.device = "cpu") -> "IdentityNetwork":
        """Load a folder written by ``save_pretrained`` (eval mode).

        Raises:
            WeightsError: missing/unreadable files or tensors that do not fit the config.
            ConfigError: a config that is not an identity network's.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(folder)
        files = (folder / CONFIG_NAME, folder / WEIGHTS_NAME)
        if not folder.is_dir() or not all(f.is_file() for f in files):
            raise WeightsError(
                f"{folder} is not an identity network folder (needs {CONFIG_NAME} and {WEIGHTS_NAME}); "
                f"train one with `python -m x2face train-identity CONFIG`"
            )
        try:
            data = json.loads(files[0].read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise WeightsError(f"cannot read {files[0]}: {exc}") from exc
        if isinstance(data, dict) and data.get("architecture") != ARCHITECTURE:
            raise WeightsError(f"{folder} holds weights of another kind (architecture {data.get('architecture')!r}), "
                               f"not an identity network")
        net = cls(IdentityConfig.from_dict(data))
        try:
            state = load_file(str(files[1]), device=str(map_location))
        except (OSError, SafetensorError, RuntimeError) as exc:
            raise WeightsError(f"cannot read {files[1]}: {exc}") from exc
        _load_checked(net, state, str(folder))
        return net.eval()


def _load_checked(net: IdentityNetwork, state: dict[str, torch.Tensor], source: str) -> None:
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(f"{k}: file {list(state[k].shape)} vs network {list(expected[k].shape)}"
                        for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    problems = [label + ", ".join(items) for label, items in
                (("shape mismatch: ", mismatched), ("missing: ", missing), ("unexpected: ", unexpected)) if items]
    if problems:
        raise WeightsError(f"{source} does not match its identity network config: " + " | ".join(problems))
    net.load_state_dict(state)


def _torchvision_keys(batch_norm: bool) -> dict[str, str]:
    """torchvision ``vgg11`` / ``vgg11_bn`` state-dict prefixes -> ours."""
    mapping: dict[str, str] = {}
    index = 0
    for item in VGG11_LAYOUT:
        if item == "M":
            index += 1
            continue
        name = item[0]
        mapping[f"features.{index}."] = f"convs.{name}."
        if batch_norm:
            mapping[f"features.{index + 1}."] = f"norms.{name}."
            index += 3  # conv, bn, relu
        else:
            index += 2  # conv, relu
    mapping.update({"classifier.0.": "fc6.", "classifier.3.": "fc7.", "classifier.6.": "fc8."})
    return mapping


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # a truncated or foreign file: the library's own error type
            raise WeightsError(f"cannot read {path} as safetensors: {exc}") from exc
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickles with code in them, truncated files, ...
        raise WeightsError(f"cannot read {path} as plain tensors (weights_only): {type(exc).__name__}: {exc}") from exc
    for key in ("state_dict", "model", "net"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_vgg_weights(path: str | os.PathLike, *, image_size: int | None = None,
                     normalisation: str = "vggface") -> IdentityNetwork:
    """Build an ``IdentityNetwork`` from VGG-11 weights you have (e.g. VGG-11 trained on VGG-Face).

    Accepts a ``.safetensors`` file or a PyTorch state dict (read with ``weights_only=True``; never
    unpickled), in torchvision's ``vgg11`` / ``vgg11_bn`` layout (``features.N.*``, ``classifier.{0,3,6}.*``)
    or this module's layout; fc6 may be a linear ``[fc_dim, 512*p*p]`` or a conv ``[fc_dim, 512, p, p]``
    weight. The width, fc size, pool size and number of identities are read from the tensors.

    Args:
        path: the weights file.
        image_size: the input size you will feed (default 224).
        normalisation: input normalisation the weights were trained with: ``"vggface"`` (0-255
            pixels minus the VGG-Face mean) or ``"imagenet"``, see ``NORMALISATIONS``.

    Returns:
        the network, eval mode, on the CPU.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no such weights file: {path}")
    if normalisation not in NORMALISATIONS:
        raise ConfigError(f"unknown normalisation {normalisation!r}; choose one of {', '.join(NORMALISATIONS)}")
    state = _read_state_dict(path)
    batch_norm = any(k.endswith("running_mean") for k in state)
    if any(k.startswith("features.") for k in state):
        mapping = _torchvision_keys(batch_norm)
        renamed = {}
        for key, value in state.items():
            prefix = next((p for p in mapping if key.startswith(p)), None)
            if prefix is None:
                raise WeightsError(f"{path}: tensor {key!r} is not part of a VGG-11 (configuration A)")
            renamed[mapping[prefix] + key[len(prefix):]] = value
        state = renamed
    try:
        width = int(state["convs.conv1_1.weight"].shape[0])
        fc6 = state["fc6.weight"]
        fc_dim, num_ids = int(fc6.shape[0]), int(state["fc8.weight"].shape[0])
    except KeyError as exc:
        raise WeightsError(f"{path} is not a VGG-11: it has no tensor {exc}") from exc
    if fc6.dim() == 4:  # a convolutional fc6 [fc_dim, C, p, p] -> linear [fc_dim, C*p*p]
        state["fc6.weight"] = fc6.reshape(fc_dim, -1)  # [fc_dim, C, p, p] -> [fc_dim, C*p*p]
    for name in ("fc7.weight", "fc8.weight"):
        if state[name].dim() == 4:
            state[name] = state[name].flatten(1)  # [out, in, 1, 1] -> [out, in]
    pool = round((state["fc6.weight"].shape[1] / (8 * width)) ** 0.5)
    mean, std = NORMALISATIONS[normalisation]
    config = IdentityConfig(image_size=image_size or 224, width=width, fc_dim=fc_dim, pool_size=pool,
                            num_identities=num_ids, batch_norm=batch_norm, mean=list(mean), std=list(std))
    net = IdentityNetwork(config)
    state = {k: v.float() for k, v in state.items() if not k.endswith("num_batches_tracked")}
    for key, value in net.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, value)
    _load_checked(net, state, str(path))
    return net.eval()


def load_identity_network(spec: str | os.PathLike, map_location: str | torch.device = "cpu") -> IdentityNetwork:
    """A folder from ``train-identity`` / ``save_pretrained``, or a VGG-11 weights file (``load_vgg_weights``)."""
    path = Path(spec)
    if path.is_dir():
        return IdentityNetwork.from_pretrained(path, map_location=map_location)
    if path.is_file():
        return load_vgg_weights(path).to(map_location)
    raise WeightsError(f"no identity network at {spec} (train one with `python -m x2face train-identity CONFIG`)")


def freeze(net: nn.Module) -> nn.Module:
    """Eval mode and no parameter gradients (gradients still flow *through* it to its input)."""
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


__all__ = ["IdentityConfig", "IdentityNetwork", "NORMALISATIONS", "PAPER_TAPS", "freeze", "load_identity_network",
           "load_vgg_weights"]
