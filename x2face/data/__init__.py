"""Training and evaluation data: a procedural talking-head world with exact ground truth (``synthetic``)."""
from .synthetic import (
    SPLITS,
    FrameParams,
    Identity,
    SyntheticPairs,
    SyntheticVideo,
    SyntheticWorld,
    identity,
    sample_video,
)

__all__ = ["SPLITS", "FrameParams", "Identity", "SyntheticPairs", "SyntheticVideo", "SyntheticWorld", "identity",
           "sample_video"]
