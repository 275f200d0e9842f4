"""Head pose <-> driving vector maps (section 4.1 of the paper).

Pose is ``(yaw, pitch, roll)`` in degrees throughout x2face (the release used radians in the order
roll, pitch, yaw; ``x2face.convert`` translates its files).
"""
from __future__ import annotations

import torch
import torch.nn as nn

POSE_NAMES = ("yaw", "pitch", "roll")


class PoseMaps(nn.Module):
    """f_v->p (Linear with bias, trained with L1) and f_p->v (Linear without bias + BatchNorm1d).

    The linear layer of f_p->v has no bias (as in the release): the BatchNorm that follows has one.
    """

    def __init__(self, vector_dim: int = 128) -> None:
        super().__init__()
        self.to_pose = nn.Linear(vector_dim, 3)
        self.from_pose = nn.Sequential(nn.Linear(3, vector_dim, bias=False), nn.BatchNorm1d(vector_dim))

    def vector_to_pose(self, vector: torch.Tensor) -> torch.Tensor:
        """f_v->p: driving vectors float [B, D] -> pose float [B, 3] (yaw, pitch, roll) in degrees."""
        return self.to_pose(vector)

    def pose_to_vector(self, pose: torch.Tensor) -> torch.Tensor:
        """f_p->v: pose float [B, 3] (yaw, pitch, roll) in degrees -> driving vectors float [B, D]."""
        return self.from_pose(pose)

    def repose(self, vector: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """Move a driving vector to a new head pose by the paper's vector arithmetic.

        ``v_new = v_src + f_p->v(p_new) - f_p->v(f_v->p(v_src))``: the difference form of
        ``v_src + f_p->v(p_new - p_src)``, which the release used because the BatchNorm in f_p->v
        adds a constant that must cancel.

        Args:
            vector: float [B, D] driving vectors of the source frames.
            pose: float [B, 3] (or [1, 3]) target (yaw, pitch, roll) in degrees.

        Returns:
            float [B, D] driving vectors.
        """
        pose = pose.to(vector.dtype).expand(vector.shape[0], 3)
        return vector + self.pose_to_vector(pose) - self.pose_to_vector(self.vector_to_pose(vector))
