"""Audio -> driving vector map f_a->v (section 4.2 of the paper)."""
from __future__ import annotations

import torch
import torch.nn as nn


class AudioMap(nn.Module):
    """f_a->v: an affine map from (standardised) audio features to driving vectors.

    Fitted by ordinary least squares on (audio feature, driving vector) pairs; ``feature_mean`` and
    ``feature_std`` are the statistics of the features it was fitted on.
    """

    def __init__(self, feature_dim: int = 256, vector_dim: int = 128) -> None:
        super().__init__()
        self.linear = nn.Linear(feature_dim, vector_dim)
        self.register_buffer("feature_mean", torch.zeros(feature_dim))
        self.register_buffer("feature_std", torch.ones(feature_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features: float [B, feature_dim] -> driving vectors float [B, vector_dim]."""
        return self.linear((features - self.feature_mean) / self.feature_std)
