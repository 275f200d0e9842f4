"""SyncNet-style audio-visual networks: the audio features of section 4.2 of the paper.

X2Face regresses driving vectors from "the 256-D FC7 activations of the audio stream" of SyncNet
(Chung & Zisserman, "Out of time", ACCV 2016 workshops), computed on a 0.2 s window of speech centred
on the frame. The release never shipped that network, so x2face builds it and trains it the way
SyncNet was trained: self-supervised, telling in-sync from out-of-sync (audio window, mouth) pairs
(``x2face.control.train_audio``).

* ``AudioStream``: 13 MFCC x 20 steps (0.2 s at 100 Hz, ``x2face.control.features.mfcc_windows``) ->
  a D-dimensional feature. Layers as in the public ``syncnet_v2`` model: conv 64 -> 192 -> 384 ->
  256 -> 256 (3x3, BatchNorm, ReLU, max-pools after the 2nd and 5th), conv (5, 4) -> 512, then
  Linear 512 -> 512, BatchNorm, ReLU, Linear 512 -> D (D = 256 for the paper's FC7 features; the
  public ``syncnet_v2`` ends at 1024). ``load_syncnet_v2`` reads its weights.
* ``LipStream``: the matching video stream for training: 5 consecutive crops of the lower half of
  the face, stacked along channels, -> D. Smaller than SyncNet's 3-D conv stream; it only has to
  teach the audio stream what the mouth does.
* ``SyncNet``: both streams and their ``AudioNetConfig``.

Widths come from ``AudioNetConfig``; named variants in ``AUDIO_NETS``: ``"syncnet"`` (the paper's
widths) and ``"syncnet-small"`` (a quarter of them, for CPUs). Saved as ``audio_net.safetensors`` +
``audio_net.json`` by ``save_audio_net``.

The training loss is not here (``x2face.control.train_audio``).
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

from ..config import strict_from_dict
from ..errors import ConfigError, WeightsError

NUM_CEPS = 13  #: MFCC coefficients per step
WINDOW_STEPS = 20  #: MFCC steps per window (0.2 s at 100 Hz)
AUDIO_NET_WEIGHTS = "audio_net.safetensors"
AUDIO_NET_CONFIG = "audio_net.json"
AUDIO_NET_FORMAT = 1


@dataclass
class AudioNetConfig:
    """Architecture of a ``SyncNet`` (audio and lip streams); travels with the weights as ``audio_net.json``.

    Attributes:
        name: the variant (a key of ``AUDIO_NETS``) these widths belong to; the audio features
            extractor of the same name (``x2face.control.features.FEATURES``) rebuilds the audio stream.
        channels: output channels of the audio stream's five 3x3 convolutions.
        conv_out: channels of its final (5, 4) convolution (512 in SyncNet).
        hidden: width of the hidden fully connected layer (512 in SyncNet).
        out_dim: size of the features both streams produce (256: the paper's FC7; 1024: syncnet_v2).
        lip_channels: output channels of the lip stream's conv levels (each halves the crop).
        lip_frames: consecutive frames the lip stream sees (5 = 0.2 s at 25 fps).
        lip_size: (height, width) of the lower-face crops in pixels.
        format_version: version of the saved format.
    """

    name: str = "syncnet"
    channels: list[int] = field(default_factory=lambda: [64, 192, 384, 256, 256])
    conv_out: int = 512
    hidden: int = 512
    out_dim: int = 256
    lip_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    lip_frames: int = 5
    lip_size: list[int] = field(default_factory=lambda: [32, 64])
    format_version: int = AUDIO_NET_FORMAT

    def __post_init__(self) -> None:
        if len(self.channels) != 5 or min(self.channels) < 1:
            raise ConfigError(f"AudioNetConfig.channels must be 5 positive ints, got {self.channels}")
        for name in ("conv_out", "hidden", "out_dim", "lip_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"AudioNetConfig.{name} must be a positive int, got {value!r}")
        if not self.lip_channels or min(self.lip_channels) < 1:
            raise ConfigError(f"AudioNetConfig.lip_channels must be positive ints, got {self.lip_channels}")
        if len(self.lip_size) != 2 or min(self.lip_size) < 2 ** len(self.lip_channels):
            raise ConfigError(f"AudioNetConfig.lip_size must be (height, width) of at least "
                              f"{2 ** len(self.lip_channels)} px each, got {self.lip_size}")
        if self.format_version > AUDIO_NET_FORMAT:
            raise ConfigError(f"audio network format {self.format_version} is newer than this x2face reads "
                              f"({AUDIO_NET_FORMAT}); upgrade x2face")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AudioNetConfig":
        """Build a config from a dict, refusing keys it does not know."""
        return strict_from_dict(cls, data, "an audio network config")


#: named widths; ``audio_net_config(name, out_dim)`` returns a fresh copy
AUDIO_NETS: dict[str, AudioNetConfig] = {
    "syncnet": AudioNetConfig(),
    "syncnet-small": AudioNetConfig(name="syncnet-small", channels=[16, 48, 96, 64, 64], conv_out=128, hidden=128,
                                    lip_channels=[16, 32, 64, 128]),
}


def audio_net_config(name: str, out_dim: int | None = None) -> AudioNetConfig:
    """A copy of the named variant (``AUDIO_NETS``), with ``out_dim`` replaced when given."""
    if name not in AUDIO_NETS:
        raise ConfigError(f"unknown audio network {name!r}; choose one of {', '.join(AUDIO_NETS)}")
    cfg = dataclasses.replace(AUDIO_NETS[name], channels=list(AUDIO_NETS[name].channels),
                              lip_channels=list(AUDIO_NETS[name].lip_channels), lip_size=list(AUDIO_NETS[name].lip_size))
    if out_dim is not None:
        cfg.out_dim = int(out_dim)
        cfg.__post_init__()
    return cfg


class ConvBN(nn.Module):
    """Conv2d (with bias, as SyncNet) -> BatchNorm2d -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: tuple[int, int], padding: tuple[int, int]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=kernel, padding=padding)
        self.norm = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class AudioStream(nn.Module):
    """MFCC window -> audio feature (SyncNet's audio stream).

    Input float [B, 1, 13, 20] (cepstra along H, time along W), output float [B, out_dim] (the last
    linear layer's activations, no nonlinearity: SyncNet's FC7).
    """

    def __init__(self, config: AudioNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.convs = nn.ModuleList([
            ConvBN(1, c[0], (3, 3), (1, 1)),
            ConvBN(c[0], c[1], (3, 3), (1, 1)),  # then max-pool (3, 3) stride (1, 2)
            ConvBN(c[1], c[2], (3, 3), (1, 1)),
            ConvBN(c[2], c[3], (3, 3), (1, 1)),
            ConvBN(c[3], c[4], (3, 3), (1, 1)),  # then max-pool (3, 3) stride (2, 2)
            ConvBN(c[4], config.conv_out, (5, 4), (0, 0)),  # 5x4 -> 1x1
        ])
        self.fc1 = nn.Linear(config.conv_out, config.hidden)
        self.fc_norm = nn.BatchNorm1d(config.hidden)
        self.fc2 = nn.Linear(config.hidden, config.out_dim)

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        """mfcc: float [B, 1, 13, 20] -> features float [B, out_dim]."""
        x = self.convs[0](mfcc)  # [B, c0, 13, 20]
        x = F.max_pool2d(self.convs[1](x), (3, 3), (1, 2))  # [B, c1, 11, 9]
        x = self.convs[4](self.convs[3](self.convs[2](x)))  # [B, c4, 11, 9]
        x = F.max_pool2d(x, (3, 3), (2, 2))  # [B, c4, 5, 4]
        x = self.convs[5](x).flatten(1)  # [B, conv_out, 1, 1] -> [B, conv_out]
        return self.fc2(F.relu(self.fc_norm(self.fc1(x))))


class LipStream(nn.Module):
    """Lower-face crops of ``lip_frames`` consecutive frames -> feature (the video side of sync training).

    Input float [B, F, 3, H, W] RGB in [0, 1] (H, W = ``config.lip_size``), output float [B, out_dim].
    """

    def __init__(self, config: AudioNetConfig) -> None:
        super().__init__()
        self.config = config
        chans = [3 * config.lip_frames] + list(config.lip_channels)
        self.convs = nn.ModuleList([ConvBN(a, b, (3, 3), (1, 1)) for a, b in zip(chans[:-1], chans[1:])])
        self.fc1 = nn.Linear(chans[-1], config.hidden)
        self.fc_norm = nn.BatchNorm1d(config.hidden)
        self.fc2 = nn.Linear(config.hidden, config.out_dim)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """crops: float [B, F, 3, H, W] in [0, 1] -> features float [B, out_dim]."""
        b, f, c, h, w = crops.shape
        x = crops.reshape(b, f * c, h, w) - 0.5  # [B, F, 3, H, W] -> [B, 3F, H, W], frames stacked on channels
        for conv in self.convs:
            x = F.max_pool2d(conv(x), 2)  # halves H and W
        x = x.mean(dim=(2, 3))  # [B, C, h, w] -> [B, C]
        return self.fc2(F.relu(self.fc_norm(self.fc1(x))))


class SyncNet(nn.Module):
    """The audio stream and the lip stream, trained together to tell in-sync pairs from shifted ones."""

    def __init__(self, config: AudioNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or AudioNetConfig()
        self.audio = AudioStream(self.config)
        self.lip = LipStream(self.config)

    def forward(self, mfcc: torch.Tensor, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mfcc float [B, 1, 13, 20], crops float [B, F, 3, H, W] -> (audio [B, D], lip [B, D]) features."""
        return self.audio(mfcc), self.lip(crops)


# ------------------------------------------------------------------------------------------------ weights
def save_audio_net(net: SyncNet, folder: str | os.PathLike, info: dict[str, Any] | None = None) -> Path:
    """Write ``audio_net.safetensors`` (both streams) and ``audio_net.json`` (config + ``info``) into ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    tmp = folder / (AUDIO_NET_WEIGHTS + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt", "library": "x2face"})
    os.replace(tmp, folder / AUDIO_NET_WEIGHTS)
    meta = {"config": net.config.to_dict(), **({"info": info} if info else {})}
    (folder / AUDIO_NET_CONFIG).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return folder


def load_audio_net(folder: str | os.PathLike, map_location: str | torch.device = "cpu") -> SyncNet:
    """Read a ``save_audio_net`` folder (strict: every tensor present, every shape right); eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_file, weights_file = folder / AUDIO_NET_CONFIG, folder / AUDIO_NET_WEIGHTS
    if not cfg_file.is_file() or not weights_file.is_file():
        raise WeightsError(f"{folder} is not an audio network folder (needs {AUDIO_NET_CONFIG} and {AUDIO_NET_WEIGHTS}; "
                           f"make one with `python -m x2face train-audio`)")
    try:
        meta = json.loads(cfg_file.read_text(encoding="utf-8"))
        state = load_file(str(weights_file), device=str(map_location))
    except (OSError, json.JSONDecodeError, SafetensorError) as exc:
        raise WeightsError(f"cannot read the audio network in {folder}: {exc}") from exc
    net = SyncNet(AudioNetConfig.from_dict(meta.get("config", {})))
    load_checked(net, state, str(folder))
    return net.eval()


def load_checked(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` strictly into ``module``, naming missing, unexpected and mis-shaped tensors."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad = sorted(f"{k}: file {list(state[k].shape)} vs network {list(expected[k].shape)}"
                 for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    problems = ([f"shape mismatch: {'; '.join(bad)}"] if bad else []) + \
        ([f"missing: {', '.join(missing[:8])}" + (" ..." if len(missing) > 8 else "")] if missing else []) + \
        ([f"unexpected: {', '.join(unexpected[:8])}" + (" ..." if len(unexpected) > 8 else "")] if unexpected else [])
    if problems:
        raise WeightsError(f"{source} does not fit the audio network: " + " | ".join(problems))
    module.load_state_dict(state)


#: syncnet_v2 (joonson/syncnet_python) audio-stream keys -> AudioStream keys. Its ``netcnnaud`` is one
#: Sequential whose convolutions sit at indices 0, 4, 8, 11, 14, 18 (each followed by its BatchNorm).
SYNCNET_V2_KEYS: dict[str, str] = {
    **{f"netcnnaud.{seq}.": f"convs.{i}.conv." for i, seq in enumerate((0, 4, 8, 11, 14, 18))},
    **{f"netcnnaud.{seq + 1}.": f"convs.{i}.norm." for i, seq in enumerate((0, 4, 8, 11, 14, 18))},
    "netfcaud.0.": "fc1.",
    "netfcaud.1.": "fc_norm.",
    "netfcaud.3.": "fc2.",
}


def map_syncnet_v2(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a syncnet_v2 state dict's audio-stream tensors to ``AudioStream`` keys (the lip stream is dropped)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in ("module.", "__S__."):
            key = key.removeprefix(prefix)
        for src, dst in SYNCNET_V2_KEYS.items():
            if key.startswith(src):
                out[dst + key[len(src):]] = value
                break
    return out


def load_syncnet_v2(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> AudioStream:
    """Load the audio stream of a syncnet_v2-style checkpoint (a plain PyTorch state dict).

    The widths are read from the tensors (SyncNet's are 64/192/384/256/256/512, 512, 1024), so other
    checkpoints with the same layer layout load too. Read with ``weights_only=True``: nothing is unpickled.

    Returns:
        an ``AudioStream`` in eval mode whose config name is ``"syncnet"`` when the widths are SyncNet's.

    Raises:
        WeightsError: unreadable file, or tensors that do not form the audio stream (named).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no such file: {path}")
    try:
        state = torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, truncated files: all unreadable for a user
        raise WeightsError(f"cannot read {path.name} as a PyTorch state dict (weights_only): {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path.name} is not a state dict of tensors")
    mapped = map_syncnet_v2(state)
    try:
        channels = [int(mapped[f"convs.{i}.conv.weight"].shape[0]) for i in range(5)]
        conv_out = int(mapped["convs.5.conv.weight"].shape[0])
        hidden, out_dim = int(mapped["fc1.weight"].shape[0]), int(mapped["fc2.weight"].shape[0])
    except KeyError as exc:
        raise WeightsError(f"{path.name} has no syncnet_v2 audio stream (netcnnaud.*, netfcaud.*): {exc} is missing") from exc
    paper = AUDIO_NETS["syncnet"]
    name = "syncnet" if (channels, conv_out, hidden) == (paper.channels, paper.conv_out, paper.hidden) else "custom"
    cfg = AudioNetConfig(name=name, channels=channels, conv_out=conv_out, hidden=hidden, out_dim=out_dim)
    stream = AudioStream(cfg)
    mapped = {k: v.float() if v.is_floating_point() else v for k, v in mapped.items()}
    for key in stream.state_dict():  # PyTorch < 0.4.1 files have no BatchNorm step counters
        if key.endswith("num_batches_tracked"):
            mapped.setdefault(key, torch.zeros((), dtype=torch.long))
    load_checked(stream, mapped, path.name)
    return stream.eval()


__all__ = ["AUDIO_NETS", "AUDIO_NET_CONFIG", "AUDIO_NET_WEIGHTS", "AudioNetConfig", "AudioStream", "LipStream",
           "NUM_CEPS", "SYNCNET_V2_KEYS", "SyncNet", "WINDOW_STEPS", "audio_net_config", "load_audio_net",
           "load_checked", "load_syncnet_v2", "map_syncnet_v2", "save_audio_net"]
