"""Bilinear warping with the conventions of the X2Face release.

Every sampling grid is in ``grid_sample``'s normalised coordinates: x and y in [-1, 1], x first,
``align_corners=True`` (so -1 and 1 are the centres of the border pixels), zeros outside.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def identity_grid(batch: int, height: int, width: int, *, device: torch.device | None = None,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The sampling grid that maps every pixel to itself.

    Returns:
        float tensor [B, H, W, 2]; ``[..., 0]`` is x = linspace(-1, 1, W) along columns and
        ``[..., 1]`` is y = linspace(-1, 1, H) along rows.
    """
    ys = torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype)
    xs = torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")  # [H, W] each
    grid = torch.stack((grid_x, grid_y), dim=-1)  # [H, W, 2]
    return grid.unsqueeze(0).expand(batch, height, width, 2)  # [B, H, W, 2]


def flow_to_grid(flow: torch.Tensor) -> torch.Tensor:
    """Turn a network's 2-channel offset map into a sampling grid.

    Args:
        flow: float [B, 2, H, W], channel 0 the x offset and channel 1 the y offset, already squashed
            by the caller (tanh) into normalised units.

    Returns:
        float [B, H, W, 2] grid = identity + offset.
    """
    b, _, h, w = flow.shape
    offset = flow.permute(0, 2, 3, 1)  # [B, 2, H, W] -> [B, H, W, 2]
    return identity_grid(b, h, w, device=flow.device, dtype=flow.dtype) + offset


def warp(image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample ``image`` at ``grid`` (zeros outside), as the release does.

    Args:
        image: float [B, C, H_in, W_in].
        grid: float [B, H, W, 2] in normalised (x, y) coordinates.

    Returns:
        float [B, C, H, W]. The sampling itself runs in float32 whatever the input dtype (bf16 grids
        lose sub-pixel precision), and the result is cast back to ``image.dtype``.
    """
    out = F.grid_sample(image.float(), grid.float(), mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.to(image.dtype)
