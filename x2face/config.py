"""Architecture configuration: a typed dataclass that travels with the weights as ``config.json``.

Training settings live elsewhere (``x2face.train.TrainConfig``); nothing here changes how a network
is trained, only what its tensors are.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

#: Bumped when the meaning of a saved tensor changes; older files are refused with a clear message.
FORMAT_VERSION = 1


@dataclass
class X2FaceConfig:
    """The X2Face architecture.

    The default is the network of the paper and of the authors' release: 256x256 RGB input, a
    pix2pix ``unet_256`` embedding network with ngf = 64 and a driving network with a 128-D driving
    vector (39,157,760 and 25,614,080 parameters). ``image_size`` (a power of two, 64-512) and
    ``base_channels`` make smaller variants for CPU demos and tests; the number of encoder levels
    is ``log2(image_size)`` so the innermost level always reaches 1x1.

    Attributes:
        image_size: side of the square RGB frames the networks take and produce, in pixels.
        base_channels: channels of the first encoder level (pix2pix's ``ngf``); deeper levels double
            it up to ``8 * base_channels``.
        vector_dim: size of the driving vector (the driving network's 1x1 bottleneck).
        confidence_floor: the constant added to ``exp(c)`` when several source frames are averaged
            (``w_i = exp(c_i) + confidence_floor``); 0.1 in the release.
        pose_head: whether the model carries the pose maps f_v->p and f_p->v (section 4.1).
        audio_head: whether the model carries the audio map f_a->v (section 4.2) and its feature size.
        audio_feature_dim: size of the audio features f_a->v takes (256 for SyncNet-style fc7 features).
        audio_features: the audio feature extractor f_a->v was fitted on (a name registered in
            ``x2face.control.audio``), empty when there is no audio head.
        format_version: version of the weight format; checked on load.
    """

    image_size: int = 256
    base_channels: int = 64
    vector_dim: int = 128
    confidence_floor: float = 0.1
    pose_head: bool = False
    audio_head: bool = False
    audio_feature_dim: int = 256
    audio_features: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        for name in ("image_size", "base_channels", "vector_dim", "audio_feature_dim", "format_version"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"X2FaceConfig.{name} must be an int, got {value!r}")
        if not (64 <= self.image_size <= 512) or self.image_size & (self.image_size - 1):
            raise ConfigError(
                f"X2FaceConfig.image_size must be a power of two between 64 and 512, got {self.image_size}"
            )
        if self.base_channels < 1:
            raise ConfigError(f"X2FaceConfig.base_channels must be >= 1, got {self.base_channels}")
        if self.vector_dim < 1:
            raise ConfigError(f"X2FaceConfig.vector_dim must be >= 1, got {self.vector_dim}")
        if not isinstance(self.confidence_floor, (int, float)) or self.confidence_floor < 0:
            raise ConfigError(f"X2FaceConfig.confidence_floor must be >= 0, got {self.confidence_floor!r}")
        self.confidence_floor = float(self.confidence_floor)
        if self.format_version > FORMAT_VERSION:
            raise ConfigError(
                f"these weights use format version {self.format_version}, newer than this x2face "
                f"(reads up to {FORMAT_VERSION}); upgrade x2face"
            )

    @property
    def num_levels(self) -> int:
        """Encoder levels: each halves the image, so ``log2(image_size)`` levels reach 1x1."""
        return int(math.log2(self.image_size))

    def level_channels(self) -> list[int]:
        """Output channels of encoder levels 0 .. num_levels-2 (the innermost level is per network)."""
        return [min(self.base_channels * 2**i, self.base_channels * 8) for i in range(self.num_levels - 1)]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (what ``config.json`` holds)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "X2FaceConfig":
        """Build a config from a dict, refusing keys it does not know (a typo is an error, not a default)."""
        return strict_from_dict(cls, data, "an X2Face config")


def strict_from_dict(cls: type, data: Any, what: str) -> Any:
    """Build dataclass ``cls`` from a JSON/TOML object, refusing keys it does not know.

    ``what`` names the config in the error (e.g. "an X2Face config"). Unknown keys, a non-dict, or a missing
    required field raise :class:`ConfigError`; the dataclass's own ``__post_init__`` validates the values.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a JSON object / TOML table, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    try:
        return cls(**data)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{what}: {exc}") from exc


def _named_configs() -> dict[str, X2FaceConfig]:
    return {
        "paper": X2FaceConfig(),
        "demo": X2FaceConfig(image_size=128, base_channels=16),
        "tiny": X2FaceConfig(image_size=64, base_channels=8),
    }


#: Named architecture variants; ``get_config(name)`` returns a fresh copy.
CONFIGS: dict[str, X2FaceConfig] = _named_configs()


def get_config(name: str) -> X2FaceConfig:
    """Return a copy of a named architecture (``paper``, ``demo``, ``tiny``)."""
    if name not in CONFIGS:
        raise ConfigError(f"unknown config {name!r}; choose one of {', '.join(CONFIGS)}")
    return dataclasses.replace(CONFIGS[name])
