"""Affine resampling in `affine_grid` normalised coordinates (align_corners=False, x and y in [-1, 1]).

An affine [2, 3] maps output coordinates to input coordinates, so `warp(reference, affine)` renders a view and
`warp(view, invert_affines(affine))` puts it back into the reference frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def invert_affines(affines: Tensor) -> Tensor:
    """Inverse maps [N, 2, 3] of affines [N, 2, 3]."""
    bottom = affines.new_tensor([0.0, 0.0, 1.0]).expand(affines.shape[0], 1, 3)
    return torch.linalg.inv(torch.cat([affines, bottom], dim=1))[:, :2]


def warp(tensor: Tensor, affines: Tensor, mode: str = "bilinear", padding_mode: str = "zeros") -> Tensor:
    """Resampling of [N, C, H, W]: the output at location u takes the input at affines @ (u, 1)."""
    grid = F.affine_grid(affines.to(tensor.dtype), list(tensor.shape), align_corners=False)
    return F.grid_sample(tensor, grid, mode=mode, padding_mode=padding_mode, align_corners=False)


def warp_labels(labels: Tensor, affines: Tensor) -> Tensor:
    """Label maps [N, H, W] resampled with nearest neighbours (0 outside the input)."""
    return warp(labels[:, None].float(), affines, mode="nearest")[:, 0].round().long()


def rotation_affines(angle_deg: Tensor, height: int, width: int) -> Tensor:
    """Affines [B, 2, 3] that sample the input at the output pixel rotated by angle (in pixel units)."""
    rad = torch.deg2rad(angle_deg)
    cos, sin = torch.cos(rad), torch.sin(rad)
    aspect = height / width
    row0 = torch.stack([cos, -sin * aspect, torch.zeros_like(cos)], dim=1)
    row1 = torch.stack([sin / aspect, cos, torch.zeros_like(cos)], dim=1)
    return torch.stack([row0, row1], dim=1)


def rotate(images: Tensor, angle_deg: float | Tensor, mode: str = "bilinear") -> Tensor:
    """Rotate a batch [B,C,H,W] counter-clockwise as displayed (like `torch.rot90`) by `angle_deg` degrees.

    `angle_deg` is a float or one angle per image; the rotation is about the image centre, in pixel units
    (non-square images keep their shape), with zero padding outside.
    """
    angle = torch.as_tensor(angle_deg, dtype=images.dtype, device=images.device).expand(images.shape[0])
    return warp(images, rotation_affines(angle, images.shape[2], images.shape[3]), mode=mode)


def rotate_back(embeddings: Tensor, angle_deg: float | Tensor) -> tuple[Tensor, Tensor]:
    """Undo `rotate(images, angle_deg)` on embeddings [B,D,H,W]; returns them and a validity mask [B,H,W].

    A pixel is valid where its content survived the round trip (it lay inside the image in both frames).
    """
    angle = torch.as_tensor(angle_deg, dtype=embeddings.dtype, device=embeddings.device)
    back = rotate(embeddings, -angle)
    ones = embeddings.new_ones(embeddings.shape[0], 1, *embeddings.shape[2:])
    valid = rotate(rotate(ones, angle), -angle)[:, 0] > 1.0 - 1e-3
    return back, valid
